/* SPDX-License-Identifier: MIT */
/*
 * Pin, unpin, pin status and purge on the memfd driver (the pin state and
 * its control block: docs/control-block.md): the range rules, the state
 * machine, real reclaim, state shared across processes, read-only
 * holders, control descriptors, purgers killed or stopped in the middle
 * of a purge, scribbled state, and a stress run of threads and processes against a
 * purger.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/heap.h"
#include "../../drivers/memfd/memfd.h"
#include "lib/internal/hold.h"
#include "t.h"

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

/* A region without a control block: every page pinned until it needs one. */
static int create_lazy(const char *name, size_t size)
{
        int fd = ashmem_create_region(name, size);
        if (fd < 0)
                t_fail(__FILE__, __LINE__, "ashmem_create_region(%zu): %m", size);
        return fd;
}

/* A region with its control block made (as the first unpin, a fork or
 * ashmem_get_control() would): the pin engine's tests. */
static int create(const char *name, size_t size)
{
        int fd = create_lazy(name, size), c;
        if (ashmem_get_control(fd, &c) < 0)
                t_fail(__FILE__, __LINE__, "ashmem_get_control: %m");
        close(c);
        return fd;
}

static char *map(int fd, int prot, size_t len)
{
        void *m = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                t_fail(__FILE__, __LINE__, "mmap: %m");
        return m;
}

/* 1 if every byte of p[0..n) is c */
static int all(const char *p, size_t n, int c)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != (char)c)
                        return 0;
        return 1;
}

static long long blocks(int fd)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                t_fail(__FILE__, __LINE__, "fstat: %m");
        return (long long)st.st_blocks;
}

/* the clock the control block's unpin time is read from */
static long long mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void page_map(int fd, char *buf, size_t pages)
{
        int r = ashmem_get_page_map(fd, buf, pages);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "ashmem_get_page_map: %s", strerror(-r));
        buf[pages] = 0;
}

#define CHECK_MAP(fd, want) do {                                        \
                char m_[256];                                           \
                page_map((fd), m_, strlen(want));                       \
                if (strcmp(m_, (want)) != 0)                            \
                        t_fail(__FILE__, __LINE__, "page map %s, expected %s", m_, (want)); \
        } while (0)

static ashmem_stats stats(int fd)
{
        ashmem_stats s;
        int r = ashmem_get_stats(fd, &s);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "ashmem_get_stats: %s", strerror(-r));
        return s;
}

#define CHECK_COUNTS(fd, p, u, x) do {                                  \
                ashmem_stats s_ = stats(fd);                            \
                CHECK_EQ(s_.pinned, (p));                               \
                CHECK_EQ(s_.unpinned, (u));                             \
                CHECK_EQ(s_.purged, (x));                               \
                CHECK_EQ(s_.pinned + s_.unpinned + s_.purged, s_.pages); \
        } while (0)

static int wait_child(pid_t p)
{
        int status;
        while (waitpid(p, &status, 0) < 0)
                if (errno != EINTR)
                        t_fail(__FILE__, __LINE__, "waitpid: %m");
        return status;
}

#define CHILD_OK(fn, arg) do {                                          \
                int s_ = t_in_child((fn), (arg));                       \
                if (!WIFEXITED(s_) || WEXITSTATUS(s_) != 0)             \
                        t_fail(__FILE__, __LINE__, "child %s failed (status 0x%x)", #fn, s_); \
        } while (0)


static int reopen(int fd, int flags)
{
        char path[64];
        int r;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, flags | O_CLOEXEC);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "open %s: %m", path);
        return r;
}

/* ----------------------------------------------------------- range rules */

