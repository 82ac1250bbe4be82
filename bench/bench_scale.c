/* SPDX-License-Identifier: MIT */
/*
 * Scale: the broker holding 100, 1,000, 10,000 and 100,000 regions
 * (--quick: 100 and 1,000), and 1,000 to 100,000 names.
 *
 * For each count N a fresh broker (`ashmemctl broker run`, a child of this
 * program) gets N creates of one-page regions on one connection, in an
 * order that is not the names' order (name i is created at step
 * i * 7919 mod N), then `ashmemctl list --json` of all of them is run
 * several times. Measured:
 *
 *   create   the broker's CPU time for the N creates, per region (see
 *            list for how it is read); the wall time per create is kept
 *            beside it in JSON. The creates are raw protocol requests
 *            (ashmem_broker_call) whose two reply descriptors are closed at
 *            once, so the client's own work stays small and constant.
 *   list     the broker's CPU time (user + system, all its threads, from
 *            /proc/PID/task/TID/schedstat in nanoseconds; /proc/PID/stat's
 *            utime+stime is kept beside it) while one `ashmemctl list
 *            --json` runs, and, in a row of its own, that command's wall
 *            time: what the user waits (mostly the client building and
 *            printing the document). The first list of each round is
 *            checked: N records.
 *   memory   what the memory cgroup the broker runs in is charged for the
 *            N creates, per region (cgroup v2 memory.current or v1
 *            memory.usage_in_bytes: user and kernel memory, so the two
 *            memfds, the control page, the open files and the broker's heap
 *            all count), from 1,000 up; beside it the same charge for a
 *            sparse /dev/shm file of the region's size held open (the
 *            baseline, its own cgroup). Without a writable memory
 *            controller, MemAvailable deltas instead (the rows say so).
 *            The old figure, (VmRSS - RssShmem) per region, is kept in JSON.
 *   latency  p50, p99 and max, per round, of single operations while N
 *            regions are held: the attach of regions a process has never
 *            seen (a fresh child, its own connection, up to 1,000 distinct
 *            names spread over all N) and the removal (unshare) of a tenth
 *            of them (at least 50, at most half), one by one, at the end
 *            of the round.
 *
 * The broker keeps 1 descriptor per region it made that never needed pin
 * state (3 once a holder made its control block: data, control, and the
 * library's own control descriptor, with one mapping); the regions here are
 * never unpinned. It raises its soft RLIMIT_NOFILE to the hard limit; this
 * program raises its own hard limit (the broker inherits it) to kN + 64
 * (k the descriptors per region seen so far, 1 at first) when it may
 * (CAP_SYS_RESOURCE), and vm.max_map_count (put back at the end) when N
 * needs it and it may. A count that does not fit is not run (a row says
 * why, ours null) and the largest count that fits is measured instead.
 *
 * The same runs again with names only: N slices of one region (the
 * "slice" op), which need no descriptor and no mapping, so 100,000 fit
 * anywhere. The rows say what was held: regions or names.
 *
 * Targets: linear growth: the per-region (per-name) create and list CPU
 * time at the larger counts at most 1.5x those at 1,000; at most 4 KiB of
 * charged memory per region (regions never unpinned; a name is shown
 * against it); the list of 100,000 names in under 1 s of broker CPU; the
 * p99 attach of a never-seen region at the largest region count at most
 * 1.5x that at 100 regions.
 *
 * Everything (this program, the brokers, the list commands) runs on one
 * CPU, so the broker's work is measured rather than the wakeups between
 * CPUs (see main()). The cgroups (ashmem-bench-PID-*) and the /dev/shm
 * files are removed at exit, on SIGINT and SIGTERM too.
 *
 * Each figure is the median over the rounds (create, memory, latency: a
 * fresh broker each) or over every list run (list), with the smallest and
 * largest as the spread. The counts take turns round by round, so that a
 * change in the machine's load falls on all of them alike.
 *
 * Usage: bench_scale [--json] [--quick] [--max N]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"
#include "support/cgroup.h"

#define MAX_ROUNDS 16
#define MAX_LISTS 64
#define STEP 7919u              /* a prime: i -> i * STEP mod N permutes */
#define MAP_COUNT "/proc/sys/vm/max_map_count"
#define FD_SLACK 64             /* the broker's own descriptors, and more */
#define MAP_SLACK 4096          /* the broker's own mappings, and more */

#define MAX_PROBES 1000         /* latency samples per operation and round */

static char ctl[PATH_MAX], dir[64], sock[96], listing[96], shmdir[96];
/* the cgroups the broker and the /dev/shm files are charged to; when
 * none can be made, MemAvailable deltas (mem_why says why) */
static struct bench_cgroup cg_broker, cg_shm;
static int use_cgroup;
static char mem_why[256];
static pid_t main_pid, broker_pid;
static long old_map_count = -1;
static size_t page;
/* Descriptors the broker keeps per region: data, control and the library's
 * own control descriptor; measured at each count (the most seen is kept). */
static size_t fds_per_region = 1;

/* ---------------------------------------------------------------- /proc */

static long read_long(const char *path)
{
        char buf[64];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        return strtol(buf, NULL, 10);
}

static int write_long(const char *path, long v)
{
        char buf[32];
        int fd = open(path, O_WRONLY | O_CLOEXEC), len, r = 0;

        if (fd < 0)
                return -errno;
        len = snprintf(buf, sizeof(buf), "%ld\n", v);
        if (write(fd, buf, (size_t)len) != len)
                r = -errno;
        if (close(fd) < 0 && !r)
                r = -errno;
        return r;
}

struct mem { long long rss_kib, shmem_kib; };

