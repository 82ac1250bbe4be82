/* SPDX-License-Identifier: MIT */
/*
 * The broker's operations (the op table of ashmem-protocol(7)), its names
 * and regions, and access control.
 *
 * A region is held once per data memfd (by inode), however many names
 * refer to it; a name (entry) carries the owner, the mode and, for a view,
 * the offset and length. Access works like a file's: the owner's, the
 * group's or the others' bits of the mode, by the peer's credentials
 * (SO_PEERCRED, SO_PEERGROUPS); root may do anything. Read access hands out
 * descriptors reopened O_RDONLY through /proc/self/fd, so the kernel itself
 * refuses a writable mapping, and the read-only control block refuses pin,
 * unpin and purge.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "internal.h"

#define ACC_R 4u
#define ACC_W 2u
#define DEFAULT_MODE 0600u

/* ---------------------------------------------------------------- regions */

static struct held_region *region_find(struct broker *b, const struct stat *st)
{
        struct am_idnode *n = am_idtable_find(&b->regions, st->st_dev, st->st_ino, 0);
        return n ? am_id_record(n, struct held_region, id) : NULL;
}

/* A new region over fd and ctl (taken over on success). */
static int region_new(struct broker *b, int fd, int ctl, const struct stat *st,
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
        am_hold_free(r->hold);
        close(r->fd);
        if (r->ctl >= 0)
                close(r->ctl);
        if (r->ro_fd >= 0)
                close(r->ro_fd);
        if (r->ro_ctl >= 0)
                close(r->ro_ctl);
        free(r);
        b->collect = 1;         /* the library may drop its control mapping */
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

static int region_ro(struct held_region *r)
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

/* ---------------------------------------------------------------- names */

/* The first name >= key (or > key when after); { nnblocks, 0 } if none. */
static struct name_pos name_bound(const struct broker *b, const char *key, int after)
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

static struct entry *name_at(const struct broker *b, struct name_pos p)
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

static struct entry *name_find(const struct broker *b, const char *name)
{
        struct entry *e = name_at(b, name_bound(b, name, 0));

        return e && strcmp(e->name, name) == 0 ? e : NULL;
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

/* The use of uid; NULL if it holds nothing (and, with add, no memory). */
static struct uid_use *uid_use(struct broker *b, uid_t uid, int add)
{
        for (size_t i = 0; i < b->nuses; i++)
                if (b->uses[i].uid == uid)
                        return &b->uses[i];
        if (!add)
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
        return &b->uses[b->nuses++];
}

/* What a name counts against its owner's limits. */
static unsigned long long entry_bytes(const struct entry *e)
{
        return e->of ? 0 : e->r->size;
}

static void entry_free(struct broker *b, struct entry *e)
{
        struct uid_use *u = uid_use(b, e->uid, 0);

        if (u) {
                u->names--;
                u->bytes -= entry_bytes(e);
        }
        if (e->owner)
                e->owner->transients--;
        region_unref(b, e->r);
        free(e->name);
        free(e->of);
        free(e->rec);
        free(e);
}

static void entry_remove(struct broker *b, struct name_pos p)
{
        struct entry *e = name_at(b, p);

        name_take(b, p);
        blog(b, 1, "%s: removed", e->name);
        entry_free(b, e);
}

static void owner_names(struct entry *e)
{
        char buf[4096];
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;

        if (getpwuid_r(e->uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
                snprintf(e->user, sizeof(e->user), "%s", pw.pw_name);
        if (getgrgid_r(e->gid, &gr, buf, sizeof(buf), &grp) == 0 && grp)
                snprintf(e->group, sizeof(e->group), "%s", gr.gr_name);
}

/* A new name for r (taking a reference), owned by c's user; of: the name
 * it is a slice of (taken over on success), or NULL. */
static int entry_add(struct broker *b, struct conn *c, const char *name,
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
        r->refs++;
        u->names++;
        u->bytes += entry_bytes(e);
        *ret = e;
        return 0;
}

void ops_conn_closed(struct broker *b, struct conn *c)
{
        /* from the last name back: a removal moves only names after it (a
         * block it empties is the one at bi, and its loop ends there) */
        for (size_t bi = b->nnblocks; c->transients && bi-- > 0;)
                for (size_t i = b->nblocks[bi]->n; c->transients && i-- > 0;)
                        if (b->nblocks[bi]->e[i]->owner == c)
                                entry_remove(b, (struct name_pos){ bi, i });
}

void ops_free_all(struct broker *b)
{
        while (b->nnblocks) {
                size_t last = b->nnblocks - 1;
                entry_remove(b, (struct name_pos){ last, b->nblocks[last]->n - 1 });
        }
        free(b->nblocks);
        b->nblocks = NULL;
        b->capnblocks = 0;
        am_idtable_free(&b->regions);
        free(b->uses);
        b->uses = NULL;
        b->nuses = b->capuses = 0;
}

/* ---------------------------------------------------------------- access */

static int in_group(const struct conn *c, gid_t g)
{
        if (c->gid == g)
                return 1;
        for (int i = 0; i < c->ngroups; i++)
                if (c->groups[i] == g)
                        return 1;
        return 0;
}

static int allowed(const struct conn *c, const struct entry *e, unsigned want)
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

static int owns(const struct conn *c, const struct entry *e)
{
        return c->uid == 0 || c->uid == e->uid;
}

static int visible(const struct conn *c, const struct entry *e)
{
        return owns(c, e) || allowed(c, e, ACC_R);
}

/* ---------------------------------------------------------------- fields */

#define FAIL(rep, e, ...) \
        (snprintf((rep)->err, sizeof((rep)->err), __VA_ARGS__), -(e))

static int f_str(struct req *q, const char *k, int required,
                 const char **out, struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);
        size_t room = sizeof(q->arena) - q->used;
        int n;

        *out = NULL;
        if (!f)
                return required ? FAIL(rep, EINVAL, "missing field \"%s\"", k) : 0;
        if (am_json_kind(f) != 's')
                return FAIL(rep, EINVAL, "field \"%s\" must be a string", k);
        n = am_json_str(f, q->arena + q->used, room > 1024 ? 1024 : room);
        if (n == -ERANGE)
                return FAIL(rep, EINVAL, "field \"%s\" is too long", k);
        if (n < 0)
                return FAIL(rep, EINVAL, "field \"%s\" holds a NUL or a lone surrogate", k);
        *out = q->arena + q->used;
        q->used += (size_t)n + 1;
        return 1;
}

static int f_uint(struct req *q, const char *k, int required,
                  unsigned long long max, unsigned long long *out,
                  struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);
        uint64_t v;

        if (!f)
                return required ? FAIL(rep, EINVAL, "missing field \"%s\"", k) : 0;
        if (am_json_u64(f, UINT64_MAX, &v) < 0)
                return FAIL(rep, EINVAL, "field \"%s\" must be a non-negative integer", k);
        if (v > max)
                return FAIL(rep, EINVAL, "field \"%s\" is too large", k);
        *out = v;
        return 1;
}

static int f_bool(struct req *q, const char *k, int *out, struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);

        *out = 0;
        if (!f)
                return 0;
        if (am_json_bool(f, out) < 0)
                return FAIL(rep, EINVAL, "field \"%s\" must be true or false", k);
        return 1;
}

static int f_mode(struct req *req, unsigned *out, struct reply *rep)
{
        const char *s;
        unsigned m = 0;
        int r = f_str(req, "mode", 0, &s, rep);

        *out = DEFAULT_MODE;
        if (r <= 0)
                return r;
        if (!*s || strlen(s) > 4)
                return FAIL(rep, EINVAL, "field \"mode\" must be an octal string like \"0640\"");
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '7')
                        return FAIL(rep, EINVAL, "field \"mode\" must be an octal string like \"0640\"");
                m = m * 8 + (unsigned)(*p - '0');
        }
        if (m > 0777)
                return FAIL(rep, EINVAL, "mode %s: only permission bits (0777) are allowed", s);
        *out = m;
        return 1;
}

