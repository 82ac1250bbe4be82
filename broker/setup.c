/* SPDX-License-Identifier: MIT */
/*
 * Setting the broker up and down: the socket (directory checks, the
 * lifetime lock, stale socket removal), signals (signalfd: SIGTERM and
 * SIGINT stop the broker cleanly), the tick's timer, the purger, and the
 * shutdown (replies still owed sent, a second at most).
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

void remove_socket(struct broker *b)
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

static mode_t socket_mode(const struct broker_config *cfg)
{
        return cfg->socket_mode >= 0 ? (mode_t)cfg->socket_mode : cfg->system ? 0666 : 0600;
}

/* Is the socket one the user named (--socket, $ASHMEM_SOCKET), not the
 * default? A --socket naming the default path (as the auto-starter gives
 * it, for ps) gets the default's directory checks. */
static int explicit_socket(const struct broker_config *cfg)
{
        const char *env = secure_getenv("ASHMEM_SOCKET");
        char def[108];

        if (cfg->system)
                return cfg->socket_path && strcmp(cfg->socket_path, ASHMEM_BROKER_SYSTEM_SOCKET) != 0;
        if (env && *env)
                return 1;
        if (!cfg->socket_path)
                return 0;
        return ashmem_broker_socket_path(0, def, sizeof(def)) < 0 ||
               strcmp(def, cfg->socket_path) != 0;
}

int broker_setup(struct broker *b)
{
        const struct broker_config *cfg = b->cfg;
        int explicit_path = explicit_socket(cfg);
        mode_t mode = socket_mode(cfg);
        struct itimerspec its = { { 1, 0 }, { 1, 0 } };
        sigset_t set;
        int r, activated = 0, adopting;

        /* socket activation: the service manager made the socket (and
         * its directory) and keeps it; the lock still keeps a second
         * broker off it */
        /* a reload: the old image's socket and lock (reload.c) */
        adopting = reload_adopt(b);
        if (adopting)
                reload_adopt_socket(b);
        else if ((activated = service_listen(b)) < 0)
                return activated;
        if (!activated && !adopting) {
                r = broker_socket_path(cfg->socket_path, cfg->system, b->path, sizeof(b->path));
                if (r < 0) {
                        blog(b, 0, "socket path: %s", strerror(-r));
                        return r;
                }
                if (!explicit_path && (r = prepare_dir(b, cfg->system)) < 0)
                        return r;
        }
        if (!adopting &&
            ((r = take_lock(b)) < 0 || (!activated && (r = listen_socket(b, mode)) < 0)))
                return r;
        raise_nofile();
        {
                struct rlimit rl;
                unsigned long long nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                        rl.rlim_cur != RLIM_INFINITY ? (unsigned long long)rl.rlim_cur : 1u << 20;
                b->max_uid_conns = cfg->max_uid_connections ? cfg->max_uid_connections :
                                   cfg->max_connections / 4 ? cfg->max_connections / 4 : 1;
                b->max_uid_fds = cfg->max_uid_fds ? cfg->max_uid_fds :
                                 nofile / 4 > 16 ? nofile / 4 : 16;
                /* the closer's global limits: one login may control
                 * many uids (subordinate uids), each with per-uid limits
                 * of its own */
                b->max_closing = cfg->max_closing ? cfg->max_closing :
                                 nofile / 4 > 16 ? nofile / 4 : 16;
                b->max_parked = cfg->max_parked ? cfg->max_parked :
                                nofile / 4 < PARKED_MAX ? nofile / 4 : PARKED_MAX;
                b->park_bytes = cfg->park_bytes ? (int)cfg->park_bytes : PARK_BYTES;
        }

        /* a shell starts background jobs with SIGINT ignored: an ignored
         * signal never reaches the signalfd */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);        /* reload */
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
                return -EINVAL;
        signal(SIGPIPE, SIG_IGN);
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
        r = closer_start();
        if (r < 0)
                return r;
        if ((r = epoll_set(b, EPOLL_CTL_ADD, b->jobfd, EPOLLIN, &tag_job)) < 0)
                return r;
        if (b->psifd >= 0 &&
            (r = epoll_set(b, EPOLL_CTL_ADD, b->psifd, EPOLLPRI, &tag_psi)) < 0)
                return r;
        if (cfg->idle_exit_ms && service_managed())
                blog(b, 1, "run by a service manager: --idle-exit does not apply");
        if (adopting)
                reload_finish(b);       /* or it ends the process */
        if (adopting)
                blog(b, 1, "listening on %s (reloaded), protocol %d, driver %s",
                     b->path, ASHMEM_BROKER_PROTOCOL, ashmem_driver_name());
        else if (activated)
                blog(b, 1, "listening on %s (socket activation), protocol %d, driver %s",
                     b->path, ASHMEM_BROKER_PROTOCOL, ashmem_driver_name());
        else
                blog(b, 1, "listening on %s (mode %04o), protocol %d, driver %s", b->path,
                     (unsigned)mode, ASHMEM_BROKER_PROTOCOL, ashmem_driver_name());
        return 0;
}

/* Stop accepting, send what is still owed (a second at most), finish or
 * abandon purges, remove the socket. */
void shutdown_broker(struct broker *b, const char *why)
{
        long long deadline;

        blog(b, 1, "stopping (%s)", why);
        service_stopping(b);
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
void tell_ready(void)
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

/*
 * --idle-exit, without losing a client that connects just then. The start
 * lock (PATH.start, which a client holds while it starts a broker) is
 * taken first: when someone holds it, a broker is being started, so the
 * exit waits for the next tick. Then the listening socket is shut down for
 * reading, after which a connect(2) fails with ECONNREFUSED (a client
 * that starts brokers then waits on the start lock, one that does not
 * finds no broker, and this one holds nothing), and what was queued before
 * is accepted. Nothing queued: the socket is removed, the lifetime lock and
 * then the start lock released (so that the next client's new broker can
 * take them), and the broker exits. Something queued: those connections
 * are served and the broker listens again, on a new socket, before the
 * start lock is released.
 */
int idle_exit(struct broker *b)
{
        char lock[sizeof(b->path) + 8];
        unsigned long long start = b->accepts, before;
        int sfd, r;

        snprintf(lock, sizeof(lock), "%s.start", b->path);
        sfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (sfd < 0)
                return 0;
        while ((r = flock(sfd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
                ;
        if (r < 0 || shutdown(b->lfd, SHUT_RD) < 0) {
                close(sfd);
                return 0;
        }
        do {
                before = b->accepts;
                conn_accept(b);
        } while (b->accepts != before && !b->accept_paused);
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->lfd, NULL);
        close(b->lfd);
        b->lfd = -1;
        if (b->accepts != start || b->nconns || b->accept_paused) {
                /* someone came: serve them, and listen again */
                b->busy_ms = am_mono_ms();
                remove_socket(b);
                r = listen_socket(b, socket_mode(b->cfg));
                if (r == 0)
                        r = epoll_set(b, EPOLL_CTL_ADD, b->lfd, EPOLLIN, &tag_listen);
                close(sfd);
                if (r < 0) {
                        blog(b, 0, "listening again on %s: %s; stopping", b->path, strerror(-r));
                        return 1;
                }
                blog(b, 2, "a client came as the broker was going idle; staying");
                return 0;
        }
        blog(b, 1, "nothing held and nobody served for %llus: exiting",
             b->cfg->idle_exit_ms / 1000);
        remove_socket(b);
        close(b->lockfd);
        b->lockfd = -1;
        close(sfd);
        return 1;
}
