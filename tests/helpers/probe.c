/* SPDX-License-Identifier: MIT */
/*
 * probe: a test helper for the bats tests (reliability.bats,
 * access.bats). It acts on the region descriptor `ashmemctl attach` hands
 * it (ASHMEM_FD, ASHMEM_OFFSET, ASHMEM_SIZE) or on the broker's socket
 * directly, and says exactly what the kernel and the library answered.
 *
 *   probe ro              prove that a read-only descriptor is read-only in
 *                         the kernel: writable mappings, mprotect, reopening
 *                         O_RDWR, write(2) and hole punching all fail, pin,
 *                         unpin and purge fail with EPERM, reading works.
 *                         One line per check; exit 0 only if every check
 *                         came out as expected.
 *   probe read N          print N bytes of the view through a PROT_READ mapping
 *   probe write TEXT      write TEXT at the view's start through a shared
 *                         writable mapping (exit 1 with the errno if refused)
 *   probe hold            hold the region and obey commands on stdin, one
 *                         reply line each (see hold() below)
 *   probe connect SOCKET [TEXT]
 *                         connect to a broker; send TEXT as one message if
 *                         given and print the reply; then print "ready" and
 *                         say nothing more until stdin closes
 *   probe connections SOCKET N
 *                         open up to N connections that never speak; print
 *                         how many, then "ready", and wait for stdin to close
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/broker.h"

static int fd = -1;
static size_t off, len;

static const char *ename(int e)
{
        const char *n = strerrorname_np(e);
        return n ? n : "E?";
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
        va_list ap;
        fputs("probe: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(2);
}

static size_t env_num(const char *name, int required)
{
        const char *v = getenv(name);
        char *end;
        unsigned long long n;

        if (!v) {
                if (required)
                        die("%s is not set (run me under ashmemctl attach)", name);
                return 0;
        }
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || *end || end == v)
                die("%s=%s is not a number", name, v);
        return (size_t)n;
}

static void region_from_env(void)
{
        fd = (int)env_num("ASHMEM_FD", 1);
        off = env_num("ASHMEM_OFFSET", 0);
        len = env_num("ASHMEM_SIZE", 1);
        if (fcntl(fd, F_GETFD) < 0)
                die("ASHMEM_FD=%d: %s", fd, strerror(errno));
}

/* Map the pages that hold the view; *base points at the view's start. */
static int map_view(int prot, void **map, size_t *maplen, char **base)
{
        size_t ps = (size_t)sysconf(_SC_PAGESIZE), start = off / ps * ps;
        void *m;

        *maplen = off - start + len;
        m = mmap(NULL, *maplen, prot, MAP_SHARED, fd, (off_t)start);
        if (m == MAP_FAILED)
                return -errno;
        *map = m;
        *base = (char *)m + (off - start);
        return 0;
}

/* ---------------------------------------------------------------- ro */

static int failures;

static void expect(const char *what, int got, int want)
{
        int ok = got == want;
        printf("%-50s %-8s %s\n", what, got ? ename(got) : "ok",
               ok ? (want ? "(denied, as expected)" : "(allowed, as expected)")
                  : "UNEXPECTED");
        failures += !ok;
}

static int probe_ro(void)
{
        char path[64], what[96];
        void *m, *mw;
        size_t ml;
        char *base;
        int r, acc;
        ashmem_stats st;

        acc = fcntl(fd, F_GETFL);
        if (acc < 0)
                die("F_GETFL: %s", strerror(errno));
        expect("descriptor opened O_RDONLY", (acc & O_ACCMODE) == O_RDONLY ? 0 : EINVAL, 0);

        r = map_view(PROT_READ, &m, &ml, &base);
        expect("mmap(PROT_READ, MAP_SHARED)", -r, 0);
        if (r == 0) {
                volatile char c = base[0];
                (void)c;
                r = mprotect(m, ml, PROT_READ | PROT_WRITE) < 0 ? errno : 0;
                expect("mprotect(PROT_READ|PROT_WRITE) of it", r, EACCES);
                munmap(m, ml);
        }
        r = map_view(PROT_READ | PROT_WRITE, &mw, &ml, &base);
        if (r == 0)
                munmap(mw, ml);
        expect("mmap(PROT_READ|PROT_WRITE, MAP_SHARED)", -r, EACCES);

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        snprintf(what, sizeof(what), "open(%s, O_RDWR)", path);
        r = open(path, O_RDWR | O_CLOEXEC);
        if (r >= 0)
                close(r);
        expect(what, r < 0 ? errno : 0, EACCES);

        r = (int)pwrite(fd, "x", 1, (off_t)off);
        expect("pwrite(2)", r < 0 ? errno : 0, EBADF);
        r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1);
        expect("fallocate(PUNCH_HOLE) (a purge behind the library)", r < 0 ? errno : 0, EBADF);

        r = ashmem_unpin_region(fd, 0, 0);
        expect("ashmem_unpin_region", r < 0 ? errno : 0, EPERM);
        r = ashmem_pin_region(fd, 0, 0);
        expect("ashmem_pin_region", r < 0 ? errno : 0, EPERM);
        r = ashmem_purge(fd);
        expect("ashmem_purge", r < 0 ? -r : 0, EPERM);
        r = ashmem_pin_status(fd, 0, 0);
        expect("ashmem_pin_status", r < 0 ? -r : 0, 0);
        /* the pin state is the region's own (looked up from the broker),
         * read-only, or none yet (a region no holder has unpinned has no
         * control block: the broker says so, all pinned); never writable */
        r = ashmem_get_stats(fd, &st);
        expect("pin state writable", r < 0 ? -r : st.writable_state ? 0 : EPERM, EPERM);
        return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- read, write */

