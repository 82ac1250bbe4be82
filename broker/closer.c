/* SPDX-License-Identifier: MIT */
/*
 * Descriptors the broker does not keep. A client chooses what it attaches
 * to a request, and the last close() of some files waits: a TCP socket
 * with unsent data and SO_LINGER set, a FUSE or NFS file (its flush), a
 * device (draining its output), a Unix socket whose queue holds such
 * descriptors. The event loop must
 * never wait on a client's descriptor, so it closes only memfds itself
 * (a memfd's last close frees memory and never waits), and connections'
 * own sockets whose queues hold no descriptor (closer_conn); sockets get an
 * abortive close (SO_LINGER {1, 0}) and everything else that is not a
 * memfd goes to the closer threads, where a close that blocks stalls only
 * the lane of the user who sent it. What the closer holds counts in its
 * user's descriptor limit (uid_fd_add): a user whose descriptors cannot be
 * closed is refused further descriptors (conn_read) rather than fill the
 * broker.
 *
 * A refused connection is a Unix socket whose queue may hold descriptors
 * its client sent before the refusal (closer_refused): one that carries
 * any cannot be closed on the event loop, and a user whose closes are
 * stuck could otherwise make the broker hold one descriptor per
 * connection it floods with. Once its lane holds CLOSER_UID_QUEUE closes,
 * such a connection is parked instead: sent with SCM_RIGHTS into the
 * user's park, a socket pair of the broker's (2 descriptors per stuck
 * user, not one per connection), and the broker's own copy closed (not
 * the last reference: the message in flight holds the file, so that
 * close never waits). The lane drains the park after its queue, taking
 * each connection out and closing it on the lane's thread, where waiting
 * is allowed; the park goes when the lane is empty and the park drained.
 * A parked connection costs kernel memory only, charged to the park's
 * send buffer (--park-bytes, when SO_SNDBUFFORCE is permitted; the
 * system's maximum otherwise). The park's read end stays in the broker's
 * table, so what is in flight inside it is reachable, never garbage the
 * kernel's collector of Unix sockets would free under the lane. When the
 * park is full or refuses (ETOOMANYREFS: a broker without CAP_SYS_RESOURCE
 * past its own in-flight limit), the connection joins the lane as before,
 * counted in the user's descriptor limit; a user at that limit too has
 * its refused connection closed on the event loop, the last resort
 * (close_on_loop), reached by a user that filled its park and its
 * --max-uid-fds with closes that do not complete, or by users that
 * together filled the global limits below (one user can: some 1,100
 * refused connections fill --max-parked). The loop never waits there
 * either: what it would close is taken apart first (defuse, below), so
 * that nothing left in it can wait when released, and what cannot be
 * taken apart at once is kept on a deferred list, bounded by pausing
 * accept().
 *
 * Per-user limits multiply by the uids a client controls (one login may
 * have some 65,536 subordinate uids), so what the closer holds for all
 * users together is bounded too: --max-closing descriptors (those queued
 * in lanes, at most half of it, so that parks always have room, and 2 for
 * each park) and --max-parked parked connections (kernel memory, and
 * sockets in flight for the broker's user: past 2,024 of those each
 * further send of one may wait for the kernel's collector of Unix
 * sockets). Past them a descriptor is parked if it can be, and defused
 * and closed on the event loop otherwise, counted (closer_stats). One
 * user may hold at most a share of each (closer_share: an eighth, at
 * least 16), and a user at its share goes on as if the global limit were
 * reached: no single user fills the closer, the deferred list or the
 * last resort for the others. Parked connections
 * count in flight for the broker's user (root's, usually): a process of
 * that user without CAP_SYS_RESOURCE or CAP_SYS_ADMIN that passes
 * descriptors while more are parked than its RLIMIT_NOFILE gets
 * ETOOMANYREFS until the park drains.
 *
 * The threads' state is their own (not struct broker's): a thread stuck in
 * a close is left behind at exit and touches nothing the broker frees.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

/* The closer threads. Each user has a lane, a queue of its own; a lane is
 * served by one thread at a time, in turn with the other lanes, so a user
 * whose close blocks stalls its own lane and holds one thread, never the
 * other users' lanes. Threads start when a lane is waiting and no thread
 * is idle, up to CLOSER_THREADS: it takes that many users stuck at once
 * to delay the others. */
#define CLOSER_THREADS 8
/* Refused connections of one user queued in its lane before the broker
 * closes the empty ones itself (closer_refused). */
#define CLOSER_UID_QUEUE 64
/* The send buffer of a park is --park-bytes (PARK_BYTES, 256 MiB, by
 * default; SO_SNDBUFFORCE, and the kernel doubles it): each parked
 * connection takes 768 bytes of it, so a park holds some 700,000, more
 * than the 524,288 descriptors systemd lets a user have in flight (its
 * RLIMIT_NOFILE, the kernel's bound on what it may send before the broker
 * accepts), and more than --max-parked lets all users park together.
 * Kernel memory is spent only as used. A broker without CAP_NET_ADMIN
 * gets the system's maximum (net.core.wmem_max, 212,992 by default: some
 * 550 connections). */

struct closing {
        int fd;                         /* -1: parked */
        uid_t uid;
        struct closing *next;
};

struct lane {
        uid_t uid;
        struct closing *head, *tail;
        unsigned long long n;           /* queued, not yet closing */
        int busy;                       /* a thread closes one of its own */
        int waiting;                    /* in the list of lanes to serve */
        int park_r, park_w;             /* its park, or -1 */
        struct closing *phead, *ptail;  /* one per parked connection */
        struct lane *next;              /* all lanes */
        struct lane *wnext;             /* lanes to serve, in turn */
};

