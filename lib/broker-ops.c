/* SPDX-License-Identifier: MIT */
/*
 * The broker client: ashmem_broker_* over the wire protocol of
 * ashmem-protocol(7). A request is one JSON object in one SOCK_SEQPACKET
 * message with 0-2 descriptors; the reply is one message back.
 *
 * Also here: the library's implicit lookup. A pin, unpin, status or purge
 * call on a region descriptor this process has no pin state for asks a
 * running broker for the region's control block (am_lookup_control, called
 * by the memfd driver). Misses are remembered for a second, so a foreign
 * memfd does not cost a connection per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ashmem/ashmem.h"
#include "../drivers/driver.h"
#include "internal/clock.h"
#include "internal/errname.h"
#include "internal/json.h"
#include "internal/scm.h"
#include "internal/sockdir.h"

#define MAX_FDS     AM_SCM_MAX /* per message, by the protocol */
#define RECV_FDS    AM_SCM_RECV_MAX /* room to notice (and close) extra ones */
#define LOOKUP_TIMEOUT_MS 2000
#define MISS_TTL_NS 1000000000LL

struct ashmem_broker {
        int fd;
        int timeout_ms;
        unsigned transients;       /* transient shares made: never reconnect */
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char out[ASHMEM_BROKER_MSG_MAX + 1];   /* the request being sent */
        char buf[ASHMEM_BROKER_MSG_MAX + 1];   /* the reply received */
};

/* ---------------------------------------------------------------- socket */

