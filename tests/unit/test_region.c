/* SPDX-License-Identifier: MIT */
/*
 * Region semantics, everything but pinning (which test_pin.c covers):
 * shared data across mappings and fork, the fd as a file, the protection
 * mask and its kernel enforcement, the fixed size, names, bad input,
 * close-on-exec, and the two error conventions.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

static int create(const char *name, size_t size)
{
        int fd = ashmem_create_region(name, size);
        if (fd < 0)
                t_fail(__FILE__, __LINE__, "ashmem_create_region(%s, %zu): %m",
                       name ? name : "NULL", size);
        return fd;
}

static void *map(int fd, int prot, size_t len)
{
        void *m = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                t_fail(__FILE__, __LINE__, "mmap: %m");
        return m;
}

static void wait_ok(pid_t p)
{
        int status;
        while (waitpid(p, &status, 0) < 0)
                if (errno != EINTR)
                        t_fail(__FILE__, __LINE__, "waitpid: %m");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                t_fail(__FILE__, __LINE__, "child failed (status 0x%x)", status);
}

#define CHILD_OK(fn, arg) do {                                          \
                int s_ = t_in_child((fn), (arg));                       \
                if (!WIFEXITED(s_) || WEXITSTATUS(s_) != 0)             \
                        t_fail(__FILE__, __LINE__, "child %s failed (status 0x%x)", #fn, s_); \
        } while (0)

/* ------------------------------------------------------------ shared data */

TEST(two_mappings_see_the_same_data)
{
        size_t len = 3 * ps() + 100;
        int fd = create("two-maps", len), fd2;
        char *a = map(fd, PROT_READ | PROT_WRITE, len);
        char *b = map(fd, PROT_READ | PROT_WRITE, len);
        char *c;

        CHECK(a != b);
        for (size_t i = 0; i < len; i++)
                CHECK_EQ(b[i], 0);      /* a new region is zero-filled */
        for (size_t i = 0; i < len; i++)
                a[i] = (char)(i * 7 + 1);
        for (size_t i = 0; i < len; i++)
                if (b[i] != (char)(i * 7 + 1))
                        t_fail(__FILE__, __LINE__, "byte %zu differs", i);
        b[len - 1] = 'z';
        CHECK_EQ(a[len - 1], 'z');

        /* a duplicated descriptor and the library's map give the same data */
        fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        CHECK(fd2 >= 0);
        CHECK_EQ(ashmem_map(fd2, PROT_READ | PROT_WRITE, ps(), 0, (void **)&c), 0);
        CHECK_EQ(c[0], a[ps()]);
        c[1] = 'y';
        CHECK_EQ(a[ps() + 1], 'y');
        CHECK_EQ(ashmem_unmap(c, len - ps()), 0);
        CHECK_EQ(munmap(a, len), 0);
        CHECK_EQ(munmap(b, len), 0);
        close(fd2);
        close(fd);
}

struct shared { int fd; char *m; size_t len; };

static void child_sees_and_changes(void *arg)
{
        struct shared *s = arg;
        char name[ASHMEM_NAME_LEN];

        CHECK_EQ(ashmem_valid(s->fd), 1);
        CHECK_EQ(ashmem_get_size_region(s->fd), (long long)s->len);
        CHECK_EQ(ashmem_get_name(s->fd, name, sizeof(name)), 4);
        CHECK(strcmp(name, "fork") == 0);
        for (size_t i = 0; i < s->len; i++)
                if (s->m[i] != 'p')
                        t_fail(__FILE__, __LINE__, "child: byte %zu is %d", i, s->m[i]);
        memset(s->m, 'c', s->len);
}

TEST(forked_child_sees_and_changes_parent_data)
{
        struct shared s = { .len = 2 * ps() + 1 };

        s.fd = create("fork", s.len);
        s.m = map(s.fd, PROT_READ | PROT_WRITE, s.len);
        memset(s.m, 'p', s.len);
        CHILD_OK(child_sees_and_changes, &s);
        for (size_t i = 0; i < s.len; i++)
                if (s.m[i] != 'c')
                        t_fail(__FILE__, __LINE__, "parent: byte %zu is %d", i, s.m[i]);
        munmap(s.m, s.len);
        close(s.fd);
}

