/* SPDX-License-Identifier: MIT */
/*
 * The heap pin path: unpin+pin pairs of 1, 256 and 65,536 pages through a
 * heap handle, against one getppid() system call (the cheapest round trip
 * into the kernel, so the least any kernel driver's pin ioctl could cost).
 * Targets (the pin engine's): a 1-page pair at most 0.25 getppid(), a
 * 65,536-page pair at most 3 getppid(); the 256-page pair is shown.
 *
 * Beside it, for information: the same pair through a slice, the heap's
 * pair against the descriptor calls' (ashmem_unpin_region +
 * ashmem_pin_region, which look the region up with one fstat() each; see
 * bench_pin for that pair on its own), a pin status through the heap, and
 * adopting + releasing a heap whose mapping is already cached against
 * mapping and unmapping the region.
 *
 * The variants run in the same process, interleaved round by round, so the
 * machine's noise falls on all of them alike; each figure is the median over
 * the rounds of the mean time of one operation in a batch, with the smallest
 * and largest round shown as the spread.
 *
 * Usage: bench_heap [--json] [--quick]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#define MAX_ROUNDS 64
#define REGION_PAGES 64
/* the large ranges start one page in, as the 1-page pair */
#define MID_PAGES 256
#define HUGE_PAGES 65536
/* the heap's region: the largest range and the page before it */
#define HEAP_PAGES (HUGE_PAGES + 1)
/* mmap+munmap maps as much as the adopt's baseline always did */
#define MAP_PAGES REGION_PAGES

static ashmem_heap *heap;
static ashmem_slice *slice;
static int region_fd;
static size_t page;

/* Each operation returns < 0 on failure (the loop checks it). */

static int op_getppid(void)
{
        return getppid() > 0 ? 0 : -1;
}

