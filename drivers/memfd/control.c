/* SPDX-License-Identifier: MIT */
/* The memfd driver's shared pin state: see control.h for the layout and
 * docs/control-block.md for the protocol. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "control.h"
#include "lib/internal/clock.h"
#include "lib/internal/page.h"

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, o, n) __atomic_compare_exchange_n((p), (o), (n), 0, \
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define ADD(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)

#define PROT_ALL (PROT_READ | PROT_WRITE | PROT_EXEC)
/* the low bit of every page's pair (the low half of a state word: the
 * high half is the pass tag) */
#define LO 0x55555555ull
#define WP AMC_WORD_PAGES
#define GW AMC_GROUP_WORDS
#define GP AMC_GROUP_PAGES
#define SG AMC_SUM_GROUPS
/* a pass adds this to each state word it goes over */
#define TAG_ONE ((uint64_t)1 << 32)
/* summary words: a group's field (4 bits) and the generation */
#define F_U 1u   /* uniform: every page in state B ^ C, the words not consulted */
#define F_B 2u   /* base: the low bit that means pinned (00 or 01) */
#define F_C 4u   /* uniform code: the low bit every page's pair holds when U */
#define F_P 8u   /* a pass that may make the group uniform is under way */
#define GEN_ONE ((uint64_t)1 << 32)

/* State words, groups and summary words of a region of `pages` pages, and
 * the offset of the summary words (after the state words, on a cache line
 * of their own). */
static uint64_t n_words(uint64_t pages) { return (pages + AMC_WORD_PAGES - 1) / AMC_WORD_PAGES; }
static uint64_t n_groups(uint64_t words) { return (words + AMC_GROUP_WORDS - 1) / AMC_GROUP_WORDS; }
static uint64_t n_sums(uint64_t groups) { return (groups + AMC_SUM_GROUPS - 1) / AMC_SUM_GROUPS; }
static uint64_t sum_offset(uint64_t words)
{
        return AMC_HEADER_SIZE + (words * sizeof(uint64_t) + 63) / 64 * 64;
}

size_t amc_block_size(uint64_t pages)
{
        uint64_t words = n_words(pages);
        return (size_t)(sum_offset(words) + n_sums(n_groups(words)) * sizeof(uint64_t));
}

void amc_init(struct amc_block *b, const char *name, uint64_t size,
              uint32_t page_size, uint64_t dev, uint64_t ino, uint32_t prot)
{
        b->magic = AMC_MAGIC;
        b->version = AMC_VERSION;
        b->header_size = AMC_HEADER_SIZE;
        b->page_size = page_size;
        b->size = size;
        b->pages = (size + page_size - 1) / page_size;
        b->words = n_words(b->pages);
        b->data_dev = dev;
        b->data_ino = ino;
        b->prot = prot;
        if (name)
                strncpy(b->name, name, sizeof(b->name) - 1);
}

/* Numbers for mappings of blocks: a word's address may come back in
 * another mapping, its number does not (word_op's guess). */
static uint64_t serials;

int amc_attach(struct amc_ref *ref, void *map, size_t map_len, int writable,
               int ctl_fd)
{
        struct amc_block h;
        uint64_t pages, words;

        if (map_len < AMC_HEADER_SIZE)
                return -EINVAL;
        /* one private copy: every check below and every later bound uses
         * it, never the shared header again */
        memcpy(&h, map, sizeof(h));
        if (h.magic == AMC_MAGIC_V1 || h.magic == AMC_MAGIC_V2)
                return -EPROTO;
        if (h.magic != AMC_MAGIC || h.version != AMC_VERSION ||
            h.header_size != AMC_HEADER_SIZE ||
            h.page_size < 512 || h.page_size > (1u << 30) ||
            (h.page_size & (h.page_size - 1)) ||
            /* a geometry nobody else here uses is refused */
            h.page_size != am_page_size() ||
            h.size == 0 || h.size > ASHMEM_SIZE_MAX)
                return -EINVAL;
        pages = (h.size + h.page_size - 1) / h.page_size;
        words = n_words(pages);
        if (h.pages != pages || h.words != words ||
            amc_block_size(pages) > map_len)
                return -EINVAL;
        ref->b = map;
        ref->size = h.size;
        ref->pages = pages;
        ref->words = words;
        ref->groups = n_groups(words);
        ref->sums = n_sums(ref->groups);
        ref->sum = (uint64_t *)((char *)map + sum_offset(words));
        ref->tail = pages % AMC_WORD_PAGES ?
                (((uint64_t)1 << (2 * (pages % AMC_WORD_PAGES))) - 1) & LO : LO;
        ref->page_size = h.page_size;
        ref->page_shift = (uint32_t)__builtin_ctz(h.page_size);
        ref->map_len = map_len;
        ref->state = (uint64_t *)((char *)map + AMC_HEADER_SIZE);
        /* checked against the data memfd by whoever attaches the block to
         * one (am_memfd_attach_control, or the block's maker) */
        ref->data_dev = h.data_dev;
        ref->data_ino = h.data_ino;
        ref->writable = writable;
        ref->ctl_fd = ctl_fd;
        ref->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
        return 0;
}

int amc_range(const struct amc_ref *r, size_t offset, size_t len,
              uint64_t *first, uint64_t *count)
{
        return am_page_range(offset, len, r->pages << r->page_shift,
                             r->page_shift, first, count);
}

/* Bits set in x. __builtin_popcountll is a libgcc call on the x86-64
 * baseline (no POPCNT instruction assumed); this is a dozen inline
 * instructions. */
