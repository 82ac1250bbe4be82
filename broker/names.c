/* SPDX-License-Identifier: MIT */
/*
 * The names: sorted, in blocks (struct name_block), each an entry that
 * carries its region, its owner, its mode and, for a view, its offset and
 * length; what each user holds (struct uid_use), and the limits on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <grp.h>
#include <pwd.h>

#include "ashmem/ashmem.h"
#include "internal.h"

/* The first name >= key (or > key when after); { nnblocks, 0 } if none. */
struct name_pos name_bound(const struct broker *b, const char *key, int after)
{
        size_t lo = 0, hi = b->nnblocks;
        const struct name_block *k;

        /* the first block whose last name is >= key (> key) */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct name_block *m = b->nblocks[mid];
                int c = strcmp(m->e[m->n - 1]->name, key);
                if (c < 0 || (after && c == 0))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == b->nnblocks)
                return (struct name_pos){ lo, 0 };
        k = b->nblocks[lo];
        {
                size_t l = 0, h = k->n;
                while (l < h) {
                        size_t mid = l + (h - l) / 2;
                        int c = strcmp(k->e[mid]->name, key);
                        if (c < 0 || (after && c == 0))
                                l = mid + 1;
                        else
                                h = mid;
                }
                return (struct name_pos){ lo, l };
        }
}

struct entry *name_at(const struct broker *b, struct name_pos p)
{
        return p.b < b->nnblocks ? b->nblocks[p.b]->e[p.i] : NULL;
}

struct entry *name_next(const struct broker *b, struct name_pos *p)
{
        while (p->b < b->nnblocks) {
                const struct name_block *k = b->nblocks[p->b];
                if (p->i < k->n)
                        return k->e[p->i++];
                p->b++;
                p->i = 0;
        }
        return NULL;
}

unsigned long long names_walk(struct broker *b)
{
        return ++b->walks;
}

/* A search that stops at the name: one comparison a step, none after. */
struct entry *name_lookup(const struct broker *b, const char *name, struct name_pos *p)
{
        size_t lo = 0, hi = b->nnblocks, l = 0, h;
        const struct name_block *k;
        int c;

        /* the first block whose last name is >= name */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                k = b->nblocks[mid];
                if ((c = strcmp(k->e[k->n - 1]->name, name)) == 0) {
                        *p = (struct name_pos){ mid, k->n - 1 };
                        return k->e[k->n - 1];
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == b->nnblocks)
                return NULL;
        k = b->nblocks[lo];
        for (h = k->n; l < h;) {
                size_t mid = l + (h - l) / 2;
                if ((c = strcmp(k->e[mid]->name, name)) == 0) {
                        *p = (struct name_pos){ lo, mid };
                        return k->e[mid];
                }
                if (c < 0)
                        l = mid + 1;
                else
                        h = mid;
        }
        return NULL;
}

struct entry *name_find(const struct broker *b, const char *name)
{
        struct name_pos p;

        return name_lookup(b, name, &p);
}