static int op_heap_pair(void)
{
        if (ashmem_heap_unpin(heap, page, page) != 0)
                return -1;
        return ashmem_heap_pin(heap, page, page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_heap_pair_mid(void)
{
        if (ashmem_heap_unpin(heap, page, MID_PAGES * page) != 0)
                return -1;
        return ashmem_heap_pin(heap, page, MID_PAGES * page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_heap_pair_huge(void)
{
        if (ashmem_heap_unpin(heap, page, HUGE_PAGES * page) != 0)
                return -1;
        return ashmem_heap_pin(heap, page, HUGE_PAGES * page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_slice_pair(void)
{
        if (ashmem_slice_unpin(slice) != 0)
                return -1;
        return ashmem_slice_pin(slice) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_fd_pair(void)
{
        if (ashmem_unpin_region(region_fd, page, page) != 0)
                return -1;
        return ashmem_pin_region(region_fd, page, page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_heap_status(void)
{
        return ashmem_heap_pin_status(heap, page, page) == ASHMEM_IS_PINNED ? 0 : -1;
}

static int op_adopt(void)
{
        ashmem_heap *h;

        if (ashmem_heap_adopt(region_fd, 0, &h) < 0)
                return -1;
        if (ashmem_heap_base(h) != ashmem_heap_base(heap))
                return -1;
        ashmem_heap_unref(h);
        return 0;
}

static int op_map_unmap(void)
{
        void *p = mmap(NULL, MAP_PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED,
                       region_fd, 0);

        if (p == MAP_FAILED)
                return -1;
        return munmap(p, MAP_PAGES * page);
}

struct variant {
        const char *name;
        int (*op)(void);
        int per_batch;             /* operations per batch (full run) */
        double ns[MAX_ROUNDS];     /* mean ns per operation, per round */
};

enum { V_GETPPID, V_HEAP, V_HEAP_MID, V_HEAP_HUGE, V_SLICE, V_FD, V_STATUS, V_ADOPT, V_MAP,
       NV };

static struct variant variants[NV] = {
        [V_GETPPID] = { "getppid()", op_getppid, 200000, { 0 } },
        [V_HEAP] = { "heap unpin+pin", op_heap_pair, 200000, { 0 } },
        [V_HEAP_MID] = { "heap unpin+pin 256 pages", op_heap_pair_mid, 100000, { 0 } },
        [V_HEAP_HUGE] = { "heap unpin+pin 65536 pages", op_heap_pair_huge, 2000, { 0 } },
        [V_SLICE] = { "slice unpin+pin", op_slice_pair, 200000, { 0 } },
        [V_FD] = { "fd unpin+pin", op_fd_pair, 100000, { 0 } },
        [V_STATUS] = { "heap status", op_heap_status, 200000, { 0 } },
        [V_ADOPT] = { "heap adopt+unref", op_adopt, 5000, { 0 } },
        [V_MAP] = { "mmap+munmap", op_map_unmap, 5000, { 0 } },
};

/* Mean ns of one operation over a batch of n. */
static double batch(struct variant *v, int n)
{
        int64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++)
                if (v->op() < 0)
                        bench_die(v->name, errno ? errno : EIO);
        return (double)(bench_now_ns() - t0) / n;
}

static const struct bench_style style = {
        .name_width = 52, .cell_width = 30, .ns_digits = 1, .scaled = 1,
        .strict = 0, .json_digits = 2,
};

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, nrows = 0, r;
        struct bench_row rows[12];
        struct bench_stat3 ppid;

        bench_options(argc, argv, &opt);
        json = opt.json;
        quick = opt.quick;
        rounds = quick ? 5 : 21;
        page = (size_t)sysconf(_SC_PAGESIZE);

        r = ashmem_heap_new("bench-heap", HEAP_PAGES * page, 0, &heap);
        if (r < 0)
                bench_die("ashmem_heap_new", -r);
        region_fd = ashmem_heap_fd(heap);
        r = ashmem_slice_new(heap, page, page, &slice);
        if (r < 0)
                bench_die("ashmem_slice_new", -r);
        /* the pages the pairs cover are touched (the huge range too: its
         * pin state is what is measured, and its pages are really there) */
        memset(ashmem_heap_base(heap), 1, HEAP_PAGES * page);

        /* warm up */
        for (int v = 0; v < NV; v++)
                (void)batch(&variants[v], variants[v].per_batch / 10 + 1);
        for (int k = 0; k < rounds; k++)
                for (int j = 0; j < NV; j++) {
                        /* rotate the order so no variant always runs first */
                        struct variant *v = &variants[(j + k) % NV];
                        v->ns[k] = batch(v, quick ? v->per_batch / 10 : v->per_batch);
                }

        ppid = bench_summarise(variants[V_GETPPID].ns, rounds);
        rows[nrows++] = (struct bench_row){ "heap pin+unpin pair (1 page) vs getppid()",
                                            bench_summarise(variants[V_HEAP].ns, rounds), ppid,
                                            0.25, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "heap pin+unpin pair (256 pages) vs getppid()",
                                            bench_summarise(variants[V_HEAP_MID].ns, rounds),
                                            ppid, 0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "heap pin+unpin pair (65,536 pages) vs getppid()",
                                            bench_summarise(variants[V_HEAP_HUGE].ns, rounds),
                                            ppid, 3.0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "slice pin+unpin pair (1 page) vs getppid()",
                                            bench_summarise(variants[V_SLICE].ns, rounds), ppid,
                                            0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "heap pin+unpin pair vs fd pair (1 page)",
                                            bench_summarise(variants[V_HEAP].ns, rounds),
                                            bench_summarise(variants[V_FD].ns, rounds), 0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "heap pin status (1 page) vs getppid()",
                                            bench_summarise(variants[V_STATUS].ns, rounds), ppid,
                                            0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "heap adopt+unref (mapping cached) vs mmap+munmap",
                                            bench_summarise(variants[V_ADOPT].ns, rounds),
                                            bench_summarise(variants[V_MAP].ns, rounds), 0, "ns", 0, NULL };

        if (json) {
                bench_print_json(rows, nrows, &style);
        } else {
                bench_print_table(rows, nrows, &style);
                printf("\n%d rounds per variant, interleaved; region %d pages, "
                       "ranges from page 1\n", rounds, HEAP_PAGES);
        }
        slice = ashmem_slice_unref(slice);
        heap = ashmem_heap_unref(heap);
        return 0;
}