static int probe_read(size_t n)
{
        void *m;
        size_t ml;
        char *base;
        int r = map_view(PROT_READ, &m, &ml, &base);

        if (r < 0) {
                printf("error %s\n", ename(-r));
                return 1;
        }
        if (n > len)
                n = len;
        fwrite(base, 1, n, stdout);
        munmap(m, ml);
        return 0;
}

static int probe_write(const char *text)
{
        size_t n = strlen(text);
        void *m;
        size_t ml;
        char *base;
        int r = map_view(PROT_READ | PROT_WRITE, &m, &ml, &base);

        if (r < 0) {
                printf("error %s\n", ename(-r));
                return 1;
        }
        if (n > len)
                n = len;
        memcpy(base, text, n);
        munmap(m, ml);
        return 0;
}

/* ---------------------------------------------------------------- hold */

/*
 * Commands (one per line) and replies:
 *   write OFF TEXT   -> ok                  (through the writable mapping)
 *   read OFF N       -> the N bytes
 *   pin | unpin      -> was-purged, not-purged | ok   (the whole region)
 *   status           -> pinned | unpinned
 *   stats            -> pinned=N unpinned=N purged=N shared=S
 *   share NAME       -> ok                  (to the broker at $ASHMEM_SOCKET)
 *   hello            -> ok pid=N            (on a connection kept open)
 *   quit
 * Any failure is "error ERRNO".
 */
static int hold(void)
{
        char line[512];
        ashmem_broker *b = NULL;
        void *m;
        size_t ml;
        char *base;
        int r = map_view(PROT_READ | PROT_WRITE, &m, &ml, &base);

        if (r < 0)
                die("mmap: %s", strerror(-r));
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* a status call finds the region's pin state now (from the broker
         * when it did not come along), while a broker still answers */
        r = ashmem_pin_status(fd, 0, 0);
        if (r < 0)
                die("pin status: %s", strerror(-r));
        printf("holding %zu bytes\n", len);
        while (fgets(line, sizeof(line), stdin)) {
                char *cmd = strtok(line, " \n"), *a = strtok(NULL, " \n"),
                     *c = strtok(NULL, "\n");
                size_t o;

                if (!cmd)
                        continue;
                if (!strcmp(cmd, "write") && a && c) {
                        o = strtoull(a, NULL, 10);
                        if (o > len || strlen(c) > len - o) {
                                puts("error EINVAL");
                                continue;
                        }
                        memcpy(base + o, c, strlen(c));
                        puts("ok");
                } else if (!strcmp(cmd, "read") && a && c) {
                        size_t n = strtoull(c, NULL, 10);
                        o = strtoull(a, NULL, 10);
                        if (o > len || n > len - o) {
                                puts("error EINVAL");
                                continue;
                        }
                        fwrite(base + o, 1, n, stdout);
                        putchar('\n');
                } else if (!strcmp(cmd, "pin")) {
                        r = ashmem_pin_region(fd, 0, 0);
                        if (r < 0)
                                printf("error %s\n", ename(errno));
                        else
                                puts(r == ASHMEM_WAS_PURGED ? "was-purged" : "not-purged");
                } else if (!strcmp(cmd, "unpin")) {
                        r = ashmem_unpin_region(fd, 0, 0);
                        if (r < 0)
                                printf("error %s\n", ename(errno));
                        else
                                puts("ok");
                } else if (!strcmp(cmd, "status")) {
                        r = ashmem_pin_status(fd, 0, 0);
                        if (r < 0)
                                printf("error %s\n", ename(-r));
                        else
                                puts(r == ASHMEM_IS_PINNED ? "pinned" : "unpinned");
                } else if (!strcmp(cmd, "stats")) {
                        ashmem_stats st;
                        r = ashmem_get_stats(fd, &st);
                        if (r < 0)
                                printf("error %s\n", ename(-r));
                        else
                                printf("pinned=%zu unpinned=%zu purged=%zu shared=%d\n",
                                       st.pinned, st.unpinned, st.purged, st.shared_state);
                } else if (!strcmp(cmd, "share") && a) {
                        ashmem_broker *s;
                        r = ashmem_broker_connect(NULL, &s);
                        if (r == 0) {
                                r = ashmem_broker_share(s, fd, a, ASHMEM_BROKER_DEFAULT, 0, NULL);
                                ashmem_broker_close(s);
                        }
                        if (r < 0)
                                printf("error %s\n", ename(-r));
                        else
                                puts("ok");
                } else if (!strcmp(cmd, "hello")) {
                        ashmem_broker_server sv;
                        r = b ? 0 : ashmem_broker_connect(NULL, &b);
                        if (r == 0)
                                r = ashmem_broker_hello(b, &sv);
                        if (r < 0)
                                printf("error %s\n", ename(-r));
                        else
                                printf("ok pid=%d\n", (int)sv.pid);
                } else if (!strcmp(cmd, "quit")) {
                        break;
                } else {
                        puts("error EINVAL");
                }
        }
        ashmem_broker_close(b);
        munmap(m, ml);
        return 0;
}

