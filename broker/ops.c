/* SPDX-License-Identifier: MIT */
/*
 * The broker's operations: the op table of ashmem-protocol(7), over the
 * regions (regions.c), the names (names.c), access control (access.c), the
 * request's fields (fields.c) and region records (records.c).
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
#include "drivers/memfd/control.h"    /* the control block's size */

/* The name called name (and its place, when p is not NULL), or NULL with
 * the ENOENT error in rep, when it does not exist or peer c may not see
 * it. */
static struct entry *existing(struct broker *b, const struct conn *c, const char *name,
                              struct name_pos *p, struct reply *rep)
{
        struct name_pos at;
        struct entry *e = name_lookup(b, name, &at);

        /* a name the caller may not see is answered as a missing one: the
         * answer does not tell that it exists */
        if (!e || !access_visible(c, e)) {
                (void)FAIL(rep, ENOENT, "no region named \"%.60s\"", name);
                return NULL;
        }
        if (p)
                *p = at;
        return e;
}

/* The name the request's field "name" names (and its place, when p is not
 * NULL): 0, or -errno with the message in rep. */
static int named(struct broker *b, const struct conn *c, struct req *req, struct name_pos *p,
                 struct entry **e, struct reply *rep)
{
        const char *name;
        int r = field_str(req, "name", 1, &name, rep);

        if (r < 0)
                return r;
        *e = existing(b, c, name, p, rep);
        return *e ? 0 : -ENOENT;
}

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
        if ((r = field_name(req, "name", 1, &name, rep)) < 0 ||
            (r = field_uint(req, "size", 1, ASHMEM_SIZE_MAX, &size, rep)) < 0 ||
            (r = field_prot(req, &prot, rep)) < 0 || (r = field_mode(req, &mode, rep)) < 0)
                return r;
        if (size == 0)
                return FAIL(rep, EINVAL, "field \"size\" must be at least 1");
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = uid_quota(b, c, size, rep)) < 0 || (r = uid_fd_quota(b, c, rep)) < 0)
                return r;
        {
                /* the broker's names go to 255 bytes (the protocol's); a
                 * region's own name keeps the 249 a memfd can */
                char rname[250];
                size_t n = strlen(name);
                if (n >= sizeof(rname)) {
                        n = sizeof(rname) - 1;
                        while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
                                n--;        /* not inside a UTF-8 character */
                }
                memcpy(rname, name, n);
                rname[n] = 0;
                fd = ashmem_create_region(rname, (size_t)size);
        }
        if (fd < 0)
                return -errno;
        /* no control block until a holder needs one (op_lookup): the
         * broker holds one descriptor for the region. A protection the
         * data memfd's seals cannot say (READ or EXEC dropped) lives in a
         * block, made now. */
        r = 0;
        if (prot != (PROT_READ | PROT_WRITE | PROT_EXEC) &&
            ashmem_set_prot_region(fd, prot) < 0)
                r = -errno;
        if (r == 0 && (prot & (PROT_READ | PROT_EXEC)) != (PROT_READ | PROT_EXEC))
                r = ashmem_get_control(fd, &ctl);
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
        rg->made = 1;
        uid_fd_charge(b, c, rg);
        r = entry_add(b, c, name, rg, mode, NULL, &e);
        if (r < 0) {
                rg->refs = 1;
                region_unref(b, rg);
                return r;
        }
        blog(b, 1, "%s: created by uid %u pid %d, %llu bytes, mode %04o", name,
             (unsigned)c->uid, (int)c->pid, size, mode);
        reply_record(rep, e, c);
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

/* A shared memfd must keep its size (fd, what: "region" or "control"):
 * sealed against growing and shrinking. 0 or -EINVAL with the message. */
static int sealed(int fd, const char *what, struct reply *rep)
{
        int seals = fcntl(fd, F_GET_SEALS);

        if (seals < 0 || (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) != (F_SEAL_GROW | F_SEAL_SHRINK))
                return FAIL(rep, EINVAL, "the %s memfd must be sealed against resizing: "
                            "create it with MFD_ALLOW_SEALING and add "
                            "F_SEAL_GROW|F_SEAL_SHRINK (fcntl F_ADD_SEALS) before sharing it", what);
        return 0;
}

