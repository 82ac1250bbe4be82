/* SPDX-License-Identifier: MIT */
/* The memfd driver's shared pin state: see control.h for the layout. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ashmem/ashmem.h"
#include "control.h"
#include "lib/internal/clock.h"
#include "lib/internal/page.h"

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

size_t amc_block_size(uint64_t pages)
{
        uint64_t words = (pages + 63) / 64;
        return AMC_HEADER_SIZE + 2 * words * sizeof(uint64_t);
}

/* The time a region starts having unpinned pages only orders purges
 * (least recently unpinned first): the coarse clock, a few milliseconds
 * behind CLOCK_MONOTONIC on the same timebase, is precise enough and costs a
 * fifth of the fine one on the unpin path. */
static int64_t unpin_stamp(void)
{
        return am_mono_ns(1);
}

void amc_init(struct amc_block *b, const char *name, uint64_t size,
              uint32_t page_size, uint64_t dev, uint64_t ino, uint32_t prot)
{
        pthread_mutexattr_t a;

        b->magic = AMC_MAGIC;
        b->version = AMC_VERSION;
        b->header_size = (uint32_t)AMC_HEADER_SIZE;
        b->page_size = page_size;
        b->size = size;
        b->pages = (size + page_size - 1) / page_size;
        b->words = (b->pages + 63) / 64;
        b->data_dev = dev;
        b->data_ino = ino;
        b->prot = prot;
        if (name)
                strncpy(b->name, name, sizeof(b->name) - 1);
        /* These calls cannot fail with valid attributes on Linux. */
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&b->lock, &a);
        pthread_mutexattr_destroy(&a);
}