/* Room for one more block in the list of blocks. */
static int nblocks_room(struct broker *b)
{
        if (b->nnblocks == b->capnblocks) {
                size_t cap = b->capnblocks ? b->capnblocks * 2 : 16;
                struct name_block **n = realloc(b->nblocks, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                b->nblocks = n;
                b->capnblocks = cap;
        }
        return 0;
}

static int name_insert(struct broker *b, struct entry *e)
{
        struct name_pos p = name_bound(b, e->name, 0);
        struct name_block *k;

        if (b->nnblocks == 0) {
                if (nblocks_room(b) < 0 || !(k = malloc(sizeof(*k))))
                        return -ENOMEM;
                k->n = 0;
                b->nblocks[b->nnblocks++] = k;
                p = (struct name_pos){ 0, 0 };
        } else if (p.b == b->nnblocks) {
                /* after the last name: at the end of the last block */
                p.b = b->nnblocks - 1;
                p.i = b->nblocks[p.b]->n;
        }
        k = b->nblocks[p.b];
        if (k->n == NAME_BLOCK) {
                /* split: the upper half goes to a new block after it */
                struct name_block *up;
                size_t half = NAME_BLOCK / 2;

                if (nblocks_room(b) < 0 || !(up = malloc(sizeof(*up))))
                        return -ENOMEM;
                up->n = NAME_BLOCK - half;
                memcpy(up->e, k->e + half, up->n * sizeof(*up->e));
                k->n = half;
                memmove(b->nblocks + p.b + 2, b->nblocks + p.b + 1,
                        (b->nnblocks - p.b - 1) * sizeof(*b->nblocks));
                b->nblocks[p.b + 1] = up;
                b->nnblocks++;
                if (p.i > half) {
                        p.b++;
                        p.i -= half;
                        k = up;
                }
        }
        memmove(k->e + p.i + 1, k->e + p.i, (k->n - p.i) * sizeof(*k->e));
        k->e[p.i] = e;
        k->n++;
        b->nnames++;
        return 0;
}

/* Take the name at p out of the order (a block left empty goes). */
static void name_take(struct broker *b, struct name_pos p)
{
        struct name_block *k = b->nblocks[p.b];

        memmove(k->e + p.i, k->e + p.i + 1, (k->n - p.i - 1) * sizeof(*k->e));
        k->n--;
        b->nnames--;
        if (k->n == 0) {
                free(k);
                memmove(b->nblocks + p.b, b->nblocks + p.b + 1,
                        (b->nnblocks - p.b - 1) * sizeof(*b->nblocks));
                b->nnblocks--;
        }
}

/* uid's slot in the index: where it is, or the empty one it would take. */
static size_t uid_slot(const struct broker *b, uid_t uid)
{
        uint64_t h = (uint64_t)uid ^ b->uid_seed;
        size_t i, mask = b->capuidx - 1;

        /* a full mix of the 64 bits (splitmix64's finaliser) */
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
        for (i = (size_t)h & mask; b->uidx[i] && b->uses[b->uidx[i] - 1].uid != uid;
             i = (i + 1) & mask)
                ;
        return i;
}

/* Room in the index for one more use: a larger index, filled again. */
static int uidx_room(struct broker *b)
{
        size_t cap = b->capuidx ? b->capuidx : 16;
        uint32_t *n;

        if ((b->nuses + 1) * 2 <= b->capuidx)
                return 0;
        while ((b->nuses + 1) * 2 > cap)
                cap *= 2;
        if (cap > UINT32_MAX || !(n = calloc(cap, sizeof(*n))))
                return -ENOMEM;
        if (!b->uidx && getrandom(&b->uid_seed, sizeof(b->uid_seed), GRND_NONBLOCK) !=
                                (ssize_t)sizeof(b->uid_seed)) {
                /* the pool not ready yet (early boot): the 16 random
                 * bytes the kernel gave this process at exec */
                const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
                if (r)
                        memcpy(&b->uid_seed, r + 8, sizeof(b->uid_seed));
                b->uid_seed ^= (uint64_t)am_mono_ns(0);
        }
        free(b->uidx);
        b->uidx = n;
        b->capuidx = cap;
        for (size_t k = 0; k < b->nuses; k++)
                b->uidx[uid_slot(b, b->uses[k].uid)] = (uint32_t)(k + 1);
        return 0;
}

/* The use of uid; NULL if it holds nothing (and, with add, no memory). */
static struct uid_use *uid_use(struct broker *b, uid_t uid, int add)
{
        size_t i;

        if (b->capuidx && b->uidx[i = uid_slot(b, uid)])
                return &b->uses[b->uidx[i] - 1];
        if (!add)
                return NULL;
        if (uidx_room(b) < 0)
                return NULL;
        if (b->nuses == b->capuses) {
                size_t cap = b->capuses ? b->capuses * 2 : 8;
                struct uid_use *n = realloc(b->uses, cap * sizeof(*n));
                if (!n)
                        return NULL;
                b->uses = n;
                b->capuses = cap;
        }
        b->uses[b->nuses] = (struct uid_use){ .uid = uid };
        b->uidx[uid_slot(b, uid)] = (uint32_t)(b->nuses + 1);
        return &b->uses[b->nuses++];
}

/* What a name counts against its owner's limits. */
static unsigned long long entry_bytes(const struct entry *e)
{
        return e->of ? 0 : e->r->size;
}

/* The name e is a slice of, if it still names e's region. */
static struct entry *slice_base(const struct broker *b, const struct entry *e)
{
        struct entry *base = e->of ? name_find(b, e->of) : NULL;

        return base && base->r == e->r ? base : NULL;
}

/* e no longer goes with a connection. */
static void entry_disown(struct entry *e)
{
        if (!e->owner)
                return;
        e->owner->transients--;
        NAME_LIST_OUT(e->owner->owned, e, c);
        e->owner = NULL;
}

void slice_link(struct entry *e, struct entry *base)
{
        e->base = base;
        NAME_LIST_IN(base->slist, e, s);
}

static void entry_free(struct broker *b, struct entry *e)
{
        struct uid_use *u = uid_use(b, e->uid, 0);

        if (e->base) {
                NAME_LIST_OUT(e->base->slist, e, s);
                e->base = NULL;
        }
        /* slices left (a connection's names dropped one by one) point
         * at nothing any more */
        while (e->slist) {
                struct entry *s = e->slist;
                NAME_LIST_OUT(e->slist, s, s);
                s->base = NULL;
        }
        if (u) {
                u->names--;
                u->bytes -= entry_bytes(e);
                NAME_LIST_OUT(u->owned, e, u);
        }
        entry_disown(e);
        NAME_LIST_OUT(e->r->names, e, r);
        region_unref(b, e->r);
        free(e->name);
        free(e->of);
        free(e->rec);
        free(e);
}

void entry_drop(struct broker *b, struct name_pos p)
{
        struct entry *e = name_at(b, p);

        name_take(b, p);
        blog(b, 1, "%s: removed", e->name);
        entry_free(b, e);
}

void entry_remove(struct broker *b, struct name_pos p)
{
        struct entry *e = name_at(b, p), *cur = e;

        name_take(b, p);
        /* its slices and theirs, from the lists of slices, leaves first
         * and without recursion: down to a slice that has none, out with
         * it, back up to the name it was cut from. Each name is passed
         * twice at most, whatever the depth; slices form a forest (a
         * slice is cut from a name that exists, and goes with it) */
        while (cur != e || e->slist) {
                struct entry *up;
                struct name_pos q;
                if (cur->slist) {
                        cur = cur->slist;
                        continue;
                }
                up = cur->base ? cur->base : e;
                if (name_lookup(b, cur->name, &q) == cur)
                        name_take(b, q);
                blog(b, 1, "%s: removed", cur->name);
                entry_free(b, cur);
                cur = up;
        }
        blog(b, 1, "%s: removed", e->name);
        entry_free(b, e);
}

/* User and group names, cached: a create or share need not parse
 * /etc/passwd and /etc/group again. A cache is dropped when its file
 * changes (inode, size or mtime, looked at no more than once a second). */
#define NAME_CACHE 64

struct id_cache {
        const char *file;
        struct stat st;                 /* of file when the cache was filled */
        long long checked_ms;
        size_t n, next;
        struct { unsigned id; int found; char name[64]; } e[NAME_CACHE];
};

static struct id_cache users = { .file = "/etc/passwd" };
static struct id_cache groups = { .file = "/etc/group" };

static void cache_check(struct id_cache *c)
{
        long long now = am_mono_ms();
        struct stat st;

        if (c->checked_ms && now - c->checked_ms < 1000)
                return;
        c->checked_ms = now;
        if (stat(c->file, &st) < 0)
                memset(&st, 0, sizeof(st));
        if (st.st_ino != c->st.st_ino || st.st_dev != c->st.st_dev ||
            st.st_size != c->st.st_size || st.st_mtim.tv_sec != c->st.st_mtim.tv_sec ||
            st.st_mtim.tv_nsec != c->st.st_mtim.tv_nsec) {
                c->st = st;
                c->n = c->next = 0;
        }
}

/* The name of id into out (len bytes), "" if it has none. */
static void cached_name(struct id_cache *c, unsigned id, int group, char *out, size_t len)
{
        char buf[4096];
        size_t k;

        cache_check(c);
        for (k = 0; k < c->n; k++)
                if (c->e[k].id == id) {
                        snprintf(out, len, "%s", c->e[k].found ? c->e[k].name : "");
                        return;
                }
        k = c->n < NAME_CACHE ? c->n++ : c->next++ % NAME_CACHE;
        c->e[k].id = id;
        c->e[k].found = 0;
        c->e[k].name[0] = 0;
        if (group) {
                struct group gr, *grp = NULL;
                if (getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &grp) == 0 && grp) {
                        snprintf(c->e[k].name, sizeof(c->e[k].name), "%s", gr.gr_name);
                        c->e[k].found = 1;
                }
        } else {
                struct passwd pw, *pwp = NULL;
                if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &pwp) == 0 && pwp) {
                        snprintf(c->e[k].name, sizeof(c->e[k].name), "%s", pw.pw_name);
                        c->e[k].found = 1;
                }
        }
        snprintf(out, len, "%s", c->e[k].name);
}