static pthread_mutex_t cl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cl_cond = PTHREAD_COND_INITIALIZER;
static struct lane *cl_lanes;                   /* all lanes with work */
static struct lane *cl_whead, *cl_wtail;        /* lanes to serve */
static unsigned cl_nwaiting;
static struct closing *cl_done;            /* closed: uncharge on the main thread */
static int cl_enabled, cl_stop;
static pthread_t cl_threads[CLOSER_THREADS];
static unsigned cl_nthreads, cl_idle;
static unsigned cl_nparks;                 /* parks open (2 descriptors each) */

/* The main thread's books of what the closer holds for all users
 * together (the global limits: struct broker's max_closing and
 * max_parked), and what happened at them. */
static struct {
        unsigned long long held;        /* descriptors queued in lanes */
        unsigned long long parked;      /* connections in parks */
        unsigned long long parked_total;        /* ever parked */
        unsigned long long park_full;   /* a park's send buffer was full */
        unsigned long long park_refused;        /* ETOOMANYREFS (or another
                                                   error) from a park */
        unsigned long long park_limit;  /* --max-parked or --max-closing */
        unsigned long long to_lane;     /* not parked: queued, counted */
        unsigned long long on_loop;     /* the last resort: defused and
                                           closed on the event loop */
        unsigned long long deferred;    /* the last resort: not all
                                           defused at once, deferred */
        long long log_ms;               /* the last resort's last line */
        unsigned long long log_quiet;   /* and the ones not logged since */
} cl_books;

/* With cl_lock held. */
static void lane_wait(struct lane *l)
{
        l->waiting = 1;
        l->wnext = NULL;
        if (cl_wtail)
                cl_wtail->wnext = l;
        else
                cl_whead = l;
        cl_wtail = l;
        cl_nwaiting++;
}

static void lane_free(struct lane *l)
{
        for (struct lane **p = &cl_lanes; *p; p = &(*p)->next)
                if (*p == l) {
                        *p = l->next;
                        break;
                }
        free(l);
}

/* Take one connection out of the park r: its descriptor, -EAGAIN when
 * there is none, or -errno. */
