/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon: one epoll loop over non-blocking SOCK_SEQPACKET
 * connections. Each readable connection gets a bounded number of requests
 * served per turn, so nobody starves the others; a reply that does not fit
 * in the socket waits in the connection, which is not read again until it
 * has gone out. Every descriptor that arrives is either kept by the
 * operation or closed right after the reply.
 *
 * Also here: the socket (directory checks, the lifetime lock, stale socket
 * removal), signals (signalfd: SIGTERM/SIGINT stop the broker cleanly), the
 * tick (idle connections, the MemAvailable poll) and the log.
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

/* epoll tags of the broker's own descriptors (connections use their
 * struct conn pointer) */
static char tag_listen, tag_signal, tag_tick, tag_psi, tag_job;

void broker_config_init(struct broker_config *cfg)
{
        memset(cfg, 0, sizeof(*cfg));
        cfg->socket_mode = -1;
        cfg->verbose = 1;
        cfg->purge_below = -1;
        cfg->psi = 1;
        cfg->psi_stall_us = 150000;
        cfg->psi_window_us = 2000000;
        cfg->fallback_below = 10;
        cfg->poll_ms = 1000;
        cfg->purge_step = 64ull << 20;
        cfg->max_connections = 1024;
        cfg->max_regions = 4096;
        cfg->max_bytes = 0;
        cfg->max_message = MSG_MAX;
        cfg->idle_timeout_ms = 300000;
}

