/* SPDX-License-Identifier: MIT */
/*
 * The broker client's operations: ashmem_broker_* over the wire protocol
 * of ashmem-protocol(7). A request is one JSON object in one SOCK_SEQPACKET
 * message with 0-2 descriptors; the reply is one message back (the
 * transport: lib/broker-transport.c; the records in replies:
 * lib/broker-records.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ashmem/ashmem.h"
#include "internal/client.h"
#include "internal/forget.h"
#include "internal/json.h"
#include "internal/lookup.h"
#include "internal/scm.h"

/* The mode field of a request; none for mode < 0 (the broker's default). */
static void put_mode(struct am_jw *w, int mode)
{
        char s[8];

        if (mode < 0)
                return;
        snprintf(s, sizeof(s), "%04o", (unsigned)mode & 07777);
        am_jw_str(w, "mode", s);
}

/* Attach a received control descriptor unless this process already has the
 * pin state with the access it brings (writable: it came read-write). */
static int take_control(int fd, int ctl, int writable)
{
        struct stat st;

        if (fstat(fd, &st) == 0 && am_has_control(&st, writable))
                return 0;
        return ashmem_set_control(fd, ctl);
}

static int ctl_writable(int ctl)
{
        int fl = fcntl(ctl, F_GETFL);
        return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

/* A request of op alone, for a reply whose fields (located in o) fill
 * *out (outlen bytes, zeroed first): 0 or -errno. */
static int bare_call(ashmem_broker *b, const char *op, struct am_jobj *o,
                     void *out, size_t outlen)
{
        struct am_jw w;
        int r;

        if (!b || !out)
                return -EINVAL;
        r = am_client_call0(b, am_client_request(b, &w, op), o);
        if (r == 0)
                memset(out, 0, outlen);
        return r;
}

int ashmem_broker_hello(ashmem_broker *b, ashmem_broker_server *ret)
{
        struct am_jobj o;
        uint64_t v = 0;
        int r = bare_call(b, "hello", &o, ret, sizeof(*ret));

        if (r < 0)
                return r;
        if (am_field_num(&o, "version", INT_MAX, &v) < 0)
                return -EPROTO;
        ret->version = (int)v;
        v = 0;
        if (am_field_num(&o, "pid", INT_MAX, &v) < 0)
                return -EPROTO;
        ret->pid = (pid_t)v;
        am_field_str(&o, "driver", ret->driver, sizeof(ret->driver));
        return 0;
}

static int prot_letters(int prot, char *s)
{
        int n = 0;

        if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
                return -EINVAL;
        if (prot & PROT_READ)
                s[n++] = 'r';
        if (prot & PROT_WRITE)
                s[n++] = 'w';
        if (prot & PROT_EXEC)
                s[n++] = 'x';
        s[n] = 0;
        return 0;
}

int ashmem_broker_create(ashmem_broker *b, const char *name, size_t size,
                         int prot, int mode, int *ret_fd,
                         ashmem_region_info *info)
{
        struct am_jw w;
        struct am_jobj o;
        int rfds[AM_SCM_MAX], nr, r;
        char ps[4];

        if (!b || !name || !ret_fd || size == 0 || mode > 07777)
                return -EINVAL;
        am_client_request(b, &w, "create");
        am_jw_str(&w, "name", name);
        am_jw_u64(&w, "size", size);
        if (prot >= 0) {
                if (prot_letters(prot, ps) < 0)
                        return -EINVAL;
                am_jw_str(&w, "prot", ps);
        }
        put_mode(&w, mode);
        r = am_client_call(b, &w, NULL, 0, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr < 1)
                r = -EPROTO;
        if (r == 0 && nr == 2)
                r = take_control(rfds[0], rfds[1], 1);
        /* none yet: this broker makes it when it is first needed */
        if (r == 0 && nr == 1)
                b->remembered = am_lookup_remember(b->path, b->remembered);
        if (r == 0)
                r = am_record_out(&o, info);
        if (nr == 2)
                close(rfds[1]);
        if (r < 0) {
                am_close_fds(rfds, nr > 1 ? 1 : nr);
                return r;
        }
        *ret_fd = rfds[0];
        return 0;
}

static int share(ashmem_broker *b, int fd, int ranged, size_t offset,
                 size_t length, const char *name, int mode, int transient,
                 ashmem_region_info *info)
{
        struct am_jw w;
        struct am_jobj o;
        int fds[2] = { fd, -1 }, r;

        if (!b || !name || fd < 0 || mode > 07777)
                return -EINVAL;
        r = ashmem_get_control(fd, &fds[1]);
        if (r < 0 && r != -ENOENT)
                return r;
        am_client_request(b, &w, "share");
        am_jw_str(&w, "name", name);
        put_mode(&w, mode);
        if (transient)
                am_jw_bool(&w, "transient", 1);
        if (ranged) {
                am_jw_u64(&w, "offset", offset);
                am_jw_u64(&w, "length", length);
        }
        {
                int rfds[AM_SCM_MAX], nr;
                r = am_client_call(b, &w, fds, fds[1] >= 0 ? 2 : 1, &o, rfds, &nr);
                am_close_fds(rfds, nr);
        }
        if (fds[1] >= 0)
                close(fds[1]);
        if (r < 0)
                return r;
        if (transient)
                b->transients++;
        return am_record_out(&o, info);
}

int ashmem_broker_share(ashmem_broker *b, int fd, const char *name, int mode,
                        int transient, ashmem_region_info *info)
{
        return share(b, fd, 0, 0, 0, name, mode, transient, info);
}

int ashmem_broker_share_range(ashmem_broker *b, int fd, size_t offset,
                              size_t length, const char *name, int mode,
                              int transient, ashmem_region_info *info)
{
        if (length == 0)
                return -EINVAL;
        return share(b, fd, 1, offset, length, name, mode, transient, info);
}

int ashmem_broker_slice(ashmem_broker *b, const char *name, const char *of,
                        size_t offset, size_t length, int mode,
                        ashmem_region_info *info)
{
        struct am_jw w;
        struct am_jobj o;
        int r;

        if (!b || !name || !of || length == 0 || mode > 07777)
                return -EINVAL;
        am_client_request(b, &w, "slice");
        am_jw_str(&w, "name", name);
        am_jw_str(&w, "of", of);
        am_jw_u64(&w, "offset", offset);
        am_jw_u64(&w, "length", length);
        put_mode(&w, mode);
        r = am_client_call0(b, &w, &o);
        if (r < 0)
                return r;
        return am_record_out(&o, info);
}

/* name copied to t as it stands, when it needs no escape in a JSON
 * string and has at most ASHMEM_NAME_LEN bytes: its length; else -1 (t
 * then holds a part of it). One pass: an attach is on every client's
 * fast path. */
static ssize_t copy_plain(char *t, const char *name)
{
        size_t i = 0;

        while (i <= ASHMEM_NAME_LEN && am_json_plain[(unsigned char)name[i]]) {
                t[i] = name[i];
                i++;
        }
        return i <= ASHMEM_NAME_LEN && name[i] == 0 ? (ssize_t)i : -1;
}

/* A JSON number without sign, fraction or exponent at text[*at] (before
 * end), no larger than max: 1 and *v, at moved past it; else 0. */
static int plain_number(const char *text, size_t *at, size_t end, uint64_t max, uint64_t *v)
{
        struct am_jfield f = { .val = text + *at };

        while (*at + f.vlen < end && (unsigned char)(f.val[f.vlen] - '0') < 10)
                f.vlen++;
        /* no leading zero, as JSON writes numbers; am_json_u64 the rest */
        if ((f.vlen > 1 && f.val[0] == '0') || am_json_u64(&f, max, v) < 0)
                return 0;
        *at += f.vlen;
        return 1;
}

/* Is text (n bytes) exactly the broker's short attach reply of a whole
 * region, {"ok":true,"size":N} or, when the control descriptor comes with
 * it, {"ok":true,"size":N,"dev":D,"ino":I}? Then N in *size, and D, I
 * and N in id's st_dev, st_ino and st_size (st_ino 0 without them; the
 * rest of id is not written). Any other text is for the JSON scanner. */
static int short_reply(const char *text, size_t n, size_t *size, struct stat *id)
{
        static const char head[] = "{\"ok\":true,\"size\":", dev[] = ",\"dev\":",
                          ino[] = ",\"ino\":";
        size_t at = sizeof(head) - 1;
        uint64_t v, d, i;

        if (n < at || memcmp(text, head, at) != 0 || text[n - 1] != '}' ||
            !plain_number(text, &at, n - 1, SIZE_MAX, &v))
                return 0;
        id->st_ino = 0;
        if (at != n - 1) {
                if (n - 1 - at < sizeof(dev) - 1 || memcmp(text + at, dev, sizeof(dev) - 1) != 0)
                        return 0;
                at += sizeof(dev) - 1;
                if (!plain_number(text, &at, n - 1, (dev_t)-1, &d) ||
                    n - 1 - at < sizeof(ino) - 1 || memcmp(text + at, ino, sizeof(ino) - 1) != 0)
                        return 0;
                at += sizeof(ino) - 1;
                if (!plain_number(text, &at, n - 1, (ino_t)-1, &i) || at != n - 1)
                        return 0;
                id->st_dev = (dev_t)d;
                id->st_ino = (ino_t)i;
                id->st_size = (off_t)v;
        }
        *size = (size_t)v;
        return 1;
}

/* The short reply of n bytes in b->buf, read through the connection's
 * memo: 1 and what it says (as short_reply()), else 0. */
static int short_reply_memo(ashmem_broker *b, size_t n, size_t *size, struct stat *id)
{
        struct am_attach_memo *m = &b->memo;

        if (n == m->reply_len && memcmp(b->buf, m->reply, n) == 0) {
                *size = m->size;
                id->st_dev = m->dev;
                id->st_ino = m->ino;
                id->st_size = (off_t)m->size;
                return 1;
        }
        if (!short_reply(b->buf, n, size, id))
                return 0;
        m->reply_len = 0;
        if (n <= sizeof(m->reply)) {
                memcpy(m->reply, b->buf, n);
                m->reply_len = n;
                m->size = *size;
                m->dev = id->st_ino ? id->st_dev : 0;
                m->ino = id->st_ino;
        }
        return 1;
}

/* attach, with the owner the name must have (or (uid_t)-1 for any) and
 * the record into info (when not NULL). A caller that wants neither gets
 * the short reply ("record":false): the size, and the range of a view. */
static int attach(ashmem_broker *b, const char *name, int writable, uid_t owner,
                  int *ret_fd, size_t *ret_offset, size_t *ret_length,
                  ashmem_region_info *info)
{
        static const char head[] = "{\"v\":1,\"op\":\"attach\",\"name\":";
        struct am_attach_memo *m;
        struct am_jw w;
        struct am_jobj o;
        int rfds[AM_SCM_MAX], nr, r, record = info || owner != (uid_t)-1, known = 0;
        size_t off = 0, len = 0;
        ssize_t ln;
        struct stat id;

        if (!b || !name || !ret_fd)
                return -EINVAL;
        writable = !!writable;
        m = &b->memo;
        if (!record && m->req_len && m->writable == writable &&
            strncmp(name, b->out + sizeof(head), m->name_len) == 0 && name[m->name_len] == 0) {
                /* the request sent last, still in b->out */
                r = am_client_exchange(b, b->out, m->req_len, NULL, 0, rfds, &nr);
                goto sent;
        }
        /* the request put together from its parts: an attach is on the
         * fast path of every client */
        m->req_len = 0;
        w = (struct am_jw){ .buf = b->out, .cap = sizeof(b->out), .fixed = 1 };
        memcpy(b->out, head, sizeof(head) - 1);
        b->out[sizeof(head) - 1] = '"';
        if ((ln = copy_plain(b->out + sizeof(head), name)) >= 0) {
                /* a name with nothing to escape, as it is */
                char *t = b->out + sizeof(head) + ln;
                memcpy(t, writable ? "\",\"access\":\"rw\"" : "\",\"access\":\"r\"",
                       writable ? 15 : 14);
                t += writable ? 15 : 14;
                if (!record) {
                        memcpy(t, ",\"record\":false", 15);
                        t += 15;
                }
                *t = 0;
                w.len = (size_t)(t - b->out);
        } else {
                am_jw_raw(&w, head, sizeof(head) - 1);
                am_jw_string(&w, name);
                am_jw_puts(&w, writable ? ",\"access\":\"rw\"" : ",\"access\":\"r\"");
                if (!record)
                        am_jw_puts(&w, ",\"record\":false");
        }
        if (owner != (uid_t)-1)
                am_jw_printf(&w, ",\"owner\":%u", (unsigned)owner);
        if ((r = am_jw_end(&w)) < 0)
                return r;
        /* kept for the next attach of this name, when it is the short one */
        if (ln >= 0 && !record) {
                m->req_len = (size_t)r;
                m->name_len = (size_t)ln;
                m->writable = writable;
        }
        r = am_client_exchange(b, b->out, (size_t)r, NULL, 0, rfds, &nr);
sent:
        if (r < 0)
                return r;
        /* the short reply of a whole region; with the region's identity,
         * a control block this process keeps already is known without a
         * look at the descriptor */
        if (!record && short_reply_memo(b, (size_t)r, &len, &id)) {
                r = nr < 1 ? -EPROTO : 0;
                if (r == 0 && nr == 2 && id.st_ino && len <= (size_t)INT64_MAX &&
                    am_has_control(&id, writable))
                        known = 1;
                goto got;
        }
        r = am_client_reply(b, r, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr < 1 || am_field_size(&o, "size", &len) <= 0 || am_field_size(&o, "offset", &off) < 0 ||
            am_field_size(&o, "length", &len) < 0)
                r = -EPROTO;
got:
        /* the broker checked the owner; a reply that names another is no
         * answer to this request */
        if (r == 0 && record) {
                ashmem_region_info ri;
                r = am_record_parse(&o, &ri);
                if (r == 0 && owner != (uid_t)-1 && ri.uid != owner)
                        r = -EPROTO;
                if (r == 0 && info)
                        *info = ri;
        }
        /* the control block has the access asked for (a broker that sent
         * less would only give this process read-only pin state) */
        if (r == 0 && nr == 2 && !known)
                r = take_control(rfds[0], rfds[1], writable);
        /* none yet: this broker makes it when it is first needed */
        if (r == 0 && nr == 1)
                b->remembered = am_lookup_remember(b->path, b->remembered);
        if (nr == 2)
                close(rfds[1]);
        if (r < 0) {
                am_close_fds(rfds, nr > 1 ? 1 : nr);
                return r;
        }
        *ret_fd = rfds[0];
        if (ret_offset)
                *ret_offset = off;
        if (ret_length)
                *ret_length = len;
        return 0;
}

int ashmem_broker_attach(ashmem_broker *b, const char *name, int writable,
                         int *ret_fd, size_t *ret_offset, size_t *ret_length)
{
        return attach(b, name, writable, (uid_t)-1, ret_fd, ret_offset, ret_length, NULL);
}

int ashmem_broker_attach_owned(ashmem_broker *b, const char *name, int writable,
                               uid_t owner, int *ret_fd, ashmem_region_info *info)
{
        return attach(b, name, writable, owner, ret_fd, NULL, NULL, info);
}

int ashmem_broker_share_heap(ashmem_broker *b, ashmem_heap *heap,
                             const char *name, int mode, int transient,
                             ashmem_region_info *info)
{
        int fd = ashmem_heap_fd(heap);

        if (fd < 0)
                return fd;
        return share(b, fd, 0, 0, 0, name, mode, transient, info);
}

int ashmem_broker_share_slice(ashmem_broker *b, ashmem_slice *slice,
                              const char *name, int mode, int transient,
                              ashmem_region_info *info)
{
        int fd;

        if (!slice)
                return -EINVAL;
        fd = ashmem_heap_fd(ashmem_slice_heap(slice));
        if (fd < 0)
                return fd;
        return share(b, fd, 1, ashmem_slice_offset(slice), ashmem_slice_size(slice),
                     name, mode, transient, info);
}

int ashmem_broker_attach_heap(ashmem_broker *b, const char *name, int writable,
                              ashmem_heap **ret)
{
        int fd, r;

        if (!ret)
                return -EINVAL;
        r = ashmem_broker_attach(b, name, writable, &fd, NULL, NULL);
        if (r < 0)
                return r;
        r = ashmem_heap_adopt(fd, writable ? 0 : ASHMEM_HEAP_READ_ONLY, ret);
        close(fd);
        return r;
}

int ashmem_broker_attach_slice(ashmem_broker *b, const char *name, int writable,
                               ashmem_slice **ret)
{
        ashmem_heap *heap;
        size_t off, len;
        int fd, r;

        if (!ret)
                return -EINVAL;
        r = ashmem_broker_attach(b, name, writable, &fd, &off, &len);
        if (r < 0)
                return r;
        r = ashmem_heap_adopt(fd, writable ? 0 : ASHMEM_HEAP_READ_ONLY, &heap);
        close(fd);
        if (r < 0)
                return r;
        r = ashmem_slice_new(heap, off, len, ret);
        ashmem_heap_unref(heap);
        return r;
}

int am_broker_lookup(ashmem_broker *b, int fd, int create)
{
        struct am_jw w;
        struct am_jobj o;
        int rfds[AM_SCM_MAX], nr, r;

        if (!b)
                return -EINVAL;
        if (fd < 0)
                return -EBADF;
        am_client_request(b, &w, "lookup");
        if (create)
                am_jw_bool(&w, "create", 1);
        r = am_client_call(b, &w, &fd, 1, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr == 0)
                return 1;       /* held without a block: all pinned */
        if (nr != 1) {
                am_close_fds(rfds, nr);
                return -EPROTO;
        }
        r = take_control(fd, rfds[0], ctl_writable(rfds[0]));
        close(rfds[0]);
        return r;
}

int ashmem_broker_lookup(ashmem_broker *b, int fd)
{
        int r = am_broker_lookup(b, fd, 1);

        return r == 1 ? -ENOENT : r;
}

int ashmem_broker_info(ashmem_broker *b, const char *name,
                       ashmem_region_info *ret)
{
        struct am_jw w;
        struct am_jobj o;
        int r;

        if (!b || !name || !ret)
                return -EINVAL;
        am_client_request(b, &w, "info");
        am_jw_str(&w, "name", name);
        r = am_client_call0(b, &w, &o);
        if (r < 0)
                return r;
        return am_record_parse(&o, ret);
}

int ashmem_broker_list(ashmem_broker *b, ashmem_region_info **ret, size_t *n)
{
        ashmem_region_info *v = NULL;
        size_t count = 0, cap = 0;
        char cursor[ASHMEM_NAME_LEN] = "";
        int r;

        if (!b || !ret || !n)
                return -EINVAL;
        for (;;) {
                struct am_jw w;
                struct am_jobj o, rec;
                const struct am_jfield *regions, *cur;
                const char *e;
                size_t pos = 0, elen;

                am_client_request(b, &w, "list");
                if (cursor[0])
                        am_jw_str(&w, "cursor", cursor);
                r = am_client_call0(b, &w, &o);
                if (r < 0)
                        goto fail;
                regions = am_json_get(&o, "regions");
                if (!regions || am_json_kind(regions) != 'a') {
                        r = -EPROTO;
                        goto fail;
                }
                while ((r = am_json_next(regions, &pos, &e, &elen)) > 0) {
                        if (count == cap) {
                                size_t ncap = cap ? cap * 2 : 32;
                                ashmem_region_info *nv = realloc(v, ncap * sizeof(*v));
                                if (!nv) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                v = nv;
                                cap = ncap;
                        }
                        if (am_json_object(e, elen, &rec) < 0 ||
                            am_record_parse(&rec, &v[count]) < 0) {
                                r = -EPROTO;
                                goto fail;
                        }
                        count++;
                }
                if (r < 0)
                        goto fail;
                cur = am_json_get(&o, "cursor");
                if (!cur)
                        break;
                /* a cursor must move on, or a broken broker loops us */
                {
                        char next[ASHMEM_NAME_LEN];
                        if (am_json_str(cur, next, sizeof(next)) <= 0 ||
                            strcmp(next, cursor) <= 0) {
                                r = -EPROTO;
                                goto fail;
                        }
                        memcpy(cursor, next, sizeof(cursor));
                }
        }
        *ret = v;
        *n = count;
        return 0;
fail:
        free(v);
        return r;
}

int ashmem_broker_unshare(ashmem_broker *b, const char *name)
{
        struct am_jw w;
        struct am_jobj o;

        if (!b || !name)
                return -EINVAL;
        am_client_request(b, &w, "unshare");
        am_jw_str(&w, "name", name);
        return am_client_call0(b, &w, &o);
}

int ashmem_broker_purge(ashmem_broker *b, const char *name,
                        unsigned long long *pages)
{
        struct am_jw w;
        struct am_jobj o;
        unsigned long long p = 0;
        int r;

        if (!b)
                return -EINVAL;
        am_client_request(b, &w, "purge");
        if (name)
                am_jw_str(&w, "name", name);
        r = am_client_call0(b, &w, &o);
        if (r < 0)
                return r;
        if (am_field_ull(&o, "pages", &p) < 0)
                return -EPROTO;
        if (pages)
                *pages = p;
        return 0;
}

int ashmem_broker_stats(ashmem_broker *b, ashmem_broker_counters *ret)
{
        struct am_jobj o;
        int r = bare_call(b, "stats", &o, ret, sizeof(*ret));

        if (r < 0)
                return r;
        r |= am_field_ull(&o, "connections", &ret->connections);
        r |= am_field_ull(&o, "regions", &ret->regions);
        r |= am_field_ull(&o, "bytes", &ret->bytes);
        r |= am_field_ull(&o, "requests", &ret->requests);
        r |= am_field_ull(&o, "errors", &ret->errors);
        r |= am_field_ull(&o, "attaches", &ret->attaches);
        r |= am_field_ull(&o, "purges", &ret->purges);
        r |= am_field_ull(&o, "pages_purged", &ret->pages_purged);
        r |= am_field_ull(&o, "dropped", &ret->dropped);
        r |= am_field_ull(&o, "uptime", &ret->uptime);
        return r < 0 ? -EPROTO : 0;
}

int ashmem_broker_call(ashmem_broker *b, const char *request_json,
                       const int *fds, int nfds, char **reply_json,
                       int *rfds, int *nrfds)
{
        struct am_jobj o;
        cJSON *req;
        char *text;
        int n, r;

        if (reply_json)
                *reply_json = NULL;
        if (nrfds)
                *nrfds = 0;
        if (!b || !request_json || !reply_json || !rfds || !nrfds ||
            nfds < 0 || nfds > AM_SCM_MAX || (nfds && !fds))
                return -EINVAL;
        req = cJSON_Parse(request_json);
        if (!cJSON_IsObject(req)) {
                cJSON_Delete(req);
                return -EINVAL;
        }
        if (!cJSON_GetObjectItemCaseSensitive(req, "v") &&
            !cJSON_AddNumberToObject(req, "v", ASHMEM_BROKER_PROTOCOL)) {
                cJSON_Delete(req);
                return -ENOMEM;
        }
        text = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        if (!text)
                return -ENOMEM;
        n = am_client_exchange(b, text, strlen(text), fds, nfds, rfds, nrfds);
        free(text);
        if (n < 0)
                return n;
        *reply_json = strdup(b->buf);
        if (!*reply_json) {
                am_close_fds(rfds, *nrfds);
                *nrfds = 0;
                return -ENOMEM;
        }
        r = am_client_parse_reply(b->buf, (size_t)n, &o, b->why, sizeof(b->why));
        return r;
}