static int park_take(int r)
{
        union { char buf[CMSG_SPACE(sizeof(int) * 253)]; struct cmsghdr a; } u;
        char c[1];
        struct iovec iov = { .iov_base = c, .iov_len = sizeof(c) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n;
        int fd = -EAGAIN;

        do
                n = recvmsg(r, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? -EAGAIN : -errno;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
                if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
                    h->cmsg_len >= CMSG_LEN(sizeof(int)))
                        memcpy(&fd, CMSG_DATA(h), sizeof(int));
        return fd < 0 ? -EIO : fd;
}

static void *closer_main(void *arg)
{
        (void)arg;
        pthread_mutex_lock(&cl_lock);
        for (;;) {
                struct lane *l;
                struct closing *k;
                int fd;

                while (!cl_whead && !cl_stop) {
                        cl_idle++;
                        pthread_cond_wait(&cl_cond, &cl_lock);
                        cl_idle--;
                }
                if (!cl_whead)
                        break;
                l = cl_whead;
                cl_whead = l->wnext;
                if (!cl_whead)
                        cl_wtail = NULL;
                cl_nwaiting--;
                l->waiting = 0;
                l->busy = 1;
                if (l->head) {
                        k = l->head;
                        l->head = k->next;
                        if (!l->head)
                                l->tail = NULL;
                        l->n--;
                        fd = k->fd;
                } else {
                        /* the queue is done: a parked connection, taken
                         * out with the lock held, so that the event
                         * loop's copy is closed before this one */
                        k = l->phead;
                        l->phead = k->next;
                        if (!l->phead)
                                l->ptail = NULL;
                        fd = park_take(l->park_r);
                        if (fd == -EAGAIN) {
                                /* nothing there (cannot be): forget them */
                                for (struct closing *p = l->phead; p; p = l->phead) {
                                        l->phead = p->next;
                                        p->next = cl_done;
                                        cl_done = p;
                                }
                                l->ptail = NULL;
                        }
                }
                pthread_mutex_unlock(&cl_lock);
                if (fd >= 0)
                        close(fd);      /* may block: that is why we are here */
                pthread_mutex_lock(&cl_lock);
                k->next = cl_done;
                cl_done = k;
                l->busy = 0;
                if (l->head || l->phead) {
                        lane_wait(l);   /* behind the other lanes */
                } else {
                        int r = l->park_r, w = l->park_w;
                        lane_free(l);
                        if (r >= 0) {
                                /* drained: closing it releases nothing */
                                pthread_mutex_unlock(&cl_lock);
                                close(r);
                                close(w);
                                pthread_mutex_lock(&cl_lock);
                                cl_nparks--;
                        }
                }
        }
        pthread_mutex_unlock(&cl_lock);
        return NULL;
}

int closer_start(void)
{
        /* threads start with the first descriptor to close */
        pthread_mutex_lock(&cl_lock);
        cl_enabled = 1;
        pthread_mutex_unlock(&cl_lock);
        return 0;
}

static void held_add(struct broker *b, uid_t uid, int n);

/* Uncharge what the threads have closed. */
void closer_reap(struct broker *b)
{
        struct closing *k;

        pthread_mutex_lock(&cl_lock);
        k = cl_done;
        cl_done = NULL;
        pthread_mutex_unlock(&cl_lock);
        while (k) {
                struct closing *next = k->next;
                if (k->fd < 0) {
                        uid_park_add(b, k->uid, -1);
                        cl_books.parked--;
                } else {
                        held_add(b, k->uid, -1);
                }
                free(k);
                k = next;
        }
        broker_fds_freed(b);
}

/* Stop the threads: they close what they still hold, unless stuck in a
 * close, in which case they are left behind (so is what their lanes
 * hold: the process's exit closes it). */
static void defer_free(void);

void closer_stop(void)
{
        struct timespec ts;
        unsigned n;

        pthread_mutex_lock(&cl_lock);
        cl_stop = 1;
        pthread_cond_broadcast(&cl_cond);
        n = cl_nthreads;
        pthread_mutex_unlock(&cl_lock);
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                ts = (struct timespec){ 0, 0 };
        ts.tv_sec += 1;
        for (unsigned i = 0; i < n; i++)
                if (pthread_timedjoin_np(cl_threads[i], NULL, &ts) != 0)
                        pthread_detach(cl_threads[i]);
        pthread_mutex_lock(&cl_lock);
        cl_nthreads = 0;
        pthread_mutex_unlock(&cl_lock);
        defer_free();
}

static int cl_is_memfd(int fd)
{
        return fcntl(fd, F_GET_SEALS) >= 0;
}

/* uid's lane, made if it has none (the first thread started with the
 * first lane); NULL with -errno in *err when there can be none. With
 * cl_lock held. */
static struct lane *lane_get(uid_t uid, int *err)
{
        struct lane *l;

        if (!cl_enabled) {
                *err = -ESRCH;
                return NULL;
        }
        for (l = cl_lanes; l && l->uid != uid; l = l->next)
                ;
        if (l)
                return l;
        if (!cl_nthreads && !cl_stop) {
                int r = pthread_create(&cl_threads[0], NULL, closer_main, NULL);
                if (r) {
                        *err = -r;
                        return NULL;
                }
                cl_nthreads = 1;
        }
        if (!cl_nthreads) {
                *err = -ESRCH;
                return NULL;
        }
        l = calloc(1, sizeof(*l));
        if (!l) {
                *err = -ENOMEM;
                return NULL;
        }
        l->uid = uid;
        l->park_r = l->park_w = -1;
        l->next = cl_lanes;
        cl_lanes = l;
        return l;
}

/* Lane l has work: it waits its turn, and a thread more starts when a
 * lane waits and no thread is free, while allowed (the others may be
 * stuck in a close). With cl_lock held. */
static void lane_kick(struct lane *l)
{
        if (!l->busy && !l->waiting)
                lane_wait(l);
        if (cl_nwaiting > cl_idle && cl_nthreads < CLOSER_THREADS && !cl_stop &&
            pthread_create(&cl_threads[cl_nthreads], NULL, closer_main, NULL) == 0)
                cl_nthreads++;
        pthread_cond_signal(&cl_cond);
}

/* After a connection could not be parked: a park with nothing in it goes
 * (closing it releases nothing), and so does a lane left with nothing to
 * do. With cl_lock held. */
static void lane_tidy(struct lane *l)
{
        if (!l->phead && l->park_r >= 0) {
                close(l->park_r);
                close(l->park_w);
                l->park_r = l->park_w = -1;
                cl_nparks--;
        }
        if (!l->head && !l->phead && !l->busy && !l->waiting)
                lane_free(l);
}

/* Queue k in its user's lane; 0, or -errno when no thread can take it
 * (none runs and none can start). With cl_lock held. */
static int lane_put(struct closing *k)
{
        int err = 0;
        struct lane *l = lane_get(k->uid, &err);

        if (!l)
                return err;
        if (l->tail)
                l->tail->next = k;
        else
                l->head = k;
        l->tail = k;
        l->n++;
        lane_kick(l);
        return 0;
}

/* One user's share of a global limit of the closer (--max-closing,
 * --max-parked): an eighth of it, at least 16. A user at its share is
 * treated as if the global limit were reached, so that no single user
 * fills the closer for all the others. */
static unsigned long long closer_share(unsigned long long limit)
{
        return limit / 8 > 16 ? limit / 8 : 16;
}

/* May the closer hold n descriptors more in uid's lane: within uid's
 * share of --max-closing, and for all users together (--max-closing:
 * what the lanes hold and 2 for each park)? Lanes may take half of it,
 * so that parks, which hold any number of connections for 2
 * descriptors, always have room. With cl_lock held, on the main
 * thread. */
static int room_locked(struct broker *b, uid_t uid, unsigned n)
{
        const struct uid_use *u = uid_closer_use(b, uid);

        return u && u->held + n <= closer_share(b->max_closing) &&
               cl_books.held + n <= b->max_closing / 2 &&
               cl_books.held + 2ull * cl_nparks + n <= b->max_closing;
}

/* Queue fd of uid in its lane if the closer has room: 0, -ENOSPC (the
 * user holds its share, or all users together the closer's limit),
 * -ENOMEM, or lane_put()'s error; fd stays the caller's on failure. */
static int lane_queue(struct broker *b, uid_t uid, int fd)
{
        struct closing *k = malloc(sizeof(*k));
        int r;

        if (!k)
                return -ENOMEM;
        k->fd = fd;
        k->uid = uid;
        k->next = NULL;
        pthread_mutex_lock(&cl_lock);
        r = room_locked(b, uid, 1) ? lane_put(k) : -ENOSPC;
        pthread_mutex_unlock(&cl_lock);
        if (r < 0)
                free(k);
        return r;
}

/* Count n (1 or -1) descriptors in uid's lane. */
static void held_add(struct broker *b, uid_t uid, int n)
{
        struct uid_use *u = uid_closer_use(b, uid);

        uid_fd_add(b, uid, n);
        if (u && (n > 0 || u->held > 0))
                u->held += (unsigned long long)(long long)n;
        if (n > 0 || cl_books.held > 0)
                cl_books.held += (unsigned long long)(long long)n;
}

/* May one more park be made? With cl_lock held, on the main thread. */
static int park_room_locked(const struct broker *b)
{
        return cl_books.held + 2ull * (cl_nparks + 1) <= b->max_closing;
}

/* What the closer holds now, for the log. */
static unsigned long long closer_used(void)
{
        unsigned long long n;

        pthread_mutex_lock(&cl_lock);
        n = cl_books.held + 2ull * cl_nparks;
        pthread_mutex_unlock(&cl_lock);
        return n;
}

static int closer_room(struct broker *b, uid_t uid, unsigned n)
{
        int r;

        pthread_mutex_lock(&cl_lock);
        r = room_locked(b, uid, n);
        pthread_mutex_unlock(&cl_lock);
        return r;
}

static int park(struct broker *b, uid_t uid, int fd);

static int defuse_last(struct broker *b, uid_t uid, int fd);

/* The last resort: fd defused and closed on the event loop, or kept on
 * the deferred list (defuse_last), counted, and logged at most once a
 * second. what: "a refused connection", "a descriptor". */
static void close_on_loop(struct broker *b, uid_t uid, int fd, const char *what,
                          int park_err, const char *why)
{
        long long now = am_mono_ms();

        if (defuse_last(b, uid, fd))
                cl_books.on_loop++;
        else
                cl_books.deferred++;
        if (now - cl_books.log_ms >= 1000) {
                blog(b, 0, "defusing %s of uid %u on the event loop (its park: %s; %s)%s",
                     what, (unsigned)uid, strerror(-park_err), why,
                     cl_books.log_quiet ? "; more such not logged" : "");
                cl_books.log_ms = now;
                cl_books.log_quiet = 0;
        } else {
                cl_books.log_quiet++;
        }
}

/* Count why a connection was not parked. */
static void count_park_err(int r)
{
        if (r == -EAGAIN || r == -ENOBUFS)
                cl_books.park_full++;
        else if (r == -ENOSPC)
                cl_books.park_limit++;
        else
                cl_books.park_refused++;
}

/* The closer holds its limit: park fd, or close it here. */
static void closer_over(struct broker *b, uid_t uid, int fd, const char *what)
{
        char why[128];
        int r = park(b, uid, fd);

        if (r == 0)
                return;
        count_park_err(r);
        snprintf(why, sizeof(why), "the closer holds %llu descriptors (limit %llu, --max-closing)",
                 closer_used(), b->max_closing);
        close_on_loop(b, uid, fd, what, r, why);
}

void closer_put(struct broker *b, uid_t uid, int fd)
{
        struct stat st;
        int r;

        if (fd < 0)
                return;
        closer_reap(b);
        if (cl_is_memfd(fd)) {
                close(fd);              /* frees memory, never waits */
                return;
        }
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
                /* an abortive close: nothing to wait for. It still goes to
                 * a thread: a Unix socket's queue may hold descriptors
                 * whose release would run here */
                struct linger lg = { 1, 0 };
                (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        r = lane_queue(b, uid, fd);
        if (r == -ENOSPC) {
                /* the user holds its share, or all users together the
                 * closer's limit */
                closer_over(b, uid, fd, "a descriptor");
                return;
        }
        if (r < 0) {
                /* nothing else to do with it: close it here */
                blog(b, 0, "closing a descriptor of uid %u on the main thread: %s",
                     (unsigned)uid, r == -ESRCH ? "no closer thread" : strerror(-r));
                close(fd);
                return;
        }
        held_add(b, uid, 1);
}

/* Nothing whose release may wait is left in the queue of the Unix socket
 * fd, and nothing can come: shut down both ways, then ask the kernel how
 * many descriptors the queue holds (socket_fds_queued). A kernel that does
 * not say gets the walk: peek at each message
 * with SO_PASSCRED on (every message, even an empty one, carries its
 * sender's credentials; the end of the connection carries nothing; room
 * for the credentials only, so that descriptors show as MSG_CTRUNC and
 * none is installed here). A message without descriptors is taken off the
 * queue (its release frees memory only, never waits), so that messages
 * alone cannot make a connection join the lane; the first that carries
 * descriptors stops the walk. So does the DRAIN_MAX-th message: the loop
 * spends at most about half a millisecond on a connection (a send buffer
 * holds some 10,000 empty messages, 20 ms to take off), and a connection
 * that joins the lane this way holds some 150 KiB of its sender's
 * messages in the kernel. */
#define DRAIN_MAX 256

/* The number of descriptors in the queue of the Unix socket fd, as the
 * kernel counts them (the scm_fds line of its fdinfo, Linux 5.8 and
 * later): a single read, however many messages the queue holds, so that
 * a queue of many messages without descriptors is not mistaken for one
 * that carries some. -1 when the kernel does not say. */
static long long socket_fds_queued(int fd)
{
        char path[64], buf[512];
        const char *p;
        ssize_t n;
        int f;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        f = open(path, O_RDONLY | O_CLOEXEC);
        if (f < 0)
                return -1;
        do
                n = read(f, buf, sizeof(buf) - 1);
        while (n < 0 && errno == EINTR);
        close(f);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        p = strstr(buf, "\nscm_fds:");
        if (!p)
                return -1;
        return strtoll(p + strlen("\nscm_fds:"), NULL, 10);
}

static int socket_empty(int fd)
{
        long long nfds;
        int one = 1;

        if (shutdown(fd, SHUT_RDWR) < 0)
                return 0;
        /* nothing can come now: what the kernel counts is all there is */
        nfds = socket_fds_queued(fd);
        if (nfds >= 0)
                return nfds == 0;
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return 0;
        for (int i = 0; i < DRAIN_MAX; i++) {
                union { char buf[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr a; } u;
                char c;
                struct iovec iov = { .iov_base = &c, .iov_len = 1 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                                    .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
                ssize_t n;

                do
                        n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        return errno == EAGAIN;
                if (m.msg_flags & MSG_CTRUNC)
                        return 0;               /* descriptors */
                if (n == 0 && m.msg_controllen == 0)
                        return 1;               /* the end: nothing left */
                /* a message without descriptors: take it off */
                m.msg_control = u.buf;
                m.msg_controllen = sizeof(u.buf);
                m.msg_flags = 0;
                do
                        n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                while (n < 0 && errno == EINTR);
                if (n < 0 || (m.msg_flags & MSG_CTRUNC))
                        return 0;
        }
        return 0;
}

/* ------------------------------------------------------------ defusing */

/* The last resort (closer_defuse): a descriptor the closer has no room
 * for is made safe to close on the event loop before it is closed. What
 * can make a release wait is what the descriptor holds, so the loop
 * takes it apart: a Unix socket is shut down both ways (nothing can come
 * any more), the descriptors in its queue are received (a listening
 * socket's pending connections accepted) and each taken apart the same
 * way, depth first; a TCP or netlink socket gets SO_LINGER {1, 0} (an
 * abortive close: a TCP socket with unsent data and a long linger no
 * longer waits), while a socket of another family may wait in its close
 * (an AF_PACKET socket's waits some 13 ms for the network stack) and is
 * treated as a device below; what is known never to wait (a memfd, a pipe, an anonymous
 * inode such as an eventfd, /dev/null and its kin, a file of a local
 * file system) is closed; anything else (a FUSE or network file, whose
 * close() waits for its server's answer to a flush; a device, whose
 * release may drain output) goes to its user's lane when the closer has
 * room, and waits on the deferred list otherwise, DEFER_UID_WAITS of a
 * user at most: past them, that user's such descriptors are closed on
 * the loop, WAITS_TURN of a user a turn, counted (closed_waiting_on_loop),
 * the cost (a FUSE flush waits for its server, an AF_PACKET socket ~13
 * ms) paid only for a user over every share of its own. Each pass is bounded
 * (DEFUSE_OPS receives and accepts, DEFUSE_FDS descriptors received,
 * DEFUSE_STACK held at once), and a receive is made only with room in
 * the broker's descriptor limit for all a message may carry (SCM_MAX_FD,
 * 253): a receive that ran out of room would have the kernel release the
 * rest on this thread. What a pass leaves is kept open, unpolled, on the
 * deferred list (counted in its user's descriptor limit) and taken up
 * again by later passes, between turns of the loop; nothing can be added
 * to a queue once shut down, so every pass makes progress. While the list
 * holds DEFER_PAUSE descriptors or more still being taken apart (not
 * counting those waiting for lane room, which no pass advances), new
 * connections wait in the listening socket's backlog (closer_accept_ok);
 * the pause ends by itself, as passes drain them. */
#define DEFUSE_OPS 256
#define DEFUSE_FDS 256
#define DEFUSE_STACK 1024
#define DEFER_PAUSE 64
/* Descriptors of one user that may wait (K_WAITS) kept on the deferred
 * list until its lane has room; past them the user's such descriptors
 * are closed on the event loop, at most WAITS_TURN of one user in a turn
 * of the loop. */
#define DEFER_UID_WAITS 16
#define WAITS_TURN 4
#define SCM_MAX 253                     /* the kernel's SCM_MAX_FD */
#define FD_SPARE 16                     /* descriptors left to the loop */

enum { K_NEW, K_UNIX, K_LISTEN, K_SOCKET, K_SAFE, K_WAITS };

struct deferred {
        int fd;
        uid_t uid;
        int waits;                      /* K_WAITS: waits for lane room */
        struct deferred *next;
};

static struct deferred *df_head, *df_tail;
static struct {
        unsigned long long n;           /* on the list now */
        unsigned long long total;       /* ever put there */
        unsigned long long received;    /* taken out of queues */
        unsigned long long to_lane;     /* that might wait: to a lane */
        unsigned long long pauses;      /* accepting paused */
        unsigned long long waits;       /* on the list, K_WAITS */
        unsigned long long waits_on_loop;       /* K_WAITS closed on the loop */
        unsigned long long turn;        /* turns of the loop (closer_defer_run) */
} df_books;

struct defuse_budget {
        int ops, fds;
        int closed;                     /* descriptors closed or handed on */
        long long room;                 /* descriptors the broker may open */
};

struct defuse_item {
        int fd;
        unsigned char kind, shut;
};

/* Whether the file system of fd is one where a file's close() and its
 * release never wait for anyone (magic numbers of linux/magic.h). */
static int fs_safe(int fd)
{
        static const unsigned long safe[] = {
                0x01021994,     /* tmpfs (and memfds) */
                0xEF53,         /* ext2, ext3, ext4 */
                0x58465342,     /* xfs */
                0x9123683E,     /* btrfs */
                0xF2F52010,     /* f2fs */
                0x9fa0,         /* proc */
                0x62656572,     /* sysfs */
                0x09041934,     /* anonymous inodes: eventfd, epoll, timerfd... */
                0x50495045,     /* pipes */
                0x958458f6,     /* hugetlbfs */
                0x63677270,     /* cgroup2 */
                0x6e736673,     /* nsfs */
                0x50494446,     /* pidfs */
                0xcafe4a11,     /* bpf */
                0x5345434d,     /* secretmem */
        };
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return 0;
        for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
                if ((unsigned long)sf.f_type == safe[i])
                        return 1;
        return 0;
}

static int defuse_kind(int fd)
{
        struct stat st;
        int v;
        socklen_t len = sizeof(v);

        if (fstat(fd, &st) < 0)
                return K_WAITS;
        if (S_ISSOCK(st.st_mode)) {
                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0)
                        return K_WAITS;
                /* an abortive close of TCP (SO_LINGER {1, 0}) and a
                 * netlink socket's close do not wait; other families may
                 * (an AF_PACKET socket's close waits for the network
                 * stack, some 13 ms) */
                if (v == AF_INET || v == AF_INET6 || v == AF_NETLINK)
                        return K_SOCKET;
                if (v != AF_UNIX)
                        return K_WAITS;
                len = sizeof(v);
                if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v)
                        return K_LISTEN;
                return K_UNIX;
        }
        if (S_ISFIFO(st.st_mode))
                return K_SAFE;
        if (S_ISCHR(st.st_mode))
                return major(st.st_rdev) == 1 ? K_SAFE : K_WAITS;       /* /dev/null... */
        if (S_ISBLK(st.st_mode))
                return K_WAITS;
        return cl_is_memfd(fd) || fs_safe(fd) ? K_SAFE : K_WAITS;
}

/* How many more descriptors the broker may open, less FD_SPARE: its
 * limit less those open (the size the kernel gives /proc/self/fd, Linux
 * 6.2 and later); on a kernel that does not say, as many as duplicates of
 * fd could be made, up to what a pass needs. */
static long long fd_room(int fd)
{
        static int probe[2 * SCM_MAX + FD_SPARE];
        struct rlimit rl;
        struct stat st;
        int n = 0;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && stat("/proc/self/fd", &st) == 0 &&
            st.st_size > 0) {
                if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1ull << 40))
                        rl.rlim_cur = 1ull << 40;
                return (long long)rl.rlim_cur - (long long)st.st_size - FD_SPARE;
        }
        while (n < (int)(sizeof(probe) / sizeof(probe[0])) &&
               (probe[n] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
                n++;
        for (int i = 0; i < n; i++)
                close(probe[i]);        /* duplicates: never the last reference */
        return (long long)n - FD_SPARE;
}

static void defer(struct broker *b, uid_t uid, int fd, int kind)
{
        struct deferred *d = malloc(sizeof(*d));
        struct uid_use *u;

        if (!d) {
                /* nowhere to keep it: closed here, the risk taken */
                blog(b, 0, "closing a descriptor of uid %u on the event loop: out of memory",
                     (unsigned)uid);
                close(fd);
                return;
        }
        d->fd = fd;
        d->uid = uid;
        if (kind == K_NEW)
                kind = defuse_kind(fd);
        d->waits = kind == K_WAITS;
        d->next = NULL;
        if (d->waits) {
                df_books.waits++;
                if ((u = uid_closer_use(b, uid)))
                        u->waits++;
        }
        if (df_tail)
                df_tail->next = d;
        else
                df_head = d;
        df_tail = d;
        df_books.n++;
        df_books.total++;
        uid_fd_add(b, uid, 1);
}

/* A descriptor whose close may wait: to uid's lane if the closer has
 * room (0), else -1. */
static int waits_to_lane(struct broker *b, uid_t uid, int fd)
{
        if (!closer_room(b, uid, 1) || lane_queue(b, uid, fd) < 0)
                return -1;
        held_add(b, uid, 1);
        df_books.to_lane++;
        return 0;
}

/* A descriptor that may wait and has no lane room: uid keeps
 * DEFER_UID_WAITS of them deferred, waiting for room; past them they are
 * closed here, on the event loop, WAITS_TURN a turn (1: closed), the
 * cost of a user that holds every share of its own. */
static int waits_on_loop(struct broker *b, uid_t uid, int fd)
{
        struct uid_use *u = uid_closer_use(b, uid);

        if (!u || u->waits < DEFER_UID_WAITS)
                return 0;
        if (u->loop_turn != df_books.turn) {
                u->loop_turn = df_books.turn;
                u->loop_closes = 0;
        }
        if (u->loop_closes >= WAITS_TURN)
                return 0;
        u->loop_closes++;
        df_books.waits_on_loop++;
        close(fd);
        return 1;
}

/* Receive one message of the Unix socket fd onto the stack; 1 if it
 * carried or said something, 0 when the queue is empty (drained), -1 on
 * an error that leaves it as it was. */
static int defuse_recv(int fd, struct defuse_item *st, int *sp, struct defuse_budget *bu)
{
        static char data[65536];
        union { char buf[CMSG_SPACE(sizeof(int) * SCM_MAX)]; struct cmsghdr a; } u;
        struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        int got = 0;
        ssize_t n;

        do
                n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        bu->ops--;
        if (n < 0)
                return errno == EAGAIN ? 0 : -1;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
                int k;

                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < k; i++) {
                        int f;

                        memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                        st[*sp].fd = f;
                        st[*sp].kind = K_NEW;
                        st[*sp].shut = 0;
                        (*sp)++;
                        got++;
                }
        }
        bu->fds -= got;
        bu->room -= got;
        df_books.received += (unsigned long long)got;
        return n > 0 || got || (m.msg_flags & MSG_CTRUNC) ? 1 : 0;
}

