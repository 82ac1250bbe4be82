/* SPDX-License-Identifier: MIT */
/*
 * The broker's purger: it reclaims the unpinned pages of the regions the
 * broker holds, least recently unpinned first, when memory runs short:
 *
 *   - a PSI trigger on /proc/pressure/memory ("some STALL WINDOW", by
 *     default 150 ms of stall in a 2 s window) wakes the event loop; each
 *     event purges regions until --purge-step bytes came back, and the
 *     kernel repeats the event (at most once a window) while the pressure
 *     lasts; an event within two windows of the last purges every
 *     unpinned page, so all of it comes back within two windows;
 *   - with --purge-below PERCENT (or when PSI is unavailable), the tick
 *     polls /proc/meminfo and purges region after region while MemAvailable
 *     stays below PERCENT of MemTotal.
 *
 * Purges and purge requests run on one purge thread: a purge takes the
 * region's process-shared lock, which a client holds while it pins, and a
 * misbehaving client could hold it for ever. The event loop never waits
 * for it; the thread hands finished jobs back through an eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "drivers/memfd/control.h"
#include "internal.h"

/* How long the purger retries a region whose control block keeps changing
 * under it (a writer scribbling over it) before it skips the region. */
#define PURGE_BOUND_NS (10 * 1000000ll)
#include "lib/internal/forget.h"

int meminfo(unsigned long long *total, unsigned long long *avail)
{
        FILE *f = fopen("/proc/meminfo", "re");
        char line[256];
        int got = 0;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f) && got != 3) {
                unsigned long long v;
                if (sscanf(line, "MemTotal: %llu kB", &v) == 1) {
                        *total = v * 1024;
                        got |= 1;
                } else if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
                        *avail = v * 1024;
                        got |= 2;
                }
        }
        fclose(f);
        return got == 3 ? 0 : -ENODATA;
}

struct job *job_new(size_t n)
{
        struct job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->below = -1;
        if (n) {
                j->regions = calloc(n, sizeof(*j->regions));
                j->names = calloc(n, sizeof(*j->names));
                if (!j->regions || !j->names) {
                        free(j->regions);
                        free(j->names);
                        free(j);
                        return NULL;
                }
        }
        return j;
}

void job_add(struct job *j, struct entry *e, unsigned long long walk)
{
        if (e->r->seen == walk)
                return;
        e->r->seen = walk;
        e->r->refs++;
        j->regions[j->n] = e->r;
        j->names[j->n++] = strdup(e->name);
}

void job_free(struct broker *b, struct job *j)
{
        for (size_t i = 0; i < j->n; i++) {
                region_unref(b, j->regions[i]);
                free(j->names[i]);
        }
        free(j->regions);
        free(j->names);
        free(j);
}

/* ---------------------------------------------------------------- the thread */

struct lru {
        size_t i;
        long long since;
};

static int lru_cmp(const void *a, const void *b)
{
        const struct lru *x = a, *y = b;
        return x->since < y->since ? -1 : x->since > y->since;
}

static int memory_ok(int below)
{
        unsigned long long total = 0, avail = 0;

        if (meminfo(&total, &avail) < 0 || total == 0)
                return 1;
        return avail * 100 >= (unsigned long long)below * total;
}

static void run_job(struct broker *b, struct job *j)
{
        struct lru *v = calloc(j->n ? j->n : 1, sizeof(*v));
        size_t n = 0, ps = (size_t)b->page_size;
        unsigned long long bytes = 0;

        if (!v) {
                blog(b, 0, "purge: out of memory");
                return;
        }
        for (size_t i = 0; i < j->n; i++) {
                ashmem_stats st;
                struct am_hold *h;
                if (ashmem_get_stats(j->regions[i]->fd, &st) < 0)
                        continue;
                if (st.unpinned == 0) {
                        /* nothing unpinned, but perhaps pages a dead
                         * purger left purging (counted as purged): the
                         * purge finishes them. A region without pin state
                         * (no block yet) has nothing to purge. */
                        h = __atomic_load_n(&j->regions[i]->hold, __ATOMIC_ACQUIRE);
                        if (!h || st.purged == 0 || am_hold_purging(h) == 0)
                                continue;
                }
                v[n].i = i;
                v[n].since = st.unpinned_since_ns;
                n++;
        }
        qsort(v, n, sizeof(*v), lru_cmp);
        for (size_t k = 0; k < n; k++) {
                size_t i = v[k].i;
                int p;
                if (j->below >= 0 && memory_ok(j->below))
                        break;
                if (j->step && bytes >= j->step)
                        break;
                p = ashmem_purge(j->regions[i]->fd);
                if (p == -EBUSY || p == -EAGAIN || p == -ETIMEDOUT) {
                        /* held by someone else right now, or its block
                         * kept changing: skip it, count it, never wait
                         * for it */
                        j->skipped++;
                        continue;
                }
                if (p < 0) {
                        blog(b, 0, "purge %s: %s", j->names[i] ? j->names[i] : "?",
                             strerror(-p));
                        continue;
                }
                if (p == 0)
                        continue;
                j->pages += (unsigned long long)p;
                j->nregions++;
                bytes += (unsigned long long)p * ps;
                blog(b, 1, "purged %s: %d pages (%llu bytes), %s",
                     j->names[i] ? j->names[i] : "?", p, (unsigned long long)p * ps, j->why);
        }
        free(v);
}

