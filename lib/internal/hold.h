/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/) and the tests. Not installed, not exported from libashmem.so.
 *
 * For the broker daemon: a hold on the pin state of a region it keeps, so
 * that the region record (protection, page counts) is read straight from
 * the shared control block, without a system call per request. A held
 * entry of the process table is never collected (see drivers/memfd).
 */
#ifndef ASHMEM_LIB_HOLD_H
#define ASHMEM_LIB_HOLD_H

#include <stddef.h>

struct ashmem_stats;
struct am_hold;

/* Hold the pin state of region fd. -ENOENT if this process has none (a
 * memfd shared without its control block), -errno otherwise. */
int am_hold_new(int fd, struct am_hold **ret);
/* The counters (as ashmem_get_stats()) and the protection mask. */
void am_hold_stats(const struct am_hold *h, struct ashmem_stats *st, int *prot);
/* Of pages [first, first + n) (clamped to the region's): how many are
 * pinned (c[0]), unpinned (c[1]), and purged or being purged (c[2]), as
 * ashmem_get_page_map() would show them, without a map; the protection
 * mask returned. The cost is the range's, not the region's. */
int am_hold_counts(const struct am_hold *h, size_t first, size_t n, size_t c[3]);
/* Pages a dead purger left half purged (state purging). */
size_t am_hold_purging(const struct am_hold *h);
void am_hold_free(struct am_hold *h);

#endif
