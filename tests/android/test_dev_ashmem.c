/* SPDX-License-Identifier: MIT */
/*
 * The ashmem kernel driver's interface, as a program that knows nothing of
 * libashmem uses it: open("/dev/ashmem"), the ioctls of the uapi, mmap,
 * mprotect. Runs under libashmem-preload.so (preloaded.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload/uapi.h"
#include "tests/unit/t.h"
#include "preloaded.h"

extern char **environ;

static long ps(void) { return sysconf(_SC_PAGESIZE); }

static int dev_open(void)
{
        int fd = open("/dev/ashmem", O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0);
        return fd;
}

/* a region named name of size bytes, not mapped yet */
static int region(const char *name, size_t size)
{
        int fd = dev_open();
        if (name)
                CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, name), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, size), 0);
        return fd;
}

static void *map(int fd, size_t len, int prot)
{
        void *m = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        return m;
}

static int pin_op(int fd, unsigned long op, uint32_t off, uint32_t len)
{
        struct ashmem_pin p = { off, len };
        return ioctl(fd, op, &p);
}

static int is_root_admin(void)
{
        return geteuid() == 0;
}

TEST(open_gives_a_region_descriptor)
{
        char path[64] = "/dev/ashmem", id[64] = "";
        int fd = open("/dev/ashmem", O_RDWR), fd2, idfd;
        ssize_t n;

        CHECK(fd >= 0);
        CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        close(fd);
        fd = openat(AT_FDCWD, "/dev/ashmem", O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE, NULL), 0);
        close(fd);
        /* "/dev/ashmem" followed by this boot's id, as newer Android opens */
        idfd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        CHECK(idfd >= 0);
        n = read(idfd, id, sizeof(id) - 1);
        close(idfd);
        CHECK(n > 1);
        id[strcspn(id, "\n")] = 0;
        strcat(path, id);
        fd2 = open(path, O_RDWR | O_CLOEXEC);
        CHECK(fd2 >= 0);
        CHECK_EQ(ioctl(fd2, ASHMEM_GET_PROT_MASK), PROT_READ | PROT_WRITE | PROT_EXEC);
        close(fd2);
        /* another suffix is just a file that does not exist */
        CHECK_ERRNO(open("/dev/ashmem-not-this-boot", O_RDWR | O_CLOEXEC), ENOENT);
}

TEST(defaults_before_the_first_mmap)
{
        int fd = dev_open();
        char name[ASHMEM_NAME_LEN];
        unsigned long id;

        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE, NULL), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_PROT_MASK), PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, name), 0);
        CHECK(strcmp(name, ASHMEM_NAME_DEF) == 0);
        /* no backing file yet: pin and the file id are EINVAL */
        CHECK_ERRNO(pin_op(fd, ASHMEM_PIN, 0, 0), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_UNPIN, 0, 0), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, 0), EINVAL);
        CHECK_ERRNO(ioctl(fd, ASHMEM_GET_FILE_ID, &id), EINVAL);
        /* no size: no mapping */
        CHECK(mmap(NULL, (size_t)ps(), PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        close(fd);
}

TEST(name_rules)
{
        char want[400], got[ASHMEM_NAME_LEN + 8];
        int fd = dev_open();
        void *m;

        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, "first"), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, "second"), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, got), 0);
        CHECK(strcmp(got, "second") == 0);
        /* longer than the driver keeps: cut to 255 bytes */
        memset(want, 'n', sizeof(want) - 1);
        want[sizeof(want) - 1] = 0;
        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, want), 0);
        memset(got, 'x', sizeof(got));
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, got), 0);
        CHECK_EQ(strlen(got), ASHMEM_NAME_LEN - 1);
        CHECK(strncmp(got, want, ASHMEM_NAME_LEN - 1) == 0);
        /* bad pointers */
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_NAME, NULL), EFAULT);
        CHECK_ERRNO(ioctl(fd, ASHMEM_GET_NAME, NULL), EFAULT);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)ps()), 0);
        m = map(fd, (size_t)ps(), PROT_READ);
        /* fixed at the first mmap, and kept whole (255 bytes) */
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_NAME, "late"), EINVAL);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, got), 0);
        CHECK_EQ(strlen(got), ASHMEM_NAME_LEN - 1);
        CHECK(strncmp(got, want, ASHMEM_NAME_LEN - 1) == 0);
        munmap(m, (size_t)ps());
        close(fd);
        /* an unnamed region keeps the driver's default name when mapped */
        fd = region(NULL, 100);
        m = map(fd, 100, PROT_READ);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, got), 0);
        CHECK(strcmp(got, ASHMEM_NAME_DEF) == 0);
        munmap(m, 100);
        close(fd);
}