TEST(range_rules)
{
        size_t P = ps(), size = 3 * P + 5;      /* 4 pages, the last partial */
        size_t end = 4 * P;
        int fd = create("ranges", size);

        /* unaligned offset or length */
        CHECK_ERRNO(ashmem_pin_region(fd, 1, P), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, 1, P), EINVAL);
        CHECK_NEG(ashmem_pin_status(fd, 1, P), EINVAL);
        CHECK_ERRNO(ashmem_pin_region(fd, 0, 1), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, P + 1), EINVAL);
        CHECK_NEG(ashmem_pin_status(fd, 0, P - 1), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, P / 2, 0), EINVAL);
        /* the exact size is no page boundary either */
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, size), EINVAL);
        /* past the end */
        CHECK_ERRNO(ashmem_pin_region(fd, end + P, 0), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, end, P), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, end + P), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, 3 * P, 2 * P), EINVAL);
        CHECK_NEG(ashmem_pin_status(fd, 2 * P, 3 * P), EINVAL);
        /* overflow: offset + len wraps */
        CHECK_ERRNO(ashmem_unpin_region(fd, P, SIZE_MAX & ~(P - 1)), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, P, (size_t)0 - P), EINVAL);
        CHECK_ERRNO(ashmem_pin_region(fd, 2 * P, (size_t)0 - P), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, SIZE_MAX & ~(P - 1), 0), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, SIZE_MAX & ~(P - 1), 2 * P), EINVAL);
        CHECK_NEG(ashmem_pin_status(fd, (size_t)1 << (sizeof(size_t) * 8 - 2), (size_t)1 << (sizeof(size_t) * 8 - 2)), EINVAL);
        /* nothing of that changed any state */
        CHECK_MAP(fd, "PPPP");

        /* the partial last page is a page like any other */
        CHECK_EQ(ashmem_unpin_region(fd, 3 * P, P), 0);
        CHECK_MAP(fd, "PPPu");
        CHECK_EQ(ashmem_pin_status(fd, 3 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_region(fd, 3 * P, 0), ASHMEM_NOT_PURGED);
        /* the whole page-rounded range */
        CHECK_EQ(ashmem_unpin_region(fd, 0, end), 0);
        CHECK_MAP(fd, "uuuu");
        CHECK_EQ(ashmem_pin_region(fd, 0, end), ASHMEM_NOT_PURGED);
        CHECK_MAP(fd, "PPPP");
        /* len 0: to the end of the page-rounded size */
        CHECK_EQ(ashmem_unpin_region(fd, P, 0), 0);
        CHECK_MAP(fd, "Puuu");
        CHECK_EQ(ashmem_pin_status(fd, 0, P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, P, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_region(fd, 2 * P, 0), ASHMEM_NOT_PURGED);
        CHECK_MAP(fd, "PuPP");
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_MAP(fd, "PPPP");
        /* an offset at the end with len 0 is the empty range: it is
         * accepted and changes nothing */
        CHECK_EQ(ashmem_unpin_region(fd, end, 0), 0);
        CHECK_EQ(ashmem_pin_status(fd, end, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_region(fd, end, 0), ASHMEM_NOT_PURGED);
        CHECK_MAP(fd, "PPPP");
        CHECK_COUNTS(fd, 4, 0, 0);
        close(fd);
}

/* Ranges that cross 64-page bitmap words. */
TEST(ranges_across_bitmap_words)
{
        size_t P = ps(), pages = 200;
        int fd = create("words", pages * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, pages * P);

        memset(m, 'w', pages * P);
        CHECK_EQ(ashmem_unpin_region(fd, 60 * P, 10 * P), 0);      /* 60..69 */
        CHECK_EQ(ashmem_unpin_region(fd, 127 * P, 2 * P), 0);      /* 127, 128 */
        CHECK_EQ(ashmem_unpin_region(fd, 199 * P, 0), 0);          /* 199 */
        CHECK_COUNTS(fd, pages - 13, 13, 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 60 * P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 59 * P, 2 * P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 64 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 70 * P, 57 * P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 70 * P, 58 * P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 128 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 129 * P, 70 * P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 129 * P, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_purge(fd), 13);
        CHECK_COUNTS(fd, pages - 13, 0, 13);
        for (size_t i = 0; i < pages; i++) {
                int gone = (i >= 60 && i < 70) || i == 127 || i == 128 || i == 199;
                if (!all(m + i * P, P, gone ? 0 : 'w'))
                        t_fail(__FILE__, __LINE__, "page %zu", i);
        }
        /* a pin of part of a purged run says so, the rest stays purged */
        CHECK_EQ(ashmem_pin_region(fd, 64 * P, P), ASHMEM_WAS_PURGED);
        CHECK_COUNTS(fd, pages - 12, 0, 12);
        CHECK_EQ(ashmem_pin_region(fd, 0, 64 * P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 127 * P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 127 * P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 128 * P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK_COUNTS(fd, pages, 0, 0);
        munmap(m, pages * P);
        close(fd);
}

/* ----------------------------------------------------------- state rules */

TEST(everything_starts_pinned)
{
        size_t P = ps();
        int fd = create_lazy("fresh", 10 * P + 1);
        ashmem_stats s = stats(fd);

        CHECK_EQ(s.size, 10 * P + 1);
        CHECK_EQ(s.pages, 11);
        CHECK_EQ(s.pinned, 11);
        CHECK_EQ(s.unpinned, 0);
        CHECK_EQ(s.purged, 0);
        CHECK_EQ(s.unpinned_since_ns, 0);
        CHECK_EQ(s.purges, 0);
        CHECK_EQ(s.pages_reclaimed, 0);
        /* no control block until one is needed */
        CHECK_EQ(s.shared_state, 0);
        CHECK_EQ(s.writable_state, 1);
        CHECK_MAP(fd, "PPPPPPPPPPP");
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(fd), 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(stats(fd).purges, 0);
        CHECK_EQ(stats(fd).shared_state, 0);
        /* the first unpin makes it, all pinned but what it unpins */
        CHECK_EQ(ashmem_unpin_region(fd, P, P), 0);
        CHECK_EQ(stats(fd).shared_state, 1);
        CHECK_MAP(fd, "PuPPPPPPPPP");
        close(fd);
}

TEST(status_is_pinned_only_if_every_page_is)
{
        size_t P = ps();
        int fd = create("status", 8 * P);

        CHECK_EQ(ashmem_unpin_region(fd, 5 * P, P), 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 5 * P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 4 * P, 2 * P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 5 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 6 * P, 0), ASHMEM_IS_PINNED);
        /* purged pages are unpinned too */
        CHECK_EQ(ashmem_purge(fd), 1);
        CHECK_EQ(ashmem_pin_status(fd, 5 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_region(fd, 5 * P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        /* unpinning twice is unpinning once */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        CHECK_COUNTS(fd, 6, 2, 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 2 * P), ASHMEM_IS_UNPINNED);
        close(fd);
}

TEST(pin_says_was_purged_only_for_its_range)
{
        size_t P = ps();
        int fd = create("was-purged", 12 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 12 * P);

        memset(m, 'd', 12 * P);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 4 * P), 0);
        CHECK_EQ(ashmem_purge(fd), 4);
        CHECK_EQ(ashmem_unpin_region(fd, 4 * P, 4 * P), 0);   /* not purged */
        CHECK_MAP(fd, "xxxxuuuuPPPP");
        /* unpinned but not purged: the content is all there */
        CHECK_EQ(ashmem_pin_region(fd, 4 * P, 4 * P), ASHMEM_NOT_PURGED);
        CHECK(all(m + 4 * P, 4 * P, 'd'));
        /* pinned pages around a purged one */
        CHECK_EQ(ashmem_pin_region(fd, 8 * P, 4 * P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 3 * P, 5 * P), ASHMEM_WAS_PURGED);
        CHECK_MAP(fd, "xxxPPPPPPPPP");
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_NOT_PURGED);
        /* a purged page unpinned again stays purged: its data is gone */
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_MAP(fd, "PxxPPPPPPPPP");
        CHECK_EQ(ashmem_pin_region(fd, P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 2 * P, P), ASHMEM_WAS_PURGED);
        /* once pinned, the purged mark is gone for good */
        CHECK_EQ(ashmem_unpin_region(fd, P, P), 0);
        CHECK_EQ(ashmem_pin_region(fd, P, P), ASHMEM_NOT_PURGED);
        CHECK_MAP(fd, "PPPPPPPPPPPP");
        munmap(m, 12 * P);
        close(fd);
}

/* ----------------------------------------------------------------- purge */

TEST(purge_frees_the_pages_and_keeps_pinned_ones)
{
        size_t P = ps(), pages = 64;
        int fd = create("purge", pages * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, pages * P), buf[16];
        long long full, after;
        ashmem_stats s;

        for (size_t i = 0; i < pages; i++)
                memset(m + i * P, 'a' + (int)(i % 26), P);
        full = blocks(fd);
        CHECK(full >= (long long)(pages * P / 512));
        CHECK_EQ(ashmem_unpin_region(fd, 16 * P, 32 * P), 0);
        CHECK_EQ(ashmem_purge(fd), 32);
        after = blocks(fd);
        if (after > full - (long long)(32 * P / 512))
                t_fail(__FILE__, __LINE__, "st_blocks %lld -> %lld: not freed", full, after);
        /* read() sees holes as zeros without filling them... */
        for (size_t i = 0; i < pages; i++) {
                int gone = i >= 16 && i < 48;
                CHECK_EQ(pread(fd, buf, sizeof(buf), (off_t)(i * P + P - sizeof(buf))),
                         (long long)sizeof(buf));
                if (!all(buf, sizeof(buf), gone ? 0 : 'a' + (int)(i % 26)))
                        t_fail(__FILE__, __LINE__, "read: page %zu", i);
        }
        CHECK_EQ(blocks(fd), after);
        /* ...and so does the mapping (a read fault on a shmem hole
         * allocates a zeroed page again: the blocks come back) */
        for (size_t i = 0; i < pages; i++) {
                int gone = i >= 16 && i < 48;
                if (!all(m + i * P, P, gone ? 0 : 'a' + (int)(i % 26)))
                        t_fail(__FILE__, __LINE__, "page %zu", i);
        }
        after = blocks(fd);
        s = stats(fd);
        CHECK_EQ(s.purges, 1);
        CHECK_EQ(s.pages_reclaimed, 32);
        CHECK_EQ(s.purged, 32);
        /* nothing left to purge */
        CHECK_EQ(ashmem_purge(fd), 0);
        CHECK_EQ(stats(fd).purges, 1);
        CHECK_EQ(blocks(fd), after);
        /* repinning does not bring the data back; writing does */
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK(all(m + 16 * P, 32 * P, 0));
        CHECK_EQ(ashmem_purge(fd), 0);
        memset(m + 16 * P, 'n', 32 * P);
        CHECK(blocks(fd) >= full);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_purge(fd), (long long)pages);
        CHECK_EQ(blocks(fd), 0);
        s = stats(fd);
        CHECK_EQ(s.purges, 2);
        CHECK_EQ(s.pages_reclaimed, 32 + pages);
        munmap(m, pages * P);
        close(fd);
}

/* The kernel refuses to punch holes in a write-sealed memfd (shmem checks
 * F_SEAL_WRITE and F_SEAL_FUTURE_WRITE in fallocate): a region whose WRITE
 * bit was dropped purges nothing and keeps its data. */
TEST(purge_of_a_write_dropped_region_purges_nothing)
{
        size_t P = ps();
        int fd = create("ro-purge", 8 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 8 * P);
        long long full;

        memset(m, 'k', 8 * P);
        full = blocks(fd);
        CHECK_EQ(ashmem_unpin_region(fd, 2 * P, 4 * P), 0);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ), 0);
        CHECK_ERRNO(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)P), EPERM);
        CHECK_EQ(ashmem_purge(fd), 0);
        CHECK_MAP(fd, "PPuuuuPP");
        CHECK_COUNTS(fd, 4, 4, 0);
        CHECK_EQ(blocks(fd), full);
        CHECK(all(m, 8 * P, 'k'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(stats(fd).purges, 0);
        munmap(m, 8 * P);
        close(fd);
}

/* A purge that the kernel refuses (here: through a read-only descriptor,
 * fallocate says EBADF) fails with EPERM and marks nothing purged. */
TEST(failed_purge_marks_nothing)
{
        size_t P = ps();
        int fd = create("failed-purge", 4 * P), ro = reopen(fd, O_RDONLY);
        char *m = map(fd, PROT_READ | PROT_WRITE, 4 * P);

        memset(m, 'f', 4 * P);
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_NEG(ashmem_purge(ro), EPERM);
        CHECK_MAP(fd, "PuuP");
        CHECK_COUNTS(fd, 2, 2, 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK(all(m, 4 * P, 'f'));
        CHECK_EQ(stats(fd).purges, 0);
        munmap(m, 4 * P);
        close(ro);
        close(fd);
}

/* --------------------------------------------------- across processes */

struct xp { int fd; char *m; };

static void child_unpins(void *arg)
{
        struct xp *x = arg;
        CHECK_EQ(ashmem_unpin_region(x->fd, ps(), 2 * ps()), 0);
}

static void child_purges(void *arg)
{
        struct xp *x = arg;
        CHECK_EQ(ashmem_purge(x->fd), 2);
        CHECK(all(x->m + ps(), 2 * ps(), 0));
}

static void child_pins(void *arg)
{
        struct xp *x = arg;
        CHECK_EQ(ashmem_pin_status(x->fd, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_region(x->fd, 0, 0), ASHMEM_NOT_PURGED);
}

TEST(pin_state_is_shared_across_fork)
{
        size_t P = ps();
        struct xp x;

        x.fd = create("xproc", 4 * P);
        x.m = map(x.fd, PROT_READ | PROT_WRITE, 4 * P);
        memset(x.m, 'x', 4 * P);
        /* the child unpins, the parent sees it */
        CHILD_OK(child_unpins, &x);
        CHECK_MAP(x.fd, "PuuP");
        CHECK_EQ(ashmem_pin_status(x.fd, P, P), ASHMEM_IS_UNPINNED);
        /* the child purges, the parent's pin says so and its mapping shows it */
        CHILD_OK(child_purges, &x);
        CHECK_MAP(x.fd, "PxxP");
        CHECK(all(x.m + P, 2 * P, 0));
        CHECK(all(x.m, P, 'x') && all(x.m + 3 * P, P, 'x'));
        CHECK_EQ(ashmem_pin_region(x.fd, P, 2 * P), ASHMEM_WAS_PURGED);
        CHECK_EQ(stats(x.fd).pages_reclaimed, 2);
        /* the parent unpins, the child pins, the parent sees it pinned */
        CHECK_EQ(ashmem_unpin_region(x.fd, 0, 0), 0);
        CHILD_OK(child_pins, &x);
        CHECK_EQ(ashmem_pin_status(x.fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(x.fd), 0);
        CHECK(all(x.m, P, 'x'));
        munmap(x.m, 4 * P);
        close(x.fd);
}

/* ------------------------------------- fresh processes (exec'd helpers) */

/* The test binary re-executes itself as a helper with the region's
 * descriptors inherited: a fresh process with an empty table, like one that
 * received them over a socket. The helper runs from a constructor, before
 * the harness. */
#define HELPER_ENV "ASHMEM_TEST_PIN_HELPER"
enum { H_DATA = 100, H_CTL = 101, H_CTL2 = 102 };

static void helper_ro(void)
{
        size_t P = ps();
        ashmem_stats s;
        char name[ASHMEM_NAME_LEN], *m;
        void *w;

        CHECK_EQ(fcntl(H_DATA, F_GETFL) & O_ACCMODE, O_RDONLY);
        CHECK_EQ(fcntl(H_CTL, F_GETFL) & O_ACCMODE, O_RDONLY);
        CHECK_EQ(ashmem_valid(H_DATA), 1);
        /* without its control block, which exists: a region libashmem
         * made does not pretend to be all pinned (ENOLCK), and a
         * read-only holder may change nothing anyway (EPERM) */
        s = stats(H_DATA);
        CHECK_EQ(s.shared_state, 0);
        CHECK_EQ(s.writable_state, 0);
        CHECK_NEG(ashmem_pin_status(H_DATA, 0, 0), ENOLCK);
        CHECK_ERRNO(ashmem_pin_region(H_DATA, 0, 0), EPERM);
        CHECK_ERRNO(ashmem_unpin_region(H_DATA, 0, P), EPERM);
        CHECK_NEG(ashmem_purge(H_DATA), EPERM);
        /* with it: the shared state, read-only */
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        s = stats(H_DATA);
        CHECK_EQ(s.shared_state, 1);
        CHECK_EQ(s.writable_state, 0);
        CHECK_EQ(s.unpinned, 2);
        CHECK_EQ(ashmem_pin_status(H_DATA, 0, P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(H_DATA, P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(H_DATA, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_MAP(H_DATA, "PuuP");
        CHECK_ERRNO(ashmem_pin_region(H_DATA, P, P), EPERM);
        CHECK_ERRNO(ashmem_pin_region(H_DATA, 0, 0), EPERM);
        CHECK_ERRNO(ashmem_unpin_region(H_DATA, 0, P), EPERM);
        CHECK_NEG(ashmem_purge(H_DATA), EPERM);
        CHECK_ERRNO(ashmem_set_prot_region(H_DATA, PROT_READ), EPERM);
        CHECK_EQ(ashmem_get_prot(H_DATA), PROT_READ | PROT_WRITE | PROT_EXEC);
        /* range rules still come first */
        CHECK_ERRNO(ashmem_pin_region(H_DATA, 1, 0), EINVAL);
        CHECK_NEG(ashmem_pin_status(H_DATA, 0, 5 * P), EINVAL);
        /* a read-only control descriptor handed out again stays read-only */
        {
                int c;
                CHECK_EQ(ashmem_get_control(H_DATA, &c), 0);
                CHECK_EQ(fcntl(c, F_GETFL) & O_ACCMODE, O_RDONLY);
                close(c);
        }
        /* data: readable, never writable */
        CHECK_EQ(ashmem_get_name(H_DATA, name, sizeof(name)), 7);
        CHECK(strcmp(name, "ro-hold") == 0);
        errno = 0;
        CHECK(mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, H_DATA, 0) == MAP_FAILED);
        CHECK_EQ(errno, EACCES);
        CHECK_NEG(ashmem_map(H_DATA, PROT_READ | PROT_WRITE, 0, 0, &w), EACCES);
        CHECK_EQ(ashmem_map(H_DATA, PROT_READ, 0, 0, &w), 0);
        m = w;
        CHECK(all(m, 4 * P, 'r'));
        CHECK_EQ(ashmem_unmap(m, 4 * P), 0);
}

static void helper_rw(void)
{
        size_t P = ps();

        /* the data descriptor alone, of a region whose pin state lives
         * elsewhere (no broker holds it): nothing pretends, everything
         * that needs the state fails with ENOLCK, and no block is made
         * here (the parent's would be another) */
        CHECK_EQ(stats(H_DATA).shared_state, 0);
        CHECK_NEG(ashmem_pin_status(H_DATA, 0, 0), ENOLCK);
        CHECK_ERRNO(ashmem_unpin_region(H_DATA, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_pin_status(H_DATA, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_purge(H_DATA), ENOLCK);
        CHECK_ERRNO(ashmem_pin_region(H_DATA, 0, 0), ENOLCK);
        CHECK_EQ(stats(H_DATA).shared_state, 0);
        /* joined to its control block: the parent's state */
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        CHECK_EQ(stats(H_DATA).writable_state, 1);
        CHECK_MAP(H_DATA, "PuuP");
        CHECK_EQ(ashmem_purge(H_DATA), 2);
        CHECK_EQ(ashmem_unpin_region(H_DATA, 3 * P, P), 0);
}

/* A read-only control block first, then the read-write one: the entry is
 * replaced, and this thread's cached lookup must not keep the old one. */
static void helper_upgrade(void)
{
        size_t P = ps();

        CHECK_EQ(fcntl(H_CTL, F_GETFL) & O_ACCMODE, O_RDONLY);
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        CHECK_EQ(ashmem_pin_status(H_DATA, P, P), ASHMEM_IS_UNPINNED);
        CHECK_ERRNO(ashmem_pin_region(H_DATA, P, P), EPERM);
        CHECK_EQ(stats(H_DATA).writable_state, 0);
        /* a second read-only one changes nothing */
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        CHECK_ERRNO(ashmem_unpin_region(H_DATA, 0, P), EPERM);
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL2), 0);
        CHECK_EQ(stats(H_DATA).writable_state, 1);
        CHECK_EQ(ashmem_pin_region(H_DATA, P, P), ASHMEM_NOT_PURGED);
        CHECK_MAP(H_DATA, "PPuP");
        /* and a read-only one after it does not downgrade */
        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        CHECK_EQ(ashmem_unpin_region(H_DATA, 0, P), 0);
        CHECK_MAP(H_DATA, "uPuP");
        /* the old block's descriptor and mapping go at the next collection */
        CHECK_EQ(ashmem_collect(), 0);
}

/* The peer of shared_with_a_peer_of_either_word_size (possibly a build of
 * this test for the other word size): it joins the region's state, checks
 * what the creator left, and changes it. */
static void helper_peer(void)
{
        size_t P = ps();
        ashmem_stats s;
        char *m;

        CHECK_EQ(ashmem_set_control(H_DATA, H_CTL), 0);
        CHECK_MAP(H_DATA, "PxxPPuPPPPPPPPPPPPPPPPPPPPPPPPPPPxPPPPPP");
        s = stats(H_DATA);
        CHECK_EQ(s.pages, 40);
        CHECK_COUNTS(H_DATA, 36, 1, 3);
        CHECK_EQ(ashmem_pin_region(H_DATA, P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_unpin_region(H_DATA, 34 * P, P), 0);
        CHECK_EQ(ashmem_pin_status(H_DATA, 0, P), ASHMEM_IS_PINNED);
        m = map(H_DATA, PROT_READ | PROT_WRITE, 40 * P);
        CHECK(all(m, P, 'a'));
        CHECK(all(m + P, 2 * P, 0));
        memset(m, 'b', P);
        munmap(m, 40 * P);
}

__attribute__((constructor)) static void helper_main(void)
{
        const char *mode = getenv(HELPER_ENV);

        if (!mode)
                return;
        if (strcmp(mode, "ro") == 0)
                helper_ro();
        else if (strcmp(mode, "rw") == 0)
                helper_rw();
        else if (strcmp(mode, "upgrade") == 0)
                helper_upgrade();
        else if (strcmp(mode, "peer") == 0)
                helper_peer();
        else
                t_fail(__FILE__, __LINE__, "unknown helper %s", mode);
        exit(0);
}

/* Run the helper `mode` with data, ctl and ctl2 (unless -1) as its
 * descriptors H_DATA, H_CTL and H_CTL2; return its wait status. */
static int run_helper3(const char *mode, int data, int ctl, int ctl2)
{
        pid_t p = fork();

        if (p < 0)
                t_fail(__FILE__, __LINE__, "fork: %m");
        if (p == 0) {
                /* dup2 clears close-on-exec on the copies */
                if (dup2(data, H_DATA) < 0 || dup2(ctl, H_CTL) < 0 ||
                    (ctl2 >= 0 && dup2(ctl2, H_CTL2) < 0) ||
                    setenv(HELPER_ENV, mode, 1) < 0)
                        _exit(126);
                /* ASHMEM_TEST_PEER: a build of this test for the other
                 * word size, for the peer helper */
                execl(strcmp(mode, "peer") == 0 && getenv("ASHMEM_TEST_PEER") ?
                      getenv("ASHMEM_TEST_PEER") : "/proc/self/exe",
                      "test_pin-helper", (char *)NULL);
                _exit(127);
        }
        return wait_child(p);
}

static int run_helper(const char *mode, int data, int ctl)
{
        return run_helper3(mode, data, ctl, -1);
}

/* A writer that stores a last-unpin time in the future cannot make its
 * region look the most recently unpinned (purged last): such a time reads
 * as the oldest. */
TEST(forged_unpin_time_reads_as_the_oldest)
{
        size_t P = ps();
        int fd = create("forged-time", 2 * P), c;
        struct amc_block *b;

        CHECK_EQ(ashmem_unpin_region(fd, 0, P), 0);
        CHECK(stats(fd).unpinned_since_ns > 1);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        b = mmap(NULL, amc_block_size(2), PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
        CHECK(b != MAP_FAILED);
        __atomic_store_n(&b->unpinned_ns, INT64_MAX, __ATOMIC_RELAXED);
        CHECK_EQ(stats(fd).unpinned_since_ns, 1);
        __atomic_store_n(&b->unpinned_ns, -5, __ATOMIC_RELAXED);
        CHECK_EQ(stats(fd).unpinned_since_ns, 1);
        /* nothing unpinned: no time, whatever is stored */
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(stats(fd).unpinned_since_ns, 0);
        munmap(b, amc_block_size(2));
        close(c);
        close(fd);
}

TEST(read_only_holder_reads_status_but_cannot_change_it)
{
        size_t P = ps();
        int fd = create("ro-hold", 4 * P), c, ro, roc, st;
        char *m = map(fd, PROT_READ | PROT_WRITE, 4 * P);

        memset(m, 'r', 4 * P);
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        ro = reopen(fd, O_RDONLY);
        roc = reopen(c, O_RDONLY);
        st = run_helper("ro", ro, roc);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        /* and it changed nothing */
        CHECK_MAP(fd, "PuuP");
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK(all(m, 4 * P, 'r'));
        close(roc);
        close(ro);
        close(c);
        munmap(m, 4 * P);
        close(fd);
}

TEST(set_control_in_a_fresh_process_joins_the_shared_state)
{
        size_t P = ps();
        int fd = create("rw-hold", 4 * P), c, st;
        char *m = map(fd, PROT_READ | PROT_WRITE, 4 * P);

        memset(m, 's', 4 * P);
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        st = run_helper("rw", fd, c);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_MAP(fd, "Pxxu");
        CHECK(all(m + P, 2 * P, 0));
        CHECK(all(m, P, 's') && all(m + 3 * P, P, 's'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        close(c);
        munmap(m, 4 * P);
        close(fd);
}

TEST(read_only_pin_state_upgraded_to_read_write)
{
        size_t P = ps();
        int fd = create("upgrade", 4 * P), c, roc, st;

        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        roc = reopen(c, O_RDONLY);
        st = run_helper3("upgrade", fd, roc, c);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_MAP(fd, "uPuP");
        close(roc);
        close(c);
        close(fd);
}

/* ---------------------------------------------------- control descriptors */

/* One region shared by a 64-bit and a 32-bit process: the block's layout is
 * the same for both. The peer is ASHMEM_TEST_PEER, a build of this test for
 * the other word size (see docs/control-block.md), or this binary. */
TEST(shared_with_a_peer_of_either_word_size)
{
        size_t P = ps();
        int fd = create("peer", 40 * P), c, st;
        char *m = map(fd, PROT_READ | PROT_WRITE, 40 * P);
        const char *peer = getenv("ASHMEM_TEST_PEER");

        memset(m, 'a', 40 * P);
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 33 * P, P), 0);
        CHECK_EQ(ashmem_purge(fd), 3);
        CHECK_EQ(ashmem_unpin_region(fd, 5 * P, P), 0);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        st = run_helper("peer", fd, c);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_MAP(fd, "PPxPPuPPPPPPPPPPPPPPPPPPPPPPPPPPPxuPPPPP");
        CHECK(all(m, P, 'b'));
        printf("    peer: %s (this process: %zu-bit)\n", peer ? peer : "this binary",
               sizeof(void *) * 8);
        close(c);
        munmap(m, 40 * P);
        close(fd);
}

TEST(get_and_set_control)
{
        size_t P = ps();
        int a = create("ctl-a", 2 * P), b = create("ctl-b", 2 * P);
        int ca, cb, cb2, raw, closed, p[2];
        struct stat s1, s2;

        CHECK_EQ(ashmem_get_control(a, &ca), 0);
        CHECK_EQ(ashmem_get_control(b, &cb), 0);
        CHECK(fcntl(ca, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(fcntl(ca, F_GETFL) & O_ACCMODE, O_RDWR);
        /* a new descriptor each time, of the same control memfd */
        CHECK_EQ(ashmem_get_control(b, &cb2), 0);
        CHECK(cb2 != cb);
        CHECK_EQ(fstat(cb, &s1), 0);
        CHECK_EQ(fstat(cb2, &s2), 0);
        CHECK(s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev);
        close(cb2);
        /* the control block is no region */
        CHECK_EQ(ashmem_valid(ca), 1);  /* it is a memfd... */
        CHECK_EQ(ashmem_get_control(ca, &cb2) , -ENOENT); /* ...with no control */
        /* attaching a region's own block again is harmless */
        CHECK_EQ(ashmem_set_control(a, ca), 0);
        CHECK_EQ(ashmem_unpin_region(a, 0, P), 0);
        CHECK_MAP(a, "uP");
        /* another region's block, or no block at all: EINVAL */
        CHECK_NEG(ashmem_set_control(a, cb), EINVAL);
        CHECK_NEG(ashmem_set_control(b, ca), EINVAL);
        raw = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(raw >= 0);
        CHECK_NEG(ashmem_set_control(a, raw), EINVAL);
        CHECK_EQ(ftruncate(raw, 4096), 0);
        CHECK_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        CHECK_NEG(ashmem_set_control(a, raw), EINVAL);
        CHECK_NEG(ashmem_set_control(raw, ca), EINVAL);   /* a memfd, not a's */
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        CHECK_NEG(ashmem_set_control(a, p[0]), EINVAL);
        CHECK_NEG(ashmem_set_control(p[0], ca), ENOTTY);
        CHECK_NEG(ashmem_get_control(p[0], &cb2), ENOTTY);
        close(p[0]);
        close(p[1]);
        closed = dup(ca);
        close(closed);
        CHECK_NEG(ashmem_set_control(a, closed), EBADF);
        CHECK_NEG(ashmem_set_control(a, -1), EBADF);
        CHECK_NEG(ashmem_get_control(a, NULL), EINVAL);
        /* a memfd of our own making has no control block */
        CHECK_NEG(ashmem_get_control(raw, &cb2), ENOENT);
        /* nothing of that disturbed a's state */
        CHECK_MAP(a, "uP");
        CHECK_MAP(b, "PP");
        close(raw);
        close(ca);
        close(cb);
        close(a);
        close(b);
}

/* ------------------------------------------------- a purger that dies or
 * stops in the middle. The child takes the purge lock through the library's
 * own table (the internal amc_purge_lock), moves pages to purging as a
 * purge does before its punch, and then is SIGKILLed or SIGSTOPped. */

/* the state word purge_halfway() works on */
static unsigned halfway_word;

static void purge_halfway(int fd, uint64_t purging_mask, int ready)
{
        struct stat st;
        struct amc_ref r;
        struct amc_plock lk;

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        CHECK_EQ(amc_purge_lock(&r, &lk), 0);
        /* unpinned (01) -> purging (10), no punch */
        __atomic_store_n(&r.state[halfway_word],
                         r.state[halfway_word] ^ (purging_mask | purging_mask << 1),
                         __ATOMIC_RELEASE);
        if (write(ready, "L", 1) != 1)
                _exit(3);
        for (;;)
                pause();
}

/* Fork a child that holds fd's purge lock with the pages of purging_mask
 * (low bits of word 0) purging; returns its pid once it is there. */
static pid_t start_a_halfway_purger(int fd, uint64_t purging_mask)
{
        int p[2];
        char c;
        pid_t pid;

        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                close(p[0]);
                purge_halfway(fd, purging_mask, p[1]);
        }
        close(p[1]);
        CHECK_EQ(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void end_child(pid_t pid)
{
        int status;

        CHECK_EQ(kill(pid, SIGKILL), 0);
        status = wait_child(pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static uint64_t recoveries(int fd)
{
        struct stat st;
        struct amc_ref r;
        uint64_t n;

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        n = __atomic_load_n(&r.b->recoveries, __ATOMIC_RELAXED);
        am_table_release(&st);
        return n;
}

struct blocked { int fd; size_t off, len; int r; };

static void *pin_blocked(void *arg)
{
        struct blocked *b = arg;
        b->r = ashmem_pin_region(b->fd, b->off, b->len);
        return NULL;
}

/* Killed between moving pages to purging and punching them: a pin of
 * those pages finishes the purge itself (the kernel dropped the dead
 * purger's lock), says WAS_PURGED, and the pages read as zeros. */
TEST(purger_killed_mid_purge_is_finished_by_the_next_pin)
{
        size_t P = ps();
        int fd = create("killed", 8 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 8 * P);

        memset(m, 'k', 8 * P);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 4 * P), 0);
        end_child(start_a_halfway_purger(fd, 0x5));     /* pages 0, 1 */
        CHECK_EQ(recoveries(fd), 0);
        CHECK_MAP(fd, "xxuuPPPP");
        CHECK_EQ(ashmem_pin_status(fd, 0, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(recoveries(fd), 1);
        /* the whole word's purging pages were finished: page 1 is purged */
        CHECK_MAP(fd, "PxuuPPPP");
        CHECK(all(m, 2 * P, 0));
        CHECK(all(m + 2 * P, 6 * P, 'k'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK_COUNTS(fd, 8, 0, 0);
        munmap(m, 8 * P);
        close(fd);
}

/* The same, with nobody pinning: the next purge takes the pages over
 * (nothing stays unpurgeable). */
TEST(purger_killed_mid_purge_is_finished_by_the_next_purge)
{
        size_t P = ps();
        int fd = create("killed2", 8 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 8 * P);

        memset(m, 'q', 8 * P);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 4 * P), 0);
        end_child(start_a_halfway_purger(fd, 0x5));
        CHECK_EQ(ashmem_purge(fd), 4);
        CHECK_MAP(fd, "xxxxPPPP");
        CHECK_COUNTS(fd, 4, 0, 4);
        CHECK(all(m, 4 * P, 0));
        CHECK(all(m + 4 * P, 4 * P, 'q'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        munmap(m, 8 * P);
        close(fd);
}

static void child_pins_two(void *arg)
{
        CHECK_EQ(ashmem_pin_region(*(int *)arg, 0, 2 * ps()), ASHMEM_NOT_PURGED);
}

/* A purger stopped (SIGSTOP) in the middle: a pin of its pages waits its
 * bound and fails with ETIMEDOUT, leaving the words of its range it had
 * already pinned pinned (never unpinning what another process pinned
 * meanwhile); other pages are not held up; once the purger is gone, the
 * pin goes through. */
TEST(stopped_purger_makes_pin_time_out)
{
        size_t P = ps();
        int fd = create("stopped", 40 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 40 * P);
        char want[41];
        long long t0, t1;
        pid_t pid;
        struct blocked b;
        pthread_t t;

        memset(m, 's', 40 * P);
        /* pages 0-3 purged, 4 unpinned, 32 unpinned, and 33 purging under
         * the stopped purger: a pin of the whole region changes words 0
         * and 1 before it meets page 33 in word 2 */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 4 * P), 0);
        CHECK_EQ(ashmem_purge(fd), 4);
        CHECK_EQ(ashmem_unpin_region(fd, 4 * P, P), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 32 * P, 2 * P), 0);
        pid = start_a_halfway_purger(fd, 0);
        CHECK_EQ(kill(pid, SIGSTOP), 0);
        {
                /* the stopped purger's page: 33, in word 2 */
                struct stat st;
                struct amc_ref r;
                CHECK_EQ(fstat(fd, &st), 0);
                CHECK_EQ(am_table_hold(&st, &r), 0);
                __atomic_store_n(&r.state[33 / AMC_WORD_PAGES], (uint64_t)0x9, __ATOMIC_RELEASE);
                am_table_release(&st);
        }
        page_map(fd, want, 40);
        CHECK(strcmp(want, "xxxxuPPPPPPPPPPPPPPPPPPPPPPPPPPPuxPPPPPP") == 0);
        t0 = mono_ns();
        CHECK_ERRNO(ashmem_pin_region(fd, 0, 0), ETIMEDOUT);
        t1 = mono_ns();
        CHECK(t1 - t0 >= AMC_WAIT_NS - 20000000ll);
        CHECK(t1 - t0 < 5 * AMC_WAIT_NS);
        /* words 0 and 1, which it had pinned, stay pinned; word 2 waited */
        CHECK_MAP(fd, "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPuxPPPPPP");
        /* a page another process pinned while a pin waited stays pinned
         * when that pin times out */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        {
                struct blocked w = { .fd = fd, .off = 0, .len = 34 * P, .r = -2 };
                pthread_t tw;
                CHECK_EQ(pthread_create(&tw, NULL, pin_blocked, &w), 0);
                usleep(100 * 1000);
                CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
                CHECK_EQ(t_in_child(child_pins_two, &fd), 0);
                CHECK_EQ(pthread_join(tw, NULL), 0);
                CHECK_EQ(w.r, -1);
        }
        /* a purge takes page 32 only */
        CHECK_EQ(ashmem_purge(fd), 1);
        CHECK_MAP(fd, "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPxxPPPPPP");
        CHECK(all(m + 4 * P, 28 * P, 's'));
        CHECK_EQ(ashmem_pin_region(fd, 32 * P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_unpin_region(fd, 36 * P, P), 0);
        CHECK_EQ(ashmem_pin_status(fd, 33 * P, P), ASHMEM_IS_UNPINNED);
        /* a pin waiting when the purger dies goes through: it finishes the
         * purge */
        b = (struct blocked){ .fd = fd, .off = 33 * P, .len = P, .r = -2 };
        CHECK_EQ(pthread_create(&t, NULL, pin_blocked, &b), 0);
        end_child(pid);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(b.r, ASHMEM_WAS_PURGED);
        CHECK(all(m + 33 * P, P, 0));
        CHECK(all(m + 34 * P, 6 * P, 's'));
        CHECK_MAP(fd, "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPuPPP");
        munmap(m, 40 * P);
        close(fd);
}

/* ------------------------------------------------ the summary level. A
 * pin or unpin of a whole group of pages (AMC_GROUP_PAGES) makes it
 * uniform, one summary field instead of its words; a writer that comes
 * into the group while such a pass is under way must keep it from being
 * made uniform, or the writer's page would be hidden under the summary
 * and come back later (docs/control-block.md, "The summary level"). */

/* The page map of fd (n pages) must not change when a pin of an already
 * pinned page opens each group (the words then speak again). */
static void check_groups_open_unchanged(int fd, size_t n, int line)
{
        size_t P = ps();
        char *before = malloc(n + 1), *after = malloc(n + 1);

        CHECK(before && after);
        page_map(fd, before, n);
        for (size_t g = 0; g * AMC_GROUP_PAGES < n; g++) {
                size_t k = g * AMC_GROUP_PAGES;
                while (k < n && k < (g + 1) * AMC_GROUP_PAGES && before[k] != 'P')
                        k++;
                if (k < n && k < (g + 1) * AMC_GROUP_PAGES)
                        CHECK_EQ(ashmem_pin_region(fd, k * P, P), ASHMEM_NOT_PURGED);
        }
        page_map(fd, after, n);
        if (memcmp(before, after, n) != 0)
                t_fail(__FILE__, line, "opening the groups changed the page map:\n%.*s\n%.*s",
                       (int)n, before, (int)n, after);
        free(before);
        free(after);
}

TEST(whole_groups_flip_and_keep_every_rule)
{
        size_t P = ps(), n = 3 * AMC_GROUP_PAGES + 40;
        int fd = create("groups", n * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, n * P);
        ashmem_stats s;

        memset(m, 'g', n * P);
        /* the whole region, again and again: flips after the first pass */
        for (int i = 0; i < 3; i++) {
                CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
                CHECK_EQ(ashmem_pin_status(fd, 5 * P, P), ASHMEM_IS_UNPINNED);
                s = stats(fd);
                CHECK_EQ(s.unpinned, n);
                CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
                CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        }
        /* a uniform unpinned group, then one page of it pinned */
        CHECK_EQ(ashmem_unpin_region(fd, AMC_GROUP_PAGES * P, AMC_GROUP_PAGES * P), 0);
        CHECK_EQ(ashmem_pin_region(fd, (AMC_GROUP_PAGES + 7) * P, P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, (AMC_GROUP_PAGES + 7) * P, P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, (AMC_GROUP_PAGES + 6) * P, P), ASHMEM_IS_UNPINNED);
        s = stats(fd);
        CHECK_EQ(s.unpinned, AMC_GROUP_PAGES - 1);
        /* a purge takes the unpinned pages of it and leaves the rest */
        CHECK_EQ(ashmem_purge(fd), (int)AMC_GROUP_PAGES - 1);
        CHECK(all(m, AMC_GROUP_PAGES * P, 'g'));
        CHECK(all(m + (AMC_GROUP_PAGES + 7) * P, P, 'g'));
        CHECK(all(m + (AMC_GROUP_PAGES + 8) * P, P, 0));
        CHECK(all(m + 2 * AMC_GROUP_PAGES * P, (n - 2 * AMC_GROUP_PAGES) * P, 'g'));
        /* a whole-group unpin leaves purged pages purged: no uniform group
         * hides them */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        check_groups_open_unchanged(fd, n, __LINE__);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_COUNTS(fd, n, 0, 0);
        /* the tail group, smaller than a group, as any other */
        CHECK_EQ(ashmem_unpin_region(fd, 3 * AMC_GROUP_PAGES * P, 0), 0);
        CHECK_EQ(ashmem_purge(fd), 40);
        CHECK_EQ(ashmem_pin_region(fd, 3 * AMC_GROUP_PAGES * P, 0), ASHMEM_WAS_PURGED);
        CHECK_COUNTS(fd, n, 0, 0);
        check_groups_open_unchanged(fd, n, __LINE__);
        munmap(m, n * P);
        close(fd);
}

/* The race itself, made certain: a pin of the whole group (a pass) waits
 * at its last word for a page a stopped purger holds purging; meanwhile
 * another thread unpins a page of the first word, which the pass went over
 * already. The pass must not make the group uniform over that unpin: the
 * state read before and after the group is opened again is the same. */
TEST(a_pass_a_writer_came_into_leaves_the_group_open)
{
        size_t P = ps(), n = AMC_GROUP_PAGES, z = n - 1;
        int fd = create("pass", n * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, n * P);
        struct blocked a = { .fd = fd, .off = 0, .len = 0, .r = -2 };
        char pm[AMC_GROUP_PAGES + 1];
        pthread_t t;
        pid_t pid;
        int s1, s2;

        memset(m, 'q', n * P);
        CHECK_EQ(ashmem_unpin_region(fd, 5 * P, P), 0);
        CHECK_EQ(ashmem_unpin_region(fd, z * P, P), 0);
        halfway_word = (unsigned)(z / AMC_WORD_PAGES);
        pid = start_a_halfway_purger(fd, (uint64_t)1 << (2 * (z % AMC_WORD_PAGES)));
        halfway_word = 0;
        CHECK_EQ(pthread_create(&t, NULL, pin_blocked, &a), 0);
        /* the pass went over word 0 once page 5 is pinned */
        for (int i = 0; i < 2000; i++) {
                page_map(fd, pm, n);
                if (pm[5] == 'P')
                        break;
                usleep(100);
        }
        CHECK(pm[5] == 'P');
        CHECK(pm[z] == 'x');
        /* the writer comes in */
        CHECK_EQ(ashmem_unpin_region(fd, 3 * P, P), 0);
        /* the purger dies: the pass finishes its purge and goes on */
        end_child(pid);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(a.r, ASHMEM_WAS_PURGED);
        s1 = ashmem_pin_status(fd, 3 * P, P);
        CHECK(s1 == ASHMEM_IS_PINNED || s1 == ASHMEM_IS_UNPINNED);
        check_groups_open_unchanged(fd, n, __LINE__);
        s2 = ashmem_pin_status(fd, 3 * P, P);
        CHECK_EQ(s1, s2);
        /* what the state says holds: a pinned page keeps its contents
         * through a purge, an unpinned one goes */
        CHECK_EQ(ashmem_purge(fd), s1 == ASHMEM_IS_UNPINNED ? 1 : 0);
        CHECK(all(m + 3 * P, P, s1 == ASHMEM_IS_UNPINNED ? 0 : 'q'));
        munmap(m, n * P);
        close(fd);
}

/* The same race left to chance: processes pin and unpin whole groups
 * while others unpin and pin single pages and ranges of them, and a purger
 * runs; after each round no group hides a write (opening them changes
 * nothing), and pages their writer holds pinned kept their contents. */
#define RACE_GROUPS 3
#define RACE_ROUNDS 12

static void __attribute__((noreturn))
race_worker(int fd, int kind, uint64_t seed, long long until)
{
        size_t P = ps(), n = RACE_GROUPS * AMC_GROUP_PAGES;
        char *m = mmap(NULL, n * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (m == MAP_FAILED)
                _exit(2);
        while (mono_ns() < until) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t x = seed >> 16;
                size_t g = (size_t)(x % RACE_GROUPS), first, len;
                int r;
                switch (kind) {
                case 0:         /* whole groups, or all of it */
                        first = x & 64 ? 0 : g * AMC_GROUP_PAGES;
                        len = x & 64 ? 0 : AMC_GROUP_PAGES;
                        if (x & 128)
                                r = ashmem_unpin_region(fd, first * P, len * P);
                        else
                                r = ashmem_pin_region(fd, first * P, len * P) < 0 ? -1 : 0;
                        if (r < 0 && errno != ETIMEDOUT)
                                _exit(3);
                        break;
                case 1:         /* a page (its own, pinned: its contents stay) */
                        first = g * AMC_GROUP_PAGES + 1 + (size_t)(x >> 8) % (AMC_GROUP_PAGES - 2);
                        len = 1 + (size_t)(x >> 20) % 3;
                        if (first + len > n)
                                len = n - first;
                        if (ashmem_unpin_region(fd, first * P, len * P) != 0)
                                _exit(4);
                        r = ashmem_pin_region(fd, first * P, len * P);
                        if (r == ASHMEM_NOT_PURGED) {
                                /* pinned by this process again: what it
                                 * wrote is there, or zeros if purged
                                 * before (another pin said so) */
                                for (size_t k = 0; k < len; k++) {
                                        char c = m[(first + k) * P];
                                        if (c != 'r' && c != 0)
                                                _exit(5);
                                }
                        } else if (r != ASHMEM_WAS_PURGED && !(r < 0 && errno == ETIMEDOUT)) {
                                _exit(6);
                        }
                        if (r >= 0)
                                for (size_t k = 0; k < len; k++)
                                        m[(first + k) * P] = 'r';
                        break;
                default:
                        if (ashmem_purge(fd) < 0)
                                _exit(7);
                        break;
                }
        }
        _exit(0);
}

TEST(passes_racing_writers_hide_nothing)
{
        size_t P = ps(), n = RACE_GROUPS * AMC_GROUP_PAGES;
        int fd = create("race", n * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, n * P);
        uint64_t seed = (uint64_t)mono_ns();

        memset(m, 'r', n * P);
        for (int round = 0; round < RACE_ROUNDS; round++) {
                long long until = mono_ns() + 60 * 1000000ll;
                pid_t pids[4];
                for (int i = 0; i < 4; i++) {
                        seed += 0x9e3779b97f4a7c15ull;
                        pids[i] = fork();
                        CHECK(pids[i] >= 0);
                        if (pids[i] == 0)
                                race_worker(fd, i < 2 ? i : i == 2 ? 1 : 2, seed, until);
                }
                for (int i = 0; i < 4; i++) {
                        int status = wait_child(pids[i]);
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                                t_fail(__FILE__, __LINE__, "worker %d ended with status 0x%x",
                                       i, status);
                }
                check_groups_open_unchanged(fd, n, __LINE__);
        }
        munmap(m, n * P);
        close(fd);
}

/* A writer that marks pages purging with no purger alive: a pin finishes
 * "their" purge, which only destroys that region's own contents (a writer
 * may do so anyway), and never waits. */
TEST(purging_bits_without_a_purger_are_finished_not_waited_for)
{
        size_t P = ps();
        int fd = create("scribbled", 64 * P), other = create("other", 4 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 64 * P);
        char *o = map(other, PROT_READ | PROT_WRITE, 4 * P);
        struct stat st;
        struct amc_ref r;
        long long t0;

        memset(m, 'w', 64 * P);
        memset(o, 'o', 4 * P);
        CHECK_EQ(ashmem_unpin_region(other, 0, 0), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        for (unsigned w = 0; w < 64 / AMC_WORD_PAGES; w++)
                __atomic_store_n(&r.state[w], 0xaaaaaaaaaaaaaaaaull, __ATOMIC_RELEASE);
        am_table_release(&st);
        t0 = mono_ns();
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK(mono_ns() - t0 < AMC_WAIT_NS);
        CHECK(all(m, 64 * P, 0));
        CHECK_COUNTS(fd, 64, 0, 0);
        /* the other region was not touched */
        CHECK(all(o, 4 * P, 'o'));
        CHECK_MAP(other, "uuuu");
        munmap(m, 64 * P);
        munmap(o, 4 * P);
        close(fd);
        close(other);
}

/* The purge lock: a read lock on a description of the purger's own, so
 * purgers do not keep each other out, a holder sharing the control
 * descriptor's description (fork, SCM_RIGHTS) still sees it through a
 * description of its own, and the kernel drops it when the holder dies. */
TEST(purge_lock_is_shared_visible_and_dies_with_its_holder)
{
        size_t P = ps();
        int fd = create("plock", 4 * P), own;
        struct stat st;
        struct amc_ref r;
        struct amc_plock lk, lk2;
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
        pid_t pid;

        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        own = reopen(r.ctl_fd, O_RDWR);
        CHECK_EQ(amc_purge_lock(&r, &lk), 0);
        /* another purger takes it too, and purges */
        CHECK_EQ(amc_purge_lock(&r, &lk2), 0);
        amc_purge_unlock(&r, &lk2);
        CHECK_EQ(ashmem_purge(fd), 4);
        /* seen from another description */
        CHECK_EQ(fcntl(own, F_OFD_GETLK, &fl), 0);
        CHECK_EQ(fl.l_type, F_RDLCK);
        amc_purge_unlock(&r, &lk);
        fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
        CHECK_EQ(fcntl(own, F_OFD_GETLK, &fl), 0);
        CHECK_EQ(fl.l_type, F_UNLCK);
        /* a child that shares every description takes it and dies */
        pid = start_a_halfway_purger(fd, 0);
        fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
        CHECK_EQ(fcntl(own, F_OFD_GETLK, &fl), 0);
        CHECK_EQ(fl.l_type, F_RDLCK);
        end_child(pid);
        fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
        CHECK_EQ(fcntl(own, F_OFD_GETLK, &fl), 0);
        CHECK_EQ(fl.l_type, F_UNLCK);
        close(own);
        am_table_release(&st);
        close(fd);
}

/* A read-only holder's read lock on its control descriptor cannot keep
 * purges off the region: purgers take read locks too. At worst it makes a
 * purger that died mid-purge look alive, and a pin of the pages that purger
 * left purging waits its bound and fails. */
TEST(read_only_holder_lock_does_not_stop_purges)
{
        size_t P = ps();
        int fd = create("rolock", 4 * P), ro;
        struct stat st;
        struct amc_ref r;
        struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_len = 0 };

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        ro = reopen(r.ctl_fd, O_RDONLY);
        CHECK_EQ(fcntl(ro, F_OFD_SETLK, &fl), 0);
        /* a write lock needs a writable description: not for a reader */
        fl.l_type = F_WRLCK;
        CHECK_ERRNO(fcntl(ro, F_OFD_SETLK, &fl), EBADF);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        CHECK_EQ(ashmem_purge(fd), 2);
        CHECK_MAP(fd, "xxPP");
        /* a dead purger's pages: the reader's lock makes it look alive */
        CHECK_EQ(ashmem_unpin_region(fd, 2 * P, 2 * P), 0);
        end_child(start_a_halfway_purger(fd, 0x10));    /* page 2 */
        CHECK_ERRNO(ashmem_pin_region(fd, 2 * P, P), ETIMEDOUT);
        /* the pages out of its way still purge */
        CHECK_EQ(ashmem_purge(fd), 1);
        CHECK_MAP(fd, "xxxx");
        close(ro);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK_MAP(fd, "PPPP");
        am_table_release(&st);
        close(fd);
}

/* A writer that takes a lock on the description all holders share and
 * marks pages purging: another holder's pin of them cannot tell that lock
 * from a live purger's, waits its bound (sleeping, not spinning) and fails
 * with ETIMEDOUT; it never hangs. */
TEST(lock_on_the_shared_description_bounds_the_wait)
{
        size_t P = ps();
        int fd = create("sharedlk", 4 * P);
        struct stat st;
        struct amc_ref r;
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 0 };
        struct rusage ru0, ru1;
        long long t0, t1, cpu;

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        CHECK_EQ(fcntl(r.ctl_fd, F_OFD_SETLK, &fl), 0);
        __atomic_store_n(&r.state[0], (uint64_t)0x2, __ATOMIC_RELEASE);
        CHECK_EQ(getrusage(RUSAGE_SELF, &ru0), 0);
        t0 = mono_ns();
        CHECK_ERRNO(ashmem_pin_region(fd, 0, P), ETIMEDOUT);
        t1 = mono_ns();
        CHECK_EQ(getrusage(RUSAGE_SELF, &ru1), 0);
        CHECK(t1 - t0 >= AMC_WAIT_NS - 20000000ll);
        CHECK(t1 - t0 < 5 * AMC_WAIT_NS);
        cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
               ru0.ru_stime.tv_sec) * 1000000ll + ru1.ru_utime.tv_usec -
              ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec;
        /* sleeping between checks: well under half the wait on a CPU */
        CHECK(cpu * 1000 < (t1 - t0) / 2);
        fl.l_type = F_UNLCK;
        CHECK_EQ(fcntl(r.ctl_fd, F_OFD_SETLK, &fl), 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_WAS_PURGED);
        am_table_release(&st);
        close(fd);
}

/* A thread cancelled while its pin waits on another process's purge: the
 * wait runs to its end (ETIMEDOUT) with cancellation off, leaving no
 * descriptor and no lock behind; fork() goes on. */
TEST(cancel_during_a_pin_wait_leaves_nothing_behind)
{
        size_t P = ps();
        int fd = create("cancelwait", 4 * P), status;
        struct blocked b = { .fd = fd, .off = 0, .len = P, .r = -2 };
        pthread_t t;
        void *ret;
        pid_t pid, child;

        CHECK_EQ(ashmem_unpin_region(fd, 0, P), 0);
        pid = start_a_halfway_purger(fd, 0x1);
        CHECK_EQ(kill(pid, SIGSTOP), 0);
        CHECK_EQ(pthread_create(&t, NULL, pin_blocked, &b), 0);
        usleep(50 * 1000);
        CHECK_EQ(pthread_cancel(t), 0);
        CHECK_EQ(pthread_join(t, &ret), 0);
        CHECK(ret != PTHREAD_CANCELED);
        CHECK_EQ(b.r, -1);
        child = fork();
        CHECK(child >= 0);
        if (child == 0)
                _exit(ashmem_pin_status(fd, P, P) == ASHMEM_IS_PINNED ? 0 : 1);
        status = wait_child(child);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        end_child(pid);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_WAS_PURGED);
        close(fd);
}

/* A thread waiting (bounded) on another process's purge holds no lock of
 * the library: fork() and region creation in other threads go on. */
TEST(fork_while_another_thread_waits_on_a_purge)
{
        size_t P = ps();
        int fd = create("forkwait", 4 * P), status;
        struct blocked b = { .fd = fd, .off = 0, .len = P, .r = -2 };
        struct stat st;
        struct amc_ref r;
        pthread_t t;
        long long t0, t1;
        pid_t pid, child;

        CHECK_EQ(ashmem_unpin_region(fd, 0, P), 0);
        pid = start_a_halfway_purger(fd, 0x1);          /* page 0 purging */
        CHECK_EQ(pthread_create(&t, NULL, pin_blocked, &b), 0);
        {
                struct timespec ts = { 0, 50 * 1000000 };
                nanosleep(&ts, NULL);
        }
        t0 = mono_ns();
        fflush(NULL);
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
                int c = ashmem_create_region("child", P);
                _exit(c >= 0 && ashmem_unpin_region(c, 0, 0) == 0 &&
                      ashmem_pin_region(c, 0, 0) == ASHMEM_NOT_PURGED ? 0 : 1);
        }
        status = wait_child(child);
        t1 = mono_ns();
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(create("meanwhile", P));
        CHECK(mono_ns() - t0 < AMC_WAIT_NS / 2);
        (void)t1;
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(b.r, -1);              /* ETIMEDOUT: the purger is alive */
        end_child(pid);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        am_table_release(&st);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_WAS_PURGED);
        close(fd);
}

/* The table forgets a region when told (the broker's way: no scan). */
TEST(forget_drops_an_entry_without_a_scan)
{
        size_t P = ps();
        int n0 = t_control_fds(), fd = create("forget", 2 * P);
        struct stat st;
        struct amc_ref r;

        CHECK_EQ(t_control_fds(), n0 + 1);
        CHECK_EQ(fstat(fd, &st), 0);
        /* a held entry stays */
        CHECK_EQ(am_table_hold(&st, &r), 0);
        CHECK_EQ(am_table_forget(&st), 0);
        am_table_release(&st);
        close(fd);
        CHECK_EQ(am_table_forget(&st), 1);
        CHECK_EQ(t_control_fds(), n0);
        CHECK_EQ(am_table_forget(&st), 0);
}

/* A descriptor renumbered (dup2 to another number, close of the old one)
 * again and again while collections run. A thread moves the region's
 * descriptor without pause between two numbers 2,000 apart, with other
 * descriptors open between them: a listing of /proc/self/fd that passes
 * the low number while the descriptor is at the high one, and reaches the
 * high one after it moved back, misses it (about one listing in four).
 * An entry goes only if two listings both missed it, which this loop
 * still manages now and then; what the library guarantees then
 * (docs/control-block.md): the region does not pretend (ENOLCK), makes no
 * second block, and its pages keep their state. */
#define RN_GAP 2000

struct renumber { int fd, lo, stop; unsigned long moves; };

static void *renumber_main(void *arg)
{
        struct renumber *x = arg;
        int a = x->fd, b = x->lo;

        while (!__atomic_load_n(&x->stop, __ATOMIC_RELAXED)) {
                if (dup3(a, b, O_CLOEXEC) != b)
                        abort();
                close(a);
                a = b;
                b = b == x->lo ? x->lo + RN_GAP : x->lo;
                x->moves++;
        }
        x->fd = a;
        return NULL;
}

TEST(collection_keeps_a_descriptor_renumbered_during_it)
{
        size_t P = ps();
        struct renumber x;
        struct stat st;
        struct amc_ref r;
        struct rlimit rl;
        pthread_t t;
        int lost = 0, rounds = 300, fd, *fill, nfill = 0;

        CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < RN_GAP + 300) {
                CHECK(rl.rlim_max >= RN_GAP + 300);
                rl.rlim_cur = RN_GAP + 300;
                CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }
        fd = create("renumbered", 2 * P);
        CHECK_EQ(ashmem_unpin_region(fd, P, P), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        /* the numbers between the two the descriptor moves to */
        fill = calloc(RN_GAP, sizeof(*fill));
        CHECK(fill != NULL);
        for (int i = 0; i < RN_GAP - 1; i++) {
                int n = fcntl(0, F_DUPFD_CLOEXEC, 101 + i);
                CHECK(n >= 0);
                if (n != 101 + i) {
                        close(n);
                        continue;
                }
                fill[nfill++] = n;
        }
        x = (struct renumber){ .fd = fd, .lo = 100 };
        CHECK_EQ(pthread_create(&t, NULL, renumber_main, &x), 0);
        for (int i = 0; i < rounds && !lost; i++) {
                (void)ashmem_collect();
                if (am_table_hold(&st, &r) < 0)
                        lost = i + 1;
                else
                        am_table_release(&st);
        }
        __atomic_store_n(&x.stop, 1, __ATOMIC_RELAXED);
        CHECK_EQ(pthread_join(t, NULL), 0);
        for (int i = 0; i < nfill; i++)
                close(fill[i]);
        free(fill);
        if (lost) {
                fprintf(stderr, "    note: collection %d dropped the entry of an open "
                        "descriptor (%lu renumberings)\n", lost, x.moves);
                CHECK_ERRNO(ashmem_pin_region(x.fd, P, P), ENOLCK);
                CHECK_ERRNO(ashmem_unpin_region(x.fd, 0, P), ENOLCK);
                /* no second block was made for it */
                CHECK(am_table_hold(&st, &r) < 0);
        } else {
                CHECK_MAP(x.fd, "Pu");
                CHECK_EQ(ashmem_pin_region(x.fd, P, P), ASHMEM_NOT_PURGED);
        }
        close(x.fd);
}

/* A collection in a process of several threads keeps no reference to the
 * process's files when it returns: a socket closed right after it is
 * closed at once (its peer sees the hangup without waiting). */
static void *idle_thread(void *arg)
{
        int *stop = arg;

        while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE))
                usleep(1000);
        return NULL;
}

TEST(a_descriptor_closed_after_a_collection_is_closed_at_once)
{
        int fd = create("kept", ps()), stop = 0, late = 0;
        pthread_t t;

        CHECK_EQ(pthread_create(&t, NULL, idle_thread, &stop), 0);
        for (int i = 0; i < 500; i++) {
                int sv[2];
                struct pollfd p;
                CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                CHECK(ashmem_collect() >= 0);
                close(sv[0]);
                p = (struct pollfd){ .fd = sv[1], .events = POLLIN };
                CHECK_EQ(poll(&p, 1, 0), 1);
                if (!(p.revents & POLLHUP))
                        late++;
                close(sv[1]);
        }
        __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(late, 0);
        close(fd);
}

/* The entry of a live descriptor gone from the table (what a collection
 * racing a descriptor renumbered without pause can do): the region does
 * not pretend, and no second block is made for it. */
TEST(a_lost_entry_fails_with_enolck_and_makes_no_second_block)
{
        size_t P = ps();
        int fd = create("lost", 2 * P), n0;
        struct stat st;

        CHECK_EQ(ashmem_unpin_region(fd, P, P), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        n0 = t_control_fds();
        CHECK_EQ(am_table_forget(&st), 1);
        errno = 0;
        CHECK_EQ(ashmem_pin_region(fd, P, P), -1);
        CHECK_EQ(errno, ENOLCK);
        errno = 0;
        CHECK_EQ(ashmem_unpin_region(fd, 0, P), -1);
        CHECK_EQ(errno, ENOLCK);
        CHECK(t_control_fds() < n0);
        close(fd);
}

/* A thread cancelled anywhere in the library's table work (collection,
 * creation) leaves the table usable. */
static void *collect_forever(void *arg)
{
        (void)arg;
        for (;;) {
                int fd = ashmem_create_region("cancel", 4096);
                if (fd >= 0)
                        close(fd);
                (void)ashmem_collect();
                pthread_testcancel();
        }
        return NULL;
}

TEST(cancelled_threads_leave_the_table_usable)
{
        for (int i = 0; i < 100; i++) {
                pthread_t t;
                struct timespec ts = { 0, (long)(i % 10) * 100000 };
                int fd;

                CHECK_EQ(pthread_create(&t, NULL, collect_forever, NULL), 0);
                nanosleep(&ts, NULL);
                CHECK_EQ(pthread_cancel(t), 0);
                CHECK_EQ(pthread_join(t, NULL), 0);
                alarm(10);      /* a wedged table kills the test */
                fd = create("after", ps());
                CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
                CHECK_EQ(ashmem_collect() >= 0, 1);
                alarm(0);
                close(fd);
        }
        t_allow_fd_leak();      /* a cancelled creation may leave one behind */
}

/* A version 1 block (or anything else) is refused. */
TEST(attach_refuses_other_versions_and_bad_geometry)
{
        size_t P = ps(), len = amc_block_size(8);
        struct amc_ref r;
        struct amc_block *b = calloc(1, len);

        CHECK(b != NULL);
        amc_init(b, "x", 8 * P, (uint32_t)P, 1, 2, PROT_READ | PROT_WRITE);
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), 0);
        CHECK_EQ(r.pages, 8);
        CHECK_EQ(amc_attach(&r, b, len - 1, 1, -1), -EINVAL);
        b->magic = AMC_MAGIC_V1;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EPROTO);
        b->magic = AMC_MAGIC;
        b->version = 1;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EINVAL);
        b->version = AMC_VERSION;
        b->pages = 9;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EINVAL);
        b->pages = 8;
        b->page_size = 3000;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EINVAL);
        /* a sane geometry, but not this process's page size */
        b->page_size = (uint32_t)(2 * P);
        b->pages = 4;
        b->words = 1;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EINVAL);
        b->pages = 8;
        b->page_size = (uint32_t)P;
        b->size = ~(uint64_t)0;
        CHECK_EQ(amc_attach(&r, b, len, 1, -1), -EINVAL);
        free(b);
}

/* ------------------------------------------------------- stats, page map */

TEST(stats_counters_and_unpin_time)
{
        size_t P = ps();
        int fd = create("stats", 6 * P + 7);
        long long t0, t1, since;
        ashmem_stats s;

        CHECK_NEG(ashmem_get_stats(fd, NULL), EINVAL);
        t0 = mono_ns();
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        t1 = mono_ns();
        s = stats(fd);
        since = s.unpinned_since_ns;
        CHECK(since >= t0 && since <= t1);
        CHECK_EQ(s.size, 6 * P + 7);
        CHECK_EQ(s.pages, 7);
        CHECK_COUNTS(fd, 5, 2, 0);
        /* the time of a recent unpin, to a tick: later unpins within the
         * tick and partial pins leave it */
        CHECK_EQ(ashmem_unpin_region(fd, 4 * P, P), 0);
        CHECK_EQ(stats(fd).unpinned_since_ns, since);
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_NOT_PURGED);
        CHECK_EQ(stats(fd).unpinned_since_ns, since);
        CHECK_COUNTS(fd, 5, 2, 0);
        /* purged pages are still unpinned */
        CHECK_EQ(ashmem_purge(fd), 2);
        s = stats(fd);
        CHECK_EQ(s.unpinned_since_ns, since);
        CHECK_EQ(s.purges, 1);
        CHECK_EQ(s.pages_reclaimed, 2);
        CHECK_COUNTS(fd, 5, 0, 2);
        CHECK_EQ(ashmem_unpin_region(fd, 6 * P, P), 0);
        CHECK_COUNTS(fd, 4, 1, 2);
        /* all pinned: no time */
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        s = stats(fd);
        CHECK_EQ(s.unpinned_since_ns, 0);
        CHECK_EQ(s.purges, 1);
        CHECK_EQ(s.pages_reclaimed, 2);
        CHECK_COUNTS(fd, 7, 0, 0);
        /* a new unpin, a tick later, starts a new time (unpins within a
         * tick of the stored time leave it: a loop of unpins does not
         * write it every time) */
        {
                struct timespec ts = { 0, 2 * AMC_STAMP_TICK_NS };
                nanosleep(&ts, NULL);
        }
        t0 = mono_ns();
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK(stats(fd).unpinned_since_ns >= t0);
        CHECK_EQ(ashmem_purge(fd), 7);
        s = stats(fd);
        CHECK_EQ(s.purges, 2);
        CHECK_EQ(s.pages_reclaimed, 9);
        close(fd);
}

