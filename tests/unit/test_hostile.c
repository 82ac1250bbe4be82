/* SPDX-License-Identifier: MIT */
/*
 * The control block as hostile input (docs/control-block.md, "How the
 * library treats the block"): a holder with write access scribbles over a
 * region's whole block (random bytes, all ones, all zeros, and purging bits
 * under a purge lock it keeps) while other processes pin, unpin, read the
 * status and the stats of, and purge the same region. Nobody may crash or
 * wait beyond the pin bound, answers stay in their range, and another
 * region is never touched. Then the liveness classes: a holder SIGSTOPped
 * at random points of pin, unpin and purge, hundreds of times, never holds
 * up the others beyond the bound, and no pinned page loses its contents.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../../drivers/memfd/memfd.h"
#include "lib/internal/clock.h"
#include "t.h"

#define VICTIM_PAGES 100        /* seven state words, the last one partial */
/* the summary test's victim: two whole groups and a partial one */
#define SUMMARY_PAGES (2 * AMC_GROUP_PAGES + 88)
#define OTHER_PAGES  8
#define WORKERS      3
#define RUN_NS       (3 * 1000000000ll)
/* the longest any call may take: the pin bound, and slack for a machine
 * shared with other work */
#define CALL_MAX_NS  (AMC_WAIT_NS + 1500 * 1000000ll)

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rnd(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

static void sleep_ns(long ns)
{
        struct timespec ts = { ns / 1000000000, ns % 1000000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* The other region: pages 0..3 pinned with 'o', 4..7 unpinned. */
static void other_check(int other, const char *o, int where)
{
        char map[OTHER_PAGES];
        size_t P = ps();

        for (size_t i = 0; i < 4 * P; i++)
                if (o[i] != 'o')
                        _exit(20 + where);
        if (ashmem_get_page_map(other, map, OTHER_PAGES) < 0 ||
            memcmp(map, "PPPPuuuu", OTHER_PAGES) != 0)
                _exit(30 + where);
}

/* exit codes: 10 a call took too long, 11 an answer out of range, 2x/3x
 * the other region touched */
/* pages of the region hammer() works on */
static size_t victim_pages = VICTIM_PAGES;

static void __attribute__((noreturn))
hammer(int fd, int other, const char *o, uint64_t seed, int64_t until)
{
        size_t P = ps();
        char map[SUMMARY_PAGES];

        while (am_mono_ns(0) < until) {
                uint64_t x = rnd(&seed);
                size_t first = (size_t)(x >> 8) % victim_pages;
                size_t n = (size_t)(x >> 24) % (victim_pages - first + 1);
                if ((x >> 50) % 2) {
                        /* whole groups: the summary's flips and passes */
                        first = first / AMC_GROUP_PAGES * AMC_GROUP_PAGES;
                        n = first + AMC_GROUP_PAGES <= victim_pages && (x >> 52) % 2 ?
                                AMC_GROUP_PAGES : 0;
                }
                int64_t t0 = am_mono_ns(0);
                ashmem_stats s;
                int r;

                switch ((x >> 40) % 7) {
                case 0:
                case 1:
                        r = ashmem_pin_region(fd, first * P, n * P);
                        if (r != ASHMEM_WAS_PURGED && r != ASHMEM_NOT_PURGED &&
                            !(r == -1 && errno == ETIMEDOUT))
                                _exit(11);
                        break;
                case 2:
                        if (ashmem_unpin_region(fd, first * P, n * P) != 0)
                                _exit(11);
                        break;
                case 3:
                        r = ashmem_pin_status(fd, first * P, n * P);
                        if (r != ASHMEM_IS_PINNED && r != ASHMEM_IS_UNPINNED)
                                _exit(11);
                        break;
                case 4:
                        if (ashmem_purge(fd) < 0)
                                _exit(11);
                        break;
                case 5:
                        if (ashmem_get_stats(fd, &s) < 0 || s.pages != victim_pages ||
                            s.pinned + s.unpinned + s.purged != victim_pages)
                                _exit(11);
                        r = ashmem_get_prot(fd);
                        if (r < 0 || (r & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
                                _exit(11);
                        break;
                default:
                        if (ashmem_get_page_map(fd, map, victim_pages) < 0)
                                _exit(11);
                        for (size_t i = 0; i < victim_pages; i++)
                                if (map[i] != 'P' && map[i] != 'u' && map[i] != 'x')
                                        _exit(11);
                        break;
                }
                if (am_mono_ns(0) - t0 > CALL_MAX_NS)
                        _exit(10);
                other_check(other, o, 0);
        }
        _exit(0);
}

/* Overwrite the whole block, header included, again and again; now and
 * then keep the purge lock with every page purging for a while. */
static void __attribute__((noreturn))
scribble(int fd, uint64_t seed, int64_t until)
{
        struct stat st;
        struct amc_ref r;
        uint64_t *w;
        size_t nw;

        if (fstat(fd, &st) < 0 || am_table_hold(&st, &r) < 0)
                _exit(2);
        w = (uint64_t *)(void *)r.b;
        nw = r.map_len / sizeof(uint64_t);
        for (unsigned round = 0; am_mono_ns(0) < until; round++) {
                uint64_t x = rnd(&seed);
                switch (round % 4) {
                case 0:
                        for (size_t i = 0; i < nw; i++)
                                __atomic_store_n(&w[i], rnd(&seed), __ATOMIC_RELAXED);
                        break;
                case 1:
                        for (size_t i = 0; i < nw; i++)
                                __atomic_store_n(&w[i], ~(uint64_t)0, __ATOMIC_RELAXED);
                        break;
                case 2:
                        for (size_t i = 0; i < nw; i++)
                                __atomic_store_n(&w[i], 0, __ATOMIC_RELAXED);
                        break;
                default:
                        if (x % 8 == 0) {
                                struct amc_plock lk;
                                if (amc_purge_lock(&r, &lk) == 0) {
                                        for (size_t i = 0; i < r.words; i++)
                                                __atomic_store_n(&r.state[i],
                                                                 0xaaaaaaaaaaaaaaaaull,
                                                                 __ATOMIC_RELAXED);
                                        sleep_ns((long)(AMC_WAIT_NS / 2));
                                        amc_purge_unlock(&r, &lk);
                                }
                        }
                        break;
                }
                sleep_ns((long)(x % 200000));
        }
        _exit(0);
}

static int wait_by(pid_t pid, int64_t deadline)
{
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0 && errno != EINTR)
                        t_fail(__FILE__, __LINE__, "waitpid: %m");
                if (am_mono_ns(0) > deadline) {
                        kill(pid, SIGKILL);
                        t_fail(__FILE__, __LINE__, "process %d hangs", (int)pid);
                }
                sleep_ns(2000000);
        }
}

/* The other region of a hostile test, mapped and filled with 'o', pages
 * [4, 8) unpinned. */
static char *other_setup(int other)
{
        size_t P = ps();
        char *o = mmap(NULL, OTHER_PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED, other, 0);

        CHECK(o != MAP_FAILED);
        memset(o, 'o', OTHER_PAGES * P);
        CHECK_EQ(ashmem_unpin_region(other, 4 * P, 4 * P), 0);
        return o;
}

/* The other region as this process left it, its unpinned pages purged;
 * then both regions closed. */
static void other_done(int fd, int other, char *o)
{
        other_check(other, o, 5);
        CHECK(ashmem_purge(other) == 4);
        CHECK(memcmp(o, "oooo", 4) == 0);
        munmap(o, OTHER_PAGES * ps());
        close(fd);
        close(other);
}

/* The regions of a hostile test: the victim (*fd, of `pages` pages, its
 * control block made first when with_block, so that it exists before a
 * scribbler or writer attaches it) and the other region (*other, mapped
 * at *o by other_setup). */
static void regions_setup(size_t pages, int with_block, int *fd, int *other, char **o)
{
        *fd = ashmem_create_region("victim", pages * ps());
        *other = ashmem_create_region("other", OTHER_PAGES * ps());
        CHECK(*fd >= 0 && *other >= 0);
        if (with_block)
                CHECK_EQ(ashmem_unpin_region(*fd, 0, 0), 0);
        *o = other_setup(*other);
}

/* n ints shared with the processes this one forks, zero. */
static volatile int *shared_ints(size_t n)
{
        volatile int *v = mmap(NULL, n * sizeof(int), PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        CHECK(v != MAP_FAILED);
        return v;
}

/* WORKERS processes hammer region fd (of `pages` pages) and the other
 * region while one more runs scribbler on fd, for RUN_NS; each must end
 * well within the bound. */
static void run_scribbled(int fd, int other, char *o, size_t pages, uint64_t seed,
                          void (*scribbler)(int, uint64_t, int64_t))
{
        pid_t pids[WORKERS + 1];
        int64_t until = am_mono_ns(0) + RUN_NS;

        victim_pages = pages;
        fflush(NULL);
        for (int i = 0; i <= WORKERS; i++) {
                uint64_t s = rnd(&seed) | 1;
                pids[i] = fork();
                CHECK(pids[i] >= 0);
                if (pids[i] == 0) {
                        if (i == WORKERS)
                                scribbler(fd, s, until);
                        hammer(fd, other, o, s, until);
                }
        }
        victim_pages = VICTIM_PAGES;
        for (int i = 0; i <= WORKERS; i++) {
                int status = wait_by(pids[i], until + 2 * CALL_MAX_NS);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        t_fail(__FILE__, __LINE__, "%s %d ended with status 0x%x",
                               i == WORKERS ? "scribbler" : "worker", i, status);
        }
}

TEST(scribbled_block_hurts_no_process_and_no_other_region)
{
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
        int fd, other;
        char *o;

        regions_setup(VICTIM_PAGES, 0, &fd, &other, &o);
        run_scribbled(fd, other, o, VICTIM_PAGES, seed, scribble);
        /* this process, too, is fine, and the other region untouched */
        other_done(fd, other, o);
}

/* Overwrite the summary words and the pass tags of the state words (the
 * high halves), again and again, leaving the pages' states alone: random
 * bytes, all ones, all zeros, and every group uniform with a random base
 * and code. */
static void __attribute__((noreturn))
scribble_summary(int fd, uint64_t seed, int64_t until)
{
        struct stat st;
        struct amc_ref r;

        if (fstat(fd, &st) < 0 || am_table_hold(&st, &r) < 0)
                _exit(2);
        for (unsigned round = 0; am_mono_ns(0) < until; round++) {
                uint64_t x = rnd(&seed);
                for (size_t i = 0; i < r.sums; i++) {
                        uint64_t v = round % 4 == 0 ? rnd(&seed) : round % 4 == 1 ? ~(uint64_t)0 :
                                     round % 4 == 2 ? 0 : (rnd(&seed) & 0xffffffff00000000ull) |
                                     (0x11111111ull | (rnd(&seed) & 0x66666666ull));
                        __atomic_store_n(&r.sum[i], v, __ATOMIC_RELAXED);
                }
                for (size_t i = 0; i < r.words; i++) {
                        uint64_t w = __atomic_load_n(&r.state[i], __ATOMIC_RELAXED);
                        /* a racy read-modify-write on purpose: a writer
                         * need not keep anybody's rules */
                        __atomic_store_n(&r.state[i], (w & 0xffffffffull) | (rnd(&seed) << 32),
                                         __ATOMIC_RELAXED);
                }
                sleep_ns((long)(x % 100000));
        }
        /* a field it left uniform over words that disagree would keep the
         * region's answers wrong after it is gone (which a writer may do,
         * and which the checks after it cannot tell from a bug): it leaves
         * every group open, the words as they are */
        for (size_t i = 0; i < r.sums; i++)
                __atomic_store_n(&r.sum[i], 0, __ATOMIC_RELAXED);
        _exit(0);
}

TEST(scribbled_summary_hurts_no_process_and_no_other_region)
{
        size_t P = ps();
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 21);
        int fd, other;
        char *o;

        regions_setup(SUMMARY_PAGES, 1, &fd, &other, &o);
        run_scribbled(fd, other, o, SUMMARY_PAGES, seed, scribble_summary);
        /* with the scribbler gone, the region works again: a pin of all of
         * it leaves every page pinned, and opening the groups shows it */
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_region(fd, P, P), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(fd), 0);
        other_done(fd, other, o);
}

/* ---------------------------------------------------------- liveness */

#define LIVE_PAGES 64
#define ANCHORS    8            /* pinned for ever, hold 'A' */
#define STOPS      200

static void __attribute__((noreturn))
live_worker(int fd, uint64_t seed, volatile unsigned long *ops)
{
        size_t P = ps();

        for (;;) {
                uint64_t x = rnd(&seed);
                size_t first = ANCHORS + (size_t)(x >> 8) % (LIVE_PAGES - ANCHORS);
                size_t n = 1 + (size_t)(x >> 24) % (LIVE_PAGES - first);

                switch ((x >> 40) % 3) {
                case 0:
                        if (ashmem_pin_region(fd, first * P, n * P) < 0 && errno != ETIMEDOUT)
                                _exit(3);
                        break;
                case 1:
                        if (ashmem_unpin_region(fd, first * P, n * P) < 0)
                                _exit(3);
                        break;
                default:
                        if (ashmem_purge(fd) < 0)
                                _exit(3);
                        break;
                }
                (*ops)++;
        }
}

/* A holder stopped anywhere in pin, unpin or purge: the others' calls all
 * return within the bound (a pin over pages it holds purging may say
 * ETIMEDOUT, nothing else fails), anchors keep their contents, and once it
 * is killed every page can be pinned and purged again. */
TEST(holder_stopped_at_random_points_never_holds_others_up)
{
        size_t P = ps();
        int fd = ashmem_create_region("live", LIVE_PAGES * P), status, timeouts = 0;
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 24);
        volatile unsigned long *ops;
        char *m;
        pid_t pid;

        CHECK(fd >= 0);
        m = mmap(NULL, LIVE_PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        ops = mmap(NULL, sizeof(*ops), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(ops != MAP_FAILED);
        memset(m, 'A', ANCHORS * P);
        fflush(NULL);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                live_worker(fd, rnd(&seed) | 1, ops);
        for (int k = 0; k < STOPS; k++) {
                unsigned long o0 = *ops;
                int64_t t0;
                int r;

                while (*ops == o0)
                        sleep_ns(10000);
                sleep_ns((long)(rnd(&seed) % 500000));
                CHECK_EQ(kill(pid, SIGSTOP), 0);
                CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
                CHECK(WIFSTOPPED(status));
                t0 = am_mono_ns(0);
                /* the anchors are never in anyone's way */
                CHECK_EQ(ashmem_pin_region(fd, 0, ANCHORS * P), ASHMEM_NOT_PURGED);
                r = ashmem_pin_region(fd, ANCHORS * P, 0);
                if (r < 0) {
                        CHECK_EQ(errno, ETIMEDOUT);
                        timeouts++;
                }
                CHECK(ashmem_unpin_region(fd, ANCHORS * P, 0) == 0);
                CHECK(ashmem_purge(fd) >= 0);
                CHECK(ashmem_pin_status(fd, 0, 0) == ASHMEM_IS_UNPINNED);
                if (am_mono_ns(0) - t0 > 2 * CALL_MAX_NS)
                        t_fail(__FILE__, __LINE__, "stop %d: the calls took %lld ms", k,
                               (long long)((am_mono_ns(0) - t0) / 1000000));
                for (size_t i = 0; i < ANCHORS * P; i++)
                        if (m[i] != 'A')
                                t_fail(__FILE__, __LINE__, "stop %d: anchor byte %zu lost", k, i);
                CHECK_EQ(kill(pid, SIGCONT), 0);
        }
        CHECK_EQ(kill(pid, SIGKILL), 0);
        while (waitpid(pid, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* nothing stays unpurgeable or unpinnable */
        CHECK(ashmem_purge(fd) >= 0);
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        for (size_t i = 0; i < ANCHORS * P; i++)
                CHECK(m[i] == 'A');
        printf("    %d stops, %d pins timed out behind a stopped purger, %lu operations\n",
               STOPS, timeouts, *ops);
        munmap((void *)ops, sizeof(*ops));
        munmap(m, LIVE_PAGES * P);
        close(fd);
}

/* ------------------------------------------- a writer that never stops */

/* What the writer does to the victim's block, in a tight loop. */
enum { W_UP, W_FLIP, W_GEN, W_MODES };
static const char *const w_mode_name[W_MODES] = {
        "sets every group's uniform and pending bits",
        "flips the first state word between two values",
        "keeps the summary's generation moving",
};

static void __attribute__((noreturn))
spin_writer(int fd, int mode, volatile int *ready)
{
        struct stat st;
        struct amc_ref r;
        uint64_t v = 0;

        if (fstat(fd, &st) < 0 || am_table_hold(&st, &r) < 0)
                _exit(2);
        *ready = 1;
        for (;;) {
                switch (mode) {
                case W_UP:
                        /* uniform (1) and pending (8) in every field; and
                         * a store to the state words' first cache line, so
                         * that a reader's load of it takes a while */
                        for (size_t i = 0; i < r.sums; i++)
                                __atomic_fetch_or(&r.sum[i], 0x99999999ull, __ATOMIC_RELAXED);
                        __atomic_store_n(&r.state[1], v++, __ATOMIC_RELAXED);
                        break;
                case W_FLIP:
                        /* every page pinned, then every page unpinned (a
                         * new tag each time) */
                        v = (v + ((uint64_t)1 << 32)) ^ 0x55555555ull;
                        __atomic_store_n(&r.state[0], v, __ATOMIC_RELAXED);
                        break;
                default:
                        for (size_t i = 0; i < r.sums; i++)
                                __atomic_fetch_add(&r.sum[i], (uint64_t)1 << 32, __ATOMIC_RELAXED);
                        break;
                }
        }
}

/* The longest one call may take here: a wait for purging pages and the
 * bound on the retries, one after the other, with slack for a machine
 * shared with other work. */
#define SPIN_CALL_MAX_NS (2 * AMC_WAIT_NS + 2000 * 1000000ll)

/* One call's outcome: 0 done, 1 timed out; exits the process on anything
 * else or on a call that took too long. */
static int spin_outcome(const char *what, int mode, size_t first, size_t n, int r,
                        int ok, int64_t t0)
{
        int64_t took = am_mono_ns(0) - t0;

        if (took > SPIN_CALL_MAX_NS) {
                fprintf(stderr, "    %s of pages [%zu, +%zu) while the writer %s took %lld ms\n",
                        what, first, n, w_mode_name[mode], (long long)(took / 1000000));
                _exit(10);
        }
        /* pin and unpin: -1 and errno; purge: -errno */
        if ((r == -1 && errno == ETIMEDOUT) || r == -ETIMEDOUT)
                return 1;
        if (!ok) {
                fprintf(stderr, "    %s of pages [%zu, +%zu) while the writer %s: %d (%s)\n",
                        what, first, n, w_mode_name[mode], r,
                        r == -1 ? strerror(errno) : r < 0 ? strerror(-r) : "");
                _exit(11);
        }
        return 0;
}

/* Pin, unpin, status and purge of the victim's pages [first, +n) while
 * the writer runs in `mode`, their timeouts added to *timeouts; with other
 * >= 0, the other region's first half pinned after the pin and its second
 * half unpinned after the unpin. Exits as spin_outcome() says, 12 if the
 * other region fails. */
static void spin_calls(int fd, size_t first, size_t n, int other, int mode,
                       volatile int *timeouts)
{
        size_t P = ps();
        int64_t t0;
        int r;

        t0 = am_mono_ns(0);
        r = ashmem_pin_region(fd, first * P, n * P);
        *timeouts += spin_outcome("pin", mode, first, n, r,
                                  r == ASHMEM_NOT_PURGED || r == ASHMEM_WAS_PURGED, t0);
        if (other >= 0 && ashmem_pin_region(other, 0, 4 * P) != ASHMEM_NOT_PURGED)
                _exit(12);
        t0 = am_mono_ns(0);
        r = ashmem_unpin_region(fd, first * P, n * P);
        *timeouts += spin_outcome("unpin", mode, first, n, r, r == 0, t0);
        if (other >= 0 && ashmem_unpin_region(other, 4 * P, 4 * P) != 0)
                _exit(12);
        t0 = am_mono_ns(0);
        r = ashmem_pin_status(fd, first * P, n * P);
        /* status never fails: it reads, and answers after a few reads
         * that disagree */
        spin_outcome("status", mode, first, n, r,
                     r == ASHMEM_IS_PINNED || r == ASHMEM_IS_UNPINNED, t0);
        t0 = am_mono_ns(0);
        r = ashmem_purge(fd);
        *timeouts += spin_outcome("purge", mode, first, n, r, r >= 0, t0);
}

/* Pin, unpin, status and purge of the victim, one page, part of a group,
 * a whole group and the whole region, while the writer runs; the other
 * region's pin and unpin around each. Exits 0, or as spin_outcome(). */
static void __attribute__((noreturn))
spin_caller(int fd, int other, const char *o, int mode, volatile int *timeouts)
{
        static const size_t ranges[][2] = {
                { 0, 1 }, { 3, 40 }, { 0, AMC_GROUP_PAGES }, { 0, 0 },
        };
        for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
                spin_calls(fd, ranges[k][0], ranges[k][1], other, mode, timeouts);
                other_check(other, o, 0);
        }
        _exit(0);
}

/* The caller of a writer test, in `mode`, ended well (its wait status). */
static void caller_ended_well(int status, int mode)
{
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                t_fail(__FILE__, __LINE__, "while the writer %s: caller ended with status 0x%x",
                       w_mode_name[mode], status);
}

/* With the writer gone, the victim works again: pinned and unpinned
 * whole, purged, pinned again. */
static void victim_works_again(int fd)
{
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, ps()), ASHMEM_IS_UNPINNED);
        CHECK(ashmem_purge(fd) >= 0);
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
}

/* A holder that rewrites a state word or a summary word as fast as it can
 * keeps nobody in pin, unpin, status or purge for ever: each call returns
 * (done, or ETIMEDOUT) within the bound, and another region of the same
 * process works as ever. */
TEST(writer_that_never_stops_keeps_no_call_beyond_the_bound)
{
        volatile int *shared = shared_ints(2);
        int fd, other;
        char *o;

        regions_setup(SUMMARY_PAGES, 1, &fd, &other, &o);
        for (int mode = 0; mode < W_MODES; mode++) {
                pid_t writer, caller;
                int status;

                shared[0] = shared[1] = 0;
                fflush(NULL);
                writer = fork();
                CHECK(writer >= 0);
                if (writer == 0)
                        spin_writer(fd, mode, &shared[0]);
                while (!shared[0]) {
                        CHECK_EQ(waitpid(writer, &status, WNOHANG), 0);
                        sleep_ns(100000);
                }
                caller = fork();
                CHECK(caller >= 0);
                if (caller == 0)
                        spin_caller(fd, other, o, mode, &shared[1]);
                /* the watchdog: a call that hangs fails the test */
                status = wait_by(caller, am_mono_ns(0) + 16 * SPIN_CALL_MAX_NS);
                CHECK_EQ(kill(writer, SIGKILL), 0);
                while (waitpid(writer, NULL, 0) < 0)
                        CHECK_EQ(errno, EINTR);
                caller_ended_well(status, mode);
                printf("    the writer %s: %d of 12 calls timed out\n", w_mode_name[mode],
                       shared[1]);
        }
        victim_works_again(fd);
        munmap((void *)shared, 2 * sizeof(int));
        other_done(fd, other, o);
}

/* ------------------------------------- a writer that always wins the race */

#if defined(__x86_64__)
#include <ucontext.h>

/* A writer on another processor wins a race now and then; one that always
 * wins is what a scheduler can hand it on a loaded machine. The caller
 * below plays both parts, so that the writer's turn comes at the worst
 * moment every time: the page of its own mapping of the block that holds
 * the summary words is read-only, so each write of the library there
 * faults; the fault handler (before the write) and a single-step trap
 * right after it (EFLAGS.TF) scribble the block through a second mapping,
 * then the page is made read-only again. Without a bound every call below
 * would go round for ever. */
#define EFL_TF 0x100

static char *race_page;                 /* the library's page, read-only */
static uint64_t *race_sum, *race_state; /* through our own mapping */
static size_t race_sums;
static int race_mode;

static void race_segv(int sig, siginfo_t *si, void *uc_)
{
        ucontext_t *uc = uc_;
        size_t P = (size_t)sysconf(_SC_PAGESIZE);

        (void)sig;
        if ((char *)si->si_addr < race_page || (char *)si->si_addr >= race_page + P) {
                /* not ours: the default action on the way back */
                signal(SIGSEGV, SIG_DFL);
                return;
        }
        /* before the write: make its compare-and-swap fail */
        if (race_mode == W_FLIP)
                __atomic_store_n(race_state, (__atomic_load_n(race_state, __ATOMIC_RELAXED) +
                                              ((uint64_t)1 << 32)) ^ 0x55555555ull,
                                 __ATOMIC_RELAXED);
        else if (race_mode == W_GEN)
                for (size_t i = 0; i < race_sums; i++)
                        __atomic_fetch_add(&race_sum[i], (uint64_t)1 << 32, __ATOMIC_RELAXED);
        if (mprotect(race_page, P, PROT_READ | PROT_WRITE) < 0)
                _exit(13);
        uc->uc_mcontext.gregs[REG_EFL] |= EFL_TF;
}

static void race_trap(int sig, siginfo_t *si, void *uc_)
{
        ucontext_t *uc = uc_;
        size_t P = (size_t)sysconf(_SC_PAGESIZE);

        (void)sig;
        (void)si;
        uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)EFL_TF;
        /* right after the write: every group uniform and pending again */
        if (race_mode == W_UP)
                for (size_t i = 0; i < race_sums; i++)
                        __atomic_fetch_or(&race_sum[i], 0x99999999ull, __ATOMIC_RELAXED);
        if (mprotect(race_page, P, PROT_READ) < 0)
                _exit(13);
}

static void __attribute__((noreturn))
race_caller(int fd, int other, const char *o, int mode, volatile int *timeouts)
{
        static const size_t ranges[][2] = { { 0, 1 }, { 0, 0 } };
        struct sigaction sa;
        struct stat st;
        struct amc_ref r;
        size_t P = ps();
        char *alias;

        if (fstat(fd, &st) < 0 || am_table_hold(&st, &r) < 0)
                _exit(2);
        alias = mmap(NULL, r.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r.ctl_fd, 0);
        if (alias == MAP_FAILED)
                _exit(2);
        race_page = (char *)((uintptr_t)r.sum & ~(uintptr_t)(P - 1));
        race_sum = (uint64_t *)(void *)(alias + ((char *)r.sum - (char *)r.b));
        race_state = (uint64_t *)(void *)(alias + ((char *)r.state - (char *)r.b));
        race_sums = r.sums;
        race_mode = mode;
        memset(&sa, 0, sizeof(sa));
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sa.sa_sigaction = race_segv;
        if (sigaction(SIGSEGV, &sa, NULL) < 0)
                _exit(2);
        sa.sa_sigaction = race_trap;
        if (sigaction(SIGTRAP, &sa, NULL) < 0)
                _exit(2);
        /* the state words must share the summary's page: then every
         * write of the library to the block goes through the handlers */
        if ((uintptr_t)r.state / P != (uintptr_t)r.sum / P)
                _exit(2);
        for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
                if (mprotect(race_page, P, PROT_READ) < 0)
                        _exit(2);
                spin_calls(fd, ranges[k][0], ranges[k][1], -1, mode, timeouts);
                if (mprotect(race_page, P, PROT_READ | PROT_WRITE) < 0)
                        _exit(2);
                /* the other region, its block another mapping, as ever */
                if (ashmem_pin_region(other, 0, 4 * P) != ASHMEM_NOT_PURGED ||
                    ashmem_unpin_region(other, 4 * P, 4 * P) != 0)
                        _exit(12);
                other_check(other, o, 0);
        }
        /* a thread's own shorter bound (the broker's purger takes one):
         * a purge the writer keeps failing gives up in a fraction of the
         * default bound's time */
        amc_set_thread_bound(AMC_WAIT_NS / 25);
        for (int k = 0; k < 3; k++) {
                int64_t t0, took;
                int rc;
                if (ashmem_unpin_region(fd, 0, 0) != 0 || mprotect(race_page, P, PROT_READ) < 0)
                        _exit(2);
                t0 = am_mono_ns(0);
                rc = ashmem_purge(fd);
                took = am_mono_ns(0) - t0;
                if (mprotect(race_page, P, PROT_READ | PROT_WRITE) < 0)
                        _exit(2);
                if (rc == -ETIMEDOUT && took > AMC_WAIT_NS / 2) {
                        fprintf(stderr, "    purge under a bound of %lld ms took %lld ms\n",
                                (long long)(AMC_WAIT_NS / 25 / 1000000), (long long)(took / 1000000));
                        _exit(14);
                }
                *timeouts += rc == -ETIMEDOUT;
                if (ashmem_pin_region(fd, 0, 0) < 0)
                        _exit(2);
        }
        amc_set_thread_bound(0);
        _exit(0);
}
#endif