/* No reader may reopen a shared memfd writable through /proc/PID/fd: the
 * group's and others' write bits go (memfds are born 0777); if the broker
 * may not change the mode, the memfd is refused. The mode must hold after
 * the share too, and an inode's owner may change it back: a broker that
 * may (root, or CAP_CHOWN) first makes the inode its own, so that the
 * sharer no longer can. One that may not is a per-user broker, whose
 * sharers are its own user: the mode holds against the other users, who
 * may not change the mode of an inode they do not own. */
static int tighten(int fd, const struct stat *st, const char *what, struct reply *rep)
{
        if (st->st_uid != geteuid() && fchown(fd, geteuid(), getegid()) < 0 &&
            errno != EPERM)
                return FAIL(rep, errno, "the %s memfd: fchown: %s", what, strerror(errno));
        if (!(st->st_mode & 022))
                return 0;
        if (fchmod(fd, st->st_mode & 07755) == 0)
                return 0;
        return FAIL(rep, EACCES, "the %s memfd has mode %04o, which lets readers reopen it "
                    "writable, and the broker may not change it: fchmod it to 0600 before sharing",
                    what, (unsigned)(st->st_mode & 07777));
}

/* Take a received control descriptor for the region fd: check it and keep
 * the library's own copy (what the broker purges through is what it hands
 * out). Returns the control descriptor to keep, or -errno. */
static int adopt_control(int fd, int ctl, struct reply *rep)
{
        struct stat st, cst;
        size_t want;
        int r, own;

        r = accmode(ctl);
        if (r < 0)
                return r;
        if (r != O_RDWR)
                return FAIL(rep, EACCES, "the control descriptor must be read-write");
        if (fstat(fd, &st) < 0 || fstat(ctl, &cst) < 0)
                return -errno;
        if (!S_ISREG(cst.st_mode))
                return FAIL(rep, EINVAL, "the control descriptor is not a memfd");
        /* exactly the size its geometry needs: no more for the broker to
         * map, no less for anyone to fault on */
        want = amc_block_size(((uint64_t)st.st_size + am_page_size() - 1) / am_page_size());
        if ((uint64_t)cst.st_size != want)
                return FAIL(rep, EINVAL, "the control memfd has %lld bytes; a region of %lld bytes needs %zu",
                            (long long)cst.st_size, (long long)st.st_size, want);
        if ((r = sealed(ctl, "control", rep)) < 0 || (r = tighten(ctl, &cst, "control", rep)) < 0)
                return r;
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

        if ((r = field_name(req, "name", 1, &name, rep)) < 0 ||
            (r = field_mode(req, &mode, rep)) < 0 ||
            (r = field_bool(req, "transient", &transient, rep)) < 0 ||
            (ho = r = field_uint(req, "offset", 0, ASHMEM_SIZE_MAX, &off, rep)) < 0 ||
            (hl = r = field_uint(req, "length", 0, ASHMEM_SIZE_MAX, &len, rep)) < 0)
                return r;
        if (ho != hl)
                return FAIL(rep, EINVAL, "fields \"offset\" and \"length\" go together");
        /* a memfd at all (ashmem_valid() would also refuse an unsealed
         * one, which sealed() below refuses saying how to seal it) */
        if (ashmem_get_prot(fds[0]) < 0)
                return FAIL(rep, EINVAL, "the descriptor is not a region");
        r = accmode(fds[0]);
        if (r < 0)
                return r;
        if (r != O_RDWR)
                return FAIL(rep, EACCES, "the region descriptor must be read-write");
        if (ashmem_get_size(fds[0], &size) < 0 || fstat(fds[0], &st) < 0)
                return FAIL(rep, EINVAL, "the descriptor is not a region");
        if ((r = sealed(fds[0], "region", rep)) < 0 || (r = tighten(fds[0], &st, "region", rep)) < 0)
                return r;
        if (hl && (len == 0 || off > size || len > size - off))
                return FAIL(rep, EINVAL, "the range %llu+%llu is not inside the region (%zu bytes)",
                            off, len, size);
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = uid_quota(b, c, size, rep)) < 0)
                return r;
        rg = region_find(b, &st);
        if (!rg && (r = uid_fd_quota(b, c, rep)) < 0)
                return r;
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
                uid_fd_charge(b, c, rg);
        } else if (rg->ctl < 0 && nfds == 2) {
                int ctl = adopt_control(rg->fd, fds[1], rep);
                if (ctl < 0)
                        return ctl;
                rg->ctl = ctl;
                if (!rg->hold) {
                        /* the purge thread reads it (atomically) */
                        struct am_hold *h = NULL;
                        if (am_hold_new(rg->fd, &h) == 0)
                                __atomic_store_n(&rg->hold, h, __ATOMIC_RELEASE);
                }
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
        if (transient)
                entry_set_owner(e, c);
        blog(b, 1, "%s: shared by uid %u pid %d, %zu bytes, mode %04o%s", name,
             (unsigned)c->uid, (int)c->pid, size, mode, transient ? ", transient" : "");
        reply_record(rep, e, c);
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
        if ((r = field_name(req, "name", 1, &name, rep)) < 0 ||
            (r = field_name(req, "of", 1, &of, rep)) < 0 ||
            (r = field_uint(req, "offset", 1, ASHMEM_SIZE_MAX, &off, rep)) < 0 ||
            (r = field_uint(req, "length", 1, ASHMEM_SIZE_MAX, &len, rep)) < 0 ||
            (r = field_mode(req, &mode, rep)) < 0)
                return r;
        base = existing(b, c, of, NULL, rep);
        if (!base)
                return -ENOENT;
        if (!access_owns(c, base))
                return FAIL(rep, EACCES, "only the owner of \"%.60s\" may slice it", of);
        /* a slice is a named view, not a boundary: its descriptor reaches
         * the whole region, so it may grant nothing the region does not */
        if (mode & ~base->mode)
                return FAIL(rep, EPERM, "mode %04o is wider than the mode of \"%.40s\" (%04o): "
                            "a slice may only narrow it", mode, of, base->mode);
        bofs = base->ranged ? base->offset : 0;
        blen = base->ranged ? base->length : base->r->size;
        if (len == 0 || off > blen || len > blen - off)
                return FAIL(rep, EINVAL, "the range %llu+%llu is not inside \"%.60s\" (%zu bytes)",
                            off, len, of, blen);
        if (name_find(b, name))
                return FAIL(rep, EEXIST, "a region named \"%.60s\" exists", name);
        if ((r = uid_quota(b, c, 0, rep)) < 0)
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
        if (base->owner)
                entry_set_owner(e, base->owner);
        blog(b, 1, "%s: slice of %s at %llu, %llu bytes, by uid %u", name, of, off, len,
             (unsigned)c->uid);
        reply_record(rep, e, c);
        return 0;
}

