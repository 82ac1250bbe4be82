/* SPDX-License-Identifier: MIT */
/*
 * Region life cycle: create, map, touch one page, unmap, close.
 *
 * libashmem (ashmem_create_region + mmap) against what a program would use
 * instead: a raw memfd (memfd_create + ftruncate + mmap), a POSIX shared
 * memory object (shm_open + shm_unlink + ftruncate + mmap) and a System V
 * segment (shmget + shmat + IPC_RMID + shmdt). Targets (the pin engine's):
 * a region never unpinned costs at most 1.3x a raw memfd; one whose pin
 * state is used (one page unpinned and pinned again) at most 2x.
 *
 * The variants run in the same process, interleaved round by round, so the
 * machine's noise falls on all of them alike; each figure is the median over
 * the rounds of the mean time of one life cycle in a batch, with the
 * smallest and largest round shown as the spread.
 *
 * A libashmem region whose pin state is used is two memfds (data and
 * control, both sealed), so the system calls of that design are measured
 * too, without the library: "two sealed memfds" makes and destroys both
 * every time, the floor of the design when nothing is reused. libashmem
 * does better in a create/close loop: a control block no other process
 * ever had (made here, its descriptor never handed out, no fork since) is
 * kept when its region goes and taken by the next region of its size,
 * rewritten as new, so "one unpin+pin" measures what such a loop gets: the
 * data memfd, the block reused, the first unpin's checks, the pin.
 *
 * libashmem keeps a control block per region until a collection finds the
 * region gone (ashmem_collect(), or by itself whenever its table has
 * doubled). The life cycle loop pays those automatic collections as they
 * come (the blocks they free are the ones reused); their cost is also
 * measured on its own: one collection of 64 stale regions (what a
 * create/close loop with nothing else alive triggers) and one of 1,000. A
 * collection looks at every descriptor of the process, so the life cycle
 * is also run with OTHER_FDS unrelated descriptors open. This program has
 * one thread: its collections list /proc/self/fd once (a process of
 * several threads lists a snapshot of its descriptor table, taken by a
 * short-lived thread of its own).
 *
 * Usage: bench_region [--json] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#define REGION_SIZE ((size_t)1 << 20)   /* 1 MiB, one page of it touched */
#define MAX_ROUNDS 64
#define OTHER_FDS 1000

static char shm_name[64];

static void touch(void *p)
{
        *(volatile char *)p = 1;
}