#define NREG 16
struct many { int fd[NREG]; char *m[NREG]; size_t len[NREG]; };

static void many_child(void *arg)
{
        struct many *s = arg;

        for (int i = 0; i < NREG; i++) {
                char want[32], name[ASHMEM_NAME_LEN];
                size_t sz;
                snprintf(want, sizeof(want), "region-%d", i);
                CHECK_EQ(ashmem_get_name(s->fd[i], name, sizeof(name)), (long long)strlen(want));
                CHECK(strcmp(name, want) == 0);
                CHECK_EQ(ashmem_get_size(s->fd[i], &sz), 0);
                CHECK_EQ(sz, s->len[i]);
                for (size_t j = 0; j < s->len[i]; j++)
                        if (s->m[i][j] != (char)('A' + i))
                                t_fail(__FILE__, __LINE__, "child: region %d byte %zu", i, j);
                /* change it through a fresh mapping of the child's own */
                char *m = map(s->fd[i], PROT_READ | PROT_WRITE, s->len[i]);
                memset(m, 'a' + i, s->len[i]);
                munmap(m, s->len[i]);
        }
}

TEST(sixteen_regions_across_a_fork)
{
        struct many s;

        for (int i = 0; i < NREG; i++) {
                char name[32];
                snprintf(name, sizeof(name), "region-%d", i);
                s.len[i] = (size_t)(i + 1) * ps() - (size_t)i;  /* various sizes */
                s.fd[i] = create(name, s.len[i]);
                s.m[i] = map(s.fd[i], PROT_READ | PROT_WRITE, s.len[i]);
                memset(s.m[i], 'A' + i, s.len[i]);
        }
        CHILD_OK(many_child, &s);
        for (int i = 0; i < NREG; i++) {
                for (size_t j = 0; j < s.len[i]; j++)
                        if (s.m[i][j] != (char)('a' + i))
                                t_fail(__FILE__, __LINE__, "parent: region %d byte %zu", i, j);
                munmap(s.m[i], s.len[i]);
                close(s.fd[i]);
        }
}

/* --------------------------------------------------------- fd as a file */

TEST(lseek_and_read_on_the_region_fd)
{
        size_t len = 2 * ps() + 10;
        int fd = create("seek", len);
        char *m = map(fd, PROT_READ | PROT_WRITE, len), buf[64];

        for (size_t i = 0; i < len; i++)
                m[i] = (char)('a' + i % 26);
        CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);
        CHECK_EQ(read(fd, buf, 5), 5);
        CHECK(memcmp(buf, "abcde", 5) == 0);
        CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
        CHECK_EQ(lseek(fd, 10, SEEK_CUR), 15);
        CHECK_EQ(read(fd, buf, 1), 1);
        CHECK_EQ(buf[0], 'a' + 15);
        CHECK_EQ(lseek(fd, (off_t)ps(), SEEK_SET), (long long)ps());
        CHECK_EQ(read(fd, buf, 3), 3);
        CHECK_EQ(buf[0], m[ps()]);
        CHECK_EQ(buf[2], m[ps() + 2]);
        /* SEEK_END is relative to the exact size, not the rounded one */
        CHECK_EQ(lseek(fd, 0, SEEK_END), (long long)len);
        CHECK_EQ(read(fd, buf, sizeof(buf)), 0);
        CHECK_EQ(lseek(fd, -4, SEEK_END), (long long)len - 4);
        CHECK_EQ(read(fd, buf, sizeof(buf)), 4);
        CHECK(memcmp(buf, m + len - 4, 4) == 0);
        CHECK_EQ(lseek(fd, -1, SEEK_SET), -1);
        CHECK_EQ(errno, EINVAL);
        /* writes through the fd land in the mapping */
        CHECK_EQ(pwrite(fd, "XYZ", 3, 7), 3);
        CHECK(memcmp(m + 7, "XYZ", 3) == 0);
        munmap(m, len);
        close(fd);
}

/* ------------------------------------------------------------ prot mask */