static struct mem broker_mem(void)
{
        char path[64], line[256];
        struct mem m = { -1, -1 };
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)broker_pid);
        f = fopen(path, "re");
        if (!f)
                bench_die(path, errno);
        while (fgets(line, sizeof(line), f)) {
                long long v;
                if (sscanf(line, "VmRSS: %lld kB", &v) == 1)
                        m.rss_kib = v;
                else if (sscanf(line, "RssShmem: %lld kB", &v) == 1)
                        m.shmem_kib = v;
        }
        fclose(f);
        if (m.rss_kib < 0 || m.shmem_kib < 0)
                bench_die("no VmRSS or RssShmem in /proc/PID/status", 0);
        return m;
}

/* Descriptors the broker has open. */
static size_t broker_fds(void)
{
        char path[64];
        struct dirent *de;
        size_t n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)broker_pid);
        d = opendir(path);
        if (!d)
                bench_die(path, errno);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* utime + stime of /proc/PID/stat, in clock ticks. */
static long long broker_ticks(void)
{
        char path[64], buf[1024], *p;
        unsigned long long ut, st;
        int fd;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)broker_pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                bench_die(path, errno);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                bench_die(path, EIO);
        buf[n] = 0;
        /* after the command name in parentheses: state is field 3, utime 14 */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                         &ut, &st) != 2)
                bench_die("cannot parse /proc/PID/stat", 0);
        return (long long)(ut + st);
}

/* ---------------------------------------------------------------- limits */

/* Make room for n regions: descriptors (raising this process's hard
 * RLIMIT_NOFILE, which the broker inherits, when allowed) and mappings
 * (vm.max_map_count, when writable). Returns n, or the largest count that
 * fits when n does not (0: none), with the reason in *why. */
static size_t make_room(size_t n, const char **why)
{
        rlim_t need = (rlim_t)(fds_per_region * n + FD_SLACK);
        struct rlimit rl;
        long maps;

        *why = NULL;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("getrlimit", errno);
        if (rl.rlim_max < need) {
                struct rlimit want = { rl.rlim_cur < need ? rl.rlim_cur : need, need };
                if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
                        *why = "the RLIMIT_NOFILE hard limit and no right to raise it "
                               "(for the broker's descriptors per region)";
                        return rl.rlim_max > FD_SLACK + 300 ?
                               (size_t)(rl.rlim_max - FD_SLACK) / fds_per_region / 100 * 100 : 0;
                }
        }
        maps = read_long(MAP_COUNT);
        if (maps >= 0 && (size_t)maps < n + MAP_SLACK) {
                long want = (long)(n + MAP_SLACK);
                if (write_long(MAP_COUNT, want) < 0 || read_long(MAP_COUNT) < want) {
                        *why = "vm.max_map_count (one mapping per region) and no right "
                               "to raise it";
                        return (size_t)maps > MAP_SLACK + 100 ?
                               ((size_t)maps - MAP_SLACK) / 100 * 100 : 0;
                }
                if (old_map_count < 0)
                        old_map_count = maps;
        }
        return n;
}

/* ---------------------------------------------------------------- broker */

static void start_broker(size_t n)
{
        char regions[32], bytes[32];
        pid_t parent = getpid();
        ashmem_broker *b;
        int r;

        snprintf(regions, sizeof(regions), "%zu", n + 64);
        snprintf(bytes, sizeof(bytes), "%zu", (n + 64) * page * 2);
        broker_pid = fork();
        if (broker_pid < 0)
                bench_die("fork", errno);
        if (broker_pid == 0) {
                int nul = open("/dev/null", O_RDWR);
                if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                if (use_cgroup && bench_cgroup_enter(&cg_broker, 0) < 0)
                        _exit(125);
                close_range(3, ~0U, 0);
                execl(ctl, "ashmemctl", "--socket", sock, "-q", "broker", "run",
                      "--idle-timeout", "0", "--no-psi", "--max-regions", regions,
                      "--max-bytes", bytes, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; (r = ashmem_broker_connect(sock, &b)) < 0; i++) {
                int status;
                if (waitpid(broker_pid, &status, WNOHANG) == broker_pid) {
                        broker_pid = 0;
                        fprintf(stderr, "bench_scale: the broker exited (status %d)\n", status);
                        exit(1);
                }
                if (i == 1000)
                        bench_die("the broker does not answer", -r);
                bench_nap_ms(10);
        }
        ashmem_broker_close(b);
}

static void stop_broker(void)
{
        char p[128];
        int status;

        if (broker_pid <= 0)
                return;
        kill(broker_pid, SIGTERM);
        while (waitpid(broker_pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        broker_pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "bench_scale: the broker ended with status %d\n", status);
        unlink(sock);
        snprintf(p, sizeof(p), "%s.lock", sock);
        unlink(p);
}

/* At exit (main process only): the broker, the directory, the map count. */
static void cleanup(void)
{
        if (getpid() != main_pid)
                return;
        stop_broker();
        bench_cgroup_remove(&cg_broker);
        bench_cgroup_remove(&cg_shm);
        if (shmdir[0]) {
                /* the baseline's files, if its process was killed */
                DIR *d = opendir(shmdir);
                struct dirent *de;
                while (d && (de = readdir(d)))
                        if (de->d_name[0] != '.')
                                unlinkat(dirfd(d), de->d_name, 0);
                if (d)
                        closedir(d);
                if (rmdir(shmdir) < 0 && errno != ENOENT)
                        fprintf(stderr, "bench_scale: %s: %s\n", shmdir, strerror(errno));
        }
        shmdir[0] = 0;
        if (listing[0])
                unlink(listing);
        if (dir[0] && rmdir(dir) < 0)
                fprintf(stderr, "bench_scale: %s: %s\n", dir, strerror(errno));
        dir[0] = 0;
        if (old_map_count >= 0) {
                if (write_long(MAP_COUNT, old_map_count) < 0)
                        fprintf(stderr, "bench_scale: could not put %s back to %ld\n",
                                MAP_COUNT, old_map_count);
                old_map_count = -1;
        }
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);        /* runs cleanup() */
}

/* ---------------------------------------------------------------- steps */

/* Create regions (or, with slices, slices of the region "base") 0..n-1
 * in the permuted order. Wall ns. */
static int64_t create_all(ashmem_broker *b, size_t n, int slices)
{
        int64_t t0 = bench_now_ns();

        for (size_t i = 0; i < n; i++) {
                size_t k = (size_t)((unsigned long long)i * STEP % n);
                char req[160], *reply = NULL;
                int rfds[2], nr = 0, r;

                if (slices)
                        snprintf(req, sizeof(req), "{\"op\":\"slice\",\"name\":\"scale-%07zu\","
                                 "\"of\":\"base\",\"offset\":0,\"length\":%zu}", k, page);
                else
                        snprintf(req, sizeof(req), "{\"op\":\"create\",\"name\":\"scale-%07zu\","
                                 "\"size\":%zu}", k, page);
                r = ashmem_broker_call(b, req, NULL, 0, &reply, rfds, &nr);
                for (int j = 0; j < nr; j++)
                        close(rfds[j]);
                if (r < 0) {
                        fprintf(stderr, "bench_scale: %s %zu of %zu: %s\n%s\n",
                                slices ? "slice" : "create", i + 1, n, strerror(-r),
                                reply ? reply : "");
                        exit(1);
                }
                if (nr != (slices ? 0 : 1))   /* data alone: no pin state yet */
                        bench_die("the reply does not have the descriptors it should", EPROTO);
                free(reply);
        }
        return bench_now_ns() - t0;
}

/* Records in the listing file: occurrences of the "name" key of a region
 * of this run. */
static size_t count_records(const char *path)
{
        static const char key[] = "\"name\":";
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        size_t count = 0;
        char *m;

        if (fd < 0 || fstat(fd, &st) < 0)
                bench_die(path, errno);
        if (st.st_size == 0) {
                close(fd);
                return 0;
        }
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
                bench_die("mmap", errno);
        for (char *p = m, *end = m + st.st_size;
             (p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)); p += sizeof(key) - 1) {
                char *v = p + sizeof(key) - 1;
                while (v < end && *v == ' ')
                        v++;
                if ((size_t)(end - v) > 7 && memcmp(v, "\"scale-", 7) == 0)
                        count++;
        }
        munmap(m, (size_t)st.st_size);
        return count;
}

