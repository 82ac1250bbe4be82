/* SPDX-License-Identifier: MIT */
/*
 * A purge whose punch fails part of the way (another holder sealed the
 * region against writes meanwhile, say): this binary supplies its own
 * fallocate(), which fails on a chosen call, so the failure lands between
 * two runs of one chunk every time.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

/* fallocate calls left before the one that fails with EPERM; 0: none fails */
static int fail_at;
/* if >= 0: fallocate writes a byte there and stalls 200 ms first */
static int stall_fd = -1;

int fallocate(int fd, int mode, off_t offset, off_t len)
{
        if (fail_at > 0 && --fail_at == 0) {
                errno = EPERM;
                return -1;
        }
        if (stall_fd >= 0) {
                int s = stall_fd;
                stall_fd = -1;
                if (write(s, "s", 1) != 1)
                        abort();
                usleep(200 * 1000);
        }
        return (int)syscall(SYS_fallocate, fd, mode, offset, len);
}

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

static void check_map(int line, int fd, const char *want)
{
        char m[64];
        int r = ashmem_get_page_map(fd, m, strlen(want));

        if (r < 0)
                t_fail(__FILE__, line, "ashmem_get_page_map: %s", strerror(-r));
        m[strlen(want)] = 0;
        if (strcmp(m, want) != 0)
                t_fail(__FILE__, line, "page map %s, expected %s", m, want);
}

static int all(const char *p, size_t n, int c)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != (char)c)
                        return 0;
        return 1;
}

/* The first run is punched, the second fails: the punched pages are
 * purged (a pin says WAS_PURGED over their zeros), the others go back to
 * unpinned with their contents. */
TEST(failed_punch_marks_the_punched_runs_purged)
{
        size_t P = ps();
        int fd = ashmem_create_region("punch", 8 * P);
        char *m;

        CHECK(fd >= 0);
        m = mmap(NULL, 8 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        memset(m, 'p', 8 * P);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 2 * P), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 4 * P, 2 * P), 0);
        fail_at = 2;
        CHECK_EQ(ashmem_purge(fd), 2);
        CHECK_EQ(fail_at, 0);
        check_map(__LINE__, fd, "xxPPuuPP");
        CHECK(all(m, 2 * P, 0));
        CHECK(all(m + 2 * P, 6 * P, 'p'));
        CHECK_EQ(ashmem_pin_region(fd, 0, 2 * P), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 4 * P, 2 * P), ASHMEM_NOT_PURGED);
        /* the first punch fails: nothing punched, nothing marked */
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        fail_at = 1;
        CHECK_NEG(ashmem_purge(fd), EPERM);
        check_map(__LINE__, fd, "uuuuuuuu");
        CHECK(all(m + 2 * P, 6 * P, 'p'));
        munmap(m, 8 * P);
        close(fd);
}

static void *purge_thread(void *arg)
{
        return (void *)(intptr_t)ashmem_purge(*(int *)arg);
}

/* A child forked while another thread purges does not inherit the purge's
 * locked description: fork waits for the purge. With the child alive,
 * pages left purging with no purger are finished at once by a pin, not
 * waited for as if the child were purging. */
TEST(fork_during_a_purge_does_not_hand_the_lock_to_the_child)
{
        size_t P = ps();
        int fd = ashmem_create_region("forkpurge", 4 * P), p[2], status;
        char c;
        pthread_t t;
        void *n;
        pid_t child;

        CHECK(fd >= 0);
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, P), 0);
        stall_fd = p[1];
        CHECK_EQ(pthread_create(&t, NULL, purge_thread, &fd), 0);
        CHECK_EQ(read(p[0], &c, 1), 1);
        /* the purge holds its lock, stalled in its punch */
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
                alarm(10);      /* gone in the end if the test fails */
                pause();
                _exit(0);
        }
        CHECK_EQ(pthread_join(t, &n), 0);
        CHECK_EQ((intptr_t)n, 1);
        /* a purge that died halfway, as a writer may fake one */
        {
                uint64_t *w;
                int cfd = -1;
                CHECK_EQ(ashmem_get_control(fd, &cfd), 0);
                w = mmap(NULL, 512, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
                CHECK(w != MAP_FAILED);
                __atomic_store_n(&w[448 / 8], (uint64_t)0x8, __ATOMIC_RELEASE);
                munmap(w, 512);
                close(cfd);
        }
        check_map(__LINE__, fd, "PxPP");
        CHECK_EQ(ashmem_pin_region(fd, P, P), ASHMEM_WAS_PURGED);
        CHECK_EQ(kill(child, SIGKILL), 0);
        CHECK_EQ(waitpid(child, &status, 0), child);
        close(p[0]);
        close(p[1]);
        close(fd);
}