TEST(size_rules)
{
        int fd = dev_open();
        char *m;

        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)3 * ps()), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)ps() + 10), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE, NULL), ps() + 10);
        /* larger than the page-rounded size: EINVAL */
        CHECK(mmap(NULL, (size_t)ps() * 3, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        m = mmap(NULL, (size_t)ps() * 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        m[0] = 'a';
        m[ps() + 9] = 'z';
        /* fixed now */
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_SIZE, (size_t)ps()), EINVAL);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE, NULL), ps() + 10);
        CHECK(mmap(NULL, (size_t)ps() * 3, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        munmap(m, (size_t)ps() * 2);
        close(fd);
}

TEST(prot_mask_against_mmap_and_mprotect)
{
        size_t len = (size_t)ps();
        int fd = region("prot", len);
        void *m;

        /* bits can only be removed */
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_WRITE), 0);
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_EXEC), EINVAL);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_PROT_MASK), PROT_READ | PROT_WRITE);
        /* exec is refused at mmap (EPERM) and at mprotect (EACCES) */
        CHECK(mmap(NULL, len, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        m = map(fd, len, PROT_READ | PROT_WRITE);
        CHECK_ERRNO(mprotect(m, len, PROT_READ | PROT_EXEC), EACCES);
        CHECK_EQ(mprotect(m, len, PROT_READ), 0);
        CHECK_EQ(mprotect(m, len, PROT_READ | PROT_WRITE), 0);
        ((char *)m)[0] = 1;
        /* write dropped after mapping: new writable mappings are refused,
         * the existing one keeps working */
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_PROT_MASK), PROT_READ);
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        ((char *)m)[1] = 2;
        munmap(m, len);
        m = map(fd, len, PROT_READ);
        CHECK_EQ(((char *)m)[1], 2);
        CHECK_ERRNO(mprotect(m, len, PROT_READ | PROT_WRITE), EACCES);
        munmap(m, len);
        /* read dropped: even a read mapping is refused */
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, 0), 0);
        CHECK(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        m = map(fd, len, PROT_NONE);
        CHECK_ERRNO(mprotect(m, len, PROT_READ), EACCES);
        munmap(m, len);
        close(fd);
}

TEST(prot_mask_set_before_the_first_mmap)
{
        size_t len = (size_t)ps();
        int fd = region("ro", len);
        void *m;

        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ), 0);
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        m = map(fd, len, PROT_READ);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_PROT_MASK), PROT_READ);
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_WRITE), EINVAL);
        /* an mprotect over a mapping unmapped since is not refused */
        munmap(m, len);
        m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(m != MAP_FAILED);
        CHECK_EQ(mprotect(m, len, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
        munmap(m, len);
        close(fd);
}

/* The driver checks size and mask before it makes the region: a refused
 * first mmap leaves the name and size open to change. */
TEST(refused_first_mmap_fixes_nothing)
{
        size_t len = (size_t)ps();
        int fd = region("before", len);
        char name[ASHMEM_NAME_LEN] = "";
        char *m;

        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ), 0);
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        CHECK(mmap(NULL, len, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        /* a mapping of no bytes is the kernel's EINVAL before the driver's */
        CHECK(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, 2 * len), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, "after"), 0);
        m = map(fd, 2 * len, PROT_READ);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE), (int)(2 * len));
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, name), 0);
        CHECK(strcmp(name, "after") == 0);
        CHECK_EQ(m[2 * len - 1], 0);
        munmap(m, 2 * len);
        close(fd);
}

/* The numbers of <linux/ashmem.h>, and the kernel reads a request as a
 * 32-bit number: code that keeps requests in an int (bionic declares
 * ioctl(int, int, ...)) passes the read requests sign-extended. */