TEST(page_map_reports_each_page)
{
        size_t P = ps();
        int fd = create("pagemap", 5 * P);
        char buf[8];

        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(ashmem_purge(fd), 2);
        CHECK_EQ(ashmem_unpin_region(fd, 4 * P, P), 0);
        CHECK_MAP(fd, "PxxPu");
        /* a prefix only, nothing written past it */
        memset(buf, '#', sizeof(buf));
        CHECK_EQ(ashmem_get_page_map(fd, buf, 2), 0);
        CHECK(memcmp(buf, "Px##", 4) == 0);
        CHECK_EQ(ashmem_get_page_map(fd, buf, 0), 0);
        CHECK_EQ(buf[0], 'P');
        CHECK_EQ(ashmem_get_page_map(fd, NULL, 0), 0);
        CHECK_NEG(ashmem_get_page_map(fd, NULL, 1), EINVAL);
        CHECK_NEG(ashmem_get_page_map(fd, buf, 6), EINVAL);
        CHECK_NEG(ashmem_get_page_map(-1, buf, 1), EBADF);
        close(fd);
}

/* What a view's record counts, a word of pin state at a time, agrees with
 * the page map for any range: across groups of pages of one state and of
 * mixed ones, partial words, the last partial group, empty ranges and
 * ranges past the end; and over a block a writer scribbled, the counts
 * still add up to the range's pages. */
