/* SPDX-License-Identifier: MIT */
/*
 * reloadload: clients that keep working while the broker is reloaded.
 *
 *   reloadload --socket PATH --clients N --seconds S --users UID:GID,UID:GID
 *
 * Starts N client processes (as root it runs client i as the i-th user of
 * the list, round robin: setgroups, setresgid, setresuid), each with one
 * broker connection held from start to end. Each shares a region of its
 * own as a transient name ("rl-t-I"), then until S seconds have passed:
 * creates "rl-I-K" (two pages, mode 0644), writes a pattern through its
 * descriptor, unpins the second page, has the broker purge the region,
 * pins the page again, checks the first page kept its bytes, attaches the
 * name read-only and checks the bytes through that descriptor too, reads
 * the record of its transient name and of "rl-keep-UID" of every user (the
 * test creates those, readable by all), and unshares "rl-I-K". At the end
 * it checks its transient name is still there.
 *
 * Every failed call is an error (printed with the client, the operation
 * and the errno); "reloadload: N operations, E errors" is the last line.
 * Exit status 0 when no client saw an error and every client did at least
 * one round, 1 otherwise, 2 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/broker.h"
#include "ashmem/cutils.h"

#define MAX_CLIENTS 256
#define MAX_USERS 8

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int client_n;
static unsigned long long ops, errors;

#define CHECK(what, call)                                                       \
        do {                                                                    \
                int r_ = (call);                                                \
                ops++;                                                          \
                if (r_ < 0) {                                                   \
                        errors++;                                               \
                        fprintf(stderr, "client %d: %s: %s\n", client_n, what,  \
                                strerror(-r_));                                 \
                        goto round_end;                                         \
                }                                                               \
        } while (0)

static int client(const char *sock, int i, int seconds, const uid_t *uids, int nusers)
{
        ashmem_broker *b;
        long long end = now_ms() + seconds * 1000LL;
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        char tname[64];
        int tfd, r, rounds = 0;

        client_n = i;
        r = ashmem_broker_connect(sock, &b);
        if (r < 0) {
                fprintf(stderr, "client %d: connect: %s\n", i, strerror(-r));
                return 1;
        }
        snprintf(tname, sizeof(tname), "rl-t-%d", i);
        tfd = ashmem_create_region(tname, pg);
        if (tfd < 0 || (r = ashmem_broker_share(b, tfd, tname, 0644, 1, NULL)) < 0) {
                fprintf(stderr, "client %d: transient share: %s\n", i,
                        strerror(tfd < 0 ? errno : -r));
                return 1;
        }
        for (unsigned k = 0; now_ms() < end; k++) {
                char name[64];
                int fd = -1, ro = -1;
                unsigned char *m = MAP_FAILED, *mr = MAP_FAILED;
                ashmem_region_info info;

                snprintf(name, sizeof(name), "rl-%d-%u", i, k);
                CHECK("create", ashmem_broker_create(b, name, 2 * pg, ASHMEM_BROKER_DEFAULT,
                                                     0644, &fd, NULL));
                m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                CHECK("mmap", m == MAP_FAILED ? -errno : 0);
                memset(m, (int)(k & 0xff), pg);
                memset(m + pg, 0x5a, pg);
                CHECK("unpin", ashmem_unpin_region(fd, pg, pg) < 0 ? -errno : 0);
                CHECK("purge", ashmem_broker_purge(b, name, NULL));
                CHECK("pin", ashmem_pin_region(fd, pg, pg) < 0 ? -errno : 0);
                for (size_t j = 0; j < pg; j++)
                        if (m[j] != (unsigned char)(k & 0xff)) {
                                CHECK("pinned page changed", -EIO);
                                break;
                        }
                CHECK("attach", ashmem_broker_attach(b, name, 0, &ro, NULL, NULL));
                mr = mmap(NULL, pg, PROT_READ, MAP_SHARED, ro, 0);
                CHECK("mmap read-only", mr == MAP_FAILED ? -errno : 0);
                CHECK("bytes through the attached descriptor",
                      memcmp(mr, m, pg) == 0 ? 0 : -EIO);
                CHECK("info of the transient name", ashmem_broker_info(b, tname, &info));
                for (int u = 0; u < nusers; u++) {
                        char keep[64];
                        snprintf(keep, sizeof(keep), "rl-keep-%u", (unsigned)uids[u]);
                        CHECK("info of a kept name", ashmem_broker_info(b, keep, &info));
                }
                CHECK("unshare", ashmem_broker_unshare(b, name));
                rounds++;
round_end:
                if (m != MAP_FAILED)
                        munmap(m, 2 * pg);
                if (mr != MAP_FAILED)
                        munmap(mr, pg);
                if (fd >= 0)
                        close(fd);
                if (ro >= 0)
                        close(ro);
        }
        {
                ashmem_region_info info;
                r = ashmem_broker_info(b, tname, &info);
                ops++;
                if (r < 0) {
                        errors++;
                        fprintf(stderr, "client %d: the transient name at the end: %s\n", i,
                                strerror(-r));
                }
        }
        ashmem_broker_close(b);
        close(tfd);
        printf("%d %llu %llu %d\n", i, ops, errors, rounds);
        fflush(stdout);
        return errors || !rounds ? 1 : 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: reloadload --socket PATH --clients N --seconds S "
                "--users UID:GID[,UID:GID...]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *sock = NULL, *users = NULL;
        int clients = 0, seconds = 0, nusers = 0, failed = 0;
        uid_t uids[MAX_USERS];
        gid_t gids[MAX_USERS];
        pid_t pids[MAX_CLIENTS];
        int out[2];

        for (int i = 1; i < argc; i++) {
                if (i + 1 >= argc)
                        usage();
                if (strcmp(argv[i], "--socket") == 0)
                        sock = argv[++i];
                else if (strcmp(argv[i], "--clients") == 0)
                        clients = atoi(argv[++i]);
                else if (strcmp(argv[i], "--seconds") == 0)
                        seconds = atoi(argv[++i]);
                else if (strcmp(argv[i], "--users") == 0)
                        users = argv[++i];
                else
                        usage();
        }
        if (!sock || !users || clients < 1 || clients > MAX_CLIENTS || seconds < 1 ||
            seconds > 3600)
                usage();
        for (const char *p = users; *p && nusers < MAX_USERS;) {
                unsigned u, g;
                int n;
                if (sscanf(p, "%u:%u%n", &u, &g, &n) != 2)
                        usage();
                uids[nusers] = u;
                gids[nusers++] = g;
                p += n;
                if (*p == ',')
                        p++;
                else if (*p)
                        usage();
        }
        if (pipe2(out, O_CLOEXEC) < 0)
                return 1;
        for (int i = 0; i < clients; i++) {
                pids[i] = fork();
                if (pids[i] < 0) {
                        perror("reloadload: fork");
                        return 1;
                }
                if (pids[i] == 0) {
                        int u = i % nusers;
                        if (dup2(out[1], 1) < 0)
                                _exit(1);
                        if (geteuid() == 0 &&
                            (setgroups(0, NULL) < 0 || setresgid(gids[u], gids[u], gids[u]) < 0 ||
                             setresuid(uids[u], uids[u], uids[u]) < 0)) {
                                perror("reloadload: setresuid");
                                _exit(1);
                        }
                        _exit(client(sock, i, seconds, uids, nusers));
                }
        }
        close(out[1]);
        {
                FILE *f = fdopen(out[0], "r");
                unsigned long long tops = 0, terr = 0, o, e;
                int id, rounds, seen = 0;
                while (f && fscanf(f, "%d %llu %llu %d", &id, &o, &e, &rounds) == 4) {
                        tops += o;
                        terr += e;
                        seen++;
                }
                for (int i = 0; i < clients; i++) {
                        int st;
                        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
                                ;
                        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                                failed++;
                }
                if (f)
                        fclose(f);
                printf("reloadload: %llu operations, %llu errors, %d of %d clients failed\n",
                       tops, terr, failed, clients);
                return failed || seen != clients || terr ? 1 : 0;
        }
}