static inline unsigned popcount64(uint64_t x)
{
        x = x - ((x >> 1) & 0x5555555555555555ull);
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
        return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* The low bits of pages [first, end) in word w. */
static inline uint64_t word_mask(uint64_t first, uint64_t end, uint64_t w)
{
        uint64_t lo = w * WP;
        unsigned a = first > lo ? (unsigned)(first - lo) : 0;
        unsigned z = end - lo < WP ? (unsigned)(end - lo) : WP;
        uint64_t m = ((uint64_t)1 << (2 * z)) - 1;
        return m & ~(((uint64_t)1 << (2 * a)) - 1) & LO;
}

/* Low bits of the pages of word w that exist. */
static inline uint64_t valid_mask(const struct amc_ref *r, uint64_t w)
{
        return w + 1 == r->words ? r->tail : LO;
}

/* Low bits of the pages of s in each state; bx is the group's base spread
 * over the word (LO if the base is 1, else 0). */
static inline uint64_t st_pinned(uint64_t s, uint64_t bx)   { return ~(s >> 1) & ~(s ^ bx) & LO; }
static inline uint64_t st_unpinned(uint64_t s, uint64_t bx) { return ~(s >> 1) & (s ^ bx) & LO; }
static inline uint64_t st_purging(uint64_t s) { return (s >> 1) & ~s & LO; }
static inline uint64_t st_purged(uint64_t s)  { return s & (s >> 1) & LO; }

/* The summary word of group g, the shift of its field, its field. */
static inline uint64_t *sum_word(const struct amc_ref *r, uint64_t g) { return &r->sum[g / SG]; }
static inline unsigned fshift(uint64_t g) { return (unsigned)(4 * (g % SG)); }
static inline unsigned field(uint64_t s, uint64_t g) { return (unsigned)(s >> fshift(g)) & 15u; }
static inline uint64_t base_x(unsigned f) { return (f & F_B) ? LO : 0; }
/* A uniform field's state: 1 unpinned, 0 pinned. */
static inline int uni_unpinned(unsigned f) { return !(f & F_B) != !(f & F_C); }
static inline int is_uniform(unsigned f) { return (f & (F_U | F_P)) == F_U; }

/* The pages of group g: [g * GP, group_end). Its words: [g * GW, ...). */
static inline uint64_t group_end(const struct amc_ref *r, uint64_t g)
{
        return (g + 1) * GP < r->pages ? (g + 1) * GP : r->pages;
}
static inline uint64_t group_wend(const struct amc_ref *r, uint64_t g)
{
        return (g + 1) * GW < r->words ? (g + 1) * GW : r->words;
}

/*
 * The bound on one call's retries. Every loop that goes round again
 * because shared state changed under it (a failed compare-and-swap, a
 * group found uniform or pending again) counts a failed round here. A
 * writer that scribbles the block can make every round fail for ever, so
 * every BOUND_ROUNDS failed rounds the monotonic clock is read, and once
 * AMC_WAIT_NS has passed since the first such reading the call gives up
 * with -ETIMEDOUT. A pin's wait for purging pages (await_purge) counts
 * against the same deadline: one bound a call. Honest contention fails a
 * round now and then (another process's compare-and-swap won, and ours
 * wins the next time): a call never comes near BOUND_ROUNDS of them, and
 * one that does not fail reads no clock.
 */
#define BOUND_ROUNDS 256u

struct bound {
        unsigned fails;         /* failed rounds of this call */
        int64_t deadline;       /* the first clock reading plus AMC_WAIT_NS,
                                   0 before it */
};

static __thread int64_t tl_bound_ns;

void amc_set_thread_bound(int64_t ns)
{
        tl_bound_ns = ns > 0 ? ns : 0;
}

static __attribute__((noinline, cold)) int bound_check(struct bound *b)
{
        int64_t now = am_mono_ns(0);

        if (b->deadline == 0) {
                b->deadline = now + (tl_bound_ns ? tl_bound_ns : AMC_WAIT_NS);
                return 0;
        }
        return now > b->deadline ? -ETIMEDOUT : 0;
}

/* One failed round: 0 to go round again, -ETIMEDOUT to give up. */
static inline int bound_fail(struct bound *b)
{
        if (__builtin_expect(++b->fails % BOUND_ROUNDS != 0, 1))
                return 0;
        return bound_check(b);
}

/* Open group g: clear its uniform and pending bits, keeping base and code,
 * so that the words speak for it again (a uniform group's words all hold
 * its code, which read against its base is its state: nothing changes).
 * *s is the summary word as last loaded, updated. 0, or -ETIMEDOUT once
 * the bound has passed (the group may then be left as it was). */
static int group_open(const struct amc_ref *r, uint64_t g, uint64_t *s,
                      struct bound *b)
{
        uint64_t *sp = sum_word(r, g);
        unsigned sh = fshift(g);

        while ((*s >> sh) & (F_U | F_P)) {
                uint64_t n = (*s & ~((uint64_t)(F_U | F_P) << sh)) + GEN_ONE;
                if (CAS(sp, s, n)) {
                        *s = n;
                        return 0;
                }
                if (bound_fail(b))
                        return -ETIMEDOUT;
        }
        return 0;
}

/* ------------------------------------------------------- the purge lock */

/* A description of the control memfd of our own, opened through
 * /proc/self/fd: a lock on the description every holder shares would be
 * invisible to them and kept alive after our death by every process that
 * shares it. -EACCES if the memfd is not ours to reopen (another user's:
 * such holders purge through the broker). */
static int own_description(const struct amc_ref *r, int flags)
{
        char path[48];
        int fd;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", r->ctl_fd);
        do
                fd = open(path, flags | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0)
                return fd;
        return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -errno : -EACCES;
}

/* A child forked while a thread holds a locked description of its own
 * would inherit it (O_CLOEXEC helps only at exec), and with it the lock,
 * for as long as the child lives: fork waits for the process's locks to be
 * let go (each is held for one bounded purge or finish), holding the write
 * side of this lock whose read side every holder of such a description
 * holds. */
static pthread_rwlock_t forklock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_once_t forklock_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void) { pthread_rwlock_wrlock(&forklock); }
static void fork_parent(void) { pthread_rwlock_unlock(&forklock); }
static void fork_child(void)
{
        pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
        forklock = fresh;
}

