/* SPDX-License-Identifier: MIT */
/*
 * The broker client's transport: the socket (its default path, the check
 * of its directory, connecting), and one request/reply exchange over it (a
 * SOCK_SEQPACKET message with 0-2 descriptors each way) with the
 * connection's timeout and one reconnection. See lib/internal/client.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "internal/client.h"
#include "internal/clock.h"
#include "internal/errname.h"
#include "internal/json.h"
#include "internal/scm.h"
#include "internal/sockdir.h"

#define RECV_FDS    AM_SCM_RECV_MAX /* room to notice (and close) extra ones */

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

/* Connect to a broker we trust (lib/internal/sockdir.h): its directory
 * first, then who listens. Returns the socket, with the peer's pid and uid
 * in *pid and *uid, or -errno. */
static int sock_connect(const char *path, pid_t *pid, uid_t *uid)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        size_t n = strlen(path);
        int fd, r;

        if (n == 0)
                return -EINVAL;
        if (n >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        r = am_broker_trust_dir(path);
        if (r < 0)
                return r;
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
        r = am_broker_trust_peer(path, fd, pid, uid);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

static int broker_connect(const char *path, ashmem_broker **ret);

int ashmem_broker_connect(const char *path, ashmem_broker **ret)
{
        int saved = errno, r = broker_connect(path, ret);

        errno = saved;
        return r;
}

/* Forks this process came through, counted in the child: a connection
 * made before the fork belongs to the parent. */
static unsigned long am_forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;

static void forks_child(void)
{
        __atomic_store_n(&am_forks, am_forks + 1, __ATOMIC_RELAXED);
}

static void forks_init(void)
{
        (void)pthread_atfork(NULL, NULL, forks_child);
}

static int broker_connect(const char *path, ashmem_broker **ret)
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
        pthread_once(&forks_once, forks_init);
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->forks = __atomic_load_n(&am_forks, __ATOMIC_RELAXED);
        fd = sock_connect(path, &b->peer_pid, &b->peer_uid);
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
        int saved = errno;

        if (b) {
                if (b->fd >= 0)
                        close(b->fd);
                free(b);
        }
        errno = saved;
        return NULL;
}

int ashmem_broker_peer(const ashmem_broker *b, pid_t *pid, uid_t *uid)
{
        if (!b)
                return -EINVAL;
        if (pid)
                *pid = b->peer_pid;
        if (uid)
                *uid = b->peer_uid;
        return 0;
}

int ashmem_broker_fd(const ashmem_broker *b)
{
        if (!b)
                return -EINVAL;
        return b->fd >= 0 ? b->fd : -ENOTCONN;
}

const char *ashmem_broker_error(const ashmem_broker *b)
{
        return b ? b->why : "";
}

int ashmem_broker_set_timeout(ashmem_broker *b, int timeout_ms)
{
        if (!b || timeout_ms < 0)
                return -EINVAL;
        b->timeout_ms = timeout_ms;
        return 0;
}