int ashmem_broker_socket_path(int system, char *buf, size_t len)
{
        const char *e;
        int n;

        if (!buf || len == 0)
                return -EINVAL;
        if (system)
                n = snprintf(buf, len, "%s", ASHMEM_BROKER_SYSTEM_SOCKET);
        else if ((e = secure_getenv("ASHMEM_SOCKET")) && *e)
                n = snprintf(buf, len, "%s", e);
        else if ((e = secure_getenv("XDG_RUNTIME_DIR")) && *e == '/')
                n = snprintf(buf, len, "%s/ashmem/broker.sock", e);
        else
                n = snprintf(buf, len, "/tmp/ashmem-%u/broker.sock", (unsigned)getuid());
        if (n < 0 || (size_t)n >= len ||
            (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return -ENAMETOOLONG;
        return n;
}

/* A default socket under /tmp must sit in a directory of our own. */
static int check_tmp_dir(const char *path)
{
        if (strncmp(path, "/tmp/", 5) != 0)
                return 0;
        return am_socket_dir(path, getuid(), AM_SOCKDIR_ROOT_OK, NULL, 0, NULL);
}

static int sock_connect(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        size_t n = strlen(path);
        int fd, r;

        if (n == 0)
                return -EINVAL;
        if (n >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        memcpy(a.sun_path, path, n + 1);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* An interrupted Unix connect is not under way: simply retry. */
        while ((r = connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0 && errno == EINTR)
                ;
        if (r < 0 && errno != EISCONN) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int ashmem_broker_connect(const char *path, ashmem_broker **ret)
{
        char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
        ashmem_broker *b;
        int fd, r;

        if (!ret)
                return -EINVAL;
        if (!path) {
                r = ashmem_broker_socket_path(0, def, sizeof(def));
                if (r < 0)
                        return r;
                if (!secure_getenv("ASHMEM_SOCKET") || !*secure_getenv("ASHMEM_SOCKET")) {
                        r = check_tmp_dir(def);
                        if (r < 0)
                                return r;
                }
                path = def;
        }
        if (strlen(path) >= sizeof(b->path))
                return -ENAMETOOLONG;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        fd = sock_connect(path);
        if (fd < 0) {
                free(b);
                return fd;
        }
        b->fd = fd;
        snprintf(b->path, sizeof(b->path), "%s", path);
        *ret = b;
        return 0;
}

ashmem_broker *ashmem_broker_close(ashmem_broker *b)
{
        if (b) {
                if (b->fd >= 0)
                        close(b->fd);
                free(b);
        }
        return NULL;
}

int ashmem_broker_fd(const ashmem_broker *b)
{
        return b ? b->fd : -EINVAL;
}

int ashmem_broker_set_timeout(ashmem_broker *b, int timeout_ms)
{
        if (!b || timeout_ms < 0)
                return -EINVAL;
        b->timeout_ms = timeout_ms;
        return 0;
}

/* ---------------------------------------------------------------- messages */

static void close_fds(int *fds, int n)
{
        for (int i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

/* Receive one message into b->buf (NUL-terminated). Returns its length;
 * fds[0..*nfds-1] are the descriptors that came with it. */
static int recv_msg(ashmem_broker *b, int *fds, int *nfds)
{
        long long deadline = b->timeout_ms ? am_mono_ms() + b->timeout_ms : 0;
        int got[RECV_FDS], ngot = 0, r = 0, flags = 0, mflags = 0;
        ssize_t n;

        *nfds = 0;
        for (;;) {
                if (deadline && !(flags & MSG_DONTWAIT) &&
                    (r = am_wait_fd(b->fd, POLLIN, deadline)) < 0)
                        return r;
                n = am_recv_fds(b->fd, b->buf, sizeof(b->buf) - 1, flags,
                                got, RECV_FDS, &ngot, NULL, &mflags);
                /* A peer that closed with our request unread reports a
                 * reset before the messages it sent: take those first. */
                if (n == -ECONNRESET && !(flags & MSG_DONTWAIT)) {
                        flags |= MSG_DONTWAIT;
                        continue;
                }
                if (n < 0)
                        return n == -EAGAIN && (flags & MSG_DONTWAIT) ? -ECONNRESET : (int)n;
                break;
        }
        if (n == 0)
                r = -ECONNRESET;
        else if (mflags & MSG_TRUNC)
                r = -EMSGSIZE;
        else if ((mflags & MSG_CTRUNC) || ngot > MAX_FDS)
                r = -EPROTO;
        if (r < 0) {
                close_fds(got, ngot);
                return r;
        }
        memcpy(fds, got, sizeof(int) * (size_t)ngot);
        *nfds = ngot;
        b->buf[n] = 0;
        return (int)n;
}

static int reconnect(ashmem_broker *b)
{
        int fd;

        if (b->transients || !b->path[0])
                return -ENOTCONN;
        fd = sock_connect(b->path);
        if (fd < 0)
                return fd;
        if (dup3(fd, b->fd, O_CLOEXEC) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        close(fd);
        return 0;
}

/* One request/reply exchange of raw text. A connection the broker closed
 * (an idle timeout, a restart) is opened again once, unless transient
 * shares live on it. */
static int exchange(ashmem_broker *b, const char *req, size_t len,
                    const int *fds, int nfds, int *rfds, int *nrfds)
{
        int r, retried = 0;

        if (len > ASHMEM_BROKER_MSG_MAX)
                return -EMSGSIZE;
        for (;;) {
                r = am_send_fds(b->fd, req, len, fds, nfds, 0);
                if (r == 0) {
                        r = recv_msg(b, rfds, nrfds);
                        if (r >= 0)
                                return r;
                } else if (r == -EPIPE || r == -ECONNRESET) {
                        /* a broker that refuses a connection (too many)
                         * says why before it closes it */
                        struct pollfd p = { .fd = b->fd, .events = POLLIN };
                        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
                                int t = b->timeout_ms, n;
                                b->timeout_ms = 0;
                                n = recv_msg(b, rfds, nrfds);
                                b->timeout_ms = t;
                                if (n > 0)
                                        return n;
                        }
                }
                if (retried || !(r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN))
                        return r;
                retried = 1;
                if (reconnect(b) < 0)
                        return r;
        }
}

/* Check a reply of n bytes (in b->buf): 0 if it says ok, else the negative
 * errno it names; the fields are located in o. */
static int parse_reply(const char *text, size_t n, struct am_jobj *o)
{
        const struct am_jfield *ok, *en;
        char name[32];
        int v;

        if (am_json_object(text, n, o) < 0)
                return -EPROTO;
        ok = am_json_get(o, "ok");
        if (!ok || am_json_bool(ok, &v) < 0)
                return -EPROTO;
        if (v)
                return 0;
        en = am_json_get(o, "errno");
        if (!en || am_json_str(en, name, sizeof(name)) < 0)
                return -EPROTO;
        v = am_errno_value(name);
        return v ? -v : -EPROTO;
}

/* Send the request w has written, get the reply (fields in o, text in
 * b->buf) and its descriptors. On failure no descriptor is left open. */
static int call(ashmem_broker *b, struct am_jw *w, const int *fds, int nfds,
                struct am_jobj *o, int *rfds, int *nrfds)
{
        int r, n;

        *nrfds = 0;
        n = am_jw_end(w);
        if (n < 0)
                return n;
        n = exchange(b, w->buf, (size_t)n, fds, nfds, rfds, nrfds);
        if (n < 0)
                return n;
        r = parse_reply(b->buf, (size_t)n, o);
        if (r < 0) {
                close_fds(rfds, *nrfds);
                *nrfds = 0;
        }
        return r;
}

/* A call whose reply brings no descriptor (any that comes is closed). */
static int call0(ashmem_broker *b, struct am_jw *w, struct am_jobj *o)
{
        int rfds[MAX_FDS], nr, r = call(b, w, NULL, 0, o, rfds, &nr);

        close_fds(rfds, nr);
        return r;
}

/* Start a request in the connection's own buffer. */
static struct am_jw *request(ashmem_broker *b, struct am_jw *w, const char *op)
{
        am_jw_begin(w, b->out, sizeof(b->out), op);
        return w;
}

static void put_mode(struct am_jw *w, int mode)
{
        char s[8];

        if (mode < 0)
                return;
        snprintf(s, sizeof(s), "%04o", (unsigned)mode & 07777);
        am_jw_str(w, "mode", s);
}

/* ---------------------------------------------------------------- records */

/* An optional number field: 0 absent, 1 read, -EPROTO bad. */
static int num_opt(const struct am_jobj *o, const char *k, uint64_t max, uint64_t *v)
{
        const struct am_jfield *f = am_json_get(o, k);

        if (!f)
                return 0;
        return am_json_u64(f, max, v) < 0 ? -EPROTO : 1;
}

static int size_opt(const struct am_jobj *o, const char *k, size_t *v)
{
        uint64_t x;
        int r = num_opt(o, k, SIZE_MAX, &x);

        if (r > 0)
                *v = (size_t)x;
        return r;
}

static int ull_opt(const struct am_jobj *o, const char *k, unsigned long long *v)
{
        uint64_t x;
        int r = num_opt(o, k, UINT64_MAX, &x);

        if (r > 0)
                *v = x;
        return r;
}

static void str_opt(const struct am_jobj *o, const char *k, char *buf, size_t len)
{
        const struct am_jfield *f = am_json_get(o, k);

        if (f && am_json_str(f, buf, len) < 0)
                buf[0] = 0;
}

static int parse_record(const struct am_jobj *o, ashmem_region_info *ri)
{
        const struct am_jfield *f;
        uint64_t v;
        int r = 0;

        memset(ri, 0, sizeof(*ri));
        f = am_json_get(o, "name");
        if (!f || am_json_str(f, ri->name, sizeof(ri->name)) < 0)
                return -EPROTO;
        r |= size_opt(o, "size", &ri->size);
        v = 0;
        r |= num_opt(o, "prot_mask", 7, &v);
        ri->prot = (int)v;
        f = am_json_get(o, "mode");
        if (f) {
                char m[8], *end;
                unsigned long x;
                if (am_json_str(f, m, sizeof(m)) < 0)
                        return -EPROTO;
                x = strtoul(m, &end, 8);
                if (!m[0] || *end || x > 07777)
                        return -EPROTO;
                ri->mode = (unsigned)x;
        }
        v = 0;
        r |= num_opt(o, "uid", UINT32_MAX, &v);
        ri->uid = (uid_t)v;
        v = 0;
        r |= num_opt(o, "gid", UINT32_MAX, &v);
        ri->gid = (gid_t)v;
        str_opt(o, "user", ri->user, sizeof(ri->user));
        str_opt(o, "group", ri->group, sizeof(ri->group));
        r |= size_opt(o, "pages", &ri->pages);
        r |= size_opt(o, "pinned", &ri->pinned);
        r |= size_opt(o, "unpinned", &ri->unpinned);
        r |= size_opt(o, "purged", &ri->purged);
        r |= ull_opt(o, "attaches", &ri->attaches);
        f = am_json_get(o, "created");
        if (f) {
                char when[40];
                struct tm tm;
                const char *end;
                memset(&tm, 0, sizeof(tm));
                if (am_json_str(f, when, sizeof(when)) >= 0 &&
                    (end = strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm)) && !*end)
                        ri->created = timegm(&tm);
        }
        f = am_json_get(o, "transient");
        if (f && am_json_bool(f, &ri->transient) < 0)
                return -EPROTO;
        if (am_json_get(o, "offset")) {
                ri->is_slice = 1;
                r |= size_opt(o, "offset", &ri->offset);
                r |= size_opt(o, "length", &ri->length);
                str_opt(o, "of", ri->of, sizeof(ri->of));
        } else {
                ri->length = ri->size;
        }
        return r < 0 ? -EPROTO : 0;
}

static int record_out(const struct am_jobj *o, ashmem_region_info *info)
{
        return info ? parse_record(o, info) : 0;
}

/* Attach a received control descriptor unless this process already has the
 * pin state with the access it brings (writable: it came read-write). */
static int take_control(int fd, int ctl, int writable)
{
        ashmem_stats st;

        if (ashmem_get_stats(fd, &st) == 0 && st.shared_state &&
            (st.writable_state || !writable))
                return 0;
        return ashmem_set_control(fd, ctl);
}

static int ctl_writable(int ctl)
{
        int fl = fcntl(ctl, F_GETFL);
        return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

/* ---------------------------------------------------------------- operations */

int ashmem_broker_hello(ashmem_broker *b, ashmem_broker_server *ret)
{
        struct am_jw w;
        struct am_jobj o;
        uint64_t v = 0;
        int r;

        if (!b || !ret)
                return -EINVAL;
        r = call0(b, request(b, &w, "hello"), &o);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        if (num_opt(&o, "version", INT_MAX, &v) < 0)
                return -EPROTO;
        ret->version = (int)v;
        v = 0;
        if (num_opt(&o, "pid", INT_MAX, &v) < 0)
                return -EPROTO;
        ret->pid = (pid_t)v;
        str_opt(&o, "driver", ret->driver, sizeof(ret->driver));
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
        int rfds[MAX_FDS], nr, r;
        char ps[4];

        if (!b || !name || !ret_fd || size == 0 || mode > 07777)
                return -EINVAL;
        request(b, &w, "create");
        am_jw_str(&w, "name", name);
        am_jw_u64(&w, "size", size);
        if (prot >= 0) {
                if (prot_letters(prot, ps) < 0)
                        return -EINVAL;
                am_jw_str(&w, "prot", ps);
        }
        put_mode(&w, mode);
        r = call(b, &w, NULL, 0, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr < 1)
                r = -EPROTO;
        if (r == 0 && nr == 2)
                r = take_control(rfds[0], rfds[1], 1);
        if (r == 0)
                r = record_out(&o, info);
        if (nr == 2)
                close(rfds[1]);
        if (r < 0) {
                close_fds(rfds, nr > 1 ? 1 : nr);
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
        request(b, &w, "share");
        am_jw_str(&w, "name", name);
        put_mode(&w, mode);
        if (transient)
                am_jw_bool(&w, "transient", 1);
        if (ranged) {
                am_jw_u64(&w, "offset", offset);
                am_jw_u64(&w, "length", length);
        }
        {
                int rfds[MAX_FDS], nr;
                r = call(b, &w, fds, fds[1] >= 0 ? 2 : 1, &o, rfds, &nr);
                close_fds(rfds, nr);
        }
        if (fds[1] >= 0)
                close(fds[1]);
        if (r < 0)
                return r;
        if (transient)
                b->transients++;
        return record_out(&o, info);
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
        request(b, &w, "slice");
        am_jw_str(&w, "name", name);
        am_jw_str(&w, "of", of);
        am_jw_u64(&w, "offset", offset);
        am_jw_u64(&w, "length", length);
        put_mode(&w, mode);
        r = call0(b, &w, &o);
        if (r < 0)
                return r;
        return record_out(&o, info);
}

int ashmem_broker_attach(ashmem_broker *b, const char *name, int writable,
                         int *ret_fd, size_t *ret_offset, size_t *ret_length)
{
        struct am_jw w;
        struct am_jobj o;
        int rfds[MAX_FDS], nr, r;
        size_t off = 0, len = 0;

        if (!b || !name || !ret_fd)
                return -EINVAL;
        request(b, &w, "attach");
        am_jw_str(&w, "name", name);
        am_jw_str(&w, "access", writable ? "rw" : "r");
        r = call(b, &w, NULL, 0, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr < 1 || size_opt(&o, "size", &len) < 0 || size_opt(&o, "offset", &off) < 0 ||
            size_opt(&o, "length", &len) < 0)
                r = -EPROTO;
        /* the control block has the access asked for (a broker that sent
         * less would only give this process read-only pin state) */
        if (r == 0 && nr == 2)
                r = take_control(rfds[0], rfds[1], writable);
        if (nr == 2)
                close(rfds[1]);
        if (r < 0) {
                close_fds(rfds, nr > 1 ? 1 : nr);
                return r;
        }
        *ret_fd = rfds[0];
        if (ret_offset)
                *ret_offset = off;
        if (ret_length)
                *ret_length = len;
        return 0;
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

int ashmem_broker_lookup(ashmem_broker *b, int fd)
{
        struct am_jw w;
        struct am_jobj o;
        int rfds[MAX_FDS], nr, r;

        if (!b)
                return -EINVAL;
        if (fd < 0)
                return -EBADF;
        r = call(b, request(b, &w, "lookup"), &fd, 1, &o, rfds, &nr);
        if (r < 0)
                return r;
        if (nr != 1) {
                close_fds(rfds, nr);
                return -EPROTO;
        }
        r = take_control(fd, rfds[0], ctl_writable(rfds[0]));
        close(rfds[0]);
        return r;
}

int ashmem_broker_info(ashmem_broker *b, const char *name,
                       ashmem_region_info *ret)
{
        struct am_jw w;
        struct am_jobj o;
        int r;

        if (!b || !name || !ret)
                return -EINVAL;
        request(b, &w, "info");
        am_jw_str(&w, "name", name);
        r = call0(b, &w, &o);
        if (r < 0)
                return r;
        return parse_record(&o, ret);
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

                request(b, &w, "list");
                if (cursor[0])
                        am_jw_str(&w, "cursor", cursor);
                r = call0(b, &w, &o);
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
                            parse_record(&rec, &v[count]) < 0) {
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
        request(b, &w, "unshare");
        am_jw_str(&w, "name", name);
        return call0(b, &w, &o);
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
        request(b, &w, "purge");
        if (name)
                am_jw_str(&w, "name", name);
        r = call0(b, &w, &o);
        if (r < 0)
                return r;
        if (ull_opt(&o, "pages", &p) < 0)
                return -EPROTO;
        if (pages)
                *pages = p;
        return 0;
}

int ashmem_broker_stats(ashmem_broker *b, ashmem_broker_counters *ret)
{
        struct am_jw w;
        struct am_jobj o;
        int r;

        if (!b || !ret)
                return -EINVAL;
        r = call0(b, request(b, &w, "stats"), &o);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        r |= ull_opt(&o, "connections", &ret->connections);
        r |= ull_opt(&o, "regions", &ret->regions);
        r |= ull_opt(&o, "bytes", &ret->bytes);
        r |= ull_opt(&o, "requests", &ret->requests);
        r |= ull_opt(&o, "errors", &ret->errors);
        r |= ull_opt(&o, "attaches", &ret->attaches);
        r |= ull_opt(&o, "purges", &ret->purges);
        r |= ull_opt(&o, "pages_purged", &ret->pages_purged);
        r |= ull_opt(&o, "dropped", &ret->dropped);
        r |= ull_opt(&o, "uptime", &ret->uptime);
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
            nfds < 0 || nfds > MAX_FDS || (nfds && !fds))
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
        n = exchange(b, text, strlen(text), fds, nfds, rfds, nrfds);
        free(text);
        if (n < 0)
                return n;
        *reply_json = strdup(b->buf);
        if (!*reply_json) {
                close_fds(rfds, *nrfds);
                *nrfds = 0;
                return -ENOMEM;
        }
        r = parse_reply(b->buf, (size_t)n, &o);
        return r;
}

/* ---------------------------------------------------------------- implicit lookup */

static pthread_mutex_t lk_lock = PTHREAD_MUTEX_INITIALIZER;
static int lk_enabled = 1;
static long long lk_nobroker_ns;           /* when no broker answered */
static struct { dev_t dev; ino_t ino; long long at; } lk_miss[8];
static unsigned lk_next;

int ashmem_broker_auto_lookup(int enable)
{
        int old;

        pthread_mutex_lock(&lk_lock);
        old = lk_enabled;
        lk_enabled = !!enable;
        pthread_mutex_unlock(&lk_lock);
        return old;
}

/* 1 if no broker listens at path, else the lookup's result. */
static int lookup_at(const char *path, int fd)
{
        ashmem_broker *b;
        int r = ashmem_broker_connect(path, &b);

        if (r < 0)
                return 1;
        b->timeout_ms = LOOKUP_TIMEOUT_MS;
        r = ashmem_broker_lookup(b, fd);
        ashmem_broker_close(b);
        return r;
}

int am_lookup_control(int fd, const struct stat *st)
{
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        long long now = am_mono_ns(0);
        int r, skip = 0, brokers = 0;

        pthread_mutex_lock(&lk_lock);
        if (!lk_enabled || (lk_nobroker_ns && now - lk_nobroker_ns < MISS_TTL_NS))
                skip = 1;
        for (unsigned i = 0; !skip && i < sizeof(lk_miss) / sizeof(lk_miss[0]); i++)
                if (lk_miss[i].at && lk_miss[i].dev == st->st_dev &&
                    lk_miss[i].ino == st->st_ino && now - lk_miss[i].at < MISS_TTL_NS)
                        skip = 1;
        pthread_mutex_unlock(&lk_lock);
        if (skip)
                return -ENOENT;

        /* the user's broker, then the system one */
        if (ashmem_broker_socket_path(0, path, sizeof(path)) >= 0) {
                r = lookup_at(path, fd);
                if (r == 0)
                        return 0;
                brokers += r < 0;
        } else {
                path[0] = 0;
        }
        if (strcmp(path, ASHMEM_BROKER_SYSTEM_SOCKET) != 0) {
                r = lookup_at(ASHMEM_BROKER_SYSTEM_SOCKET, fd);
                if (r == 0)
                        return 0;
                brokers += r < 0;
        }
        pthread_mutex_lock(&lk_lock);
        if (!brokers) {
                lk_nobroker_ns = now;
        } else {
                lk_miss[lk_next].dev = st->st_dev;
                lk_miss[lk_next].ino = st->st_ino;
                lk_miss[lk_next].at = now;
                lk_next = (lk_next + 1) % (sizeof(lk_miss) / sizeof(lk_miss[0]));
        }
        pthread_mutex_unlock(&lk_lock);
        return -ENOENT;
}
