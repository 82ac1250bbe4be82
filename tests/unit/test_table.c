/* SPDX-License-Identifier: MIT */
/*
 * The per-process control table near the descriptor limit: the library
 * holds one control descriptor per region until a collection finds the
 * region gone, and must never make a process that closes what it creates
 * run out of descriptors.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"
#include "lib/internal/forget.h"

TEST(create_close_cycles_near_the_descriptor_limit)
{
        struct rlimit rl = { 256, 256 };
        int fds[256], n = 0;

        CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        /* leave 24 slots: fewer than the regions between two collections */
        while (n < 256) {
                int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        break;
                fds[n++] = fd;
        }
        for (int i = 0; i < 24 && n > 0; i++)
                close(fds[--n]);
        for (int i = 0; i < 2000; i++) {
                int fd = ashmem_create_region("cycle", 4096);
                if (fd < 0)
                        t_fail(__FILE__, __LINE__, "create %d: %s", i, strerror(errno));
                if (ashmem_unpin_region(fd, 0, 0) != 0)
                        t_fail(__FILE__, __LINE__, "unpin %d: %s", i, strerror(errno));
                close(fd);
        }
        while (n > 0)
                close(fds[--n]);
}

TEST(collect_keeps_regions_still_referenced)
{
        int keep = ashmem_create_region("kept", 4096), gone, mapped;
        void *p = NULL;

        CHECK(keep >= 0);
        gone = ashmem_create_region("gone", 4096);
        mapped = ashmem_create_region("mapped", 4096);
        CHECK(gone >= 0 && mapped >= 0);
        CHECK_EQ(ashmem_map(mapped, PROT_READ | PROT_WRITE, 0, 0, &p), 0);
        CHECK_EQ(ashmem_unpin_region(keep, 0, 0), 0);
        CHECK_EQ(ashmem_unpin_region(mapped, 0, 0), 0);
        close(gone);
        close(mapped);          /* still mapped: still referenced */
        CHECK_EQ(ashmem_collect(), 1);
        /* the pin state of both survivors is still shared state */
        CHECK_EQ(ashmem_pin_status(keep, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_unmap(p, 4096), 0);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(ashmem_collect(), 0);
        close(keep);
}


struct purger {
        int fd;
        pthread_barrier_t *used, *forgotten, *let_go;
        int status;
};

/* Like the broker's purge thread: it looks at a region (the library
 * caches its entry for this thread), then waits while another thread
 * forgets the region, then lets go. */
static void *purger(void *arg)
{
        struct purger *p = arg;

        p->status = ashmem_pin_status(p->fd, 0, 0);
        pthread_barrier_wait(p->used);
        pthread_barrier_wait(p->forgotten);
        am_forget_thread();
        pthread_barrier_wait(p->let_go);
        return NULL;
}

TEST(a_region_forgot_while_another_thread_caches_it_loses_its_block)
{
        pthread_barrier_t used, forgotten, let_go;
        struct purger p;
        pthread_t t;
        struct stat st;
        int base, fd;

        base = t_control_fds();
        fd = ashmem_create_region("forgot", 4096);
        CHECK(fd >= 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);     /* a block now */
        CHECK_EQ(t_control_fds(), base + 1);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(pthread_barrier_init(&used, NULL, 2), 0);
        CHECK_EQ(pthread_barrier_init(&forgotten, NULL, 2), 0);
        CHECK_EQ(pthread_barrier_init(&let_go, NULL, 2), 0);
        p.fd = fd;
        p.used = &used;
        p.forgotten = &forgotten;
        p.let_go = &let_go;
        CHECK_EQ(pthread_create(&t, NULL, purger, &p), 0);
        pthread_barrier_wait(&used);
        close(fd);
        CHECK_EQ(am_forget_region(&st), 1);
        pthread_barrier_wait(&forgotten);
        pthread_barrier_wait(&let_go);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(p.status, ASHMEM_IS_UNPINNED);
        /* the other thread let go: nothing of the region is left but
         * its block, which no other process ever had, kept for the next
         * region that needs one; a collection gives it back */
        CHECK_EQ(t_control_fds(), base + 1);
        CHECK_EQ(ashmem_collect(), 0);
        CHECK_EQ(t_control_fds(), base);
        pthread_barrier_destroy(&used);
        pthread_barrier_destroy(&forgotten);
        pthread_barrier_destroy(&let_go);
}

struct creator {
        int fds[400];
        int n;
        int stop;
};

static void *creator(void *arg)
{
        struct creator *c = arg;

        while (c->n < (int)(sizeof(c->fds) / sizeof(c->fds[0])) &&
               !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
                int fd = ashmem_create_region("forking", 4096);
                if (fd < 0)
                        break;
                c->fds[c->n++] = fd;
        }
        return NULL;
}

/* A region created by one thread while another forks is this process's
 * to make the block of, or it got one before the fork: its first unpin
 * works, never ENOLCK (the region is nobody else's to make). */
TEST(a_region_created_while_another_thread_forks_can_be_unpinned)
{
        struct creator *c = calloc(1, sizeof(*c));
        pthread_t t;
        int old = ashmem_broker_auto_lookup(0);

        CHECK(c != NULL);
        CHECK_EQ(pthread_create(&t, NULL, creator, c), 0);
        for (int i = 0; i < 400; i++) {
                int st;
                pid_t p = fork();
                CHECK(p >= 0);
                if (p == 0)
                        raise(SIGKILL); /* no exit-time checks of the threads the child lacks */
                CHECK_EQ(waitpid(p, &st, 0), p);
                CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        }
        __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK(c->n > 0);
        for (int i = 0; i < c->n; i++) {
                if (ashmem_unpin_region(c->fds[i], 0, 0) != 0)
                        t_fail(__FILE__, __LINE__, "region %d of %d: unpin: %s", i, c->n,
                               strerror(errno));
                close(c->fds[i]);
        }
        free(c);
        (void)ashmem_broker_auto_lookup(old);
}
