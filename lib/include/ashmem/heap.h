/* SPDX-License-Identifier: MIT */
/*
 * <ashmem/heap.h> - heaps and slices: a region and its one mapping in this
 * process (a heap), and an offset+length view of a heap (a slice). They are
 * C's counterpart of Android's MemoryHeapBase and MemoryBase.
 *
 * Convention (as in <ashmem/ashmem.h>): functions that can fail return >= 0
 * on success or a negative errno value, and leave errno untouched;
 * constructors return the new object through **ret; _unref() returns NULL so
 * that `h = ashmem_heap_unref(h);` clears the pointer. Objects are reference
 * counted and may be used from several threads at once.
 *
 * The heap cache. Every heap of the same region in this process (the same
 * memfd, identified by device and inode, however many descriptors refer to
 * it) shares one mapping and so one base address; the cache counts the heaps
 * of each mapping, and the mapping goes away when the last of them is
 * released. The cache keeps one mapping per region *and access mode*:
 *
 *   - a writable mapping, shared by the heaps that may write: the creator's
 *     heap (also with ASHMEM_HEAP_READ_ONLY, see below), and adopted heaps
 *     without ASHMEM_HEAP_READ_ONLY whose descriptor is open read-write and
 *     whose region still has PROT_WRITE in its protection mask;
 *   - a read-only mapping (PROT_READ), shared by the adopted heaps with
 *     ASHMEM_HEAP_READ_ONLY.
 *
 * So a read-only heap is never handed a writable base: a write through it
 * faults (SIGSEGV), even when a writable heap of the same region exists in
 * the same process (it then has a different base address). A heap is only
 * given the writable mapping when it could have mapped the region writably
 * itself: adopting without ASHMEM_HEAP_READ_ONLY fails with -EACCES for a
 * read-only descriptor and with -EPERM for a region whose write bit was
 * dropped, whether or not a writable mapping is cached already.
 *
 * Pinning through a heap or a slice needs no system call: the heap finds the
 * region's shared pin state once, when it is made, and then works on it
 * directly. The state is the one the descriptor calls (ashmem_pin_region(),
 * ashmem_pin_status(), ashmem_purge()) use, shared with every process that
 * holds the region. Range rules, results and errors are theirs: a region
 * with no pin state (a memfd libashmem did not make, with no control
 * descriptor attached) always reports pinned and never purged, and a heap of
 * a read-only holder (read-only descriptor or control) cannot pin or unpin
 * (-EPERM). A control descriptor attached after the heap was made
 * (ashmem_set_control()) is picked up by the next pin call.
 */
#ifndef ASHMEM_HEAP_H
#define ASHMEM_HEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ashmem_heap ashmem_heap;
typedef struct ashmem_slice ashmem_slice;

/*
 * ASHMEM_HEAP_READ_ONLY: for ashmem_heap_new(), the creator maps the region
 * read-write, then drops PROT_WRITE from the region's protection mask, so
 * that every other holder (other processes, and later heaps in this one) can
 * only map it read-only; the creator's heap keeps writing (like
 * MemoryHeapBase's READ_ONLY). For ashmem_heap_adopt(), the heap maps the
 * region read-only.
 *
 * ASHMEM_HEAP_DONT_MAP_LOCALLY: no mapping in this process; the base is
 * NULL. The heap still owns a descriptor, can be pinned and sliced (the
 * slices' pointers are NULL too), for a process that only hands regions on.
 */
#define ASHMEM_HEAP_READ_ONLY          0x1u
#define ASHMEM_HEAP_DONT_MAP_LOCALLY   0x2u
/*
 * ASHMEM_HEAP_NO_CACHING: the heap's mapping is its own, not shared through
 * the heap cache with other heaps of the region (its base differs from
 * theirs); unmapped when the heap goes. (libbinder's NO_CACHING opens a
 * device O_SYNC; a memfd's pages are ordinary memory, so the flag keeps
 * the heap out of the cache instead.)
 */
#define ASHMEM_HEAP_NO_CACHING         0x4u

/* Create a region of size bytes (> 0) named name (NULL: none) and a heap
 * over it. The heap owns the region's descriptor. */
int ashmem_heap_new(const char *name, size_t size, unsigned flags,
                    ashmem_heap **ret);

/* A heap over the existing region fd. The heap keeps its own close-on-exec
 * duplicate of fd; the caller still owns fd. -EBADF for a bad descriptor,
 * -ENOTTY for one that is no region (as the descriptor calls say);
 * -EACCES / -EPERM: see the heap cache above. */
