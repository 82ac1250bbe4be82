/* SPDX-License-Identifier: MIT */
/* Holds on pin state, for the broker daemon (see hold.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ashmem/ashmem.h"
#include "../drivers/memfd/memfd.h"
#include "internal/hold.h"

struct am_hold {
        struct stat st;
        struct amc_ref ref;
};

int am_hold_new(int fd, struct am_hold **ret)
{
        struct am_hold *h = malloc(sizeof(*h));
        int r;

        if (!h)
                return -ENOMEM;
        if (fstat(fd, &h->st) < 0) {
                r = -errno;
                free(h);
                return r;
        }
        r = am_table_hold(&h->st, &h->ref);
        if (r < 0) {
                free(h);
                return r;
        }
        *ret = h;
        return 0;
}

void am_hold_stats(const struct am_hold *h, struct ashmem_stats *st, int *prot)
{
        amc_stats(&h->ref, st);
        *prot = (int)__atomic_load_n(&h->ref.b->prot, __ATOMIC_RELAXED);
}

void am_hold_page_map(const struct am_hold *h, char *map, size_t n)
{
        amc_page_map(&h->ref, map, n < h->ref.pages ? n : (size_t)h->ref.pages);
}

void am_hold_free(struct am_hold *h)
{
        if (h) {
                am_table_release(&h->st);
                free(h);
        }
}