TEST(prot_mask_only_loses_bits)
{
        int fd = create("prot", ps());

        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE | PROT_EXEC);
        /* asking for what it has already is fine */
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), 0);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE | PROT_EXEC), EINVAL);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ), 0);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), EINVAL);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | PROT_EXEC), EINVAL);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ);
        /* bits that are no protection bit at all */
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ | 0x100), EINVAL);
        CHECK_ERRNO(ashmem_set_prot_region(fd, -1), EINVAL);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_NONE), 0);
        CHECK_EQ(ashmem_get_prot(fd), PROT_NONE);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ), EINVAL);
        CHECK_EQ(ashmem_get_prot(fd), PROT_NONE);
        close(fd);
}

/* The prot mask is shared: a change through one descriptor or process is
 * seen through every other. */
static void drop_exec_in_child(void *arg)
{
        int fd = *(int *)arg;
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), 0);
}

TEST(prot_mask_is_shared)
{
        int fd = create("prot-shared", ps()), fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);

        CHECK(fd2 >= 0);
        CHILD_OK(drop_exec_in_child, &fd);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE);
        CHECK_EQ(ashmem_set_prot_region(fd2, PROT_READ), 0);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ);
        close(fd2);
        close(fd);
}

/* After WRITE is dropped: no new writable shared mapping, no mprotect
 * upgrade of a mapping made since, no write(); existing writable mappings
 * keep working. */
static void check_write_refused(int fd, size_t len)
{
        void *w;
        char *r;

        errno = 0;
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        errno = 0;
        CHECK(mmap(NULL, len, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        CHECK_NEG(ashmem_map(fd, PROT_READ | PROT_WRITE, 0, 0, &w), EPERM);
        r = map(fd, PROT_READ, len);
        CHECK_ERRNO(mprotect(r, len, PROT_READ | PROT_WRITE), EACCES);
        CHECK_EQ(munmap(r, len), 0);
        CHECK_EQ(ashmem_map(fd, PROT_READ, 0, 0, (void **)&r), 0);
        CHECK_ERRNO(mprotect(r, len, PROT_READ | PROT_WRITE), EACCES);
        CHECK_EQ(ashmem_unmap(r, len), 0);
        CHECK_ERRNO(pwrite(fd, "x", 1, 0), EPERM);
}

TEST(dropping_write_refuses_later_writable_mappings)
{
        size_t len = 2 * ps();
        int fd = create("ro", len);
        char *w = map(fd, PROT_READ | PROT_WRITE, len), buf[2];

        w[0] = 'a';
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_EXEC), 0);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_EXEC);
        check_write_refused(fd, len);
        /* the mapping made before still writes, and it is the same data */
        w[1] = 'b';
        CHECK_EQ(pread(fd, buf, 2, 0), 2);
        CHECK(buf[0] == 'a' && buf[1] == 'b');
        CHECK_EQ(munmap(w, len), 0);
        close(fd);
}

struct dropw { int fd; char *w; size_t len; };

static void child_after_parent_dropped(void *arg)
{
        struct dropw *d = arg;
        check_write_refused(d->fd, d->len);
        d->w[10] = 'c';         /* the inherited writable mapping works */
}

TEST(write_dropped_by_parent_binds_the_child)
{
        struct dropw d = { .len = ps() };

        d.fd = create("ro-parent", d.len);
        d.w = map(d.fd, PROT_READ | PROT_WRITE, d.len);
        CHECK_EQ(ashmem_set_prot_region(d.fd, PROT_READ), 0);
        CHILD_OK(child_after_parent_dropped, &d);
        CHECK_EQ(d.w[10], 'c');
        munmap(d.w, d.len);
        close(d.fd);
}

static void child_drops_write(void *arg)
{
        struct dropw *d = arg;
        CHECK_EQ(ashmem_set_prot_region(d->fd, PROT_READ | PROT_EXEC), 0);
        check_write_refused(d->fd, d->len);
        d->w[20] = 'd';
}

TEST(write_dropped_by_child_binds_the_parent)
{
        struct dropw d = { .len = 3 * ps() };

        d.fd = create("ro-child", d.len);
        d.w = map(d.fd, PROT_READ | PROT_WRITE, d.len);
        CHILD_OK(child_drops_write, &d);
        CHECK_EQ(ashmem_get_prot(d.fd), PROT_READ | PROT_EXEC);
        check_write_refused(d.fd, d.len);
        CHECK_EQ(d.w[20], 'd');
        d.w[21] = 'e';
        CHECK_EQ(d.w[21], 'e');
        munmap(d.w, d.len);
        close(d.fd);
}