TEST(request_numbers_as_the_kernel_reads_them)
{
        size_t len = (size_t)ps();
        int fd = region("numbers", len);
        char name[ASHMEM_NAME_LEN] = "";
        unsigned long id = 0, wide;
        struct stat st;
        void *m;

        CHECK_EQ(ASHMEM_SET_NAME, 0x41007701UL);
        CHECK_EQ(ASHMEM_GET_NAME, 0x81007702UL);
        CHECK_EQ(ASHMEM_GET_SIZE, 0x7704UL);
        CHECK_EQ(ASHMEM_GET_PROT_MASK, 0x7706UL);
        CHECK_EQ(ASHMEM_PIN, 0x40087707UL);
        CHECK_EQ(ASHMEM_UNPIN, 0x40087708UL);
        CHECK_EQ(ASHMEM_GET_PIN_STATUS, 0x7709UL);
        CHECK_EQ(ASHMEM_PURGE_ALL_CACHES, 0x770aUL);
        if (sizeof(long) == 8) {
                CHECK_EQ(ASHMEM_SET_SIZE, 0x40087703UL);
                CHECK_EQ(ASHMEM_SET_PROT_MASK, 0x40087705UL);
                CHECK_EQ(ASHMEM_GET_FILE_ID, 0x8008770bUL);
        } else {
                CHECK_EQ(ASHMEM_SET_SIZE, 0x40047703UL);
                CHECK_EQ(ASHMEM_SET_PROT_MASK, 0x40047705UL);
                CHECK_EQ(ASHMEM_GET_FILE_ID, 0x8004770bUL);
        }
        wide = (unsigned long)(long)(int)ASHMEM_GET_NAME;
        CHECK_EQ(ioctl(fd, wide, name), 0);
        CHECK(strcmp(name, "numbers") == 0);
        m = map(fd, len, PROT_READ);
        wide = (unsigned long)(long)(int)ASHMEM_GET_FILE_ID;
        CHECK_EQ(ioctl(fd, wide, &id), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(id, (unsigned long)st.st_ino);
        if (sizeof(long) == 8) {
                /* bits above the 32 the kernel reads change nothing */
                wide = ASHMEM_GET_SIZE | (unsigned long)(~0ULL << 16 << 16);
                CHECK_EQ(ioctl(fd, wide), (int)len);
        }
        munmap(m, len);
        close(fd);
}

/* What the driver and the C library give together: the pin argument is
 * read before anything else (EFAULT); a size past INT_MAX comes back as
 * the int it fits in, not as an error. */
TEST(driver_edges_before_the_first_mmap)
{
        int fd = dev_open();

        CHECK_ERRNO(ioctl(fd, ASHMEM_PIN, NULL), EFAULT);
        CHECK_ERRNO(ioctl(fd, ASHMEM_GET_PIN_STATUS, NULL), EFAULT);
        CHECK_ERRNO(pin_op(fd, ASHMEM_PIN, 0, 0), EINVAL);
        if (sizeof(size_t) == 8) {
                size_t big = (size_t)3 << 30;
                CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, big), 0);
                errno = 0;
                CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE), (int)(unsigned)big);
                CHECK_EQ(errno, 0);
        }
        close(fd);
}

TEST(pin_unpin_status_and_their_errors)
{
        uint32_t p = (uint32_t)ps();
        int fd = region("pins", 4 * (size_t)p - 100);   /* 4 pages, rounded */
        void *m = map(fd, 4 * (size_t)p, PROT_READ | PROT_WRITE);

        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(pin_op(fd, ASHMEM_UNPIN, p, p), 0);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, p, p), ASHMEM_IS_UNPINNED);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, p), ASHMEM_IS_PINNED);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_EQ(pin_op(fd, ASHMEM_PIN, p, p), ASHMEM_NOT_PURGED);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, 0), ASHMEM_IS_PINNED);
        /* len 0: to the end of the page-rounded size */
        CHECK_EQ(pin_op(fd, ASHMEM_UNPIN, 2 * p, 0), 0);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 3 * p, p), ASHMEM_IS_UNPINNED);
        CHECK_EQ(pin_op(fd, ASHMEM_PIN, 0, 0), ASHMEM_NOT_PURGED);
        /* unaligned, past the end, overflowing: EINVAL */
        CHECK_ERRNO(pin_op(fd, ASHMEM_PIN, 1, p), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_UNPIN, 0, p + 1), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_PIN, 0, 5 * p), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_GET_PIN_STATUS, 4 * p, p), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_UNPIN, 5 * p, 0), EINVAL);
        CHECK_ERRNO(pin_op(fd, ASHMEM_PIN, p, UINT32_MAX - p + 1), EINVAL);
        CHECK_ERRNO(ioctl(fd, ASHMEM_PIN, NULL), EFAULT);
        munmap(m, 4 * (size_t)p);
        close(fd);
}

TEST(purge_all_caches)
{
        uint32_t p = (uint32_t)ps();
        int fd = region("purge", 2 * (size_t)p);
        char *m = map(fd, 2 * (size_t)p, PROT_READ | PROT_WRITE);

        memset(m, 'x', 2 * (size_t)p);
        CHECK_EQ(pin_op(fd, ASHMEM_UNPIN, p, p), 0);
        if (!is_root_admin()) {
                CHECK_ERRNO(ioctl(fd, ASHMEM_PURGE_ALL_CACHES), EPERM);
        } else {
                CHECK(ioctl(fd, ASHMEM_PURGE_ALL_CACHES) >= 1);
                /* the pinned page kept its data, the purged one reads zero */
                CHECK_EQ(pin_op(fd, ASHMEM_PIN, p, p), ASHMEM_WAS_PURGED);
                CHECK_EQ(m[0], 'x');
                CHECK_EQ(m[p], 0);
                CHECK_EQ(pin_op(fd, ASHMEM_PIN, p, p), ASHMEM_NOT_PURGED);
        }
        munmap(m, 2 * (size_t)p);
        close(fd);
}

