/* SPDX-License-Identifier: MIT */
/*
 * What the bench programs (bench/bench_*.c) share: the clock, dying with the
 * program's name, --json/--quick, the median and spread over rounds, pinning
 * to a CPU, and the table and JSON output of a row "ours vs baseline" with
 * its spread (the row shape bench/run.sh checks).
 */
#ifndef BENCH_SUPPORT_BENCH_H
#define BENCH_SUPPORT_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* the most rounds bench_summarise() takes */
#define BENCH_MAX_ROUNDS 64

struct bench_stat3 { double med, min, max; };

struct bench_opts { int json, quick; };

/* CLOCK_MONOTONIC in ns. */
int64_t bench_now_ns(void);

/* "PROGRAM: what: strerror(err)" (": strerror" left out when err is 0) on
 * stderr, exit status 1. */
__attribute__((noreturn)) void bench_die(const char *what, int err);

/* 1 if arg is --json or --quick (and o now says so), else 0. */
int bench_option(const char *arg, struct bench_opts *o);
/* Every argument must be --json or --quick; otherwise the usage line and
 * exit status 2. */
void bench_options(int argc, char **argv, struct bench_opts *o);

/* The median, least and greatest of n values (1 <= n <= BENCH_MAX_ROUNDS). */
struct bench_stat3 bench_summarise(const double *v, int n);

/* Pin every thread of process pid (0: this one, and so what it forks next)
 * to cpu, or let it run anywhere (cpu < 0). */
void bench_set_cpu(pid_t pid, int cpu);

/* The ashmemctl of this build (../ashmemctl beside the directory of the
 * running bench program) into buf; exits if it is not there. */
void bench_ashmemctl(char *buf, size_t len);

/* A process's CPU time in ns: the sum over its threads of schedstat's
 * first field (time on a CPU). */
int64_t bench_cpu_ns(pid_t pid);

/* Sleep ms milliseconds (all of them, signals or not). */
void bench_nap_ms(int ms);
/* Write all len bytes of buf to fd: 0, or -errno (-EIO for a write of
 * nothing). */
int bench_write_all(int fd, const void *buf, size_t len);

/* Wait for the n processes of pids; one that did not exit with status 0
 * ends the program ("what failed"). */
void bench_reap(const pid_t *pids, int n, const char *what);

/* Clients asking at once for a fixed window. k processes are forked; each
 * calls start(arg) (connect and one request, so that it is warm) and waits
 * at a start line with the others, then calls once(arg) until the window
 * of window_ms is over (a flag in shared memory), and reports how many it
 * completed (one in flight at the end counts: at most one a process).
 * Returns operations per second of all processes over the window; when
 * server > 0 and cpu_ns is not NULL, *cpu_ns is server's CPU time per
 * operation. Every process works for the whole window: a fixed number of
 * operations each would end with the last process alone, and that tail
 * measures the scheduler's fairness, not the load. A start or once that
 * fails (< 0: -errno) ends the program with what and the error. */
struct bench_clients {
        int (*start)(void *arg);
        int (*once)(void *arg);
        void *arg;
        const char *what;
};
double bench_window(const struct bench_clients *c, int k, int window_ms, pid_t server,
                    double *cpu_ns);

/* An operation timed in interleaved rounds: ns[r] is the mean ns of one
 * call of fn in round r's batch (per_batch calls, divided by div). */
struct bench_op {
        const char *name;
        int (*fn)(void);           /* 0, or < 0 with errno on failure */
        int per_batch;             /* calls per batch, full run */
        double ns[BENCH_MAX_ROUNDS];
};

/* A warm-up batch of every op, then rounds rounds in which every op runs one
 * batch, the first op rotating round by round so the machine's noise falls
 * on all alike. Dies if a call fails. */
void bench_op_rounds(struct bench_op *ops, size_t n, int rounds, int div);

/* The op called name; dies if there is none. */
const struct bench_op *bench_op_named(const struct bench_op *ops, size_t n, const char *name);

/* A row: ours against a baseline, both as median and spread. */
struct bench_row {
        const char *name;
        struct bench_stat3 ours, base;
        double target;             /* ours/base at most (below, if strict); 0: none */
        const char *unit;
        int higher;                /* a throughput: the target is a least ratio */
        const char *extra;         /* more JSON fields (", \"k\": v"), or NULL */
};

/* How a program shows its rows. */
struct bench_style {
        int name_width, cell_width;
        int ns_digits;             /* decimals of a time below 1 us */
        int scaled;                /* a time of 1 us or more in us or ms */
        int strict;                /* the target is met below it, not at it */
        int json_digits;           /* decimals of ours, baseline and spread */
};

/* ns as "12 ns" (ns_digits decimals), or scaled "1.50 us", "2.25 ms". */
void bench_fmt_time(char *buf, size_t len, double ns, const struct bench_style *st);
void bench_print_table(const struct bench_row *rows, int n, const struct bench_style *st);
void bench_print_json(const struct bench_row *rows, int n, const struct bench_style *st);

#endif
