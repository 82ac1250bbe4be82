/* SPDX-License-Identifier: MIT */
/*
 * The ashmem kernel driver's user interface: the ioctl numbers and the pin
 * argument, as Android's <linux/ashmem.h> defines them. The preload library
 * serves these; the tests that drive /dev/ashmem through it use nothing
 * else.
 */
#ifndef ASHMEM_PRELOAD_UAPI_H
#define ASHMEM_PRELOAD_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>

#define ASHMEM_NAME_LEN 256
#define ASHMEM_NAME_DEF "dev/ashmem"

#define ASHMEM_NOT_PURGED 0
#define ASHMEM_WAS_PURGED 1
#define ASHMEM_IS_UNPINNED 0
#define ASHMEM_IS_PINNED 1

struct ashmem_pin {
        uint32_t offset;        /* page-aligned */
        uint32_t len;           /* page-aligned; 0 = to the end */
};

#define __ASHMEMIOC 0x77

#define ASHMEM_SET_NAME         _IOW(__ASHMEMIOC, 1, char[ASHMEM_NAME_LEN])
#define ASHMEM_GET_NAME         _IOR(__ASHMEMIOC, 2, char[ASHMEM_NAME_LEN])
#define ASHMEM_SET_SIZE         _IOW(__ASHMEMIOC, 3, size_t)
#define ASHMEM_GET_SIZE         _IO(__ASHMEMIOC, 4)
#define ASHMEM_SET_PROT_MASK    _IOW(__ASHMEMIOC, 5, unsigned long)
#define ASHMEM_GET_PROT_MASK    _IO(__ASHMEMIOC, 6)
#define ASHMEM_PIN              _IOW(__ASHMEMIOC, 7, struct ashmem_pin)
#define ASHMEM_UNPIN            _IOW(__ASHMEMIOC, 8, struct ashmem_pin)
#define ASHMEM_GET_PIN_STATUS   _IO(__ASHMEMIOC, 9)
#define ASHMEM_PURGE_ALL_CACHES _IO(__ASHMEMIOC, 10)
/* Android's kernel addition: the inode number of the region's file */
#define ASHMEM_GET_FILE_ID      _IOR(__ASHMEMIOC, 11, unsigned long)

#endif