static void owner_names(struct entry *e)
{
        cached_name(&users, (unsigned)e->uid, 0, e->user, sizeof(e->user));
        cached_name(&groups, (unsigned)e->gid, 1, e->group, sizeof(e->group));
}

/* A new name for r (taking a reference), owned by c's user; of: the name
 * it is a slice of (taken over on success), or NULL. */
int entry_add(struct broker *b, struct conn *c, const char *name,
              struct held_region *r, unsigned mode, char *of, struct entry **ret)
{
        struct entry *e = calloc(1, sizeof(*e));
        struct uid_use *u = uid_use(b, c->uid, 1);

        if (!e || !u || !(e->name = strdup(name))) {
                free(e);
                return -ENOMEM;
        }
        e->r = r;
        e->of = of;
        e->uid = c->uid;
        e->gid = c->gid;
        e->mode = mode;
        e->created = time(NULL);
        owner_names(e);
        if (name_insert(b, e) < 0) {
                free(e->name);
                free(e);
                return -ENOMEM;
        }
        {
                struct entry *base = slice_base(b, e);
                if (base)
                        slice_link(e, base);
        }
        r->refs++;
        NAME_LIST_IN(r->names, e, r);
        NAME_LIST_IN(u->owned, e, u);
        u->names++;
        u->bytes += entry_bytes(e);
        *ret = e;
        return 0;
}

