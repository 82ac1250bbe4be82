/* SPDX-License-Identifier: MIT */
/*
 * Access control. It works like a file's: the owner's, the group's or the
 * others' bits of a name's mode, by the peer's credentials (SO_PEERCRED,
 * SO_PEERGROUPS); root may do anything.
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

static int in_group(const struct conn *c, gid_t g)
{
        if (c->gid == g)
                return 1;
        for (int i = 0; i < c->ngroups; i++)
                if (c->groups[i] == g)
                        return 1;
        return 0;
}

int access_allowed(const struct conn *c, const struct entry *e, unsigned want)
{
        unsigned bits;

        if (c->uid == 0)
                return 1;
        if (c->uid == e->uid)
                bits = e->mode >> 6;
        else if (in_group(c, e->gid))
                bits = e->mode >> 3;
        else
                bits = e->mode;
        return ((bits & 7) & want) == want;
}

int access_owns(const struct conn *c, const struct entry *e)
{
        return c->uid == 0 || c->uid == e->uid;
}

int access_visible(const struct conn *c, const struct entry *e)
{
        return access_owns(c, e) || access_allowed(c, e, ACC_R);
}

