/* SPDX-License-Identifier: MIT */
/* A hash table keyed by file identity (lib/internal/idtable.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal/idtable.h"

size_t am_id_hash(dev_t dev, ino_t ino, unsigned key)
{
        uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

        h ^= (uint64_t)key * 0xbf58476d1ce4e5b9ull;
        return (size_t)(h ^ (h >> 29));
}

struct am_idnode *am_idtable_find(const struct am_idtable *t, dev_t dev,
                                  ino_t ino, unsigned key)
{
        if (!t->nbuckets)
                return NULL;
        for (struct am_idnode *n = *am_idtable_bucket(t, dev, ino, key); n; n = n->next)
                if (n->ino == ino && n->dev == dev && n->key == key)
                        return n;
        return NULL;
}

int am_idtable_reserve(struct am_idtable *t)
{
        size_t nb, min = t->min ? t->min : 16;
        struct am_idnode **b;

        if (t->n + 1 <= t->nbuckets)
                return 0;
        nb = t->nbuckets ? t->nbuckets * 2 : min;
        b = calloc(nb, sizeof(*b));
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < t->nbuckets; i++) {
                struct am_idnode *n = t->buckets[i], *next;
                for (; n; n = next) {
                        size_t h = am_id_hash(n->dev, n->ino, n->key) & (nb - 1);
                        next = n->next;
                        n->next = b[h];
                        b[h] = n;
                }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
        return 0;
}

void am_idtable_link(struct am_idtable *t, struct am_idnode *node)
{
        struct am_idnode **b = am_idtable_bucket(t, node->dev, node->ino, node->key);

        node->next = *b;
        *b = node;
        t->n++;
}

int am_idtable_insert(struct am_idtable *t, struct am_idnode *node)
{
        int r = am_idtable_reserve(t);

        if (r == 0)
                am_idtable_link(t, node);
        return r;
}

/* Where node is linked, or NULL. */
static struct am_idnode **place(const struct am_idtable *t,
                                const struct am_idnode *node)
{
        struct am_idnode **pp;

        if (!t->nbuckets)
                return NULL;
        for (pp = am_idtable_bucket(t, node->dev, node->ino, node->key); *pp; pp = &(*pp)->next)
                if (*pp == node)
                        return pp;
        return NULL;
}

void am_idtable_unlink(struct am_idtable *t, struct am_idnode *node)
{
        struct am_idnode **pp = place(t, node);

        if (pp)
                am_idtable_unlink_at(t, pp);
}

void am_idtable_replace(struct am_idtable *t, struct am_idnode *old,
                        struct am_idnode *node)
{
        struct am_idnode **pp = place(t, old);

        if (pp) {
                node->next = old->next;
                *pp = node;
        }
}

void am_idtable_free(struct am_idtable *t)
{
        free(t->buckets);
        t->buckets = NULL;
        t->nbuckets = 0;
        t->n = 0;
}
