/* SPDX-License-Identifier: MIT */
/*
 * The regions the broker holds: one per data memfd (by its identity),
 * however many names refer to it, with a read-only reopening of its
 * descriptors made on demand (through /proc/self/fd, so the kernel itself
 * refuses a writable mapping, and the read-only control block refuses pin,
 * unpin and purge).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "internal.h"
#include "lib/internal/forget.h"

struct held_region *region_find(struct broker *b, const struct stat *st)
{
        struct am_idnode *n = am_idtable_find(&b->regions, st->st_dev, st->st_ino, 0);
        return n ? am_id_record(n, struct held_region, id) : NULL;
}

/* A new region over fd and ctl (taken over on success). */
int region_new(struct broker *b, int fd, int ctl, const struct stat *st,
               struct held_region **ret)
{
        struct held_region *r;

        if (am_idtable_reserve(&b->regions) < 0)
                return -ENOMEM;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = fd;
        r->ctl = ctl;
        r->ro_fd = r->ro_ctl = -1;
        if (ctl >= 0)
                (void)am_hold_new(fd, &r->hold);        /* else the slow way */
        r->size = (size_t)st->st_size;
        r->id.dev = st->st_dev;
        r->id.ino = st->st_ino;
        am_idtable_link(&b->regions, &r->id);
        b->bytes += r->size;
        *ret = r;
        return 0;
}

void region_unref(struct broker *b, struct held_region *r)
{
        if (--r->refs)
                return;
        am_idtable_unlink(&b->regions, &r->id);
        b->bytes -= r->size;
        uid_fd_uncharge(b, r);
        am_hold_free(r->hold);
        {
                /* closed here, not through closer_put(): a region's data
                 * and control descriptors are memfds (share and
                 * adopt_control checked their seals) or reopenings of
                 * them, whose last close never waits */
                int fds[] = { r->fd, r->ctl, r->ro_fd, r->ro_ctl };
                am_close_fds(fds, (int)(sizeof(fds) / sizeof(fds[0])));
        }
        {
                /* the library forgets its pin state of the region now: no
                 * /proc scan on the event loop */
                struct stat st = { 0 };
                st.st_dev = (dev_t)r->id.dev;
                st.st_ino = (ino_t)r->id.ino;
                (void)am_forget_region(&st);
        }
        free(r);
        broker_fds_freed(b);
}

/* A read-only descriptor of the same file, reopened through /proc. */
static int reopen_ro(int fd)
{
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, O_RDONLY | O_CLOEXEC);
        return r < 0 ? -errno : r;
}

int region_ro(struct held_region *r)
{
        if (r->ro_fd < 0) {
                r->ro_fd = reopen_ro(r->fd);
                if (r->ro_fd < 0) {
                        int e = r->ro_fd;
                        r->ro_fd = -1;
                        return e;
                }
        }
        if (r->ctl >= 0 && r->ro_ctl < 0) {
                r->ro_ctl = reopen_ro(r->ctl);
                if (r->ro_ctl < 0) {
                        int e = r->ro_ctl;
                        r->ro_ctl = -1;
                        return e;
                }
        }
        return 0;
}

