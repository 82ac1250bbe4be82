/* SPDX-License-Identifier: MIT */
/*
 * load: many concurrent clients against one broker for a bounded time
 * (`make load`). Each client is a process of its own with its own
 * connection; in a loop it creates a region through the broker, attaches
 * it again by name, attaches a neighbour's region read-only, writes,
 * unpins, has the broker purge, pins (and checks what pin says against
 * what the pages hold), now and then shares a region of its own making,
 * reads info and list, reconnects, and unshares what it made.
 *
 * At the end it reports the operations done and every error by operation
 * and errno (none is expected), and checks that the broker's descriptor
 * count is back to exactly its starting value and its resident memory
 * (VmRSS) back within a small tolerance (see RSS_SLACK_KB). It starts its
 * own broker (`ashmemctl broker run`) on a socket in a fresh temporary
 * directory and stops it with SIGTERM at the end (it must exit 0 and
 * remove its socket).
 *
 *   load --ashmemctl PATH [--clients N] [--seconds S] [--rss-slack KB|none]
 *        [--hostile]
 *
 * --hostile (as root) runs the clients as three users against a broker
 * on a 0666 socket, and every third client, all of the third user's,
 * misbehaves instead: it floods the broker with connections it holds
 * (beyond its per-user limit) and shares hostile descriptors (unsealed
 * memfds, a memfd of mode 0777, an oversized control memfd, /dev/null).
 * The other two users' requests must all keep succeeding, the broker must
 * refuse every hostile share it must refuse (and tighten the 0777 memfd),
 * and its descriptors must come back to where they were.
 *
 * --rss-slack none skips the memory check: a broker built with the
 * sanitizers keeps freed memory in quarantine and grows shadow memory, so
 * its VmRSS says nothing about leaks (LeakSanitizer checks those when it
 * exits, and a report makes its exit status non-zero).
 *
 * Exit status: 0 if every check passed, 1 otherwise, 2 for a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/broker.h"

/* Resident memory the broker may keep after the load over what it had
 * before it (kB). Freed memory is not all given back: glibc keeps freed
 * heap chunks below the top of the heap and the purge thread's arena,
 * and the broker keeps the capacity its name table grew to. A leak of a
 * few hundred bytes per operation would exceed this by orders of
 * magnitude after the hundreds of thousands of operations of a run. */
#define RSS_SLACK_KB 1024

#define MAX_CLIENTS 1024
#define SETTLE_MS 10000         /* for the broker to close what the clients left */

enum op {
        OP_CONNECT, OP_CREATE, OP_ATTACH, OP_ATTACH_RO, OP_MAP, OP_UNPIN,
        OP_PURGE, OP_PIN, OP_VERIFY, OP_INFO, OP_LIST, OP_SHARE, OP_UNSHARE,
        OP_STATUS, N_OPS
};

static const char *const op_names[N_OPS] = {
        "connect", "create", "attach", "attach-ro", "map", "unpin", "purge",
        "pin", "check", "info", "list", "share", "unshare", "status",
};

#define N_ERRNO 160

/* Counters shared by every client (an anonymous shared mapping). */
struct tally {
        unsigned long long ops[N_OPS];
        unsigned long long errors[N_OPS][N_ERRNO];
        unsigned long long cycles;
        unsigned done;                  /* clients out of their loop */
        unsigned long long hostile_tries;   /* hostile requests made */
        unsigned long long hostile_wrong;   /* ... the broker took wrongly */
        unsigned long long hostile_conns;   /* flooding connections opened */
};

static struct tally *tally;
static char sock[PATH_MAX];
static int clients = 64, seconds = 30, hostile;
static const uid_t users[3] = { 2501, 2502, 2503 };   /* --hostile: the third misbehaves */

/* --hostile: is client k one of the misbehaving user's? */
static int is_hostile(int k)
{
        return hostile && k % 3 == 2;
}

/* The well-behaved clients, and the neighbour whose region k attaches. */
static int good_clients(void)
{
        int n = 0;
        for (int k = 0; k < clients; k++)
                n += !is_hostile(k);
        return n;
}

static int neighbour(int k)
{
        int j = (k + 1) % clients;
        while (is_hostile(j))
                j = (j + 1) % clients;
        return j;
}
static long rss_slack = RSS_SLACK_KB;     /* -1: not checked */