static void forklock_init(void)
{
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Take a lock of type `type` on byte 0 through a description of our own:
 * 0 and *lk, -EBUSY if a lock of another description conflicts, -errno. */
static int lock_own(const struct amc_ref *r, struct amc_plock *lk, short type)
{
        struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
                            .l_start = 0, .l_len = 1 };
        int fd, e;

        pthread_once(&forklock_once, forklock_init);
        pthread_rwlock_rdlock(&forklock);
        fd = own_description(r, type == F_WRLCK ? O_RDWR : O_RDONLY);
        if (fd < 0) {
                pthread_rwlock_unlock(&forklock);
                return fd;
        }
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
                lk->fd = fd;
                return 0;
        }
        e = errno;
        close(fd);
        pthread_rwlock_unlock(&forklock);
        return e == EAGAIN || e == EACCES ? -EBUSY : -e;
}

/* The purge lock is a read lock: purgers share it (the compare-and-swap
 * unpinned -> purging gives each page to one purger), so that a read-only
 * holder, who can take read locks only, can never keep purges off. */
int amc_purge_lock(const struct amc_ref *r, struct amc_plock *lk)
{
        return lock_own(r, lk, F_RDLCK);
}

void amc_purge_unlock(const struct amc_ref *r, struct amc_plock *lk)
{
        (void)r;
        /* closing our own description drops its lock */
        if (lk->fd >= 0) {
                close(lk->fd);
                pthread_rwlock_unlock(&forklock);
        }
        lk->fd = -1;
}

/* Punch the pages of `set` (low bits), a bitmap of n words starting at
 * word w0, in data_fd: one fallocate per run of consecutive pages. On
 * failure *done is the first page (counted from word w0) not punched: the
 * pages of the set before it are. */
static int punch_set(const struct amc_ref *r, int data_fd, const uint64_t *set,
                     uint64_t w0, uint64_t n, uint64_t *done)
{
        uint64_t ps = r->page_size, p = 0, end = n * WP;

        while (p < end) {
                uint64_t s, q;
                /* next set page at or after p */
                while (p < end && !(set[p / WP] >> (2 * (p % WP)) & 1))
                        p = (set[p / WP] >> (2 * (p % WP))) ? p + 1 : (p / WP + 1) * WP;
                if (p >= end)
                        break;
                s = p;
                while (p < end && (set[p / WP] >> (2 * (p % WP)) & 1))
                        p++;
                q = p;
                while (fallocate(data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 (off_t)((w0 * WP + s) * ps),
                                 (off_t)((q - s) * ps)) < 0) {
                        if (errno != EINTR) {
                                *done = s;
                                return errno == EBADF ? -EPERM : -errno;
                        }
                }
        }
        return 0;
}

/* Move the pages of `set` in word w that are still purging to purged: 0,
 * or -ETIMEDOUT once the bound has passed (those left purging are then
 * finished as a dead purger's: finish_dead_purge()). */
static int finish_word(const struct amc_ref *r, uint64_t w, uint64_t set,
                       struct bound *b)
{
        uint64_t old = LOAD(&r->state[w]);

        for (;;) {
                uint64_t done = st_purging(old) & set;
                if (!done || CAS(&r->state[w], &old, old | done))
                        return 0;
                if (bound_fail(b))
                        return -ETIMEDOUT;
        }
}

/* Purging pages in words [w0, w0 + n) with, perhaps, nobody purging them:
 * their purger died (or a writer scribbled them). Take the lock for
 * writing on a description of our own: granted only when no other
 * description holds any lock on the block, so no purger is alive, and none
 * can start until we let go. Then punch what is still purging and mark it
 * purged. Returns the pages finished, or -EBUSY when the lock is not ours
 * (a purger is alive, or a holder keeps a lock that makes it look so; or
 * the memfd is not ours to reopen). */
static int64_t finish_dead_purge(const struct amc_ref *r, uint64_t w0, uint64_t n,
                                 int data_fd, struct bound *b)
{
        struct amc_plock lk;
        int64_t count = 0;
        uint64_t done;

        if (lock_own(r, &lk, F_WRLCK) < 0)
                return -EBUSY;
        if (data_fd >= 0) {
                /* punch through a duplicate checked to be this block's
                 * region: the caller's number may name another file by now */
                struct stat st;
                int d = fcntl(data_fd, F_DUPFD_CLOEXEC, 3);
                if (d >= 0 && (fstat(d, &st) < 0 || (uint64_t)st.st_dev != r->data_dev ||
                               (uint64_t)st.st_ino != r->data_ino)) {
                        close(d);
                        d = -1;
                }
                data_fd = d;
        }
        for (uint64_t w = w0; w < w0 + n; w++) {
                uint64_t set = st_purging(LOAD(&r->state[w])) & valid_mask(r, w);
                if (!set)
                        continue;
                /* a failed punch still marks them purged: the pin then says
                 * WAS_PURGED over what may be left, the safe direction */
                if (data_fd >= 0)
                        (void)punch_set(r, data_fd, &set, w, 1, &done);
                if (finish_word(r, w, set, b) < 0)
                        break;  /* what is left stays a dead purger's */
                count += popcount64(set);
        }
        if (count)
                ADD(&r->b->recoveries, 1);
        if (data_fd >= 0)
                close(data_fd);
        amc_purge_unlock(r, &lk);
        return count;
}