/* One pass over fd (see above): 1 when it and all it held are closed or
 * handed to a lane, 0 when what is left is on the deferred list. */
static int defuse(struct broker *b, uid_t uid, int fd, struct defuse_budget *bu)
{
        static struct defuse_item st[DEFUSE_STACK];
        int sp = 0;

        st[sp++] = (struct defuse_item){ fd, K_NEW, 0 };
        while (sp > 0) {
                struct defuse_item *t = &st[sp - 1];
                long long q;

                if (t->kind == K_NEW)
                        t->kind = (unsigned char)defuse_kind(t->fd);
                if (t->kind == K_SOCKET) {
                        struct linger lg = { 1, 0 };
                        (void)setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                        t->kind = K_SAFE;
                }
                if (t->kind == K_SAFE) {
                        close(t->fd);
                        bu->closed++;
                        sp--;
                        continue;
                }
                if (t->kind == K_WAITS) {
                        if (waits_to_lane(b, uid, t->fd) < 0 &&
                            !waits_on_loop(b, uid, t->fd))
                                break;
                        bu->closed++;
                        sp--;
                        continue;
                }
                if (!t->shut) {
                        (void)shutdown(t->fd, SHUT_RDWR);
                        t->shut = 1;
                }
                if (t->kind == K_LISTEN) {
                        int a;

                        if (bu->ops <= 0 || bu->fds <= 0 || bu->room < 1 || sp >= DEFUSE_STACK)
                                break;
                        do
                                a = accept4(t->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                        while (a < 0 && errno == EINTR);
                        bu->ops--;
                        if (a >= 0) {
                                bu->fds--;
                                bu->room--;
                                df_books.received++;
                                st[sp++] = (struct defuse_item){ a, K_UNIX, 0 };
                                continue;
                        }
                        if (errno == ECONNABORTED)
                                continue;
                        /* nothing pending (EAGAIN; EINVAL where accept
                         * fails once shut down), and nothing can come */
                        if (errno != EINVAL && errno != EAGAIN)
                                break;
                        close(t->fd);
                        bu->closed++;
                        sp--;
                        continue;
                }
                /* a Unix socket: the kernel's count of descriptors in its
                 * queue says when it is done (nothing can come in now) */
                q = socket_fds_queued(t->fd);
                if (q == 0) {
                        close(t->fd);
                        bu->closed++;
                        sp--;
                        continue;
                }
                if (q < 0) {
                        /* a kernel that does not say (before 5.8) */
                        if (waits_to_lane(b, uid, t->fd) < 0)
                                break;
                        bu->closed++;
                        sp--;
                        continue;
                }
                /* room for all the next message may carry: at most
                 * what the queue holds, and SCM_MAX */
                if (q > SCM_MAX)
                        q = SCM_MAX;
                if (bu->ops <= 0 || bu->fds < q || bu->room < q || sp + q > DEFUSE_STACK ||
                    defuse_recv(t->fd, st, &sp, bu) < 0)
                        break;
        }
        if (sp == 0)
                return 1;
        /* what is left waits its turn: the shut down sockets as they are */
        for (int i = 0; i < sp; i++)
                defer(b, uid, st[i].fd, st[i].kind);
        return 0;
}

/* Take up deferred descriptors for a while: 1 if a pass made progress
 * (more may follow at once), 0 if none did or none is left. */
int closer_defer_run(struct broker *b)
{
        struct defuse_budget bu = { DEFUSE_OPS, DEFUSE_FDS, 0, 0 };
        unsigned long long before = df_books.n;
        int progress = 0, n = 0;

        df_books.turn++;
        if (!df_head)
                return 0;
        bu.room = fd_room(df_head->fd);
        /* each entry at most once a round: a pass may put it back */
        for (unsigned long long left = df_books.n; left && df_head; left--) {
                struct deferred *d = df_head;
                int fds = bu.fds, closed = bu.closed;

                df_head = d->next;
                if (!df_head)
                        df_tail = NULL;
                df_books.n--;
                uid_fd_add(b, d->uid, -1);
                if (d->waits) {
                        struct uid_use *u = uid_closer_use(b, d->uid);

                        df_books.waits--;
                        if (u && u->waits)
                                u->waits--;
                }
                if (defuse(b, d->uid, d->fd, &bu) || bu.fds != fds || bu.closed != closed)
                        progress = 1;
                free(d);
                if (++n >= 64 || bu.ops <= 0 || bu.fds <= 0)
                        break;
        }
        if (df_books.n < before)
                broker_fds_freed(b);
        return progress && df_head;
}

/* May conn_accept() accept now (0: the deferred list holds too many
 * Unix sockets still being drained)? Descriptors waiting for lane room
 * do not count: no pass makes progress with them until a lane does, and
 * those past a user's DEFER_UID_WAITS are closed a few a turn. */
int closer_accept_ok(struct broker *b)
{
        (void)b;
        if (df_books.n - df_books.waits < DEFER_PAUSE)
                return 1;
        df_books.pauses++;
        return 0;
}

/* The last resort: fd defused and closed on the event loop, or what is
 * left of it deferred; 1 if closed. */
static int defuse_last(struct broker *b, uid_t uid, int fd)
{
        struct defuse_budget bu = { DEFUSE_OPS, DEFUSE_FDS, 0, fd_room(fd) };

        return defuse(b, uid, fd, &bu);
}

/* At exit: the list goes, its descriptors with the process (an exiting
 * process's lingering sockets do not linger). */
static void defer_free(void)
{
        while (df_head) {
                struct deferred *d = df_head;
                df_head = d->next;
                free(d);
        }
        df_tail = NULL;
        df_books.n = 0;
        df_books.waits = 0;
}

/* Send fd into the park of uid's lane (lane and park made on demand),
 * and close the broker's copy; 0, or -errno (nothing done): -ENOSPC at
 * the global limits (--max-parked; a new park's 2 descriptors over
 * --max-closing), -EAGAIN when the park is full, -ETOOMANYREFS when the
 * kernel refuses more in flight. */
static int park(struct broker *b, uid_t uid, int fd)
{
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
        struct iovec iov = { .iov_base = "p", .iov_len = 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *h;
        struct closing *k;
        struct lane *l = NULL;
        ssize_t n;
        int r = 0;
        const struct uid_use *use = uid_closer_use(b, uid);

        /* the global limit, or uid's share of it */
        if (cl_books.parked >= b->max_parked || !use ||
            use->parked >= closer_share(b->max_parked))
                return -ENOSPC;
        k = malloc(sizeof(*k));
        if (!k)
                return -ENOMEM;
        memset(u.buf, 0, sizeof(u.buf));
        h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
        pthread_mutex_lock(&cl_lock);
        if (cl_stop)
                r = -ESRCH;             /* nobody will drain it */
        else
                l = lane_get(uid, &r);
        if (l && l->park_r < 0) {
                int sv[2], size = b->park_bytes;

                if (!park_room_locked(b)) {
                        r = -ENOSPC;
                } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
                        r = -errno;
                } else {
                        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0 &&
                            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
                                blog(b, 0, "the park of uid %u: SO_SNDBUF: %s",
                                     (unsigned)uid, strerror(errno));
                        l->park_w = sv[0];
                        l->park_r = sv[1];
                        cl_nparks++;
                }
        }
        if (r == 0) {
                do
                        n = sendmsg(l->park_w, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        r = -errno;
                else if (n != 1)
                        r = -EIO;       /* a stream of one byte: cannot be */
        }
        if (r == 0) {
                /* not the last reference: the message holds one, and the
                 * lane takes it out only with cl_lock held */
                close(fd);
                k->fd = -1;
                k->uid = uid;
                k->next = NULL;
                if (l->ptail)
                        l->ptail->next = k;
                else
                        l->phead = k;
                l->ptail = k;
                lane_kick(l);
        } else if (l) {
                lane_tidy(l);
        }
        pthread_mutex_unlock(&cl_lock);
        if (r < 0) {
                free(k);
                return r;
        }
        uid_park_add(b, uid, 1);
        cl_books.parked++;
        cl_books.parked_total++;
        return 0;
}

void closer_refused(struct broker *b, uid_t uid, int fd)
{
        char msg[160];
        int r;

        /* a user whose lane is full (its closes are stuck, and it keeps
         * connecting), or all users' lanes together: what it connected
         * with and sent no descriptor on is closed here, as releasing it
         * releases nothing of the client's but memory; what carries
         * descriptors is parked */
        closer_reap(b);
        if (uid_closing(b, uid) < CLOSER_UID_QUEUE && closer_room(b, uid, 1)) {
                closer_put(b, uid, fd);
                return;
        }
        if (socket_empty(fd)) {
                close(fd);
                return;
        }
        r = park(b, uid, fd);
        if (r == 0)
                return;
        count_park_err(r);
        if (uid_fd_closing(b, uid, msg, sizeof(msg)) == 0) {
                if (closer_room(b, uid, 1)) {
                        /* the park is full or refuses: the lane, counted */
                        cl_books.to_lane++;
                        closer_put(b, uid, fd);
                        return;
                }
                snprintf(msg, sizeof(msg), "the closer holds %llu descriptors (limit %llu, "
                         "--max-closing)", closer_used(), b->max_closing);
        }
        /* the last resort: the user holds its limit in closes that do not
         * complete, or all users together the closer's, and no park takes
         * more (shut down already) */
        close_on_loop(b, uid, fd, "a refused connection", r, msg);
}

void closer_conn(struct broker *b, uid_t uid, int fd)
{
        /* nothing in its queue (and, shut down, nothing can come): its
         * close releases memory only, so it need not wait behind other
         * users' closes for a thread, of which 8 users whose closes are
         * stuck can hold all */
        if (fd < 0)
                return;
        closer_reap(b);
        if (socket_empty(fd)) {
                close(fd);
                return;
        }
        closer_put(b, uid, fd);
}

/* The closer's side of `stats`: what it holds for all users together,
 * its limits, and what happened at them. */
void closer_stats(struct broker *b, struct am_jw *s)
{
        unsigned parks;

        closer_reap(b);
        pthread_mutex_lock(&cl_lock);
        parks = cl_nparks;
        pthread_mutex_unlock(&cl_lock);
        am_jw_printf(s, ",\"closer\":{\"closing\":%llu,\"parks\":%u,\"parked\":%llu,"
                     "\"max_closing\":%llu,\"max_parked\":%llu,\"parked_total\":%llu,"
                     "\"park_full\":%llu,\"park_refused\":%llu,\"park_limit\":%llu,"
                     "\"to_lane\":%llu,\"closed_on_loop\":%llu,\"deferred_on_loop\":%llu,"
                     "\"defused_fds\":%llu,\"defused_to_lane\":%llu,\"deferred\":%llu,"
                     "\"deferred_total\":%llu,\"accept_paused\":%llu,"
                     "\"deferred_waiting\":%llu,\"closed_waiting_on_loop\":%llu,"
                     "\"uid_share_closing\":%llu,\"uid_share_parked\":%llu}",
                     cl_books.held, parks, cl_books.parked, b->max_closing, b->max_parked,
                     cl_books.parked_total, cl_books.park_full, cl_books.park_refused,
                     cl_books.park_limit, cl_books.to_lane, cl_books.on_loop, cl_books.deferred,
                     df_books.received, df_books.to_lane, df_books.n, df_books.total,
                     df_books.pauses, df_books.waits, df_books.waits_on_loop,
                     closer_share(b->max_closing), closer_share(b->max_parked));
}

void closer_put_all(struct broker *b, uid_t uid, int *fds, int n)
{
        for (int i = 0; i < n; i++) {
                closer_put(b, uid, fds[i]);
                fds[i] = -1;
        }
}