/* ---------------------------------------------------------------- sockets */

static int sock_connect(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int s;

        if (strlen(path) >= sizeof(a.sun_path))
                die("%s: path too long", path);
        strcpy(a.sun_path, path);
        s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        while (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int e = errno;
                if (e == EINTR)
                        continue;
                close(s);
                return -e;
        }
        return s;
}

/* Wait until stdin reaches its end (the test closes it, or kills us). */
static void wait_stdin(void)
{
        char buf[256];
        ssize_t n;

        while ((n = read(0, buf, sizeof(buf))) != 0)
                if (n < 0 && errno != EINTR)
                        break;
}

static int probe_connect(const char *path, const char *text)
{
        int s = sock_connect(path);

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (s < 0) {
                printf("error %s\n", ename(-s));
                return 1;
        }
        if (text) {
                char reply[65537];
                ssize_t n;
                while ((n = send(s, text, strlen(text), MSG_NOSIGNAL)) < 0 && errno == EINTR)
                        ;
                if (n < 0) {
                        printf("error %s\n", ename(errno));
                        close(s);
                        return 1;
                }
                while ((n = recv(s, reply, sizeof(reply) - 1, 0)) < 0 && errno == EINTR)
                        ;
                if (n < 0) {
                        printf("error %s\n", ename(errno));
                        close(s);
                        return 1;
                }
                reply[n] = 0;
                printf("%s\n", reply);
        }
        puts("ready");
        wait_stdin();
        close(s);
        return 0;
}

static int probe_connections(const char *path, long want)
{
        int *s = calloc((size_t)want, sizeof(int)), n = 0, err = 0;

        if (!s)
                die("out of memory");
        setvbuf(stdout, NULL, _IOLBF, 0);
        while (n < want) {
                int c = sock_connect(path);
                if (c < 0) {
                        err = -c;
                        break;
                }
                s[n++] = c;
        }
        printf("%d connections%s%s\n", n, err ? ", then " : "", err ? ename(err) : "");
        puts("ready");
        wait_stdin();
        for (int i = 0; i < n; i++)
                close(s[i]);
        free(s);
        return 0;
}

int main(int argc, char **argv)
{
        const char *mode = argc > 1 ? argv[1] : "";

        if (!strcmp(mode, "connect") && (argc == 3 || argc == 4))
                return probe_connect(argv[2], argc == 4 ? argv[3] : NULL);
        if (!strcmp(mode, "connections") && argc == 4)
                return probe_connections(argv[2], atol(argv[3]));
        region_from_env();
        if (!strcmp(mode, "ro") && argc == 2)
                return probe_ro();
        if (!strcmp(mode, "read") && argc == 3)
                return probe_read((size_t)strtoull(argv[2], NULL, 10));
        if (!strcmp(mode, "write") && argc == 3)
                return probe_write(argv[2]);
        if (!strcmp(mode, "hold") && argc == 2)
                return hold();
        fprintf(stderr, "usage: probe ro | read N | write TEXT | hold | "
                "connect SOCKET [TEXT] | connections SOCKET N\n");
        return 2;
}