/* Attach name (read-write when rw), checked against the owner the caller
 * names (when owned), answered with the record or, without it, what a
 * holder needs to map it. */
static int attach_name(struct broker *b, struct conn *c, const char *name, int rw, int record,
                       int owned, unsigned long long owner, struct reply *rep)
{
        struct entry *e = existing(b, c, name, NULL, rep);
        int r;

        if (!e)
                return -ENOENT;
        if (owned && e->uid != (uid_t)owner)
                return FAIL(rep, EPERM, "\"%.60s\" belongs to uid %u, not uid %llu", name,
                            (unsigned)e->uid, owner);
        if (!access_allowed(c, e, rw ? ACC_R | ACC_W : ACC_R))
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
        if (record) {
                reply_record(rep, e, c);
                return 0;
        }
        /* "record":false: what a holder needs to map it, nothing that
         * costs a look at the region (its seals, its pin state) */
        if (!e->ranged) {
                struct held_region *h = e->r;
                int ctl = rep->nfds == 2;
                if (!h->tail_len || h->tail_ctl != ctl) {
                        /* the size and, with the control, the region's
                         * identity: a holder that keeps its pin state
                         * already knows so without a look at the
                         * descriptor. Written once (a block made later
                         * writes it again); the tail holds the longest
                         * (three 20-digit numbers and their keys). */
                        struct am_jw t = { .buf = h->tail, .cap = sizeof(h->tail), .fixed = 1 };
                        am_jw_puts(&t, ",\"size\":");
                        am_jw_uint(&t, h->size);
                        if (ctl) {
                                am_jw_puts(&t, ",\"dev\":");
                                am_jw_uint(&t, h->id.dev);
                                am_jw_puts(&t, ",\"ino\":");
                                am_jw_uint(&t, h->id.ino);
                        }
                        h->tail_len = (unsigned char)t.len;
                        h->tail_ctl = (unsigned char)ctl;
                }
                am_jw_raw(&rep->sb, h->tail, h->tail_len);
                return 0;
        }
        am_jw_puts(&rep->sb, ",\"size\":");
        am_jw_uint(&rep->sb, e->length);
        am_jw_puts(&rep->sb, ",\"offset\":");
        am_jw_uint(&rep->sb, e->offset);
        am_jw_puts(&rep->sb, ",\"length\":");
        am_jw_uint(&rep->sb, e->length);
        return 0;
}