TEST(map_enforces_read_and_exec)
{
        size_t len = 2 * ps();
        int fd = create("map-prot", len);
        void *m;

        /* everything is allowed at first */
        CHECK_EQ(ashmem_map(fd, PROT_READ | PROT_WRITE | PROT_EXEC, 0, 0, &m), 0);
        CHECK_EQ(ashmem_unmap(m, len), 0);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_READ | PROT_WRITE), 0);
        CHECK_NEG(ashmem_map(fd, PROT_READ | PROT_EXEC, 0, 0, &m), EPERM);
        CHECK_NEG(ashmem_map(fd, PROT_EXEC, 0, 0, &m), EPERM);
        CHECK_EQ(ashmem_map(fd, PROT_READ | PROT_WRITE, 0, 0, &m), 0);
        CHECK_EQ(ashmem_unmap(m, len), 0);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_WRITE), 0);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 0, 0, &m), EPERM);
        CHECK_EQ(ashmem_set_prot_region(fd, PROT_NONE), 0);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 0, 0, &m), EPERM);
        CHECK_EQ(ashmem_map(fd, PROT_NONE, 0, 0, &m), 0);
        CHECK_EQ(ashmem_unmap(m, len), 0);
        close(fd);
}

TEST(map_range_rules)
{
        size_t len = 3 * ps() + 1;
        int fd = create("map-range", len);
        char *m, *whole;

        whole = map(fd, PROT_READ | PROT_WRITE, len);
        whole[ps() + 5] = 'q';
        CHECK_NEG(ashmem_map(fd, PROT_READ, 0, 0, NULL), EINVAL);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 1, 0, (void **)&m), EINVAL);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 4 * ps(), 0, (void **)&m), EINVAL);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 0, len + 1, (void **)&m), EINVAL);
        CHECK_NEG(ashmem_map(fd, PROT_READ, ps(), SIZE_MAX, (void **)&m), EINVAL);
        CHECK_NEG(ashmem_map(fd, 0x100, 0, 0, (void **)&m), EINVAL);
        /* an offset view */
        CHECK_EQ(ashmem_map(fd, PROT_READ, ps(), ps(), (void **)&m), 0);
        CHECK_EQ(m[5], 'q');
        CHECK_EQ(ashmem_unmap(m, ps()), 0);
        /* the partial last page can be mapped on its own */
        CHECK_EQ(ashmem_map(fd, PROT_READ | PROT_WRITE, 3 * ps(), 0, (void **)&m), 0);
        m[0] = 'l';
        CHECK_EQ(whole[3 * ps()], 'l');
        CHECK_EQ(ashmem_unmap(m, 1), 0);
        CHECK_NEG(ashmem_unmap(NULL, ps()), EINVAL);
        CHECK_NEG(ashmem_unmap(whole, 0), EINVAL);
        munmap(whole, len);
        close(fd);
}

TEST(read_only_descriptor_cannot_map_writably)
{
        size_t len = ps();
        int fd = create("rodesc", len), ro;
        char path[64], *m;
        void *w;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(ro >= 0);
        CHECK_EQ(ashmem_valid(ro), 1);
        errno = 0;
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
        CHECK_EQ(errno, EACCES);
        CHECK_NEG(ashmem_map(ro, PROT_READ | PROT_WRITE, 0, 0, &w), EACCES);
        CHECK_EQ(pwrite(fd, "hi", 2, 0), 2);
        CHECK_EQ(ashmem_map(ro, PROT_READ, 0, 0, (void **)&m), 0);
        CHECK(memcmp(m, "hi", 2) == 0);
        CHECK_ERRNO(mprotect(m, len, PROT_READ | PROT_WRITE), EACCES);
        CHECK_EQ(ashmem_unmap(m, len), 0);
        close(ro);
        close(fd);
}

/* ------------------------------------------------------------------ size */