TEST(file_id_is_the_inode)
{
        int fd = region("id", 10);
        void *m = map(fd, 10, PROT_READ);
        unsigned long id = 0;
        struct stat st;

        CHECK_EQ(ioctl(fd, ASHMEM_GET_FILE_ID, &id), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(id, st.st_ino);
        CHECK_ERRNO(ioctl(fd, ASHMEM_GET_FILE_ID, NULL), EFAULT);
        munmap(m, 10);
        close(fd);
}

TEST(other_ioctls_pass_through)
{
        int pfd[2], n = -1, fd = region("x", 10);

        CHECK_EQ(pipe2(pfd, O_CLOEXEC), 0);
        CHECK_EQ(write(pfd[1], "abc", 3), 3);
        CHECK_EQ(ioctl(pfd[0], FIONREAD, &n), 0);
        CHECK_EQ(n, 3);
        /* an ashmem request on something that is no region: the kernel's
         * answer */
        CHECK_ERRNO(ioctl(pfd[0], ASHMEM_GET_SIZE), ENOTTY);
        CHECK_ERRNO(ioctl(-1, ASHMEM_GET_SIZE), EBADF);
        /* nor is a regular file, or a memfd anyone may resize */
        {
                int f = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
                int raw = memfd_create("raw", MFD_CLOEXEC);
                unsigned long id;
                CHECK(f >= 0 && raw >= 0);
                CHECK_EQ(ftruncate(raw, 4096), 0);
                CHECK_ERRNO(ioctl(f, ASHMEM_GET_SIZE), ENOTTY);
                CHECK_ERRNO(ioctl(f, ASHMEM_GET_FILE_ID, &id), ENOTTY);
                CHECK_ERRNO(ioctl(raw, ASHMEM_GET_SIZE), ENOTTY);
                CHECK_ERRNO(ioctl(raw, ASHMEM_SET_NAME, "x"), ENOTTY);
                CHECK_ERRNO(pin_op(f, ASHMEM_PIN, 0, 0), ENOTTY);
                /* other files map as ever, errno untouched by the checks */
                {
                        void *m;
                        errno = 1234;
                        m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, f, 0);
                        CHECK(m != MAP_FAILED);
                        CHECK_EQ(errno, 1234);
                        munmap(m, 4096);
                        m = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, raw, 0);
                        CHECK(m != MAP_FAILED);
                        CHECK_EQ(errno, 1234);
                        munmap(m, 8192);
                }
                close(raw);
                close(f);
        }
        CHECK_ERRNO(ioctl(fd, _IO(__ASHMEMIOC, 99)), ENOTTY);
        close(pfd[0]);
        close(pfd[1]);
        close(fd);
}

