/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/), ashmemctl and the tests. Not installed, not
 * exported from libashmem.so.
 *
 * Small helpers for scanners and growing arrays, the same in every
 * locale.
 */
#ifndef ASHMEM_LIB_TEXT_H
#define ASHMEM_LIB_TEXT_H

#include <errno.h>
#include <stdlib.h>

/* The value of hexadecimal digit c, or -1. */
static inline int am_hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Make room for one more element in the array *v of *cap elements of
 * size elsize, n of them in use: doubles *cap (first from first) when
 * n == *cap. 0, or -ENOMEM with *v untouched. */
static inline int am_array_room(void **v, size_t *cap, size_t n, size_t elsize,
                                size_t first)
{
        size_t c;
        void *nv;

        if (n < *cap)
                return 0;
        c = *cap ? *cap * 2 : first;
        if (c < *cap || c > (size_t)-1 / elsize)
                return -ENOMEM;
        nv = realloc(*v, c * elsize);
        if (!nv)
                return -ENOMEM;
        *v = nv;
        *cap = c;
        return 0;
}

#endif