TEST(range_counts_agree_with_the_page_map)
{
        enum { PAGES = 3 * 256 + 37 };
        size_t P = ps(), c[3];
        int fd = create("ranges", PAGES * P);
        static char map[PAGES];
        struct am_hold *h = NULL;
        unsigned long long x = 88172645463325252ull;

        /* every page unpinned, then pins and unpins in the first and last
         * groups (mixed ones) and a purge; then the second group all
         * pinned and the third all unpinned (groups of one state) */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        for (int i = 0; i < 40; i++) {
                size_t off, len;
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                off = (x >> 50) & 1 ? 768 + (size_t)(x % 37) : (size_t)(x % 256);
                len = 1 + (size_t)((x >> 20) % 40);
                if (off + len > PAGES)
                        len = PAGES - off;
                if ((x >> 40) & 1)
                        CHECK_EQ(ashmem_unpin_region(fd, off * P, len * P), 0);
                else
                        CHECK(ashmem_pin_region(fd, off * P, len * P) >= 0);
                if (i == 20)
                        CHECK(ashmem_purge(fd) > 0);
        }
        CHECK(ashmem_pin_region(fd, 256 * P, 512 * P) >= 0);
        CHECK_EQ(ashmem_unpin_region(fd, 512 * P, 256 * P), 0);
        CHECK_EQ(ashmem_get_page_map(fd, map, PAGES), 0);
        CHECK(memchr(map, 'x', PAGES) && memchr(map, 'u', PAGES));
        CHECK_EQ(am_hold_new(fd, &h), 0);
        for (int i = 0; i < 400; i++) {
                size_t first, n, want[3] = { 0, 0, 0 };
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                first = (size_t)(x % (PAGES + 20));
                n = i % 7 == 0 ? (size_t)-1 : (size_t)((x >> 24) % 600);
                for (size_t k = first; k < PAGES && k - first < n; k++)
                        want[map[k] == 'P' ? 0 : map[k] == 'u' ? 1 : 2]++;
                CHECK_EQ(am_hold_counts(h, first, n, c), ashmem_get_prot(fd));
                if (c[0] != want[0] || c[1] != want[1] || c[2] != want[2])
                        t_fail(__FILE__, __LINE__, "pages [%zu, +%zu): %zu %zu %zu, the map %zu %zu %zu",
                               first, n, c[0], c[1], c[2], want[0], want[1], want[2]);
        }
        /* a writer scribbles over the whole block, header and all: the
         * counts keep to the range, whatever the words say */
        {
                int ctl;
                struct stat cs;
                unsigned char *m;
                CHECK_EQ(ashmem_get_control(fd, &ctl), 0);
                CHECK_EQ(fstat(ctl, &cs), 0);
                m = mmap(NULL, (size_t)cs.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ctl, 0);
                CHECK(m != MAP_FAILED);
                for (int round = 0; round < 50; round++) {
                        for (off_t k = 0; k < cs.st_size; k++) {
                                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                                m[k] = (unsigned char)x;
                        }
                        for (int i = 0; i < 20; i++) {
                                size_t first, n;
                                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                                first = (size_t)(x % (PAGES + 20));
                                n = (size_t)((x >> 24) % 900);
                                (void)am_hold_counts(h, first, n, c);
                                n = first >= PAGES ? 0 : n < PAGES - first ? n : PAGES - first;
                                CHECK_EQ(c[0] + c[1] + c[2], n);
                        }
                }
                munmap(m, (size_t)cs.st_size);
                close(ctl);
        }
        am_hold_free(h);
        close(fd);
}