TEST(dup_shares_everything)
{
        int fd = dev_open(), d1, d2;
        char name[ASHMEM_NAME_LEN];
        struct stat a, b;
        char *m;

        d1 = dup(fd);
        d2 = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        CHECK(d1 >= 0 && d2 >= 10);
        CHECK_EQ(ioctl(d1, ASHMEM_SET_NAME, "through-dup"), 0);
        CHECK_EQ(ioctl(d2, ASHMEM_SET_SIZE, (size_t)ps()), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, name), 0);
        CHECK(strcmp(name, "through-dup") == 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE), ps());
        /* the first mmap, through one descriptor, fixes them all */
        m = map(d2, (size_t)ps(), PROT_READ | PROT_WRITE);
        strcpy(m, "shared");
        CHECK_EQ(fstat(fd, &a), 0);
        CHECK_EQ(fstat(d1, &b), 0);
        CHECK_EQ(a.st_ino, b.st_ino);
        CHECK_ERRNO(ioctl(d1, ASHMEM_SET_SIZE, (size_t)1), EINVAL);
        /* close-on-exec flags kept per descriptor */
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(fcntl(d1, F_GETFD) & FD_CLOEXEC, 0);
        CHECK(fcntl(d2, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(dup2(d1, 20), 20);
        {
                char *m2 = map(20, (size_t)ps(), PROT_READ);
                CHECK(strcmp(m2, "shared") == 0);
                munmap(m2, (size_t)ps());
        }
        CHECK_EQ(pin_op(d1, ASHMEM_UNPIN, 0, 0), 0);
        CHECK_EQ(pin_op(20, ASHMEM_GET_PIN_STATUS, 0, 0), ASHMEM_IS_UNPINNED);
        munmap(m, (size_t)ps());
        close(20);
        close(d1);
        close(d2);
        close(fd);
}

TEST(fork_shares_data_and_pin_state)
{
        int fd = region("forked", (size_t)ps()), status;
        char *m = map(fd, (size_t)ps(), PROT_READ | PROT_WRITE);
        pid_t pid;

        strcpy(m, "parent");
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char name[ASHMEM_NAME_LEN];
                char *c = mmap(NULL, (size_t)ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                int ok = c != MAP_FAILED && strcmp(c, "parent") == 0 &&
                         ioctl(fd, ASHMEM_GET_NAME, name) == 0 && strcmp(name, "forked") == 0 &&
                         pin_op(fd, ASHMEM_UNPIN, 0, 0) == 0;
                if (ok)
                        strcpy(c, "child");
                _exit(ok ? 0 : 1);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(strcmp(m, "child") == 0);
        CHECK_EQ(pin_op(fd, ASHMEM_GET_PIN_STATUS, 0, 0), ASHMEM_IS_UNPINNED);
        munmap(m, (size_t)ps());
        close(fd);
}

/* Holders of a region not mapped yet (a child forked before the first
 * mmap, as a descriptor sent before it) hold the same region whichever of
 * them maps first: data, size, name, mask and file id. */
TEST(holders_before_the_first_mmap_share_the_region)
{
        int fd = region("early", (size_t)ps()), status, go[2];
        unsigned long id_before = 0, id_after = 0;
        char name[ASHMEM_NAME_LEN], *m;
        pid_t pid;

        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_WRITE), 0);
        CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
        /* the child maps first */
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char *c = mmap(NULL, (size_t)ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (c == MAP_FAILED)
                        _exit(1);
                strcpy(c, "from the child");
                _exit(0);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        m = map(fd, (size_t)ps(), PROT_READ | PROT_WRITE);
        CHECK(strcmp(m, "from the child") == 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_NAME, name), 0);
        CHECK(strcmp(name, "early") == 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_SIZE), ps());
        CHECK_EQ(ioctl(fd, ASHMEM_GET_PROT_MASK), PROT_READ | PROT_WRITE);
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_SIZE, (size_t)2 * ps()), EINVAL);
        CHECK(mmap(NULL, (size_t)ps(), PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EPERM);
        munmap(m, (size_t)ps());
        close(fd);

        /* the parent maps first, the child after */
        fd = region("early2", (size_t)ps());
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_WRITE), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char c1, *c;
                unsigned long id;
                close(go[1]);
                if (read(go[0], &c1, 1) != 1)
                        _exit(1);
                c = mmap(NULL, (size_t)ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (c == MAP_FAILED || strcmp(c, "from the parent") != 0)
                        _exit(2);
                if (ioctl(fd, ASHMEM_GET_NAME, name) != 0 || strcmp(name, "early2") != 0 ||
                    ioctl(fd, ASHMEM_GET_FILE_ID, &id) != 0 || ioctl(fd, ASHMEM_SET_SIZE, 1) != -1)
                        _exit(3);
                strcpy(c, "and the child");
                _exit(0);
        }
        close(go[0]);
        m = map(fd, (size_t)ps(), PROT_READ | PROT_WRITE);
        strcpy(m, "from the parent");
        CHECK_EQ(ioctl(fd, ASHMEM_GET_FILE_ID, &id_before), 0);
        CHECK_EQ(write(go[1], "g", 1), 1);
        close(go[1]);
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(strcmp(m, "and the child") == 0);
        CHECK_EQ(ioctl(fd, ASHMEM_GET_FILE_ID, &id_after), 0);
        CHECK_EQ(id_before, id_after);
        munmap(m, (size_t)ps());
        close(fd);
}

/* Another holder of a region not mapped yet, hostile: it truncates or
 * seals the memfd behind the interface, or keeps it locked. The first
 * mmap fails cleanly (no mapping past the end of the file to die of
 * SIGBUS on), and nothing waits on it for long. */