struct entry *uid_names(struct broker *b, uid_t uid, size_t *n)
{
        const struct uid_use *u = uid_use(b, uid, 0);

        *n = u ? u->names : 0;
        return u ? u->owned : NULL;
}

void entry_set_owner(struct entry *e, struct conn *c)
{
        e->owner = c;
        c->transients++;
        NAME_LIST_IN(c->owned, e, c);
}

void ops_conn_closed(struct broker *b, struct conn *c)
{
        /* its own names, not a walk of all (its slices are its too) */
        while (c->owned) {
                struct name_pos p;
                struct entry *e = name_lookup(b, c->owned->name, &p);
                if (e == c->owned)
                        entry_drop(b, p);
                else            /* never: every name it owns is in order */
                        entry_disown(c->owned);
        }
}

void ops_free_all(struct broker *b)
{
        while (b->nnblocks) {
                size_t last = b->nnblocks - 1;
                entry_drop(b, (struct name_pos){ last, b->nblocks[last]->n - 1 });
        }
        free(b->nblocks);
        b->nblocks = NULL;
        b->capnblocks = 0;
        am_idtable_free(&b->regions);
        free(b->uses);
        b->uses = NULL;
        b->nuses = b->capuses = 0;
        free(b->uidx);
        b->uidx = NULL;
        b->capuidx = 0;
        b->nquiet = 0;
}


/* ---------------------------------------------------------------- limits */

int uid_quota(struct broker *b, const struct conn *c, unsigned long long add,
              struct reply *rep)
{
        const struct uid_use *u = uid_use(b, c->uid, 0);
        unsigned long long bytes = u ? u->bytes : 0;
        size_t names = u ? u->names : 0;

        if (names + 1 > b->cfg->max_regions)
                return FAIL(rep, ENOSPC, "uid %u holds %zu names (limit %u, --max-regions)",
                            (unsigned)c->uid, names, b->cfg->max_regions);
        if (add && (bytes + add > b->max_bytes || add > b->max_bytes))
                return FAIL(rep, EDQUOT, "uid %u would hold %llu bytes (limit %llu, --max-bytes)",
                            (unsigned)c->uid, bytes + add, b->max_bytes);
        return 0;
}

int uid_conn_open(struct broker *b, uid_t uid, char *msg, size_t len)
{
        struct uid_use *u = uid_use(b, uid, 1);

        if (!u) {
                snprintf(msg, len, "out of memory");
                return -ENOMEM;
        }
        if (uid != 0 && u->conns >= b->max_uid_conns) {
                snprintf(msg, len, "uid %u has %u connections (limit %u, --max-uid-connections)",
                         (unsigned)uid, u->conns, b->max_uid_conns);
                return -EMFILE;
        }
        if (uid != 0 && u->fds + 1 > b->max_uid_fds) {
                snprintf(msg, len, "uid %u holds %llu broker descriptors (limit %llu, --max-uid-fds)",
                         (unsigned)uid, u->fds, b->max_uid_fds);
                return -EMFILE;
        }
        u->conns++;
        u->fds++;
        return 0;
}

void uid_conn_close(struct broker *b, uid_t uid)
{
        struct uid_use *u = uid_use(b, uid, 0);

        if (u && u->conns) {
                u->conns--;
                u->fds--;
        }
}

int uid_fd_quota(struct broker *b, const struct conn *c, struct reply *rep)
{
        const struct uid_use *u = uid_use(b, c->uid, 0);
        unsigned long long fds = u ? u->fds : 0;

        if (c->uid != 0 && fds + REGION_FDS > b->max_uid_fds)
                return FAIL(rep, EMFILE, "uid %u holds %llu broker descriptors (limit %llu, --max-uid-fds)",
                            (unsigned)c->uid, fds, b->max_uid_fds);
        return 0;
}