static int f_prot(struct req *req, int *out, struct reply *rep)
{
        const char *s;
        int r = f_str(req, "prot", 0, &s, rep), m = 0;

        *out = PROT_READ | PROT_WRITE | PROT_EXEC;
        if (r <= 0)
                return r;
        for (const char *p = s; *p; p++) {
                int bit = *p == 'r' ? PROT_READ : *p == 'w' ? PROT_WRITE :
                          *p == 'x' ? PROT_EXEC : 0;
                if (!bit || (m & bit))
                        return FAIL(rep, EINVAL, "field \"prot\" must be letters r, w, x (like \"rw\")");
                m |= bit;
        }
        *out = m;
        return 1;
}

/* A name: 1..255 bytes of UTF-8 without control characters. */
static int valid_name(const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);

        if (n == 0 || n >= ASHMEM_NAME_LEN)
                return 0;
        while (*p) {
                unsigned c = *p;
                int k;
                if (c < 0x20 || c == 0x7f)
                        return 0;
                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        k = 1;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3;
                else
                        return 0;
                {
                        unsigned cp = c & (0x3fu >> k);
                        for (int i = 1; i <= k; i++) {
                                if ((p[i] & 0xc0) != 0x80)
                                        return 0;
                                cp = cp << 6 | (p[i] & 0x3fu);
                        }
                        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                            (cp >= 0x80 && cp < 0xa0))
                                return 0;
                }
                p += k + 1;
        }
        return 1;
}