/* Pages of word w are purging: 0 to look again, -ETIMEDOUT once the bound
 * has passed. Every path checks the bound: a purger that stays alive, a
 * lock that cannot be taken, and a writer that marks pages purging again
 * and again all end in ETIMEDOUT; between checks, it sleeps. */
static int await_purge(const struct amc_ref *r, uint64_t w, int data_fd,
                       int64_t *deadline, struct bound *b)
{
        struct timespec ts = { 0, 200 * 1000 };
        int64_t now = am_mono_ns(0);

        if (*deadline == 0)
                *deadline = now + AMC_WAIT_NS;
        else if (now >= *deadline)
                return -ETIMEDOUT;
        if (finish_dead_purge(r, w, 1, data_fd, b) >= 0)
                return 0;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        return 0;
}

/* ------------------------------------------------------ pin, unpin, status */

/*
 * Every write of a state word keeps one rule (docs/control-block.md, "The
 * summary level"): load the word, then the summary word, and write the
 * state word by compare-and-swap only while the group is open (neither
 * uniform nor pending), relative to the base the summary word gave. A pass
 * that may make a group uniform sets the group pending first and adds one
 * to each word's tag as it goes: a writer that loaded a word before the
 * pass went over it fails its compare-and-swap, and one that loaded it
 * after sees the pending bit and opens the group, which fails the pass.
 * So a group the pass makes uniform has no write in flight, and its words
 * all hold the code it records until someone opens it again.
 */

/* Is group g's pending bit in summary word s still the one a pass set at
 * generation gen? Every opening of the group clears the bit and bumps the
 * generation, so a pass a writer came into never makes the group uniform
 * (tests/unit/test_pin.c: a_pass_a_writer_came_into_leaves_the_group_open). */
static inline int pass_is_mine(uint64_t s, uint64_t g, uint64_t gen)
{
        return (field(s, g) & (F_U | F_P)) == F_P && s >> 32 == gen;
}

/* The state word this thread last wrote, and what it wrote (word_op). */
static __thread __attribute__((tls_model("initial-exec"))) uint64_t *tl_word;
static __thread __attribute__((tls_model("initial-exec"))) uint64_t tl_value;
static __thread __attribute__((tls_model("initial-exec"))) uint64_t tl_serial;

/* The outcome of one word's part of a pin or unpin. */
enum { W_DONE, W_PURGING, W_LOST, W_TIMEOUT };

struct pass;
static __attribute__((noinline, cold)) int pass_retry(struct pass *p);

struct pass {
        int pin;                /* pin, else unpin */
        int was;                /* a purged page was pinned */
        int changed;            /* an unpin changed a page */
        int data_fd;            /* for a pin that finishes a dead purge */
        struct bound b;         /* of the retries and the wait */
};

/* Pages m (low bits) of word w: pinned or unpinned as p->pin says. mine:
 * the generation of this caller's pending bit on the group (a pass: it
 * bumps the tag, and returns W_LOST once the bit is no longer its own), or
 * NULL. *after is the word as written or found. W_PURGING: a page of m is
 * purging (a pin waits for it and comes back). W_TIMEOUT: the bound has
 * passed, nothing was written. */
static inline __attribute__((always_inline))
int word_op(const struct amc_ref *r, uint64_t w, uint64_t m, struct pass *p,
            const uint64_t *mine, uint64_t *after)
{
        uint64_t g = w / GW, *sp = sum_word(r, g), *wp = &r->state[w];
        /* The value this thread last wrote to this word, if it was this
         * word, stands in for a load: when another process works on the
         * same word, a compare-and-swap that fails fetches the line once,
         * for writing, where a load and a compare-and-swap fetch it twice.
         * The guess was written by this thread, to this mapping (its serial:
         * the address may come back in another), before it loads the
         * summary word, so the writers' rule holds; a guess that calls for
         * no write, or meets purging pages, is checked by a load. */
        int guessed = !mine && tl_word == wp && tl_serial == r->serial;
        uint64_t old = guessed ? tl_value : LOAD(wp);

        for (;;) {
                uint64_t s = LOAD(sp), bx, nw, x = 0;
                unsigned f = field(s, g);

                if (mine) {
                        if (!pass_is_mine(s, g, *mine))
                                return W_LOST;
                } else if (f & (F_U | F_P)) {
                        /* a failed round too: a writer may set the bits
                         * again as fast as we clear them */
                        if (pass_retry(p) || group_open(r, g, &s, &p->b) < 0)
                                return W_TIMEOUT;
                        old = LOAD(wp);
                        guessed = 0;
                        continue;
                }
                bx = base_x(f);
                if (guessed && ((st_purging(old) & m) ||
                                !((p->pin ? st_unpinned(old, bx) | st_purged(old) :
                                            st_pinned(old, bx)) & m))) {
                        old = LOAD(wp);
                        guessed = 0;
                        continue;
                }
                if (p->pin) {
                        if (st_purging(old) & m)
                                return W_PURGING;
                        x = st_purged(old) & m;
                        nw = old ^ (st_unpinned(old, bx) & m);
                        nw = (nw & ~(x | x << 1)) | (x & bx);
                } else {
                        nw = old ^ (st_pinned(old, bx) & m);
                }
                if (mine)
                        nw += TAG_ONE;
                else if (nw == old) {
                        *after = old;
                        return W_DONE;
                }
                if (CAS(wp, &old, nw)) {
                        tl_word = wp;
                        tl_value = nw;
                        tl_serial = r->serial;
                        if (x)
                                p->was = 1;
                        if ((nw ^ old) & (LO | LO << 1))
                                p->changed = 1;
                        *after = nw;
                        return W_DONE;
                }
                guessed = 0;    /* the failed compare-and-swap loaded it */
                if (pass_retry(p))
                        return W_TIMEOUT;
        }
}

