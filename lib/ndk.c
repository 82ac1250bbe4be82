/* SPDX-License-Identifier: MIT */
/*
 * <android/sharedmem.h>: the NDK's shared memory calls on the libcutils
 * surface and the native API.
 */
#include <errno.h>

#include "android/sharedmem.h"
#include "ashmem/ashmem.h"

int ASharedMemory_create(const char *name, size_t size)
{
        if (size == 0)
                return -EINVAL;         /* as documented: not -1 */
        return ashmem_create_region(name, size);
}

size_t ASharedMemory_getSize(int fd)
{
        size_t size;
        int saved = errno;

        /* 0 for anything that is no region, an unsealed memfd included */
        if (!ashmem_valid(fd) || ashmem_get_size(fd, &size) < 0)
                size = 0;
        errno = saved;
        return size;
}

int ASharedMemory_setProt(int fd, int prot)
{
        return ashmem_set_prot_region(fd, prot);
}

int ASharedMemory_getProt(int fd)
{
        int r = ashmem_get_prot(fd);

        if (r < 0) {
                errno = -r;
                return -1;
        }
        return r;
}