TEST(size_is_exact_and_fixed)
{
        size_t len = 3 * ps() + 5;
        int fd = create("fixed", len);
        struct stat st;
        size_t sz = 0;

        CHECK_EQ(ashmem_get_size_region(fd), (long long)len);
        CHECK_EQ(ashmem_get_size(fd, &sz), 0);
        CHECK_EQ(sz, len);
        CHECK_ERRNO(ftruncate(fd, (off_t)len + 1), EPERM);
        CHECK_ERRNO(ftruncate(fd, (off_t)(4 * ps())), EPERM);
        CHECK_ERRNO(ftruncate(fd, (off_t)len - 1), EPERM);
        CHECK_ERRNO(ftruncate(fd, 0), EPERM);
        CHECK_ERRNO(fallocate(fd, 0, 0, (off_t)(8 * ps())), EPERM);
        CHECK_ERRNO(pwrite(fd, "x", 1, (off_t)len), EPERM);
        /* nobody can lift the seals either */
        CHECK_EQ(fcntl(fd, F_GET_SEALS) & (F_SEAL_GROW | F_SEAL_SHRINK),
                 F_SEAL_GROW | F_SEAL_SHRINK);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(st.st_size, (long long)len);
        CHECK_EQ(ashmem_get_size_region(fd), (long long)len);
        close(fd);
}

TEST(size_bounds)
{
        int fd;
        size_t sz;

        CHECK_ERRNO(ashmem_create_region("zero", 0), EINVAL);
        CHECK_ERRNO(ashmem_create_region("max", SIZE_MAX), EFBIG);
        CHECK_ERRNO(ashmem_create_region("max", SIZE_MAX - ps() + 1), EFBIG);
        CHECK_ERRNO(ashmem_create_region("max", ASHMEM_SIZE_MAX + 1), EFBIG);
        CHECK_ERRNO(ashmem_create_region(NULL, (size_t)1 << (sizeof(size_t) * 8 - 1)), EFBIG);
        fd = create("one", 1);
        CHECK_EQ(ashmem_get_size_region(fd), 1);
        close(fd);
        if (sizeof(size_t) == 4) {
                /* a 32-bit process: 1 GiB at most */
                fd = create("max", ASHMEM_SIZE_MAX);
                CHECK_EQ(ashmem_get_size(fd, &sz), 0);
                CHECK_EQ(sz, ASHMEM_SIZE_MAX);
                close(fd);
                return;
        }
        /* bigger than INT_MAX: the classic call cannot say it */
        fd = create("big", (size_t)3 << 30);
        CHECK_ERRNO(ashmem_get_size_region(fd), EOVERFLOW);
        CHECK_EQ(ashmem_get_size(fd, &sz), 0);
        CHECK_EQ(sz, (size_t)3 << 30);
        CHECK_NEG(ashmem_get_size(fd, NULL), EINVAL);
        close(fd);
        fd = create("intmax", (size_t)INT_MAX);
        CHECK_EQ(ashmem_get_size_region(fd), INT_MAX);
        close(fd);
}

/* ----------------------------------------------------------------- names */

static void check_name(int fd, const char *want)
{
        char buf[ASHMEM_NAME_LEN + 8];
        memset(buf, '#', sizeof(buf));
        CHECK_EQ(ashmem_get_name(fd, buf, sizeof(buf)), (long long)strlen(want));
        if (strcmp(buf, want) != 0)
                t_fail(__FILE__, __LINE__, "name \"%s\", expected \"%s\"", buf, want);
}

TEST(names)
{
        char longname[400], want[ASHMEM_NAME_LEN], buf[8];
        int fd;

        /* as Android's libcutils on memfd: no name is "none" */
        fd = create(NULL, ps());
        check_name(fd, "none");
        close(fd);
        fd = create("", ps());
        check_name(fd, "");
        close(fd);
        fd = create("a name with spaces (deleted)", ps());
        check_name(fd, "a name with spaces (deleted)");
        close(fd);

        /* 249 bytes, all memfd keeps: whole; 250 and more: EINVAL (the
         * kernel driver's truncation to 255 is the preload library's) */
        for (size_t i = 0; i < sizeof(longname); i++)
                longname[i] = (char)('a' + i % 26);
        longname[249] = 0;
        fd = create(longname, ps());
        check_name(fd, longname);
        close(fd);
        for (size_t n = 250; n < sizeof(longname); n += 50) {
                memset(longname, 'q', n);
                longname[n] = 0;
                CHECK_ERRNO(ashmem_create_region(longname, ps()), EINVAL);
        }
        memset(longname, 'w', 249);
        longname[249] = 0;
        memcpy(want, longname, 250);
        fd = create(longname, ps());
        check_name(fd, want);

        /* buffers */
        CHECK_NEG(ashmem_get_name(fd, buf, sizeof(buf)), ERANGE);
        CHECK_NEG(ashmem_get_name(fd, want, 249), ERANGE);
        CHECK_EQ(ashmem_get_name(fd, want, 250), 249);
        CHECK_NEG(ashmem_get_name(fd, NULL, 256), EINVAL);
        close(fd);
        fd = create("abc", ps());
        CHECK_NEG(ashmem_get_name(fd, buf, 3), ERANGE);
        CHECK_EQ(ashmem_get_name(fd, buf, 4), 3);
        CHECK(strcmp(buf, "abc") == 0);
        close(fd);
}

