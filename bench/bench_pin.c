/* SPDX-License-Identifier: MIT */
/*
 * The fd API's pin path: an unpin+pin pair through the classic
 * calls (ashmem_unpin_region + ashmem_pin_region), of 1 page and of 256
 * pages, against one fstat() of the region descriptor measured in the same
 * run, and of 65,536 pages (shown, no target). Targets: a 1-page pair
 * costs at most 2.1 fstat() calls (the pin engine's), a 256-page pair at
 * most 3. Each call is one fstat system call (the identity check, as a
 * kernel driver's ioctl is one system call) plus a table lookup cached for
 * the thread and a compare-and-swap of a state word, so a pair is two
 * fstat() calls and a little. The library makes the fstat system call
 * itself where the kernel's struct stat is the C library's (x86-64); the
 * baseline is glibc's fstat(), an fstatat() with an empty path that the
 * kernel checks, which costs a few percent more.
 *
 * Beside them, for information: the pair against getppid() (the cheapest
 * round trip into the kernel), a 1-page pin status against fstat(), and
 * fstat() against getppid().
 *
 * The operations run in the same process, interleaved round by round (the
 * order rotates), so the machine's noise falls on all of them alike; each
 * figure is the median over the rounds of the mean time of one operation in
 * a batch, with the smallest and largest round shown as the spread.
 *
 * To add a row: add an op_* function,
 * an entry in ops[], and an entry in rows[] naming it and its baseline.
 *
 * Usage: bench_pin [--json] [--quick]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#define REGION_PAGES (HUGE_PAGES + BIG_FIRST)
#define BIG_PAGES 256
#define HUGE_PAGES 65536
/* the 256-page range starts one page in: 5 bitmap words, not 4 */
#define BIG_FIRST 1

static int region_fd;
static size_t page;

/* ------------------------------------------------------------ operations
 * Each returns < 0 on failure; the loop checks it, so a broken call cannot
 * pass for a fast one. */

static int op_pair1(void)
{
        if (ashmem_unpin_region(region_fd, page, page) != 0)
                return -1;
        return ashmem_pin_region(region_fd, page, page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_pair256(void)
{
        size_t off = BIG_FIRST * page, len = BIG_PAGES * page;

        if (ashmem_unpin_region(region_fd, off, len) != 0)
                return -1;
        return ashmem_pin_region(region_fd, off, len) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_pair_huge(void)
{
        size_t off = BIG_FIRST * page, len = HUGE_PAGES * page;

        if (ashmem_unpin_region(region_fd, off, len) != 0)
                return -1;
        return ashmem_pin_region(region_fd, off, len) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_status1(void)
{
        return ashmem_pin_status(region_fd, page, page) == ASHMEM_IS_PINNED ? 0 : -1;
}

static int op_fstat(void)
{
        struct stat st;

        return fstat(region_fd, &st);
}

static int op_getppid(void)
{
        return getppid() > 0 ? 0 : -1;
}

static struct bench_op ops[] = {
        { "pair1", op_pair1, 20000, { 0 } },
        { "pair256", op_pair256, 20000, { 0 } },
        { "pair65536", op_pair_huge, 400, { 0 } },
        { "status1", op_status1, 40000, { 0 } },
        { "fstat", op_fstat, 40000, { 0 } },
        { "getppid", op_getppid, 40000, { 0 } },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

struct row_def {
        const char *name;
        const char *ours, *base;   /* op names */
        double target;             /* ratio at most this; 0: information */
};

static const struct row_def rows[] = {
        { "fd pin+unpin pair (1 page) vs fstat()", "pair1", "fstat", 2.1 },
        { "fd pin+unpin pair (256 pages) vs fstat()", "pair256", "fstat", 3.0 },
        { "fd pin+unpin pair (65,536 pages) vs fstat()", "pair65536", "fstat", 0 },
        { "fd pin+unpin pair (1 page) vs getppid()", "pair1", "getppid", 0 },
        { "fd pin status (1 page) vs fstat()", "status1", "fstat", 0 },
        { "fstat() vs getppid()", "fstat", "getppid", 0 },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* ---------------------------------------------------------------- output */

static const struct bench_style style = {
        .name_width = 44, .cell_width = 22, .ns_digits = 0, .scaled = 0,
        .strict = 0, .json_digits = 1,
};

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, div;
        struct bench_row res[NROWS];

        bench_options(argc, argv, &opt);
        json = opt.json;
        quick = opt.quick;
        rounds = quick ? 5 : 31;
        div = quick ? 20 : 1;
        page = (size_t)sysconf(_SC_PAGESIZE);

        region_fd = ashmem_create_region("bench-pin", REGION_PAGES * page);
        if (region_fd < 0)
                bench_die("ashmem_create_region", errno);
        /* the pin path must really be the shared-state one: a region gets
         * its control block at its first unpin */
        if (ashmem_unpin_region(region_fd, 0, page) < 0 ||
            ashmem_pin_region(region_fd, 0, page) < 0)
                bench_die("the first unpin", errno);
        {
                ashmem_stats st;
                int r = ashmem_get_stats(region_fd, &st);
                if (r < 0)
                        bench_die("ashmem_get_stats", -r);
                if (!st.shared_state || !st.writable_state)
                        bench_die("no writable pin state", ENOTSUP);
        }

        /* warm up (code, caches, the table entry), then the rounds */
        bench_op_rounds(ops, NOPS, rounds, div);
        /* nothing may be left unpinned */
        if (ashmem_pin_status(region_fd, 0, 0) != ASHMEM_IS_PINNED)
                bench_die("region left unpinned", EIO);

        for (size_t i = 0; i < NROWS; i++) {
                res[i].name = rows[i].name;
                res[i].ours = bench_summarise(bench_op_named(ops, NOPS, rows[i].ours)->ns, rounds);
                res[i].base = bench_summarise(bench_op_named(ops, NOPS, rows[i].base)->ns, rounds);
                res[i].target = rows[i].target;
                res[i].unit = "ns";
        }
        if (json) {
                bench_print_json(res, (int)NROWS, &style);
        } else {
                bench_print_table(res, (int)NROWS, &style);
                printf("\nmedian of %d interleaved rounds; [min..max] over the rounds; "
                       "page %zu bytes; 256- and 65,536-page ranges at page %d\n", rounds, page,
                       BIG_FIRST);
        }
        close(region_fd);
        return 0;
}
