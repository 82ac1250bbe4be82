/* SPDX-License-Identifier: MIT */
/*
 * Purge under real memory pressure: the time from the start of the
 * pressure until every unpinned page the broker holds is reclaimed, for 1
 * region of 1 GiB and for 64 regions of 16 MiB (--quick: 64 MiB and 4 of
 * 16 MiB). Target (the broker service's): the 64 regions in at most 5 s.
 *
 * A broker with its default purger (`ashmemctl broker run`: a PSI trigger
 * on /proc/pressure/memory) runs outside the pressure. A filler process,
 * in a memory cgroup of this program's own (bench/support/cgroup.h),
 * creates the regions through the broker, writes every page (so they are
 * charged to the cgroup) and unpins them all. The cgroup's limit is then
 * set to what it holds plus 24 MiB, and two thrashers in the same cgroup
 * read a 256 MiB file on disk over and over: their page cache must be
 * reclaimed again and again inside the cgroup, which stalls them (memory
 * pressure, seen by PSI), while the machine as a whole keeps its memory.
 * The clock starts when the thrashers start; this program (outside the cgroup) holds its own descriptors of
 * the regions and reads their st_blocks every 10 ms until all are zero.
 * A region not reclaimed within the time limit is reported as such (ours
 * is then the limit, and the target is missed).
 *
 * The unpinned pages cannot be reclaimed by the kernel itself (shared
 * memory without swap): only a purge frees them, so what is measured is
 * the broker noticing the pressure and purging.
 *
 * Safety: the thrasher only reads (page cache is always reclaimable), the
 * filler only holds what it wrote before the limit was set; both die with
 * this program (PR_SET_PDEATHSIG), and at exit, on SIGINT and SIGTERM the
 * cgroup is emptied (SIGKILL) and removed, the broker stopped and the file
 * removed. Without a writable memory cgroup, or without PSI, or when the
 * only place for the file is in memory (tmpfs), the rows are printed as
 * not run, with the reason.
 *
 * Each figure is the median over the rounds (the two cases alternate), with
 * the fastest and slowest round as the spread.
 *
 * Usage: bench_pressure [--json] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"
#include "support/cgroup.h"

#define MAX_ROUNDS 8
#define MAX_REGIONS 64
#define TMPFS_MAGIC 0x01021994
#define ROOM ((size_t)24 << 20)         /* the cgroup's room above what it holds */
#define THRASH ((size_t)256 << 20)      /* the thrashers' file */
#define THRASHERS 2

static char ctl[PATH_MAX], dir[64], sock[96], thrash[96];
static pid_t main_pid, broker_pid, filler_pid, thrasher_pid[THRASHERS];
static struct bench_cgroup cg;

static void reap(pid_t *pid)
{
        int status;

        if (*pid <= 0)
                return;
        kill(*pid, SIGKILL);
        while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
                ;
        *pid = 0;
}

static void stop_broker(void)
{
        char p[128];
        int status;

        if (broker_pid <= 0)
                return;
        kill(broker_pid, SIGTERM);
        while (waitpid(broker_pid, &status, 0) < 0 && errno == EINTR)
                ;
        broker_pid = 0;
        unlink(sock);
        snprintf(p, sizeof(p), "%s.lock", sock);
        unlink(p);
}

static void cleanup(void)
{
        if (getpid() != main_pid)
                return;
        for (int i = 0; i < THRASHERS; i++)
                reap(&thrasher_pid[i]);
        reap(&filler_pid);
        bench_cgroup_remove(&cg);
        stop_broker();
        if (thrash[0])
                unlink(thrash);
        thrash[0] = 0;
        if (dir[0] && rmdir(dir) < 0)
                fprintf(stderr, "bench_pressure: %s: %s\n", dir, strerror(errno));
        dir[0] = 0;
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);        /* runs cleanup() */
}

static void start_broker(void)
{
        pid_t parent = getpid();
        ashmem_broker *b;
        int r;

        broker_pid = fork();
        if (broker_pid < 0)
                bench_die("fork", errno);
        if (broker_pid == 0) {
                int nul = open("/dev/null", O_RDWR);
                if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                close_range(3, ~0U, 0);
                execl(ctl, "ashmemctl", "--socket", sock, "-q", "broker", "run",
                      "--idle-timeout", "0", (char *)NULL);
                _exit(127);
        }
        for (int i = 0; (r = ashmem_broker_connect(sock, &b)) < 0; i++) {
                if (i == 500)
                        bench_die("the broker does not answer", -r);
                bench_nap_ms(10);
        }
        ashmem_broker_close(b);
}

