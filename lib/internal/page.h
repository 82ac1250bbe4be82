/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/), ashmemctl and the tests. Not installed, not
 * exported from libashmem.so.
 *
 * The page size.
 */
#ifndef ASHMEM_LIB_PAGE_H
#define ASHMEM_LIB_PAGE_H

#include <stddef.h>

/* The page size (sysconf(_SC_PAGESIZE), read once; 4096 if that fails). */
size_t am_page_size(void);

#endif
