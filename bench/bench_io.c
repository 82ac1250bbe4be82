/* SPDX-License-Identifier: MIT */
/*
 * ashmemctl read/write throughput against the plain-file tools a script
 * would use on a /dev/shm file instead:
 *
 *   write: `ashmemctl write REGION FILE`  vs  `dd if=FILE of=/dev/shm/X bs=1M`
 *   read into a file: `ashmemctl read REGION >OUT`  vs  `cat /dev/shm/X >OUT`
 *   read into a pipe: `ashmemctl read REGION | cat >/dev/null`
 *                 vs  `cat /dev/shm/X | cat >/dev/null`
 *   write from a pipe: `cat FILE | ashmemctl write REGION`
 *                  vs  `cat FILE | dd of=/dev/shm/X bs=1M`
 *
 * OUT is a regular file beside the source, truncated before each run (not
 * timed), so both readers move every byte. Nothing is read into /dev/null:
 * write(2) to /dev/null takes the length and no bytes, so such a row would
 * time no data movement at all.
 *
 * Target: at least 0.9x the baseline's throughput (ratio = ours/baseline,
 * higher is better). Whole commands are timed, process start and the
 * broker round trip included. Both sides write into fresh memory each round
 * (a new region; dd truncates its file), from the same source file, which
 * is in the page cache for both. Variants run interleaved round by round so
 * the machine's noise falls on all alike; each figure is the median over
 * the rounds, with the slowest and fastest round as the spread.
 *
 * A broker is started on a socket in a temporary directory and stopped at
 * the end. Usage: bench_io [--json] [--quick] [--ashmemctl PATH]
 * (default: ../ashmemctl next to this program's directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/bench.h"

#define MAX_ROUNDS 16
#define NROWS 4

static char ctl[PATH_MAX], sock[PATH_MAX], dir[PATH_MAX], src[PATH_MAX], shm[PATH_MAX],
            dst[PATH_MAX];
static int broker_up;

/* Start argv with stdin from in, stdout to out (-1: inherit). */
static pid_t spawn(char *const argv[], int in, int out)
{
        pid_t pid = fork();

        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                if (in >= 0 && dup2(in, STDIN_FILENO) < 0)
                        _exit(127);
                if (out >= 0 && dup2(out, STDOUT_FILENO) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static void reap(pid_t pid, char *const argv[])
{
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_io: %s %s failed (status %d)\n", argv[0],
                        argv[1] ? argv[1] : "", status);
                exit(1);
        }
}

static int devnull(void)
{
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                bench_die("/dev/null", errno);
        return fd;
}

/* Run argv to completion (stdout to /dev/null if quiet); its time in ns. */
static int64_t run(char *const argv[], int quiet)
{
        int out = quiet ? devnull() : -1;
        int64_t t0 = bench_now_ns();
        pid_t pid = spawn(argv, -1, out);

        reap(pid, argv);
        t0 = bench_now_ns() - t0;
        if (out >= 0)
                close(out);
        return t0;
}

/* argv >dst, dst truncated first (not timed); its time in ns. */
static int64_t run_to_file(char *const argv[])
{
        int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int64_t t0;
        pid_t pid;

        if (out < 0)
                bench_die(dst, errno);
        t0 = bench_now_ns();
        pid = spawn(argv, -1, out);
        reap(pid, argv);
        t0 = bench_now_ns() - t0;
        if (close(out) < 0)
                bench_die(dst, errno);
        return t0;
}

/* The size of dst: every byte must have gone there. */
static void check_dst(size_t size)
{
        struct stat st;

        if (stat(dst, &st) < 0)
                bench_die(dst, errno);
        if ((size_t)st.st_size != size) {
                fprintf(stderr, "bench_io: %s has %lld bytes, not %zu\n", dst,
                        (long long)st.st_size, size);
                exit(1);
        }
}

/* a | b >/dev/null; the time of the pipeline in ns. */
static int64_t run_pipe(char *const a[], char *const b[])
{
        int p[2], out = devnull();
        int64_t t0;
        pid_t pa, pb;

        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe", errno);
        t0 = bench_now_ns();
        pa = spawn(a, -1, p[1]);
        pb = spawn(b, p[0], out);
        close(p[0]);
        close(p[1]);
        reap(pa, a);
        reap(pb, b);
        t0 = bench_now_ns() - t0;
        close(out);
        return t0;
}

static void ctl_do(const char *a1, const char *a2, const char *a3, const char *a4)
{
        char *argv[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)a1,
                         (char *)a2, (char *)a3, (char *)a4, NULL };
        run(argv, 1);
}

