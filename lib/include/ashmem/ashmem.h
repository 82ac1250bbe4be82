/* SPDX-License-Identifier: MIT */
/*
 * <ashmem/ashmem.h> - the native libashmem API.
 *
 * Convention (like systemd's sd-* headers): every function returns >= 0 on
 * success or a negative errno value on failure, and leaves errno untouched.
 * Results come back through out-parameters. The library never prints and
 * never exits. Every descriptor it creates is close-on-exec.
 */
#ifndef ASHMEM_ASHMEM_H
#define ASHMEM_ASHMEM_H

#include <stddef.h>
#include <ashmem/cutils.h>
#include <ashmem/heap.h>
#include <ashmem/broker.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest region size the library creates: 4 TiB (1 GiB in a 32-bit
 * process). */
#define ASHMEM_SIZE_MAX ((size_t)1 << (sizeof(size_t) > 4 ? 42 : 30))

/* Copy the region's name (NUL-terminated, "" for none) into buf.
 * -ERANGE if buflen is too small (ASHMEM_NAME_LEN always suffices). */
int ashmem_get_name(int fd, char *buf, size_t buflen);

/* The region's protection mask (PROT_READ|PROT_WRITE|PROT_EXEC bits). */
int ashmem_get_prot(int fd);

/* The region's size in bytes, as given at creation. */
int ashmem_get_size(int fd, size_t *size);

/* ASHMEM_IS_PINNED if every page of [offset, offset+len) is pinned, else
 * ASHMEM_IS_UNPINNED. Same range rules as ashmem_pin_region(). */
int ashmem_pin_status(int fd, size_t offset, size_t len);

/* Reclaim every unpinned page now (hole punch). Returns the pages purged. */
int ashmem_purge(int fd);

/* The driver new regions are created with, from $ASHMEM_DRIVER: "memfd"
 * (unset, "auto" or "memfd"), or "none" when $ASHMEM_DRIVER names a driver
 * this build lacks; creation then fails with ENODEV ("ashmem") or EINVAL. */
const char *ashmem_driver_name(void);

/* Map [offset, offset+len) of the region (len 0 = the whole region) with
 * MAP_SHARED. prot must be within the region's protection mask (else
 * -EPERM); a writable mapping of a region whose write bit was dropped, or of
 * a read-only descriptor, is refused by the kernel. */
int ashmem_map(int fd, int prot, size_t offset, size_t len, void **ret);

/* Unmap what ashmem_map() mapped (addr and the len given or the size). */
int ashmem_unmap(void *addr, size_t len);

/*
 * Shared pin state. A region created by libashmem carries a small control
 * descriptor that holds its pin state; every process holding it must see
 * the same control block. A process that receives only the region's
 * descriptor (over a socket) can attach the control descriptor it was sent
 * alongside, or look it up through the broker.
 */

/* A new close-on-exec descriptor of the region's control block; -ENOENT if
 * this process has none for the region. */
int ashmem_get_control(int fd, int *ret_control_fd);

/* Attach the control descriptor control_fd to the region fd. The control
 * block must belong to this region (-EINVAL otherwise). A read-only control
 * descriptor gives read-only pin state: pin, unpin and purge fail with
 * -EPERM. The library keeps its own duplicate; the caller still owns
 * control_fd. */
int ashmem_set_control(int fd, int control_fd);

/* The library keeps one control descriptor and one small mapping per region
 * this process has used. Drop those of regions the process no longer refers
 * to (no descriptor open, no mapping, no heap). This also happens by itself
 * whenever the number kept has doubled, so stale ones never outnumber live
 * ones. Returns how many were dropped. */
int ashmem_collect(void);

/* Counters kept in the control block. */
typedef struct ashmem_stats {
        size_t size;            /* bytes */
        size_t pages;           /* page-rounded size in pages */
        size_t pinned;          /* pages pinned */
        size_t unpinned;        /* pages unpinned, not purged */
        size_t purged;          /* pages purged (and still unpinned) */
        long long unpinned_since_ns;  /* CLOCK_MONOTONIC_COARSE time since which the
                                         region has had unpinned pages, 0 if
                                         none */
        unsigned long long purges;     /* purge calls that reclaimed pages */
        unsigned long long pages_reclaimed; /* pages reclaimed, in total */
        int shared_state;       /* 1 if pin state is shared (control block),
                                   0 if this process has none */
        int writable_state;     /* 1 if this process may pin/unpin/purge */
} ashmem_stats;

int ashmem_get_stats(int fd, ashmem_stats *ret);

/* Write the pin state of each page to map[0..pages-1]: 'P' pinned,
 * 'u' unpinned, 'x' purged. */
int ashmem_get_page_map(int fd, char *map, size_t pages);

#ifdef __cplusplus
}
#endif

#endif /* ASHMEM_ASHMEM_H */
