/* SPDX-License-Identifier: MIT */
/*
 * A purge whose punch fails part of the way (another holder sealed the
 * region against writes meanwhile, say): this binary supplies its own
 * fallocate(), which fails on a chosen call, so the failure lands between
 * two runs of one chunk every time.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

/* fallocate calls left before the one that fails with EPERM; 0: none fails */
static int fail_at;

int fallocate(int fd, int mode, off_t offset, off_t len)
{
        if (fail_at > 0 && --fail_at == 0) {
                errno = EPERM;
                return -1;
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