/* A failed round of word_op(): out of line, so that the loop around the
 * word's compare-and-swap keeps its registers (word_op is inlined into
 * every word loop). */
static int pass_retry(struct pass *p)
{
        return bound_fail(&p->b);
}

/* Wait for the purging pages of word w (bounded): 0 to try again, or
 * -ETIMEDOUT. Timed out, the pages this call pinned stay pinned: pins are
 * not counted, so putting them back could unpin a page another process
 * pinned meanwhile. */
static int word_wait(const struct amc_ref *r, uint64_t w, struct pass *p)
{
        int cs, e;

        /* open, close and nanosleep in the wait are cancellation points: a
         * cancel there would leave a locked description open */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        e = await_purge(r, w, p->data_fd, &p->b.deadline, &p->b);
        pthread_setcancelstate(cs, NULL);
        return e;
}

/* Pages [first, end) of group g, word by word, the group opened. */
static int group_words(const struct amc_ref *r, uint64_t g, uint64_t first,
                       uint64_t end, struct pass *p)
{
        uint64_t wa = first / WP > g * GW ? first / WP : g * GW;
        uint64_t wz = (end - 1) / WP + 1 < group_wend(r, g) ? (end - 1) / WP + 1 : group_wend(r, g);
        uint64_t after;

        for (uint64_t w = wa; w < wz; w++) {
                uint64_t m = word_mask(first, end, w);
                int e;
                while ((e = word_op(r, w, m, p, NULL, &after)) == W_PURGING)
                        if ((e = word_wait(r, w, p)) < 0)
                                return e;
                if (e == W_TIMEOUT)
                        return -ETIMEDOUT;
        }
        return 0;
}

/* The whole of group g, whose field is not uniform: a pass that makes it
 * uniform (every page pinned, or every page unpinned) if no other writer
 * comes in meanwhile and no page is left purging or purged. */
static int group_pass(const struct amc_ref *r, uint64_t g, struct pass *p)
{
        uint64_t *sp = sum_word(r, g), s = LOAD(sp), gen, after;
        unsigned sh = fshift(g), f;
        int all = 1, lost = 0;

        for (;;) {
                f = field(s, g);
                if (is_uniform(f)) {
                        /* made uniform meanwhile: flip it if need be */
                        if (uni_unpinned(f) == !p->pin ||
                            CAS(sp, &s, s ^ ((uint64_t)F_B << sh))) {
                                if (!p->pin && uni_unpinned(f) == 0)
                                        p->changed = 1;
                                return 0;
                        }
                } else if (CAS(sp, &s, ((s & ~((uint64_t)15 << sh)) |
                                        (uint64_t)((f & ~(unsigned)(F_U | F_P)) | F_P) << sh) +
                                       GEN_ONE)) {
                        /* another's pending pass is failed (its bit
                         * cleared), and ours starts: both bump the
                         * generation */
                        break;
                }
                if (bound_fail(&p->b))
                        return -ETIMEDOUT;
        }
        s = ((s & ~((uint64_t)15 << sh)) | (uint64_t)((f & ~(unsigned)(F_U | F_P)) | F_P) << sh) + GEN_ONE;
        gen = s >> 32;
        for (uint64_t w = g * GW; w < group_wend(r, g); w++) {
                uint64_t m = valid_mask(r, w), bx = base_x(f);
                int e;
                for (;;) {
                        e = word_op(r, w, m, p, lost ? NULL : &gen, &after);
                        if (e == W_LOST) {
                                lost = 1;
                                continue;
                        }
                        /* given up, our pending bit is a failed pass (as
                         * if we had died): the next writer opens the group */
                        if (e == W_TIMEOUT)
                                return -ETIMEDOUT;
                        if (e != W_PURGING)
                                break;
                        if ((e = word_wait(r, w, p)) < 0)
                                return e;
                }
                if (!lost && (p->pin ? st_pinned(after, bx) : st_unpinned(after, bx)) != m)
                        all = 0;
        }
        if (lost)
                return 0;
        /* uniform if every page is in the target state and the pending bit
         * is still ours (no writer came in: it would have cleared it) */
        s = LOAD(sp);
        for (;;) {
                unsigned cur = field(s, g), code;
                uint64_t n;
                if (!pass_is_mine(s, g, gen))
                        return 0;
                n = s & ~((uint64_t)F_P << sh);
                if (all) {
                        /* the code every pair holds now: pinned = base */
                        code = p->pin ? (cur & F_B) != 0 : (cur & F_B) == 0;
                        n = (n & ~((uint64_t)F_C << sh)) |
                            (uint64_t)(F_U | (code ? F_C : 0)) << sh;
                }
                /* every page is done: given up, only the summary is
                 * not, and the pending bit left is a failed pass */
                if (CAS(sp, &s, n + GEN_ONE) || bound_fail(&p->b))
                        return 0;
        }
}