static int f_name(struct req *req, const char *k, int required,
                  const char **out, struct reply *rep)
{
        int r = f_str(req, k, required, out, rep);

        if (r > 0 && !valid_name(*out))
                return FAIL(rep, EINVAL, "field \"%s\": a name is 1 to 255 bytes of UTF-8 "
                            "without control characters", k);
        return r;
}

/* ---------------------------------------------------------------- records */

/* The region's protection and page counts (of the pages a view touches). */
static void counts(const struct entry *e, int *prot, size_t *pages, size_t *pinned,
                   size_t *unpinned, size_t *purged)
{
        ashmem_stats st;
        const struct held_region *r = e->r;
        size_t ps = am_page_size();

        *pages = *pinned = *unpinned = *purged = 0;
        if (r->hold) {
                am_hold_stats(r->hold, &st, prot);
        } else {
                *prot = ashmem_get_prot(r->fd);
                if (*prot < 0)
                        *prot = 0;
                if (ashmem_get_stats(r->fd, &st) < 0)
                        return;
        }
        if (e->ranged && e->length) {
                size_t first = e->offset / ps, last = (e->offset + e->length - 1) / ps;
                size_t n = last + 1;
                char *map;
                if (n <= (1u << 20) && (map = malloc(n))) {
                        int ok = 1;
                        if (r->hold)
                                am_hold_page_map(r->hold, map, n);
                        else
                                ok = ashmem_get_page_map(r->fd, map, n) == 0;
                        if (ok) {
                                for (size_t i = first; i <= last; i++) {
                                        ++*pages;
                                        if (map[i] == 'P')
                                                ++*pinned;
                                        else if (map[i] == 'u')
                                                ++*unpinned;
                                        else
                                                ++*purged;
                                }
                                free(map);
                                return;
                        }
                        free(map);
                }
        }
        *pages = st.pages;
        *pinned = st.pinned;
        *unpinned = st.unpinned;
        *purged = st.purged;
}