TEST(hostile_holder_before_the_first_mmap)
{
        size_t len = (size_t)ps();
        int fd = region("victim", len), status, go[2], done[2];
        char c;
        pid_t pid;

        CHECK_EQ(ftruncate(fd, 0), 0);
        CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        CHECK_EQ(ftruncate(fd, 100), 0);
        CHECK(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        close(fd);

        fd = region("sealed", len);
        CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        CHECK(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EINVAL);
        close(fd);

        fd = region("locked", len);
        CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
        CHECK_EQ(pipe2(done, O_CLOEXEC), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                if (fcntl(fd, F_SETLK, &fl) < 0 || write(go[1], "l", 1) != 1 ||
                    read(done[0], &c, 1) != 1)
                        _exit(1);
                _exit(0);
        }
        CHECK_EQ(read(go[0], &c, 1), 1);
        CHECK_ERRNO(ioctl(fd, ASHMEM_SET_SIZE, 2 * len), EBUSY);
        CHECK(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EAGAIN);
        CHECK_EQ(write(done[1], "d", 1), 1);
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* its lock gone with it: the region is made */
        {
                char *m = map(fd, len, PROT_READ | PROT_WRITE);
                m[len - 1] = 1;
                munmap(m, len);
        }
        close(go[0]);
        close(go[1]);
        close(done[0]);
        close(done[1]);
        close(fd);
}

/* the exec'd side: argv = self --exec-child FD WHAT */
__attribute__((constructor(200))) static void exec_child(int argc, char **argv)
{
        char name[ASHMEM_NAME_LEN];
        int fd;

        if (argc != 4 || strcmp(argv[1], "--exec-child") != 0)
                return;
        fd = atoi(argv[2]);
        if (strcmp(argv[3], "hostile") == 0) {
                /* a forged hand-off: ignored, nothing closed, variable gone */
                struct ashmem_pin all = { 0, 0 };
                if (getenv("ASHMEM_PRELOAD_BLOCKS") != NULL)
                        _exit(10);
                for (int i = 0; i <= 2; i++)
                        if (fcntl(i, F_GETFD) < 0)
                                _exit(11);
                if (fcntl(fd + 1, F_GETFD) < 0)
                        _exit(12);
                if (ioctl(fd, ASHMEM_GET_SIZE) != 4096)
                        _exit(13);
                /* no block attached: made elsewhere, none handed on */
                if (ioctl(fd, ASHMEM_GET_PIN_STATUS, &all) != -1 || errno != ENOLCK)
                        _exit(14);
                _exit(0);
        }
        if (strcmp(argv[3], "pending") == 0) {
                /* name and size set before exec, mapped here first */
                char *c;
                if (ioctl(fd, ASHMEM_GET_NAME, name) != 0 || strcmp(name, "before-exec") != 0 ||
                    ioctl(fd, ASHMEM_GET_SIZE) != 4096 ||
                    ioctl(fd, ASHMEM_GET_PROT_MASK) != (PROT_READ | PROT_WRITE))
                        _exit(2);
                c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (c == MAP_FAILED || ioctl(fd, ASHMEM_SET_SIZE, (size_t)1) != -1 || errno != EINVAL)
                        _exit(3);
                _exit(0);
        }
        /* mapped before exec: same file, data, name, size, mask */
        {
                unsigned long id;
                struct stat st;
                char *c = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
                if (c == MAP_FAILED || strcmp(c, "before exec") != 0)
                        _exit(4);
                if (ioctl(fd, ASHMEM_GET_NAME, name) != 0 || strcmp(name, "mapped") != 0 ||
                    ioctl(fd, ASHMEM_GET_SIZE) != 4096 || ioctl(fd, ASHMEM_SET_SIZE, (size_t)8192) != -1)
                        _exit(5);
                if (ioctl(fd, ASHMEM_GET_FILE_ID, &id) != 0 || fstat(fd, &st) != 0 || id != st.st_ino)
                        _exit(6);
                /* the bits dropped before exec are still gone */
                if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED ||
                    errno != EPERM || ioctl(fd, ASHMEM_GET_PROT_MASK) != PROT_READ)
                        _exit(7);
                if (mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) != MAP_FAILED ||
                    errno != EPERM || mprotect(c, 4096, PROT_READ | PROT_EXEC) != -1 ||
                    errno != EACCES)
                        _exit(8);
                /* the pin state is the parent's: pinned, then unpinned
                 * here for the parent to see; the hand-off variable gone */
                {
                        struct ashmem_pin all = { 0, 0 };
                        if (ioctl(fd, ASHMEM_GET_PIN_STATUS, &all) != ASHMEM_IS_PINNED ||
                            ioctl(fd, ASHMEM_UNPIN, &all) != 0 ||
                            ioctl(fd, ASHMEM_GET_PIN_STATUS, &all) != ASHMEM_IS_UNPINNED ||
                            getenv("ASHMEM_PRELOAD_BLOCKS") != NULL)
                                _exit(9);
                }
                _exit(0);
        }
}

/* Run this program as "--exec-child FD WHAT", by fork and execl, or by
 * posix_spawn when spawn is set; its exit status. */