/* Bit 0 of each field of a summary word. */
#define NIB 0x11111111ull

/* A pin or unpin of pages [first, end). Uniform groups the range covers
 * whole are flipped 8 at a time, one compare-and-swap of their summary
 * word; other groups it covers whole get a pass; groups it covers in part
 * are opened and changed word by word. */
static int range_op(const struct amc_ref *r, uint64_t first, uint64_t end, struct pass *p)
{
        uint64_t g0 = first / GP, g1 = (end - 1) / GP;

        /* within one group, not all of it: words only */
        if (g0 == g1 && (first > g0 * GP || end < group_end(r, g0))) {
                uint64_t w = first / WP, after;
                int e;
                if (w != (end - 1) / WP)
                        return group_words(r, g0, first, end, p);
                /* one word: the common case of small pins */
                while ((e = word_op(r, w, word_mask(first, end, w), p, NULL, &after)) == W_PURGING)
                        if ((e = word_wait(r, w, p)) < 0)
                                return e;
                return e == W_TIMEOUT ? -ETIMEDOUT : 0;
        }
        for (uint64_t j = g0 / SG; j <= g1 / SG; j++) {
                uint64_t ga = j * SG > g0 ? j * SG : g0;
                uint64_t gz = (j + 1) * SG < g1 + 1 ? (j + 1) * SG : g1 + 1;
                /* bit 0 of the fields of the groups in range, and of those
                 * it covers whole */
                uint64_t in = (((uint64_t)1 << (4 * (gz - ga))) - 1) << fshift(ga) & NIB;
                uint64_t full = in, s, flip, pass, uni, unp, rest;
                int e;

                if (first > ga * GP)
                        full &= ~((uint64_t)1 << fshift(ga));
                if (end < group_end(r, gz - 1))
                        full &= ~((uint64_t)1 << fshift(gz - 1));
                s = full ? LOAD(&r->sum[j]) : 0;
                for (;;) {
                        uni = s & ~(s >> 3) & NIB;                /* U, not P */
                        unp = ((s >> 1) ^ (s >> 2)) & NIB;        /* B ^ C */
                        pass = full & ~uni;
                        flip = full & uni & (p->pin ? unp : ~unp) & NIB;
                        if (!flip || CAS(&r->sum[j], &s, s ^ (flip << 1)))
                                break;
                        if (bound_fail(&p->b))
                                return -ETIMEDOUT;
                }
                if (flip && !p->pin)
                        p->changed = 1;
                /* the groups in part, and those that need a pass */
                rest = (in & ~full) | pass;
                while (rest) {
                        uint64_t g = j * SG + (unsigned)__builtin_ctzll(rest) / 4;
                        rest &= rest - 1;
                        e = pass >> fshift(g) & 1 ? group_pass(r, g, p)
                                                  : group_words(r, g, first, end, p);
                        if (e < 0)
                                return e;
                }
        }
        return 0;
}

int amc_pin(const struct amc_ref *r, uint64_t first, uint64_t count, int data_fd)
{
        struct pass p = { .pin = 1, .data_fd = data_fd };
        int e;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return ASHMEM_NOT_PURGED;
        e = range_op(r, first, first + count, &p);
        if (e < 0)
                return e;
        return p.was ? ASHMEM_WAS_PURGED : ASHMEM_NOT_PURGED;
}

/* The "recently unpinned" time: written only when it is a tick off, so
 * that unpins in a loop do not all write one shared line. */
static void stamp(const struct amc_ref *r)
{
        int64_t now = am_mono_ns(1);
        uint64_t d = (uint64_t)now - (uint64_t)LOAD(&r->b->unpinned_ns);

        if (d > (uint64_t)AMC_STAMP_TICK_NS && d < -(uint64_t)AMC_STAMP_TICK_NS)
                STORE(&r->b->unpinned_ns, now);
}

int amc_unpin(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        struct pass p = { .pin = 0, .data_fd = -1 };
        int e;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return 0;
        /* an unpin never waits for purging pages (it leaves them as they
         * are): it fails only when the bound on its retries passes */
        e = range_op(r, first, first + count, &p);
        if (p.changed)
                stamp(r);
        return e < 0 ? e : 0;
}

/* Is any page of [first, end) in group g not pinned? The words are read
 * against the base of one summary word, read again after them: if it
 * changed meanwhile, again (a few times; then the last answer). */
static int group_unpinned(const struct amc_ref *r, uint64_t g, uint64_t first, uint64_t end)
{
        uint64_t *sp = sum_word(r, g);
        uint64_t wa = first / WP > g * GW ? first / WP : g * GW;
        uint64_t wz = (end - 1) / WP + 1 < group_wend(r, g) ? (end - 1) / WP + 1 : group_wend(r, g);

        for (int tries = 0;; tries++) {
                uint64_t s = LOAD(sp), bx;
                unsigned f = field(s, g);
                int any = 0;

                if (is_uniform(f))
                        return uni_unpinned(f);
                bx = base_x(f);
                for (uint64_t w = wa; w < wz && !any; w++) {
                        uint64_t m = word_mask(first, end, w);
                        any = (st_pinned(LOAD(&r->state[w]), bx) & m) != m;
                }
                if (LOAD(sp) == s || tries >= 8)
                        return any;
        }
}

