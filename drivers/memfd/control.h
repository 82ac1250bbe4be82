/* SPDX-License-Identifier: MIT */
/*
 * The memfd driver's control block: a small memfd beside each region's data
 * memfd, mapped MAP_SHARED by every process that holds the region, so that
 * pin state is one thing for all of them. docs/control-block.md describes
 * the format and the protocol.
 *
 * Layout (version 3): the header below (plain fixed-width integers at fixed
 * offsets, the same for 32-bit and 64-bit processes), then `words` 64-bit
 * words of page state, 2 bits a page, 16 pages a word (page i of word w in
 * bits 2i and 2i + 1) and a pass tag in the high half, then one summary
 * word per 8 groups of 16 words. A group's summary field holds its base
 * (which of 00 and 01 means pinned), whether it is uniform (every page in
 * one state, the words not consulted) and whether a pass that may make it
 * uniform is under way:
 *   00/01 pinned or unpinned, relative to the base   10 purging   11 purged
 * A page's whole state changes with one compare-and-swap of its word, a
 * uniform group's with one of its summary word: pin, unpin and status take
 * no lock. A purge holds the purge lock (a record
 * lock on byte 0 of the control memfd, see amc_purge()) while it moves
 * pages unpinned -> purging -> purged; the kernel drops that lock when its
 * holder dies, which tells a pinner that meets purging pages whether to
 * wait or to finish the purge itself.
 *
 * Every process treats the block as hostile input: the geometry is copied
 * into a private struct amc_ref once, at attach, and never read back.
 */
#ifndef ASHMEM_MEMFD_CONTROL_H
#define ASHMEM_MEMFD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct ashmem_stats;

#define AMC_MAGIC    0x33485341u  /* "ASH3" little-endian */
#define AMC_MAGIC_V2 0x32485341u  /* "ASH2": version 2, refused (EPROTO) */
#define AMC_MAGIC_V1 0x43485341u  /* "ASHC": version 1, refused (EPROTO) */
#define AMC_VERSION  3u

/* Geometry of the state words and their summary. A state word holds 16
 * pages (2 bits each, the low 32 bits) and a 32-bit pass tag (the high 32
 * bits); a group is 16 state words (256 pages); a summary word holds the
 * fields of 8 groups (4 bits each, the low 32 bits) and a 32-bit
 * generation (the high 32 bits). */
#define AMC_WORD_PAGES   16u
#define AMC_GROUP_WORDS  16u
#define AMC_GROUP_PAGES  (AMC_WORD_PAGES * AMC_GROUP_WORDS)
#define AMC_SUM_GROUPS   8u

#define AMC_PINNED   0u
#define AMC_UNPINNED 1u
#define AMC_PURGING  2u
#define AMC_PURGED   3u

/* How long a pin waits for pages another live process is purging before
 * it fails with ETIMEDOUT (a purger holds pages purging across one punch
 * of at most AMC_CHUNK_WORDS words). */
#define AMC_WAIT_NS     (500 * 1000000ll)
/* This thread's bound on the retries of pin, unpin and purge, in place of
 * AMC_WAIT_NS (0: AMC_WAIT_NS again). The broker's purger takes a short
 * one: a region whose block a writer keeps changing is skipped, not
 * waited on. */
void amc_set_thread_bound(int64_t ns);
/* Words a purge moves to purging at once, then punches (8,192 pages:
 * 32 MiB with 4 KiB pages, a few milliseconds of punching). */
#define AMC_CHUNK_WORDS 512u

struct amc_block {
        uint32_t magic;            /*   0 */
        uint32_t version;          /*   4 */
        uint32_t header_size;      /*   8: offset of the state words */
        uint32_t page_size;        /*  12 */
        uint64_t size;             /*  16: bytes, as created */
        uint64_t pages;            /*  24: page-rounded size in pages */
        uint64_t words;            /*  32: state words, ceil(pages / 16) */
        uint64_t data_dev;         /*  40: identity of the data memfd */
        uint64_t data_ino;         /*  48 */
        uint32_t prot;             /*  56: protection mask, only loses bits */
        uint32_t reserved0;        /*  60 */
        char name[256];            /*  64: NUL-terminated, "" for none */
        /* 320, a cache line of its own: written by unpin at most once a
         * tick (AMC_STAMP_TICK_NS) */
        int64_t unpinned_ns;       /* CLOCK_MONOTONIC_COARSE of a recent unpin */
        uint8_t pad0[56];
        /* 384: written by purges only */
        uint64_t purges;           /* purge calls that reclaimed something */
        uint64_t pages_reclaimed;  /* total pages reclaimed */
        uint64_t recoveries;       /* purges a pinner finished for a dead purger */
        uint8_t pad1[40];
        /* 448: the state words, then (from the next multiple of 64
         * bytes) the summary words: see amc_block_size() */
};

#define AMC_HEADER_SIZE 448u
#define AMC_STAMP_TICK_NS (8 * 1000000ll)

_Static_assert(sizeof(struct amc_block) == AMC_HEADER_SIZE, "control block header size");
_Static_assert(offsetof(struct amc_block, size) == 16, "amc size");
_Static_assert(offsetof(struct amc_block, words) == 32, "amc words");
_Static_assert(offsetof(struct amc_block, data_ino) == 48, "amc data_ino");
_Static_assert(offsetof(struct amc_block, prot) == 56, "amc prot");
_Static_assert(offsetof(struct amc_block, name) == 64, "amc name");
_Static_assert(offsetof(struct amc_block, unpinned_ns) == 320, "amc unpinned_ns");
_Static_assert(offsetof(struct amc_block, purges) == 384, "amc purges");
_Static_assert(offsetof(struct amc_block, recoveries) == 400, "amc recoveries");
/* a word's pages fill its low half, a summary word's fields theirs */
_Static_assert(AMC_WORD_PAGES * 2 == 32, "amc pages per state word");
_Static_assert(AMC_SUM_GROUPS * 4 == 32, "amc groups per summary word");
_Static_assert(AMC_GROUP_PAGES == 256, "amc pages per group");

