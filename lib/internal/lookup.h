/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files and the tests. Not
 * installed, not exported from libashmem.so.
 *
 * The implicit lookup (lib/broker-lookup.c), which the library hands down
 * to the drivers (lib/region.c): an am_lookup_fn of drivers/driver.h.
 */
#ifndef ASHMEM_LIB_LOOKUP_H
#define ASHMEM_LIB_LOOKUP_H

#include <sys/stat.h>

/* Ask a running broker for the control block of region fd (whose fstat()
 * is st), which this process has no pin state for, and attach it; create:
 * let the broker make the block if the region has none yet (fd
 * read-write). 0 if attached, 1 if the broker holds the region without a
 * block (every page pinned), else -ENOENT (no broker, it does not hold the
 * region, or the lookup is off). Never starts a broker; misses are
 * remembered for a second. */
int am_lookup_control(int fd, const struct stat *st, int create);

/* Remember the socket path of a broker that handed this process a region
 * descriptor without its control block: the implicit lookup asks it first
 * (the last few such brokers are kept). seen: what the last call for this
 * path returned (0: none); while nothing else was remembered since, the
 * call returns it at once. Returns what to pass next time. */
unsigned long am_lookup_remember(const char *path, unsigned long seen);

/* One lookup on connection b: the same answers (ashmem_broker_lookup is
 * this with create set). */
struct ashmem_broker;
int am_broker_lookup(struct ashmem_broker *b, int fd, int create);

#endif