static int exec_self(int fd, const char *what, int spawn)
{
        char self[4096], num[16];
        char *argv[] = { self, "--exec-child", num, (char *)what, NULL };
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        int status;
        pid_t pid;

        CHECK(n > 0);
        self[n] = 0;
        snprintf(num, sizeof(num), "%d", fd);
        if (spawn) {
                CHECK_EQ(posix_spawn(&pid, self, NULL, NULL, argv, environ), 0);
        } else {
                pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        execl(self, self, "--exec-child", num, what, (char *)NULL);
                        _exit(127);
                }
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        return WEXITSTATUS(status);
}

TEST(exec_child_sees_inherited_regions)
{
        int fd = open("/dev/ashmem", O_RDWR);   /* inherited across exec */
        char *m;

        CHECK(fd >= 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, "before-exec"), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)4096), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ | PROT_WRITE), 0);
        CHECK_EQ(exec_self(fd, "pending", 0), 0);
        close(fd);

        fd = open("/dev/ashmem", O_RDWR);
        CHECK(fd >= 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_NAME, "mapped"), 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)4096), 0);
        m = map(fd, 4096, PROT_READ | PROT_WRITE);
        strcpy(m, "before exec");
        CHECK_EQ(ioctl(fd, ASHMEM_SET_PROT_MASK, PROT_READ), 0);
        CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        CHECK_EQ(exec_self(fd, "mapped", 0), 0);
        /* the child's unpin is seen here */
        {
                struct ashmem_pin all = { 0, 0 };
                CHECK_EQ(ioctl(fd, ASHMEM_GET_PIN_STATUS, &all), ASHMEM_IS_UNPINNED);
                CHECK(ioctl(fd, ASHMEM_PIN, &all) >= 0);
        }
        /* and so through posix_spawn */
        {
                struct ashmem_pin all = { 0, 0 };
                CHECK_EQ(exec_self(fd, "mapped", 1), 0);
                CHECK_EQ(ioctl(fd, ASHMEM_GET_PIN_STATUS, &all), ASHMEM_IS_UNPINNED);
        }
        munmap(m, 4096);
        close(fd);
}

/* A variable naming pairs that are not what they claim: the new program
 * ignores them and closes nothing */
TEST(exec_ignores_a_forged_handoff)
{
        int fd = open("/dev/ashmem", O_RDWR), other, status;
        char self[4096], num[16], var[200];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        pid_t pid;

        CHECK(n > 0);
        self[n] = 0;
        CHECK(fd >= 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)4096), 0);
        /* made in another process: no control block here to hand off */
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                _exit(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* another region, right after it, posing as its control block */
        other = dup2(open("/dev/ashmem", O_RDWR | O_CLOEXEC), fd + 1);
        CHECK_EQ(other, fd + 1);
        CHECK_EQ(ioctl(other, ASHMEM_SET_SIZE, (size_t)4096), 0);
        munmap(map(other, 4096, PROT_READ), 4096);
        CHECK_EQ(fcntl(other, F_SETFD, 0), 0);
        snprintf(num, sizeof(num), "%d", fd);
        snprintf(var, sizeof(var), "ASHMEM_PRELOAD_BLOCKS=%d:0,%d:%d,%d:%d,x:1,"
                 "99999999999:2,-1:2,%d:%d,", fd, fd, fd, fd, other, other, fd);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char *env[] = { var, NULL };
                const char *pre = getenv("LD_PRELOAD");
                char ld[8192];
                if (pre) {
                        snprintf(ld, sizeof(ld), "LD_PRELOAD=%s", pre);
                        env[1] = ld;
                }
                char *envp[] = { env[0], env[1], NULL };
                execle(self, self, "--exec-child", num, "hostile", (char *)NULL, envp);
                _exit(127);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
        close(other);
        close(fd);
}

static int count_fds(void)
{
        int n = 0;
        for (int i = 0; i < 1024; i++)
                n += fcntl(i, F_GETFD) >= 0;
        return n;
}

TEST(failed_exec_leaks_nothing)
{
        int fd = open("/dev/ashmem", O_RDWR), before;
        char *const argv[] = { "x", NULL };
        char *m;

        CHECK(fd >= 0);
        CHECK_EQ(ioctl(fd, ASHMEM_SET_SIZE, (size_t)4096), 0);
        m = map(fd, 4096, PROT_READ | PROT_WRITE);
        /* a first try: the library may keep a descriptor of its own */
        CHECK_EQ(execv("/nonexistent/prog", argv), -1);
        before = count_fds();
        errno = 0;
        CHECK_EQ(execl("/nonexistent/prog", "x", (char *)NULL), -1);
        CHECK_EQ(errno, ENOENT);
        CHECK_EQ(execv("/nonexistent/prog", argv), -1);
        CHECK_EQ(errno, ENOENT);
        CHECK_EQ(execvp("/nonexistent/prog", argv), -1);
        CHECK_EQ(errno, ENOENT);
        errno = 0;
        CHECK_EQ(execlp("/nonexistent/prog", "x", (char *)NULL), -1);
        CHECK_EQ(errno, ENOENT);
        errno = 0;
        CHECK_EQ(execle("/nonexistent/prog", "x", (char *)NULL, environ), -1);
        CHECK_EQ(errno, ENOENT);
        CHECK_EQ(count_fds(), before);
        CHECK(getenv("ASHMEM_PRELOAD_BLOCKS") == NULL);
        munmap(m, 4096);
        close(fd);
}

