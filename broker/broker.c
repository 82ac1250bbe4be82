/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon (`ashmemctl broker run`): its configuration, its log,
 * and its event loop, one epoll loop over the listening socket, signals,
 * the tick (idle connections, the MemAvailable poll), the PSI trigger, the
 * purger's completions and the connections (conn.c). The socket, the
 * lock, signals and the shutdown are set up in setup.c.
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
#include "lib/internal/forget.h"

/* epoll tags of the broker's own descriptors (connections use their
 * struct conn pointer) */
char tag_listen, tag_signal, tag_tick, tag_psi, tag_job;

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

void blog_line(const struct broker *b, int level, const char *fmt, ...)
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
        /* one write per line, so the purge thread's lines do not mix in;
         * the journal stamps lines itself and reads their priority */
        if (service_journal())
                fprintf(stderr, "%s%s%s\n", service_prefix(level),
                        level == 0 ? "warning: " : "", msg);
        else
                fprintf(stderr, "%s.%03ldZ ashmem-broker[%d]: %s%s\n", stamp,
                        ts.tv_nsec / 1000000, (int)getpid(),
                        level == 0 ? "warning: " : "", msg);
}

/* ---------------------------------------------------------------- tick */

static void tick(struct broker *b)
{
        uint64_t n;
        long long now = am_mono_ms();

        while (read(b->tickfd, &n, sizeof(n)) < 0 && errno == EINTR)
                ;
        closer_reap(b);
        uid_log_flush(b);
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
        purge_tick(b);
        service_tick(b);
        /* never under a service manager: its socket is not ours to
         * close, and the regions would go with the broker */
        if (b->cfg->idle_exit_ms && !service_managed()) {
                if (b->nnames || b->nconns || b->jpending || b->jqueue || b->accept_paused)
                        b->busy_ms = now;
                else if (now - b->busy_ms >= (long long)b->cfg->idle_exit_ms && idle_exit(b))
                        b->quit = "idle";
        }
}

/* ---------------------------------------------------------------- the loop */

int broker_run(const struct broker_config *cfg)
{
        struct broker *b = calloc(1, sizeof(*b));
        struct epoll_event evs[64];
        const char *why = NULL;
        int status = 0, deferring = 0;

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
        /* nor scan /proc on its event loop: it tells the library which
         * regions it let go of (region_unref) */
        am_manual_forget(1);
        if (broker_setup(b) < 0) {
                status = 1;
                goto out;
        }
        b->busy_ms = am_mono_ms();
        tell_ready();
        service_ready(b);
        reload_reply(b);
        while (!why) {
                /* at once while the closer's deferred list makes progress */
                int n = epoll_wait(b->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])),
                                   deferring ? 0 : -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        blog(b, 0, "epoll_wait: %s", strerror(errno));
                        status = 1;
                        why = "error";
                        break;
                }
                records_new_turn();
                for (int i = 0; i < n; i++) {
                        void *tag = evs[i].data.ptr;
                        if (tag == &tag_listen) {
                                conn_accept(b);
                        } else if (tag == &tag_signal) {
                                struct signalfd_siginfo si;
                                char err[160];
                                while (read(b->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                        if (si.ssi_signo == SIGHUP)
                                                (void)reload_run(b, NULL, err, sizeof(err));
                                        else
                                                why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
                                }
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
                deferring = closer_defer_run(b);
                if (b->quit)
                        why = b->quit;
        }
        shutdown_broker(b, why);
out:
        for (struct conn *c = b->conns; c; c = c->next)
                conn_close(b, c, "broker stopping");
        conns_reap(b);
        purge_stop(b, 0);
        ops_free_all(b);
        closer_stop();
        /* the library's control blocks of the regions just let go (not
         * with a purge left running: it may still use the table) */
        if (!b->worker_stuck)
                (void)ashmem_collect();
        remove_socket(b);
        {
                int own[] = { b->lfd, b->psifd, b->epfd, b->sigfd, b->tickfd, b->lockfd };
                am_close_fds(own, (int)(sizeof(own) / sizeof(own[0])));
        }
        if (status == 0)
                blog(b, 1, "stopped");
        conn_replies_free();
        if (!b->worker_stuck)
                free(b);        /* else the purge thread may still use it */
        return status;
}