/* --------------------------------------------- memfds of someone else */

TEST(foreign_memfd)
{
        size_t P = ps();
        int fd = memfd_create("foreign", MFD_CLOEXEC | MFD_ALLOW_SEALING), ro, c;
        char name[ASHMEM_NAME_LEN], *m;
        size_t sz;
        ashmem_stats s;

        CHECK(fd >= 0);
        CHECK_EQ(ftruncate(fd, (off_t)(3 * P + 1)), 0);
        m = map(fd, PROT_READ | PROT_WRITE, 4 * P);
        memset(m, 'f', 3 * P + 1);
        /* unsealed: usable, but no region by ashmem_valid()'s rule */
        CHECK_EQ(ashmem_valid(fd), 0);
        CHECK_EQ(ashmem_get_name(fd, name, sizeof(name)), 7);
        CHECK(strcmp(name, "foreign") == 0);
        CHECK_EQ(ashmem_get_size(fd, &sz), 0);
        CHECK_EQ(sz, 3 * P + 1);
        CHECK_EQ(ashmem_get_size_region(fd), (long long)(3 * P + 1));
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE | PROT_EXEC);
        /* pin state: always pinned, never purged, same range rules */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(fd), 0);
        CHECK(all(m, 3 * P + 1, 'f'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_ERRNO(ashmem_pin_region(fd, 1, 0), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, 5 * P), EINVAL);
        CHECK_ERRNO(ashmem_unpin_region(fd, P, SIZE_MAX & ~(P - 1)), EINVAL);
        CHECK_EQ(ashmem_unpin_region(fd, 3 * P, P), 0);     /* partial last page */
        CHECK_MAP(fd, "PPPP");
        s = stats(fd);
        CHECK_EQ(s.shared_state, 0);
        CHECK_EQ(s.writable_state, 1);
        CHECK_EQ(s.pages, 4);
        CHECK_EQ(s.pinned, 4);
        CHECK_EQ(s.size, 3 * P + 1);
        CHECK_NEG(ashmem_get_control(fd, &c), ENOENT);
        /* a read-only descriptor of it may not pin */
        ro = reopen(fd, O_RDONLY);
        CHECK_ERRNO(ashmem_pin_region(ro, 0, 0), EPERM);
        CHECK_NEG(ashmem_purge(ro), EPERM);
        CHECK_EQ(ashmem_pin_status(ro, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(stats(ro).writable_state, 0);
        close(ro);
        /* prot: the write bit lives in the seals */
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_EXEC), 0);
        CHECK(fcntl(fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_EXEC);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), EINVAL);
        errno = 0;
        CHECK(mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        m[0] = 'g';     /* the old mapping still writes */
        munmap(m, 4 * P);
        close(fd);
}

