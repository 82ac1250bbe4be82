/* SPDX-License-Identifier: MIT */
/*
 * The driver interface: every way of providing ashmem regions implements one
 * ops table. Drivers never print; they return a negative errno on failure.
 *
 * Every operation on an existing region gets the descriptor and its fstat()
 * result, taken once by the caller: that one system call is the identity
 * check of the fast paths.
 *
 * Drivers know nothing above them: what they need of the library (the
 * broker lookup of a control block) is handed down to them through
 * set_lookup() before their first use. They may use the leaf helpers of
 * lib/internal/ that depend on nothing (clock.h, page.h, idtable.h).
 */
#ifndef ASHMEM_DRIVER_H
#define ASHMEM_DRIVER_H

#include <stddef.h>
#include <sys/stat.h>

struct ashmem_stats;

/* A hold on a region's pin state: what a driver needs to pin, unpin and
 * read the state of a region without a system call or a lookup, kept
 * alive until released. Each driver defines it (opaque above). */
struct am_pinref;

/* The library's lookup, for a driver that finds no pin state for a region
 * descriptor (fd, whose fstat() is st): ask a running broker for the
 * region's control block and attach it; with create, a broker that made
 * the region and has no block for it yet makes it (for a read-write fd).
 * 0 if attached, 1 if the broker holds the region and it has no block (so
 * every page is pinned), else -ENOENT (no broker, it does not hold the
 * region, or the lookup is off). Never starts a broker; misses are
 * remembered for a second. */
typedef int (*am_lookup_fn)(int fd, const struct stat *st, int create);

struct am_driver {
        const char *name;
        /* 0 if the driver can create regions on this machine. */
        int (*probe)(void);
        /* 1 if the descriptor with this stat is one of the driver's. */
        int (*owns)(int fd, const struct stat *st);
        /* A new region's descriptor (close-on-exec). */
        int (*create)(const char *name, size_t size);
        int (*get_name)(int fd, const struct stat *st, char *buf, size_t len);
        int (*get_size)(int fd, const struct stat *st, size_t *size);
        int (*get_prot)(int fd, const struct stat *st);
        int (*set_prot)(int fd, const struct stat *st, int prot);
        int (*pin)(int fd, const struct stat *st, size_t off, size_t len);
        int (*unpin)(int fd, const struct stat *st, size_t off, size_t len);
        int (*pin_status)(int fd, const struct stat *st, size_t off, size_t len);
        int (*purge)(int fd, const struct stat *st);
        int (*map)(int fd, const struct stat *st, int prot, size_t off,
                   size_t len, void **ret);
        int (*get_stats)(int fd, const struct stat *st, struct ashmem_stats *ret);
        int (*get_page_map)(int fd, const struct stat *st, char *map, size_t n);
        int (*get_control)(int fd, const struct stat *st, int *ret);
        int (*set_control)(int fd, const struct stat *st, int control_fd);

        /* Pin state held for the fast paths (the heaps, the broker's
         * records); NULL in a driver without pin state of its own. Hold
         * region st's: 0 and *ret, -ENOENT if this process has none, or
         * -ENOMEM. release() lets it go. */
        int (*hold)(const struct stat *st, struct am_pinref **ret);
        void (*release)(const struct stat *st, struct am_pinref *ref);
        /* pin, unpin and pin_status of a held region: the rules and
         * results of the operations above */
        /* data_fd: the region's descriptor, to punch pages a dead purger
         * left (-1: none; the pages are then marked purged unpunched) */
        int (*ref_pin)(const struct am_pinref *ref, size_t off, size_t len, int data_fd);
        int (*ref_unpin)(const struct am_pinref *ref, size_t off, size_t len);
        int (*ref_pin_status)(const struct am_pinref *ref, size_t off, size_t len);
        /* The counters (as get_stats) and the protection mask; of pages
         * [first, first + n) (clamped to the region's), how many are
         * pinned, unpinned, and purged or being purged (c[0..2]), and the
         * protection mask returned. */
        void (*ref_stats)(const struct am_pinref *ref, struct ashmem_stats *st,
                          int *prot);
        int (*ref_counts)(const struct am_pinref *ref, size_t first, size_t n,
                          size_t c[3]);
        /* Pages some purge left half done (moved to purging and never
         * finished: its purger died); NULL: none ever are. */
        size_t (*ref_purging)(const struct am_pinref *ref);

        /* Drop what the driver keeps for regions nothing in this process
         * refers to any more: the number dropped, or -errno. NULL: none. */
        int (*collect)(void);
        /* Forget what the driver keeps for region st now, without a scan
         * (the caller closed and unmapped it): 1 if dropped, 0 if nothing
         * was kept or it is held. NULL: none. */
        int (*forget)(const struct stat *st);
        /* on: the process forgets regions itself (forget); the driver
         * never collects on its own. NULL: nothing to turn off. */
        void (*set_manual)(int on);
        /* 1 if this process keeps the pin state of region st (its
         * st_dev, st_ino and st_size, as the broker names them) with a
         * control block, writable if asked; else 0. No system call: for a
         * receiver that knows the identity of what it received. NULL:
         * never. */
        int (*has_control)(const struct stat *st, int writable);
        /* Take the library's lookup (NULL: none). NULL: not wanted. */
        void (*set_lookup)(am_lookup_fn fn);
};

extern const struct am_driver am_driver_memfd;

/* The driver for new regions (ASHMEM_DRIVER, default auto); NULL when
 * ASHMEM_DRIVER names a driver this build lacks. */
const struct am_driver *am_driver_default(void);
/* Create a region with the default driver: a descriptor or -errno
 * (-ENODEV/-EINVAL when ASHMEM_DRIVER names no driver of this build). */
int am_create(const char *name, size_t size);
/* The driver owning fd; fills *st. -EBADF for a bad fd, -ENOTTY for a
 * descriptor no driver owns. */
int am_driver_of(int fd, struct stat *st, const struct am_driver **ret);

#endif
