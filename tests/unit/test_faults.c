/* SPDX-License-Identifier: MIT */
/*
 * Fault injection on the pin state: a holder that loops pin, unpin and
 * purge on a region is SIGKILLed at random moments, round after round, and
 * after every kill the survivor checks what the region and its control
 * block promise (docs/control-block.md): pages a dead purger left purging
 * are finished by the next purge, the counters equal the state words, no pinned page ever lost its contents,
 * a page that is merely unpinned (not purged) kept its contents too, and
 * pin tells the truth about what was purged. (test_pin.c kills holders at
 * fixed points inside a purge; this test lets the kill land wherever it
 * lands.)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../../drivers/memfd/memfd.h"
#include "t.h"

#define ANCHORS  16             /* pages 0..15: pinned for ever */
#define PATTERNED 48            /* pages 0..47 hold a pattern */
#define PAGES    (PATTERNED + 64 * 64)  /* and 4096 more, never written, whose
                                           long runs keep a purge busy longer
                                           (so more kills land inside one) */
#define ROUNDS   500            /* SIGKILLs at least */
#define IN_LOCK  10             /* ... and at least this many inside a purge */
#define MAX_ROUNDS 5000

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

/* The byte every patterned page i holds while its contents are intact. */
static unsigned char pattern(size_t i)
{
        return (unsigned char)(i * 7 + 1);
}

/* Refill page i after it was purged (the others stay holes). */
static void refill(unsigned char *m, size_t i, size_t P)
{
        if (i < PATTERNED)
                memset(m + i * P, pattern(i), P);
}

/* Shared between the parent and the killed child (an anonymous shared
 * mapping, not part of the region). The child sets pinning[] for the pages
 * of a pin before it calls pin and clears them once it has checked (or,
 * when told WAS_PURGED, refilled) them: a page left marked was being pinned
 * when the kill came, and only the dead child could have known whether its
 * contents were lost. */
struct journal {
        volatile unsigned char pinning[PAGES];
        volatile unsigned long long ops;        /* operations done */
        volatile unsigned long long pins, was_purged, unpins, purges, purged_pages;
        volatile int bad_page;                  /* -1, or a page found corrupt */
        volatile int bad_what;                  /* 1 pinned, 2 anchor */
};

static int intact(const unsigned char *m, size_t i, size_t P)
{
        const unsigned char *p = m + i * P;

        if (i >= PATTERNED)
                return 1;
        for (size_t k = 0; k < P; k++)
                if (p[k] != pattern(i))
                        return 0;
        return 1;
}

static uint64_t rnd(uint64_t *s)
{
        /* xorshift64*: any sequence will do, it only varies the work */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

/* The holder that gets killed: pin, unpin and purge on the pages after the
 * anchors, checking what pin says against what the pages hold. Exits only
 * when it finds a corrupt page. */
static void __attribute__((noreturn))
worker(int fd, unsigned char *m, struct journal *j, uint64_t seed)
{
        size_t P = ps();

        for (;;) {
                uint64_t x = rnd(&seed), y = rnd(&seed);
                size_t first, n;
                int r;

                if (y & 1) {    /* a few patterned pages */
                        first = ANCHORS + (size_t)(y >> 1) % (PATTERNED - ANCHORS);
                        n = 1 + (size_t)((y >> 20) % 8);
                } else {        /* a long run of the others */
                        first = ANCHORS + (size_t)(y >> 1) % (PAGES - ANCHORS);
                        n = 1 + (size_t)((y >> 20) % (PAGES - PATTERNED));
                }
                if (first + n > PAGES)
                        n = PAGES - first;
                switch ((x >> 16) % 3) {
                case 0:
                        for (size_t i = first; i < first + n; i++)
                                j->pinning[i] = 1;
                        r = ashmem_pin_region(fd, first * P, n * P);
                        if (r < 0)
                                _exit(3);
                        j->pins++;
                        for (size_t i = first; i < first + n; i++) {
                                if (r == ASHMEM_WAS_PURGED) {
                                        refill(m, i, P);
                                } else if (!intact(m, i, P)) {
                                        j->bad_page = (int)i;
                                        j->bad_what = 1;
                                        _exit(4);
                                }
                                j->pinning[i] = 0;
                        }
                        if (r == ASHMEM_WAS_PURGED)
                                j->was_purged++;
                        break;
                case 1:
                        if (ashmem_unpin_region(fd, first * P, n * P) < 0)
                                _exit(3);
                        j->unpins++;
                        break;
                default:
                        r = ashmem_purge(fd);
                        if (r < 0)
                                _exit(3);
                        j->purges++;
                        j->purged_pages += (unsigned long long)r;
                        break;
                }
                /* the anchors are never unpinned: a purge must not touch them */
                {
                        size_t a = (size_t)((x >> 24) % ANCHORS);
                        if (!intact(m, a, P)) {
                                j->bad_page = (int)a;
                                j->bad_what = 2;
                                _exit(4);
                        }
                }
                j->ops++;
        }
}

/* Pages left purging: a kill that came inside a purge, between moving
 * pages to purging and marking them purged. */
static uint64_t purging_left(int fd)
{
        struct stat st;
        struct amc_ref r;
        uint64_t n = 0;

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &r), 0);
        for (uint64_t w = 0; w < r.words; w++) {
                uint64_t s = __atomic_load_n(&r.state[w], __ATOMIC_RELAXED);
                /* the pages' pairs: the low half of a state word */
                n += (uint64_t)__builtin_popcountll((s >> 1) & ~s & 0x55555555ull);
        }
        am_table_release(&st);
        return n;
}

