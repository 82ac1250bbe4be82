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
/* the low bit of every page's pair */
#define LO 0x5555555555555555ull

size_t amc_block_size(uint64_t pages)
{
        uint64_t words = (pages + 31) / 32;
        return AMC_HEADER_SIZE + words * sizeof(uint64_t);
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
        b->words = (b->pages + 31) / 32;
        b->data_dev = dev;
        b->data_ino = ino;
        b->prot = prot;
        if (name)
                strncpy(b->name, name, sizeof(b->name) - 1);
}

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
        if (h.magic == AMC_MAGIC_V1)
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
        words = (pages + 31) / 32;
        if (h.pages != pages || h.words != words ||
            amc_block_size(pages) > map_len)
                return -EINVAL;
        ref->b = map;
        ref->size = h.size;
        ref->pages = pages;
        ref->words = words;
        ref->tail = pages % 32 ? (((uint64_t)1 << (2 * (pages % 32))) - 1) & LO : LO;
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
        uint64_t lo = w * 32;
        unsigned a = first > lo ? (unsigned)(first - lo) : 0;
        unsigned z = end - lo < 32 ? (unsigned)(end - lo) : 32;
        uint64_t m = z == 32 ? ~(uint64_t)0 : (((uint64_t)1 << (2 * z)) - 1);
        return m & ~(((uint64_t)1 << (2 * a)) - 1) & LO;
}

/* Low bits of the pages of word w that exist. */
static inline uint64_t valid_mask(const struct amc_ref *r, uint64_t w)
{
        return w + 1 == r->words ? r->tail : LO;
}

/* Low bits of the pages of s in each state. */
static inline uint64_t st_unpinned(uint64_t s) { return s & ~(s >> 1) & LO; }
static inline uint64_t st_purging(uint64_t s)  { return (s >> 1) & ~s & LO; }
static inline uint64_t st_purged(uint64_t s)   { return s & (s >> 1) & LO; }

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
        uint64_t ps = r->page_size, p = 0, end = n * 32;

        while (p < end) {
                uint64_t s, q;
                /* next set page at or after p */
                while (p < end && !(set[p / 32] >> (2 * (p % 32)) & 1))
                        p = (set[p / 32] >> (2 * (p % 32))) ? p + 1 : (p / 32 + 1) * 32;
                if (p >= end)
                        break;
                s = p;
                while (p < end && (set[p / 32] >> (2 * (p % 32)) & 1))
                        p++;
                q = p;
                while (fallocate(data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 (off_t)((w0 * 32 + s) * ps),
                                 (off_t)((q - s) * ps)) < 0) {
                        if (errno != EINTR) {
                                *done = s;
                                return errno == EBADF ? -EPERM : -errno;
                        }
                }
        }
        return 0;
}

/* Move the pages of `set` in word w that are still purging to purged. */
static void finish_word(const struct amc_ref *r, uint64_t w, uint64_t set)
{
        uint64_t old = LOAD(&r->state[w]);

        for (;;) {
                uint64_t done = st_purging(old) & set;
                if (!done || CAS(&r->state[w], &old, old | done))
                        return;
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
                                 int data_fd)
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
                finish_word(r, w, set);
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
                       int64_t *deadline)
{
        struct timespec ts = { 0, 200 * 1000 };
        int64_t now = am_mono_ns(0);

        if (*deadline == 0)
                *deadline = now + AMC_WAIT_NS;
        else if (now >= *deadline)
                return -ETIMEDOUT;
        if (finish_dead_purge(r, w, 1, data_fd) >= 0)
                return 0;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        return 0;
}

/* ------------------------------------------------------ pin, unpin, status */