/* The record's fields that never change, made once per name. */
static int static_record(struct entry *e)
{
        struct am_jw s = { 0 };
        char when[32];
        struct tm tm;

        gmtime_r(&e->created, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        am_jw_puts(&s, "\"name\":");
        am_jw_string(&s, e->name);
        am_jw_printf(&s, ",\"size\":%zu,\"mode\":\"%04o\",\"uid\":%u,\"gid\":%u",
                  e->ranged ? e->length : e->r->size, e->mode, (unsigned)e->uid,
                  (unsigned)e->gid);
        am_jw_key(&s, "user");
        am_jw_string(&s, e->user);
        am_jw_key(&s, "group");
        am_jw_string(&s, e->group);
        am_jw_printf(&s, ",\"created\":\"%s\",\"transient\":%s", when,
                  e->owner ? "true" : "false");
        if (e->ranged) {
                if (e->of) {
                        am_jw_key(&s, "of");
                        am_jw_string(&s, e->of);
                }
                am_jw_printf(&s, ",\"offset\":%zu,\"length\":%zu", e->offset, e->length);
        }
        if (s.overflow) {
                am_jw_free(&s);
                return -ENOMEM;
        }
        /* kept for the name's life: give back the buffer's spare room (a
         * record of 200 bytes would otherwise hold 1 KiB per name) */
        e->rec = realloc(s.buf, s.len + 1);
        if (!e->rec)
                e->rec = s.buf;
        e->reclen = s.len;
        return 0;
}

/* The region record's fields (no braces, no leading comma): what never
 * changes, then the protection and the page counts of now. */
static void write_record(struct am_jw *s, struct entry *e)
{
        static const char *const pstr[8] = {
                "---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx"
        };
        size_t pages, pinned, unpinned, purged;
        int prot;

        if (!e->rec && static_record(e) < 0) {
                s->overflow = 1;
                return;
        }
        counts(e, &prot, &pages, &pinned, &unpinned, &purged);
        am_jw_raw(s, e->rec, e->reclen);
        am_jw_puts(s, ",\"prot\":\"");
        am_jw_raw(s, pstr[prot & 7], 3);
        am_jw_puts(s, "\",\"prot_mask\":");
        am_jw_uint(s, (unsigned)prot & 7);
        am_jw_puts(s, ",\"pages\":");
        am_jw_uint(s, pages);
        am_jw_puts(s, ",\"pinned\":");
        am_jw_uint(s, pinned);
        am_jw_puts(s, ",\"unpinned\":");
        am_jw_uint(s, unpinned);
        am_jw_puts(s, ",\"purged\":");
        am_jw_uint(s, purged);
        am_jw_puts(s, ",\"attaches\":");
        am_jw_uint(s, e->attaches);
}

static void reply_record(struct reply *rep, struct entry *e)
{
        am_jw_puts(&rep->sb, ",");
        write_record(&rep->sb, e);
}

/* ---------------------------------------------------------------- limits */

static int quota(struct broker *b, const struct conn *c, unsigned long long add,
                 struct reply *rep)
{
        const struct uid_use *u = uid_use(b, c->uid, 0);
        unsigned long long bytes = u ? u->bytes : 0;
        size_t names = u ? u->names : 0;

        if (names + 1 > b->cfg->max_regions)
                return FAIL(rep, ENOSPC, "uid %u holds %zu names (limit %u)",
                            (unsigned)c->uid, names, b->cfg->max_regions);
        if (add && (bytes + add > b->max_bytes || add > b->max_bytes))
                return FAIL(rep, EDQUOT, "uid %u would hold %llu bytes (limit %llu)",
                            (unsigned)c->uid, bytes + add, b->max_bytes);
        return 0;
}

/* ---------------------------------------------------------------- operations */

typedef int op_fn(struct broker *b, struct conn *c, struct req *req,
                  int *fds, int nfds, struct reply *rep);

static int op_hello(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        (void)b; (void)c; (void)req; (void)fds; (void)nfds;
        am_jw_printf(&rep->sb, ",\"version\":%d", ASHMEM_BROKER_PROTOCOL);
        am_jw_key(&rep->sb, "driver");
        am_jw_string(&rep->sb, ashmem_driver_name());
        am_jw_printf(&rep->sb, ",\"pid\":%d", (int)getpid());
        return 0;
}

static int op_create(struct broker *b, struct conn *c, struct req *req,
                     int *fds, int nfds, struct reply *rep)
{
        const char *name;
        unsigned long long size;
        unsigned mode;
        int prot, fd, ctl = -1, r;
        struct stat st;
        struct held_region *rg;
        struct entry *e;

        (void)fds; (void)nfds;
        if ((r = f_name(req, "name", 1, &name, rep)) < 0 ||
            (r = f_uint(req, "size", 1, ASHMEM_SIZE_MAX, &size, rep)) < 0 ||
            (r = f_prot(req, &prot, rep)) < 0 || (r = f_mode(req, &mode, rep)) < 0)
                return r;
        if (size == 0)
                return FAIL(rep, EINVAL, "field \"size\" must be at least 1");
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = quota(b, c, size, rep)) < 0)
                return r;
        fd = ashmem_create_region(name, (size_t)size);
        if (fd < 0)
                return -errno;
        r = ashmem_get_control(fd, &ctl);
        if (r == 0 && prot != (PROT_READ | PROT_WRITE | PROT_EXEC) &&
            ashmem_set_prot_region(fd, prot) < 0)
                r = -errno;
        if (r == 0 && fstat(fd, &st) < 0)
                r = -errno;
        if (r == 0)
                r = region_new(b, fd, ctl, &st, &rg);
        if (r < 0) {
                close(fd);
                if (ctl >= 0)
                        close(ctl);
                return r;
        }
        r = entry_add(b, c, name, rg, mode, NULL, &e);
        if (r < 0) {
                rg->refs = 1;
                region_unref(b, rg);
                return r;
        }
        blog(b, 1, "%s: created by uid %u pid %d, %llu bytes, mode %04o", name,
             (unsigned)c->uid, (int)c->pid, size, mode);
        reply_record(rep, e);
        rep->fds[0] = rg->fd;
        rep->fds[1] = rg->ctl;
        rep->nfds = rg->ctl >= 0 ? 2 : 1;
        return 0;
}