static int op_attach(struct broker *b, struct conn *c, struct req *req,
                     int *fds, int nfds, struct reply *rep)
{
        const char *name, *access;
        unsigned long long owner;
        int r, record = 1, owned;

        (void)fds; (void)nfds;
        if ((r = field_str(req, "name", 1, &name, rep)) < 0 ||
            (r = field_str(req, "access", 1, &access, rep)) < 0)
                return r;
        if (strcmp(access, "r") != 0 && strcmp(access, "rw") != 0)
                return FAIL(rep, EINVAL, "field \"access\" must be \"r\" or \"rw\"");
        if ((r = field_bool(req, "record", &record, rep)) < 0)
                return r;
        if (r == 0)
                record = 1;             /* the record, unless asked not to */
        if ((r = owned = field_uint(req, "owner", 0, UINT32_MAX, &owner, rep)) < 0)
                return r;
        return attach_name(b, c, name, access[1] != 0, record, owned, owner, rep);
}

/* The attach request exactly as the library writes it for a plain name:
 * {"v":1,"op":"attach","name":"NAME","access":"rw"|"r"[,"record":false]},
 * read without the JSON scanner (every client's hand-out goes this way).
 * A name of printable ASCII other than '"' and '\\', at most
 * ASHMEM_NAME_LEN bytes: text the scanner would decode to itself. 1 and
 * the request in *q, or 0 for any other message, however close (the
 * scanner's then). */
int ops_quick_parse(const char *text, size_t n, struct quick_attach *q)
{
        static const char head[] = "{\"v\":1,\"op\":\"attach\",\"name\":\"";
        static const char rw[] = "\",\"access\":\"rw\"", ro[] = "\",\"access\":\"r\"";
        static const char norec[] = ",\"record\":false}";
        const size_t at = sizeof(head) - 1;
        size_t end;

        if (n <= at || memcmp(text, head, at) != 0 || text[n - 1] != '}')
                return 0;
        /* read from the end: a name has no '"', so the tail is where the
         * name ends */
        if (n - at >= sizeof(norec) - 1 &&
            memcmp(text + n - (sizeof(norec) - 1), norec, sizeof(norec) - 1) == 0) {
                q->record = 0;
                end = n - (sizeof(norec) - 1);
        } else {
                q->record = 1;
                end = n - 1;
        }
        if (end - at >= sizeof(rw) - 1 &&
            memcmp(text + end - (sizeof(rw) - 1), rw, sizeof(rw) - 1) == 0) {
                q->writable = 1;
                end -= sizeof(rw) - 1;
        } else if (end - at >= sizeof(ro) - 1 &&
                   memcmp(text + end - (sizeof(ro) - 1), ro, sizeof(ro) - 1) == 0) {
                q->writable = 0;
                end -= sizeof(ro) - 1;
        } else {
                return 0;
        }
        if (end - at > ASHMEM_NAME_LEN)
                return 0;
        for (size_t i = at; i < end; i++)
                if (am_json_plain[(unsigned char)text[i]] != 1)
                        return 0;
        q->name = text + at;
        q->len = end - at;
        return 1;
}

