/* SPDX-License-Identifier: MIT */
/*
 * The kernel driver's interface through libashmem-preload.so: a 1-page
 * unpin+pin pair as an Android program issues it (ioctl ASHMEM_UNPIN and
 * ASHMEM_PIN on a region opened from /dev/ashmem) against the library's own
 * descriptor pair (ashmem_unpin_region + ashmem_pin_region) in the same
 * run. Target: at most 1.1 times the library's pair (the interposer adds a
 * few comparisons to the same fstat() and table lookup). Beside it, for
 * information, the ioctl pair against fstat().
 *
 * The program runs itself again under the interposer (LD_PRELOAD) if it
 * was started without it. Rounds are interleaved (the order rotates); each
 * figure is the median over the rounds of the mean time of one operation.
 *
 * Usage: bench_preload [--json] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ashmem/cutils.h"
#include "preload/uapi.h"
#include "support/bench.h"
#include "tests/android/preloaded.h"

#define PAGES 4

static int dev_fd, lib_fd;
static size_t page;

static int op_ioctl_pair(void)
{
        struct ashmem_pin p = { (uint32_t)page, (uint32_t)page };

        if (ioctl(dev_fd, ASHMEM_UNPIN, &p) != 0)
                return -1;
        return ioctl(dev_fd, ASHMEM_PIN, &p) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_fd_pair(void)
{
        if (ashmem_unpin_region(lib_fd, page, page) != 0)
                return -1;
        return ashmem_pin_region(lib_fd, page, page) == ASHMEM_NOT_PURGED ? 0 : -1;
}

static int op_fstat(void)
{
        struct stat st;

        return fstat(dev_fd, &st);
}

static struct bench_op ops[] = {
        { "ioctl", op_ioctl_pair, 20000, { 0 } },
        { "fd", op_fd_pair, 20000, { 0 } },
        { "fstat", op_fstat, 40000, { 0 } },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static const struct {
        const char *name, *ours, *base;
        double target;
} rows[] = {
        { "preload ioctl pin+unpin pair vs fd pair", "ioctl", "fd", 1.1 },
        { "preload ioctl pin+unpin pair vs fstat()", "ioctl", "fstat", 0 },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const struct bench_style style = {
        .name_width = 44, .cell_width = 22, .ns_digits = 0, .scaled = 0,
        .strict = 0, .json_digits = 1,
};

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        struct bench_row res[NROWS];
        int rounds, div;
        void *m;

        bench_options(argc, argv, &opt);
        rounds = opt.quick ? 5 : 31;
        div = opt.quick ? 20 : 1;
        page = (size_t)sysconf(_SC_PAGESIZE);

        dev_fd = open("/dev/ashmem", O_RDWR | O_CLOEXEC);
        if (dev_fd < 0)
                bench_die("open /dev/ashmem (is libashmem-preload.so loaded?)", errno);
        if (ioctl(dev_fd, ASHMEM_SET_NAME, "bench-preload") < 0 ||
            ioctl(dev_fd, ASHMEM_SET_SIZE, PAGES * page) < 0)
                bench_die("ASHMEM_SET_SIZE", errno);
        m = mmap(NULL, PAGES * page, PROT_READ, MAP_SHARED, dev_fd, 0);
        if (m == MAP_FAILED)
                bench_die("mmap", errno);
        lib_fd = ashmem_create_region("bench-preload-fd", PAGES * page);
        if (lib_fd < 0)
                bench_die("ashmem_create_region", errno);

        /* warm up (code, caches, the table entry), then the rounds */
        bench_op_rounds(ops, NOPS, rounds, div);
        for (size_t i = 0; i < NROWS; i++) {
                res[i].name = rows[i].name;
                res[i].ours = bench_summarise(bench_op_named(ops, NOPS, rows[i].ours)->ns, rounds);
                res[i].base = bench_summarise(bench_op_named(ops, NOPS, rows[i].base)->ns, rounds);
                res[i].target = rows[i].target;
                res[i].unit = "ns";
                res[i].higher = 0;
                res[i].extra = NULL;
        }
        if (opt.json) {
                bench_print_json(res, (int)NROWS, &style);
        } else {
                bench_print_table(res, (int)NROWS, &style);
                printf("\nmedian of %d interleaved rounds; [min..max] over the rounds; "
                       "page %zu bytes\n", rounds, page);
        }
        munmap(m, PAGES * page);
        close(lib_fd);
        close(dev_fd);
        return 0;
}