/* A received descriptor's access mode; -errno. */
static int accmode(int fd)
{
        int fl = fcntl(fd, F_GETFL);
        return fl < 0 ? -errno : (fl & O_ACCMODE);
}

/* Take a received control descriptor for the region fd: check it and keep
 * the library's own copy (what the broker purges through is what it hands
 * out). Returns the control descriptor to keep, or -errno. */
static int adopt_control(int fd, int ctl, struct reply *rep)
{
        int r, own;

        r = accmode(ctl);
        if (r < 0)
                return r;
        if (r != O_RDWR)
                return FAIL(rep, EACCES, "the control descriptor must be read-write");
        if (ashmem_set_control(fd, ctl) < 0)
                return FAIL(rep, EINVAL, "the control descriptor does not belong to the region");
        r = ashmem_get_control(fd, &own);
        return r < 0 ? r : own;
}

static int op_share(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        const char *name;
        unsigned mode;
        int transient, r, ho, hl;
        unsigned long long off = 0, len = 0;
        size_t size;
        struct stat st;
        struct held_region *rg;
        struct entry *e;

        if ((r = f_name(req, "name", 1, &name, rep)) < 0 ||
            (r = f_mode(req, &mode, rep)) < 0 ||
            (r = f_bool(req, "transient", &transient, rep)) < 0 ||
            (ho = r = f_uint(req, "offset", 0, ASHMEM_SIZE_MAX, &off, rep)) < 0 ||
            (hl = r = f_uint(req, "length", 0, ASHMEM_SIZE_MAX, &len, rep)) < 0)
                return r;
        if (ho != hl)
                return FAIL(rep, EINVAL, "fields \"offset\" and \"length\" go together");
        if (!ashmem_valid(fds[0]))
                return FAIL(rep, EINVAL, "the descriptor is not a region");
        r = accmode(fds[0]);
        if (r < 0)
                return r;
        if (r != O_RDWR)
                return FAIL(rep, EACCES, "the region descriptor must be read-write");
        if (ashmem_get_size(fds[0], &size) < 0 || fstat(fds[0], &st) < 0)
                return FAIL(rep, EINVAL, "the descriptor is not a region");
        if (hl && (len == 0 || off > size || len > size - off))
                return FAIL(rep, EINVAL, "the range %llu+%llu is not inside the region (%zu bytes)",
                            off, len, size);
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = quota(b, c, size, rep)) < 0)
                return r;
        rg = region_find(b, &st);
        if (!rg) {
                int ctl = -1;
                if (nfds == 2 && (ctl = adopt_control(fds[0], fds[1], rep)) < 0)
                        return ctl;
                r = region_new(b, fds[0], ctl, &st, &rg);
                if (r < 0) {
                        if (ctl >= 0)
                                close(ctl);
                        return r;
                }
                fds[0] = -1;            /* kept */
        } else if (rg->ctl < 0 && nfds == 2) {
                int ctl = adopt_control(rg->fd, fds[1], rep);
                if (ctl < 0)
                        return ctl;
                rg->ctl = ctl;
                if (!rg->hold)
                        (void)am_hold_new(rg->fd, &rg->hold);
        }
        rg->refs++;                     /* over entry_add's failure */
        r = entry_add(b, c, name, rg, mode, NULL, &e);
        region_unref(b, rg);
        if (r < 0)
                return r;
        if (hl) {
                e->ranged = 1;
                e->offset = (size_t)off;
                e->length = (size_t)len;
        }
        if (transient) {
                e->owner = c;
                c->transients++;
        }
        blog(b, 1, "%s: shared by uid %u pid %d, %zu bytes, mode %04o%s", name,
             (unsigned)c->uid, (int)c->pid, size, mode, transient ? ", transient" : "");
        reply_record(rep, e);
        return 0;
}