int amc_status(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        uint64_t end = first + count;

        if (count == 0)
                return ASHMEM_IS_PINNED;
        for (uint64_t g = first / GP; g <= (end - 1) / GP; g++)
                if (group_unpinned(r, g, first, end))
                        return ASHMEM_IS_UNPINNED;
        return ASHMEM_IS_PINNED;
}

/* ------------------------------------------------------------------ purge */

/* Purge the chunk of n words from w0, with the purge lock held: the pages
 * purged, or -errno. Once the bound b has passed, the pages already moved
 * to purging are punched and the rest of the chunk is left (-ETIMEDOUT if
 * nothing was purged); pages it cannot then move back or on stay purging,
 * as a dead purger's, for the next pin or purge to finish. */
static int64_t purge_chunk(const struct amc_ref *r, int data_fd, uint64_t w0,
                           uint64_t n, struct bound *b)
{
        uint64_t set[AMC_CHUNK_WORDS], any = 0, done;
        int64_t count = 0;
        int e, late = 0;

        for (uint64_t i = 0; i < n; i++) {
                uint64_t w = w0 + i, g = w / GW, valid = valid_mask(r, w);
                uint64_t old = LOAD(&r->state[w]), c;
                int opened = 0;
                for (;;) {
                        /* the writers' rule: the word, then its summary */
                        uint64_t s = LOAD(sum_word(r, g));
                        unsigned f = field(s, g);
                        if (is_uniform(f) && !uni_unpinned(f)) {
                                c = 0;  /* all pinned: left uniform */
                                break;
                        }
                        if (f & (F_U | F_P)) {
                                /* opening an unpinned group is progress;
                                 * finding it closed again right after
                                 * this word opened it is a failed round */
                                if ((opened++ && bound_fail(b)) ||
                                    group_open(r, g, &s, b) < 0) {
                                        late = 1;
                                        c = 0;
                                        break;
                                }
                                old = LOAD(&r->state[w]);
                                continue;
                        }
                        c = st_unpinned(old, base_x(f)) & valid;
                        if (!c || CAS(&r->state[w], &old, (old & ~(c | c << 1)) | c << 1))
                                break;
                        if (bound_fail(b)) {
                                late = 1;
                                c = 0;
                                break;
                        }
                }
                /* only the pages this compare-and-swap gave us: purging
                 * pages are another purger's (or a dead one's, which
                 * finish_dead_purge() takes) */
                set[i] = c;
                any |= set[i];
                if (late) {
                        n = i + 1;
                        break;
                }
        }
        if (!any)
                return late ? -ETIMEDOUT : 0;
        e = punch_set(r, data_fd, set, w0, n, &done);
        if (e == 0)
                done = n * WP;
        for (uint64_t i = 0; i < n; i++) {
                uint64_t w = w0 + i, old = LOAD(&r->state[w]);
                uint64_t punched = set[i], rest = 0;
                if (!set[i])
                        continue;
                if (done < (i + 1) * WP) {
                        /* the pages from `done` on were not punched */
                        uint64_t k = done > i * WP ? done - i * WP : 0;
                        uint64_t below = k ? (((uint64_t)1 << (2 * k)) - 1) & LO : 0;
                        punched = set[i] & below;
                        rest = set[i] & ~below;
                }
                /* not punched: back to unpinned, the code that is not
                 * the base (a group with purging pages is never made
                 * uniform, so its base cannot have changed meanwhile) */
                for (;;) {
                        uint64_t p = st_purging(old) & rest;
                        uint64_t bx = base_x(field(LOAD(sum_word(r, w / GW)), w / GW));
                        if (!p || CAS(&r->state[w], &old, (old & ~(p | p << 1)) | (p & ~bx)))
                                break;
                        if (bound_fail(b)) {
                                late = 1;
                                break;
                        }
                }
                /* punched: purged */
                if (punched) {
                        if (finish_word(r, w, punched, b) < 0)
                                late = 1;
                        count += popcount64(punched);
                }
        }
        if (e == 0 && late)
                e = -ETIMEDOUT;
        return e < 0 && count == 0 ? e : count;
}

static int purge(const struct amc_ref *r, int data_fd);

/* With cancellation off: a cancel inside (open, close, fallocate) would
 * leave a locked description open and pages purging. */
int amc_purge(const struct amc_ref *r, int data_fd)
{
        int cs, n;

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        n = purge(r, data_fd);
        pthread_setcancelstate(cs, NULL);
        return n;
}

