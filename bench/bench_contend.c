/* SPDX-License-Identifier: MIT */
/*
 * Pin contention: 1, 2 and 4 processes unpinning and pinning again as fast
 * as they can, through the heap API (ashmem_heap_unpin + ashmem_heap_pin)
 * and through the descriptor API (ashmem_unpin_region +
 * ashmem_pin_region), in three placements:
 *
 *   same page        every process works on page 1 of one region
 *   different pages  process i works on page 1 + 256 i of one region:
 *                    pages whose state words lie in different cache lines
 *                    of the control block (32 pages a word, 8 words a
 *                    line), as independent pages of a big region are;
 *                    neighbouring pages share one word, whose
 *                    compare-and-swap they contend for like one page
 *   own regions      each process works on page 1 of a region of its own
 *
 * The figure is the throughput of all processes together (unpin+pin pairs
 * per second: the sum over the processes of pairs / their own running
 * time), and the ratio is that against one process on the same path in
 * the same round. Targets (the pin engine's): 2 processes on different
 * pages of one region at least 1.6x one process, on the same page at
 * least 0.8x. The other rows are shown without a target (with 4
 * processes on a 2-CPU machine, 2x is the most there is).
 *
 * The processes are forked for every measurement, wait at a start line
 * until all are ready, and run for a fixed time each; nothing is pinned to
 * a CPU. A round measures every combination, in an order that rotates from
 * round to round; each figure is the median over the rounds, with the
 * smallest and largest round as the spread. Every pin must report the
 * range not purged (nothing purges here), so a failing call cannot pass
 * for a fast one.
 *
 * Usage: bench_contend [--json] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#define MAX_ROUNDS 16
#define MAX_PROCS 4
#define REGION_PAGES 2048   /* room for pages 512 apart */
#define LINE_PAGES 512     /* pages whose state fills four cache lines, 16
                              pages a state word (more than the two the
                              adjacent-line prefetcher pairs) */

enum path { HEAP, FD, NPATHS };
enum place { SAME, DIFFERENT, OWN, NPLACES };

static const char *const path_name[NPATHS] = { "heap", "fd" };
static const char *const place_name[NPLACES] = {
        "same page", "different pages (cache lines apart), one region", "own regions" };
static const int procs[] = { 1, 2, 4 };
#define NPROCS (int)(sizeof(procs) / sizeof(procs[0]))

static size_t page;

struct result { uint64_t pairs; int64_t ns; int err; };