int ops_quick(struct broker *b, struct conn *c, char *text, size_t n, struct reply *rep)
{
        struct quick_attach q;

        if (!ops_quick_parse(text, n, &q))
                return QUICK_NO;
        text[(size_t)(q.name - text) + q.len] = 0;      /* its closing quote: read */
        return attach_name(b, c, q.name, q.writable, q.record, 0, 0, rep);
}

static int op_lookup(struct broker *b, struct conn *c, struct req *req,
                     int *fds, int nfds, struct reply *rep)
{
        struct stat st;
        struct held_region *rg;
        struct entry *e = NULL;
        int mode, r, create = 0;

        (void)nfds;
        if (fstat(fds[0], &st) < 0)
                return -errno;
        rg = region_find(b, &st);
        /* the record of a name the caller may see: an un-ranged one
         * first; with none, the answer of a region the broker does not
         * hold, so that nothing tells the hidden names apart */
        if (rg) {
                /* (the first in name order of those alike: the answer
                 * does not depend on the order names came in) */
                for (struct entry *n = rg->names; n; n = n->rnext)
                        if (access_visible(c, n) &&
                            (!e || (e->ranged && !n->ranged) ||
                             (e->ranged == n->ranged && strcmp(n->name, e->name) < 0)))
                                e = n;
        }
        if (!e)
                return FAIL(rep, ENOENT, "the broker does not hold this region");
        mode = accmode(fds[0]);
        if (mode < 0)
                return mode;
        if ((r = field_bool(req, "create", &create, rep)) < 0)
                return r;
        if (rg->ctl_lost)
                return FAIL(rep, ENOENT, "this region's pin state was lost: a holder wrote over "
                            "its control block");
        if (rg->ctl < 0 && rg->made) {
                /* A region the broker made gets its block here, and only
                 * here, when a read-write holder first needs one: one
                 * block per region, made, sized and owned by the broker.
                 * Until then every page is pinned: a reply without a
                 * descriptor says so. */
                if (!create || mode != O_RDWR) {
                        rep->nfds = 0;
                        reply_record(rep, e, c);
                        return 0;
                }
                r = ashmem_get_control(rg->fd, &rg->ctl);
                if (r < 0) {
                        rg->ctl = -1;
                        return FAIL(rep, -r, "making the region's pin state: %s", strerror(-r));
                }
                if (!rg->hold) {
                        /* the purge thread reads it (atomically) */
                        struct am_hold *h = NULL;
                        if (am_hold_new(rg->fd, &h) == 0)
                                __atomic_store_n(&rg->hold, h, __ATOMIC_RELEASE);
                }
        }
        if (rg->ctl < 0)
                return FAIL(rep, ENOENT, "this region has no shared pin state");
        if (mode == O_RDWR) {
                rep->fds[0] = rg->ctl;
        } else {
                if ((r = region_ro(rg)) < 0)
                        return r;
                rep->fds[0] = rg->ro_ctl;
        }
        rep->nfds = 1;
        reply_record(rep, e, c);
        return 0;
}