void uid_fd_charge(struct broker *b, const struct conn *c, struct held_region *r)
{
        struct uid_use *u = uid_use(b, c->uid, 1);

        if (u && !r->fd_charged) {
                u->fds += REGION_FDS;
                r->fd_uid = c->uid;
                r->fd_charged = 1;
        }
}

void uid_fd_uncharge(struct broker *b, struct held_region *r)
{
        struct uid_use *u = r->fd_charged ? uid_use(b, r->fd_uid, 0) : NULL;

        if (u)
                u->fds -= REGION_FDS;
        r->fd_charged = 0;
}

void uid_fd_add(struct broker *b, uid_t uid, int n)
{
        struct uid_use *u = uid_use(b, uid, 1);

        if (!u)
                return;                 /* out of memory: not counted */
        if (n < 0 && u->closing == 0)
                return;
        u->fds += (unsigned long long)(long long)n;
        u->closing += (unsigned long long)(long long)n;
}

void uid_park_add(struct broker *b, uid_t uid, int n)
{
        struct uid_use *u = uid_use(b, uid, 1);

        if (!u || (n < 0 && u->parked == 0))
                return;
        u->parked += (unsigned long long)(long long)n;
}

struct uid_use *uid_closer_use(struct broker *b, uid_t uid)
{
        return uid_use(b, uid, 1);
}

unsigned long long uid_closing(struct broker *b, uid_t uid)
{
        const struct uid_use *u = uid_use(b, uid, 0);
        return u ? u->closing : 0;
}

int uid_fd_closing(struct broker *b, uid_t uid, char *msg, size_t len)
{
        const struct uid_use *u = uid ? uid_use(b, uid, 0) : NULL;   /* root: no limit */

        if (u && u->closing && u->fds >= b->max_uid_fds) {
                snprintf(msg, len, "uid %u holds %llu broker descriptors, %llu of them not "
                         "closed yet (limit %llu, --max-uid-fds)", (unsigned)uid, u->fds,
                         u->closing, b->max_uid_fds);
                return -EMFILE;
        }
        return 0;
}

#define REFUSAL_LOG_MS 1000

int uid_log_refusal(struct broker *b, uid_t uid, unsigned long long *quiet)
{
        struct uid_use *u = uid_use(b, uid, 1);
        long long now = am_mono_ms();

        *quiet = 0;
        if (!u)
                return 1;
        if (u->refused_log_ms && now - u->refused_log_ms < REFUSAL_LOG_MS) {
                if (u->refused_quiet++ == 0)
                        b->nquiet++;
                return 0;
        }
        *quiet = u->refused_quiet;
        if (u->refused_quiet)
                b->nquiet--;
        u->refused_quiet = 0;
        u->refused_log_ms = now;
        return 1;
}

void uid_log_flush(struct broker *b)
{
        long long now = am_mono_ms();

        /* every tick: a walk only while some user has refusals unlogged */
        for (size_t i = 0; b->nquiet && i < b->nuses; i++) {
                struct uid_use *u = &b->uses[i];
                if (!u->refused_quiet || now - u->refused_log_ms < REFUSAL_LOG_MS)
                        continue;
                blog(b, 1, "refused %llu more connections of uid %u (not logged one by one)",
                     u->refused_quiet, (unsigned)u->uid);
                b->nquiet--;
                u->refused_quiet = 0;
                u->refused_log_ms = now;
        }
}

/* A user's entry of stats, unless it holds nothing. */
static void uid_stat(struct am_jw *s, const struct uid_use *u, size_t *shown)
{
        if (!u->names && !u->conns && !u->fds && !u->parked)
                return;
        am_jw_printf(s, "%s{\"uid\":%u,\"connections\":%u,\"regions\":%zu,"
                     "\"bytes\":%llu,\"descriptors\":%llu,\"closing\":%llu,\"parked\":%llu}",
                     *shown ? "," : "", (unsigned)u->uid, u->conns, u->names, u->bytes, u->fds,
                     u->closing, u->parked);
        ++*shown;
}

void uid_stats(struct broker *b, const struct conn *c, struct am_jw *s)
{
        size_t shown = 0;

        am_jw_puts(s, ",\"uids\":[");
        if (c->uid != 0) {
                /* a user sees its own, found through the index */
                const struct uid_use *u = uid_use(b, c->uid, 0);
                if (u)
                        uid_stat(s, u, &shown);
        } else {
                /* root every user's */
                for (size_t i = 0; i < b->nuses && shown < 256; i++)
                        uid_stat(s, &b->uses[i], &shown);
        }
        am_jw_puts(s, "]");
}

