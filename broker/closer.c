/* SPDX-License-Identifier: MIT */
/*
 * Descriptors the broker does not keep. A client chooses what it attaches
 * to a request, and the last close() of some files waits: a TCP socket
 * with unsent data and SO_LINGER set, a pipe or a FUSE or NFS file, a
 * Unix socket whose queue holds such descriptors. The event loop must
 * never wait on a client's descriptor, so it closes only memfds itself
 * (a memfd's last close frees memory and never waits); sockets get an
 * abortive close (SO_LINGER {1, 0}) and everything else that is not a
 * memfd goes to the closer threads, where a close that blocks stalls only
 * the lane of the user who sent it. What the closer holds counts in its
 * user's descriptor limit (uid_fd_add): a user whose descriptors cannot be
 * closed is refused further descriptors (conn_read) rather than fill the
 * broker.
 *
 * The threads' state is their own (not struct broker's): a thread stuck in
 * a close is left behind at exit and touches nothing the broker frees.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

struct closing {
        int fd;
        uid_t uid;
        struct closing *next;
};

struct lane {
        uid_t uid;
        struct closing *head, *tail;
        unsigned long long n;           /* queued, not yet closing */
        int busy;                       /* a thread closes one of its own */
        int waiting;                    /* in the list of lanes to serve */
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

static void *closer_main(void *arg)
{
        (void)arg;
        pthread_mutex_lock(&cl_lock);
        for (;;) {
                struct lane *l;
                struct closing *k;

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
                k = l->head;
                l->head = k->next;
                if (!l->head)
                        l->tail = NULL;
                l->n--;
                pthread_mutex_unlock(&cl_lock);
                close(k->fd);           /* may block: that is why we are here */
                pthread_mutex_lock(&cl_lock);
                k->next = cl_done;
                cl_done = k;
                l->busy = 0;
                if (l->head)
                        lane_wait(l);   /* behind the other lanes */
                else
                        lane_free(l);
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
                uid_fd_add(b, k->uid, -1);
                free(k);
                k = next;
        }
        broker_fds_freed(b);
}

/* Stop the threads: they close what they still hold, unless stuck in a
 * close, in which case they are left behind (so is what their lanes
 * hold: the process's exit closes it). */
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
}

static int cl_is_memfd(int fd)
{
        return fcntl(fd, F_GET_SEALS) >= 0;
}

/* Queue k in its user's lane; 0, or -errno when no thread can take it
 * (none runs and none can start). With cl_lock held. */
static int lane_put(struct closing *k)
{
        struct lane *l;

        for (l = cl_lanes; l && l->uid != k->uid; l = l->next)
                ;
        if (!cl_enabled)
                return -ESRCH;
        if (!l) {
                if (!cl_nthreads && !cl_stop) {
                        int r = pthread_create(&cl_threads[0], NULL, closer_main, NULL);
                        if (r)
                                return -r;
                        cl_nthreads = 1;
                }
                if (!cl_nthreads)
                        return -ESRCH;
                l = calloc(1, sizeof(*l));
                if (!l)
                        return -ENOMEM;
                l->uid = k->uid;
                l->next = cl_lanes;
                cl_lanes = l;
        }
        if (l->tail)
                l->tail->next = k;
        else
                l->head = k;
        l->tail = k;
        l->n++;
        if (!l->busy && !l->waiting)
                lane_wait(l);
        /* a lane waits and no thread is free: one more, while allowed
         * (the others may be stuck in a close) */
        if (cl_nwaiting > cl_idle && cl_nthreads < CLOSER_THREADS && !cl_stop &&
            pthread_create(&cl_threads[cl_nthreads], NULL, closer_main, NULL) == 0)
                cl_nthreads++;
        pthread_cond_signal(&cl_cond);
        return 0;
}

void closer_put(struct broker *b, uid_t uid, int fd)
{
        struct closing *k;
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
        k = malloc(sizeof(*k));
        if (!k) {
                r = -ENOMEM;
        } else {
                k->fd = fd;
                k->uid = uid;
                k->next = NULL;
                pthread_mutex_lock(&cl_lock);
                r = lane_put(k);
                pthread_mutex_unlock(&cl_lock);
        }
        if (r < 0) {
                /* nothing else to do with it: close it here */
                blog(b, 0, "closing a descriptor of uid %u on the main thread: %s",
                     (unsigned)uid, r == -ESRCH ? "no closer thread" : strerror(-r));
                free(k);
                close(fd);
                return;
        }
        uid_fd_add(b, uid, 1);
}

/* Nothing whose release may wait is left in the queue of the Unix socket
 * fd, and nothing can come: shut down both ways, then peek at each message
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

static int socket_empty(int fd)
{
        int one = 1;

        if (shutdown(fd, SHUT_RDWR) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
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

void closer_refused(struct broker *b, uid_t uid, int fd)
{
        /* a user whose lane is full (its closes are stuck, and it keeps
         * connecting): what it connected with and sent no descriptor on
         * is closed here, as releasing it releases nothing of the
         * client's but memory */
        if (uid_closing(b, uid) >= CLOSER_UID_QUEUE && socket_empty(fd)) {
                close(fd);
                return;
        }
        closer_put(b, uid, fd);
}

void closer_put_all(struct broker *b, uid_t uid, int *fds, int n)
{
        for (int i = 0; i < n; i++) {
                closer_put(b, uid, fds[i]);
                fds[i] = -1;
        }
}