static int op_slice(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        const char *name, *of;
        unsigned mode;
        unsigned long long off, len;
        size_t bofs, blen;
        struct entry *base, *e;
        int r;

        (void)fds; (void)nfds;
        if ((r = f_name(req, "name", 1, &name, rep)) < 0 ||
            (r = f_name(req, "of", 1, &of, rep)) < 0 ||
            (r = f_uint(req, "offset", 1, ASHMEM_SIZE_MAX, &off, rep)) < 0 ||
            (r = f_uint(req, "length", 1, ASHMEM_SIZE_MAX, &len, rep)) < 0 ||
            (r = f_mode(req, &mode, rep)) < 0)
                return r;
        base = name_find(b, of);
        if (!base)
                return FAIL(rep, ENOENT, "no region named \"%.60s\"", of);
        if (!owns(c, base))
                return FAIL(rep, EACCES, "only the owner of \"%.60s\" may slice it", of);
        bofs = base->ranged ? base->offset : 0;
        blen = base->ranged ? base->length : base->r->size;
        if (len == 0 || off > blen || len > blen - off)
                return FAIL(rep, EINVAL, "the range %llu+%llu is not inside \"%.60s\" (%zu bytes)",
                            off, len, of, blen);
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = quota(b, c, 0, rep)) < 0)
                return r;
        {
                char *ofc = strdup(of);
                if (!ofc)
                        return -ENOMEM;
                r = entry_add(b, c, name, base->r, mode, ofc, &e);
                if (r < 0) {
                        free(ofc);
                        return r;
                }
        }
        e->ranged = 1;
        e->offset = bofs + (size_t)off;
        e->length = (size_t)len;
        /* a view of a transient region goes with it */
        if (base->owner) {
                e->owner = base->owner;
                e->owner->transients++;
        }
        blog(b, 1, "%s: slice of %s at %llu, %llu bytes, by uid %u", name, of, off, len,
             (unsigned)c->uid);
        reply_record(rep, e);
        return 0;
}

static int op_attach(struct broker *b, struct conn *c, struct req *req,
                     int *fds, int nfds, struct reply *rep)
{
        const char *name, *access;
        struct entry *e;
        int r, rw;

        (void)fds; (void)nfds;
        if ((r = f_str(req, "name", 1, &name, rep)) < 0 ||
            (r = f_str(req, "access", 1, &access, rep)) < 0)
                return r;
        if (strcmp(access, "r") != 0 && strcmp(access, "rw") != 0)
                return FAIL(rep, EINVAL, "field \"access\" must be \"r\" or \"rw\"");
        rw = access[1] != 0;
        e = name_find(b, name);
        if (!e)
                return FAIL(rep, ENOENT, "no region named \"%.60s\"", name);
        if (!allowed(c, e, rw ? ACC_R | ACC_W : ACC_R))
                return FAIL(rep, EACCES, "%s access to \"%.60s\" denied",
                            rw ? "read-write" : "read", name);
        if (rw) {
                rep->fds[0] = e->r->fd;
                rep->fds[1] = e->r->ctl;
        } else {
                if ((r = region_ro(e->r)) < 0)
                        return r;
                rep->fds[0] = e->r->ro_fd;
                rep->fds[1] = e->r->ro_ctl;
        }
        rep->nfds = rep->fds[1] >= 0 ? 2 : 1;
        e->attaches++;
        b->n.attaches++;
        reply_record(rep, e);
        return 0;
}

