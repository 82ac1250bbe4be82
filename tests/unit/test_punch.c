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
/* if >= 0: the first fallocate first dup2()s swap_from onto swap_onto, as
 * another thread of the process could between the lookup and the punch */
static int swap_from = -1, swap_onto = -1;

int fallocate(int fd, int mode, off_t offset, off_t len)
{
        if (fail_at > 0 && --fail_at == 0) {
                errno = EPERM;
                return -1;
        }
        if (swap_from >= 0) {
                if (dup2(swap_from, swap_onto) < 0)
                        abort();
                swap_from = -1;
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

/* Another thread dup2()s region B onto the number of region A while A is
 * being purged: the punches still go to A (the purge works on a duplicate
 * taken and checked first), and B's pinned pages keep their content. */
TEST(dup2_during_a_purge_does_not_punch_another_region)
{
        size_t P = ps();
        int a = ashmem_create_region("punch-a", 4 * P);
        int b = ashmem_create_region("punch-b", 4 * P);
        int a2;
        char *ma, *mb;

        CHECK(a >= 0 && b >= 0);
        a2 = dup(a);
        CHECK(a2 >= 0);
        ma = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
        mb = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
        CHECK(ma != MAP_FAILED && mb != MAP_FAILED);
        memset(ma, 'a', 4 * P);
        memset(mb, 'b', 4 * P);
        CHECK_EQ(ashmem_unpin_region(a, 0, 0), 0);
        swap_from = b;
        swap_onto = a;
        CHECK_EQ(ashmem_purge(a), 4);
        /* the number a names region B now */
        CHECK(all(mb, 4 * P, 'b'));
        CHECK_EQ(ashmem_pin_status(b, 0, 0), ASHMEM_IS_PINNED);
        check_map(__LINE__, a2, "xxxx");
        CHECK(all(ma, 4 * P, 0));
        munmap(ma, 4 * P);
        munmap(mb, 4 * P);
        close(a2);
        close(a);
        close(b);
}
