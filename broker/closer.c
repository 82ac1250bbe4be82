/* SPDX-License-Identifier: MIT */
/*
 * Descriptors the broker does not keep. A client chooses what it attaches
 * to a request, and the last close() of some files waits: a TCP socket
 * with unsent data and SO_LINGER set, a pipe or a FUSE or NFS file, a
 * Unix socket whose queue holds such descriptors. The event loop must
 * never wait on a client's descriptor, so it closes only memfds itself
 * (a memfd's last close frees memory and never waits); sockets get an
 * abortive close (SO_LINGER {1, 0}) and everything else that is not a
 * memfd goes to the closer thread, where a close that blocks stalls only
 * that thread. What the closer thread holds counts in its user's
 * descriptor limit (uid_fd_add): a user whose descriptors cannot be
 * closed is refused further descriptors (conn_read) rather than fill the
 * broker.
 *
 * The thread's state is its own (not struct broker's): a thread stuck in a
 * close is left behind at exit and touches nothing the broker frees.
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

struct closing {
        int fd;
        uid_t uid;
        struct closing *next;
};

static pthread_mutex_t cl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cl_cond = PTHREAD_COND_INITIALIZER;
static struct closing *cl_queue, *cl_tail;    /* to close */
static struct closing *cl_done;            /* closed: uncharge on the main thread */
static int cl_started, cl_stop;
static pthread_t cl_thread;

static void *closer_main(void *arg)
{
        (void)arg;
        pthread_mutex_lock(&cl_lock);
        for (;;) {
                struct closing *k;

                while (!cl_queue && !cl_stop)
                        pthread_cond_wait(&cl_cond, &cl_lock);
                if (!cl_queue)
                        break;
                k = cl_queue;
                cl_queue = k->next;
                if (!cl_queue)
                        cl_tail = NULL;
                pthread_mutex_unlock(&cl_lock);
                close(k->fd);           /* may block: that is why we are here */
                pthread_mutex_lock(&cl_lock);
                k->next = cl_done;
                cl_done = k;
        }
        pthread_mutex_unlock(&cl_lock);
        return NULL;
}

int closer_start(void)
{
        int r;

        if (cl_started)
                return 0;
        r = pthread_create(&cl_thread, NULL, closer_main, NULL);
        if (r)
                return -r;
        cl_started = 1;
        return 0;
}

/* Uncharge what the thread has closed. */
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

/* Stop the thread: it closes what it still holds, unless it is stuck in a
 * close, in which case it is left behind. */
void closer_stop(void)
{
        struct timespec ts;

        if (!cl_started)
                return;
        pthread_mutex_lock(&cl_lock);
        cl_stop = 1;
        pthread_cond_signal(&cl_cond);
        pthread_mutex_unlock(&cl_lock);
        if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
                ts.tv_sec += 1;
                if (pthread_timedjoin_np(cl_thread, NULL, &ts) == 0) {
                        cl_started = 0;
                        return;
                }
        }
        pthread_detach(cl_thread);
        cl_started = 0;
}

static int cl_is_memfd(int fd)
{
        return fcntl(fd, F_GET_SEALS) >= 0;
}

void closer_put(struct broker *b, uid_t uid, int fd)
{
        struct closing *k;
        struct stat st;

        if (fd < 0)
                return;
        closer_reap(b);
        if (cl_is_memfd(fd)) {
                close(fd);              /* frees memory, never waits */
                return;
        }
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
                /* an abortive close: nothing to wait for. It still goes to
                 * the thread: a Unix socket's queue may hold descriptors
                 * whose release would run here */
                struct linger lg = { 1, 0 };
                (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        k = malloc(sizeof(*k));
        if (!k || !cl_started) {
                /* nothing else to do with it: close it here */
                blog(b, 0, "closing a descriptor of uid %u on the main thread: %s",
                     (unsigned)uid, k ? "no closer thread" : "out of memory");
                free(k);
                close(fd);
                return;
        }
        k->fd = fd;
        k->uid = uid;
        k->next = NULL;
        uid_fd_add(b, uid, 1);
        pthread_mutex_lock(&cl_lock);
        if (cl_tail)
                cl_tail->next = k;
        else
                cl_queue = k;
        cl_tail = k;
        pthread_cond_signal(&cl_cond);
        pthread_mutex_unlock(&cl_lock);
}

void closer_put_all(struct broker *b, uid_t uid, int *fds, int n)
{
        for (int i = 0; i < n; i++) {
                closer_put(b, uid, fds[i]);
                fds[i] = -1;
        }
}