/* Map the region descriptor, touch one page, unmap, close. */
static int map_touch_close(int fd)
{
        void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        int r = 0;

        if (p == MAP_FAILED) {
                r = -errno;
        } else {
                touch(p);
                if (munmap(p, REGION_SIZE) < 0)
                        r = -errno;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

static int life_ashmem(void)
{
        int fd = ashmem_create_region("bench-region", REGION_SIZE);

        if (fd < 0)
                return -errno;
        return map_touch_close(fd);
}

/* The same, with the region's pin state used: one page unpinned and pinned
 * again while it is mapped. */
static int life_ashmem_pinned(void)
{
        int fd = ashmem_create_region("bench-region", REGION_SIZE), r;

        if (fd < 0)
                return -errno;
        if (ashmem_unpin_region(fd, 0, 4096) < 0 ||
            ashmem_pin_region(fd, 0, 4096) != ASHMEM_NOT_PURGED) {
                r = errno ? -errno : -EIO;
                close(fd);
                return r;
        }
        return map_touch_close(fd);
}

static int life_memfd(void)
{
        int fd = memfd_create("bench-region", MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)REGION_SIZE) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return map_touch_close(fd);
}

/* The system calls of the design alone, as the memfd driver makes them: a
 * data memfd and a control memfd, both owner-only and sealed, the control
 * block written through a shared mapping; both gone at the end of the life
 * cycle. No table, no collection. */
static int life_two_memfds(void)
{
        size_t clen = 512;         /* a 1 MiB region's control block */
        struct stat st;
        int fd, cfd, r = 0;
        void *m;

        fd = memfd_create("bench-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        cfd = memfd_create("bench-control", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (cfd < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)REGION_SIZE) < 0 ||
            fstat(fd, &st) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0 ||
            fchmod(cfd, 0600) < 0 || ftruncate(cfd, (off_t)clen) < 0 ||
            fcntl(cfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
                r = -errno;
        m = r ? MAP_FAILED : mmap(NULL, clen, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
        if (!r && m == MAP_FAILED)
                r = -errno;
        if (r) {
                close(cfd);
                close(fd);
                return r;
        }
        memset(m, 0, clen);
        r = map_touch_close(fd);
        if (munmap(m, clen) < 0 && r == 0)
                r = -errno;
        if (close(cfd) < 0 && r == 0)
                r = -errno;
        return r;
}

static int life_shm_open(void)
{
        /* glibc's shm_open always sets FD_CLOEXEC */
        int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
        int r;

        if (fd < 0)
                return -errno;
        if (shm_unlink(shm_name) < 0 || ftruncate(fd, (off_t)REGION_SIZE) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return map_touch_close(fd);
}

static int life_sysv(void)
{
        int id = shmget(IPC_PRIVATE, REGION_SIZE, IPC_CREAT | 0600);
        void *p;
        int r = 0;

        if (id < 0)
                return -errno;
        p = shmat(id, NULL, 0);
        if (p == (void *)-1) {
                r = -errno;
                shmctl(id, IPC_RMID, NULL);
                return r;
        }
        /* marked for removal at once: it goes with the last detach */
        if (shmctl(id, IPC_RMID, NULL) < 0)
                r = -errno;
        touch(p);
        if (shmdt(p) < 0 && r == 0)
                r = -errno;
        return r;
}

struct variant {
        const char *name;
        int (*life)(void);
        double ns[MAX_ROUNDS];     /* mean ns per life cycle, per round */
};

static struct variant variants[] = {
        { "libashmem", life_ashmem, { 0 } },
        { "memfd", life_memfd, { 0 } },
        { "shm_open", life_shm_open, { 0 } },
        { "shmget", life_sysv, { 0 } },
        { "two sealed memfds", life_two_memfds, { 0 } },
        { "libashmem, pin state used", life_ashmem_pinned, { 0 } },
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

/* Mean ns of one life cycle over a batch of n. */
static double batch(struct variant *v, int n)
{
        int64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++) {
                int r = v->life();
                if (r < 0)
                        bench_die(v->name, -r);
        }
        return (double)(bench_now_ns() - t0) / n;
}

/* ns of one ashmem_collect() dropping k stale control blocks. The regions
 * are created while their descriptors are open (so no automatic collection
 * drops them early), then closed. */
static double collect_once(int k)
{
        int *fds = calloc((size_t)k, sizeof(*fds));
        int64_t t0;
        int r;

        if (!fds)
                bench_die("calloc", ENOMEM);
        r = ashmem_collect();
        if (r < 0)
                bench_die("ashmem_collect", -r);
        for (int i = 0; i < k; i++) {
                fds[i] = ashmem_create_region("bench-stale", REGION_SIZE);
                if (fds[i] < 0)
                        bench_die("ashmem_create_region", errno);
        }
        for (int i = 0; i < k; i++)
                if (close(fds[i]) < 0)
                        bench_die("close", errno);
        free(fds);
        t0 = bench_now_ns();
        r = ashmem_collect();
        t0 = bench_now_ns() - t0;
        if (r < 0)
                bench_die("ashmem_collect", -r);
        if (r != k) {
                fprintf(stderr, "bench_region: ashmem_collect dropped %d of %d stale regions\n",
                        r, k);
                exit(1);
        }
        return (double)t0;
}

static const struct bench_style style = {
        .name_width = 56, .cell_width = 30, .ns_digits = 0, .scaled = 1,
        .strict = 0, .json_digits = 1,
};

/* Let the process have n descriptors open (raising the soft limit). */
static void ensure_fd_limit(rlim_t n)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("getrlimit", errno);
        if (rl.rlim_cur >= n)
                return;
        if (rl.rlim_max < n)
                bench_die("RLIMIT_NOFILE hard limit too low", EMFILE);
        rl.rlim_cur = n;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("setrlimit", errno);
}

/* Open n descriptors unrelated to any region; they stay open until exit. */
static void open_other_fds(int n)
{
        for (int i = 0; i < n; i++)
                if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0)
                        bench_die("/dev/null", errno);
}

int main(int argc, char **argv)
{
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, per_round, coll_rounds, nrows = 0;
        double coll64[MAX_ROUNDS], coll1k[MAX_ROUNDS], per64[MAX_ROUNDS],
               fds_ashmem[MAX_ROUNDS], fds_memfd[MAX_ROUNDS];
        struct bench_row rows[10];
        struct bench_stat3 ours, memfd, c64, c1k;

        bench_options(argc, argv, &opt);
        json = opt.json;
        quick = opt.quick;
        rounds = quick ? 5 : 21;
        per_round = quick ? 200 : 2000;
        coll_rounds = quick ? 5 : 11;
        snprintf(shm_name, sizeof(shm_name), "/bench-region-%ld", (long)getpid());
        /* 1,000 regions of collect_once() hold 2,000 descriptors */
        ensure_fd_limit(2 * 1000 + OTHER_FDS + 256);

        /* warm up: page cache of the code, the library's table, the kernel's
         * slabs */
        for (size_t v = 0; v < NVARIANTS; v++)
                (void)batch(&variants[v], per_round / 4 + 1);
        for (int r = 0; r < rounds; r++)
                for (size_t k = 0; k < NVARIANTS; k++) {
                        /* rotate the order so no variant always runs first */
                        struct variant *v = &variants[(k + (size_t)r) % NVARIANTS];
                        v->ns[r] = batch(v, per_round);
                }
        for (int r = 0; r < coll_rounds; r++) {
                coll64[r] = collect_once(64);
                per64[r] = coll64[r] / 64;
                coll1k[r] = collect_once(1000);
        }
        /* last: a process with many other descriptors (they stay open) */
        open_other_fds(OTHER_FDS);
        for (int r = 0; r < rounds; r++) {
                if (r % 2) {
                        fds_memfd[r] = batch(&variants[1], per_round);
                        fds_ashmem[r] = batch(&variants[0], per_round);
                } else {
                        fds_ashmem[r] = batch(&variants[0], per_round);
                        fds_memfd[r] = batch(&variants[1], per_round);
                }
        }

        ours = bench_summarise(variants[0].ns, rounds);
        memfd = bench_summarise(variants[1].ns, rounds);
        c64 = bench_summarise(coll64, coll_rounds);
        c1k = bench_summarise(coll1k, coll_rounds);
        rows[nrows++] = (struct bench_row){ "region life cycle, never unpinned: libashmem vs memfd",
                                            ours, memfd, 1.3, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "region life cycle, one unpin+pin: libashmem vs memfd",
                                            bench_summarise(variants[5].ns, rounds), memfd, 2.0,
                                            "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "region life cycle: libashmem vs shm_open",
                                            ours, bench_summarise(variants[2].ns, rounds), 0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "region life cycle: libashmem vs shmget",
                                            ours, bench_summarise(variants[3].ns, rounds), 0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "region life cycle: two sealed memfds vs memfd",
                                            bench_summarise(variants[4].ns, rounds), memfd, 0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "region life cycle, 1000 fds open: libashmem vs memfd",
                                            bench_summarise(fds_ashmem, rounds),
                                            bench_summarise(fds_memfd, rounds), 0, "ns", 0, NULL };
        /* a collection's cost per stale region, against one raw memfd life
         * cycle: the share of a life cycle it adds, amortised */
        rows[nrows++] = (struct bench_row){ "collection per stale region vs memfd life",
                                            bench_summarise(per64, coll_rounds), memfd, 0, "ns", 0, NULL };

        if (json) {
                bench_print_json(rows, nrows, &style);
        } else {
                char a[32], b[32];

                bench_print_table(rows, nrows, &style);
                bench_fmt_time(a, sizeof(a), c64.med, &style);
                bench_fmt_time(b, sizeof(b), c1k.med, &style);
                printf("\none ashmem_collect(): %s for 64 stale regions, %s for 1000 "
                       "(medians of %d)\n", a, b, coll_rounds);
                printf("region size %zu KiB; %d rounds of %d life cycles per variant, "
                       "interleaved\n", REGION_SIZE >> 10, rounds, per_round);
        }
        return 0;
}
