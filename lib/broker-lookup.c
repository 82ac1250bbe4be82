/* SPDX-License-Identifier: MIT */
/*
 * The library's implicit lookup. A pin, unpin, status or purge call on a
 * region descriptor this process has no pin state for asks a running
 * broker for the region's control block (am_lookup_control, which
 * lib/region.c hands down to the drivers). Misses are remembered for a second, so a foreign memfd
 * does not cost a connection per call.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ashmem/ashmem.h"
#include "internal/clock.h"
#include "internal/lookup.h"

#define LOOKUP_TIMEOUT_MS 2000
#define MISS_TTL_NS 1000000000LL

static pthread_mutex_t lk_lock = PTHREAD_MUTEX_INITIALIZER;
static int lk_enabled = 1;
static long long lk_nobroker_ns;           /* when no broker answered */
static struct { dev_t dev; ino_t ino; long long at; } lk_miss[8];
static unsigned lk_next;
/* brokers that handed out regions without their block, newest first */
#define LK_ORIGINS 4
static char lk_origin[LK_ORIGINS][sizeof(((struct sockaddr_un *)0)->sun_path)];
/* changes of lk_origin so far (read without the lock): a caller whose
 * path was first when it was this is still first */
static unsigned long lk_gen = 1;

unsigned long am_lookup_remember(const char *path, unsigned long seen)
{
        unsigned long gen;
        unsigned i;
        size_t n;

        if (seen && seen == __atomic_load_n(&lk_gen, __ATOMIC_ACQUIRE))
                return seen;
        n = strlen(path);
        if (n == 0 || n >= sizeof(lk_origin[0]))
                return 0;
        pthread_mutex_lock(&lk_lock);
        for (i = 0; i < LK_ORIGINS - 1 && strcmp(lk_origin[i], path) != 0; i++)
                ;
        if (i > 0) {
                /* move it (or drop the oldest) to the front */
                memmove(lk_origin[1], lk_origin[0], i * sizeof(lk_origin[0]));
                memcpy(lk_origin[0], path, n + 1);
                __atomic_store_n(&lk_gen, lk_gen + 1, __ATOMIC_RELEASE);
        }
        gen = lk_gen;
        pthread_mutex_unlock(&lk_lock);
        return gen;
}

int ashmem_broker_auto_lookup(int enable)
{
        int old;

        pthread_mutex_lock(&lk_lock);
        old = lk_enabled;
        lk_enabled = !!enable;
        pthread_mutex_unlock(&lk_lock);
        return old;
}

/* 1 if no broker listens at path, 2 if it holds the region without a
 * block, else the lookup's result. */
static int lookup_at(const char *path, int fd, int create)
{
        ashmem_broker *b;
        int r = ashmem_broker_connect(path, &b);

        if (r < 0)
                return 1;
        (void)ashmem_broker_set_timeout(b, LOOKUP_TIMEOUT_MS);
        r = am_broker_lookup(b, fd, create);
        if (r == 1)
                r = 2;  /* held without a block */
        ashmem_broker_close(b);
        return r;
}

int am_lookup_control(int fd, const struct stat *st, int create)
{
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char origin[LK_ORIGINS][sizeof(path)];
        long long now = am_mono_ns(0);
        int r, skip = 0, brokers = 0;

        pthread_mutex_lock(&lk_lock);
        if (!lk_enabled || (lk_nobroker_ns && now - lk_nobroker_ns < MISS_TTL_NS))
                skip = 1;
        for (unsigned i = 0; !skip && i < sizeof(lk_miss) / sizeof(lk_miss[0]); i++)
                if (lk_miss[i].at && lk_miss[i].dev == st->st_dev &&
                    lk_miss[i].ino == st->st_ino && now - lk_miss[i].at < MISS_TTL_NS)
                        skip = 1;
        memcpy(origin, lk_origin, sizeof(origin));
        pthread_mutex_unlock(&lk_lock);
        if (skip)
                return -ENOENT;

        /* the brokers that handed out regions without their block */
        for (unsigned i = 0; i < LK_ORIGINS && origin[i][0]; i++) {
                r = lookup_at(origin[i], fd, create);
                if (r == 0 || r == 2)
                        return r / 2;
                brokers += r < 0;
        }
        /* the user's broker, then the system one */
        if (ashmem_broker_socket_path(0, path, sizeof(path)) >= 0) {
                r = lookup_at(path, fd, create);
                if (r == 0 || r == 2)
                        return r / 2;
                brokers += r < 0;
        } else {
                path[0] = 0;
        }
        if (strcmp(path, ASHMEM_BROKER_SYSTEM_SOCKET) != 0) {
                r = lookup_at(ASHMEM_BROKER_SYSTEM_SOCKET, fd, create);
                if (r == 0 || r == 2)
                        return r / 2;
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
