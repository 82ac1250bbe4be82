/* SPDX-License-Identifier: MIT */
/* What the bench programs share (see bench.h). */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_die(const char *what, int err)
{
        fprintf(stderr, "%s: %s%s%s\n", program_invocation_short_name, what,
                err ? ": " : "", err ? strerror(err) : "");
        exit(1);
}

int bench_option(const char *arg, struct bench_opts *o)
{
        if (strcmp(arg, "--json") == 0)
                o->json = 1;
        else if (strcmp(arg, "--quick") == 0)
                o->quick = 1;
        else
                return 0;
        return 1;
}

void bench_options(int argc, char **argv, struct bench_opts *o)
{
        for (int i = 1; i < argc; i++)
                if (!bench_option(argv[i], o)) {
                        fprintf(stderr, "usage: %s [--json] [--quick]\n",
                                program_invocation_short_name);
                        exit(2);
                }
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

struct bench_stat3 bench_summarise(const double *v, int n)
{
        double s[BENCH_MAX_ROUNDS];
        struct bench_stat3 r;

        if (n < 1 || n > BENCH_MAX_ROUNDS)
                bench_die("bench_summarise: rounds out of range", EINVAL);
        memcpy(s, v, (size_t)n * sizeof(*s));
        qsort(s, (size_t)n, sizeof(*s), cmp_double);
        r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
        r.min = s[0];
        r.max = s[n - 1];
        return r;
}

void bench_set_cpu(pid_t pid, int cpu)
{
        char path[64];
        cpu_set_t set;
        struct dirent *de;
        DIR *d;

        CPU_ZERO(&set);
        if (cpu >= 0) {
                CPU_SET(cpu, &set);
        } else {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                for (long i = 0; i < n && i < CPU_SETSIZE; i++)
                        CPU_SET((int)i, &set);
        }
        if (!pid) {
                if (sched_setaffinity(0, sizeof(set), &set) < 0)
                        bench_die("sched_setaffinity", errno);
                return;
        }
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        d = opendir(path);
        if (!d)
                bench_die(path, errno);
        /* a thread may end between readdir() and sched_setaffinity() */
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' &&
                    sched_setaffinity((pid_t)atoi(de->d_name), sizeof(set), &set) < 0 &&
                    errno != ESRCH)
                        bench_die("sched_setaffinity", errno);
        closedir(d);
}

void bench_fmt_time(char *buf, size_t len, double ns, const struct bench_style *st)
{
        if (st->scaled && ns >= 1e6)
                snprintf(buf, len, "%.2f ms", ns / 1e6);
        else if (st->scaled && ns >= 1e3)
                snprintf(buf, len, "%.2f us", ns / 1e3);
        else
                snprintf(buf, len, "%.*f ns", st->ns_digits, ns);
}

static void fmt_cell(char *buf, size_t len, const struct bench_stat3 *s, const char *unit,
                     const struct bench_style *st)
{
        char a[32], b[32], c[32];

        if (strcmp(unit, "ns") != 0) {
                /* not a time: the figures in their own unit */
                snprintf(buf, len, "%.*f %s [%.*f..%.*f]", st->json_digits, s->med, unit,
                         st->json_digits, s->min, st->json_digits, s->max);
                return;
        }
        if (!st->scaled) {
                /* one unit for the three: "12 ns [10..15]" */
                snprintf(buf, len, "%.*f ns [%.*f..%.*f]", st->ns_digits, s->med,
                         st->ns_digits, s->min, st->ns_digits, s->max);
                return;
        }
        bench_fmt_time(a, sizeof(a), s->med, st);
        bench_fmt_time(b, sizeof(b), s->min, st);
        bench_fmt_time(c, sizeof(c), s->max, st);
        snprintf(buf, len, "%s [%s..%s]", a, b, c);
}

static int meets(const struct bench_row *w, double ratio, const struct bench_style *st)
{
        if (w->higher)
                return ratio >= w->target;
        return st->strict ? ratio < w->target : ratio <= w->target;
}

