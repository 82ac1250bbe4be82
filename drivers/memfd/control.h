/* SPDX-License-Identifier: MIT */
/*
 * The memfd driver's control block: a small memfd beside each region's data
 * memfd, mapped MAP_SHARED by every process that holds the region, so that
 * pin state is one thing for all of them.
 *
 * Layout (version 1): the header below, then two bitmaps of `words` 64-bit
 * words each. Together they are the 2 bits of state per page:
 *   unpinned bit  purged bit   state
 *        0            0        pinned
 *        1            0        unpinned (reclaimable)
 *        1            1        purged (reclaimed while unpinned)
 * Every change happens under `lock`, a process-shared robust mutex. Readers
 * of the pin status load words atomically and need no lock (a read-only
 * holder cannot take it).
 */
#ifndef ASHMEM_MEMFD_CONTROL_H
#define ASHMEM_MEMFD_CONTROL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct ashmem_stats;

#define AMC_MAGIC   0x43485341u   /* "ASHC" little-endian */
#define AMC_VERSION 1u

struct amc_block {
        uint32_t magic;
        uint32_t version;
        uint32_t header_size;      /* offset of the first bitmap */
        uint32_t page_size;
        uint64_t size;             /* bytes, as created */
        uint64_t pages;            /* page-rounded size in pages */
        uint64_t words;            /* 64-bit words per bitmap */
        uint64_t data_dev;         /* identity of the data memfd */
        uint64_t data_ino;
        uint32_t prot;             /* protection mask, only loses bits */
        uint32_t reserved0;
        char name[256];            /* NUL-terminated, "" for none */
        /* mutable state, under lock */
        pthread_mutex_t lock;
        uint64_t n_unpinned;       /* pages with the unpinned bit (incl. purged) */
        uint64_t n_purged;         /* pages with the purged bit */
        int64_t unpinned_since_ns; /* CLOCK_MONOTONIC; 0 when nothing is unpinned */
        uint64_t purges;           /* purge calls that reclaimed something */
        uint64_t pages_reclaimed;  /* total pages reclaimed */
        uint64_t recoveries;       /* times a dead holder's lock was recovered */
        uint64_t seq;              /* bumped on every change */
};

#define AMC_HEADER_SIZE (((sizeof(struct amc_block)) + 63u) & ~(size_t)63u)

static inline uint64_t *amc_unpinned_map(struct amc_block *b)
{
        return (uint64_t *)((char *)b + b->header_size);
}

static inline uint64_t *amc_purged_map(struct amc_block *b)
{
        return amc_unpinned_map(b) + b->words;
}

/* A process's view of one block: the geometry is copied out of the shared
 * header once, when the block is attached, and every bound is checked
 * against these private copies, never against shared memory. */
struct amc_ref {
        struct amc_block *b;
        uint64_t *unpinned;        /* bitmap words */
        uint64_t *purged;
        uint64_t size;
        uint64_t pages;
        uint64_t words;
        size_t map_len;
        uint32_t page_size;
        uint32_t page_shift;       /* log2(page_size) */
        int writable;              /* mapped read-write */
};

/* Bytes of a control memfd for a region of `pages` pages. */
size_t amc_block_size(uint64_t pages);

/* Initialise a fresh (zeroed) block. */
void amc_init(struct amc_block *b, const char *name, uint64_t size,
              uint32_t page_size, uint64_t dev, uint64_t ino, uint32_t prot);

/* Check a mapped block of map_len bytes and fill ref from it; -EINVAL if it
 * is not a control block of this version and geometry. */
int amc_attach(struct amc_ref *ref, void *map, size_t map_len, int writable);

/* Turn (offset, len) into a page range [*first, *first + *count); -EINVAL
 * for unaligned, past-the-end or overflowing ranges. len 0 = to the end. */
int amc_range(const struct amc_ref *r, size_t offset, size_t len,
              uint64_t *first, uint64_t *count);

/* State operations on a page range checked with amc_range. pin, unpin and
 * purge need a writable ref (-EPERM otherwise). */
int amc_pin(const struct amc_ref *r, uint64_t first, uint64_t count);
int amc_unpin(const struct amc_ref *r, uint64_t first, uint64_t count);
int amc_status(const struct amc_ref *r, uint64_t first, uint64_t count);

/* Purge: under the lock, for each run of unpinned, not yet purged pages,
 * mark the run purged, then punch its hole in data_fd. Returns the pages
 * purged. A region without PROT_WRITE is write-sealed, and the kernel
 * refuses to punch holes in it: it purges nothing. */
int amc_purge(const struct amc_ref *r, int data_fd);

/* Drop protection bits (under the lock); -EINVAL if prot adds a bit.
 * Dropping PROT_WRITE first seals data_fd with F_SEAL_FUTURE_WRITE. */
int amc_set_prot(const struct amc_ref *r, int data_fd, int prot);

/* Lock/unlock, recovering the lock of a holder that died inside it. */
int amc_lock(const struct amc_ref *r);
void amc_unlock(const struct amc_ref *r);

/* Counters and page map, read without the lock. */
void amc_stats(const struct amc_ref *r, struct ashmem_stats *st);
void amc_page_map(const struct amc_ref *r, char *map, size_t n);

#endif
