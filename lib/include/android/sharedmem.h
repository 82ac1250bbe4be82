/* SPDX-License-Identifier: MIT */
/*
 * <android/sharedmem.h> - the Android NDK's shared memory calls, on
 * libashmem (link with `pkg-config --libs libashmem`).
 *
 * Convention, as the NDK documents it: -1 with errno set on failure (and
 * ASharedMemory_create() returns -EINVAL for a size of 0).
 */
#ifndef ANDROID_SHARED_MEMORY_H
#define ANDROID_SHARED_MEMORY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A new region of size bytes (name optional): its descriptor, which may
 * be mapped with PROT_READ | PROT_WRITE | PROT_EXEC until the protection
 * is restricted. -1 and errno on failure; -EINVAL for size 0. */
int ASharedMemory_create(const char *name, size_t size);

/* The region's size in bytes; 0 if fd is not a region. */
size_t ASharedMemory_getSize(int fd);

/* Restrict the region's protection to prot (PROT_READ, PROT_WRITE,
 * PROT_EXEC or'ed) for every holder; bits can be removed, never added
 * back. 0, or -1 and errno (EINVAL for a bit the region no longer has). */
int ASharedMemory_setProt(int fd, int prot);

/* The region's protection (this library's addition to the NDK's set):
 * the PROT_* bits, or -1 and errno (ENOTTY if fd is not a region). */
int ASharedMemory_getProt(int fd);

#ifdef __cplusplus
}
#endif

#endif /* ANDROID_SHARED_MEMORY_H */