struct worker {
        int errors;
};

static void *work(void *arg)
{
        struct worker *w = arg;
        size_t p = (size_t)sysconf(_SC_PAGESIZE);

        for (int i = 0; i < 50; i++) {
                int fd = open("/dev/ashmem", O_RDWR | O_CLOEXEC), d;
                char *m;
                if (fd < 0 || ioctl(fd, ASHMEM_SET_NAME, "thread") != 0 ||
                    ioctl(fd, ASHMEM_SET_SIZE, 2 * p) != 0) {
                        w->errors++;
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                d = dup(fd);
                m = mmap(NULL, 2 * p, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
                if (m == MAP_FAILED || pin_op(fd, ASHMEM_UNPIN, 0, (uint32_t)p) != 0 ||
                    pin_op(d, ASHMEM_GET_PIN_STATUS, 0, (uint32_t)p) != ASHMEM_IS_UNPINNED ||
                    pin_op(fd, ASHMEM_PIN, 0, 0) < 0)
                        w->errors++;
                if (m != MAP_FAILED) {
                        m[p] = 1;
                        munmap(m, 2 * p);
                }
                close(d);
                close(fd);
        }
        return NULL;
}

TEST(threads)
{
        pthread_t t[4];
        struct worker w[4];

        memset(w, 0, sizeof(w));
        for (int i = 0; i < 4; i++)
                CHECK_EQ(pthread_create(&t[i], NULL, work, &w[i]), 0);
        for (int i = 0; i < 4; i++) {
                CHECK_EQ(pthread_join(t[i], NULL), 0);
                CHECK_EQ(w[i].errors, 0);
        }
}

/* Threads racing the first mmap of one region, while another dups and
 * closes descriptors of it and opens other files on the freed numbers:
 * every mapping is the same memory, and no other file is touched. */
struct racer {
        int fd, idx, errors;
        pthread_barrier_t *b;
        char *m;
};

static void *race_map(void *arg)
{
        struct racer *r = arg;
        size_t p = (size_t)sysconf(_SC_PAGESIZE);

        pthread_barrier_wait(r->b);
        r->m = mmap(NULL, 2 * p, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
        if (r->m == MAP_FAILED || ioctl(r->fd, ASHMEM_GET_SIZE) != (int)(2 * p) ||
            ioctl(r->fd, ASHMEM_SET_SIZE, p) != -1) {
                r->errors++;
                r->m = NULL;
                return NULL;
        }
        r->m[r->idx] = (char)('a' + r->idx);
        return NULL;
}

static void *race_fds(void *arg)
{
        struct racer *r = arg;
        struct stat st;

        pthread_barrier_wait(r->b);
        for (int i = 0; i < 200; i++) {
                int d = dup(r->fd), f;
                if (d < 0) {
                        r->errors++;
                        continue;
                }
                close(d);
                f = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (f < 0 || fstat(f, &st) < 0 || !S_ISCHR(st.st_mode))
                        r->errors++;
                if (f >= 0)
                        close(f);
        }
        return NULL;
}

TEST(threads_race_the_first_mmap_of_one_region)
{
        size_t p = (size_t)ps();

        for (int round = 0; round < 20; round++) {
                pthread_barrier_t b;
                pthread_t t[5];
                struct racer r[5];
                int fd = region("race", 2 * p);

                CHECK_EQ(pthread_barrier_init(&b, NULL, 5), 0);
                for (int i = 0; i < 5; i++) {
                        r[i] = (struct racer){ .fd = fd, .idx = i, .b = &b };
                        CHECK_EQ(pthread_create(&t[i], NULL, i < 4 ? race_map : race_fds, &r[i]), 0);
                }
                for (int i = 0; i < 5; i++) {
                        CHECK_EQ(pthread_join(t[i], NULL), 0);
                        CHECK_EQ(r[i].errors, 0);
                }
                for (int i = 0; i < 4; i++) {
                        if (!r[i].m)
                                continue;
                        CHECK(memcmp(r[i].m, "abcd", 4) == 0);
                        munmap(r[i].m, 2 * p);
                }
                pthread_barrier_destroy(&b);
                close(fd);
        }
}
