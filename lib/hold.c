/* SPDX-License-Identifier: MIT */
/* Holds on pin state, for the broker daemon (see hold.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ashmem/ashmem.h"
#include "../drivers/driver.h"
#include "internal/hold.h"

struct am_hold {
        struct stat st;
        const struct am_driver *d;
        struct am_pinref *ref;
};

int am_hold_new(int fd, struct am_hold **ret)
{
        struct am_hold *h = malloc(sizeof(*h));
        int r;

        if (!h)
                return -ENOMEM;
        r = am_driver_of(fd, &h->st, &h->d);
        if (r == 0)
                r = h->d->hold ? h->d->hold(&h->st, &h->ref) : -ENOENT;
        if (r < 0) {
                free(h);
                return r;
        }
        *ret = h;
        return 0;
}

void am_hold_stats(const struct am_hold *h, struct ashmem_stats *st, int *prot)
{
        h->d->ref_stats(h->ref, st, prot);
}

int am_hold_counts(const struct am_hold *h, size_t first, size_t n, size_t c[3])
{
        return h->d->ref_counts(h->ref, first, n, c);
}

size_t am_hold_purging(const struct am_hold *h)
{
        return h->d->ref_purging ? h->d->ref_purging(h->ref) : 0;
}

void am_hold_free(struct am_hold *h)
{
        if (h) {
                h->d->release(&h->st, h->ref);
                free(h);
        }
}
