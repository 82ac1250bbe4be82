/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/) and the tests. Not installed, not exported from
 * libashmem.so.
 *
 * A hash table of records keyed by a file's identity (st_dev, st_ino) and
 * a small third key (0 when there is none). Intrusive: a record embeds a
 * struct am_idnode, and am_id_record() finds the record from its node. The
 * buckets double whenever the nodes would outnumber them. No locking: each
 * user guards its table as it needs.
 */
#ifndef ASHMEM_LIB_IDTABLE_H
#define ASHMEM_LIB_IDTABLE_H

#include <stddef.h>
#include <sys/types.h>

struct am_idnode {
        dev_t dev;
        ino_t ino;
        unsigned key;
        struct am_idnode *next;         /* in its bucket */
};

struct am_idtable {
        struct am_idnode **buckets;
        size_t nbuckets;                /* 0, or a power of two */
        size_t n;                       /* nodes linked */
        size_t min;                     /* buckets at the first insertion */
};

/* An empty table that starts with min_buckets (a power of two). */
#define AM_IDTABLE_INIT(min_buckets) { NULL, 0, 0, (min_buckets) }

/* The record of type type whose member is the node p. */
#define am_id_record(p, type, member) \
        ((type *)(void *)((char *)(p) - offsetof(type, member)))

size_t am_id_hash(dev_t dev, ino_t ino, unsigned key);

/* The bucket of a key (the table has buckets). */
static inline struct am_idnode **am_idtable_bucket(const struct am_idtable *t,
                                                   dev_t dev, ino_t ino,
                                                   unsigned key)
{
        return &t->buckets[am_id_hash(dev, ino, key) & (t->nbuckets - 1)];
}

/* The node of a key, or NULL. */
struct am_idnode *am_idtable_find(const struct am_idtable *t, dev_t dev,
                                  ino_t ino, unsigned key);

/* Room for one more node: the buckets double if it would outnumber them.
 * 0, or -ENOMEM with the table unchanged. */
int am_idtable_reserve(struct am_idtable *t);

/* Link a node whose key is set, after am_idtable_reserve(). */
void am_idtable_link(struct am_idtable *t, struct am_idnode *node);

/* am_idtable_reserve() and am_idtable_link(). */
int am_idtable_insert(struct am_idtable *t, struct am_idnode *node);

/* Unlink a node; nothing if it is not in the table. */
void am_idtable_unlink(struct am_idtable *t, struct am_idnode *node);

/* Unlink the node *pp points to in a walk over a bucket; *pp then points
 * to the next one. */
static inline void am_idtable_unlink_at(struct am_idtable *t,
                                        struct am_idnode **pp)
{
        *pp = (*pp)->next;
        t->n--;
}

/* Put node where old (linked, with the same key) is: old leaves the table
 * and node takes its place, the rest of the bucket untouched. */
void am_idtable_replace(struct am_idtable *t, struct am_idnode *old,
                        struct am_idnode *node);

/* Free the buckets (not the records): the table is empty again. */
void am_idtable_free(struct am_idtable *t);

#endif