/* The thrasher's file, on disk and out of the page cache. NULL, or why not. */
static const char *make_thrash_file(void)
{
        static char buf[1 << 20];
        struct statfs sf;
        int fd;

        snprintf(thrash, sizeof(thrash), "/var/tmp/ashmem-bench-thrash-%ld", (long)getpid());
        if (statfs("/var/tmp", &sf) < 0 || sf.f_type == TMPFS_MAGIC) {
                snprintf(thrash, sizeof(thrash), "%s/thrash", dir);
                if (statfs(dir, &sf) < 0 || sf.f_type == TMPFS_MAGIC) {
                        thrash[0] = 0;
                        return "no file system on disk for the page-cache thrasher "
                               "(/var/tmp and /tmp are in memory)";
                }
        }
        fd = open(thrash, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                bench_die(thrash, errno);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (char)(i * 7 + 1);
        for (size_t done = 0; done < THRASH; done += sizeof(buf)) {
                ssize_t n = write(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR) {
                        done -= sizeof(buf);
                        continue;
                }
                if (n != (ssize_t)sizeof(buf))
                        bench_die(thrash, n < 0 ? errno : EIO);
        }
        if (fsync(fd) < 0)
                bench_die(thrash, errno);
        if (close(fd) < 0)
                bench_die(thrash, errno);
        return NULL;
}

/* Drop the file's pages from the page cache, so that the thrasher reads
 * (and charges to its cgroup) every page. */
static void uncache(void)
{
        int fd = open(thrash, O_RDONLY | O_CLOEXEC), r;

        if (fd < 0)
                bench_die(thrash, errno);
        if ((r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) != 0)
                bench_die("posix_fadvise", r);
        close(fd);
}

/* The filler: in the cgroup, create the regions, write and unpin them,
 * say so on the pipe, then hold them until killed. */
static void filler(int ready, int count, size_t size, int round)
{
        ashmem_broker *b;
        char c = 'y';

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || bench_cgroup_enter(&cg, 0) < 0)
                _exit(125);
        if (ashmem_broker_connect(sock, &b) < 0)
                _exit(124);
        for (int i = 0; i < count; i++) {
                char name[48];
                int fd;
                void *m;
                snprintf(name, sizeof(name), "pressure-%d-%d", round, i);
                if (ashmem_broker_create(b, name, size, ASHMEM_BROKER_DEFAULT, 0600, &fd,
                                         NULL) < 0)
                        _exit(123);
                m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (m == MAP_FAILED)
                        _exit(122);
                memset(m, 0x5a, size);
                if (munmap(m, size) < 0 || ashmem_unpin_region(fd, 0, 0) < 0)
                        _exit(121);
                close(fd);
        }
        if (write(ready, &c, 1) != 1)
                _exit(120);
        for (;;)
                pause();
}

/* The thrasher: in the cgroup, read the file again and again. */
static void thrasher(void)
{
        static char buf[1 << 16];

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || bench_cgroup_enter(&cg, 0) < 0)
                _exit(125);
        for (;;) {
                int fd = open(thrash, O_RDONLY | O_CLOEXEC);
                ssize_t n;
                if (fd < 0)
                        _exit(124);
                while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
                        ;
                close(fd);
        }
}

static long long blocks_of(const int *fds, int n)
{
        long long sum = 0;

        for (int i = 0; i < n; i++) {
                struct stat st;
                if (fstat(fds[i], &st) < 0)
                        bench_die("fstat", errno);
                sum += st.st_blocks;
        }
        return sum;
}

/* One round of one case: seconds until everything is reclaimed (or the
 * limit), the share left in *left. */
