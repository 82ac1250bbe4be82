/* SPDX-License-Identifier: MIT */
/* Heaps, slices, the heap cache and the heap pin path. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

/* Mappings in /proc/self/maps of the file behind fd. */
static int count_maps(int fd)
{
        struct stat st;
        char line[512];
        int n = 0;
        FILE *f;

        CHECK(fstat(fd, &st) == 0);
        f = fopen("/proc/self/maps", "re");
        CHECK(f != NULL);
        while (fgets(line, sizeof(line), f)) {
                unsigned maj, min;
                uint64_t ino;
                if (sscanf(line, "%*x-%*x %*s %*x %x:%x %" SCNu64, &maj, &min, &ino) == 3 &&
                    makedev(maj, min) == st.st_dev && ino == (uint64_t)st.st_ino)
                        n++;
        }
        fclose(f);
        return n;
}

/* 1 if addr lies in a mapping of /proc/self/maps. */
static int mapped(const void *addr)
{
        char line[512];
        int found = 0;
        FILE *f = fopen("/proc/self/maps", "re");

        CHECK(f != NULL);
        while (!found && fgets(line, sizeof(line), f)) {
                uintptr_t lo, hi;
                if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 &&
                    (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
                        found = 1;
        }
        fclose(f);
        return found;
}

/* A second open file description of the same region (not a dup). */
static int reopen(int fd, int flags)
{
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, flags | O_CLOEXEC);
        CHECK(r >= 0);
        return r;
}

TEST(two_fds_one_mapping)
{
        ashmem_heap *a, *b;
        int fd2;

        CHECK_EQ(ashmem_heap_new("two", 3 * ps(), 0, &a), 0);
        fd2 = reopen(ashmem_heap_fd(a), O_RDWR);
        CHECK(fd2 != ashmem_heap_fd(a));
        CHECK_EQ(ashmem_heap_adopt(fd2, 0, &b), 0);
        CHECK(ashmem_heap_base(a) != NULL);
        CHECK(ashmem_heap_base(a) == ashmem_heap_base(b));
        CHECK_EQ(count_maps(fd2), 1);
        CHECK_EQ(ashmem_heap_mapping_users(a), 2);
        CHECK_EQ(ashmem_heap_mapping_users(b), 2);
        /* the heap keeps its own descriptor: closing the caller's is fine */
        CHECK(ashmem_heap_fd(b) != fd2);
        CHECK(fcntl(ashmem_heap_fd(b), F_GETFD) & FD_CLOEXEC);
        close(fd2);
        memcpy(ashmem_heap_base(b), "shared", 7);
        CHECK(strcmp(ashmem_heap_base(a), "shared") == 0);
        CHECK(ashmem_heap_unref(b) == NULL);
        CHECK_EQ(ashmem_heap_mapping_users(a), 1);
        CHECK_EQ(count_maps(ashmem_heap_fd(a)), 1);
        ashmem_heap_unref(a);
}

TEST(separate_regions_separate_mappings)
{
        ashmem_heap *a, *b;

        CHECK_EQ(ashmem_heap_new("a", ps(), 0, &a), 0);
        CHECK_EQ(ashmem_heap_new("b", ps(), 0, &b), 0);
        CHECK(ashmem_heap_base(a) != ashmem_heap_base(b));
        CHECK_EQ(ashmem_heap_mapping_users(a), 1);
        CHECK_EQ(ashmem_heap_mapping_users(b), 1);
        ashmem_heap_unref(a);
        ashmem_heap_unref(b);
}

#define NTHREADS 16

struct adopt_arg {
        int fd;
        pthread_barrier_t *barrier;
        ashmem_heap *heap;
        int r;
};

static void *adopt_thread(void *p)
{
        struct adopt_arg *a = p;

        pthread_barrier_wait(a->barrier);
        a->r = ashmem_heap_adopt(a->fd, 0, &a->heap);
        return NULL;
}

