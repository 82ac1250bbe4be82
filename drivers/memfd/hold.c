/* SPDX-License-Identifier: MIT */
/*
 * The memfd driver's holds on pin state (the hold operations of
 * drivers/driver.h): a held entry of the process table is never collected,
 * so its control block stays mapped and the heaps' pin fast path and the
 * broker's records use it without a system call or a lookup.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ashmem/ashmem.h"
#include "../driver.h"
#include "memfd.h"

int am_memfd_hold(const struct stat *st, struct am_pinref **ret)
{
        struct am_pinref *p = malloc(sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        r = am_table_hold(st, &p->ref);
        if (r < 0) {
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

void am_memfd_release(const struct stat *st, struct am_pinref *p)
{
        if (p) {
                am_table_release(st);
                free(p);
        }
}

int am_memfd_ref_pin(const struct am_pinref *p, size_t off, size_t len, int data_fd)
{
        return am_pin_ref(&p->ref, off, len, AM_PIN, data_fd);
}

int am_memfd_ref_unpin(const struct am_pinref *p, size_t off, size_t len)
{
        return am_pin_ref(&p->ref, off, len, AM_UNPIN, -1);
}

int am_memfd_ref_pin_status(const struct am_pinref *p, size_t off, size_t len)
{
        return am_pin_ref(&p->ref, off, len, AM_STATUS, -1);
}

void am_memfd_ref_stats(const struct am_pinref *p, struct ashmem_stats *st, int *prot)
{
        amc_stats(&p->ref, st);
        *prot = amc_prot(&p->ref);
}

size_t am_memfd_ref_purging(const struct am_pinref *p)
{
        return amc_purging(&p->ref);
}

int am_memfd_ref_counts(const struct am_pinref *p, size_t first, size_t n, size_t c[3])
{
        amc_range_counts(&p->ref, first, n, c);
        return amc_prot(&p->ref);
}