static int op_lookup(struct broker *b, struct conn *c, struct req *req,
                     int *fds, int nfds, struct reply *rep)
{
        struct stat st;
        struct held_region *rg;
        struct entry *e = NULL;
        int mode, r;

        (void)c; (void)req; (void)nfds;
        if (fstat(fds[0], &st) < 0)
                return -errno;
        rg = region_find(b, &st);
        if (!rg)
                return FAIL(rep, ENOENT, "the broker does not hold this region");
        if (rg->ctl < 0)
                return FAIL(rep, ENOENT, "this region has no shared pin state");
        {
                struct name_pos p = { 0, 0 };
                struct entry *n;
                while ((n = name_next(b, &p)))
                        if (n->r == rg && (!e || (e->ranged && !n->ranged)))
                                e = n;
        }
        if (!e)
                return FAIL(rep, ENOENT, "the broker does not hold this region");
        mode = accmode(fds[0]);
        if (mode < 0)
                return mode;
        if (mode == O_RDWR) {
                rep->fds[0] = rg->ctl;
        } else {
                if ((r = region_ro(rg)) < 0)
                        return r;
                rep->fds[0] = rg->ro_ctl;
        }
        rep->nfds = 1;
        reply_record(rep, e);
        return 0;
}

static int op_list(struct broker *b, struct conn *c, struct req *req,
                   int *fds, int nfds, struct reply *rep)
{
        const char *cursor;
        const struct entry *last = NULL;
        struct name_pos p = { 0, 0 };
        struct entry *e;
        size_t n = 0;
        int r, more = 0;

        (void)fds; (void)nfds;
        if ((r = f_str(req, "cursor", 0, &cursor, rep)) < 0)
                return r;
        am_jw_puts(&rep->sb, ",\"regions\":[");
        if (cursor)
                p = name_bound(b, cursor, 1);
        while ((e = name_next(b, &p))) {
                if (!visible(c, e))
                        continue;
                if (n == LIST_PAGE) {
                        more = 1;
                        break;
                }
                am_jw_puts(&rep->sb, n ? ",{" : "{");
                write_record(&rep->sb, e);
                am_jw_puts(&rep->sb, "}");
                last = e;
                n++;
        }
        am_jw_puts(&rep->sb, "]");
        if (more) {
                am_jw_key(&rep->sb, "cursor");
                am_jw_string(&rep->sb, last->name);
        }
        return 0;
}

static int op_info(struct broker *b, struct conn *c, struct req *req,
                   int *fds, int nfds, struct reply *rep)
{
        const char *name;
        struct entry *e;
        int r;

        (void)fds; (void)nfds;
        if ((r = f_str(req, "name", 1, &name, rep)) < 0)
                return r;
        e = name_find(b, name);
        if (!e)
                return FAIL(rep, ENOENT, "no region named \"%.60s\"", name);
        if (!visible(c, e))
                return FAIL(rep, EACCES, "access to \"%.60s\" denied", name);
        reply_record(rep, e);
        return 0;
}

static int op_unshare(struct broker *b, struct conn *c, struct req *req,
                      int *fds, int nfds, struct reply *rep)
{
        const char *name;
        struct name_pos p;
        struct entry *e;
        int r;

        (void)fds; (void)nfds;
        if ((r = f_str(req, "name", 1, &name, rep)) < 0)
                return r;
        p = name_bound(b, name, 0);
        e = name_at(b, p);
        if (!e || strcmp(e->name, name) != 0)
                return FAIL(rep, ENOENT, "no region named \"%.60s\"", name);
        if (!owns(c, e))
                return FAIL(rep, EACCES, "only the owner of \"%.60s\" may unshare it", name);
        entry_remove(b, p);
        return 0;
}

static int op_purge(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        const char *name;
        struct job *j;
        size_t n = 0;
        int r;

        (void)fds; (void)nfds;
        if ((r = f_str(req, "name", 0, &name, rep)) < 0)
                return r;
        if (name) {
                struct entry *e = name_find(b, name);
                if (!e)
                        return FAIL(rep, ENOENT, "no region named \"%.60s\"", name);
                if (!owns(c, e))
                        return FAIL(rep, EACCES, "only the owner of \"%.60s\" may purge it", name);
                j = job_new(1);
                if (!j)
                        return -ENOMEM;
                j->regions[0] = e->r;
                j->names[0] = strdup(e->name);
                n = 1;
        } else {
                struct name_pos p = { 0, 0 };
                unsigned long long walk = names_walk(b);
                struct entry *e;

                j = job_new(b->nnames);
                if (!j)
                        return -ENOMEM;
                while ((e = name_next(b, &p))) {
                        /* each region once, under its first name */
                        if (!owns(c, e) || e->r->seen == walk)
                                continue;
                        e->r->seen = walk;
                        j->regions[n] = e->r;
                        j->names[n] = strdup(e->name);
                        n++;
                }
        }
        j->n = n;
        for (size_t k = 0; k < n; k++)
                j->regions[k]->refs++;
        if (n == 0) {
                job_free(b, j);
                am_jw_puts(&rep->sb, ",\"pages\":0");
                return 0;
        }
        j->c = c;
        j->why = "request";
        j->below = -1;
        c->job = j;
        purge_submit(b, j);
        return 1;
}