static int op_list(struct broker *b, struct conn *c, struct req *req,
                   int *fds, int nfds, struct reply *rep)
{
        const char *cursor;
        const struct entry *last = NULL;
        struct name_pos p = { 0, 0 };
        struct entry *e;
        size_t n = 0, counted = 0;
        int r, more = 0;

        (void)fds; (void)nfds;
        if ((r = field_str(req, "cursor", 0, &cursor, rep)) < 0)
                return r;
        am_jw_puts(&rep->sb, ",\"regions\":[");
        if (cursor)
                p = name_bound(b, cursor, 1);
        while ((e = name_next(b, &p))) {
                size_t cost;
                if (!access_visible(c, e))
                        continue;
                /* the pin state a record counts: a page ends early past
                 * LIST_COUNTED pages (a record of many costs a pass over
                 * a word of pin state for every 16 of them) */
                cost = e->r->ctl < 0 ? 0 :
                       (!e->ranged ? e->r->size : e->r->hold ? e->length :
                        e->offset + e->length) / am_page_size();    /* (a map from page 0) */
                if (n == LIST_PAGE || (n && counted + cost > LIST_COUNTED)) {
                        more = 1;
                        break;
                }
                counted += cost;
                am_jw_puts(&rep->sb, n ? ",{" : "{");
                write_record(&rep->sb, e, c);
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
        struct entry *e;
        int r;

        (void)fds; (void)nfds;
        if ((r = named(b, c, req, NULL, &e, rep)) < 0)
                return r;
        reply_record(rep, e, c);
        return 0;
}

static int op_unshare(struct broker *b, struct conn *c, struct req *req,
                      int *fds, int nfds, struct reply *rep)
{
        struct name_pos p;
        struct entry *e;
        int r;

        (void)fds; (void)nfds;
        if ((r = named(b, c, req, &p, &e, rep)) < 0)
                return r;
        if (!access_owns(c, e))
                return FAIL(rep, EACCES, "only the owner of \"%.60s\" may unshare it", e->name);
        entry_remove(b, p);
        return 0;
}

static int op_purge(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        const char *name;
        unsigned long long walk = names_walk(b);
        struct entry *e;
        struct job *j;
        int r;

        (void)fds; (void)nfds;
        if ((r = field_str(req, "name", 0, &name, rep)) < 0)
                return r;
        if (name) {
                if (!(e = existing(b, c, name, NULL, rep)))
                        return -ENOENT;
                if (!access_owns(c, e))
                        return FAIL(rep, EACCES, "only the owner of \"%.60s\" may purge it", name);
                if (!(j = job_new(1)))
                        return -ENOMEM;
                job_add(j, e, walk);
        } else if (c->uid == 0) {
                /* root's: every name */
                struct name_pos p = { 0, 0 };
                if (!(j = job_new(b->nnames)))
                        return -ENOMEM;
                while ((e = name_next(b, &p)))
                        job_add(j, e, walk);
        } else {
                /* a user's: its own, from its list, not a walk of all */
                size_t mine;
                struct entry *own = uid_names(b, c->uid, &mine);
                if (!(j = job_new(mine)))
                        return -ENOMEM;
                for (e = own; e; e = e->unext)
                        job_add(j, e, walk);
        }
        if (j->n == 0) {
                job_free(b, j);
                am_jw_puts(&rep->sb, ",\"pages\":0");
                return 0;
        }
        j->c = c;
        j->why = "request";
        j->below = -1;
        if ((r = purge_submit(b, j)) < 0) {
                job_free(b, j);
                return FAIL(rep, -r, "cannot start the purge thread: %s", strerror(-r));
        }
        c->job = j;
        return 1;
}

static int op_stats(struct broker *b, struct conn *c, struct req *req,
                    int *fds, int nfds, struct reply *rep)
{
        struct am_jw *s = &rep->sb;

        (void)req; (void)fds; (void)nfds;
        am_jw_printf(s, ",\"connections\":%u,\"regions\":%zu,\"bytes\":%llu", b->nconns,
                  b->nnames, b->bytes);
        am_jw_printf(s, ",\"requests\":%llu,\"errors\":%llu,\"attaches\":%llu",
                  b->n.requests, b->n.errors, b->n.attaches);
        am_jw_printf(s, ",\"purges\":%llu,\"pages_purged\":%llu,\"dropped\":%llu",
                  b->n.purges, b->n.pages_purged, b->n.dropped);
        am_jw_printf(s, ",\"purge_skipped\":%llu", b->n.purge_skipped);
        am_jw_printf(s, ",\"uptime\":%lld,\"pid\":%d", (long long)(time(NULL) - b->started),
                  (int)getpid());
        am_jw_printf(s, ",\"limits\":{\"connections\":%u,\"regions_per_uid\":%u",
                  b->cfg->max_connections, b->cfg->max_regions);
        am_jw_printf(s, ",\"connections_per_uid\":%u,\"descriptors_per_uid\":%llu",
                  b->max_uid_conns, b->max_uid_fds);
        am_jw_printf(s, ",\"bytes_per_uid\":%llu,\"message\":%zu,\"idle_timeout\":%u}",
                  b->max_bytes, b->cfg->max_message, b->cfg->idle_timeout_ms / 1000);
        uid_stats(b, c, s);
        closer_stats(b, s);
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
        { "reload",  op_reload,  0, 0 },        /* reload.c */
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
        if ((r = field_str(req, "op", 1, &opname, rep)) < 0)
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
