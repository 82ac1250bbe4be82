/* SPDX-License-Identifier: MIT */
/* The page size (lib/internal/page.h). */
#include <unistd.h>

#include "internal/page.h"

size_t am_page_size(void)
{
        static size_t ps;
        size_t p = __atomic_load_n(&ps, __ATOMIC_RELAXED);

        if (!p) {
                /* threads that race here store the same value */
                long v = sysconf(_SC_PAGESIZE);
                p = v > 0 ? (size_t)v : 4096;
                __atomic_store_n(&ps, p, __ATOMIC_RELAXED);
        }
        return p;
}

unsigned am_page_shift(void)
{
        return (unsigned)__builtin_ctzl(am_page_size());
}