void bench_print_table(const struct bench_row *rows, int n, const struct bench_style *st)
{
        printf("%-*s %-*s %-*s %6s %7s %s\n", st->name_width, "benchmark",
               st->cell_width, "ours [min..max]", st->cell_width, "baseline [min..max]",
               "ratio", "target", "meets");
        for (int i = 0; i < n; i++) {
                const struct bench_row *w = &rows[i];
                char o[128], b[128], t[16];
                double ratio = w->ours.med / w->base.med;

                fmt_cell(o, sizeof(o), &w->ours, w->unit, st);
                fmt_cell(b, sizeof(b), &w->base, w->unit, st);
                if (w->target > 0)
                        snprintf(t, sizeof(t), "%s%.2f",
                                 w->higher ? ">=" : st->strict ? "<" : "<=", w->target);
                else
                        snprintf(t, sizeof(t), "-");
                printf("%-*s %-*s %-*s %6.2f %7s %s\n", st->name_width, w->name,
                       st->cell_width, o, st->cell_width, b, ratio, t,
                       w->target > 0 ? (meets(w, ratio, st) ? "yes" : "NO") : "-");
        }
}

void bench_print_json(const struct bench_row *rows, int n, const struct bench_style *st)
{
        int d = st->json_digits;

        printf("[\n");
        for (int i = 0; i < n; i++) {
                const struct bench_row *w = &rows[i];
                double ratio = w->ours.med / w->base.med;
                char t[32], m[8];

                if (w->target > 0) {
                        snprintf(t, sizeof(t), "%.2f", w->target);
                        snprintf(m, sizeof(m), "%s",
                                 meets(w, ratio, st) ? "true" : "false");
                } else {
                        snprintf(t, sizeof(t), "null");
                        snprintf(m, sizeof(m), "null");
                }
                printf("  {\"name\": \"%s\", \"ours\": %.*f, \"baseline\": %.*f, "
                       "\"ratio\": %.3f, \"target\": %s, \"meets\": %s, \"unit\": \"%s\", "
                       "\"spread\": {\"ours_min\": %.*f, \"ours_max\": %.*f, "
                       "\"baseline_min\": %.*f, \"baseline_max\": %.*f}%s%s}%s\n",
                       w->name, d, w->ours.med, d, w->base.med, ratio, t, m, w->unit,
                       d, w->ours.min, d, w->ours.max, d, w->base.min, d, w->base.max,
                       w->higher ? ", \"higher_is_better\": true" : "",
                       w->extra ? w->extra : "", i + 1 < n ? "," : "");
        }
        printf("]\n");
}

void bench_ashmemctl(char *buf, size_t len)
{
        char self[PATH_MAX], *slash;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n < 0)
                bench_die("/proc/self/exe", errno);
        self[n] = 0;
        slash = strrchr(self, '/');
        if (slash)
                *slash = 0;
        if (snprintf(buf, len, "%s/../ashmemctl", self) >= (int)len)
                bench_die("path too long", ENAMETOOLONG);
        if (access(buf, X_OK) < 0)
                bench_die(buf, errno);
}

int64_t bench_cpu_ns(pid_t pid)
{
        char path[300];
        struct dirent *de;
        int64_t sum = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        d = opendir(path);
        if (!d)
                bench_die(path, errno);
        while ((de = readdir(d))) {
                FILE *f;
                long long v;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;       /* a thread that just ended */
                if (fscanf(f, "%lld", &v) == 1)
                        sum += v;
                fclose(f);
        }
        closedir(d);
        return sum;
}

static double op_batch(const struct bench_op *o, int n)
{
        int64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++)
                if (o->fn() < 0)
                        bench_die(o->name, errno ? errno : EIO);
        return (double)(bench_now_ns() - t0) / n;
}

void bench_op_rounds(struct bench_op *ops, size_t n, int rounds, int div)
{
        if (rounds < 1 || rounds > BENCH_MAX_ROUNDS || div < 1)
                bench_die("bench_op_rounds: rounds out of range", EINVAL);
        for (size_t k = 0; k < n; k++)
                (void)op_batch(&ops[k], ops[k].per_batch / div / 4 + 1);
        for (int r = 0; r < rounds; r++)
                for (size_t k = 0; k < n; k++) {
                        struct bench_op *o = &ops[(k + (size_t)r) % n];
                        o->ns[r] = op_batch(o, o->per_batch / div + 1);
                }
}

