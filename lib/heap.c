/* SPDX-License-Identifier: MIT */
/*
 * Heaps, slices and the process-wide heap cache (see <ashmem/heap.h>).
 *
 * The cache is a hash table of slots keyed by (st_dev, st_ino, writable):
 * one slot is one mapping of one region in one access mode, with the number
 * of heaps using it. The lock protecting it is never held across a system
 * call or another lock: the first heap of a region inserts its slot in the
 * MAPPING state, maps the region with the lock dropped, and wakes the heaps
 * that came meanwhile and wait for it; the last heap unlinks its slot under
 * the lock and unmaps after dropping it.
 *
 * The pin fast path: a heap takes a hold on its region's pin state through
 * its driver (the hold operation of drivers/driver.h), which keeps the
 * state mapped; pin, unpin and status then work on the shared state through
 * the hold, without a system call or a lookup.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../drivers/driver.h"
#include "internal/idtable.h"
#include "internal/page.h"

#define HEAP_FLAGS (ASHMEM_HEAP_READ_ONLY | ASHMEM_HEAP_DONT_MAP_LOCALLY | \
                    ASHMEM_HEAP_NO_CACHING)

/* ------------------------------------------------------------ the cache */

enum slot_state { SLOT_MAPPING, SLOT_READY, SLOT_FAILED };

struct am_slot {
        struct am_idnode id;       /* (st_dev, st_ino, writable) */
        enum slot_state state;
        void *base;
        size_t size;
        unsigned long users;       /* heaps using it, and heaps waiting for it */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cache_cond = PTHREAD_COND_INITIALIZER;
static struct am_idtable slots = AM_IDTABLE_INIT(16);
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_prepare(void) { pthread_mutex_lock(&cache_lock); }
static void cache_parent(void) { pthread_mutex_unlock(&cache_lock); }

/* In a child of fork only the forking thread lives on: a slot some other
 * thread was mapping will never be finished. Unlink it (leaking its record
 * and any mapping the other thread made) so that the child maps anew. */
static void cache_child(void)
{
        for (size_t i = 0; i < slots.nbuckets; i++) {
                struct am_idnode **pp = &slots.buckets[i];
                while (*pp) {
                        if (am_id_record(*pp, struct am_slot, id)->state == SLOT_MAPPING) {
                                am_idtable_unlink_at(&slots, pp);
                        } else {
                                pp = &(*pp)->next;
                        }
                }
        }
        pthread_cond_init(&cache_cond, NULL);
        pthread_mutex_unlock(&cache_lock);
}

static void cache_init(void)
{
        pthread_atfork(cache_prepare, cache_parent, cache_child);
}

static struct am_slot *slot_find(const struct stat *st, int writable)
{
        struct am_idnode *n = am_idtable_find(&slots, st->st_dev, st->st_ino,
                                              (unsigned)writable);
        return n ? am_id_record(n, struct am_slot, id) : NULL;
}

/* Called with the lock held. */
static int slot_link(struct am_slot *s)
{
        return am_idtable_insert(&slots, &s->id);
}

/* Called with the lock held. */
static void slot_unlink(struct am_slot *s)
{
        am_idtable_unlink(&slots, &s->id);
}

/* Drop one user, with the lock held. Returns the slot to unmap and free
 * once the lock is dropped, or NULL. */
static struct am_slot *slot_put_locked(struct am_slot *s)
{
        if (--s->users)
                return NULL;
        if (s->state == SLOT_READY)
                slot_unlink(s);
        return s;
}

static void slot_free(struct am_slot *s)
{
        if (!s)
                return;
        if (s->state == SLOT_READY)
                (void)ashmem_unmap(s->base, s->size);
        free(s);
}

/* The slot for fd's region (st) in this access mode, with one more user:
 * found in the cache, or made by mapping the region. */
static int slot_get(int fd, const struct stat *st, int writable,
                    struct am_slot **ret)
{
        struct am_slot *s, *done = NULL;
        size_t size = (size_t)st->st_size;
        int r;

        pthread_once(&cache_once, cache_init);
        pthread_mutex_lock(&cache_lock);
again:
        s = slot_find(st, writable);
        if (s) {
                s->users++;
                while (s->state == SLOT_MAPPING)
                        pthread_cond_wait(&cache_cond, &cache_lock);
                if (s->state == SLOT_FAILED) {
                        /* the heap that mapped it failed: try ourselves */
                        if (--s->users == 0)
                                free(s);
                        goto again;
                }
                if (s->size != size) {
                        /* a foreign memfd (not sealed) resized since it
                         * was mapped: the mapping does not cover it */
                        done = slot_put_locked(s);
                        pthread_mutex_unlock(&cache_lock);
                        slot_free(done);
                        return -EINVAL;
                }
                pthread_mutex_unlock(&cache_lock);
                *ret = s;
                return 0;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                pthread_mutex_unlock(&cache_lock);
                return -ENOMEM;
        }
        s->id.dev = st->st_dev;
        s->id.ino = st->st_ino;
        s->id.key = (unsigned)writable;
        s->size = size;
        s->state = SLOT_MAPPING;
        s->users = 1;
        r = slot_link(s);
        if (r < 0) {
                pthread_mutex_unlock(&cache_lock);
                free(s);
                return r;
        }
        pthread_mutex_unlock(&cache_lock);