/* ------------------------------------------------------------- bad input */

/* Every operation on fd fails with errno e; ashmem_valid says 0. */
static void check_not_a_region(int fd, int e)
{
        char name[ASHMEM_NAME_LEN], pm[1];
        size_t sz;
        void *m;
        int c;
        ashmem_stats st;

        CHECK_EQ(ashmem_valid(fd), 0);
        CHECK_ERRNO(ashmem_set_prot_region(fd, PROT_READ), e);
        CHECK_ERRNO(ashmem_pin_region(fd, 0, 0), e);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, 0), e);
        CHECK_ERRNO(ashmem_get_size_region(fd), e);
        CHECK_NEG(ashmem_get_name(fd, name, sizeof(name)), e);
        CHECK_NEG(ashmem_get_prot(fd), e);
        CHECK_NEG(ashmem_get_size(fd, &sz), e);
        CHECK_NEG(ashmem_pin_status(fd, 0, 0), e);
        CHECK_NEG(ashmem_purge(fd), e);
        CHECK_NEG(ashmem_map(fd, PROT_READ, 0, 0, &m), e);
        CHECK_NEG(ashmem_get_stats(fd, &st), e);
        CHECK_NEG(ashmem_get_page_map(fd, pm, 0), e);
        CHECK_NEG(ashmem_get_control(fd, &c), e);
        CHECK_NEG(ashmem_set_control(fd, 0), e);
}

TEST(bad_descriptors)
{
        int fd;

        check_not_a_region(-1, EBADF);
        check_not_a_region(-12345, EBADF);
        check_not_a_region(INT_MAX, EBADF);
        check_not_a_region(1 << 20, EBADF);
        /* a closed descriptor, once a region */
        fd = create("closed", ps());
        CHECK_EQ(ashmem_valid(fd), 1);
        close(fd);
        check_not_a_region(fd, EBADF);
}

TEST(descriptors_that_are_not_regions)
{
        char path[] = "/tmp/ashmem-test-XXXXXX", shm[64];
        int fd, p[2], s[2], dir, null;

        /* a plain file with content */
        fd = mkostemp(path, O_CLOEXEC);
        CHECK(fd >= 0);
        unlink(path);
        CHECK_EQ(ftruncate(fd, (off_t)ps()), 0);
        check_not_a_region(fd, ENOTTY);
        /* its size is untouched by the attempts */
        CHECK_EQ(lseek(fd, 0, SEEK_END), (long long)ps());
        close(fd);

        /* a POSIX shared memory file: tmpfs like memfd, but not one */
        snprintf(shm, sizeof(shm), "/ashmem-test-%d", (int)getpid());
        fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        shm_unlink(shm);
        CHECK_EQ(ftruncate(fd, (off_t)ps()), 0);
        check_not_a_region(fd, ENOTTY);
        close(fd);

        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        check_not_a_region(p[0], ENOTTY);
        check_not_a_region(p[1], ENOTTY);
        close(p[0]);
        close(p[1]);

        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
        check_not_a_region(s[0], ENOTTY);
        close(s[0]);
        close(s[1]);

        dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(dir >= 0);
        check_not_a_region(dir, ENOTTY);
        close(dir);

        null = open("/dev/null", O_RDWR | O_CLOEXEC);
        CHECK(null >= 0);
        check_not_a_region(null, ENOTTY);
        close(null);
}