static int op_stats(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        struct am_jw *s = &rep->sb;

        (void)c; (void)req; (void)fds; (void)nfds;
        am_jw_printf(s, ",\"connections\":%u,\"regions\":%zu,\"bytes\":%llu", b->nconns,
                  b->nnames, b->bytes);
        am_jw_printf(s, ",\"requests\":%llu,\"errors\":%llu,\"attaches\":%llu",
                  b->n.requests, b->n.errors, b->n.attaches);
        am_jw_printf(s, ",\"purges\":%llu,\"pages_purged\":%llu,\"dropped\":%llu",
                  b->n.purges, b->n.pages_purged, b->n.dropped);
        am_jw_printf(s, ",\"uptime\":%lld,\"pid\":%d", (long long)(time(NULL) - b->started),
                  (int)getpid());
        am_jw_printf(s, ",\"limits\":{\"connections\":%u,\"regions_per_uid\":%u",
                  b->cfg->max_connections, b->cfg->max_regions);
        am_jw_printf(s, ",\"bytes_per_uid\":%llu,\"message\":%zu,\"idle_timeout\":%u}",
                  b->max_bytes, b->cfg->max_message, b->cfg->idle_timeout_ms / 1000);
        am_jw_printf(s, ",\"purger\":{\"psi\":%s", b->psifd >= 0 ? "true" : "false");
        if (b->below >= 0)
                am_jw_printf(s, ",\"purge_below\":%d", b->below);
        am_jw_puts(s, "}");
        return 0;
}

static const struct op {
        const char *name;
        op_fn *fn;
        int min_fds, max_fds;
} ops[] = {
        { "hello",   op_hello,   0, 0 },
        { "create",  op_create,  0, 0 },
        { "share",   op_share,   1, 2 },
        { "slice",   op_slice,   0, 0 },
        { "attach",  op_attach,  0, 0 },
        { "lookup",  op_lookup,  1, 1 },
        { "list",    op_list,    0, 0 },
        { "info",    op_info,    0, 0 },
        { "unshare", op_unshare, 0, 0 },
        { "purge",   op_purge,   0, 0 },
        { "stats",   op_stats,   0, 0 },
};

int ops_dispatch(struct broker *b, struct conn *c, struct req *req,
                 int *fds, int nfds, struct reply *rep)
{
        const struct am_jfield *v = am_json_get(&req->o, "v");
        const char *opname;
        uint64_t ver;
        int r;

        if (!v)
                return FAIL(rep, EINVAL, "missing field \"v\"");
        if (am_json_u64(v, UINT64_MAX, &ver) < 0 || ver != ASHMEM_BROKER_PROTOCOL)
                return FAIL(rep, EPROTO, "unsupported protocol version (this broker speaks %d)",
                            ASHMEM_BROKER_PROTOCOL);
        if ((r = f_str(req, "op", 1, &opname, rep)) < 0)
                return r;
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
                if (strcmp(ops[i].name, opname) != 0)
                        continue;
                if (nfds < ops[i].min_fds || nfds > ops[i].max_fds) {
                        if (ops[i].min_fds == ops[i].max_fds)
                                return FAIL(rep, EINVAL, "%s takes %d descriptor%s", ops[i].name,
                                            ops[i].min_fds, ops[i].min_fds == 1 ? "" : "s");
                        return FAIL(rep, EINVAL, "%s takes %d or %d descriptors", ops[i].name,
                                    ops[i].min_fds, ops[i].max_fds);
                }
                return ops[i].fn(b, c, req, fds, nfds, rep);
        }
        return FAIL(rep, EOPNOTSUPP, "unknown op \"%.40s\"", opname);
}