static long long mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static size_t page(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

/* Count an operation; r < 0 is an error (-errno). Returns r. */
static int count(enum op op, int r)
{
        __atomic_fetch_add(&tally->ops[op], 1, __ATOMIC_RELAXED);
        if (r < 0) {
                int e = -r < N_ERRNO ? -r : 0;
                __atomic_fetch_add(&tally->errors[op][e], 1, __ATOMIC_RELAXED);
        }
        return r;
}

static uint64_t rnd(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

/* ---------------------------------------------------------------- a client */

static ashmem_broker *connect_broker(void)
{
        ashmem_broker *b = NULL;
        int r = count(OP_CONNECT, ashmem_broker_connect(sock, &b));
        return r < 0 ? NULL : b;
}

/* The bytes a client's long-lived region starts with. */
static void stamp(char *buf, size_t len, int k)
{
        snprintf(buf, len, "load client %d", k);
}

/* One cycle on a region of its own. Returns 0, or -1 when the connection
 * is unusable. */
static int cycle(ashmem_broker *b, int k, unsigned long long i, uint64_t *seed)
{
        size_t P = page(), pages = 1 + rnd(seed) % 16, size = pages * P - rnd(seed) % 100;
        size_t first = rnd(seed) % pages, n = 1 + rnd(seed) % (pages - first);
        char name[64], other[64], want[64], got[64];
        int fd = -1, fd2 = -1, ro = -1, r;
        unsigned char *m = NULL;
        unsigned long long purged = 0;
        ashmem_region_info info;
        struct stat s1, s2;

        snprintf(name, sizeof(name), "load-%d-%llu", k, i);
        r = count(OP_CREATE, ashmem_broker_create(b, name, size, ASHMEM_BROKER_DEFAULT,
                                                  0600, &fd, NULL));
        if (r < 0)
                return r == -ECONNRESET || r == -EPIPE ? -1 : 0;
        m = mmap(NULL, pages * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (count(OP_MAP, m == MAP_FAILED ? -errno : 0) < 0) {
                m = NULL;
                goto out;
        }
        memset(m, 'a' + (int)(i % 26), size);

        /* the same region again, by name */
        r = count(OP_ATTACH, ashmem_broker_attach(b, name, 1, &fd2, NULL, NULL));
        if (r == 0 && count(OP_VERIFY, fstat(fd, &s1) == 0 && fstat(fd2, &s2) == 0 &&
                            s1.st_ino == s2.st_ino ? 0 : -EBADMSG) < 0)
                goto out;

        /* a neighbour's, read-only: a read-only descriptor with its stamp */
        snprintf(other, sizeof(other), "load-%d", neighbour(k));
        r = count(OP_ATTACH_RO, ashmem_broker_attach(b, other, 0, &ro, NULL, NULL));
        if (r == 0) {
                stamp(want, sizeof(want), neighbour(k));
                memset(got, 0, sizeof(got));
                count(OP_VERIFY, (fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY &&
                      pread(ro, got, strlen(want), 0) == (ssize_t)strlen(want) &&
                      memcmp(got, want, strlen(want)) == 0 ? 0 : -EBADMSG);
                count(OP_STATUS, ashmem_pin_status(ro, 0, 0) == ASHMEM_IS_PINNED ? 0 : -EBADMSG);
        }

        /* unpin a run, have the broker purge it, pin it back */
        r = count(OP_UNPIN, ashmem_unpin_region(fd2 >= 0 ? fd2 : fd, first * P, n * P) < 0 ? -errno : 0);
        if (r == 0) {
                r = count(OP_PURGE, ashmem_broker_purge(b, name, &purged));
                /* the broker's own purger may have taken some first */
                if (r == 0)
                        count(OP_VERIFY, purged <= n ? 0 : -EBADMSG);
                r = ashmem_pin_region(fd, first * P, n * P);
                count(OP_PIN, r < 0 ? -errno : 0);
                count(OP_VERIFY, r == ASHMEM_WAS_PURGED ? 0 : -EBADMSG);
                /* purged pages read zeros, the others kept their bytes */
                for (size_t p = 0; p < pages; p++) {
                        size_t end = p == pages - 1 ? size - p * P : P;
                        int inside = p >= first && p < first + n, bad = 0;
                        for (size_t x = 0; x < end && !bad; x += 61)
                                bad = m[p * P + x] != (inside ? 0 : 'a' + (int)(i % 26));
                        if (bad) {
                                count(OP_VERIFY, -EBADMSG);
                                break;
                        }
                }
        }
        if (i % 4 == 0) {
                r = count(OP_INFO, ashmem_broker_info(b, name, &info));
                if (r == 0)
                        count(OP_VERIFY, info.size == size && info.pinned == pages &&
                              info.unpinned == 0 && info.purged == 0 ? 0 : -EBADMSG);
        }
        if (i % 16 == 0) {
                ashmem_region_info *all = NULL;
                size_t nall = 0;
                r = count(OP_LIST, ashmem_broker_list(b, &all, &nall));
                if (r == 0)     /* every client's long-lived region, at least */
                        count(OP_VERIFY, nall >= (size_t)good_clients() ? 0 : -EBADMSG);
                free(all);
        }
        if (i % 8 == 0) {
                /* a region of this process's making, shared and taken back */
                int own = ashmem_create_region("load-own", P);
                char sname[64];
                snprintf(sname, sizeof(sname), "load-%d-%llu-shared", k, i);
                if (count(OP_CREATE, own < 0 ? -errno : 0) == 0) {
                        if (count(OP_SHARE, ashmem_broker_share(b, own, sname, 0600, 0, NULL)) == 0)
                                count(OP_UNSHARE, ashmem_broker_unshare(b, sname));
                        close(own);
                }
        }
        count(OP_UNSHARE, ashmem_broker_unshare(b, name));
out:
        if (m)
                munmap(m, pages * P);
        if (ro >= 0)
                close(ro);
        if (fd2 >= 0)
                close(fd2);
        close(fd);
        return 0;
}

/* A memfd of one page: sealed or not, of mode mode. */
static int hostile_memfd(int seal, unsigned mode)
{
        int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd >= 0 && (ftruncate(fd, (off_t)page()) < 0 || fchmod(fd, mode) < 0 ||
                        (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0))) {
                close(fd);
                fd = -1;
        }
        return fd;
}

/* One hostile share: fds (1 or 2) as a share named name; must_refuse:
 * the broker must say no. Counts a wrong answer. */
static void hostile_share(ashmem_broker *b, const int *fds, int nfds, const char *name,
                          int must_refuse)
{
        char req[160], *reply = NULL;
        int rfds[2], nr = 0, r;

        snprintf(req, sizeof(req), "{\"op\":\"share\",\"name\":\"%s\",\"mode\":\"0666\"}", name);
        r = ashmem_broker_call(b, req, fds, nfds, &reply, rfds, &nr);
        __atomic_fetch_add(&tally->hostile_tries, 1, __ATOMIC_RELAXED);
        for (int i = 0; i < nr; i++)
                close(rfds[i]);
        free(reply);
        if (r == 0) {
                struct stat st;
                /* taken: it must be sealed, its mode no longer writable
                 * by others; then let it go */
                if (must_refuse || fstat(fds[0], &st) < 0 || (st.st_mode & 022))
                        __atomic_fetch_add(&tally->hostile_wrong, 1, __ATOMIC_RELAXED);
                (void)ashmem_broker_unshare(b, name);
        }
}

/* The misbehaving user's client: flood and share garbage until the end. */
static void __attribute__((noreturn)) hostile_client(int k, int go, long long deadline)
{
        enum { FLOOD = 64 };
        int held[FLOOD], nheld = 0, fds[2];
        unsigned long long i = 0;
        char name[64], c;
        ashmem_broker *b = NULL;

        while (read(go, &c, 1) < 0 && errno == EINTR)
                ;
        close(go);
        while (mono_ms() < deadline) {
                /* connections it holds, as many as it can, raw */
                while (nheld < FLOOD) {
                        ashmem_broker *x;
                        if (ashmem_broker_connect(sock, &x) < 0)
                                break;
                        held[nheld++] = dup(ashmem_broker_fd(x));
                        ashmem_broker_close(x);
                        __atomic_fetch_add(&tally->hostile_conns, 1, __ATOMIC_RELAXED);
                }
                if (!b && ashmem_broker_connect(sock, &b) < 0)
                        b = NULL;
                if (b) {
                        snprintf(name, sizeof(name), "hostile-%d-%llu", k, i);
                        if ((fds[0] = hostile_memfd(0, 0777)) >= 0) {   /* plain */
                                hostile_share(b, fds, 1, name, 1);
                                close(fds[0]);
                        }
                        if ((fds[0] = hostile_memfd(0, 0600)) >= 0) {   /* unsealed */
                                hostile_share(b, fds, 1, name, 1);
                                close(fds[0]);
                        }
                        if ((fds[0] = hostile_memfd(1, 0777)) >= 0) {   /* open */
                                hostile_share(b, fds, 1, name, 0);
                                close(fds[0]);
                        }
                        if ((fds[0] = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
                                hostile_share(b, fds, 1, name, 1);
                                close(fds[0]);
                        }
                        fds[0] = ashmem_create_region("hostile", page());
                        fds[1] = hostile_memfd(1, 0600);
                        if (fds[0] >= 0 && fds[1] >= 0 && ftruncate(fds[1], 1 << 30) == 0)
                                hostile_share(b, fds, 2, name, 1);      /* big control */
                        if (fds[0] >= 0)
                                close(fds[0]);
                        if (fds[1] >= 0)
                                close(fds[1]);
                }
                /* let some go, now and then all, and the connection too */
                if (i % 4 == 3) {
                        for (int j = 0; j < nheld; j++)
                                close(held[j]);
                        nheld = 0;
                        b = ashmem_broker_close(b);
                }
                i++;
        }
        for (int j = 0; j < nheld; j++)
                close(held[j]);
        ashmem_broker_close(b);
        __atomic_fetch_add(&tally->done, 1, __ATOMIC_SEQ_CST);
        _exit(0);
}

static void __attribute__((noreturn)) client(int k, int go, long long deadline)
{
        uint64_t seed = ((uint64_t)getpid() << 20) ^ (uint64_t)mono_ms() ^ (uint64_t)k;
        ashmem_broker *b = connect_broker();
        char name[64], text[64], c;
        unsigned long long i = 0;
        int fd = -1;
        ssize_t n;

        seed |= 1;
        /* its long-lived region, which the neighbour attaches read-only */
        snprintf(name, sizeof(name), "load-%d", k);
        if (b && count(OP_CREATE, ashmem_broker_create(b, name, page(), ASHMEM_BROKER_DEFAULT,
                                                       0644, &fd, NULL)) == 0) {
                stamp(text, sizeof(text), k);
                count(OP_MAP, pwrite(fd, text, strlen(text), 0) == (ssize_t)strlen(text) ? 0 : -errno);
        }
        /* everyone's region exists before anyone looks for it */
        while ((n = read(go, &c, 1)) < 0 && errno == EINTR)
                ;
        close(go);
        while (b && mono_ms() < deadline) {
                if (cycle(b, k, i, &seed) < 0 || (i + 1) % 32 == 0) {
                        /* a new connection now and then */
                        ashmem_broker_close(b);
                        b = connect_broker();
                }
                i++;
                __atomic_fetch_add(&tally->cycles, 1, __ATOMIC_RELAXED);
        }
        /* its region goes once no neighbour may still look for it */
        __atomic_fetch_add(&tally->done, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&tally->done, __ATOMIC_SEQ_CST) < (unsigned)clients)
                nap(5);
        if (fd >= 0) {
                if (!b)
                        b = connect_broker();
                if (b)
                        count(OP_UNSHARE, ashmem_broker_unshare(b, name));
                close(fd);
        }
        ashmem_broker_close(b);
        _exit(0);
}

/* ---------------------------------------------------------------- the broker */

static char dir[64];
static pid_t broker;

static int fd_count(pid_t pid)
{
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static long rss_kb(pid_t pid)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

static int start_broker(const char *prog)
{
        char log[128];
        long long deadline;
        pid_t parent = getpid();

        snprintf(dir, sizeof(dir), "/tmp/ashmem-load-XXXXXX");
        if (!mkdtemp(dir)) {
                perror("load: mkdtemp");
                return -1;
        }
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        snprintf(log, sizeof(log), "%s/broker.log", dir);
        if (hostile && chmod(dir, 0755) < 0) {  /* every user reaches it */
                perror("load: chmod");
                return -1;
        }
        broker = fork();
        if (broker < 0) {
                perror("load: fork");
                return -1;
        }
        if (broker == 0) {
                int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (lf < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(lf, 2) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                close_range(3, ~0U, 0);
                if (hostile)
                        execl(prog, "ashmemctl", "--socket", sock, "broker", "run",
                              "--socket-mode", "0666", (char *)NULL);
                else
                        execl(prog, "ashmemctl", "--socket", sock, "broker", "run", (char *)NULL);
                _exit(127);
        }
        deadline = mono_ms() + 10000;
        for (;;) {
                ashmem_broker *b;
                if (ashmem_broker_connect(sock, &b) == 0) {
                        ashmem_broker_close(b);
                        return 0;
                }
                if (mono_ms() > deadline || waitpid(broker, NULL, WNOHANG) == broker) {
                        fprintf(stderr, "load: the broker did not start (see %s)\n", log);
                        return -1;
                }
                nap(20);
        }
}

/* SIGTERM: it must exit 0 and take its socket along. */
static int stop_broker(void)
{
        struct stat st;
        int status, ok;

        if (broker <= 0)
                return 0;
        kill(broker, SIGTERM);
        while (waitpid(broker, &status, 0) < 0 && errno == EINTR)
                ;
        broker = 0;
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && lstat(sock, &st) < 0;
        if (!ok)
                fprintf(stderr, "load: the broker did not stop cleanly (status 0x%x%s)\n",
                        status, lstat(sock, &st) == 0 ? ", socket left" : "");
        return ok ? 0 : -1;
}

static void remove_dir(void)
{
        char path[128];
        static const char *const files[] = { "broker.sock", "broker.sock.lock",
                                             "broker.sock.start", "broker.log", NULL };

        if (!dir[0])
                return;
        for (int i = 0; files[i]; i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                unlink(path);
        }
        rmdir(dir);
}

/* A region created and removed by user u (--hostile: the clients' users
 * have no account, so the broker's first lookup of their names goes past
 * /etc/passwd and /etc/group to the other NSS modules, which it loads
 * then, once: a one-time cost, not growth). 0 or -1. */
static int warm_up_as(uid_t u)
{
        pid_t pid = fork();
        int st;

        if (pid < 0)
                return -1;
        if (pid == 0) {
                ashmem_broker *b;
                int fd, ok;
                if (setgroups(0, NULL) < 0 || setresgid(u, u, u) < 0 || setresuid(u, u, u) < 0 ||
                    ashmem_broker_connect(sock, &b) < 0)
                        _exit(1);
                ok = ashmem_broker_create(b, "load-warm", page(), ASHMEM_BROKER_DEFAULT, 0600,
                                          &fd, NULL) == 0 &&
                     ashmem_broker_unshare(b, "load-warm") == 0;
                _exit(ok ? 0 : 1);
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* One cycle of every kind before the figures are taken, so that one-time
 * allocations (buffers, the user and group name lookups) are not counted
 * as growth. */
static int warm_up(void)
{
        ashmem_broker *b;
        ashmem_region_info *all = NULL;
        size_t n;
        uint64_t seed = 1;
        int r, fd;

        if (hostile && warm_up_as(users[0]) < 0)
                return -1;
        if (ashmem_broker_connect(sock, &b) < 0)
                return -1;
        clients = 1;
        r = ashmem_broker_create(b, "load-0", page(), ASHMEM_BROKER_DEFAULT, 0644, &fd, NULL);
        if (r == 0) {
                char text[64];
                stamp(text, sizeof(text), 0);
                r = pwrite(fd, text, strlen(text), 0) == (ssize_t)strlen(text) ? 0 : -EIO;
                for (unsigned long long i = 0; r == 0 && i < 32; i++)
                        r = cycle(b, 0, i, &seed);
                if (r == 0)
                        r = ashmem_broker_list(b, &all, &n);
                free(all);
                if (ashmem_broker_unshare(b, "load-0") < 0)
                        r = -1;
                close(fd);
        }
        ashmem_broker_close(b);
        return r;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
        fprintf(stderr, "usage: load --ashmemctl PATH [--clients N] [--seconds S] [--rss-slack KB|none] [--hostile]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "ashmemctl", required_argument, NULL, 'a' },
                { "clients", required_argument, NULL, 'c' },
                { "seconds", required_argument, NULL, 's' },
                { "rss-slack", required_argument, NULL, 'r' },
                { "hostile", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        const char *prog = NULL;
        int fds0, fds1, fds_peak, nclients, c, status, failed = 0, hung = 0, gopipe[2];
        long rss0, rss1, rss_peak;
        long long start, deadline, settle, end = 0;
        unsigned long long total = 0, errors = 0;
        ashmem_broker_counters bc = { 0 };
        pid_t pids[MAX_CLIENTS];

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'a': prog = optarg; break;
                case 'c': clients = atoi(optarg); break;
                case 's': seconds = atoi(optarg); break;
                case 'r': rss_slack = strcmp(optarg, "none") ? atol(optarg) : -1; break;
                case 'h': hostile = 1; break;
                default: usage();
                }
        }
        if (!prog || optind != argc || clients < 2 || clients > MAX_CLIENTS || seconds < 1 ||
            rss_slack < -1 || (hostile && clients < 3))
                usage();
        if (hostile && geteuid() != 0) {
                fprintf(stderr, "load: --hostile runs clients as other users: it needs root\n");
                return 2;
        }
        nclients = clients;
        setvbuf(stdout, NULL, _IOLBF, 0);
        tally = mmap(NULL, sizeof(*tally), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (tally == MAP_FAILED) {
                perror("load: mmap");
                return 1;
        }
        if (start_broker(prog) < 0) {
                stop_broker();
                remove_dir();
                return 1;
        }
        if (warm_up() < 0) {
                fprintf(stderr, "load: the warm-up failed\n");
                stop_broker();
                remove_dir();
                return 1;
        }
        clients = nclients;
        memset(tally, 0, sizeof(*tally));
        nap(1500);      /* a tick of the broker: it lets go of what the warm-up used */
        fds0 = fd_count(broker);
        rss0 = rss_kb(broker);
        fds_peak = fds0;
        rss_peak = rss0;
        printf("load: %d clients for %d s against broker pid %d (%d descriptors, VmRSS %ld kB)\n",
               clients, seconds, (int)broker, fds0, rss0);

        if (pipe2(gopipe, O_CLOEXEC) < 0) {
                perror("load: pipe");
                return 1;
        }
        start = mono_ms();
        deadline = start + seconds * 1000LL;
        for (int k = 0; k < clients; k++) {
                pids[k] = fork();
                if (pids[k] < 0) {
                        perror("load: fork");
                        return 1;
                }
                if (pids[k] == 0) {
                        close(gopipe[1]);
                        if (hostile) {
                                uid_t u = users[k % 3];
                                if (setgroups(0, NULL) < 0 || setresgid(u, u, u) < 0 ||
                                    setresuid(u, u, u) < 0)
                                        _exit(3);
                        }
                        if (is_hostile(k))
                                hostile_client(k, gopipe[0], deadline);
                        client(k, gopipe[0], deadline);
                }
        }
        close(gopipe[0]);
        /* everyone has made its region when the broker holds them all */
        for (;;) {
                ashmem_broker *b;
                ashmem_broker_counters now;
                if (ashmem_broker_connect(sock, &b) == 0) {
                        int r = ashmem_broker_stats(b, &now);
                        ashmem_broker_close(b);
                        if (r == 0 && now.regions >= (unsigned long long)good_clients())
                                break;
                }
                if (mono_ms() > deadline) {
                        fprintf(stderr, "load: the clients did not all create their regions\n");
                        failed = 1;
                        break;
                }
                nap(10);
        }
        close(gopipe[1]);       /* go */

        /* sample the broker while they work; wait for them */
        for (int left = clients; left > 0;) {
                pid_t p = waitpid(-1, &status, WNOHANG);
                if (p > 0) {
                        if (p == broker) {
                                fprintf(stderr, "load: the broker died (status 0x%x)\n", status);
                                broker = 0;
                                failed = 1;
                                continue;
                        }
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                fprintf(stderr, "load: client pid %d failed (status 0x%x)\n",
                                        (int)p, status);
                                failed = 1;
                        }
                        if (--left == 0)
                                end = mono_ms();
                        continue;
                }
                if (broker > 0) {
                        int f = fd_count(broker);
                        long r = rss_kb(broker);
                        if (f > fds_peak)
                                fds_peak = f;
                        if (r > rss_peak)
                                rss_peak = r;
                }
                if (mono_ms() > deadline + 60000 && !hung) {
                        /* a client stuck for a minute past the end: a hang */
                        fprintf(stderr, "load: %d clients still running a minute after the end\n", left);
                        for (int k = 0; k < clients; k++)
                                kill(pids[k], SIGKILL);
                        hung = failed = 1;
                }
                nap(50);
        }

        /* the broker closes what the clients left, then lets go */
        settle = mono_ms() + SETTLE_MS;
        fds1 = fd_count(broker);
        while (broker > 0 && fds1 != fds0 && mono_ms() < settle) {
                nap(50);
                fds1 = fd_count(broker);
        }
        nap(1500);      /* a tick: the library's control mappings are collected */
        fds1 = fd_count(broker);
        rss1 = rss_kb(broker);
        {
                ashmem_broker *b;
                if (ashmem_broker_connect(sock, &b) == 0) {
                        if (ashmem_broker_stats(b, &bc) < 0)
                                failed = 1;
                        ashmem_broker_close(b);
                } else {
                        failed = 1;
                }
        }

        printf("load: %llu cycles in %.1f s\n", tally->cycles, ((end ? end : mono_ms()) - start) / 1000.0);
        for (int o = 0; o < N_OPS; o++) {
                unsigned long long e = 0;
                for (int k = 0; k < N_ERRNO; k++)
                        e += tally->errors[o][k];
                total += tally->ops[o];
                errors += e;
                printf("  %-10s %10llu operations, %llu errors\n", op_names[o], tally->ops[o], e);
                for (int k = 0; k < N_ERRNO; k++)
                        if (tally->errors[o][k])
                                printf("      %-12s %llu\n", k ? strerrorname_np(k) : "(errno>=160)",
                                       tally->errors[o][k]);
        }
        if (hostile)
                printf("load: the misbehaving user: %llu hostile shares (%llu taken wrongly), "
                       "%llu flooding connections\n", tally->hostile_tries, tally->hostile_wrong,
                       tally->hostile_conns);
        printf("load: %llu operations, %llu errors; the broker served %llu requests "
               "(%llu failed), dropped %llu connections\n",
               total, errors, bc.requests, bc.errors, bc.dropped);
        printf("load: broker descriptors %d at the start, %d at the peak, %d at the end\n",
               fds0, fds_peak, fds1);
        printf("load: broker VmRSS %ld kB at the start, %ld kB at the peak, %ld kB at the end ",
               rss0, rss_peak, rss1);
        if (rss_slack >= 0)
                printf("(tolerance +%ld kB)\n", rss_slack);
        else
                printf("(not checked)\n");
        if (errors) {
                fprintf(stderr, "load: FAIL: %llu unexpected errors\n", errors);
                failed = 1;
        }
        if (hostile && (tally->hostile_wrong || !tally->hostile_tries)) {
                fprintf(stderr, "load: FAIL: the broker took %llu of %llu hostile shares wrongly\n",
                        tally->hostile_wrong, tally->hostile_tries);
                failed = 1;
        }
        /* the misbehaving user's refusals and dropped connections are
         * expected; nothing may be left */
        if (bc.regions || (!hostile && (bc.errors || bc.dropped))) {
                fprintf(stderr, "load: FAIL: the broker counted %llu failed requests and "
                        "%llu dropped connections, and holds %llu regions\n",
                        bc.errors, bc.dropped, bc.regions);
                failed = 1;
        }
        if (fds1 != fds0) {
                fprintf(stderr, "load: FAIL: the broker has %d descriptors, %d before\n", fds1, fds0);
                failed = 1;
        }
        if (rss_slack >= 0 && (rss1 < 0 || rss1 > rss0 + rss_slack)) {
                fprintf(stderr, "load: FAIL: the broker's VmRSS grew from %ld to %ld kB\n", rss0, rss1);
                failed = 1;
        }
        if (stop_broker() < 0)
                failed = 1;
        remove_dir();
        printf("load: %s\n", failed ? "FAILED" : "passed");
        return failed ? 1 : 0;
}