TEST(valid_descriptors)
{
        int fd = create("valid", ps()), dup1, ro, raw;
        char path[64];

        CHECK_EQ(ashmem_valid(fd), 1);
        dup1 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        CHECK_EQ(ashmem_valid(dup1), 1);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        CHECK_EQ(ashmem_valid(ro), 1);
        /* a memfd the library did not create is a region when sealed
         * against growing and shrinking, as Android's libcutils says:
         * unsealed, or sealed one way only, it is not */
        raw = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(raw >= 0);
        CHECK_EQ(ftruncate(raw, ps()), 0);
        CHECK_EQ(ashmem_valid(raw), 0);
        CHECK_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_GROW), 0);
        CHECK_EQ(ashmem_valid(raw), 0);
        CHECK_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        CHECK_EQ(ashmem_valid(raw), 1);
        close(raw);
        raw = memfd_create("shrink-only", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(raw >= 0);
        CHECK_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        CHECK_EQ(ashmem_valid(raw), 0);
        close(raw);
        raw = open("/dev/null", O_RDWR | O_CLOEXEC);
        CHECK(raw >= 0);
        CHECK_EQ(ashmem_valid(raw), 0);
        close(raw);
        CHECK_EQ(ashmem_valid(-1), 0);
        close(ro);
        close(dup1);
        close(fd);
        CHECK_EQ(ashmem_valid(fd), 0);
        CHECK(strcmp(ashmem_driver_name(), "memfd") == 0);
}

/* ------------------------------------------------------ error conventions */

TEST(classic_calls_set_errno)
{
        int fd = create("classic", ps());

        errno = 0;
        CHECK_EQ(ashmem_pin_region(-1, 0, 0), -1);
        CHECK_EQ(errno, EBADF);
        errno = 0;
        CHECK_EQ(ashmem_unpin_region(fd, 1, 0), -1);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK_EQ(ashmem_set_prot_region(fd, 0x100), -1);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK_EQ(ashmem_get_size_region(-1), -1);
        CHECK_EQ(errno, EBADF);
        errno = 0;
        CHECK_EQ(ashmem_create_region("x", 0), -1);
        CHECK_EQ(errno, EINVAL);
        /* success does not report -1 */
        CHECK_EQ(ashmem_get_size_region(fd), (long long)ps());
        CHECK_EQ(ashmem_valid(-1), 0);
        close(fd);
}

#define UNTOUCHED(call, e) do {                                         \
                errno = 4242;                                           \
                CHECK_NEG(call, e);                                     \
                CHECK_EQ(errno, 4242);                                  \
        } while (0)