int broker_socket_path(const char *opt, int system, char *buf, size_t len)
{
        if (opt) {
                int n = snprintf(buf, len, "%s", opt);
                if (n <= 0)
                        return -EINVAL;
                if ((size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
                        return -ENAMETOOLONG;
                return n;
        }
        return ashmem_broker_socket_path(system, buf, len);
}

/* ---------------------------------------------------------------- log */

void blog(const struct broker *b, int level, const char *fmt, ...)
{
        char msg[1024], stamp[32];
        struct timespec ts;
        struct tm tm;
        va_list ap;

        if (level > b->cfg->verbose)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        /* one write per line, so the purge thread's lines do not mix in */
        fprintf(stderr, "%s.%03ldZ ashmem-broker[%d]: %s%s\n", stamp,
                ts.tv_nsec / 1000000, (int)getpid(),
                level == 0 ? "warning: " : "", msg);
}

/* ---------------------------------------------------------------- connections */

static int epoll_set(struct broker *b, int op, int fd, unsigned events, void *tag)
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

static void conn_close(struct broker *b, struct conn *c, const char *why)
{
        if (c->dead)
                return;
        blog(b, 2, "connection of uid %u pid %d closed (%s)", (unsigned)c->uid,
             (int)c->pid, why);
        c->dead = 1;
        ops_conn_closed(b, c);          /* transient names go */
        if (c->job)
                c->job->c = NULL;       /* nobody waits for it any more */
        c->job = NULL;
        conn_out_free(c);
        close(c->fd);
        c->fd = -1;
        broker_fds_freed(b);
}

static void conns_reap(struct broker *b)
{
        struct conn *c = b->conns, *next;

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

static void conn_flush(struct broker *b, struct conn *c)
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

        if (rep->err[0]) {
                snprintf(msg, sizeof(msg), "%s", rep->err);
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
        c->last_ms = am_mono_ms();
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
        } else if (am_json_object(b->in, (size_t)n, &req.o) < 0) {
                snprintf(rep.err, sizeof(rep.err), "not a JSON object");
                r = -EPROTO;
        } else {
                const struct am_jfield *op = am_json_get(&req.o, "op");
                if (op && am_json_str(op, opname, sizeof(opname)) < 0)
                        snprintf(opname, sizeof(opname), "?");
                r = ops_dispatch(b, c, &req, fds, nfds, &rep);
        }
        for (int i = 0; i < nfds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
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

static void conn_read(struct broker *b, struct conn *c)
{
        for (int turn = 0; turn < READS_PER_TURN; turn++) {
                int fds[RECV_FDS], nfds = 0, extra = 0, mflags = 0;
                ssize_t n;

                if (c->dead || c->out || c->job || b->stopping)
                        return;
                n = am_recv_fds(c->fd, b->in, b->cfg->max_message + 1, MSG_DONTWAIT,
                                fds, RECV_FDS, &nfds, &extra, &mflags);
                if (n < 0) {
                        if (n != -EAGAIN)
                                conn_close(b, c, strerror((int)-n));
                        return;
                }
                if (n == 0 && nfds == 0 && peer_gone(c->fd)) {
                        conn_close(b, c, "end of connection");
                        return;
                }
                serve(b, c, n, mflags, fds, nfds, extra || (mflags & MSG_CTRUNC));
        }
}

static void conn_accept(struct broker *b)
{
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
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
                        blog(b, 0, "SO_PEERCRED: %s", strerror(errno));
                        close(fd);
                        continue;
                }
                if (b->nconns >= b->cfg->max_connections) {
                        static const char full[] =
                                "{\"ok\":false,\"errno\":\"EMFILE\",\"error\":\"too many connections\"}";
                        (void)am_send_fds(fd, full, sizeof(full) - 1, NULL, 0, MSG_DONTWAIT);
                        close(fd);
                        b->n.dropped++;
                        blog(b, 1, "refused a connection of uid %u pid %d: %u connections",
                             (unsigned)cr.uid, (int)cr.pid, b->nconns);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
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
                        free(c->groups);
                        free(c);
                        close(fd);
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

static void conn_event(struct broker *b, struct conn *c, unsigned ev)
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

/* ---------------------------------------------------------------- tick */

static void tick(struct broker *b)
{
        uint64_t n;
        long long now = am_mono_ms();

        while (read(b->tickfd, &n, sizeof(n)) < 0 && errno == EINTR)
                ;
        broker_fds_freed(b);
        if (b->cfg->idle_timeout_ms) {
                for (struct conn *c = b->conns; c; c = c->next) {
                        if (c->dead || c->transients || c->job || c->out)
                                continue;
                        if (now - c->last_ms > (long long)b->cfg->idle_timeout_ms) {
                                blog(b, 1, "dropping idle connection of uid %u pid %d",
                                     (unsigned)c->uid, (int)c->pid);
                                b->n.dropped++;
                                conn_close(b, c, "idle");
                        }
                }
        }
        if (b->collect) {
                /* the library's control mappings of regions let go */
                b->collect = 0;
                (void)ashmem_collect();
        }
        purge_tick(b);
}

/* ---------------------------------------------------------------- setup */

/* The default socket's directory: created 0700 (0755 for the system one),
 * refused if someone else owns it or others may write it. */
static int prepare_dir(struct broker *b, int system)
{
        char dir[sizeof(b->path)];
        const char *why = NULL;
        int r = am_socket_dir(b->path, geteuid(),
                              AM_SOCKDIR_CREATE | (system ? AM_SOCKDIR_SYSTEM : 0),
                              dir, sizeof(dir), &why);

        if (r < 0 && why)
                blog(b, 0, "refusing %s: %s", dir, why);
        else if (r < 0)
                blog(b, 0, "cannot create %s: %s", dir, strerror(-r));
        return r;
}

static int take_lock(struct broker *b)
{
        char lock[sizeof(b->path) + 8];
        int r;

        snprintf(lock, sizeof(lock), "%s.lock", b->path);
        b->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (b->lockfd < 0) {
                int e = errno;
                blog(b, 0, "%s: %s", lock, strerror(e));
                return -e;
        }
        while ((r = flock(b->lockfd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
                ;
        if (r < 0) {
                int e = errno;
                if (e == EWOULDBLOCK) {
                        blog(b, 0, "a broker is already running on %s", b->path);
                        return -EADDRINUSE;
                }
                blog(b, 0, "%s: %s", lock, strerror(e));
                return -e;
        }
        return 0;
}

static int listen_socket(struct broker *b, mode_t mode)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        struct stat st;
        mode_t old;
        int r;

        /* we hold the lock: a socket left here is a dead broker's */
        if (lstat(b->path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        blog(b, 0, "refusing to replace %s: not a socket", b->path);
                        return -EEXIST;
                }
                if (unlink(b->path) < 0 && errno != ENOENT) {
                        int e = errno;
                        blog(b, 0, "removing stale %s: %s", b->path, strerror(e));
                        return -e;
                }
                blog(b, 1, "removed stale socket %s", b->path);
        }
        memcpy(a.sun_path, b->path, strlen(b->path) + 1);
        b->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (b->lfd < 0)
                return -errno;
        old = umask(0177);
        r = bind(b->lfd, (struct sockaddr *)&a, sizeof(a));
        umask(old);
        if (r < 0 || chmod(b->path, mode) < 0 || lstat(b->path, &st) < 0 ||
            listen(b->lfd, 128) < 0) {
                int e = errno;
                blog(b, 0, "cannot listen on %s: %s", b->path, strerror(e));
                return -e;
        }
        b->sock_ino = st.st_ino;
        b->sock_dev = st.st_dev;
        return 0;
}

static void remove_socket(struct broker *b)
{
        struct stat st;

        if (b->sock_ino && lstat(b->path, &st) == 0 && st.st_ino == b->sock_ino &&
            st.st_dev == b->sock_dev)
                unlink(b->path);
        b->sock_ino = 0;
}

static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int setup(struct broker *b)
{
        const struct broker_config *cfg = b->cfg;
        const char *env = secure_getenv("ASHMEM_SOCKET");
        int explicit_path = cfg->socket_path || (!cfg->system && env && *env);
        mode_t mode = cfg->socket_mode >= 0 ? (mode_t)cfg->socket_mode :
                      cfg->system ? 0666 : 0600;
        struct itimerspec its = { { 1, 0 }, { 1, 0 } };
        sigset_t set;
        int r;

        r = broker_socket_path(cfg->socket_path, cfg->system, b->path, sizeof(b->path));
        if (r < 0) {
                blog(b, 0, "socket path: %s", strerror(-r));
                return r;
        }
        if (!explicit_path && (r = prepare_dir(b, cfg->system)) < 0)
                return r;
        if ((r = take_lock(b)) < 0 || (r = listen_socket(b, mode)) < 0)
                return r;
        raise_nofile();

        /* a shell starts background jobs with SIGINT ignored: an ignored
         * signal never reaches the signalfd */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
                return -EINVAL;
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        b->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        b->epfd = epoll_create1(EPOLL_CLOEXEC);
        b->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (b->sigfd < 0 || b->epfd < 0 || b->tickfd < 0)
                return -errno;
        if (cfg->poll_ms && cfg->poll_ms < 1000) {
                its.it_interval.tv_sec = its.it_value.tv_sec = 0;
                its.it_interval.tv_nsec = its.it_value.tv_nsec = (long)cfg->poll_ms * 1000000L;
        }
        if (timerfd_settime(b->tickfd, 0, &its, NULL) < 0)
                return -errno;
        if ((r = epoll_set(b, EPOLL_CTL_ADD, b->lfd, EPOLLIN, &tag_listen)) < 0 ||
            (r = epoll_set(b, EPOLL_CTL_ADD, b->sigfd, EPOLLIN, &tag_signal)) < 0 ||
            (r = epoll_set(b, EPOLL_CTL_ADD, b->tickfd, EPOLLIN, &tag_tick)) < 0)
                return r;
        r = purge_start(b);
        if (r < 0)
                return r;
        if ((r = epoll_set(b, EPOLL_CTL_ADD, b->jobfd, EPOLLIN, &tag_job)) < 0)
                return r;
        if (b->psifd >= 0 &&
            (r = epoll_set(b, EPOLL_CTL_ADD, b->psifd, EPOLLPRI, &tag_psi)) < 0)
                return r;
        blog(b, 1, "listening on %s (mode %04o), protocol %d, driver %s", b->path,
             (unsigned)mode, ASHMEM_BROKER_PROTOCOL, ashmem_driver_name());
        return 0;
}

/* Stop accepting, send what is still owed (a second at most), finish or
 * abandon purges, remove the socket. */
static void shutdown_broker(struct broker *b, const char *why)
{
        long long deadline;

        blog(b, 1, "stopping (%s)", why);
        b->stopping = 1;
        if (b->lfd >= 0) {
                epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->lfd, NULL);
                close(b->lfd);
                b->lfd = -1;
        }
        remove_socket(b);
        purge_stop(b, 2000);
        deadline = am_mono_ms() + 1000;
        for (struct conn *c = b->conns; c; c = c->next) {
                while (c->out && !c->dead) {
                        if (am_wait_fd(c->fd, POLLOUT, deadline) < 0)
                                break;
                        conn_flush(b, c);
                }
        }
}

/* Started by broker_spawn(): say that we listen. */
static void tell_ready(void)
{
        const char *v = getenv("ASHMEM_BROKER_READY_FD");
        char *end;
        long fd;

        if (!v)
                return;
        fd = strtol(v, &end, 10);
        if (!*end && fd >= 0 && fd <= INT_MAX) {
                while (write((int)fd, "ready\n", 6) < 0 && errno == EINTR)
                        ;
                close((int)fd);
        }
        unsetenv("ASHMEM_BROKER_READY_FD");
}

int broker_run(const struct broker_config *cfg)
{
        struct broker *b = calloc(1, sizeof(*b));
        struct epoll_event evs[64];
        const char *why = NULL;
        int status = 0;

        if (!b) {
                fprintf(stderr, "ashmem-broker: out of memory\n");
                return 1;
        }
        b->cfg = cfg;
        b->lfd = b->sigfd = b->tickfd = b->psifd = b->jobfd = b->lockfd = b->epfd = -1;
        b->below = -1;
        b->started = time(NULL);
        b->regions.min = REGION_BUCKETS;
        /* this process answers lookups; it must never ask itself */
        ashmem_broker_auto_lookup(0);
        if (setup(b) < 0) {
                status = 1;
                goto out;
        }
        tell_ready();
        while (!why) {
                int n = epoll_wait(b->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        blog(b, 0, "epoll_wait: %s", strerror(errno));
                        status = 1;
                        why = "error";
                        break;
                }
                for (int i = 0; i < n; i++) {
                        void *tag = evs[i].data.ptr;
                        if (tag == &tag_listen) {
                                conn_accept(b);
                        } else if (tag == &tag_signal) {
                                struct signalfd_siginfo si;
                                while (read(b->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                                        why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
                        } else if (tag == &tag_tick) {
                                tick(b);
                        } else if (tag == &tag_psi) {
                                if (evs[i].events & EPOLLERR) {
                                        blog(b, 0, "PSI trigger gone; polling MemAvailable");
                                        epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->psifd, NULL);
                                        close(b->psifd);
                                        b->psifd = -1;
                                        if (b->below < 0)
                                                b->below = cfg->fallback_below;
                                } else {
                                        purge_pressure(b, "memory pressure (PSI)");
                                }
                        } else if (tag == &tag_job) {
                                purge_completed(b);
                        } else {
                                conn_event(b, tag, evs[i].events);
                        }
                }
                conns_reap(b);
        }
        shutdown_broker(b, why);
out:
        for (struct conn *c = b->conns; c; c = c->next)
                conn_close(b, c, "broker stopping");
        conns_reap(b);
        purge_stop(b, 0);
        ops_free_all(b);
        /* the library's control blocks of the regions just let go (not
         * with a purge stuck in a region's lock: it may hold the table) */
        if (!b->worker_stuck)
                (void)ashmem_collect();
        remove_socket(b);
        if (b->lfd >= 0)
                close(b->lfd);
        if (b->psifd >= 0)
                close(b->psifd);
        if (b->epfd >= 0)
                close(b->epfd);
        if (b->sigfd >= 0)
                close(b->sigfd);
        if (b->tickfd >= 0)
                close(b->tickfd);
        if (b->lockfd >= 0)
                close(b->lockfd);
        if (status == 0)
                blog(b, 1, "stopped");
        am_jw_free(&rep.sb);
        if (!b->worker_stuck)
                free(b);        /* else the purge thread may still use it */
        return status;
}