static int purge(const struct amc_ref *r, int data_fd)
{
        struct bound b = { 0, 0 };
        struct amc_plock lk;
        int64_t n = 0, c = 0;
        int e, seals;

        if (!r->writable)
                return -EPERM;
        /* a write-sealed region cannot be punched: it purges nothing */
        if (!(LOAD(&r->b->prot) & PROT_WRITE))
                return 0;
        seals = fcntl(data_fd, F_GET_SEALS);
        if (seals < 0)
                return errno == EBADF ? -EBADF : -errno;
        if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
                return 0;
        /* left-overs of a dead purger: finished if nobody holds a lock */
        for (uint64_t w = 0; w < r->words; w++) {
                if (st_purging(LOAD(&r->state[w])) & valid_mask(r, w)) {
                        c = finish_dead_purge(r, w, r->words - w, data_fd, &b);
                        n += c > 0 ? c : 0;
                        break;
                }
        }
        e = amc_purge_lock(r, &lk);
        if (e == -EBUSY)
                return (int)n;  /* a dead purge is being finished right now */
        if (e < 0)
                return e;
        c = 0;
        for (uint64_t w = 0; w < r->words; w += AMC_CHUNK_WORDS) {
                uint64_t k = r->words - w < AMC_CHUNK_WORDS ? r->words - w : AMC_CHUNK_WORDS;
                c = purge_chunk(r, data_fd, w, k, &b);
                if (c < 0)
                        break;
                n += c;
                if (b.deadline && bound_check(&b) < 0) {
                        /* given up within the chunk: the rest is left */
                        c = -ETIMEDOUT;
                        break;
                }
        }
        amc_purge_unlock(r, &lk);
        if (n) {
                ADD(&r->b->purges, 1);
                ADD(&r->b->pages_reclaimed, (uint64_t)n);
        }
        if (c < 0 && n == 0)
                return (int)c;
        return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ------------------------------------------------------------ protection */

int amc_prot(const struct amc_ref *r)
{
        return (int)(LOAD(&r->b->prot) & PROT_ALL);
}

int amc_set_prot(const struct amc_ref *r, int data_fd, int prot)
{
        struct bound b = { 0, 0 };
        uint32_t old;

        if (!r->writable)
                return -EPERM;
        old = LOAD(&r->b->prot);
        for (;;) {
                uint32_t cur = old & PROT_ALL;
                if ((uint32_t)prot & ~cur)
                        return -EINVAL;
                if ((cur & PROT_WRITE) && !(prot & PROT_WRITE) &&
                    fcntl(data_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0)
                        return -errno;
                if (CAS(&r->b->prot, &old, (uint32_t)prot))
                        return 0;
                if (bound_fail(&b))
                        return -ETIMEDOUT;
        }
}

/* ----------------------------------------------------- stats, page map */

/* The pages of [first, end) unpinned, being purged and purged: a group
 * at a time, a word at a time (never a page at a time). */
static void count_range(const struct amc_ref *r, uint64_t first, uint64_t end, uint64_t *u,
                        uint64_t *g, uint64_t *x)
{
        if (end > r->pages)
                end = r->pages;
        for (uint64_t k = first / GP; first < end && k * GP < end; k++) {
                uint64_t gs = k * GP > first ? k * GP : first;
                uint64_t ge = group_end(r, k) < end ? group_end(r, k) : end;
                unsigned f = field(LOAD(sum_word(r, k)), k);
                if (is_uniform(f)) {
                        if (uni_unpinned(f))
                                *u += ge - gs;
                        continue;
                }
                for (uint64_t w = gs / WP; w * WP < ge; w++) {
                        uint64_t s = LOAD(&r->state[w]);
                        uint64_t v = valid_mask(r, w) & word_mask(gs, ge, w);
                        *u += popcount64(st_unpinned(s, base_x(f)) & v);
                        *g += popcount64(st_purging(s) & v);
                        *x += popcount64(st_purged(s) & v);
                }
        }
}

void amc_range_counts(const struct amc_ref *r, uint64_t first, uint64_t n, size_t c[3])
{
        uint64_t u = 0, g = 0, x = 0, end;

        if (first > r->pages)
                first = r->pages;
        end = n > r->pages - first ? r->pages : first + n;
        count_range(r, first, end, &u, &g, &x);
        c[0] = (size_t)(end - first - (u + g + x));
        c[1] = (size_t)u;
        c[2] = (size_t)(g + x);
}

void amc_stats(const struct amc_ref *r, struct ashmem_stats *st)
{
        uint64_t u = 0, g = 0, x = 0;

        count_range(r, 0, r->pages, &u, &g, &x);
        st->size = r->size;
        st->pages = r->pages;
        st->pinned = r->pages - (u + g + x);
        st->unpinned = u;
        /* purging pages are being reclaimed: counted as purged, as the
         * page map shows them */
        st->purged = g + x;
        st->unpinned_since_ns = 0;
        if (u + g + x) {
                /* a writer may store any time here: one later than now
                 * counts as the oldest, so forging it can only make the
                 * region go first in a least-recently-unpinned purge */
                int64_t t = LOAD(&r->b->unpinned_ns);
                st->unpinned_since_ns = t <= 0 || t > am_mono_ns(1) ? 1 : t;
        }
        st->purges = LOAD(&r->b->purges);
        st->pages_reclaimed = LOAD(&r->b->pages_reclaimed);
        st->shared_state = 1;
        st->writable_state = r->writable;
}

size_t amc_purging(const struct amc_ref *r)
{
        uint64_t g = 0;

        for (uint64_t w = 0; w < r->words; w++)
                g += popcount64(st_purging(LOAD(&r->state[w])) & valid_mask(r, w));
        return (size_t)g;
}

void amc_page_map(const struct amc_ref *r, char *map, size_t n)
{
        for (uint64_t i = 0; i < n && i < r->pages; i++) {
                uint64_t k = i / GP;
                unsigned f = field(LOAD(sum_word(r, k)), k), c;
                if (is_uniform(f)) {
                        map[i] = uni_unpinned(f) ? 'u' : 'P';
                        continue;
                }
                c = (unsigned)(LOAD(&r->state[i / WP]) >> (2 * (i % WP))) & 3u;
                map[i] = c & 2u ? 'x' : (c & 1u) == !!(f & F_B) ? 'P' : 'u';
        }
}