int amc_pin(const struct amc_ref *r, uint64_t first, uint64_t count, int data_fd)
{
        uint64_t end = first + count;
        int64_t deadline = 0;
        int was = 0, e;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return ASHMEM_NOT_PURGED;
        for (uint64_t w = first / 32; w <= (end - 1) / 32; w++) {
                uint64_t m = word_mask(first, end, w), full = m | m << 1;
                uint64_t old = LOAD(&r->state[w]);

                for (;;) {
                        if (st_purging(old) & m) {
                                /* Timed out: the pages this call pinned stay
                                 * pinned. Pins are not counted, so putting
                                 * them back could unpin a page another
                                 * process pinned meanwhile. */
                                int cs;
                                /* open, close and nanosleep in the wait are
                                 * cancellation points: a cancel there would
                                 * leave a locked description open */
                                pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
                                e = await_purge(r, w, data_fd, &deadline);
                                pthread_setcancelstate(cs, NULL);
                                if (e < 0)
                                        return e;
                                old = LOAD(&r->state[w]);
                                continue;
                        }
                        if (!(old & full))
                                break;
                        if (CAS(&r->state[w], &old, old & ~full)) {
                                if (st_purged(old) & m)
                                        was = 1;
                                break;
                        }
                }
        }
        return was ? ASHMEM_WAS_PURGED : ASHMEM_NOT_PURGED;
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
        uint64_t end = first + count;
        int changed = 0;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return 0;
        for (uint64_t w = first / 32; w <= (end - 1) / 32; w++) {
                uint64_t m = word_mask(first, end, w), old = LOAD(&r->state[w]);
                for (;;) {
                        uint64_t pinned = ~(old | old >> 1) & m;
                        if (!pinned)
                                break;
                        if (CAS(&r->state[w], &old, old | pinned)) {
                                changed = 1;
                                break;
                        }
                }
        }
        if (changed)
                stamp(r);
        return 0;
}

int amc_status(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        uint64_t end = first + count;

        if (count == 0)
                return ASHMEM_IS_PINNED;
        for (uint64_t w = first / 32; w <= (end - 1) / 32; w++) {
                uint64_t m = word_mask(first, end, w);
                if (LOAD(&r->state[w]) & (m | m << 1))
                        return ASHMEM_IS_UNPINNED;
        }
        return ASHMEM_IS_PINNED;
}

/* ------------------------------------------------------------------ purge */

/* Purge the chunk of n words from w0, with the purge lock held: the pages
 * purged, or -errno. */
static int64_t purge_chunk(const struct amc_ref *r, int data_fd, uint64_t w0,
                           uint64_t n)
{
        uint64_t set[AMC_CHUNK_WORDS], any = 0, done;
        int64_t count = 0;
        int e;

        for (uint64_t i = 0; i < n; i++) {
                uint64_t w = w0 + i, valid = valid_mask(r, w);
                uint64_t old = LOAD(&r->state[w]), c;
                for (;;) {
                        c = st_unpinned(old) & valid;
                        if (!c || CAS(&r->state[w], &old, (old & ~c) | c << 1))
                                break;
                }
                /* only the pages this compare-and-swap gave us: purging
                 * pages are another purger's (or a dead one's, which
                 * finish_dead_purge() takes) */
                set[i] = c;
                any |= set[i];
        }
        if (!any)
                return 0;
        e = punch_set(r, data_fd, set, w0, n, &done);
        if (e == 0)
                done = n * 32;
        for (uint64_t i = 0; i < n; i++) {
                uint64_t w = w0 + i, old = LOAD(&r->state[w]);
                uint64_t punched = set[i], rest = 0;
                if (!set[i])
                        continue;
                if (done < (i + 1) * 32) {
                        /* the pages from `done` on were not punched */
                        uint64_t k = done > i * 32 ? done - i * 32 : 0;
                        uint64_t below = k ? (((uint64_t)1 << (2 * k)) - 1) & LO : 0;
                        punched = set[i] & below;
                        rest = set[i] & ~below;
                }
                /* not punched: back to unpinned */
                for (;;) {
                        uint64_t p = st_purging(old) & rest;
                        if (!p || CAS(&r->state[w], &old, (old & ~(p << 1)) | p))
                                break;
                }
                /* punched: purged */
                if (punched) {
                        finish_word(r, w, punched);
                        count += popcount64(punched);
                }
        }
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
                        c = finish_dead_purge(r, w, r->words - w, data_fd);
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
                c = purge_chunk(r, data_fd, w, k);
                if (c < 0)
                        break;
                n += c;
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
        }
}

/* ----------------------------------------------------- stats, page map */

void amc_stats(const struct amc_ref *r, struct ashmem_stats *st)
{
        uint64_t u = 0, g = 0, x = 0;

        for (uint64_t w = 0; w < r->words; w++) {
                uint64_t s = LOAD(&r->state[w]), v = valid_mask(r, w);
                u += popcount64(st_unpinned(s) & v);
                g += popcount64(st_purging(s) & v);
                x += popcount64(st_purged(s) & v);
        }
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
        static const char c[4] = { 'P', 'u', 'x', 'x' };

        for (uint64_t i = 0; i < n && i < r->pages; i++)
                map[i] = c[(LOAD(&r->state[i / 32]) >> (2 * (i % 32))) & 3];
}