static double one_round(int count, size_t size, int round, double limit_s, double *left)
{
        int p[2], fds[MAX_REGIONS], e;
        long long full, now;
        ashmem_broker *b;
        int64_t usage, t0;
        double s;
        char c;

        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        /* no limit while filling */
        if ((e = bench_cgroup_set_limit(&cg, (uint64_t)1 << 50)) < 0 &&
            (e = bench_cgroup_set_limit(&cg, (uint64_t)INT64_MAX)) < 0)
                bench_die("setting the cgroup's limit", -e);
        filler_pid = fork();
        if (filler_pid < 0)
                bench_die("fork", errno);
        if (filler_pid == 0) {
                close(p[0]);
                filler(p[1], count, size, round);
        }
        close(p[1]);
        while ((e = (int)read(p[0], &c, 1)) < 0 && errno == EINTR)
                ;
        close(p[0]);
        if (e != 1)
                bench_die("the filler failed", 0);
        /* our own descriptors, to watch their blocks */
        if ((e = ashmem_broker_connect(sock, &b)) < 0)
                bench_die("connect", -e);
        for (int i = 0; i < count; i++) {
                char name[48];
                snprintf(name, sizeof(name), "pressure-%d-%d", round, i);
                if ((e = ashmem_broker_attach(b, name, 0, &fds[i], NULL, NULL)) < 0)
                        bench_die("attach", -e);
        }
        full = blocks_of(fds, count);
        if (full < (long long)(count * (size / 512)) * 9 / 10)
                bench_die("the regions are not resident", 0);
        uncache();
        usage = bench_cgroup_usage(&cg);
        if (usage < 0)
                bench_die("the cgroup's usage", (int)-usage);
        if ((e = bench_cgroup_set_limit(&cg, (uint64_t)usage + ROOM)) < 0)
                bench_die("setting the cgroup's limit", -e);

        t0 = bench_now_ns();
        for (int i = 0; i < THRASHERS; i++) {
                thrasher_pid[i] = fork();
                if (thrasher_pid[i] < 0)
                        bench_die("fork", errno);
                if (thrasher_pid[i] == 0)
                        thrasher();
        }
        for (;;) {
                now = blocks_of(fds, count);
                s = (double)(bench_now_ns() - t0) / 1e9;
                if (now == 0 || s >= limit_s)
                        break;
                bench_nap_ms(10);
        }
        for (int i = 0; i < THRASHERS; i++)
                reap(&thrasher_pid[i]);
        reap(&filler_pid);
        *left = (double)now / (double)full;
        for (int i = 0; i < count; i++) {
                char name[48];
                close(fds[i]);
                snprintf(name, sizeof(name), "pressure-%d-%d", round, i);
                ashmem_broker_unshare(b, name);
        }
        ashmem_broker_close(b);
        return now == 0 ? s : limit_s;
}

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        struct { const char *name; int count; size_t size; double target;
                 double s[MAX_ROUNDS], left[MAX_ROUNDS]; } cases[2];
        const char *why = NULL;
        char whybuf[256];
        int rounds;
        double limit_s;

        bench_options(argc, argv, &opt);
        rounds = opt.quick ? 1 : 2;
        limit_s = opt.quick ? 10 : 20;
        cases[0].name = opt.quick ? "purge under pressure: 1 region of 64 MiB reclaimed" :
                                     "purge under pressure: 1 region of 1 GiB reclaimed";
        cases[0].count = 1;
        cases[0].size = opt.quick ? (size_t)64 << 20 : (size_t)1 << 30;
        cases[0].target = 0;
        cases[1].name = opt.quick ? "purge under pressure: 4 regions of 16 MiB reclaimed" :
                                     "purge under pressure: 64 regions of 16 MiB vs 5 s";
        cases[1].count = opt.quick ? 4 : 64;
        cases[1].size = (size_t)16 << 20;
        cases[1].target = opt.quick ? 0 : 1.0;
        bench_ashmemctl(ctl, sizeof(ctl));
        snprintf(dir, sizeof(dir), "/tmp/ashmem-bench-XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        main_pid = getpid();
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);

        if (access("/proc/pressure/memory", R_OK) < 0)
                why = "no /proc/pressure/memory (PSI): the broker's purger has no "
                      "pressure signal a cgroup limit moves";
        else if (bench_cgroup_create(&cg, "pressure", whybuf, sizeof(whybuf)) < 0)
                why = whybuf;
        else
                why = make_thrash_file();

        if (!why) {
                start_broker();
                for (int r = 0; r < rounds; r++)
                        for (int k = 0; k < 2; k++) {
                                int c = (k + r) % 2;
                                cases[c].s[r] = one_round(cases[c].count, cases[c].size,
                                                          r * 2 + c, limit_s, &cases[c].left[r]);
                                fprintf(stderr, "bench_pressure: round %d: %d x %zu MiB: "
                                        "%.2f s, %.0f%% left\n", r + 1, cases[c].count,
                                        cases[c].size >> 20, cases[c].s[r],
                                        cases[c].left[r] * 100);
                        }
        }
        cleanup();

        if (opt.json)
                printf("[\n");
        else
                printf("%-56s %-28s %-8s %6s %7s %s\n", "benchmark", "ours [min..max]",
                       "baseline", "ratio", "target", "meets");
        for (int c = 0; c < 2; c++) {
                struct bench_stat3 s = { 0, 0, 0 };
                double base = cases[c].target > 0 ? 5.0 : 0, left = 0;
                int timed_out = 0;
                char name[160];

                if (!why) {
                        s = bench_summarise(cases[c].s, rounds);
                        left = bench_summarise(cases[c].left, rounds).max;
                        for (int r = 0; r < rounds; r++)
                                timed_out |= cases[c].left[r] > 0;
                }
                /* a round that hit the limit: the row says so */
                if (timed_out)
                        snprintf(name, sizeof(name), "%s (%.0f%% left at the %.0f s limit)",
                                 cases[c].name, left * 100, limit_s);
                else
                        snprintf(name, sizeof(name), "%s", cases[c].name);
                if (opt.json) {
                        char ours[32], b[32], ratio[32], t[16], m[8], extra[512];
                        if (why) {
                                snprintf(ours, sizeof(ours), "null");
                                snprintf(extra, sizeof(extra), ", \"skipped\": \"%s\"", why);
                        } else {
                                snprintf(ours, sizeof(ours), "%.3f", s.med);
                                snprintf(extra, sizeof(extra), ", \"spread\": {\"ours_min\": %.3f, "
                                         "\"ours_max\": %.3f}, \"regions\": %d, \"bytes\": %zu, "
                                         "\"time_limit_s\": %.0f, \"timed_out\": %s, "
                                         "\"most_left\": %.3f, \"rounds\": %d", s.min, s.max,
                                         cases[c].count, cases[c].size, limit_s,
                                         timed_out ? "true" : "false", left, rounds);
                        }
                        snprintf(b, sizeof(b), base > 0 ? "%.1f" : "null", base);
                        if (base > 0 && !why)
                                snprintf(ratio, sizeof(ratio), "%.3f", s.med / base);
                        else
                                snprintf(ratio, sizeof(ratio), "null");
                        snprintf(t, sizeof(t), cases[c].target > 0 ? "%.2f" : "null",
                                 cases[c].target);
                        if (cases[c].target > 0 && !why)
                                snprintf(m, sizeof(m), "%s",
                                         !timed_out && s.med / base <= cases[c].target ?
                                         "true" : "false");
                        else
                                snprintf(m, sizeof(m), "null");
                        printf("  {\"name\": \"%s\", \"ours\": %s, \"baseline\": %s, "
                               "\"ratio\": %s, \"target\": %s, \"meets\": %s, \"unit\": \"s\"%s}%s\n",
                               name, ours, b, ratio, t, m, extra, c ? "" : ",");
                } else if (why) {
                        printf("%-56s not run: %s\n", name, why);
                } else {
                        char o[64], b[16], t[16], ratio[16];
                        snprintf(o, sizeof(o), "%.2f [%.2f..%.2f] s%s", s.med, s.min, s.max,
                                 timed_out ? " (limit)" : "");
                        snprintf(b, sizeof(b), base > 0 ? "%.1f s" : "-", base);
                        snprintf(t, sizeof(t), cases[c].target > 0 ? "<=%.2f" : "-",
                                 cases[c].target);
                        snprintf(ratio, sizeof(ratio), base > 0 ? "%.2f" : "-",
                                 base > 0 ? s.med / base : 0);
                        printf("%-56s %-28s %-8s %6s %7s %s\n", name, o, b, ratio, t,
                               cases[c].target > 0 ?
                               (!timed_out && s.med / base <= cases[c].target ? "yes" : "NO") :
                               "-");
                }
        }
        if (opt.json)
                printf("]\n");
        return 0;
}