        r = ashmem_map(fd, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                       0, 0, &s->base);

        pthread_mutex_lock(&cache_lock);
        if (r < 0) {
                /* the waiters free it when the last of them leaves */
                slot_unlink(s);
                s->state = SLOT_FAILED;
                done = slot_put_locked(s);
        } else {
                s->state = SLOT_READY;
        }
        pthread_cond_broadcast(&cache_cond);
        pthread_mutex_unlock(&cache_lock);
        if (r < 0) {
                free(done);
                return r;
        }
        *ret = s;
        return 0;
}

static void slot_put(struct am_slot *s)
{
        struct am_slot *done;

        pthread_mutex_lock(&cache_lock);
        done = slot_put_locked(s);
        pthread_mutex_unlock(&cache_lock);
        slot_free(done);
}

/* ------------------------------------------------------------ heaps */

struct ashmem_heap {
        unsigned long refs;             /* atomic */
        int fd;
        unsigned flags;
        int fd_writable;                /* descriptor not O_RDONLY */
        struct stat st;                 /* identity (dev, ino) and size */
        size_t size;
        void *base;
        struct am_slot *slot;           /* NULL: no cached mapping */
        void *own;                      /* a mapping of its own (an offset
                                           heap, NO_CACHING), else NULL */
        size_t offset;                  /* of the heap in the region */
        size_t region_size;
        const struct am_driver *drv;    /* the region's driver */
        struct am_pinref *ctl;          /* atomic; NULL: no pin state held */
        unsigned page_shift;            /* log2 of the page size */
        char name[ASHMEM_NAME_LEN];
};

struct ashmem_slice {
        unsigned long refs;             /* atomic */
        ashmem_heap *heap;
        size_t offset, length;
};

static void heap_free(ashmem_heap *h)
{
        struct am_pinref *c = __atomic_load_n(&h->ctl, __ATOMIC_ACQUIRE);

        if (h->slot)
                slot_put(h->slot);
        if (h->own)
                (void)ashmem_unmap(h->own, h->size);
        if (c)
                h->drv->release(&h->st, c);
        if (h->fd >= 0)
                close(h->fd);
        free(h);
}

/* Make a heap over [offset, offset + len) of fd (len 0: to the end),
 * which it takes over, also on failure. */
static int heap_make(int fd, unsigned flags, int creator, size_t offset, size_t len,
                     ashmem_heap **ret)
{
        ashmem_heap *h;
        int r, fl, mask, own;

        h = calloc(1, sizeof(*h));
        if (!h) {
                close(fd);
                return -ENOMEM;
        }
        h->refs = 1;
        h->fd = fd;
        h->flags = flags;
        h->page_shift = (unsigned)__builtin_ctzll(am_page_size());
        r = ashmem_get_size(fd, &h->size);
        if (r < 0)
                goto fail;
        r = am_driver_of(fd, &h->st, &h->drv);
        if (r < 0)
                goto fail;
        fl = fcntl(fd, F_GETFL);
        if (fl < 0) {
                r = -errno;
                goto fail;
        }
        h->fd_writable = (fl & O_ACCMODE) != O_RDONLY;
        r = ashmem_get_name(fd, h->name, sizeof(h->name));
        if (r < 0)
                goto fail;
        /* a view of part of the region (MemoryHeapBase's offset) */
        h->region_size = h->size;
        if (len == 0)
                len = offset <= h->size ? h->size - offset : 0;
        if (offset % am_page_size() || offset > h->size || len == 0 ||
            len > h->size - offset) {
                r = -EINVAL;
                goto fail;
        }
        h->offset = offset;
        h->size = len;
        own = (flags & ASHMEM_HEAP_NO_CACHING) || len != h->region_size;
        if (!creator) {
                mask = ashmem_get_prot(fd);
                if (mask < 0) {
                        r = mask;
                        goto fail;
                }
                /* what the sender made read-only reads so here too */
                if (!h->fd_writable || !(mask & PROT_WRITE))
                        h->flags |= ASHMEM_HEAP_READ_ONLY;
        }

        if (!(flags & ASHMEM_HEAP_DONT_MAP_LOCALLY)) {
                int writable = creator || !(flags & ASHMEM_HEAP_READ_ONLY);
                if (writable && !creator) {
                        /* only a heap that could map the region writably
                         * itself may share a writable mapping */
                        if ((fl & O_ACCMODE) != O_RDWR) {
                                r = -EACCES;
                                goto fail;
                        }
                        if (!(mask & PROT_WRITE)) {
                                r = -EPERM;
                                goto fail;
                        }
                }
                if (own) {
                        r = ashmem_map(fd, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                                       offset, len, &h->own);
                        if (r < 0)
                                goto fail;
                        h->base = h->own;
                } else {
                        r = slot_get(fd, &h->st, writable, &h->slot);
                        if (r < 0)
                                goto fail;
                        h->base = h->slot->base;
                }
        }

        /* none yet: heap_ctl() looks again at the first pin */
        if (h->drv->hold)
                (void)h->drv->hold(&h->st, &h->ctl);

        if (creator && (flags & ASHMEM_HEAP_READ_ONLY)) {
                int prot = ashmem_get_prot(fd);
                if (prot < 0) {
                        r = prot;
                        goto fail;
                }
                if (ashmem_set_prot_region(fd, prot & ~PROT_WRITE) < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        *ret = h;
        return 0;
fail:
        heap_free(h);
        return r;
}

int ashmem_heap_new(const char *name, size_t size, unsigned flags,
                    ashmem_heap **ret)
{
        int saved = errno, fd, r;

        if (!ret || (flags & ~HEAP_FLAGS))
                return -EINVAL;
        fd = am_create(name, size);
        r = fd < 0 ? fd : heap_make(fd, flags, 1, 0, 0, ret);
        errno = saved;
        return r;
}

int ashmem_heap_adopt_at(int fd, size_t size, size_t offset, unsigned flags,
                         ashmem_heap **ret)
{
        int saved = errno, own, r;

        if (!ret || (flags & ~HEAP_FLAGS))
                return -EINVAL;
        if (fd < 0)
                return -EBADF;
        own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        r = own < 0 ? -errno : heap_make(own, flags, 0, offset, size, ret);
        errno = saved;
        return r;
}

int ashmem_heap_adopt(int fd, unsigned flags, ashmem_heap **ret)
{
        return ashmem_heap_adopt_at(fd, 0, 0, flags, ret);
}

size_t ashmem_heap_offset(const ashmem_heap *heap)
{
        return heap ? heap->offset : 0;
}

/* The references of heaps and slices: take one on obj (returned); drop
 * one, 1 if it was the last. */
static void *ref_take(void *obj, unsigned long *refs)
{
        __atomic_add_fetch(refs, 1, __ATOMIC_RELAXED);
        return obj;
}

static int ref_drop(unsigned long *refs)
{
        return __atomic_sub_fetch(refs, 1, __ATOMIC_ACQ_REL) == 0;
}

ashmem_heap *ashmem_heap_ref(ashmem_heap *heap)
{
        return heap ? ref_take(heap, &heap->refs) : NULL;
}

ashmem_heap *ashmem_heap_unref(ashmem_heap *heap)
{
        if (heap && ref_drop(&heap->refs)) {
                int saved = errno;
                heap_free(heap);
                errno = saved;
        }
        return NULL;
}

int ashmem_heap_fd(const ashmem_heap *heap)
{
        return heap ? heap->fd : -EINVAL;
}

void *ashmem_heap_base(const ashmem_heap *heap)
{
        return heap ? heap->base : NULL;
}

size_t ashmem_heap_size(const ashmem_heap *heap)
{
        return heap ? heap->size : 0;
}

unsigned ashmem_heap_flags(const ashmem_heap *heap)
{
        return heap ? heap->flags : 0;
}

int ashmem_heap_name(const ashmem_heap *heap, char *buf, size_t buflen)
{
        size_t n;

        if (!heap || !buf)
                return -EINVAL;
        n = strlen(heap->name);
        if (n + 1 > buflen)
                return -ERANGE;
        memcpy(buf, heap->name, n + 1);
        return (int)n;
}

int ashmem_heap_mapping_users(const ashmem_heap *heap)
{
        unsigned long n;

        if (!heap)
                return -EINVAL;
        if (heap->own)
                return 1;
        if (!heap->slot)
                return 0;
        pthread_mutex_lock(&cache_lock);
        n = heap->slot->users;
        pthread_mutex_unlock(&cache_lock);
        return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ------------------------------------------------------------ pinning */

enum pin_op { PIN, UNPIN, STATUS };

/* The heap's view of its region's pin state, or NULL if this process has
 * none for it. A heap made before a control descriptor was attached picks
 * it up here, once. */
static const struct am_pinref *heap_ctl(ashmem_heap *h, int *err)
{
        struct am_pinref *c = __atomic_load_n(&h->ctl, __ATOMIC_ACQUIRE), *n;
        int r;

        *err = 0;
        if (c)
                return c;
        r = h->drv->hold ? h->drv->hold(&h->st, &n) : -ENOENT;
        if (r < 0) {
                if (r == -ENOMEM)
                        *err = r;
                return NULL;
        }
        if (!__atomic_compare_exchange_n(&h->ctl, &c, n, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
                /* another thread got there first: use its */
                h->drv->release(&h->st, n);
                return c;
        }
        return n;
}

static int heap_pin_op(ashmem_heap *h, size_t off, size_t len, enum pin_op which)
{
        const struct am_pinref *c;
        uint64_t first, count;
        int r;

        if (!h)
                return -EINVAL;
        if (h->offset || h->size != h->region_size) {
                /* a view: its ranges, moved to the region's */
                size_t ps = am_page_size(), end = ((uint64_t)h->size + ps - 1) / ps * ps;
                if (len == 0)
                        len = off < end ? end - off : 0;
                if (off % ps || len % ps || len == 0 || off > end || len > end - off)
                        return -EINVAL;
                off += h->offset;
        }
        c = heap_ctl(h, &r);
        if (r < 0)
                return r;
        if (!c) {
                /* no pin state: the rules of the descriptor calls for a
                 * memfd libashmem did not make */
                size_t ps = am_page_size();
                r = am_page_range(off, len, ((uint64_t)h->region_size + ps - 1) / ps * ps,
                                  h->page_shift, &first, &count);
                if (r < 0)
                        return r;
                if (which != STATUS && !h->fd_writable)
                        return -EPERM;
                return which == STATUS ? ASHMEM_IS_PINNED :
                       which == PIN ? ASHMEM_NOT_PURGED : 0;
        }
        switch (which) {
        case PIN:
                return h->drv->ref_pin(c, off, len);
        case UNPIN:
                return h->drv->ref_unpin(c, off, len);
        default:
                return h->drv->ref_pin_status(c, off, len);
        }
}

int ashmem_heap_pin(ashmem_heap *heap, size_t offset, size_t len)
{
        return heap_pin_op(heap, offset, len, PIN);
}

int ashmem_heap_unpin(ashmem_heap *heap, size_t offset, size_t len)
{
        return heap_pin_op(heap, offset, len, UNPIN);
}

int ashmem_heap_pin_status(ashmem_heap *heap, size_t offset, size_t len)
{
        return heap_pin_op(heap, offset, len, STATUS);
}

/* ------------------------------------------------------------ slices */

int ashmem_slice_new(ashmem_heap *heap, size_t offset, size_t length,
                     ashmem_slice **ret)
{
        ashmem_slice *s;

        if (!heap || !ret || length == 0 || offset > heap->size ||
            length > heap->size - offset)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->refs = 1;
        s->heap = ashmem_heap_ref(heap);
        s->offset = offset;
        s->length = length;
        *ret = s;
        return 0;
}

ashmem_slice *ashmem_slice_ref(ashmem_slice *slice)
{
        return slice ? ref_take(slice, &slice->refs) : NULL;
}

ashmem_slice *ashmem_slice_unref(ashmem_slice *slice)
{
        if (slice && ref_drop(&slice->refs)) {
                ashmem_heap_unref(slice->heap);
                free(slice);
        }
        return NULL;
}

void *ashmem_slice_ptr(const ashmem_slice *slice)
{
        if (!slice || !slice->heap->base)
                return NULL;
        return (char *)slice->heap->base + slice->offset;
}

size_t ashmem_slice_size(const ashmem_slice *slice)
{
        return slice ? slice->length : 0;
}

size_t ashmem_slice_offset(const ashmem_slice *slice)
{
        return slice ? slice->offset : 0;
}

ashmem_heap *ashmem_slice_heap(const ashmem_slice *slice)
{
        return slice ? slice->heap : NULL;
}

/* The pages the slice touches, as a page-aligned (offset, len). */
static int slice_pin_op(ashmem_slice *s, enum pin_op which)
{
        size_t ps = am_page_size(), first, end;

        if (!s)
                return -EINVAL;
        first = s->offset / ps * ps;
        /* offset + length <= size, an off_t: no overflow */
        end = (s->offset + s->length + ps - 1) / ps * ps;
        return heap_pin_op(s->heap, first, end - first, which);
}

int ashmem_slice_pin(ashmem_slice *slice)
{
        return slice_pin_op(slice, PIN);
}

int ashmem_slice_unpin(ashmem_slice *slice)
{
        return slice_pin_op(slice, UNPIN);
}

int ashmem_slice_pin_status(ashmem_slice *slice)
{
        return slice_pin_op(slice, STATUS);
}
