/* SPDX-License-Identifier: MIT */
/*
 * The per-process control table near the descriptor limit: the library
 * holds one control descriptor per region until a collection finds the
 * region gone, and must never make a process that closes what it creates
 * run out of descriptors.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

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
