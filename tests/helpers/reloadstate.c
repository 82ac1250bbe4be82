/* SPDX-License-Identifier: MIT */
/*
 * reloadstate SOCKPATH MODE N -- COMMAND [ARG...]: start COMMAND (a broker)
 * as a reload's new image, handing it a state written by hand in the
 * format of docs/reload.md, and say what it answered.
 *
 * The state holds a listening socket bound at SOCKPATH, its lock file
 * (SOCKPATH.lock), one connection (a socketpair) with a pending reply, one
 * region with one name owned by that connection. MODE changes it:
 *   valid 0   as written;
 *   trunc N   only the first N bytes of the body (what follows the 24
 *             bytes of the header), the length and the end mark fixed up;
 *   flip N    byte N of the whole state inverted;
 *   put N:FD  the 4 bytes at N of the whole state set to the number of
 *             one of its descriptors: lfd, lock, conn or region (to name
 *             one twice, or one that is not what its field claims).
 * It prints the new image's answer on the channel ("accepted", "refused:
 * ..." or "(none)"), never sends "go", and then "exit N" or "signal N" as
 * the new image ends (it exits for want of "go" after an "accepted").
 * Exits 0 when it could run the image, 2 on a usage or system error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/cutils.h"

static unsigned char st[4096];
static size_t len;

static void le(uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                st[len++] = (unsigned char)(v >> (8 * i));
}

static void bytes(const void *p, size_t n)
{
        memcpy(st + len, p, n);
        len += n;
}

static void die(const char *what)
{
        fprintf(stderr, "reloadstate: %s: %s\n", what, strerror(errno));
        exit(2);
}

int main(int argc, char **argv)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        char lock[120], env[64], msg[256];
        int lfd, lockfd, pair[2], ch[2], reg, sfd, status;
        size_t lenoff, body = 24, n;
        long arg;
        pid_t pid;
        ssize_t k;

        if (argc < 6 || strcmp(argv[4], "--") != 0 || strlen(argv[1]) >= sizeof(a.sun_path) ||
            (strcmp(argv[2], "valid") && strcmp(argv[2], "trunc") && strcmp(argv[2], "flip") &&
             strcmp(argv[2], "put"))) {
                fprintf(stderr, "usage: reloadstate SOCKPATH valid|trunc|flip N, put N:FD -- COMMAND [ARG...]\n");
                return 2;
        }
        arg = strtol(argv[3], NULL, 10);
        strcpy(a.sun_path, argv[1]);
        snprintf(lock, sizeof(lock), "%s.lock", argv[1]);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 8) < 0)
                die(argv[1]);
        lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lockfd < 0)
                die(lock);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch) < 0)
                die("socketpair");
        reg = ashmem_create_region("reloadstate", 8192);
        if (reg < 0) {
                errno = -reg;
                die("ashmem_create_region");
        }
        (void)fcntl(reg, F_SETFD, FD_CLOEXEC);

        bytes("ASHMEMRS", 8);
        le(1, 4);                       /* version */
        le(0, 4);                       /* flags */
        lenoff = len;
        le(0, 8);                       /* length, below */
        le(1700000000, 8);              /* started */
        for (int i = 0; i < 8; i++)
                le((uint64_t)i + 1, 8); /* counters */
        le((uint32_t)lfd, 4);
        le((uint32_t)lockfd, 4);
        le(0, 1);                       /* activated */
        le(0, 1);                       /* owns the path */
        le(0, 8);
        le(0, 8);
        le(strlen(argv[1]), 2);
        bytes(argv[1], strlen(argv[1]));
        le(0xffffffff, 4);              /* owed: none */
        le(1, 4);                       /* one connection */
        le((uint32_t)pair[0], 4);
        le(5, 8);                       /* idle */
        le(2, 4);
        bytes("{}", 2);                 /* a pending reply */
        le(0, 1);                       /* with no descriptors */
        le(1, 4);                       /* one region */
        le((uint32_t)reg, 4);
        le(0xffffffff, 4);              /* no control block */
        le(8192, 8);
        le(0, 1);
        le(0, 4);
        le(1, 4);                       /* one name */
        le(5, 2);
        bytes("state", 5);
        le(0, 4);                       /* region 0 */
        le(1, 1);                       /* ranged */
        le(4096, 8);
        le(4096, 8);
        le(0, 4);
        le(0, 4);
        le(0600, 4);
        le(1700000001, 8);
        le(3, 8);                       /* attaches */
        le(0, 4);                       /* owned by connection 0 */
        if (strcmp(argv[2], "trunc") == 0) {
                if (arg < 0 || (size_t)arg > len - body) {
                        fprintf(stderr, "reloadstate: trunc: %ld is not in 0..%zu\n", arg, len - body);
                        return 2;
                }
                len = body + (size_t)arg;
        }
        bytes("ASHMEMRE", 8);
        for (int i = 0; i < 8; i++)
                st[lenoff + (size_t)i] = (unsigned char)((uint64_t)len >> (8 * i));
        if (strcmp(argv[2], "flip") == 0) {
                if (arg < 0 || (size_t)arg >= len) {
                        fprintf(stderr, "reloadstate: flip: %ld is not in 0..%zu\n", arg, len - 1);
                        return 2;
                }
                st[arg] ^= 0xff;
        }
        if (strcmp(argv[2], "put") == 0) {
                const char *w = strchr(argv[3], ':');
                int v = !w ? -1 : !strcmp(w, ":lfd") ? lfd : !strcmp(w, ":lock") ? lockfd :
                        !strcmp(w, ":conn") ? pair[0] : !strcmp(w, ":region") ? reg : -1;
                if (v < 0 || arg < 0 || (size_t)arg + 4 > len) {
                        fprintf(stderr, "reloadstate: put: %s is not N:lfd|lock|conn|region "
                                "with N in 0..%zu\n", argv[3], len - 4);
                        return 2;
                }
                for (int i = 0; i < 4; i++)
                        st[arg + i] = (unsigned char)((unsigned)v >> (8 * i));
        }
        if (strcmp(argv[2], "valid") == 0 && arg == -1) {
                printf("%zu\n", len - body - 8);        /* the body's length */
                unlink(argv[1]);
                unlink(lock);
                return 0;
        }

        sfd = memfd_create("reloadstate", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (sfd < 0)
                die("memfd_create");
        for (n = 0; n < len; n += (size_t)k) {
                k = write(sfd, st + n, len - n);
                if (k < 0 && errno == EINTR)
                        k = 0;
                else if (k <= 0)
                        die("write");
        }
        if (fcntl(sfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                die("F_ADD_SEALS");
        snprintf(env, sizeof(env), "ASHMEM_BROKER_RELOAD=%d,%d", sfd, ch[1]);
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                int fds[] = { lfd, lockfd, pair[0], reg, sfd, ch[1] };
                for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
                        fcntl(fds[i], F_SETFD, 0);
                putenv(env);
                execvp(argv[5], argv + 5);
                _exit(127);
        }
        close(ch[1]);
        {
                struct pollfd p = { .fd = ch[0], .events = POLLIN };
                int r;
                while ((r = poll(&p, 1, 10000)) < 0 && errno == EINTR)
                        ;
                k = r > 0 ? recv(ch[0], msg, sizeof(msg) - 1, MSG_DONTWAIT) : -1;
        }
        if (k > 0) {
                msg[k] = 0;
                printf("%s\n", msg);
        } else {
                printf("(none)\n");
        }
        /* no "go": the image must leave on its own */
        close(ch[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid");
        if (WIFSIGNALED(status))
                printf("signal %d\n", WTERMSIG(status));
        else
                printf("exit %d\n", WEXITSTATUS(status));
        unlink(argv[1]);
        unlink(lock);
        return 0;
}