static void cleanup(void)
{
        if (broker_up) {
                char *argv[] = { ctl, (char *)"-q", (char *)"--socket", sock,
                                 (char *)"broker", (char *)"stop", NULL };
                broker_up = 0;
                run(argv, 1);
        }
        if (src[0])
                unlink(src);
        if (shm[0])
                unlink(shm);
        if (dst[0])
                unlink(dst);
        if (dir[0]) {
                char p[PATH_MAX + 16];
                /* what the broker's start-up leaves beside its socket */
                snprintf(p, sizeof(p), "%s.lock", sock);
                unlink(p);
                snprintf(p, sizeof(p), "%s.start", sock);
                unlink(p);
                if (rmdir(dir) < 0)
                        fprintf(stderr, "bench_io: %s: %s\n", dir, strerror(errno));
        }
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);        /* runs cleanup() */
}

/* A source file of size bytes, not all zeros (so nothing can skip it). */
static void make_source(size_t size)
{
        size_t chunk = (size_t)1 << 20;
        unsigned char *buf = malloc(chunk);
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        int fd;

        if (!buf)
                bench_die("malloc", ENOMEM);
        for (size_t i = 0; i < chunk; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                buf[i] = (unsigned char)x;
        }
        fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                bench_die(src, errno);
        for (size_t done = 0; done < size; done += chunk) {
                buf[0]++;       /* every MiB differs */
                for (size_t o = 0; o < chunk;) {
                        ssize_t n = write(fd, buf + o, chunk - o);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                bench_die(src, errno);
                        o += (size_t)n;
                }
        }
        if (close(fd) < 0)
                bench_die(src, errno);
        free(buf);
}

/* Throughput figures (MiB/s) of the rounds. */
static struct bench_stat3 stats(const int64_t *ns, int n, size_t bytes)
{
        double v[MAX_ROUNDS];

        for (int i = 0; i < n; i++)
                v[i] = (double)bytes / (1 << 20) / ((double)ns[i] / 1e9);
        return bench_summarise(v, n);
}

