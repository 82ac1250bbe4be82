/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/), ashmemctl and the tests. Not installed, not
 * exported from libashmem.so.
 *
 * The page size, and the rule for a page range of a region.
 */
#ifndef ASHMEM_LIB_PAGE_H
#define ASHMEM_LIB_PAGE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* The page size (sysconf(_SC_PAGESIZE), read once; 4096 if that fails). */
size_t am_page_size(void);

/* log2 of am_page_size(). */
unsigned am_page_shift(void);

/* The pages of the range [offset, offset + len) of a region whose
 * page-rounded size is end bytes, pages being 1 << shift bytes: offset and
 * len must be page-aligned, len 0 means up to end; a range past end (or
 * one whose end overflows) is -EINVAL. Sets *first and *count (pages) and
 * returns 0. Inline: the pin fast path calls it. */
static inline int am_page_range(uint64_t offset, uint64_t len, uint64_t end,
                                unsigned shift, uint64_t *first, uint64_t *count)
{
        if (((offset | len) & (((uint64_t)1 << shift) - 1)) || offset > end)
                return -EINVAL;
        if (len == 0)
                len = end - offset;
        else if (len > end - offset)    /* past the end, or overflow */
                return -EINVAL;
        *first = offset >> shift;
        *count = len >> shift;
        return 0;
}

#endif
