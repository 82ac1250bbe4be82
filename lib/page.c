/* SPDX-License-Identifier: MIT */
/* The page size (lib/internal/page.h). */
#include <unistd.h>

#include "internal/page.h"

size_t am_page_size(void)
{
        static size_t ps;

        if (!ps) {
                long v = sysconf(_SC_PAGESIZE);
                ps = v > 0 ? (size_t)v : 4096;
        }
        return ps;
}

unsigned am_page_shift(void)
{
        return (unsigned)__builtin_ctzl(am_page_size());
}