/* A writer that wins every race against pin, unpin and purge (its write
 * lands between each of their reads and their compare-and-swap, or right
 * after the compare-and-swap): each call gives up with ETIMEDOUT after the
 * bound, none goes round for ever, and the region works again after. */
TEST(writer_that_always_wins_the_race_keeps_no_call_beyond_the_bound)
{
#if defined(__x86_64__)
        volatile int *timeouts = shared_ints(1);
        int fd, other;
        char *o;

        regions_setup(SUMMARY_PAGES, 1, &fd, &other, &o);
        for (int mode = 0; mode < W_MODES; mode++) {
                pid_t caller;
                int status;

                *timeouts = 0;
                fflush(NULL);
                caller = fork();
                CHECK(caller >= 0);
                if (caller == 0)
                        race_caller(fd, other, o, mode, timeouts);
                /* the watchdog: a call that goes round for ever fails it */
                status = wait_by(caller, am_mono_ns(0) + 8 * SPIN_CALL_MAX_NS);
                caller_ended_well(status, mode);
                printf("    the writer %s, winning every race: %d of 9 calls timed out\n",
                       w_mode_name[mode], *timeouts);
                /* the writer won every race: something gave up */
                CHECK(*timeouts > 0);
        }
        victim_works_again(fd);
        munmap((void *)timeouts, sizeof(int));
        other_done(fd, other, o);
#else
        printf("    skipped: the race is played with x86-64's single-step trap\n");
#endif
}