TEST(native_calls_leave_errno_alone)
{
        int fd = create("native", ps()), c;
        char name[ASHMEM_NAME_LEN], pm[2];
        size_t sz;
        void *m;
        ashmem_stats st;

        UNTOUCHED(ashmem_get_name(-1, name, sizeof(name)), EBADF);
        UNTOUCHED(ashmem_get_name(fd, name, 1), ERANGE);
        UNTOUCHED(ashmem_get_prot(-1), EBADF);
        UNTOUCHED(ashmem_get_size(-1, &sz), EBADF);
        UNTOUCHED(ashmem_pin_status(fd, 1, 0), EINVAL);
        UNTOUCHED(ashmem_pin_status(-1, 0, 0), EBADF);
        UNTOUCHED(ashmem_purge(-1), EBADF);
        UNTOUCHED(ashmem_map(fd, PROT_READ, 1, 0, &m), EINVAL);
        UNTOUCHED(ashmem_unmap(NULL, 1), EINVAL);
        UNTOUCHED(ashmem_get_control(-1, &c), EBADF);
        UNTOUCHED(ashmem_set_control(fd, -1), EBADF);
        UNTOUCHED(ashmem_get_stats(fd, NULL), EINVAL);
        UNTOUCHED(ashmem_get_page_map(fd, pm, 2), EINVAL);
        UNTOUCHED(ashmem_get_stats(-1, &st), EBADF);
        /* and on success */
        errno = 4242;
        CHECK_EQ(ashmem_get_size(fd, &sz), 0);
        CHECK_EQ(ashmem_get_prot(fd), PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(ashmem_get_name(fd, name, sizeof(name)), 6);
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(errno, 4242);
        close(fd);
}

/* ---------------------------------------------------------- close-on-exec */

/* Descriptors of this process whose /proc link starts with prefix; each
 * must be close-on-exec. Returns how many. */
static int cloexec_fds_like(const char *prefix)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        CHECK(d != NULL);
        while ((de = readdir(d))) {
                char path[64], link[512];
                ssize_t l;
                int fd = atoi(de->d_name), fl;
                if (de->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                l = readlink(path, link, sizeof(link) - 1);
                if (l < 0)
                        continue;
                link[l] = 0;
                if (strncmp(link, prefix, strlen(prefix)) != 0)
                        continue;
                fl = fcntl(fd, F_GETFD);
                CHECK(fl >= 0);
                if (!(fl & FD_CLOEXEC))
                        t_fail(__FILE__, __LINE__, "fd %d (%s) is not close-on-exec", fd, link);
                n++;
        }
        closedir(d);
        return n;
}

TEST(descriptors_are_close_on_exec)
{
        int fd = create("cloexec", ps()), fd2 = create(NULL, 2 * ps()), c;
        int p[2], status;
        char out[4096];
        size_t got = 0;
        ssize_t n;
        pid_t pid;

        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK(fcntl(fd2, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(cloexec_fds_like("/memfd:cloexec"), 1);
        /* the library's control descriptors: one per region at least */
        CHECK(cloexec_fds_like("/memfd:ashmem-control") >= 2);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC);
        close(c);

        /* and an exec'd program really inherits none of them */
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                if (dup2(p[1], 1) < 0)
                        _exit(127);
                execl("/bin/ls", "ls", "-l", "/proc/self/fd/", (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        while ((n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0)
                got += (size_t)n;
        out[got] = 0;
        close(p[0]);
        while (waitpid(pid, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(strstr(out, "/proc/") != NULL);   /* ls's own directory fd */
        if (strstr(out, "memfd:"))
                t_fail(__FILE__, __LINE__, "exec'd program inherited:\n%s", out);
        close(fd2);
        close(fd);
}

/* The library does not print: a run of calls, good and bad, writes nothing
 * to stdout or stderr. */
TEST(library_never_prints)
{
        int p[2], saved_out, saved_err, fd;
        char buf[64];
        void *m;

        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        saved_out = fcntl(1, F_DUPFD_CLOEXEC, 0);
        saved_err = fcntl(2, F_DUPFD_CLOEXEC, 0);
        CHECK(saved_out >= 0 && saved_err >= 0);
        CHECK(dup2(p[1], 1) == 1 && dup2(p[1], 2) == 2);
        fd = ashmem_create_region("quiet", ps());
        (void)ashmem_create_region("quiet", 0);
        (void)ashmem_set_prot_region(fd, 0x100);
        (void)ashmem_pin_region(fd, 1, 0);
        (void)ashmem_unpin_region(-1, 0, 0);
        (void)ashmem_map(fd, PROT_READ, 99 * ps(), 0, &m);
        (void)ashmem_purge(fd);
        close(fd);
        fflush(NULL);
        CHECK(dup2(saved_out, 1) == 1 && dup2(saved_err, 2) == 2);
        close(saved_out);
        close(saved_err);
        close(p[1]);
        /* every write end is closed: end of file, and no byte before it */
        CHECK_EQ(read(p[0], buf, sizeof(buf)), 0);
        close(p[0]);
        CHECK(fd >= 0);
}

/* A fork child that exits without closing anything leaves the parent's
 * region intact (the child's control table is its own copy). */
static void child_exits(void *arg)
{
        int fd = *(int *)arg;
        CHECK(ashmem_collect() >= 0);
        close(fd);
        CHECK(ashmem_collect() >= 0);
}

TEST(child_exit_leaves_parent_region_alone)
{
        int fd = create("survivor", ps());
        char name[ASHMEM_NAME_LEN];
        ashmem_stats st;
        pid_t p;

        CHILD_OK(child_exits, &fd);
        p = fork();
        CHECK(p >= 0);
        if (p == 0)
                _exit(0);
        wait_ok(p);
        CHECK_EQ(ashmem_get_name(fd, name, sizeof(name)), 8);
        CHECK_EQ(ashmem_get_stats(fd, &st), 0);
        CHECK_EQ(st.shared_state, 1);
        CHECK_EQ(st.writable_state, 1);
        close(fd);
}