/* A process's view of one block: the geometry is copied out of the shared
 * header once, when the block is attached, and every bound is checked
 * against these private copies, never against shared memory. */
struct amc_ref {
        struct amc_block *b;
        uint64_t *state;           /* the state words */
        uint64_t *sum;             /* the summary words */
        uint64_t groups;           /* groups: ceil(words / AMC_GROUP_WORDS) */
        uint64_t sums;             /* summary words: ceil(groups / AMC_SUM_GROUPS) */
        uint64_t size;
        uint64_t pages;
        uint64_t words;
        uint64_t tail;             /* low-bit mask of the last word's pages */
        size_t map_len;
        uint32_t page_size;
        uint32_t page_shift;       /* log2(page_size) */
        int writable;              /* mapped read-write */
        uint64_t data_dev, data_ino; /* the data memfd's identity, checked
                                        when the block was attached */
        int ctl_fd;                /* the control memfd (liveness checks) */
        uint64_t serial;           /* this process's number for the mapping */
};

/* Bytes of a control memfd for a region of `pages` pages. */
size_t amc_block_size(uint64_t pages);

/* Initialise a fresh (zeroed) block. */
void amc_init(struct amc_block *b, const char *name, uint64_t size,
              uint32_t page_size, uint64_t dev, uint64_t ino, uint32_t prot);

/* Check a mapped block of map_len bytes and fill ref from it: -EPROTO for
 * a version 1 block, -EINVAL if it is no control block of this version
 * and a sane geometry with this process's page size. ctl_fd is the control
 * memfd it was mapped from. */
int amc_attach(struct amc_ref *ref, void *map, size_t map_len, int writable,
               int ctl_fd);

/* Turn (offset, len) into a page range [*first, *first + *count); -EINVAL
 * for unaligned, past-the-end or overflowing ranges. len 0 = to the end. */
int amc_range(const struct amc_ref *r, size_t offset, size_t len,
              uint64_t *first, uint64_t *count);

/* State operations on a page range checked with amc_range. pin, unpin and
 * purge need a writable ref (-EPERM otherwise). pin may have to finish a
 * dead purger's punch: data_fd is the region's data memfd for that, or -1
 * (the pages are then marked purged without a punch: WAS_PURGED over
 * contents that may still be there). pin fails with -ETIMEDOUT when pages
 * of the range stay purging for AMC_WAIT_NS while their purger looks alive
 * (its lock, or another lock on the block, is present); the pages of the
 * range it pinned before then stay pinned (pins are not counted: undoing
 * them could unpin another process's pin). pin, unpin and purge also fail
 * with -ETIMEDOUT when another holder's writes make their compare-and-swap
 * retries go on for more than AMC_WAIT_NS (only a writer that scribbles
 * the block can): what they changed by then stays changed, and a purge
 * returns the pages it purged if any. One deadline a call covers both. */
int amc_pin(const struct amc_ref *r, uint64_t first, uint64_t count, int data_fd);
int amc_unpin(const struct amc_ref *r, uint64_t first, uint64_t count);
int amc_status(const struct amc_ref *r, uint64_t first, uint64_t count);

/* Purge: take the purge lock (without waiting: 0 pages if another process
 * is purging the region), then chunk by chunk move unpinned pages to
 * purging, punch them in data_fd, mark them purged. Returns the pages
 * purged. A region without PROT_WRITE, or whose data memfd is write-sealed,
 * purges nothing (the kernel refuses to punch holes in it). */
int amc_purge(const struct amc_ref *r, int data_fd);

/* Drop protection bits; -EINVAL if prot adds a bit. Dropping PROT_WRITE
 * first seals data_fd with F_SEAL_FUTURE_WRITE (-EPERM if a holder sealed
 * the seals). */
int amc_set_prot(const struct amc_ref *r, int data_fd, int prot);

/* The stored protection mask (only PROT_READ, PROT_WRITE, PROT_EXEC). */
int amc_prot(const struct amc_ref *r);

/* The purge lock, exposed for tests and for holders that want to keep
 * purges off a region while they inspect it: 0 and *lk (pass it to
 * amc_purge_unlock), -EBUSY if another owner holds it, or -errno. */
struct amc_plock { int fd; };
int amc_purge_lock(const struct amc_ref *r, struct amc_plock *lk);
void amc_purge_unlock(const struct amc_ref *r, struct amc_plock *lk);

/* Counters (derived from the state words) and page map, lock-free. */
void amc_stats(const struct amc_ref *r, struct ashmem_stats *st);
void amc_page_map(const struct amc_ref *r, char *map, size_t n);
/* Of pages [first, first + n) (clamped to the region's): pinned in c[0],
 * unpinned in c[1], purged or being purged in c[2]. */
void amc_range_counts(const struct amc_ref *r, uint64_t first, uint64_t n, size_t c[3]);
/* Pages in state purging (10), which amc_stats() counts as purged. */
size_t amc_purging(const struct amc_ref *r);

#endif
