#include <sys/mman.h>
#include <unistd.h>
#include "ashmem/ashmem.h"
#include "t.h"

TEST(create_pin_purge)
{
        int fd = ashmem_create_region("smoke", 3 * 4096 + 5);
        char *p;
        CHECK(fd >= 0);
        CHECK_EQ(ashmem_get_size_region(fd), 3 * 4096 + 5);
        p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        memset(p, 'a', 3 * 4096 + 5);
        CHECK_EQ(ashmem_unpin_region(fd, 4096, 0), 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 4096), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_purge(fd), 3);
        CHECK_EQ(p[0], 'a');
        CHECK_EQ(p[4096], 0);
        CHECK_EQ(ashmem_pin_region(fd, 4096, 4096), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        munmap(p, 4 * 4096);
        close(fd);
}