static void *worker(void *arg)
{
        struct broker *b = arg;
        uint64_t one = 1;

        /* a region whose control block a writer keeps changing gives up
         * after PURGE_BOUND_NS and is skipped, not waited on */
        amc_set_thread_bound(PURGE_BOUND_NS);
        for (;;) {
                struct job *j, **pp;

                pthread_mutex_lock(&b->jlock);
                while (!b->jqueue && !b->jstop)
                        pthread_cond_wait(&b->jcond, &b->jlock);
                j = b->jqueue;
                if (!j) {
                        pthread_mutex_unlock(&b->jlock);
                        break;
                }
                b->jqueue = j->next;
                pthread_mutex_unlock(&b->jlock);

                run_job(b, j);
                /* the library's cache of the last region this thread
                 * purged goes before the job does: the event loop forgets
                 * the job's regions when it frees the job, and an entry
                 * still cached here would outlive that with its control
                 * descriptor */
                am_forget_thread();

                pthread_mutex_lock(&b->jlock);
                j->next = NULL;
                for (pp = &b->jdone; *pp; pp = &(*pp)->next)
                        ;
                *pp = j;
                pthread_mutex_unlock(&b->jlock);
                while (write(b->jobfd, &one, sizeof(one)) < 0 && errno == EINTR)
                        ;
        }
        return NULL;
}

/* ---------------------------------------------------------------- main thread */

int purge_submit(struct broker *b, struct job *j)
{
        struct job **pp;

        /* the thread starts with the first job: until then the broker is
         * one thread, and every system call of its event loop takes the
         * kernel's and the C library's single-threaded paths */
        if (!b->worker_started) {
                int r = pthread_create(&b->worker, NULL, worker, b);
                if (r != 0) {
                        /* said once, not at every pressure event after */
                        if (!b->worker_failed)
                                blog(b, 0, "purge thread: %s (purges wait until one "
                                     "can start)", strerror(r));
                        b->worker_failed = 1;
                        return -r;
                }
                if (b->worker_failed)
                        blog(b, 0, "purge thread started");
                b->worker_failed = 0;
                b->worker_started = 1;
        }
        pthread_mutex_lock(&b->jlock);
        j->next = NULL;
        for (pp = &b->jqueue; *pp; pp = &(*pp)->next)
                ;
        *pp = j;
        b->jpending++;
        pthread_cond_signal(&b->jcond);
        pthread_mutex_unlock(&b->jlock);
        return 0;
}

static void pressure_job(struct broker *b, const char *why, int below,
                         unsigned long long step);

void purge_completed(struct broker *b)
{
        uint64_t n;
        struct job *j, *next;

        while (read(b->jobfd, &n, sizeof(n)) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&b->jlock);
        j = b->jdone;
        b->jdone = NULL;
        pthread_mutex_unlock(&b->jlock);
        for (; j; j = next) {
                next = j->next;
                b->jpending--;
                b->n.purges += j->nregions;
                b->n.pages_purged += j->pages;
                b->n.purge_skipped += j->skipped;
                if (strcmp(j->why, "request") != 0) {
                        b->pressure_job = 0;
                        if (j->pages)
                                blog(b, 1, "%s: %llu pages (%llu bytes) from %llu region%s",
                                     j->why, j->pages, j->pages * (unsigned long long)b->page_size,
                                     j->nregions, j->nregions == 1 ? "" : "s");
                }
                ops_job_done(b, j);
                job_free(b, j);
        }
        if (b->pressure_again && !b->pressure_job) {
                b->pressure_again = 0;
                pressure_job(b, "sustained memory pressure", -1, 0);
        }
}

