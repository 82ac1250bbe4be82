/* SPDX-License-Identifier: MIT */
/*
 * A program written for the Android NDK: only <android/sharedmem.h> and
 * the system calls, the return conventions its documentation gives.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <android/sharedmem.h>
#include "tests/unit/t.h"

TEST(create_map_and_size)
{
        int fd = ASharedMemory_create("ndk", 10000);
        char *m;

        CHECK(fd >= 0);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(ASharedMemory_getSize(fd), 10000);
        CHECK_EQ(ASharedMemory_getProt(fd), PROT_READ | PROT_WRITE | PROT_EXEC);
        m = mmap(NULL, 10000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        strcpy(m, "hello");
        munmap(m, 10000);
        close(fd);
        fd = ASharedMemory_create(NULL, 1);
        CHECK(fd >= 0);
        CHECK_EQ(ASharedMemory_getSize(fd), 1);
        close(fd);
}

TEST(create_errors)
{
        char big[300];

        /* size 0: -EINVAL itself, not -1 (the NDK's documented exception) */
        errno = 0;
        CHECK_EQ(ASharedMemory_create("zero", 0), -EINVAL);
        memset(big, 'b', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        CHECK_ERRNO(ASharedMemory_create(big, 4096), EINVAL);
}

TEST(set_prot_restricts_every_holder)
{
        int fd = ASharedMemory_create("prot", 4096), other;
        char *m;

        CHECK(fd >= 0);
        m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        m[0] = 'w';
        CHECK_EQ(ASharedMemory_setProt(fd, PROT_READ), 0);
        CHECK_EQ(ASharedMemory_getProt(fd), PROT_READ);
        other = dup(fd);
        CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, other, 0) == MAP_FAILED);
        /* bits never come back */
        CHECK_ERRNO(ASharedMemory_setProt(fd, PROT_READ | PROT_WRITE), EINVAL);
        CHECK_ERRNO(ASharedMemory_setProt(fd, 0x40), EINVAL);
        /* the mapping made before keeps working */
        m[1] = 'x';
        munmap(m, 4096);
        m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, other, 0);
        CHECK(m != MAP_FAILED);
        CHECK(memcmp(m, "wx", 2) == 0);
        munmap(m, 4096);
        close(other);
        close(fd);
}

TEST(not_a_region)
{
        int p[2], raw;

        CHECK_EQ(ASharedMemory_getSize(-1), 0);
        CHECK_ERRNO(ASharedMemory_getProt(-1), EBADF);
        CHECK_ERRNO(ASharedMemory_setProt(-1, PROT_READ), EBADF);
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        CHECK_EQ(ASharedMemory_getSize(p[0]), 0);
        CHECK_ERRNO(ASharedMemory_getProt(p[0]), ENOTTY);
        close(p[0]);
        close(p[1]);
        /* a memfd anyone can still resize is not shared memory to trust */
        raw = memfd_create("raw", MFD_CLOEXEC);
        CHECK(raw >= 0);
        CHECK_EQ(ftruncate(raw, 4096), 0);
        CHECK_EQ(ASharedMemory_getSize(raw), 0);
        close(raw);
}