static ssize_t read_all(int fd, void *buf, size_t len)
{
        char *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t n = read(fd, p + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* One process' run: pairs on page pg of fd (or of a region of its own)
 * for run_ns after the start line. */
static struct result worker(enum path path, int fd, size_t pg, int64_t run_ns, int ready,
                            int start)
{
        struct result res = { 0, 0, 0 };
        ashmem_heap *heap = NULL;
        size_t off = pg * page;
        int64_t t0, now;
        char c;
        int r;

        if (fd < 0 && (fd = ashmem_create_region("bench-contend", REGION_PAGES * page)) < 0) {
                res.err = errno;
                return res;
        }
        if (path == HEAP && (r = ashmem_heap_adopt(fd, 0, &heap)) < 0) {
                res.err = -r;
                return res;
        }
        if (bench_write_all(ready, "r", 1) < 0 || read_all(start, &c, 1) != 1) {
                res.err = EPIPE;
                return res;
        }
        t0 = bench_now_ns();
        do {
                for (int i = 0; i < 256; i++) {
                        if (path == HEAP) {
                                if (ashmem_heap_unpin(heap, off, page) != 0 ||
                                    ashmem_heap_pin(heap, off, page) != ASHMEM_NOT_PURGED)
                                        res.err = EIO;
                        } else {
                                if (ashmem_unpin_region(fd, off, page) != 0 ||
                                    ashmem_pin_region(fd, off, page) != ASHMEM_NOT_PURGED)
                                        res.err = errno ? errno : EIO;
                        }
                        if (res.err)
                                return res;
                }
                res.pairs += 256;
                now = bench_now_ns();
        } while (now - t0 < run_ns);
        res.ns = now - t0;
        if (heap)
                ashmem_heap_unref(heap);
        return res;
}

/* Pairs per second of n processes together. */
static double measure(enum path path, enum place place, int n, int64_t run_ns)
{
        int ready[2], start[2], out[2], fd = -1;
        pid_t pid[MAX_PROCS];
        double total = 0;

        if (place != OWN &&
            (fd = ashmem_create_region("bench-contend", REGION_PAGES * page)) < 0)
                bench_die("ashmem_create_region", errno);
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(start, O_CLOEXEC) < 0 ||
            pipe2(out, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        for (int i = 0; i < n; i++) {
                pid[i] = fork();
                if (pid[i] < 0)
                        bench_die("fork", errno);
                if (pid[i] == 0) {
                        struct result res;
                        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                                _exit(126);
                        close(ready[0]);
                        close(start[1]);
                        close(out[0]);
                        res = worker(path, fd, place == DIFFERENT ? 1 + LINE_PAGES * (size_t)i : 1,
                                     run_ns, ready[1], start[0]);
                        _exit(bench_write_all(out[1], &res, sizeof(res)) < 0 ? 125 : 0);
                }
        }
        close(ready[1]);
        close(start[0]);
        close(out[1]);
        for (int i = 0; i < n; i++) {
                char c;
                if (read_all(ready[0], &c, 1) != 1)
                        bench_die("a worker did not get ready", EPIPE);
        }
        {
                char go[MAX_PROCS];
                memset(go, 'g', sizeof(go));
                if (bench_write_all(start[1], go, (size_t)n) < 0)
                        bench_die("start", EPIPE);
        }
        for (int i = 0; i < n; i++) {
                struct result res;
                if (read_all(out[0], &res, sizeof(res)) != (ssize_t)sizeof(res))
                        bench_die("a worker gave no result", EPIPE);
                if (res.err)
                        bench_die("a worker's pin or unpin", res.err);
                total += (double)res.pairs * 1e9 / (double)res.ns;
        }
        bench_reap(pid, n, "a worker");
        close(ready[0]);
        close(start[1]);
        close(out[0]);
        if (fd >= 0)
                close(fd);
        return total;
}

static const struct bench_style style = {
        .name_width = 64, .cell_width = 34, .ns_digits = 0, .scaled = 0,
        .strict = 0, .json_digits = 2,
};

int main(int argc, char **argv)
{
        /* pairs/s, per round: one process per path, then n processes per
         * path, placement and count (index 0 of procs[] is the one) */
        static double one[NPATHS][MAX_ROUNDS], many[NPATHS][NPLACES][NPROCS][MAX_ROUNDS];
        struct bench_row rows[NPATHS * NPLACES * NPROCS];
        static char names[NPATHS * NPLACES * NPROCS][128];
        struct bench_opts opt = { 0, 0 };
        int rounds, nrows = 0, ncombo = 0;
        int64_t run_ns;

        bench_options(argc, argv, &opt);
        rounds = opt.quick ? 3 : 7;
        run_ns = opt.quick ? 40000000 : 150000000;
        page = (size_t)sysconf(_SC_PAGESIZE);

        /* the combinations: one process per path, then the others */
        struct combo { int path, place, k; } combos[NPATHS * (1 + NPLACES * (NPROCS - 1))];
        for (int p = 0; p < NPATHS; p++) {
                combos[ncombo++] = (struct combo){ p, SAME, 0 };
                for (int pl = 0; pl < NPLACES; pl++)
                        for (int k = 1; k < NPROCS; k++)
                                combos[ncombo++] = (struct combo){ p, pl, k };
        }
        for (int r = 0; r < rounds; r++)
                for (int c = 0; c < ncombo; c++) {
                        const struct combo *x = &combos[(c + r * 5) % ncombo];
                        double v = measure((enum path)x->path, (enum place)x->place,
                                           procs[x->k], run_ns);
                        if (x->k == 0)
                                one[x->path][r] = v / 1e6;
                        else
                                many[x->path][x->place][x->k][r] = v / 1e6;
                }

        for (int p = 0; p < NPATHS; p++) {
                struct bench_stat3 base = bench_summarise(one[p], rounds);
                for (int k = 1; k < NPROCS; k++)
                        for (int pl = 0; pl < NPLACES; pl++) {
                                struct bench_row *w = &rows[nrows];
                                double target = 0;
                                if (procs[k] == 2 && pl == DIFFERENT)
                                        target = 1.6;
                                else if (procs[k] == 2 && pl == SAME)
                                        target = 0.8;
                                snprintf(names[nrows], sizeof(names[nrows]),
                                         "%s pin+unpin, %d processes, %s vs 1 process",
                                         path_name[p], procs[k], place_name[pl]);
                                *w = (struct bench_row){ names[nrows],
                                                         bench_summarise(many[p][pl][k], rounds),
                                                         base, target, "Mpairs/s", 1, NULL };
                                nrows++;
                        }
        }
        if (opt.json) {
                bench_print_json(rows, nrows, &style);
        } else {
                bench_print_table(rows, nrows, &style);
                printf("\nmillions of unpin+pin pairs per second, all processes together; "
                       "%d rounds of %.0f ms per measurement\n", rounds, (double)run_ns / 1e6);
        }
        return 0;
}