int purge_drain(struct broker *b, long long deadline)
{
        while (b->jpending) {
                struct pollfd p = { .fd = b->jobfd, .events = POLLIN };
                long long left = deadline - am_mono_ms();
                if (left <= 0)
                        break;
                if (poll(&p, 1, (int)left) > 0)
                        purge_completed(b);
        }
        return (int)b->jpending;
}

/* A purge of every region held, for memory pressure. */
static void pressure_job(struct broker *b, const char *why, int below,
                         unsigned long long step)
{
        struct name_pos p = { 0, 0 };
        unsigned long long walk;
        struct entry *e;
        struct job *j;

        if (b->pressure_job || !b->nnames)
                return;
        j = job_new(b->nnames);
        if (!j)
                return;
        walk = names_walk(b);
        while ((e = name_next(b, &p)))
                job_add(j, e, walk);
        j->why = why;
        j->below = below;
        j->step = step;
        if (purge_submit(b, j) < 0)
                job_free(b, j);         /* said in the log; the next event tries again */
        else
                b->pressure_job = 1;
}

/* A PSI event purges --purge-step bytes, least recently unpinned first.
 * Pressure that lasts (another event within two windows of the last one)
 * purges every unpinned page: all unpinned memory comes back within two
 * pressure windows, however much there is. */
void purge_pressure(struct broker *b, const char *why)
{
        long long now = am_mono_ms();
        long long window = (long long)b->cfg->psi_window_us / 1000;
        int sustained = b->last_pressure_ms && now - b->last_pressure_ms <= 2 * window;

        blog(b, 2, "%s%s", why, sustained ? " (sustained)" : "");
        b->last_pressure_ms = now;
        if (b->pressure_job) {
                if (sustained)
                        b->pressure_again = 1;
                return;
        }
        pressure_job(b, sustained ? "sustained memory pressure" : why, -1,
                     sustained ? 0 : b->cfg->purge_step);
}

void purge_tick(struct broker *b)
{
        if (b->below < 0 || b->pressure_job || !b->nnames || memory_ok(b->below))
                return;
        pressure_job(b, "MemAvailable below threshold", b->below, 0);
}

static int psi_open(struct broker *b)
{
        char trig[64];
        int fd, n;

        fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = snprintf(trig, sizeof(trig), "some %u %u", b->cfg->psi_stall_us,
                     b->cfg->psi_window_us);
        /* the trigger is the string with its terminating NUL */
        if (write(fd, trig, (size_t)n + 1) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

int purge_start(struct broker *b)
{
        unsigned long long total = 0, avail = 0;

        b->page_size = (long long)am_page_size();
        if (meminfo(&total, &avail) == 0)
                b->mem_total = total;
        b->max_bytes = b->cfg->max_bytes ? b->cfg->max_bytes :
                       b->mem_total ? b->mem_total : 1ull << 40;
        b->jobfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (b->jobfd < 0)
                return -errno;
        pthread_mutex_init(&b->jlock, NULL);
        pthread_cond_init(&b->jcond, NULL);

        b->psifd = -1;
        if (b->cfg->psi) {
                int fd = psi_open(b);
                if (fd >= 0) {
                        b->psifd = fd;
                        blog(b, 1, "purger: PSI trigger \"some %u %u\" on /proc/pressure/memory",
                             b->cfg->psi_stall_us, b->cfg->psi_window_us);
                } else {
                        blog(b, 0, "PSI trigger unavailable (%s)", strerror(-fd));
                }
        }
        if (b->cfg->purge_below >= 0)
                b->below = b->cfg->purge_below;
        else if (b->psifd < 0)
                b->below = b->cfg->fallback_below;
        if (b->below >= 0)
                blog(b, 1, "purger: purging while MemAvailable < %d%% of MemTotal "
                     "(polled every %u ms)", b->below, b->cfg->poll_ms);
        return 0;
}

void purge_stop(struct broker *b, int wait_ms)
{
        long long deadline = am_mono_ms() + wait_ms;

        if (!b->worker_started) {
                if (!b->worker_stuck && b->jobfd >= 0) {
                        close(b->jobfd);
                        b->jobfd = -1;
                }
                return;
        }
        pthread_mutex_lock(&b->jlock);
        b->jstop = 1;
        pthread_cond_broadcast(&b->jcond);
        pthread_mutex_unlock(&b->jlock);
        if (purge_drain(b, deadline) > 0) {
                /* a purge still running (a long punch): leave it behind */
                blog(b, 0, "a purge is still running; not waiting for it");
                pthread_detach(b->worker);
                b->worker_started = 0;
                b->worker_stuck = 1;
                return;
        }
        pthread_join(b->worker, NULL);
        b->worker_started = 0;
        close(b->jobfd);
        b->jobfd = -1;
}