static void pause_us(long us)
{
        struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* After a kill: everything the design promises, checked by the survivor. */
static void check_after_kill(int fd, unsigned char *m, struct journal *j, int round)
{
        size_t P = ps();
        char map[PAGES + 1];
        ashmem_stats s;
        size_t np = 0, nu = 0, nx = 0;

        /* an anchor page: never unpinned, so never purged, even when a
         * purger died on the way */
        CHECK_EQ(ashmem_pin_region(fd, 0, P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_get_stats(fd, &s), 0);
        CHECK_EQ(ashmem_get_page_map(fd, map, PAGES), 0);
        map[PAGES] = 0;
        for (size_t i = 0; i < PAGES; i++) {
                np += map[i] == 'P';
                nu += map[i] == 'u';
                nx += map[i] == 'x';
        }
        if (s.pinned != np || s.unpinned != nu || s.purged != nx || s.pages != PAGES)
                t_fail(__FILE__, __LINE__,
                       "round %d: counters %zu/%zu/%zu of %zu pages, bitmaps %zu/%zu/%zu",
                       round, s.pinned, s.unpinned, s.purged, s.pages, np, nu, nx);
        for (size_t i = 0; i < PAGES; i++) {
                if (i < ANCHORS && map[i] != 'P')
                        t_fail(__FILE__, __LINE__, "round %d: anchor page %zu is '%c'",
                               round, i, map[i]);
                /* status agrees with the map, page by page */
                CHECK_EQ(ashmem_pin_status(fd, i * P, P),
                         map[i] == 'P' ? ASHMEM_IS_PINNED : ASHMEM_IS_UNPINNED);
                /* A purged page may hold anything (zeros, or its data when
                 * the kill came between marking and punching). A page a pin
                 * was working on may be half refilled if it is pinned now;
                 * a pin never makes a page unpinned, so an unpinned one was
                 * so before and must be intact. */
                if (map[i] == 'x' || (j->pinning[i] && map[i] == 'P'))
                        continue;
                /* pinned, or unpinned and not purged: intact */
                if (!intact(m, i, P))
                        t_fail(__FILE__, __LINE__, "round %d: page %zu ('%c') lost its contents (%.*s)",
                               round, i, map[i], PATTERNED, map);
        }
        /* the page a pin was working on: pin it ourselves, and refill it
         * if we are told it was purged (as the dead holder would have) */
        for (size_t i = 0; i < PAGES; i++) {
                int r;
                if (!j->pinning[i])
                        continue;
                r = ashmem_pin_region(fd, i * P, P);
                CHECK(r == ASHMEM_WAS_PURGED || r == ASHMEM_NOT_PURGED);
                if (r == ASHMEM_WAS_PURGED || !intact(m, i, P))
                        refill(m, i, P);
                j->pinning[i] = 0;
        }
}

TEST(holder_sigkilled_at_random_in_pin_unpin_purge)
{
        size_t P = ps();
        int fd = ashmem_create_region("faults", PAGES * P);
        struct journal *j;
        unsigned char *m;
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        int rounds = 0, killed_in_purge = 0;
        char map[PAGES + 1];

        CHECK(fd >= 0);
        m = mmap(NULL, PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(j != MAP_FAILED);
        memset((void *)j, 0, sizeof(*j));
        j->bad_page = -1;
        for (size_t i = 0; i < PATTERNED; i++)
                refill(m, i, P);

        while (rounds < ROUNDS || (killed_in_purge < IN_LOCK && rounds < MAX_ROUNDS)) {
                unsigned long long ops0 = j->ops;
                uint64_t child_seed = rnd(&seed);
                int status;
                pid_t pid;

                fflush(NULL);
                pid = fork();
                CHECK(pid >= 0);
                if (pid == 0)
                        worker(fd, m, j, child_seed | 1);
                /* let it get going, then kill it at a random moment */
                while (j->ops == ops0 && waitpid(pid, &status, WNOHANG) == 0)
                        pause_us(20);
                pause_us((long)(rnd(&seed) % 2000));
                CHECK_EQ(kill(pid, SIGKILL), 0);
                while (waitpid(pid, &status, 0) < 0)
                        CHECK_EQ(errno, EINTR);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
                        if (j->bad_page >= 0)
                                t_fail(__FILE__, __LINE__, "round %d: the holder found %s page %d corrupt",
                                       rounds, j->bad_what == 2 ? "anchor" : "pinned", j->bad_page);
                        t_fail(__FILE__, __LINE__, "round %d: the holder failed (status 0x%x)",
                               rounds, status);
                }
                rounds++;
                if (purging_left(fd))
                        killed_in_purge++;
                check_after_kill(fd, m, j, rounds);
                /* nothing stays unpurgeable: the next purge takes over
                 * what the dead purger left purging */
                CHECK(ashmem_purge(fd) >= 0);
                CHECK_EQ(purging_left(fd), 0);
        }
        CHECK(killed_in_purge >= IN_LOCK);
        /* the end: pin everything; it was purged iff the map says so */
        CHECK_EQ(ashmem_get_page_map(fd, map, PAGES), 0);
        map[PAGES] = 0;
        CHECK_EQ(ashmem_pin_region(fd, 0, 0),
                 memchr(map, 'x', PAGES) ? ASHMEM_WAS_PURGED : ASHMEM_NOT_PURGED);
        for (size_t i = 0; i < PAGES; i++)
                if (map[i] != 'x')
                        CHECK(intact(m, i, P));
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        printf("    %d SIGKILLs (%d inside a purge), %llu operations: "
               "%llu pins (%llu said was-purged), %llu unpins, %llu purges (%llu pages); "
               "no page lost, counters equal the bitmaps after every kill\n",
               rounds, killed_in_purge, j->ops, j->pins, j->was_purged, j->unpins,
               j->purges, j->purged_pages);
        munmap((void *)j, sizeof(*j));
        munmap(m, PAGES * P);
        close(fd);
}