struct list_run { int64_t wall_ns, cpu_ns; long long ticks; };

/* One `ashmemctl list --json`, its output to file (NULL: /dev/null). */
static struct list_run list_once(const char *file)
{
        struct list_run lr;
        int64_t c0, t0;
        long long k0;
        int out, status;
        pid_t pid;

        out = file ? open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                   : open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (out < 0)
                bench_die(file ? file : "/dev/null", errno);
        k0 = broker_ticks();
        c0 = bench_cpu_ns(broker_pid);
        t0 = bench_now_ns();
        pid = fork();
        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                if (dup2(out, STDOUT_FILENO) < 0)
                        _exit(126);
                execl(ctl, "ashmemctl", "--socket", sock, "--no-autostart", "--json", "list",
                      (char *)NULL);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        lr.wall_ns = bench_now_ns() - t0;
        lr.cpu_ns = bench_cpu_ns(broker_pid) - c0;
        lr.ticks = broker_ticks() - k0;
        close(out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_scale: ashmemctl list --json failed (status %d)\n", status);
                exit(1);
        }
        return lr;
}

/* ---------------------------------------------------------------- memory */

/* MemAvailable in bytes (the fallback without a cgroup). */
static int64_t mem_available(void)
{
        char line[256];
        long long kib = -1;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                bench_die("/proc/meminfo", errno);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1)
                        break;
        fclose(f);
        if (kib < 0)
                bench_die("no MemAvailable in /proc/meminfo", 0);
        return (int64_t)kib * 1024;
}

/* What cg charges now (or, without cgroups, the memory in use). */
static int64_t charged(const struct bench_cgroup *cg)
{
        int64_t v;

        if (!use_cgroup)
                return -mem_available();
        v = bench_cgroup_usage(cg);
        if (v < 0)
                bench_die("reading the cgroup's usage", (int)-v);
        return v;
}

/* The baseline: n sparse /dev/shm files of one page (never written), kept
 * open by a child process charged to cg_shm. Bytes per file. */