TEST(threads_adopt_one_mapping)
{
        pthread_t th[NTHREADS];
        struct adopt_arg arg[NTHREADS];
        pthread_barrier_t barrier;
        int fd = ashmem_create_region("threads", 5 * ps());

        CHECK(fd >= 0);
        CHECK_EQ(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
        for (int i = 0; i < NTHREADS; i++) {
                arg[i] = (struct adopt_arg){ .fd = fd, .barrier = &barrier, .r = -1 };
                CHECK_EQ(pthread_create(&th[i], NULL, adopt_thread, &arg[i]), 0);
        }
        for (int i = 0; i < NTHREADS; i++)
                CHECK_EQ(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < NTHREADS; i++) {
                CHECK_EQ(arg[i].r, 0);
                CHECK(ashmem_heap_base(arg[i].heap) == ashmem_heap_base(arg[0].heap));
                CHECK_EQ(ashmem_heap_mapping_users(arg[i].heap), NTHREADS);
        }
        CHECK_EQ(count_maps(fd), 1);
        for (int i = 0; i < NTHREADS / 2; i++)
                ashmem_heap_unref(arg[i].heap);
        CHECK_EQ(ashmem_heap_mapping_users(arg[NTHREADS - 1].heap), NTHREADS / 2);
        CHECK_EQ(count_maps(fd), 1);
        for (int i = NTHREADS / 2; i < NTHREADS; i++)
                ashmem_heap_unref(arg[i].heap);
        CHECK_EQ(count_maps(fd), 0);
        close(fd);
}

struct fail_arg {
        int fd;
        pthread_barrier_t *barrier;
        int r;
};

static void *adopt_ro_thread(void *p)
{
        struct fail_arg *a = p;
        ashmem_heap *h = NULL;

        pthread_barrier_wait(a->barrier);
        a->r = ashmem_heap_adopt(a->fd, ASHMEM_HEAP_READ_ONLY, &h);
        if (a->r == 0)
                ashmem_heap_unref(h);
        return NULL;
}

/* Mapping fails (the region lost PROT_READ): every thread that waited for
 * the failed mapping tries again and fails the same way; nothing is left
 * in the cache, nothing leaks (the sanitizer build checks that). */
TEST(threads_adopt_failing_mapping)
{
        pthread_t th[NTHREADS];
        struct fail_arg arg[NTHREADS];
        pthread_barrier_t barrier;
        int fd = ashmem_create_region("unreadable", ps());

        CHECK(fd >= 0);
        CHECK_EQ(ashmem_set_prot_region(fd, 0), 0);
        CHECK_EQ(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
        for (int i = 0; i < NTHREADS; i++) {
                arg[i] = (struct fail_arg){ .fd = fd, .barrier = &barrier, .r = 0 };
                CHECK_EQ(pthread_create(&th[i], NULL, adopt_ro_thread, &arg[i]), 0);
        }
        for (int i = 0; i < NTHREADS; i++)
                CHECK_EQ(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < NTHREADS; i++)
                CHECK_EQ(arg[i].r, -EPERM);
        CHECK_EQ(count_maps(fd), 0);
        close(fd);
}

struct churn_arg { int fd, r; };

static void *churn_thread(void *p)
{
        struct churn_arg *a = p;

        for (int i = 0; i < 200 && a->r == 0; i++) {
                ashmem_heap *h;
                ashmem_slice *s;
                a->r = ashmem_heap_adopt(a->fd, i % 3 == 0 ? ASHMEM_HEAP_READ_ONLY : 0, &h);
                if (a->r < 0)
                        break;
                a->r = ashmem_slice_new(h, 1, 2, &s);
                if (a->r == 0) {
                        if (!(ashmem_heap_flags(h) & ASHMEM_HEAP_READ_ONLY))
                                ((volatile char *)ashmem_slice_ptr(s))[0]++;
                        a->r = ashmem_slice_unpin(s);
                        if (a->r == 0)
                                a->r = ashmem_slice_pin(s) < 0 ? -1 : 0;
                        ashmem_slice_unref(s);
                }
                ashmem_heap_unref(h);
        }
        return NULL;
}

TEST(threads_churn)
{
        pthread_t th[8];
        struct churn_arg arg[8];
        int fd = ashmem_create_region("churn", ps());

        CHECK(fd >= 0);
        for (int i = 0; i < 8; i++) {
                arg[i] = (struct churn_arg){ .fd = fd };
                CHECK_EQ(pthread_create(&th[i], NULL, churn_thread, &arg[i]), 0);
        }
        for (int i = 0; i < 8; i++)
                CHECK_EQ(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < 8; i++)
                CHECK_EQ(arg[i].r, 0);
        CHECK_EQ(count_maps(fd), 0);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        close(fd);
}

TEST(unref_to_zero_unmaps)
{
        ashmem_heap *h;
        void *base;
        int fd;

        CHECK_EQ(ashmem_heap_new("gone", 2 * ps(), 0, &h), 0);
        base = ashmem_heap_base(h);
        fd = ashmem_heap_fd(h);
        CHECK(mapped(base));
        CHECK(ashmem_heap_ref(h) == h);
        CHECK(ashmem_heap_ref(h) == h);
        CHECK(ashmem_heap_unref(h) == NULL);
        CHECK(ashmem_heap_unref(h) == NULL);
        CHECK(mapped(base));
        CHECK_EQ(ashmem_heap_mapping_users(h), 1);
        ((char *)base)[0] = 1;
        CHECK(ashmem_heap_unref(h) == NULL);
        CHECK(!mapped(base));
        /* and its descriptor is closed */
        CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
        CHECK(ashmem_heap_unref(NULL) == NULL);
        CHECK(ashmem_heap_ref(NULL) == NULL);
}

static void write_byte(void *p)
{
        signal(SIGSEGV, SIG_DFL);
        *(volatile char *)p = 'w';
        _exit(0);
}

static int segfaults(void *p)
{
        int status = t_in_child(write_byte, p);
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

TEST(read_only_creator_writes_others_cannot)
{
        ashmem_heap *c, *r;
        int fd;

        CHECK_EQ(ashmem_heap_new("ro", 2 * ps(), ASHMEM_HEAP_READ_ONLY, &c), 0);
        CHECK_EQ(ashmem_heap_flags(c), ASHMEM_HEAP_READ_ONLY);
        fd = ashmem_heap_fd(c);
        /* the creator's mapping stays writable */
        memcpy(ashmem_heap_base(c), "creator", 8);
        CHECK(!segfaults(ashmem_heap_base(c)));
        /* everybody else lost the write bit */
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_EXEC);
        CHECK(mmap(NULL, ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_NEG(ashmem_heap_adopt(fd, 0, &r), EPERM);
        CHECK_EQ(ashmem_heap_adopt(fd, ASHMEM_HEAP_READ_ONLY, &r), 0);
        CHECK(ashmem_heap_base(r) != ashmem_heap_base(c));
        /* the creator's child wrote 'w' over the 'c' */
        CHECK(strcmp(ashmem_heap_base(r), "wreator") == 0);
        CHECK(segfaults(ashmem_heap_base(r)));
        CHECK_EQ(ashmem_heap_mapping_users(r), 1);
        CHECK_EQ(ashmem_heap_mapping_users(c), 1);
        CHECK_EQ(count_maps(fd), 2);
        ashmem_heap_unref(r);
        CHECK_EQ(count_maps(fd), 1);
        ashmem_heap_unref(c);
}

TEST(read_only_and_writable_heaps_do_not_share)
{
        ashmem_heap *w, *r1, *r2, *w2;
        int fd = ashmem_create_region("mixed", ps()), ro;

        CHECK(fd >= 0);
        CHECK_EQ(ashmem_heap_adopt(fd, 0, &w), 0);
        CHECK_EQ(ashmem_heap_adopt(fd, ASHMEM_HEAP_READ_ONLY, &r1), 0);
        ro = reopen(fd, O_RDONLY);
        /* a read-only descriptor cannot have the writable mapping, even
         * though one is cached */
        CHECK_NEG(ashmem_heap_adopt(ro, 0, &w2), EACCES);
        CHECK_EQ(ashmem_heap_adopt(ro, ASHMEM_HEAP_READ_ONLY, &r2), 0);
        close(ro);
        CHECK(ashmem_heap_base(r1) == ashmem_heap_base(r2));
        CHECK(ashmem_heap_base(r1) != ashmem_heap_base(w));
        CHECK_EQ(ashmem_heap_mapping_users(r1), 2);
        CHECK_EQ(ashmem_heap_mapping_users(w), 1);
        CHECK_EQ(count_maps(fd), 2);
        ((char *)ashmem_heap_base(w))[10] = 'x';
        CHECK_EQ(((char *)ashmem_heap_base(r2))[10], 'x');
        CHECK(segfaults(ashmem_heap_base(r1)));
        CHECK(!segfaults(ashmem_heap_base(w)));
        ashmem_heap_unref(w);
        ashmem_heap_unref(r1);
        ashmem_heap_unref(r2);
        CHECK_EQ(count_maps(fd), 0);
        close(fd);
}

TEST(dont_map_locally)
{
        ashmem_heap *h;
        ashmem_slice *s;

        CHECK_EQ(ashmem_heap_new("nomap", 2 * ps(), ASHMEM_HEAP_DONT_MAP_LOCALLY, &h), 0);
        CHECK(ashmem_heap_base(h) == NULL);
        CHECK_EQ(count_maps(ashmem_heap_fd(h)), 0);
        CHECK_EQ(ashmem_heap_mapping_users(h), 0);
        CHECK_EQ(ashmem_heap_size(h), 2 * ps());
        CHECK_EQ(ashmem_slice_new(h, ps(), ps(), &s), 0);
        CHECK(ashmem_slice_ptr(s) == NULL);
        CHECK_EQ(ashmem_slice_unpin(s), 0);
        CHECK_EQ(ashmem_pin_status(ashmem_heap_fd(h), ps(), ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_slice_pin(s), ASHMEM_NOT_PURGED);
        ashmem_slice_unref(s);
        /* with read-only: no mapping, and the write bit dropped */
        ashmem_heap_unref(h);
        CHECK_EQ(ashmem_heap_new("nomap-ro", ps(),
                                 ASHMEM_HEAP_DONT_MAP_LOCALLY | ASHMEM_HEAP_READ_ONLY, &h), 0);
        CHECK(ashmem_heap_base(h) == NULL);
        CHECK_EQ(ashmem_get_prot(ashmem_heap_fd(h)) & PROT_WRITE, 0);
        ashmem_heap_unref(h);
}

TEST(slice_bounds)
{
        ashmem_heap *h;
        ashmem_slice *s = NULL;
        size_t size = 3 * ps() + 5;

        CHECK_EQ(ashmem_heap_new("bounds", size, 0, &h), 0);
        CHECK_EQ(ashmem_heap_size(h), size);
        CHECK_NEG(ashmem_slice_new(h, 0, size + 1, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, size, 1, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, 1, size, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, size + 1, 0, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, 0, 0, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, SIZE_MAX, 1, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, 1, SIZE_MAX, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, SIZE_MAX, SIZE_MAX, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, 16, SIZE_MAX - 15, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(NULL, 0, 1, &s), EINVAL);
        CHECK_NEG(ashmem_slice_new(h, 0, 1, NULL), EINVAL);
        CHECK(s == NULL);

        CHECK_EQ(ashmem_slice_new(h, 0, size, &s), 0);
        CHECK(ashmem_slice_ptr(s) == ashmem_heap_base(h));
        ashmem_slice_unref(s);
        CHECK_EQ(ashmem_slice_new(h, size - 1, 1, &s), 0);
        CHECK(ashmem_slice_ptr(s) == (char *)ashmem_heap_base(h) + size - 1);
        CHECK_EQ(ashmem_slice_offset(s), size - 1);
        CHECK_EQ(ashmem_slice_size(s), 1);
        CHECK(ashmem_slice_heap(s) == h);
        *(char *)ashmem_slice_ptr(s) = 'z';
        CHECK_EQ(((char *)ashmem_heap_base(h))[size - 1], 'z');
        ashmem_slice_unref(s);
        ashmem_heap_unref(h);

        CHECK(ashmem_slice_ptr(NULL) == NULL);
        CHECK_EQ(ashmem_slice_size(NULL), 0);
        CHECK(ashmem_slice_heap(NULL) == NULL);
        CHECK(ashmem_slice_unref(NULL) == NULL);
        CHECK_NEG(ashmem_slice_pin(NULL), EINVAL);
}

TEST(slice_holds_its_heap)
{
        ashmem_heap *h;
        ashmem_slice *s, *s2;
        void *base;

        CHECK_EQ(ashmem_heap_new("held", 2 * ps(), 0, &h), 0);
        base = ashmem_heap_base(h);
        CHECK_EQ(ashmem_slice_new(h, 100, 50, &s), 0);
        CHECK(ashmem_slice_ref(s) == s);
        s2 = s;
        ashmem_heap_unref(h);           /* the slice's reference remains */
        CHECK(mapped(base));
        CHECK_EQ(ashmem_heap_mapping_users(ashmem_slice_heap(s)), 1);
        memset(ashmem_slice_ptr(s), 'q', 50);
        ashmem_slice_unref(s2);
        CHECK(mapped(base));
        CHECK_EQ(((char *)ashmem_slice_ptr(s))[49], 'q');
        ashmem_slice_unref(s);          /* last reference: heap goes too */
        CHECK(!mapped(base));
}

TEST(heap_and_fd_pin_paths_agree)
{
        ashmem_heap *h;
        int fd;
        size_t p = ps();

        CHECK_EQ(ashmem_heap_new("pins", 4 * p, 0, &h), 0);
        fd = ashmem_heap_fd(h);
        memset(ashmem_heap_base(h), 'a', 4 * p);
        CHECK_EQ(ashmem_heap_pin_status(h, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_heap_unpin(h, p, 2 * p), 0);
        CHECK_EQ(ashmem_pin_status(fd, p, p), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, p), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, 3 * p, p), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_region(fd, p, p), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_heap_pin_status(h, p, p), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_heap_pin_status(h, 2 * p, p), ASHMEM_IS_UNPINNED);
        /* a purge through the descriptor is seen by the heap's pin */
        CHECK_EQ(ashmem_purge(fd), 1);
        CHECK_EQ(((char *)ashmem_heap_base(h))[2 * p], 0);
        CHECK_EQ(((char *)ashmem_heap_base(h))[p], 'a');
        CHECK_EQ(ashmem_heap_pin(h, 2 * p, p), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_heap_pin(h, 2 * p, p), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        /* the range rules of the descriptor calls */
        CHECK_NEG(ashmem_heap_pin(h, 1, p), EINVAL);
        CHECK_NEG(ashmem_heap_unpin(h, 0, p + 1), EINVAL);
        CHECK_NEG(ashmem_heap_pin_status(h, 5 * p, 0), EINVAL);
        CHECK_NEG(ashmem_heap_unpin(h, 2 * p, 3 * p), EINVAL);
        CHECK_NEG(ashmem_heap_unpin(h, p, SIZE_MAX / p * p), EINVAL);
        CHECK_NEG(ashmem_heap_pin(h, SIZE_MAX / p * p, p), EINVAL);
        CHECK_NEG(ashmem_heap_pin(NULL, 0, 0), EINVAL);
        CHECK_EQ(ashmem_heap_unpin(h, 4 * p, 0), 0);    /* empty, at the end */
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        ashmem_heap_unref(h);
}

TEST(heap_pin_state_shared_with_child)
{
        ashmem_heap *h;
        int status;
        pid_t pid;

        CHECK_EQ(ashmem_heap_new("forked", 2 * ps(), 0, &h), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                ashmem_heap *c;
                int r = ashmem_heap_adopt(ashmem_heap_fd(h), 0, &c);
                if (r == 0)
                        r = ashmem_heap_unpin(c, ps(), ps());
                _exit(r == 0 ? 0 : 1);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ(ashmem_heap_pin_status(h, ps(), ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_heap_pin_status(h, 0, ps()), ASHMEM_IS_PINNED);
        ashmem_heap_unref(h);
}

TEST(slice_pins_the_pages_it_touches)
{
        ashmem_heap *h;
        ashmem_slice *s, *t;
        size_t p = ps();
        int fd;

        CHECK_EQ(ashmem_heap_new("slicepin", 4 * p + 7, 0, &h), 0);
        fd = ashmem_heap_fd(h);
        /* bytes [p+10, 2p+10): pages 1 and 2 */
        CHECK_EQ(ashmem_slice_new(h, p + 10, p, &s), 0);
        CHECK_EQ(ashmem_slice_pin_status(s), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_slice_unpin(s), 0);
        CHECK_EQ(ashmem_slice_pin_status(s), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 0, p), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(fd, p, p), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 2 * p, p), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 3 * p, 0), ASHMEM_IS_PINNED);
        /* the last, partial page */
        CHECK_EQ(ashmem_slice_new(h, 4 * p + 6, 1, &t), 0);
        CHECK_EQ(ashmem_slice_unpin(t), 0);
        CHECK_EQ(ashmem_pin_status(fd, 4 * p, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_pin_status(fd, 3 * p, p), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_purge(fd), 3);
        CHECK_EQ(ashmem_slice_pin(t), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_slice_pin(s), ASHMEM_WAS_PURGED);
        CHECK_EQ(ashmem_slice_pin(s), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        ashmem_slice_unref(t);
        ashmem_slice_unref(s);
        ashmem_heap_unref(h);
}

TEST(foreign_memfd)
{
        ashmem_heap *h, *r;
        int fd = memfd_create("foreign", MFD_CLOEXEC), ro;
        size_t p = ps();

        CHECK(fd >= 0);
        CHECK(ftruncate(fd, (off_t)(2 * p)) == 0);
        CHECK_EQ(ashmem_heap_adopt(fd, 0, &h), 0);
        CHECK_EQ(ashmem_heap_size(h), 2 * p);
        CHECK_EQ(ashmem_heap_unpin(h, 0, p), 0);
        CHECK_EQ(ashmem_heap_pin_status(h, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_heap_pin(h, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_NEG(ashmem_heap_pin(h, 1, 0), EINVAL);
        CHECK_NEG(ashmem_heap_pin_status(h, 0, 3 * p), EINVAL);
        ro = reopen(fd, O_RDONLY);
        CHECK_EQ(ashmem_heap_adopt(ro, ASHMEM_HEAP_READ_ONLY, &r), 0);
        CHECK_NEG(ashmem_heap_pin(r, 0, 0), EPERM);
        CHECK_NEG(ashmem_heap_unpin(r, 0, 0), EPERM);
        CHECK_EQ(ashmem_heap_pin_status(r, 0, 0), ASHMEM_IS_PINNED);
        /* the same answers as the descriptor calls */
        CHECK_ERRNO(ashmem_pin_region(ro, 0, 0), EPERM);
        CHECK_EQ(ashmem_pin_status(ro, 0, 0), ASHMEM_IS_PINNED);
        close(ro);
        ashmem_heap_unref(r);
        ashmem_heap_unref(h);
        close(fd);
}

/* Passing descriptors from a child that made the region: the test process
 * then has no pin state for it until it attaches the control descriptor. */
static void send_fds(int sock, const int *fds, int n)
{
        char c = 0, buf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
        struct iovec iov = { &c, 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
        if (sendmsg(sock, &m, 0) != 1)
                _exit(3);
}

static void recv_fds(int sock, int *fds, int n)
{
        char c, buf[CMSG_SPACE(2 * sizeof(int))];
        struct iovec iov = { &c, 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = buf, .msg_controllen = sizeof(buf) };
        struct cmsghdr *cm;

        CHECK(recvmsg(sock, &m, MSG_CMSG_CLOEXEC) == 1);
        cm = CMSG_FIRSTHDR(&m);
        CHECK(cm && cm->cmsg_type == SCM_RIGHTS);
        CHECK_EQ(cm->cmsg_len, CMSG_LEN(n * sizeof(int)));
        memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
}

struct maker { int sock; int read_only; };

static void make_and_send(void *p)
{
        struct maker *mk = p;
        int fds[2], fd = ashmem_create_region("sent", 2 * ps());

        if (fd < 0 || ashmem_unpin_region(fd, 0, ps()) < 0 ||
            ashmem_get_control(fd, &fds[1]) < 0)
                _exit(2);
        fds[0] = fd;
        if (mk->read_only) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                fds[0] = open(path, O_RDONLY | O_CLOEXEC);
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[1]);
                fds[1] = open(path, O_RDONLY | O_CLOEXEC);
                if (fds[0] < 0 || fds[1] < 0)
                        _exit(2);
        }
        send_fds(mk->sock, fds, 2);
}

static void receive_region(int read_only, int fds[2])
{
        int sv[2], status;
        struct maker mk = { .read_only = read_only };

        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        mk.sock = sv[1];
        status = t_in_child(make_and_send, &mk);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        recv_fds(sv[0], fds, 2);
        close(sv[0]);
        close(sv[1]);
}

TEST(control_attached_after_the_heap)
{
        ashmem_heap *h;
        int fds[2];

        receive_region(0, fds);
        CHECK_EQ(ashmem_heap_adopt(fds[0], 0, &h), 0);
        /* no pin state yet: the foreign answers */
        CHECK_EQ(ashmem_heap_pin_status(h, 0, ps()), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_set_control(fds[0], fds[1]), 0);
        /* now the maker's unpin shows */
        CHECK_EQ(ashmem_heap_pin_status(h, 0, ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_heap_pin(h, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(fds[0], 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_heap_unpin(h, ps(), ps()), 0);
        CHECK_EQ(ashmem_pin_status(fds[0], ps(), ps()), ASHMEM_IS_UNPINNED);
        close(fds[1]);
        close(fds[0]);
        ashmem_heap_unref(h);
}

TEST(read_only_control_cannot_pin)
{
        ashmem_heap *h, *w;
        int fds[2];

        receive_region(1, fds);
        CHECK_EQ(ashmem_set_control(fds[0], fds[1]), 0);
        CHECK_NEG(ashmem_heap_adopt(fds[0], 0, &w), EACCES);
        CHECK_EQ(ashmem_heap_adopt(fds[0], ASHMEM_HEAP_READ_ONLY, &h), 0);
        CHECK_EQ(ashmem_heap_pin_status(h, 0, ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_heap_pin_status(h, ps(), ps()), ASHMEM_IS_PINNED);
        CHECK_NEG(ashmem_heap_pin(h, 0, ps()), EPERM);
        CHECK_NEG(ashmem_heap_unpin(h, ps(), ps()), EPERM);
        CHECK_EQ(ashmem_heap_pin_status(h, 0, ps()), ASHMEM_IS_UNPINNED);
        CHECK_ERRNO(ashmem_pin_region(fds[0], 0, ps()), EPERM);
        CHECK(segfaults(ashmem_heap_base(h)));
        close(fds[1]);
        close(fds[0]);
        ashmem_heap_unref(h);
}

TEST(constructor_errors)
{
        ashmem_heap *h = NULL;
        int pfd[2], fd;
        char name[ASHMEM_NAME_LEN];

        CHECK_NEG(ashmem_heap_new("x", 0, 0, &h), EINVAL);
        CHECK_NEG(ashmem_heap_new("x", ps(), 0x80, &h), EINVAL);
        CHECK_NEG(ashmem_heap_new("x", ps(), 0, NULL), EINVAL);
        CHECK_NEG(ashmem_heap_adopt(-1, 0, &h), EBADF);
        CHECK_NEG(ashmem_heap_adopt(1000000, 0, &h), EBADF);
        CHECK(pipe2(pfd, O_CLOEXEC) == 0);
        CHECK_NEG(ashmem_heap_adopt(pfd[0], 0, &h), ENOTTY);
        close(pfd[0]);
        close(pfd[1]);
        fd = ashmem_create_region("x", ps());
        CHECK(fd >= 0);
        CHECK_NEG(ashmem_heap_adopt(fd, 0x80, &h), EINVAL);
        CHECK(h == NULL);
        errno = 1234;
        CHECK_EQ(ashmem_heap_adopt(fd, 0, &h), 0);
        CHECK_EQ(errno, 1234);
        close(fd);
        CHECK_EQ(ashmem_heap_name(h, name, sizeof(name)), 1);
        CHECK(strcmp(name, "x") == 0);
        CHECK_NEG(ashmem_heap_name(h, name, 1), ERANGE);
        CHECK_NEG(ashmem_heap_name(h, NULL, 10), EINVAL);
        CHECK_NEG(ashmem_heap_fd(NULL), EINVAL);
        CHECK(ashmem_heap_base(NULL) == NULL);
        CHECK_EQ(ashmem_heap_size(NULL), 0);
        CHECK_NEG(ashmem_heap_mapping_users(NULL), EINVAL);
        ashmem_heap_unref(h);
}

TEST(names)
{
        ashmem_heap *h;
        char name[ASHMEM_NAME_LEN], big[400];

        CHECK_EQ(ashmem_heap_new(NULL, ps(), 0, &h), 0);
        CHECK_EQ(ashmem_heap_name(h, name, sizeof(name)), 4);
        CHECK(strcmp(name, "none") == 0);
        ashmem_heap_unref(h);
        memset(big, 'n', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        CHECK_NEG(ashmem_heap_new(big, ps(), 0, &h), EINVAL);
        big[249] = 0;
        CHECK_EQ(ashmem_heap_new(big, ps(), 0, &h), 0);
        CHECK_EQ(ashmem_heap_name(h, name, sizeof(name)), 249);
        ashmem_heap_unref(h);
}