int amc_attach(struct amc_ref *ref, void *map, size_t map_len, int writable)
{
        const struct amc_block *b = map;
        uint64_t pages, words;

        if (map_len < AMC_HEADER_SIZE || b->magic != AMC_MAGIC ||
            b->version != AMC_VERSION || b->header_size != AMC_HEADER_SIZE ||
            b->page_size == 0 || (b->page_size & (b->page_size - 1)) ||
            b->size == 0 || b->size > ASHMEM_SIZE_MAX)
                return -EINVAL;
        pages = (b->size + b->page_size - 1) / b->page_size;
        words = (pages + 63) / 64;
        if (b->pages != pages || b->words != words ||
            amc_block_size(pages) > map_len)
                return -EINVAL;
        ref->b = map;
        ref->size = b->size;
        ref->pages = pages;
        ref->words = words;
        ref->page_size = b->page_size;
        ref->page_shift = (uint32_t)__builtin_ctz(b->page_size);
        ref->map_len = map_len;
        ref->unpinned = (uint64_t *)((char *)map + AMC_HEADER_SIZE);
        ref->purged = ref->unpinned + words;
        ref->writable = writable;
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

/* Bits [first, end) of word w. */
static inline uint64_t word_mask(uint64_t first, uint64_t end, uint64_t w)
{
        uint64_t lo = w * 64;
        unsigned a = first > lo ? (unsigned)(first - lo) : 0;
        unsigned z = end - lo < 64 ? (unsigned)(end - lo) : 64;
        uint64_t m = z == 64 ? ~(uint64_t)0 : (((uint64_t)1 << z) - 1);
        return m & ~(((uint64_t)1 << a) - 1);
}

static void recount(const struct amc_ref *r)
{
        uint64_t u = 0, p = 0;

        for (uint64_t w = 0; w < r->words; w++) {
                uint64_t uw = LOAD(&r->unpinned[w]), pw = LOAD(&r->purged[w]);
                /* A holder killed inside pin cleared the unpinned bits and
                 * not yet the purged ones. Those pages were punched and the
                 * dead pinner was never told: calling them pinned would put
                 * "pinned" over lost content, and the next pin would say
                 * NOT_PURGED. They go back to purged (unpinned), so the
                 * next pin of them says WAS_PURGED. */
                if (pw & ~uw) {
                        uw |= pw;
                        STORE(&r->unpinned[w], uw);
                }
                u += (uint64_t)popcount64(uw);
                p += (uint64_t)popcount64(pw);
        }
        STORE(&r->b->n_unpinned, u);
        STORE(&r->b->n_purged, p);
        if (u == 0)
                STORE(&r->b->unpinned_since_ns, 0);
        else if (LOAD(&r->b->unpinned_since_ns) == 0)
                STORE(&r->b->unpinned_since_ns, unpin_stamp());
}

int amc_lock(const struct amc_ref *r)
{
        int e = pthread_mutex_lock(&r->b->lock);

        if (e == EOWNERDEAD) {
                recount(r);
                STORE(&r->b->recoveries, LOAD(&r->b->recoveries) + 1);
                e = pthread_mutex_consistent(&r->b->lock);
        }
        return -e;
}

void amc_unlock(const struct amc_ref *r)
{
        STORE(&r->b->seq, LOAD(&r->b->seq) + 1);
        pthread_mutex_unlock(&r->b->lock);
}

int amc_pin(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        uint64_t end = first + count, cu = 0, cp = 0, was = 0;
        int e;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return ASHMEM_NOT_PURGED;
        e = amc_lock(r);
        if (e < 0)
                return e;
        for (uint64_t w = first / 64; w <= (end - 1) / 64; w++) {
                uint64_t m = word_mask(first, end, w);
                uint64_t uw = r->unpinned[w], pw = r->purged[w];
                if (!(uw & m))
                        continue;
                was |= pw & m;
                cu += (uint64_t)popcount64(uw & m);
                cp += (uint64_t)popcount64(pw & m);
                /* unpinned bit first: see recount() */
                STORE(&r->unpinned[w], uw & ~m);
                STORE(&r->purged[w], pw & ~m);
        }
        if (cu) {
                uint64_t nu = r->b->n_unpinned - cu;
                STORE(&r->b->n_unpinned, nu);
                STORE(&r->b->n_purged, r->b->n_purged - cp);
                if (nu == 0)
                        STORE(&r->b->unpinned_since_ns, 0);
        }
        amc_unlock(r);
        return was ? ASHMEM_WAS_PURGED : ASHMEM_NOT_PURGED;
}

int amc_unpin(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        uint64_t end = first + count, cu = 0;
        int e;

        if (!r->writable)
                return -EPERM;
        if (count == 0)
                return 0;
        e = amc_lock(r);
        if (e < 0)
                return e;
        for (uint64_t w = first / 64; w <= (end - 1) / 64; w++) {
                uint64_t m = word_mask(first, end, w), uw = r->unpinned[w];
                if ((uw & m) == m)
                        continue;
                cu += (uint64_t)popcount64(~uw & m);
                STORE(&r->unpinned[w], uw | m);
        }
        if (cu) {
                if (r->b->n_unpinned == 0)
                        STORE(&r->b->unpinned_since_ns, unpin_stamp());
                STORE(&r->b->n_unpinned, r->b->n_unpinned + cu);
        }
        amc_unlock(r);
        return 0;
}

int amc_status(const struct amc_ref *r, uint64_t first, uint64_t count)
{
        uint64_t end = first + count;

        if (count == 0)
                return ASHMEM_IS_PINNED;
        /* A purged bit without its unpinned bit (a holder killed inside
         * pin, not yet recovered: see recount()) is unpinned too. */
        for (uint64_t w = first / 64; w <= (end - 1) / 64; w++)
                if ((LOAD(&r->unpinned[w]) | LOAD(&r->purged[w])) &
                    word_mask(first, end, w))
                        return ASHMEM_IS_UNPINNED;
        return ASHMEM_IS_PINNED;
}

/* Pages in [from, pages) that are unpinned and not purged: the first one
 * at or after from, or pages if none. */
static uint64_t next_candidate(const struct amc_ref *r, uint64_t from, int want)
{
        while (from < r->pages) {
                uint64_t w = from / 64;
                uint64_t c = r->unpinned[w] & ~r->purged[w];
                if (!want)
                        c = ~c;
                c &= ~(uint64_t)0 << (from % 64);
                if (c) {
                        uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(c);
                        return p < r->pages ? p : r->pages;
                }
                from = (w + 1) * 64;
        }
        return r->pages;
}

static void set_purged(const struct amc_ref *r, uint64_t s, uint64_t e, int on)
{
        for (uint64_t w = s / 64; w <= (e - 1) / 64; w++) {
                uint64_t m = word_mask(s, e, w), pw = r->purged[w];
                STORE(&r->purged[w], on ? pw | m : pw & ~m);
        }
}

/* Lock the block of a writable reference: 0, -EPERM (read-only), or as
 * amc_lock(). */
static int lock_writable(const struct amc_ref *r)
{
        return r->writable ? amc_lock(r) : -EPERM;
}

int amc_purge(const struct amc_ref *r, int data_fd)
{
        uint64_t p = 0, n = 0, ps = r->page_size;
        int e = lock_writable(r);

        if (e < 0)
                return e;
        if (!(r->b->prot & PROT_WRITE))
                goto out;
        while ((p = next_candidate(r, p, 1)) < r->pages) {
                uint64_t q = next_candidate(r, p, 0);
                /* mark first: a holder killed between the two steps leaves
                 * pages that say "purged" over intact data, never the
                 * reverse */
                set_purged(r, p, q, 1);
                STORE(&r->b->n_purged, r->b->n_purged + (q - p));
                while (fallocate(data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 (off_t)(p * ps), (off_t)((q - p) * ps)) < 0) {
                        if (errno == EINTR)
                                continue;
                        e = errno == EBADF ? -EPERM : -errno;
                        set_purged(r, p, q, 0);
                        STORE(&r->b->n_purged, r->b->n_purged - (q - p));
                        goto out;
                }
                n += q - p;
                p = q;
        }
out:
        if (n) {
                STORE(&r->b->purges, r->b->purges + 1);
                STORE(&r->b->pages_reclaimed, r->b->pages_reclaimed + n);
        }
        amc_unlock(r);
        if (e < 0)
                return e;
        return n > INT32_MAX ? INT32_MAX : (int)n;
}

int amc_set_prot(const struct amc_ref *r, int data_fd, int prot)
{
        int e = lock_writable(r);

        if (e < 0)
                return e;
        if ((uint32_t)prot & ~r->b->prot)
                e = -EINVAL;
        else if ((r->b->prot & PROT_WRITE) && !(prot & PROT_WRITE) &&
                 fcntl(data_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0)
                e = -errno;
        else
                STORE(&r->b->prot, (uint32_t)prot);
        amc_unlock(r);
        return e;
}

void amc_stats(const struct amc_ref *r, struct ashmem_stats *st)
{
        uint64_t u = LOAD(&r->b->n_unpinned), p = LOAD(&r->b->n_purged);

        if (u > r->pages)
                u = r->pages;
        if (p > u)
                p = u;
        st->size = r->size;
        st->pages = r->pages;
        st->pinned = r->pages - u;
        st->unpinned = u - p;
        st->purged = p;
        st->unpinned_since_ns = LOAD(&r->b->unpinned_since_ns);
        st->purges = LOAD(&r->b->purges);
        st->pages_reclaimed = LOAD(&r->b->pages_reclaimed);
        st->shared_state = 1;
        st->writable_state = r->writable;
}

void amc_page_map(const struct amc_ref *r, char *map, size_t n)
{
        for (uint64_t i = 0; i < n && i < r->pages; i++) {
                uint64_t bit = (uint64_t)1 << (i % 64);
                if (LOAD(&r->purged[i / 64]) & bit)
                        map[i] = 'x';
                else if (LOAD(&r->unpinned[i / 64]) & bit)
                        map[i] = 'u';
                else
                        map[i] = 'P';
        }
}