static double shm_files_cost(size_t n)
{
        int go[2], done[2], status;
        int64_t before, after;
        char c;
        pid_t pid;

        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        before = charged(&cg_shm);
        pid = fork();
        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                char path[160];
                int ok = 1;
                close(go[1]);
                close(done[0]);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
                    (use_cgroup && bench_cgroup_enter(&cg_shm, 0) < 0))
                        _exit(125);
                for (size_t i = 0; i < n && ok; i++) {
                        int fd;
                        snprintf(path, sizeof(path), "%s/f%zu", shmdir, i);
                        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                        if (fd < 0 || ftruncate(fd, (off_t)page) < 0)
                                ok = 0;
                }
                if (write(done[1], ok ? "y" : "n", 1) != 1)
                        ok = 0;
                /* held until the parent has read the charge */
                while (read(go[0], &c, 1) < 0 && errno == EINTR)
                        ;
                for (size_t i = 0; i < n; i++) {
                        snprintf(path, sizeof(path), "%s/f%zu", shmdir, i);
                        unlink(path);
                }
                _exit(ok ? 0 : 1);
        }
        close(go[0]);
        close(done[1]);
        while (read(done[0], &c, 1) < 0)
                if (errno != EINTR)
                        bench_die("read", errno);
        after = charged(&cg_shm);
        close(go[1]);
        close(done[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        if (c != 'y' || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("the /dev/shm files could not be made", 0);
        return (double)(after - before) / (double)n;
}

/* ---------------------------------------------------------------- latency */

static int cmp_dbl(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n), interpolated between the two nearest
 * samples (position q * (n - 1)). */
static double quantile(const double *v, size_t n, double q)
{
        double pos = q * (double)(n - 1);
        size_t i = (size_t)pos;

        if (i + 1 >= n)
                return v[n - 1];
        return v[i] + (v[i + 1] - v[i]) * (pos - (double)i);
}

/* p50, p99 and max of v[0..n) (sorted in place), in us. */
static void percentiles(double *v, size_t n, double out[3])
{
        qsort(v, n, sizeof(*v), cmp_dbl);
        out[0] = quantile(v, n, 0.50) / 1e3;
        out[1] = quantile(v, n, 0.99) / 1e3;
        out[2] = v[n - 1] / 1e3;
}

/* The name of probe j of k among n regions: spread over all of them. */
static void probe_name(char *buf, size_t len, size_t j, size_t k, size_t n)
{
        snprintf(buf, len, "scale-%07zu", j * n / k);
}

/* k attaches of distinct regions by a process that has never seen them (a
 * fresh child, its own connection); each attach's latency in ns into v. */
static void attach_probe(size_t n, size_t k, double *v)
{
        int p[2], status;
        pid_t pid;
        size_t got = 0;

        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        pid = fork();
        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                ashmem_broker *b;
                close(p[0]);
                if (ashmem_broker_connect(sock, &b) < 0)
                        _exit(1);
                for (size_t j = 0; j < k; j++) {
                        char name[32];
                        double ns;
                        int64_t t0;
                        int fd;
                        probe_name(name, sizeof(name), j, k, n);
                        t0 = bench_now_ns();
                        if (ashmem_broker_attach(b, name, 1, &fd, NULL, NULL) < 0)
                                _exit(2);
                        ns = (double)(bench_now_ns() - t0);
                        close(fd);
                        if (write(p[1], &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
                                _exit(3);
                }
                ashmem_broker_close(b);
                _exit(0);
        }
        close(p[1]);
        while (got < k * sizeof(double)) {
                ssize_t r = read(p[0], (char *)v + got, k * sizeof(double) - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                got += (size_t)r;
        }
        close(p[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        if (got != k * sizeof(double) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("the attach probe failed", 0);
}

/* What another client waits while the removals run: a child on its own
 * connection sends hello after hello until told to stop, and hands back
 * the p50, p99 and max of its latencies (us). A removal that makes the
 * broker's event loop work in proportion to the regions it holds shows
 * here, in every other client's latency. */
struct bystander {
        pid_t pid;
        int stop, res;                  /* pipes: parent -> child, child -> parent */
};

#define MAX_BYSTANDER 200000

static void bystander_start(struct bystander *by)
{
        int s[2], r[2];

        if (pipe2(s, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        by->pid = fork();
        if (by->pid < 0)
                bench_die("fork", errno);
        if (by->pid == 0) {
                static double v[MAX_BYSTANDER];
                ashmem_broker_server hello;
                ashmem_broker *b;
                double pc[3];
                size_t k = 0;
                char c;

                close(s[1]);
                close(r[0]);
                if (fcntl(s[0], F_SETFL, O_NONBLOCK) < 0 ||
                    ashmem_broker_connect(sock, &b) < 0)
                        _exit(1);
                /* until the parent closes its end (read returns 0) */
                while (read(s[0], &c, 1) < 0 && (errno == EAGAIN || errno == EINTR)) {
                        int64_t t0 = bench_now_ns();
                        if (ashmem_broker_hello(b, &hello) < 0)
                                _exit(2);
                        if (k < MAX_BYSTANDER)
                                v[k++] = (double)(bench_now_ns() - t0);
                }
                ashmem_broker_close(b);
                if (k == 0)
                        _exit(3);
                percentiles(v, k, pc);
                if (write(r[1], pc, sizeof(pc)) != (ssize_t)sizeof(pc))
                        _exit(4);
                _exit(0);
        }
        close(s[0]);
        close(r[1]);
        by->stop = s[1];
        by->res = r[0];
}

static void bystander_stop(struct bystander *by, double pc[3])
{
        size_t got = 0;
        int status;

        close(by->stop);
        while (got < 3 * sizeof(double)) {
                ssize_t n = read(by->res, (char *)pc + got, 3 * sizeof(double) - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(by->res);
        while (waitpid(by->pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        if (got != 3 * sizeof(double) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("the bystander probe failed", 0);
}

/* k removals (unshare) of distinct regions; each one's latency in ns into
 * v, and what another client waited meanwhile into by_us (p50, p99, max). */
static void rm_probe(size_t n, size_t k, double *v, double by_us[3])
{
        struct bystander by;
        ashmem_broker *b;
        int e;

        if ((e = ashmem_broker_connect(sock, &b)) < 0)
                bench_die("connect", -e);
        bystander_start(&by);
        for (size_t j = 0; j < k; j++) {
                char name[32];
                int64_t t0;
                probe_name(name, sizeof(name), j, k, n);
                t0 = bench_now_ns();
                if ((e = ashmem_broker_unshare(b, name)) < 0)
                        bench_die("unshare", -e);
                v[j] = (double)(bench_now_ns() - t0);
        }
        bystander_stop(&by, by_us);
        ashmem_broker_close(b);
}

/* ---------------------------------------------------------------- figures */

struct size_result {
        size_t n;
        int slices;                     /* names only: slices of one region */
        int done;                       /* 0: skipped */
        const char *why;                /* skipped: the reason */
        /* the samples: one per round (create, memory), per list run */
        double c_us[MAX_ROUNDS], cc_us[MAX_ROUNDS], mem[MAX_ROUNDS], shm[MAX_ROUNDS];
        double cg[MAX_ROUNDS], base[MAX_ROUNDS];      /* charged per region; /dev/shm file */
        double att[3][MAX_ROUNDS], rm[3][MAX_ROUNDS]; /* p50, p99, max per round, us */
        double by[3][MAX_ROUNDS];       /* another client's hello during the removals */
        double lcpu[MAX_LISTS], lwall[MAX_LISTS], lticks[MAX_LISTS];
        int nr, nl;
        /* their medians and spreads */
        struct bench_stat3 create_us;         /* wall per region */
        struct bench_stat3 create_cpu_us;     /* broker CPU per region */
        struct bench_stat3 list_cpu_ms, list_wall_ms;
        double list_ticks_ms;           /* median, from /proc/PID/stat */
        struct bench_stat3 mem_bytes;         /* per region */
        struct bench_stat3 cg_bytes, shm_file_bytes;  /* charged, per region; the baseline */
        struct bench_stat3 attach_us[3], rm_us[3], by_us[3];
        double shmem_bytes;             /* median RssShmem per region */
        double fds;                     /* descriptors per region */
};

/* One round of one count: a fresh broker, the creates, lists runs of list. */
static void measure_round(struct size_result *res, int lists)
{
        long hz = sysconf(_SC_CLK_TCK);
        size_t n = res->n;
        ashmem_broker *b;
        struct mem m0, m1;
        int64_t c0, wall, g0, g1;
        size_t f0;
        int e, r = res->nr++;

        start_broker(n);
        if ((e = ashmem_broker_connect(sock, &b)) < 0)
                bench_die("connect", -e);
        {
                ashmem_broker_server hello;
                if ((e = ashmem_broker_hello(b, &hello)) < 0)
                        bench_die("hello", -e);
        }
        if (res->slices) {
                int fd;
                if ((e = ashmem_broker_create(b, "base", page, ASHMEM_BROKER_DEFAULT, 0600,
                                              &fd, NULL)) < 0)
                        bench_die("create", -e);
                close(fd);
        }
        m0 = broker_mem();
        f0 = broker_fds();
        g0 = charged(&cg_broker);
        c0 = bench_cpu_ns(broker_pid);
        wall = create_all(b, n, res->slices);
        res->cc_us[r] = (double)(bench_cpu_ns(broker_pid) - c0) / 1e3 / (double)n;
        g1 = charged(&cg_broker);
        res->cg[r] = (double)(g1 - g0) / (double)n;
        m1 = broker_mem();
        res->fds = (double)(broker_fds() - f0) / (double)n;
        if (!res->slices && (size_t)(res->fds + 0.999) > fds_per_region)
                fds_per_region = (size_t)(res->fds + 0.999);
        res->c_us[r] = (double)wall / 1e3 / (double)n;
        res->mem[r] = (double)((m1.rss_kib - m1.shmem_kib) - (m0.rss_kib - m0.shmem_kib)) *
                      1024 / (double)n;
        res->shm[r] = (double)(m1.shmem_kib - m0.shmem_kib) * 1024 / (double)n;
        ashmem_broker_close(b);
        for (int l = 0; l < lists && res->nl < MAX_LISTS; l++) {
                struct list_run lr = list_once(l == 0 ? listing : NULL);
                if (l == 0) {
                        size_t got = count_records(listing);
                        if (got != n) {
                                fprintf(stderr, "bench_scale: list --json gave %zu records of "
                                        "%zu\n", got, n);
                                exit(1);
                        }
                        unlink(listing);
                }
                res->lcpu[res->nl] = (double)lr.cpu_ns / 1e6;
                res->lwall[res->nl] = (double)lr.wall_ns / 1e6;
                res->lticks[res->nl] = (double)lr.ticks * 1e3 / (double)(hz > 0 ? hz : 100);
                res->nl++;
        }
        if (!res->slices) {
                static double v[MAX_PROBES];
                size_t k = n < MAX_PROBES ? n : MAX_PROBES;
                attach_probe(n, k, v);
                {
                        double pc[3];
                        percentiles(v, k, pc);
                        for (int i = 0; i < 3; i++)
                                res->att[i][r] = pc[i];
                }
                /* the removals last: a tenth of the regions, at least 50
                 * (so that p99 is not the max) and at most half */
                k = n / 10 < MAX_PROBES ? n / 10 : MAX_PROBES;
                if (k < 50)
                        k = n / 2 < 50 ? n / 2 : 50;
                {
                        double pc[3], by[3];
                        rm_probe(n, k, v, by);
                        percentiles(v, k, pc);
                        for (int i = 0; i < 3; i++) {
                                res->rm[i][r] = pc[i];
                                res->by[i][r] = by[i];
                        }
                }
        }
        stop_broker();
        if (!res->slices)
                res->base[r] = shm_files_cost(n);
}

static void summarise_all(struct size_result *res)
{
        res->create_us = bench_summarise(res->c_us, res->nr);
        res->create_cpu_us = bench_summarise(res->cc_us, res->nr);
        res->mem_bytes = bench_summarise(res->mem, res->nr);
        res->shmem_bytes = bench_summarise(res->shm, res->nr).med;
        res->list_cpu_ms = bench_summarise(res->lcpu, res->nl);
        res->list_wall_ms = bench_summarise(res->lwall, res->nl);
        res->list_ticks_ms = bench_summarise(res->lticks, res->nl).med;
        res->cg_bytes = bench_summarise(res->cg, res->nr);
        if (!res->slices) {
                res->shm_file_bytes = bench_summarise(res->base, res->nr);
                for (int i = 0; i < 3; i++) {
                        res->attach_us[i] = bench_summarise(res->att[i], res->nr);
                        res->rm_us[i] = bench_summarise(res->rm[i], res->nr);
                        res->by_us[i] = bench_summarise(res->by[i], res->nr);
                }
        }
        res->done = 1;
}

/* ---------------------------------------------------------------- output */

struct row {
        char name[160];
        double ours, base;              /* ours < 0: not measured; base < 0: none */
        double target;                  /* 0: none; ratio at most this */
        const char *unit;
        struct bench_stat3 spread;            /* of ours */
        const char *chart;              /* NULL: not charted */
        size_t x;
        char extra[512];                /* more JSON fields, or "" */
};

static int has_ratio(const struct row *w)
{
        return w->ours >= 0 && w->base > 0;
}

static void print_json(const struct row *rows, int n)
{
        printf("[\n");
        for (int i = 0; i < n; i++) {
                const struct row *w = &rows[i];
                char ours[32], base[32], ratio[32], target[32], meets[8], chart[64], spread[96];

                if (w->ours >= 0)
                        snprintf(ours, sizeof(ours), "%.3f", w->ours);
                else
                        snprintf(ours, sizeof(ours), "null");
                if (w->base > 0)
                        snprintf(base, sizeof(base), "%.3f", w->base);
                else
                        snprintf(base, sizeof(base), "null");
                if (has_ratio(w))
                        snprintf(ratio, sizeof(ratio), "%.3f", w->ours / w->base);
                else
                        snprintf(ratio, sizeof(ratio), "null");
                if (w->target > 0)
                        snprintf(target, sizeof(target), "%.2f", w->target);
                else
                        snprintf(target, sizeof(target), "null");
                if (w->target > 0 && has_ratio(w))
                        snprintf(meets, sizeof(meets), "%s",
                                 w->ours / w->base <= w->target ? "true" : "false");
                else
                        snprintf(meets, sizeof(meets), "null");
                if (w->chart)
                        snprintf(chart, sizeof(chart), ", \"chart\": \"%s\", \"x\": %zu",
                                 w->chart, w->x);
                else
                        chart[0] = 0;
                if (w->ours >= 0)
                        snprintf(spread, sizeof(spread),
                                 ", \"spread\": {\"ours_min\": %.3f, \"ours_max\": %.3f}",
                                 w->spread.min, w->spread.max);
                else
                        spread[0] = 0;
                printf("  {\"name\": \"%s\", \"ours\": %s, \"baseline\": %s, \"ratio\": %s, "
                       "\"target\": %s, \"meets\": %s, \"unit\": \"%s\"%s%s%s}%s\n",
                       w->name, ours, base, ratio, target, meets, w->unit, spread, chart,
                       w->extra, i + 1 < n ? "," : "");
        }
        printf("]\n");
}

static void print_table(const struct row *rows, int n)
{
        printf("%-60s %-28s %-10s %6s %7s %s\n", "benchmark", "ours [min..max]", "baseline",
               "ratio", "target", "meets");
        for (int i = 0; i < n; i++) {
                const struct row *w = &rows[i];
                char o[64], b[32], ratio[16], t[16];

                if (w->ours >= 0)
                        snprintf(o, sizeof(o), "%.4g [%.4g..%.4g] %s", w->ours, w->spread.min,
                                 w->spread.max, w->unit);
                else
                        snprintf(o, sizeof(o), "not run");
                if (w->base > 0)
                        snprintf(b, sizeof(b), "%.4g %s", w->base, w->unit);
                else
                        snprintf(b, sizeof(b), "-");
                if (has_ratio(w))
                        snprintf(ratio, sizeof(ratio), "%.2f", w->ours / w->base);
                else
                        snprintf(ratio, sizeof(ratio), "-");
                if (w->target > 0)
                        snprintf(t, sizeof(t), "<=%.2f", w->target);
                else
                        snprintf(t, sizeof(t), "-");
                printf("%-60s %-28s %-10s %6s %7s %s\n", w->name, o, b, ratio, t,
                       w->target > 0 && has_ratio(w) ?
                       (w->ours / w->base <= w->target ? "yes" : "NO") : "-");
        }
}

static const char *commas(char *buf, size_t len, size_t n)
{
        if (n >= 1000000)
                snprintf(buf, len, "%zu,%03zu,%03zu", n / 1000000, n / 1000 % 1000, n % 1000);
        else if (n >= 1000)
                snprintf(buf, len, "%zu,%03zu", n / 1000, n % 1000);
        else
                snprintf(buf, len, "%zu", n);
        return buf;
}

static struct row *new_row(struct row *rows, int *n)
{
        struct row *w = &rows[(*n)++];

        memset(w, 0, sizeof(*w));
        w->base = -1;
        return w;
}

/* The rows of one count. first: the count of the same kind that growth is
 * judged against (1,000, or the smallest measured; NULL: this one); lat:
 * the smallest region count (the latency reference; NULL: none); largest:
 * whether this is the largest region count measured. */
static void rows_of(const struct size_result *q, const struct size_result *first,
                    const struct size_result *lat, int largest, struct row *rows, int *nrows)
{
        static const char *const pct[3] = { "p50", "p99", "max" };
        const double linear = 1.5, mem_budget = 4096, list_budget_ms = 1000, lat_growth = 1.5;
        const char *what = q->slices ? "names (slices of one region)" : "regions";
        const char *per = q->slices ? "name" : "region";
        struct row *w;
        char c[32], f[32], l[32], series[64], mseries[128];

        commas(c, sizeof(c), q->n);
        snprintf(series, sizeof(series), ", \"series\": \"%s\"",
                 q->slices ? "names (slices of one region)" : "regions");
        snprintf(mseries, sizeof(mseries), "%s%s", series,
                 q->slices ? "" : ", \"baseline_series\": \"sparse /dev/shm file\"");
        if (!q->done) {
                w = new_row(rows, nrows);
                snprintf(w->name, sizeof(w->name), "scale: %s %s held (create, list, memory, "
                         "latency)", c, what);
                w->ours = -1;
                w->unit = "ms";
                snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu, \"skipped\": \"%s\"",
                         q->n, q->why ? q->why : "not measured");
                return;
        }
        if (first && first != q)
                commas(f, sizeof(f), first->n);
        else
                first = NULL;

        w = new_row(rows, nrows);
        if (first) {
                snprintf(w->name, sizeof(w->name),
                         "scale: create, %s %s held, broker CPU/%s vs %s", c, what, per, f);
                w->base = first->create_cpu_us.med;
                w->target = q->n > first->n ? linear : 0;
        } else {
                snprintf(w->name, sizeof(w->name), "scale: create, %s %s held, broker CPU per %s",
                         c, what, per);
        }
        w->ours = q->create_cpu_us.med;
        w->spread = q->create_cpu_us;
        w->unit = "us";
        w->chart = "scale-create";
        w->x = q->n;
        snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu, \"wall_us\": %.3f, "
                 "\"wall_us_min\": %.3f, \"wall_us_max\": %.3f%s", q->n, q->create_us.med,
                 q->create_us.min, q->create_us.max, series);

        w = new_row(rows, nrows);
        if (first) {
                snprintf(w->name, sizeof(w->name),
                         "scale: list --json, %s %s held, broker CPU/%s vs %s", c, what, per, f);
                w->base = first->list_cpu_ms.med * 1e3 / (double)first->n;
                w->target = q->n > first->n ? linear : 0;
        } else {
                snprintf(w->name, sizeof(w->name),
                         "scale: list --json, %s %s held, broker CPU per %s", c, what, per);
        }
        w->ours = q->list_cpu_ms.med * 1e3 / (double)q->n;
        w->spread = (struct bench_stat3){ w->ours, q->list_cpu_ms.min * 1e3 / (double)q->n,
                                    q->list_cpu_ms.max * 1e3 / (double)q->n };
        w->unit = "us";
        w->chart = "scale-list";
        w->x = q->n;
        snprintf(w->extra, sizeof(w->extra),
                 ", \"regions\": %zu, \"broker_cpu_ms\": %.3f, \"broker_ticks_ms\": %.1f, "
                 "\"wall_ms\": %.3f, \"wall_ms_min\": %.3f, \"wall_ms_max\": %.3f%s",
                 q->n, q->list_cpu_ms.med, q->list_ticks_ms, q->list_wall_ms.med,
                 q->list_wall_ms.min, q->list_wall_ms.max, series);

        /* what the user waits: the whole command, beside the broker's CPU */
        w = new_row(rows, nrows);
        snprintf(w->name, sizeof(w->name), "scale: list --json, %s %s held, wall the user "
                 "waits vs broker CPU", c, what);
        w->ours = q->list_wall_ms.med;
        w->spread = q->list_wall_ms;
        w->base = q->list_cpu_ms.med;
        w->unit = "ms";
        snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu%s", q->n, series);

        if (q->n == 100000) {
                w = new_row(rows, nrows);
                snprintf(w->name, sizeof(w->name),
                         "scale: list --json, %s %s held, broker CPU vs 1 s", c, what);
                w->ours = q->list_cpu_ms.med;
                w->spread = q->list_cpu_ms;
                w->base = list_budget_ms;
                w->target = 1.0;
                w->unit = "ms";
                snprintf(w->extra, sizeof(w->extra), ", \"wall_ms\": %.3f", q->list_wall_ms.med);
        }

        /* memory from 1,000 up: a cgroup's counter moves in batches of
         * pages per CPU, too coarse for 100 regions */
        if (q->n < 1000)
                goto latency;
        w = new_row(rows, nrows);
        snprintf(w->name, sizeof(w->name), "scale: memory per %s (%s), %s %s held vs 4 KiB",
                 per, use_cgroup ? "cgroup-charged" : "MemAvailable", c, what);
        w->ours = q->cg_bytes.med;
        w->spread = q->cg_bytes;
        w->base = mem_budget;
        /* the budget is a region's; a name is shown against it */
        w->target = q->slices ? 0 : 1.0;
        w->unit = "B";
        w->chart = "scale-memory";
        w->x = q->n;
        snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu, \"method\": \"%s\", "
                 "\"rss_minus_shmem_bytes\": %.1f, \"shmem_bytes\": %.1f, "
                 "\"broker_fds_per_region\": %.2f%s", q->n,
                 use_cgroup ? bench_cgroup_counter(&cg_broker) : mem_why, q->mem_bytes.med,
                 q->shmem_bytes, q->fds, series);
        if (q->slices)
                return;

        w = new_row(rows, nrows);
        snprintf(w->name, sizeof(w->name), "scale: memory per region (%s), %s held vs a sparse "
                 "/dev/shm file", use_cgroup ? "cgroup-charged" : "MemAvailable", c);
        w->ours = q->cg_bytes.med;
        w->spread = q->cg_bytes;
        w->base = q->shm_file_bytes.med;
        w->unit = "B";
        w->chart = "scale-memory";
        w->x = q->n;
        snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu, \"method\": \"%s\", "
                 "\"baseline_spread\": [%.1f, %.1f]%s", q->n,
                 use_cgroup ? bench_cgroup_counter(&cg_broker) : mem_why,
                 q->shm_file_bytes.min, q->shm_file_bytes.max, mseries);

latency:
        if (q->slices)
                return;
        if (lat && lat != q)
                commas(l, sizeof(l), lat->n);
        else
                lat = NULL;
        for (int op = 0; op < 3; op++)
                for (int i = 0; i < 3; i++) {
                        static const char *const opname[3] = {
                                "attach of a never-seen region", "rm (unshare) of one region",
                                "another client's hello while regions are removed",
                        };
                        static const char *const opseries[3] = {
                                "attach (never seen)", "rm", "hello during rm",
                        };
                        const struct bench_stat3 *v = op == 2 ? &q->by_us[i] :
                                                      op ? &q->rm_us[i] : &q->attach_us[i];
                        w = new_row(rows, nrows);
                        snprintf(w->name, sizeof(w->name), "scale: %s, %s regions held: %s%s%s",
                                 opname[op], c, pct[i], lat ? " vs " : "", lat ? l : "");
                        w->ours = v->med;
                        w->spread = *v;
                        if (lat) {
                                w->base = op == 2 ? lat->by_us[i].med :
                                          op ? lat->rm_us[i].med : lat->attach_us[i].med;
                                if (!op && i == 1 && largest)
                                        w->target = lat_growth;
                        }
                        w->unit = "us";
                        if (i == 1) {
                                w->chart = "scale-latency";
                                w->x = q->n;
                        }
                        snprintf(w->extra, sizeof(w->extra), ", \"regions\": %zu, "
                                 "\"percentile\": \"%s\", \"series\": \"%s p99\"", q->n, pct[i],
                                 opseries[op]);
                }
}

int main(int argc, char **argv)
{
        /* regions from 100 (the latency reference), names from 1,000 */
        static const size_t sizes[] = { 100, 1000, 10000, 100000 };
        static struct size_result res[10];
        static struct row rows[160];
        const struct size_result *first = NULL, *lat = NULL, *largest = NULL;
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, lists, nsizes, nres = 0, nrows = 0;
        size_t max = 0, measured = 0;

        for (int i = 1; i < argc; i++) {
                if (bench_option(argv[i], &opt))
                        continue;
                if (strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
                        max = (size_t)strtoul(argv[++i], NULL, 10);
                } else {
                        fprintf(stderr, "usage: bench_scale [--json] [--quick] [--max N]\n");
                        return 2;
                }
        }
        json = opt.json;
        quick = opt.quick;
        page = (size_t)sysconf(_SC_PAGESIZE);
        rounds = 3;
        lists = quick ? 3 : 5;
        nsizes = quick ? 2 : 4;
        bench_ashmemctl(ctl, sizeof(ctl));
        snprintf(dir, sizeof(dir), "/tmp/ashmem-bench-XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        main_pid = getpid();
        atexit(cleanup);
        /* this program, the brokers and the list commands on one CPU (they
         * inherit it): a request/response pair across two CPUs pays a
         * wakeup each way, which on an idle virtual machine costs more than
         * the work and shows up even in the CPU time */
        bench_set_cpu(0, sched_getcpu() >= 0 ? sched_getcpu() : 0);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        snprintf(listing, sizeof(listing), "%s/list.json", dir);
        snprintf(shmdir, sizeof(shmdir), "/dev/shm/ashmem-bench-%ld", (long)getpid());
        if (mkdir(shmdir, 0700) < 0) {
                shmdir[0] = 0;
                bench_die("mkdir /dev/shm/ashmem-bench-PID", errno);
        }
        /* memory as a cgroup charges it: the broker in one, the baseline's
         * /dev/shm files in another */
        {
                char why[200];
                use_cgroup = bench_cgroup_create(&cg_broker, "broker", why, sizeof(why)) == 0 &&
                             bench_cgroup_create(&cg_shm, "shm", why, sizeof(why)) == 0;
                if (!use_cgroup) {
                        bench_cgroup_remove(&cg_broker);
                        snprintf(mem_why, sizeof(mem_why), "MemAvailable deltas (no cgroup: %s)",
                                 why);
                        fprintf(stderr, "bench_scale: memory from %s\n", mem_why);
                }
        }

        /* the counts: regions (or the most that fit), then names only */
        for (int s = 0; s < nsizes; s++) {
                const char *why;
                size_t n = sizes[s], fit;
                char c[32];

                if (max && n > max)
                        continue;
                fit = make_room(n, &why);
                if (fit != n) {
                        const char *fit_why;
                        /* the most that fits instead, once (make_room()
                         * resets its reason: keep this count's) */
                        fprintf(stderr, "bench_scale: %s regions not run: %s\n",
                                commas(c, sizeof(c), n), why);
                        if (fit > measured && fit > 1000 && make_room(fit, &fit_why) == fit) {
                                fprintf(stderr, "bench_scale: %s regions instead (the most "
                                        "that fit)\n", commas(c, sizeof(c), fit));
                                res[nres++] = (struct size_result){ .n = fit, .done = -1 };
                                measured = fit;
                        }
                        res[nres++] = (struct size_result){ .n = n, .why = why };
                        continue;
                }
                res[nres++] = (struct size_result){ .n = n, .done = -1 };
                measured = n;
        }
        for (int s = 0; s < nsizes; s++)
                if ((!max || sizes[s] <= max) && sizes[s] >= 1000)
                        res[nres++] = (struct size_result){ .n = sizes[s], .slices = 1,
                                                            .done = -1 };
        /* round by round, every count in turn, so that the machine's noise
         * falls on all of them alike */
        for (int r = 0; r < rounds; r++)
                for (int s = 0; s < nres; s++)
                        if (res[s].done == -1)
                                measure_round(&res[s], res[s].n >= 100000 ? 1 : lists);
        for (int s = 0; s < nres; s++)
                if (res[s].done == -1)
                        summarise_all(&res[s]);
        cleanup();

        /* the references: latency against the smallest region count,
         * growth against 1,000 (or the smallest of the kind measured) */
        for (int s = 0; s < nres; s++)
                if (res[s].done && !res[s].slices) {
                        if (!lat || res[s].n < lat->n)
                                lat = &res[s];
                        if (!largest || res[s].n > largest->n)
                                largest = &res[s];
                }
        for (int s = 0; s < nres; s++) {
                const struct size_result *ref = NULL;
                for (int k = 0; k < nres; k++)
                        if (res[k].done && res[k].slices == res[s].slices &&
                            (!ref || (ref->n < 1000 && res[k].n >= 1000)))
                                ref = &res[k];
                if (ref)
                        first = ref;
                rows_of(&res[s], ref, lat, &res[s] == largest, rows, &nrows);
        }
        if (!first)
                bench_die("no region count could be measured", 0);
        if (json) {
                print_json(rows, nrows);
        } else {
                print_table(rows, nrows);
                printf("\nper count: %d rounds (a fresh broker each), %d lists per round; "
                       "medians\n", rounds, lists);
                for (int s = 0; s < nres; s++)
                        if (res[s].done)
                                printf("%zu %s: list wall %.1f ms, broker CPU %.1f ms "
                                       "(stat ticks %.0f ms); create wall %.2f us/region; "
                                       "control blocks %.0f B/region resident; "
                                       "%.2f descriptors/region\n",
                                       res[s].n, res[s].slices ? "slices" : "regions",
                                       res[s].list_wall_ms.med, res[s].list_cpu_ms.med,
                                       res[s].list_ticks_ms, res[s].create_us.med,
                                       res[s].shmem_bytes, res[s].fds);
        }
        return 0;
}