/* ---------------------------------------------------------------- messages */

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
        else if ((mflags & MSG_CTRUNC) || ngot > AM_SCM_MAX)
                r = -EPROTO;
        if (r < 0) {
                am_close_fds(got, ngot);
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
        fd = sock_connect(b->path, &b->peer_pid, &b->peer_uid);
        if (fd < 0)
                return fd;
        if (b->fd < 0) {
                b->fd = fd;
                return 0;
        }
        if (dup3(fd, b->fd, O_CLOEXEC) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        close(fd);
        return 0;
}

/* Give up the connection after an exchange that failed once the request
 * was sent (a timeout, a reset, a bad reply): a late reply must never be
 * read as the answer to the next request. The next exchange connects
 * again (unless transient shares lived on it: they are gone). */
static void drop(ashmem_broker *b)
{
        if (b->fd >= 0) {
                close(b->fd);
                b->fd = -1;
        }
}

/* One request/reply exchange of raw text. A request the broker cannot
 * have received (the connection was closed before it was sent: an idle
 * timeout, a restart) is sent again once on a new connection, unless
 * transient shares lived on the old one; a request that may have run is
 * never sent again. */
int am_client_exchange(ashmem_broker *b, const char *req, size_t len,
                    const int *fds, int nfds, int *rfds, int *nrfds)
{
        int r, retried = 0, saved = errno;

        *nrfds = 0;
        b->why[0] = 0;
        /* a child's copy of its parent's connection: the replies on it
         * may be the parent's */
        if (b->forks != __atomic_load_n(&am_forks, __ATOMIC_RELAXED))
                return -ENOTCONN;
        if (len > ASHMEM_BROKER_MSG_MAX)
                return -EMSGSIZE;
        if (b->fd < 0 && (r = reconnect(b)) < 0) {
                errno = saved;
                return r;
        }
        for (;;) {
                r = am_send_fds(b->fd, req, len, fds, nfds, 0);
                if (r == 0) {
                        r = recv_msg(b, rfds, nrfds);
                        if (r < 0)
                                drop(b);
                        errno = saved;
                        return r;
                }
                if (r == -EPIPE || r == -ECONNRESET) {
                        /* a broker that refuses a connection (too many)
                         * says why before it closes it */
                        struct pollfd p = { .fd = b->fd, .events = POLLIN };
                        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
                                int t = b->timeout_ms, n;
                                b->timeout_ms = 0;
                                n = recv_msg(b, rfds, nrfds);
                                b->timeout_ms = t;
                                if (n > 0) {
                                        drop(b);
                                        errno = saved;
                                        return n;
                                }
                        }
                }
                if (retried || !(r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) ||
                    reconnect(b) < 0) {
                        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
                                drop(b);
                        errno = saved;
                        return r;
                }
                retried = 1;
        }
}

/* Check a reply of n bytes (in b->buf): 0 if it says ok, else the negative
 * errno it names; the fields are located in o. */
int am_client_parse_reply(const char *text, size_t n, struct am_jobj *o, char *why,
                          size_t whylen)
{
        const struct am_jfield *ok, *en;
        char name[32];
        int v;

        if (why && whylen)
                why[0] = 0;
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
        if (why && whylen && am_json_str(am_json_get(o, "error"), why, whylen) < 0)
                why[0] = 0;
        v = am_errno_value(name);
        return v ? -v : -EPROTO;
}

int am_client_send(ashmem_broker *b, struct am_jw *w, const int *fds, int nfds,
                   int *rfds, int *nrfds)
{
        int n = am_jw_end(w);

        *nrfds = 0;
        if (n < 0)
                return n;
        return am_client_exchange(b, w->buf, (size_t)n, fds, nfds, rfds, nrfds);
}

int am_client_reply(ashmem_broker *b, int n, struct am_jobj *o, int *rfds, int *nrfds)
{
        int r = am_client_parse_reply(b->buf, (size_t)n, o, b->why, sizeof(b->why));

        if (r < 0) {
                am_close_fds(rfds, *nrfds);
                *nrfds = 0;
        }
        return r;
}

int am_client_call(ashmem_broker *b, struct am_jw *w, const int *fds, int nfds,
                struct am_jobj *o, int *rfds, int *nrfds)
{
        int n = am_client_send(b, w, fds, nfds, rfds, nrfds);

        return n < 0 ? n : am_client_reply(b, n, o, rfds, nrfds);
}

/* A call whose reply brings no descriptor (any that comes is closed). */
int am_client_call0(ashmem_broker *b, struct am_jw *w, struct am_jobj *o)
{
        int rfds[AM_SCM_MAX], nr, r = am_client_call(b, w, NULL, 0, o, rfds, &nr);

        am_close_fds(rfds, nr);
        return r;
}

/* Start a request in the connection's own buffer. */
struct am_jw *am_client_request(ashmem_broker *b, struct am_jw *w, const char *op)
{
        b->memo.req_len = 0;
        am_jw_begin(w, b->out, sizeof(b->out), op);
        return w;
}
