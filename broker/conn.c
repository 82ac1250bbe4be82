/* SPDX-License-Identifier: MIT */
/*
 * The broker's connections: non-blocking SOCK_SEQPACKET sockets. Each
 * readable connection gets a bounded number of requests served per turn,
 * so nobody starves the others; a reply that does not fit in the socket
 * waits in the connection, which is not read again until it has gone out.
 * Every descriptor that arrives is either kept by the operation or handed
 * to closer_put() right after the request (never closed here: closing a
 * client's descriptor may block), and so is a connection's own socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "internal.h"

#define READS_PER_TURN 16
#define ACCEPTS_PER_TURN 64
#define RECV_FDS AM_SCM_RECV_MAX /* room to notice extra descriptors */

int epoll_set(struct broker *b, int op, int fd, unsigned events, void *tag)
{
        struct epoll_event ev = { .events = events, .data.ptr = tag };
        return epoll_ctl(b->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

void conn_want(struct broker *b, struct conn *c)
{
        unsigned ev = EPOLLRDHUP;
        int reading;

        if (c->dead)
                return;
        if (c->out)
                ev |= EPOLLOUT;
        reading = !c->out && !c->job && !b->stopping;
        if (reading)
                ev |= EPOLLIN;
        if (epoll_set(b, EPOLL_CTL_MOD, c->fd, ev, c) < 0)
                blog(b, 0, "epoll: %s", strerror(errno));
        c->reading = reading;
}

static void conn_out_free(struct conn *c)
{
        free(c->out);
        c->out = NULL;
        for (int i = 0; i < c->noutfds; i++)
                close(c->outfds[i]);
        c->noutfds = 0;
}

/* accept() was paused for want of descriptors: a descriptor was just freed
 * (or the tick came), so try again. Each resume follows a real release, so
 * this cannot spin. */
void broker_fds_freed(struct broker *b)
{
        if (b->accept_paused && !b->stopping) {
                b->accept_paused = 0;
                epoll_set(b, EPOLL_CTL_MOD, b->lfd, EPOLLIN, &tag_listen);
        }
}

void conn_close(struct broker *b, struct conn *c, const char *why)
{
        if (c->dead)
                return;
        blog(b, 2, "connection of uid %u pid %d closed (%s)", (unsigned)c->uid,
             (int)c->pid, why);
        c->dead = 1;
        b->ndead++;
        ops_conn_closed(b, c);          /* transient names go */
        if (c->job)
                c->job->c = NULL;       /* nobody waits for it any more */
        c->job = NULL;
        conn_out_free(c);
        /* its queue may hold descriptors the client sent: closer_conn()
         * decides who closes it, so it leaves epoll now (c is freed first) */
        if (epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
                blog(b, 0, "epoll: %s", strerror(errno));
        closer_conn(b, c->uid, c->fd);
        c->fd = -1;
        broker_fds_freed(b);
}

void conns_reap(struct broker *b)
{
        struct conn *c = b->conns, *next;

        if (!b->ndead)
                return;         /* every turn of the loop: no walk of them all */
        b->ndead = 0;
        for (; c; c = next) {
                next = c->next;
                if (!c->dead)
                        continue;
                if (c->prev)
                        c->prev->next = c->next;
                else
                        b->conns = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                b->nconns--;
                uid_conn_close(b, c->uid);
                free(c->groups);
                free(c);
        }
}

/* Send a reply now, or keep it (with its own duplicates of the
 * descriptors) until the socket has room. */
static void conn_send(struct broker *b, struct conn *c, const char *text,
                      size_t len, const int *fds, int nfds)
{
        int r;

        if (c->dead)
                return;
        r = c->out ? -EAGAIN : am_send_fds(c->fd, text, len, fds, nfds, MSG_DONTWAIT);
        if (r == 0)
                return;
        if (r != -EAGAIN || c->out) {
                conn_close(b, c, r == -EAGAIN ? "reply queue full" : strerror(-r));
                return;
        }
        c->out = malloc(len);
        if (!c->out) {
                conn_close(b, c, "out of memory");
                return;
        }
        memcpy(c->out, text, len);
        c->outlen = len;
        for (int i = 0; i < nfds; i++) {
                c->outfds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (c->outfds[i] < 0) {
                        conn_close(b, c, "cannot keep a descriptor for the reply");
                        return;
                }
                c->noutfds = i + 1;
        }
        conn_want(b, c);
}

void conn_flush(struct broker *b, struct conn *c)
{
        int r;

        if (!c->out)
                return;
        r = am_send_fds(c->fd, c->out, c->outlen, c->outfds, c->noutfds, MSG_DONTWAIT);
        if (r == -EAGAIN)
                return;
        conn_out_free(c);
        if (r < 0) {
                conn_close(b, c, strerror(-r));
                return;
        }
        conn_want(b, c);
}

/* An error reply into rep->sb. */
static void error_reply(struct reply *rep, int e)
{
        char msg[160];

        struct rlimit rl;

        if (rep->err[0]) {
                snprintf(msg, sizeof(msg), "%s", rep->err);
        } else if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                /* the broker's own limit, not a user's */
                snprintf(msg, sizeof(msg), "the broker is out of descriptors (its RLIMIT_NOFILE "
                         "is %llu)", (unsigned long long)rl.rlim_cur);
        } else {
                snprintf(msg, sizeof(msg), "%s", strerror(e));
                if (msg[0] >= 'A' && msg[0] <= 'Z' && !(msg[1] >= 'A' && msg[1] <= 'Z'))
                        msg[0] = (char)(msg[0] - 'A' + 'a');
        }
        am_jw_reset(&rep->sb);
        am_jw_puts(&rep->sb, "{\"ok\":false,\"errno\":");
        am_jw_string(&rep->sb, am_errno_name(e, "EIO"));
        am_jw_puts(&rep->sb, ",\"error\":");
        am_jw_string(&rep->sb, msg);
        am_jw_puts(&rep->sb, "}");
        rep->nfds = 0;
}

static struct reply rep;        /* the main thread's reply buffer */

static struct req req;          /* the main thread's request */

/* Serve one message of n bytes with its descriptors. */
static void serve(struct broker *b, struct conn *c, ssize_t n, int msg_flags,
                  int *fds, int nfds, int ctrunc)
{
        char opname[41] = "?";
        int r;

        b->n.requests++;
        rep.err[0] = 0;
        rep.nfds = 0;
        am_jw_reset(&rep.sb);
        am_jw_puts(&rep.sb, "{\"ok\":true");
        req.used = 0;
        /* the buffer has one byte more than the limit: a message of
         * exactly limit+1 bytes fits without MSG_TRUNC */
        if ((msg_flags & MSG_TRUNC) || (size_t)n > b->cfg->max_message) {
                snprintf(rep.err, sizeof(rep.err), "message larger than %zu bytes",
                         b->cfg->max_message);
                r = -EMSGSIZE;
        } else if (ctrunc || nfds > FDS_MAX) {
                snprintf(rep.err, sizeof(rep.err), "too many descriptors (at most %d)", FDS_MAX);
                r = -EINVAL;
        } else if (n == 0) {
                snprintf(rep.err, sizeof(rep.err), "empty message");
                r = -EPROTO;
        } else if (nfds == 0 && (r = ops_quick(b, c, b->in, (size_t)n, &rep)) != QUICK_NO) {
                if (b->cfg->verbose >= 2)
                        snprintf(opname, sizeof(opname), "attach");
        } else if (am_json_object(b->in, (size_t)n, &req.o) < 0) {
                snprintf(rep.err, sizeof(rep.err), "not a JSON object");
                r = -EPROTO;
        } else {
                /* the op's name is for the log of every request alone */
                const struct am_jfield *op = b->cfg->verbose >= 2 ? am_json_get(&req.o, "op") : NULL;
                if (op && am_json_str(op, opname, sizeof(opname)) < 0)
                        snprintf(opname, sizeof(opname), "?");
                r = ops_dispatch(b, c, &req, fds, nfds, &rep);
        }
        closer_put_all(b, c->uid, fds, nfds);
        if (r == 1) {                   /* the reply comes with its job */
                blog(b, 2, "uid %u pid %d: %s: queued", (unsigned)c->uid, (int)c->pid, opname);
                conn_want(b, c);
                return;
        }
        if (r == 0)
                am_jw_puts(&rep.sb, "}");
        if (r < 0 || rep.sb.overflow) {
                if (r == 0)
                        r = -ENOMEM;
                b->n.errors++;
                error_reply(&rep, -r);
        }
        blog(b, 2, "uid %u pid %d: %s: %s", (unsigned)c->uid, (int)c->pid, opname,
             r < 0 ? am_errno_name(-r, "EIO") : "ok");
        if (rep.sb.overflow) {
                conn_close(b, c, "out of memory");
                return;
        }
        conn_send(b, c, rep.sb.buf, rep.sb.len, rep.fds, rep.nfds);
}

/* Send the reply of a purge job to the connection that waits for it. */
void ops_job_done(struct broker *b, struct job *j)
{
        struct conn *c = j->c;
        char text[96];
        int n;

        if (!c)
                return;
        c->job = NULL;
        n = snprintf(text, sizeof(text), "{\"ok\":true,\"pages\":%llu}", j->pages);
        conn_send(b, c, text, (size_t)n, NULL, 0);
        conn_want(b, c);
}

/* Is a 0-byte read the end of the connection, or an empty message? */
static int peer_gone(int fd)
{
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };
        return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A turn reads one request, or up to READS_PER_TURN from a client that
 * sends them ahead of the replies (seen when a read after the first of a
 * turn finds one; looked at every PROBE_TURNS turns otherwise): a client
 * that waits for each reply costs no read that finds nothing, and epoll
 * (level-triggered) says again if a request is left. */
#define PROBE_TURNS 64

static void conn_read(struct broker *b, struct conn *c)
{
        int reads = c->pipelined || c->turns++ % PROBE_TURNS == 0 ? READS_PER_TURN : 1;
        long long now = 0;

        for (int turn = 0; turn < reads; turn++) {
                int fds[RECV_FDS], nfds = 0, extra = 0, mflags = 0;
                ssize_t n;

                if (c->dead || c->out || c->job || b->stopping)
                        return;
                {
                        char msg[160], out[320];
                        if (uid_fd_closing(b, c->uid, msg, sizeof(msg)) < 0) {
                                int len = snprintf(out, sizeof(out),
                                                   "{\"ok\":false,\"errno\":\"EMFILE\",\"error\":\"%s\"}",
                                                   msg);
                                (void)am_send_fds(c->fd, out, (size_t)len, NULL, 0, MSG_DONTWAIT);
                                conn_close(b, c, msg);
                                return;
                        }
                }
                n = am_recv_fds(c->fd, b->in, b->cfg->max_message + 1, MSG_DONTWAIT,
                                fds, RECV_FDS, &nfds, &extra, &mflags);
                if (n < 0) {
                        if (n != -EAGAIN)
                                conn_close(b, c, strerror((int)-n));
                        else if (turn == 1)
                                c->pipelined = 0;
                        return;
                }
                if (!now)               /* a turn is short: its first request's time */
                        c->last_ms = now = am_mono_ms();
                if (turn == 1)
                        c->pipelined = 1;
                if (turn >= 1)
                        records_new_turn();     /* it may not have been waiting */
                if (n == 0 && nfds == 0 && peer_gone(c->fd)) {
                        conn_close(b, c, "end of connection");
                        return;
                }
                serve(b, c, n, mflags, fds, nfds, extra || (mflags & MSG_CTRUNC));
        }
}

/* One user connecting in a loop must not fill the log: at most one line
 * per uid a second, saying how many went unlogged (uid_log_refusal). */
static void log_refusal(struct broker *b, const struct ucred *cr, const char *why)
{
        unsigned long long quiet;

        if (!uid_log_refusal(b, cr->uid, &quiet))
                return;
        if (quiet)
                blog(b, 1, "refused a connection of uid %u pid %d: %s "
                     "(and %llu more before it, not logged)", (unsigned)cr->uid,
                     (int)cr->pid, why, quiet);
        else
                blog(b, 1, "refused a connection of uid %u pid %d: %s",
                     (unsigned)cr->uid, (int)cr->pid, why);
}

void conn_accept(struct broker *b)
{
        if (!closer_accept_ok(b)) {
                /* the closer's deferred list is long: new connections
                 * wait in the backlog until it is shorter */
                epoll_set(b, EPOLL_CTL_MOD, b->lfd, 0, &tag_listen);
                b->accept_paused = 1;
                return;
        }
        for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
                struct ucred cr;
                socklen_t len = sizeof(cr);
                struct conn *c;
                int fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
                            errno == ENOBUFS) {
                                /* the backlog would wake us for ever: pause
                                 * accepting until a descriptor is freed
                                 * (broker_fds_freed) or the next tick */
                                blog(b, 0, "accept: %s; pausing", strerror(errno));
                                epoll_set(b, EPOLL_CTL_MOD, b->lfd, 0, &tag_listen);
                                b->accept_paused = 1;
                        } else if (errno != EAGAIN) {
                                blog(b, 0, "accept: %s", strerror(errno));
                        }
                        return;
                }
                b->accepts++;
                b->busy_ms = am_mono_ms();
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
                        blog(b, 0, "SO_PEERCRED: %s", strerror(errno));
                        closer_put(b, (uid_t)-1, fd);
                        continue;
                }
                if (b->nconns >= b->cfg->max_connections) {
                        char full[160];
                        int n = snprintf(full, sizeof(full), "{\"ok\":false,\"errno\":\"EMFILE\","
                                         "\"error\":\"too many connections (limit %u, "
                                         "--max-connections)\"}", (unsigned)b->cfg->max_connections);
                        (void)am_send_fds(fd, full, (size_t)n, NULL, 0, MSG_DONTWAIT);
                        closer_refused(b, cr.uid, fd);
                        b->n.dropped++;
                        log_refusal(b, &cr, "too many connections");
                        continue;
                }
                {
                        char msg[160], out[256];
                        int e = uid_conn_open(b, cr.uid, msg, sizeof(msg));
                        if (e < 0) {
                                int n = snprintf(out, sizeof(out),
                                                 "{\"ok\":false,\"errno\":\"%s\",\"error\":\"%s\"}",
                                                 am_errno_name(-e, "EIO"), msg);
                                (void)am_send_fds(fd, out, (size_t)n, NULL, 0, MSG_DONTWAIT);
                                closer_refused(b, cr.uid, fd);
                                b->n.dropped++;
                                log_refusal(b, &cr, msg);
                                continue;
                        }
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        uid_conn_close(b, cr.uid);
                        closer_put(b, cr.uid, fd);
                        continue;
                }
                c->fd = fd;
                c->uid = cr.uid;
                c->gid = cr.gid;
                c->pid = cr.pid;
                c->last_ms = am_mono_ms();
                {
                        gid_t g[64];
                        socklen_t gl = sizeof(g);
                        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &gl) == 0 && gl > 0) {
                                c->groups = malloc(gl);
                                if (c->groups) {
                                        memcpy(c->groups, g, gl);
                                        c->ngroups = (int)(gl / sizeof(gid_t));
                                }
                        } else if (errno == ERANGE && gl > 0) {
                                c->groups = malloc(gl);
                                if (c->groups && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS,
                                                            c->groups, &gl) == 0)
                                        c->ngroups = (int)(gl / sizeof(gid_t));
                        }
                }
                if (epoll_set(b, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP, c) < 0) {
                        blog(b, 0, "epoll: %s", strerror(errno));
                        uid_conn_close(b, cr.uid);
                        free(c->groups);
                        free(c);
                        closer_put(b, cr.uid, fd);
                        continue;
                }
                c->reading = 1;
                c->next = b->conns;
                if (b->conns)
                        b->conns->prev = c;
                b->conns = c;
                b->nconns++;
                b->n.connections_total++;
                blog(b, 2, "connection of uid %u pid %d", (unsigned)c->uid, (int)c->pid);
        }
}

void conn_event(struct broker *b, struct conn *c, unsigned ev)
{
        if (c->dead)
                return;
        if (ev & EPOLLOUT)
                conn_flush(b, c);
        if (c->dead)
                return;
        /* a reading connection reads up to its end (recvmsg says 0) */
        if (c->reading && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                conn_read(b, c);
        else if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                conn_close(b, c, "hang-up");
}

void conn_replies_free(void)
{
        am_jw_free(&rep.sb);
}
