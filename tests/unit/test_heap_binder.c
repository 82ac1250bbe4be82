/* SPDX-License-Identifier: MIT */
/*
 * Heaps at libbinder's level: a heap over part of a region at an offset
 * (MemoryHeapBase(fd, size, flags, offset)), the no-caching flag, and
 * read-only-ness as the receiver of a region sees it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

TEST(adopt_at_an_offset)
{
        size_t P = ps();
        int fd = ashmem_create_region("offsets", 4 * P);
        ashmem_heap *h, *whole;
        ashmem_slice *s;
        char *m;

        CHECK(fd >= 0);
        m = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        strcpy(m + 2 * P, "third page");
        CHECK_EQ(ashmem_heap_adopt_at(fd, P, 2 * P, 0, &h), 0);
        CHECK_EQ(ashmem_heap_offset(h), 2 * P);
        CHECK_EQ(ashmem_heap_size(h), P);
        CHECK(strcmp(ashmem_heap_base(h), "third page") == 0);
        CHECK_EQ(ashmem_heap_mapping_users(h), 1);
        /* a slice counts from the heap's start */
        CHECK_EQ(ashmem_slice_new(h, 6, 4, &s), 0);
        CHECK(memcmp(ashmem_slice_ptr(s), "page", 4) == 0);
        CHECK_NEG(ashmem_slice_new(h, 0, P + 1, &s), EINVAL);
        /* so do pin ranges: unpinning the heap's page 0 is the region's 2 */
        CHECK_EQ(ashmem_heap_unpin(h, 0, 0), 0);
        CHECK_EQ(ashmem_pin_status(fd, 2 * P, P), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 2 * P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 3 * P, P), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_slice_pin(s), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 2 * P, P), ASHMEM_IS_PINNED);
        CHECK_NEG(ashmem_heap_pin(h, P, P), EINVAL);
        CHECK_NEG(ashmem_heap_pin(h, 0, 2 * P), EINVAL);
        /* size 0: to the end; the whole region stays one cached mapping */
        CHECK_EQ(ashmem_heap_adopt_at(fd, 0, P, 0, &whole), 0);
        CHECK_EQ(ashmem_heap_size(whole), 3 * P);
        whole = ashmem_heap_unref(whole);
        CHECK_EQ(ashmem_heap_adopt_at(fd, 0, 0, 0, &whole), 0);
        CHECK_EQ(ashmem_heap_offset(whole), 0);
        CHECK_EQ(ashmem_heap_size(whole), 4 * P);
        whole = ashmem_heap_unref(whole);
        ashmem_slice_unref(s);
        ashmem_heap_unref(h);
        munmap(m, 4 * P);
        close(fd);
}

TEST(adopt_at_bad_ranges)
{
        size_t P = ps();
        int fd = ashmem_create_region("bad", 2 * P);
        ashmem_heap *h = NULL;

        CHECK(fd >= 0);
        CHECK_NEG(ashmem_heap_adopt_at(fd, P, 1, 0, &h), EINVAL);        /* unaligned */
        CHECK_NEG(ashmem_heap_adopt_at(fd, 2 * P, P, 0, &h), EINVAL);    /* past the end */
        CHECK_NEG(ashmem_heap_adopt_at(fd, 0, 2 * P, 0, &h), EINVAL);    /* nothing left */
        CHECK_NEG(ashmem_heap_adopt_at(fd, 0, 4 * P, 0, &h), EINVAL);
        CHECK_NEG(ashmem_heap_adopt_at(fd, (size_t)-1, P, 0, &h), EINVAL);
        CHECK_NEG(ashmem_heap_adopt_at(-1, P, 0, 0, &h), EBADF);
        CHECK(h == NULL);
        close(fd);
}

TEST(no_caching_gets_a_mapping_of_its_own)
{
        size_t P = ps();
        ashmem_heap *a, *b, *c;

        CHECK_EQ(ashmem_heap_new("cache", P, 0, &a), 0);
        CHECK_EQ(ashmem_heap_adopt(ashmem_heap_fd(a), 0, &b), 0);
        CHECK_EQ(ashmem_heap_adopt(ashmem_heap_fd(a), ASHMEM_HEAP_NO_CACHING, &c), 0);
        CHECK(ashmem_heap_base(a) == ashmem_heap_base(b));
        CHECK(ashmem_heap_base(c) != ashmem_heap_base(a));
        CHECK_EQ(ashmem_heap_mapping_users(a), 2);
        CHECK_EQ(ashmem_heap_mapping_users(c), 1);
        CHECK(ashmem_heap_flags(c) & ASHMEM_HEAP_NO_CACHING);
        strcpy(ashmem_heap_base(c), "same pages");
        CHECK(strcmp(ashmem_heap_base(a), "same pages") == 0);
        ashmem_heap_unref(c);
        CHECK(strcmp(ashmem_heap_base(b), "same pages") == 0);
        ashmem_heap_unref(b);
        ashmem_heap_unref(a);
}

TEST(read_only_is_visible_to_the_receiver)
{
        size_t P = ps();
        ashmem_heap *sender, *recv;
        char path[64];
        int ro;

        CHECK_EQ(ashmem_heap_new("ro", P, ASHMEM_HEAP_READ_ONLY, &sender), 0);
        CHECK(ashmem_heap_flags(sender) & ASHMEM_HEAP_READ_ONLY);
        /* the receiver did not ask for read-only; the heap says it is */
        CHECK_EQ(ashmem_heap_adopt(ashmem_heap_fd(sender), ASHMEM_HEAP_DONT_MAP_LOCALLY, &recv), 0);
        CHECK(ashmem_heap_flags(recv) & ASHMEM_HEAP_READ_ONLY);
        recv = ashmem_heap_unref(recv);
        CHECK_NEG(ashmem_heap_adopt(ashmem_heap_fd(sender), 0, &recv), EPERM);
        CHECK_EQ(ashmem_heap_adopt(ashmem_heap_fd(sender), ASHMEM_HEAP_READ_ONLY, &recv), 0);
        CHECK(ashmem_heap_flags(recv) & ASHMEM_HEAP_READ_ONLY);
        recv = ashmem_heap_unref(recv);
        ashmem_heap_unref(sender);

        /* a read-only descriptor of a writable region */
        CHECK_EQ(ashmem_heap_new("rw", P, 0, &sender), 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", ashmem_heap_fd(sender));
        ro = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(ro >= 0);
        CHECK_EQ(ashmem_heap_adopt(ro, ASHMEM_HEAP_DONT_MAP_LOCALLY, &recv), 0);
        CHECK(ashmem_heap_flags(recv) & ASHMEM_HEAP_READ_ONLY);
        recv = ashmem_heap_unref(recv);
        CHECK_EQ(ashmem_heap_adopt(ashmem_heap_fd(sender), 0, &recv), 0);
        CHECK_EQ(ashmem_heap_flags(recv) & ASHMEM_HEAP_READ_ONLY, 0);
        recv = ashmem_heap_unref(recv);
        close(ro);
        ashmem_heap_unref(sender);
}