/* -------------------------------------------------------------- collect */

TEST(collect_drops_closed_regions_and_keeps_live_ones)
{
        size_t P = ps();
        int live, dead, mapped, n0 = t_control_fds(), r;
        char *m;

        live = create("live", 2 * P);
        dead = create("dead", 2 * P);
        mapped = create("mapped", 2 * P);
        CHECK_EQ(t_control_fds(), n0 + 3);
        CHECK_EQ(ashmem_unpin_region(live, P, P), 0);
        m = map(mapped, PROT_READ | PROT_WRITE, 2 * P);
        CHECK_EQ(ashmem_unpin_region(mapped, 0, P), 0);
        close(dead);
        close(mapped);          /* still mapped: still referred to */
        r = ashmem_collect();
        CHECK_EQ(r, 1);
        CHECK_EQ(t_control_fds(), n0 + 2);
        CHECK_EQ(ashmem_collect(), 0);
        /* the live region kept its shared state */
        CHECK_EQ(stats(live).shared_state, 1);
        CHECK_MAP(live, "Pu");
        CHECK_EQ(ashmem_purge(live), 1);
        /* the mapped one goes when its mapping does */
        munmap(m, 2 * P);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(t_control_fds(), n0 + 1);
        close(live);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(t_control_fds(), n0);
}