struct row {
        const char *name;
        int64_t ours[MAX_ROUNDS], base[MAX_ROUNDS];
};

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds;
        size_t size;
        char sizearg[32];
        struct row rows[NROWS] = {
                { .name = "ashmemctl write (file -> region) vs dd bs=1M -> /dev/shm" },
                { .name = "ashmemctl read > file vs cat /dev/shm file > file" },
                { .name = "ashmemctl read | cat vs cat /dev/shm file | cat" },
                { .name = "cat file | ashmemctl write vs cat file | dd bs=1M -> /dev/shm" },
        };
        const double target = 0.9;

        for (int i = 1; i < argc; i++) {
                if (bench_option(argv[i], &opt))
                        continue;
                if (strcmp(argv[i], "--ashmemctl") == 0 && i + 1 < argc) {
                        snprintf(ctl, sizeof(ctl), "%s", argv[++i]);
                } else {
                        fprintf(stderr, "usage: bench_io [--json] [--quick] [--ashmemctl PATH]\n");
                        return 2;
                }
        }
        json = opt.json;
        quick = opt.quick;
        if (!ctl[0])
                bench_ashmemctl(ctl, sizeof(ctl));
        if (access(ctl, X_OK) < 0)
                bench_die(ctl, errno);
        size = quick ? (size_t)256 << 20 : (size_t)1 << 30;
        rounds = quick ? 3 : 7;
        snprintf(sizearg, sizeof(sizearg), "%zu", size);

        snprintf(dir, sizeof(dir), "/tmp/bench-io.XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (snprintf(sock, sizeof(sock), "%s/broker.sock", dir) >= (int)sizeof(sock) ||
            snprintf(src, sizeof(src), "%s/source", dir) >= (int)sizeof(src) ||
            snprintf(dst, sizeof(dst), "%s/out", dir) >= (int)sizeof(dst))
                bench_die("path too long", ENAMETOOLONG);
        snprintf(shm, sizeof(shm), "/dev/shm/bench-io-%ld", (long)getpid());
        make_source(size);
        {
                char *argv2[] = { ctl, (char *)"-q", (char *)"--socket", sock,
                                  (char *)"broker", (char *)"start", NULL };
                run(argv2, 1);
                broker_up = 1;
        }
        for (int r = 0; r < rounds; r++) {
                char of[PATH_MAX + 8];
                char *w_ours[] = { ctl, (char *)"--socket", sock, (char *)"write", (char *)"io", src, NULL };
                char *w_base[] = { (char *)"dd", (char *)"bs=1M", (char *)"status=none", NULL, NULL, NULL };
                char *r_ours[] = { ctl, (char *)"--socket", sock, (char *)"read", (char *)"io", NULL };
                char *r_base[] = { (char *)"cat", shm, NULL };
                char *cat[] = { (char *)"cat", NULL };
                char *cat_src[] = { (char *)"cat", src, NULL };
                char *w_base_pipe[] = { (char *)"dd", (char *)"bs=1M", (char *)"status=none", NULL, NULL };
                char *w_ours_pipe[] = { ctl, (char *)"--socket", sock, (char *)"write", (char *)"io", NULL };
                char iff[PATH_MAX + 8];

                snprintf(iff, sizeof(iff), "if=%s", src);
                snprintf(of, sizeof(of), "of=%s", shm);
                w_base[3] = iff;
                w_base[4] = of;
                w_base_pipe[3] = of;
                /* fresh memory for both writers; not timed */
                if (r > 0)
                        ctl_do("unshare", "io", NULL, NULL);
                ctl_do("create", "io", sizearg, NULL);
                if (unlink(shm) < 0 && errno != ENOENT)
                        bench_die(shm, errno);
                if (r % 2) {
                        rows[0].base[r] = run(w_base, 1);
                        rows[0].ours[r] = run(w_ours, 1);
                } else {
                        rows[0].ours[r] = run(w_ours, 1);
                        rows[0].base[r] = run(w_base, 1);
                }
                /* A and B alternate which goes first, round by round */
                if (r % 2) {
                        rows[1].base[r] = run_to_file(r_base);
                        check_dst(size);
                        rows[1].ours[r] = run_to_file(r_ours);
                        check_dst(size);
                        rows[2].base[r] = run_pipe(r_base, cat);
                        rows[2].ours[r] = run_pipe(r_ours, cat);
                } else {
                        rows[1].ours[r] = run_to_file(r_ours);
                        check_dst(size);
                        rows[1].base[r] = run_to_file(r_base);
                        check_dst(size);
                        rows[2].ours[r] = run_pipe(r_ours, cat);
                        rows[2].base[r] = run_pipe(r_base, cat);
                }
                if (unlink(dst) < 0)
                        bench_die(dst, errno);
                /* from a pipe, into fresh memory again */
                ctl_do("unshare", "io", NULL, NULL);
                ctl_do("create", "io", sizearg, NULL);
                if (unlink(shm) < 0)
                        bench_die(shm, errno);
                if (r % 2) {
                        rows[3].base[r] = run_pipe(cat_src, w_base_pipe);
                        rows[3].ours[r] = run_pipe(cat_src, w_ours_pipe);
                } else {
                        rows[3].ours[r] = run_pipe(cat_src, w_ours_pipe);
                        rows[3].base[r] = run_pipe(cat_src, w_base_pipe);
                }
        }
        if (json)
                printf("[\n");
        else
                printf("%-62s %-26s %-26s %6s %7s %s\n", "benchmark (MiB/s, higher is better)",
                       "ours [min..max]", "baseline [min..max]", "ratio", "target", "meets");
        for (int i = 0; i < NROWS; i++) {
                struct bench_stat3 o = stats(rows[i].ours, rounds, size), b = stats(rows[i].base, rounds, size);
                double ratio = o.med / b.med;
                if (json) {
                        printf("  {\"name\": \"%s\", \"ours\": %.1f, \"baseline\": %.1f, "
                               "\"ratio\": %.3f, \"target\": %.2f, \"meets\": %s, \"unit\": \"MiB/s\", "
                               "\"higher_is_better\": true, \"spread\": {\"ours_min\": %.1f, "
                               "\"ours_max\": %.1f, \"baseline_min\": %.1f, \"baseline_max\": %.1f}, "
                               "\"bytes\": %zu, \"rounds\": %d}%s\n",
                               rows[i].name, o.med, b.med, ratio, target,
                               ratio >= target ? "true" : "false", o.min, o.max, b.min, b.max,
                               size, rounds, i < NROWS - 1 ? "," : "");
                } else {
                        char os[64], bs[64], t[16];
                        snprintf(os, sizeof(os), "%.0f [%.0f..%.0f]", o.med, o.min, o.max);
                        snprintf(bs, sizeof(bs), "%.0f [%.0f..%.0f]", b.med, b.min, b.max);
                        snprintf(t, sizeof(t), ">=%.2f", target);
                        printf("%-62s %-26s %-26s %6.2f %7s %s\n", rows[i].name, os, bs, ratio, t,
                               ratio >= target ? "yes" : "NO");
                }
        }
        if (json)
                printf("]\n");
        else
                printf("\n%zu MiB per transfer, %d rounds, median; whole commands timed\n",
                       size >> 20, rounds);
        return 0;
}
