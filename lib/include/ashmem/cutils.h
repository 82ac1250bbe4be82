/* SPDX-License-Identifier: MIT */
/*
 * <ashmem/cutils.h> - the classic ashmem API, source-compatible with
 * Android's libcutils.
 *
 * Convention: a result >= 0 on success, or -1 with errno set.
 * Every descriptor returned is close-on-exec.
 */
#ifndef ASHMEM_CUTILS_H
#define ASHMEM_CUTILS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASHMEM_NAME_LEN    256

#define ASHMEM_NOT_PURGED  0
#define ASHMEM_WAS_PURGED  1

#define ASHMEM_IS_UNPINNED 0
#define ASHMEM_IS_PINNED   1

/* 1 if fd is an ashmem region (a memfd or a /dev/ashmem descriptor), else 0. */
int ashmem_valid(int fd);

/* Create a region of size bytes (> 0, fixed for life); name may be NULL.
 * Returns the region's descriptor. */
int ashmem_create_region(const char *name, size_t size);

/* Drop protection bits (PROT_READ, PROT_WRITE, PROT_EXEC) for every holder.
 * Bits can only be removed: asking for a bit the region lacks is EINVAL. */
int ashmem_set_prot_region(int fd, int prot);

/* Pin pages [offset, offset+len) (page-aligned; len 0 = to the end).
 * Returns ASHMEM_WAS_PURGED if any page was purged while unpinned, else
 * ASHMEM_NOT_PURGED. */
int ashmem_pin_region(int fd, size_t offset, size_t len);

/* Mark pages [offset, offset+len) reclaimable. Returns 0. */
int ashmem_unpin_region(int fd, size_t offset, size_t len);

/* The region's size in bytes as given at creation (EOVERFLOW past INT_MAX). */
int ashmem_get_size_region(int fd);

#ifdef __cplusplus
}
#endif

#endif /* ASHMEM_CUTILS_H */