/* Without explicit collection, stale entries never outnumber live ones
 * by much: the table collects itself when it has doubled. */
TEST(control_descriptors_do_not_pile_up)
{
        int keep[8], most = 0;

        for (int i = 0; i < 8; i++)
                keep[i] = create("kept", ps());
        for (int i = 0; i < 1000; i++) {
                int fd = create("churn", ps()), n;
                CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
                close(fd);
                n = t_control_fds();
                if (n > most)
                        most = n;
        }
        /* 8 live + at most twice the automatic threshold of stale ones */
        if (most > 8 + 2 * 64 + 1)
                t_fail(__FILE__, __LINE__, "%d control descriptors at most", most);
        for (int i = 0; i < 8; i++) {
                CHECK_EQ(stats(keep[i]).shared_state, 1);
                close(keep[i]);
        }
}

/* Threads creating, pinning and closing regions at once: the table's
 * lookups, inserts, growth and collections under contention. */
struct churn { int id; int fail; };

static void *table_churn(void *arg)
{
        struct churn *c = arg;
        size_t P = ps();

        for (int i = 0; i < 150 && !c->fail; i++) {
                int fd = ashmem_create_region("thread", 3 * P);
                char map[4];
                if (fd < 0) {
                        c->fail = __LINE__;
                        break;
                }
                if (ashmem_unpin_region(fd, (size_t)(i % 3) * P, P) != 0 ||
                    ashmem_get_page_map(fd, map, 3) != 0 ||
                    map[i % 3] != 'u' || map[(i + 1) % 3] != 'P' ||
                    ashmem_purge(fd) != 1 ||
                    ashmem_pin_region(fd, 0, 0) != ASHMEM_WAS_PURGED)
                        c->fail = __LINE__;
                if (i % 50 == 49 && ashmem_collect() < 0)
                        c->fail = __LINE__;
                close(fd);
        }
        return NULL;
}

TEST(table_under_threads)
{
        pthread_t t[4];
        struct churn c[4];

        for (int i = 0; i < 4; i++) {
                c[i] = (struct churn){ .id = i };
                CHECK_EQ(pthread_create(&t[i], NULL, table_churn, &c[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                CHECK_EQ(pthread_join(t[i], NULL), 0);
                if (c[i].fail)
                        t_fail(__FILE__, __LINE__, "thread %d failed at line %d", i, c[i].fail);
        }
}

/* Each thread caches the last region it looked up. A region closed while
 * another thread still caches it is dropped from the table at once, and its
 * control descriptor and mapping go when that thread lets go: at its next
 * lookup of another region, or at its exit. */
struct cacher {
        int fd, other;
        int step, done;                 /* atomics: main -> thread, back */
        int fail;
};

static void cacher_wait(struct cacher *c, int step)
{
        while (__atomic_load_n(&c->step, __ATOMIC_ACQUIRE) < step)
                sched_yield();
}

static void *cacher_main(void *arg)
{
        struct cacher *c = arg;

        if (ashmem_pin_status(c->fd, 0, 0) != ASHMEM_IS_PINNED)
                c->fail = __LINE__;
        __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
        cacher_wait(c, 1);
        /* the region is closed now: another lookup lets go of it */
        if (ashmem_pin_status(c->other, 0, 0) != ASHMEM_IS_PINNED)
                c->fail = __LINE__;
        __atomic_store_n(&c->done, 2, __ATOMIC_RELEASE);
        cacher_wait(c, 2);
        return NULL;
}

TEST(regions_cached_by_other_threads_are_collected)
{
        struct cacher c = { 0 };
        pthread_t t;
        int n0 = t_control_fds();

        c.fd = create("cached", ps());
        c.other = create("other", ps());
        CHECK_EQ(pthread_create(&t, NULL, cacher_main, &c), 0);
        while (__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) < 1)
                sched_yield();
        close(c.fd);
        CHECK_EQ(ashmem_collect(), 1);
        /* out of the table, but the thread's cache keeps it alive */
        CHECK_EQ(t_control_fds(), n0 + 2);
        __atomic_store_n(&c.step, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) < 2)
                sched_yield();
        CHECK_EQ(ashmem_collect(), 0);
        CHECK_EQ(t_control_fds(), n0 + 1);
        /* the other one, cached by the thread until it exits */
        close(c.other);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(t_control_fds(), n0 + 1);
        __atomic_store_n(&c.step, 2, __ATOMIC_RELEASE);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(ashmem_collect(), 0);
        CHECK_EQ(t_control_fds(), n0);
        if (c.fail)
                t_fail(__FILE__, __LINE__, "thread failed at line %d", c.fail);
}

/* A fork child does not inherit the other threads' caches: what they held
 * is collected in the child like anything else. */
static void child_collects(void *arg)
{
        struct cacher *c = arg;
        int n0 = t_control_fds();

        close(c->fd);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(t_control_fds(), n0 - 1);
        CHECK_EQ(ashmem_pin_status(c->other, 0, 0), ASHMEM_IS_PINNED);
}

TEST(fork_child_forgets_other_threads_caches)
{
        struct cacher c = { 0 };
        pthread_t t;

        c.fd = create("cached-fork", ps());
        c.other = create("other-fork", ps());
        CHECK_EQ(pthread_create(&t, NULL, cacher_main, &c), 0);
        while (__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) < 1)
                sched_yield();
        CHILD_OK(child_collects, &c);
        __atomic_store_n(&c.step, 2, __ATOMIC_RELEASE);
        CHECK_EQ(pthread_join(t, NULL), 0);
        close(c.fd);
        close(c.other);
}

/* ---------------------------------------------------------------- stress
 *
 * Workers (two threads here, two forked processes) each own a slice of one
 * region and pin and unpin random ranges of it, odd ones through a heap
 * (the held fast path), even ones through the descriptor calls; a purger
 * process purges in a loop. The invariant: a page its writer has pinned never loses its
 * content, an unpinned page keeps it unless the pin that takes it back
 * says WAS_PURGED, and WAS_PURGED is only ever said for a range with a
 * page unpinned by its writer (and then one of those pages is all zeros).
 */
#define S_WORKERS 4
#define S_SLICE 40              /* pages: slices straddle bitmap words */
#define S_PAGES (S_WORKERS * S_SLICE)

struct stress {
        int fd;
        char *m;
        volatile int go, stop;
        long long purged_pages, was_purged, ops;   /* atomics */
        char fail[256];                            /* first failure */
};

static void s_fail(struct stress *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void s_fail(struct stress *s, const char *fmt, ...)
{
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (__atomic_exchange_n(&s->fail[0], '!', __ATOMIC_SEQ_CST) == 0)
                memcpy(s->fail + 1, msg, sizeof(s->fail) - 1);
        __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
}

#define S_FAIL(s, ...) do { s_fail((s), __VA_ARGS__); return; } while (0)

static uint64_t xorshift(uint64_t *x)
{
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* Page content: a header naming (worker, page, generation), then a fill. */
static void s_write(char *p, size_t P, int w, int page, unsigned gen)
{
        uint64_t h = ((uint64_t)w << 48) | ((uint64_t)page << 32) | gen | 1;
        memset(p, (gen * 31 + (unsigned)page) % 255 + 1, P);
        memcpy(p, &h, sizeof(h));
}

static int s_intact(const char *p, size_t P, int w, int page, unsigned gen)
{
        uint64_t h = ((uint64_t)w << 48) | ((uint64_t)page << 32) | gen | 1, got;
        memcpy(&got, p, sizeof(got));
        return got == h && all(p + sizeof(h), P - sizeof(h),
                               (int)((gen * 31 + (unsigned)page) % 255 + 1));
}

static void s_worker(struct stress *s, int w)
{
        size_t P = ps();
        unsigned gen[S_SLICE];
        char pinned[S_SLICE];
        uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(w + 1);
        int first = w * S_SLICE;
        /* odd workers go through a heap (the fast path without fstat),
         * even ones through the descriptor calls */
        ashmem_heap *heap = NULL;

        if (w % 2 && ashmem_heap_adopt(s->fd, 0, &heap) < 0)
                S_FAIL(s, "worker %d: ashmem_heap_adopt failed", w);

        for (int i = 0; i < S_SLICE; i++) {
                gen[i] = 1;
                pinned[i] = 1;
                s_write(s->m + (size_t)(first + i) * P, P, w, i, gen[i]);
        }
        while (!__atomic_load_n(&s->go, __ATOMIC_SEQ_CST))
                sched_yield();
        while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
                int a = (int)(xorshift(&rnd) % S_SLICE);
                int n = 1 + (int)(xorshift(&rnd) % (uint64_t)(S_SLICE - a < 9 ? S_SLICE - a : 9));
                size_t off = (size_t)(first + a) * P, len = (size_t)n * P;
                int any_unpinned = 0, r;

                /* pinned pages are intact, always */
                for (int i = a; i < a + n; i++) {
                        any_unpinned |= !pinned[i];
                        if (pinned[i] && !s_intact(s->m + (size_t)(first + i) * P, P, w, i, gen[i]))
                                S_FAIL(s, "worker %d: pinned page %d lost its content", w, i);
                }
                if (xorshift(&rnd) % 2) {
                        r = heap ? ashmem_heap_unpin(heap, off, len) :
                                   ashmem_unpin_region(s->fd, off, len);
                        if (r != 0)
                                S_FAIL(s, "worker %d: unpin: %d %m", w, r);
                        memset(pinned + a, 0, (size_t)n);
                        if ((heap ? ashmem_heap_pin_status(heap, off, len) :
                                    ashmem_pin_status(s->fd, off, len)) != ASHMEM_IS_UNPINNED)
                                S_FAIL(s, "worker %d: unpinned range says pinned", w);
                } else {
                        int zeros = 0;
                        r = heap ? ashmem_heap_pin(heap, off, len) :
                                   ashmem_pin_region(s->fd, off, len);
                        if (r != ASHMEM_NOT_PURGED && r != ASHMEM_WAS_PURGED)
                                S_FAIL(s, "worker %d: pin: %d %m", w, r);
                        if (r == ASHMEM_WAS_PURGED && !any_unpinned)
                                S_FAIL(s, "worker %d: WAS_PURGED for a pinned range", w);
                        for (int i = a; i < a + n; i++) {
                                char *p = s->m + (size_t)(first + i) * P;
                                if (s_intact(p, P, w, i, gen[i]))
                                        continue;
                                if (r == ASHMEM_NOT_PURGED)
                                        S_FAIL(s, "worker %d: page %d lost, pin said NOT_PURGED", w, i);
                                if (pinned[i] || !all(p, P, 0))
                                        S_FAIL(s, "worker %d: page %d neither intact nor purged", w, i);
                                zeros++;
                        }
                        if (r == ASHMEM_WAS_PURGED) {
                                if (!zeros)
                                        S_FAIL(s, "worker %d: WAS_PURGED, but no page was", w);
                                __atomic_add_fetch(&s->was_purged, 1, __ATOMIC_RELAXED);
                        }
                        if ((heap ? ashmem_heap_pin_status(heap, off, len) :
                                    ashmem_pin_status(s->fd, off, len)) != ASHMEM_IS_PINNED)
                                S_FAIL(s, "worker %d: pinned range says unpinned", w);
                        /* the writer writes while pinned and checks */
                        for (int i = a; i < a + n; i++) {
                                char *p = s->m + (size_t)(first + i) * P;
                                pinned[i] = 1;
                                gen[i]++;
                                s_write(p, P, w, i, gen[i]);
                                if (!s_intact(p, P, w, i, gen[i]))
                                        S_FAIL(s, "worker %d: page %d changed under its writer", w, i);
                        }
                }
                __atomic_add_fetch(&s->ops, 1, __ATOMIC_RELAXED);
        }
        /* at the end, everything it pinned is intact */
        for (int i = 0; i < S_SLICE; i++)
                if (pinned[i] && !s_intact(s->m + (size_t)(first + i) * P, P, w, i, gen[i]))
                        S_FAIL(s, "worker %d: pinned page %d lost at the end", w, i);
        if (heap)
                ashmem_heap_unref(heap);
}

struct s_thread { struct stress *s; int w; };

static void *s_worker_thread(void *arg)
{
        struct s_thread *t = arg;
        s_worker(t->s, t->w);
        return NULL;
}

static void s_purger(struct stress *s)
{
        char map[S_PAGES];

        while (!__atomic_load_n(&s->go, __ATOMIC_SEQ_CST))
                sched_yield();
        while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
                ashmem_stats st;
                int n = ashmem_purge(s->fd);
                if (n < 0)
                        S_FAIL(s, "purge: %d", n);
                __atomic_add_fetch(&s->purged_pages, n, __ATOMIC_RELAXED);
                if (ashmem_get_stats(s->fd, &st) < 0 ||
                    st.pinned + st.unpinned + st.purged != S_PAGES)
                        S_FAIL(s, "stats do not add up");
                if (ashmem_get_page_map(s->fd, map, S_PAGES) < 0)
                        S_FAIL(s, "page map");
                for (int i = 0; i < S_PAGES; i++)
                        if (map[i] != 'P' && map[i] != 'u' && map[i] != 'x')
                                S_FAIL(s, "page map: '%c'", map[i]);
                sched_yield();
        }
}