const struct bench_op *bench_op_named(const struct bench_op *ops, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(ops[i].name, name) == 0)
                        return &ops[i];
        bench_die(name, ENOENT);
}

int bench_write_all(int fd, const void *buf, size_t len)
{
        while (len) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                buf = (const char *)buf + n;
                len -= (size_t)n;
        }
        return 0;
}

void bench_nap_ms(int ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

void bench_reap(const pid_t *pids, int n, const char *what)
{
        char msg[128];

        for (int i = 0; i < n; i++) {
                int status;
                while (waitpid(pids[i], &status, 0) < 0)
                        if (errno != EINTR)
                                bench_die("waitpid", errno);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        snprintf(msg, sizeof(msg), "%s failed", what);
                        bench_die(msg, EIO);
                }
        }
}

/* One client process of bench_window(): never returns. */
static void window_client(const struct bench_clients *c, const int *stop, int ready,
                          int go, int done)
{
        int64_t count = 0;
        char ch;
        int r;

        if ((r = c->start(c->arg)) < 0)
                bench_die(c->what, -r);
        if (bench_write_all(ready, "r", 1) < 0)
                _exit(1);
        while ((r = (int)read(go, &ch, 1)) < 0 && errno == EINTR)
                ;
        if (r != 0)
                _exit(1);
        for (; !__atomic_load_n(stop, __ATOMIC_RELAXED); count++)
                if ((r = c->once(c->arg)) < 0)
                        bench_die(c->what, -r);
        if (bench_write_all(done, &count, sizeof(count)) < 0)
                _exit(1);
        _exit(0);
}

double bench_window(const struct bench_clients *c, int k, int window_ms, pid_t server,
                    double *cpu_ns)
{
        static int *stop;
        int go[2], ready[2], done[2];
        pid_t *pids;
        int64_t t0, t1, c0 = 0, total = 0;
        char ch;

        if (!stop) {
                stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (stop == MAP_FAILED)
                        bench_die("mmap of the clients' stop flag", errno);
        }
        __atomic_store_n(stop, 0, __ATOMIC_RELAXED);
        pids = calloc((size_t)k, sizeof(*pids));
        if (!pids)
                bench_die("calloc", ENOMEM);
        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0 ||
            pipe2(done, O_CLOEXEC) < 0)
                bench_die("pipe", errno);
        fflush(NULL);
        for (int i = 0; i < k; i++) {
                pids[i] = fork();
                if (pids[i] < 0)
                        bench_die("fork", errno);
                if (pids[i] == 0) {
                        close(go[1]);
                        close(ready[0]);
                        close(done[0]);
                        window_client(c, stop, ready[1], go[0], done[1]);
                }
        }
        close(go[0]);
        close(ready[1]);
        close(done[1]);
        for (int i = 0; i < k; i++) {
                ssize_t r;
                while ((r = read(ready[0], &ch, 1)) < 0 && errno == EINTR)
                        ;
                if (r != 1)
                        bench_die("a client did not start", EIO);
        }
        if (server > 0)
                c0 = bench_cpu_ns(server);
        t0 = bench_now_ns();
        close(go[1]);           /* go */
        bench_nap_ms(window_ms);
        t1 = bench_now_ns();
        __atomic_store_n(stop, 1, __ATOMIC_RELAXED);
        for (int i = 0; i < k; i++) {
                int64_t count;
                size_t got = 0;
                while (got < sizeof(count)) {
                        ssize_t r = read(done[0], (char *)&count + got, sizeof(count) - got);
                        if (r < 0 && errno == EINTR)
                                continue;
                        if (r <= 0)
                                bench_die("a client failed", r < 0 ? errno : EIO);
                        got += (size_t)r;
                }
                total += count;
        }
        /* the operations counted have all been served */
        if (server > 0 && cpu_ns)
                *cpu_ns = total ? (double)(bench_cpu_ns(server) - c0) / (double)total : 0;
        bench_reap(pids, k, "a client");
        free(pids);
        close(ready[0]);
        close(done[0]);
        if (total == 0)
                bench_die("no operation completed in a window", EIO);
        return (double)total / ((double)(t1 - t0) / 1e9);
}