int ashmem_heap_adopt(int fd, unsigned flags, ashmem_heap **ret);

/* A heap over [offset, offset + size) of the region fd, like libbinder's
 * MemoryHeapBase(fd, size, flags, offset): offset page-aligned, size 0 =
 * to the end; -EINVAL if the range is not inside the region. The heap's
 * size, base, slices and pin ranges are the view's (pin offsets count from
 * the heap's start); a view that is not the whole region has a mapping of
 * its own, as with ASHMEM_HEAP_NO_CACHING. ashmem_heap_adopt(fd, flags,
 * ret) is ashmem_heap_adopt_at(fd, 0, 0, flags, ret). */
int ashmem_heap_adopt_at(int fd, size_t size, size_t offset, unsigned flags,
                         ashmem_heap **ret);

ashmem_heap *ashmem_heap_ref(ashmem_heap *heap);
/* Drop a reference; at zero, leave the cache (unmapping if this was the
 * last heap of the mapping), close the descriptor. Returns NULL. */
ashmem_heap *ashmem_heap_unref(ashmem_heap *heap);

/* The heap's own descriptor (valid while the heap lives; do not close it),
 * or -EINVAL for NULL. */
int ashmem_heap_fd(const ashmem_heap *heap);
/* The mapping's base address; NULL without a local mapping. */
void *ashmem_heap_base(const ashmem_heap *heap);
/* The region's size in bytes (as created, not page-rounded). */
size_t ashmem_heap_size(const ashmem_heap *heap);
/* The heap's offset in its region (0 but for ashmem_heap_adopt_at()). */
size_t ashmem_heap_offset(const ashmem_heap *heap);
/* The flags the heap was made with; an adopted heap also has
 * ASHMEM_HEAP_READ_ONLY when the region is read-only for it (a read-only
 * descriptor, or PROT_WRITE dropped from the region's mask), however it was
 * adopted: what a sender made read-only is visible to the receiver. */
unsigned ashmem_heap_flags(const ashmem_heap *heap);
/* Copy the region's name (NUL-terminated, "" for none) into buf; returns
 * its length, -ERANGE if buflen is too small (ASHMEM_NAME_LEN suffices). */
int ashmem_heap_name(const ashmem_heap *heap, char *buf, size_t buflen);
/* How many heaps in this process share this heap's mapping (this one
 * included), or 0 for a heap without a local mapping. */
int ashmem_heap_mapping_users(const ashmem_heap *heap);

/* Pin state of [offset, offset+len), with the rules of ashmem_pin_region()
 * (page-aligned, len 0 = to the end): pin returns ASHMEM_WAS_PURGED or
 * ASHMEM_NOT_PURGED, unpin 0, status ASHMEM_IS_PINNED or
 * ASHMEM_IS_UNPINNED. No system call. */
int ashmem_heap_pin(ashmem_heap *heap, size_t offset, size_t len);
int ashmem_heap_unpin(ashmem_heap *heap, size_t offset, size_t len);
int ashmem_heap_pin_status(ashmem_heap *heap, size_t offset, size_t len);

/* A slice of length bytes (> 0) at offset in heap: -EINVAL unless
 * offset + length <= the heap's size (overflow-safe). The slice holds a
 * reference on its heap; offset need not be page-aligned. */
int ashmem_slice_new(ashmem_heap *heap, size_t offset, size_t length,
                     ashmem_slice **ret);
ashmem_slice *ashmem_slice_ref(ashmem_slice *slice);
ashmem_slice *ashmem_slice_unref(ashmem_slice *slice);

/* heap base + offset; NULL if the heap has no local mapping. */
void *ashmem_slice_ptr(const ashmem_slice *slice);
size_t ashmem_slice_size(const ashmem_slice *slice);
size_t ashmem_slice_offset(const ashmem_slice *slice);
/* The slice's heap (borrowed: take a reference to keep it longer). */
ashmem_heap *ashmem_slice_heap(const ashmem_slice *slice);

/* Pin state of every page the slice touches (from the page holding its
 * first byte to the page holding its last): the same results as the heap
 * calls. Pinning is per page: unpinning a slice unpins whole pages, which
 * may hold bytes of neighbouring slices. */
int ashmem_slice_pin(ashmem_slice *slice);
int ashmem_slice_unpin(ashmem_slice *slice);
int ashmem_slice_pin_status(ashmem_slice *slice);

#ifdef __cplusplus
}
#endif

#endif /* ASHMEM_HEAP_H */