TEST(stress_pin_unpin_against_purge)
{
        size_t P = ps();
        struct stress *s;
        struct s_thread th[2];
        pthread_t t[2];
        pid_t kids[3];
        long long start, now;

        s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(s != MAP_FAILED);
        memset(s, 0, sizeof(*s));
        s->fd = create("stress", S_PAGES * P);
        s->m = map(s->fd, PROT_READ | PROT_WRITE, S_PAGES * P);
        /* processes first (no threads to fork with), then threads */
        for (int k = 0; k < 3; k++) {
                kids[k] = fork();
                CHECK(kids[k] >= 0);
                if (kids[k] == 0) {
                        if (k < 2)
                                s_worker(s, 2 + k);
                        else
                                s_purger(s);
                        _exit(0);
                }
        }
        for (int i = 0; i < 2; i++) {
                th[i] = (struct s_thread){ s, i };
                CHECK_EQ(pthread_create(&t[i], NULL, s_worker_thread, &th[i]), 0);
        }
        start = mono_ns();
        __atomic_store_n(&s->go, 1, __ATOMIC_SEQ_CST);
        /* about 1.5 s, longer only until purges have really raced the
         * workers (bounded at 20 s on a badly overloaded machine) */
        do {
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
                now = mono_ns();
        } while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST) &&
                 (now - start < 1500000000LL ||
                  __atomic_load_n(&s->purged_pages, __ATOMIC_SEQ_CST) == 0 ||
                  __atomic_load_n(&s->was_purged, __ATOMIC_SEQ_CST) == 0) &&
                 now - start < 20000000000LL);
        __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
        for (int i = 0; i < 2; i++)
                CHECK_EQ(pthread_join(t[i], NULL), 0);
        for (int k = 0; k < 3; k++) {
                int st = wait_child(kids[k]);
                CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        if (s->fail[0])
                t_fail(__FILE__, __LINE__, "%s", s->fail + 1);
        if (s->purged_pages == 0 || s->was_purged == 0)
                t_fail(__FILE__, __LINE__, "no race happened: %lld pages purged, "
                       "%lld WAS_PURGED, %lld ops", s->purged_pages, s->was_purged, s->ops);
        /* the state is sane after all of it */
        CHECK_EQ(stats(s->fd).pages_reclaimed, s->purged_pages);
        CHECK(ashmem_pin_region(s->fd, 0, 0) >= 0);
        CHECK_COUNTS(s->fd, S_PAGES, 0, 0);
        munmap(s->m, S_PAGES * P);
        close(s->fd);
        munmap(s, sizeof(*s));
}

/* ------------------------------------------------- blocks made on demand */

static int control_fd_count(void)
{
        return t_control_fds();
}

TEST(a_region_gets_its_block_at_its_first_unpin)
{
        size_t P = ps();
        int n0 = control_fd_count(), fd = create_lazy("ondemand", 4 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 4 * P);

        memset(m, 'd', 4 * P);
        /* pins, statuses, purges and maps need none */
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(fd), 0);
        CHECK_MAP(fd, "PPPP");
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
        CHECK_EQ(control_fd_count(), n0);
        CHECK_EQ(stats(fd).shared_state, 0);
        /* the first unpin makes it */
        CHECK_EQ(ashmem_unpin_region(fd, P, 2 * P), 0);
        CHECK_EQ(control_fd_count(), n0 + 1);
        CHECK_EQ(stats(fd).shared_state, 1);
        CHECK_MAP(fd, "PuuP");
        CHECK_EQ(ashmem_purge(fd), 2);
        CHECK(all(m, P, 'd'));
        CHECK(all(m + P, 2 * P, 0));
        CHECK(all(m + 3 * P, P, 'd'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        munmap(m, 4 * P);
        close(fd);
}

TEST(dropping_read_or_exec_makes_the_block_that_records_it)
{
        int fd = create_lazy("protlazy", ps()), w = create_lazy("wlazy", ps());

        /* the write bit has a home in the seals: no block */
        CHECK_EQ(ashmem_set_prot_region(w, PROT_READ | PROT_EXEC), 0);
        CHECK_EQ(stats(w).shared_state, 0);
        CHECK_EQ(ashmem_get_prot(w), PROT_READ | PROT_EXEC);
        /* exec has none: a block records it */
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), 0);
        CHECK_EQ(stats(fd).shared_state, 1);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | PROT_EXEC), EINVAL);
        close(fd);
        close(w);
}

/* The child of a fork shares the block made for it before the fork. */
static void fork_child_unpins(void *arg)
{
        int fd = *(int *)arg;

        CHECK_EQ(stats(fd).shared_state, 1);
        CHECK_EQ(ashmem_unpin_region(fd, 0, ps()), 0);
}

TEST(fork_gives_parent_and_child_one_block)
{
        int fd = create_lazy("forked", 2 * ps()), st;

        CHECK_EQ(stats(fd).shared_state, 0);
        st = t_in_child(fork_child_unpins, &fd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        /* the parent sees the child's unpin: one block */
        CHECK_EQ(stats(fd).shared_state, 1);
        CHECK_MAP(fd, "uP");
        close(fd);
}

/* A region passed on (SCM_RIGHTS, or here inheritance by exec) without its
 * block: the receiver cannot know its pin state and says so (ENOLCK, no
 * broker holds it); the creator still decides for itself. */
TEST(the_mark_tells_a_region_of_ours_from_a_foreign_memfd)
{
        int ours = memfd_create("mimic", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int plain = memfd_create("plain", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        /* sticky bit and size seals: libashmem's mark, whoever set it */
        CHECK(ours >= 0 && plain >= 0);
        CHECK_EQ(ftruncate(ours, (off_t)ps()), 0);
        CHECK_EQ(ftruncate(plain, (off_t)ps()), 0);
        CHECK_EQ(fchmod(ours, 01600), 0);
        CHECK_EQ(fcntl(ours, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
        CHECK_EQ(fcntl(plain, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
        (void)ashmem_broker_auto_lookup(0);
        CHECK_ERRNO(ashmem_unpin_region(ours, 0, 0), ENOLCK);
        CHECK_ERRNO(ashmem_pin_region(ours, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_pin_status(ours, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_purge(ours), ENOLCK);
        /* no mark: a memfd libashmem did not make is always pinned */
        CHECK_EQ(ashmem_unpin_region(plain, 0, 0), 0);
        CHECK_EQ(ashmem_pin_status(plain, 0, 0), ASHMEM_IS_PINNED);
        /* sticky bit without the seals: no mark either */
        {
                int half = memfd_create("half", MFD_CLOEXEC);
                CHECK(half >= 0);
                CHECK_EQ(ftruncate(half, (off_t)ps()), 0);
                CHECK_EQ(fchmod(half, 01600), 0);
                CHECK_EQ(ashmem_pin_status(half, 0, 0), ASHMEM_IS_PINNED);
                close(half);
        }
        (void)ashmem_broker_auto_lookup(1);
        close(ours);
        close(plain);
}

/* A heap's pin that meets pages a dead purger left purging punches them,
 * as the descriptor path does: WAS_PURGED comes with zeros, not with the
 * old contents. */
TEST(heap_pin_finishing_a_dead_purge_punches)
{
        size_t P = ps();
        int fd = create("heapdead", 4 * P);
        char *m = map(fd, PROT_READ | PROT_WRITE, 4 * P);
        ashmem_heap *h;
        struct stat st;
        struct amc_ref r;

        memset(m, 'h', 4 * P);
        CHECK_EQ(ashmem_heap_adopt(fd, 0, &h), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        /* pages 0-1 purging, and nobody purging them */
        __atomic_store_n(&r.state[0], 0xaull, __ATOMIC_RELEASE);
        am_table_release(&st);
        CHECK_EQ(ashmem_heap_pin(h, 0, 0), ASHMEM_WAS_PURGED);
        CHECK(all(m, 2 * P, 0));
        CHECK(all(m + 2 * P, 2 * P, 'h'));
        CHECK_MAP(fd, "PPPP");
        ashmem_heap_unref(h);
        munmap(m, 4 * P);
        close(fd);
}

/* A holder that may not reopen the control memfd (another user's, mode
 * 0600) cannot take the purge lock on a description of its own, and there
 * is no fallback to a record lock: its purge fails with EACCES and changes
 * nothing. (Run as root, the test holder becomes nobody.) */
static void purge_as_nobody(void *arg)
{
        int fd = *(int *)arg;

        CHECK_EQ(setgroups(0, NULL), 0);
        CHECK_EQ(setresgid(65534, 65534, 65534), 0);
        CHECK_EQ(setresuid(65534, 65534, 65534), 0);
        CHECK_NEG(ashmem_purge(fd), EACCES);
        CHECK_MAP(fd, "uu");
        /* pin state still works: that needs no lock */
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
}

TEST(purge_without_a_description_of_its_own_fails_with_eacces)
{
        int fd = create("noreopen", 2 * ps()), st;

        if (geteuid() != 0) {
                printf("    (skipped: needs root to become another user)\n");
                close(fd);
                return;
        }
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        st = t_in_child(purge_as_nobody, &fd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_MAP(fd, "uu");
        CHECK_EQ(ashmem_purge(fd), 2);
        close(fd);
}

/* Opening unpinned groups is a purge's progress, not a failed round: a
 * purge of a region of 2,048 uniform unpinned groups purges all of it
 * even under the shortest retry bound (the broker's purger runs with a
 * short one), where counting each opening as a failure would give up
 * after the first chunks. */
TEST(a_long_purge_is_not_cut_short_by_the_retry_bound)
{
        size_t P = ps(), pages = 2048 * AMC_GROUP_PAGES;
        int fd = ashmem_create_region("long", pages * P);
        int n;

        CHECK(fd >= 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        amc_set_thread_bound(1);
        n = ashmem_purge(fd);
        amc_set_thread_bound(0);
        CHECK_EQ(n, (int)pages);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        close(fd);
}
