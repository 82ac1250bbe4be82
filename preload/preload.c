/* SPDX-License-Identifier: MIT */
/*
 * libashmem-preload.so: the ashmem kernel driver's interface (/dev/ashmem
 * and its ioctls) for unmodified programs, on top of libashmem, loaded with
 * LD_PRELOAD. A compatibility layer, not a security boundary: a program can
 * always make the system calls itself.
 *
 * No state is kept per descriptor number, so dup, dup2, dup3,
 * fcntl(F_DUPFD), close, fork and exec need no interposing: everything is
 * read back from the file a descriptor refers to.
 *
 *  - open("/dev/ashmem") (or "/dev/ashmem" followed by this boot's id)
 *    makes a "pending" region: a memfd named "dev/ashmem", mode 0, holding
 *    one record (name, size, protection mask) of exactly sizeof(struct
 *    pending) bytes. SET_NAME, SET_SIZE and SET_PROT_MASK rewrite the
 *    record, so every holder (dups, forked or exec'd children) sees it.
 *  - The first mmap, in whichever process holds it, makes the pending
 *    memfd itself the real region (libashmem: cleared, sized, sealed
 *    against growing and shrinking, with a control block for the pin
 *    state in that process), so every holder holds the same region.
 *  - Every ioctl of the uapi on a region then goes to libashmem, with the
 *    kernel driver's range checks, results and errnos. mmap and mprotect
 *    refuse protections outside the mask (EPERM and EACCES, as the driver).
 */
#undef _FORTIFY_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "drivers/driver.h"
#include "drivers/memfd/memfd.h"
#include "preload/uapi.h"

#define PROT_ALL (PROT_READ | PROT_WRITE | PROT_EXEC)
#define DEV_ASHMEM "/dev/ashmem"
/* the name as set (up to the driver's 255 bytes), for every holder: the
 * memfd's own name stays "dev/ashmem" */
#define NAME_XATTR "user.ashmem.name"
/* the protection mask, one digit: what survives exec when the region's
 * control block does not (the write bit also lives in the seal) */
#define PROT_XATTR "user.ashmem.prot"

#define EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------ libc's */

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static void *(*real_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*real_mprotect)(void *, size_t, int);
static int (*real_munmap)(void *, size_t);

/* The next definition of sym (libc's, or another interposer's such as a
 * sanitizer's), looked up once. */
#define NEXT(var, sym)                                                  \
        ({                                                              \
                __typeof__(var) f_ = __atomic_load_n(&(var), __ATOMIC_ACQUIRE); \
                if (!f_) {                                              \
                        f_ = (__typeof__(var))dlsym(RTLD_NEXT, sym);    \
                        __atomic_store_n(&(var), f_, __ATOMIC_RELEASE); \
                }                                                       \
                f_;                                                     \
        })

static int fail(int e)
{
        errno = e;
        return -1;
}

/* ------------------------------------------------------------ paths */

static char boot_id[40];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void read_boot_id(void)
{
        int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/sys/kernel/random/boot_id",
                              O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return;
        do
                n = read(fd, boot_id, sizeof(boot_id) - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n <= 0) {
                boot_id[0] = 0;
                return;
        }
        boot_id[n] = 0;
        boot_id[strcspn(boot_id, "\n")] = 0;
}

/* "/dev/ashmem", or "/dev/ashmem" followed by this boot's id */
static int is_ashmem_path(const char *p)
{
        if (!p || strncmp(p, DEV_ASHMEM, sizeof(DEV_ASHMEM) - 1) != 0)
                return 0;
        p += sizeof(DEV_ASHMEM) - 1;
        if (!*p)
                return 1;
        pthread_once(&boot_once, read_boot_id);
        return boot_id[0] && strcmp(p, boot_id) == 0;
}

/* ------------------------------------------------------------ pending */

/* What a region has before its first mmap, kept in the pending memfd
 * itself. Any holder may rewrite it: every field is checked on reading. */
struct pending {
        char magic[8];
        uint64_t size;
        uint32_t prot;
        uint32_t reserved;
        char name[ASHMEM_NAME_LEN];     /* "" = none given */
};

static const char pending_magic[8] = "AMPEND1";

/* The signature fstat() shows, checked before anything else */
static int looks_pending(const struct stat *st)
{
        return S_ISREG(st->st_mode) && (st->st_mode & 07777) == 0 &&
               st->st_size == (off_t)sizeof(struct pending);
}

static int pending_read(int fd, struct pending *p)
{
        ssize_t n = pread(fd, p, sizeof(*p), 0);

        if (n < 0)
                return -errno;
        if (n != (ssize_t)sizeof(*p) || memcmp(p->magic, pending_magic, sizeof(p->magic)))
                return -ENOTTY;
        p->name[ASHMEM_NAME_LEN - 1] = 0;
        p->prot &= PROT_ALL;
        return 0;
}

static int pending_write(int fd, const struct pending *p)
{
        ssize_t n = pwrite(fd, p, sizeof(*p), 0);

        if (n < 0)
                return -errno;
        return n == (ssize_t)sizeof(*p) ? 0 : -EIO;
}

/* 1 if fd (with stat st) is a pending region, and its record in *p */
static int is_pending(int fd, const struct stat *st, struct pending *p)
{
        int seals;

        if (!looks_pending(st))
                return 0;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & F_SEAL_GROW))
                return 0;
        return pending_read(fd, p) == 0;
}

/* The mask recorded for exec (all bits where there is none): it can only
 * take bits away from what the library says. */
static int recorded_mask(int fd)
{
        char c;
        int saved = errno, r = PROT_ALL;

        if (fgetxattr(fd, PROT_XATTR, &c, 1) == 1 && c >= '0' && c <= '7')
                r = c - '0';
        errno = saved;
        return r;
}

static void record_mask(int fd, int mask)
{
        char c = (char)('0' + (mask & PROT_ALL));

        (void)fsetxattr(fd, PROT_XATTR, &c, 1, 0);
}

static int open_ashmem(int flags)
{
        struct pending p = { .prot = PROT_ALL };
        int fd, r;

        memcpy(p.magic, pending_magic, sizeof(p.magic));
        fd = memfd_create(ASHMEM_NAME_DEF, MFD_ALLOW_SEALING |
                          ((flags & O_CLOEXEC) ? MFD_CLOEXEC : 0));
        if (fd < 0)
                return -1;
        r = fchmod(fd, 0) < 0 ? -errno : pending_write(fd, &p);
        if (r < 0) {
                close(fd);
                return fail(-r);
        }
        return fd;
}

/* One thread at a time changes a pending record or makes a region of it
 * (short: memfd calls only, never a wait on another process). */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

/* Between processes holding the same unmapped region (forked, exec'd or
 * sent), a record lock on the memfd orders the record's changes and the
 * first mmap: tried without waiting, for a bounded time, so a holder that
 * keeps it stalls another for at most a second (EBUSY). Under
 * pending_lock: record locks belong to the process, not the thread. */
static int lock_pending(int fd)
{
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        struct timespec ts = { 0, 5 * 1000 * 1000 };

        for (int i = 0; i < 200; i++) {
                if (fcntl(fd, F_SETLK, &fl) == 0)
                        return 0;
                if (errno != EAGAIN && errno != EACCES && errno != EINTR)
                        return -errno;
                nanosleep(&ts, NULL);
        }
        return -EBUSY;
}

static void unlock_pending(int fd)
{
        struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

        (void)fcntl(fd, F_SETLK, &fl);
}

static int is_region_seals(int seals)
{
        return (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) == (F_SEAL_GROW | F_SEAL_SHRINK);
}

/* 1 if fd (with seals) is a memfd opened here for /dev/ashmem, by its
 * name and its sealing still allowed (that is all it can be told by) */
static int is_ours_unmade(int fd, int seals)
{
        static const char want[] = "/memfd:" ASHMEM_NAME_DEF " (deleted)";
        char path[40], link[sizeof(want)];
        ssize_t n;

        if (seals & F_SEAL_SEAL)
                return 0;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link));
        return n == (ssize_t)sizeof(want) - 1 && memcmp(link, want, (size_t)n) == 0;
}

/* fd is one of ours caught between pending and region: being made by
 * another thread or process. Wait for that, bounded: 0, or -EBUSY. */
static int wait_made(int fd)
{
        int r;

        pthread_mutex_lock(&pending_lock);
        r = lock_pending(fd);
        if (r == 0)
                unlock_pending(fd);
        pthread_mutex_unlock(&pending_lock);
        return r;
}

/* The first mmap of a pending region: make the pending memfd itself the
 * region (libashmem: cleared, sized, sealed against growing and
 * shrinking, a control block in this process), so that every holder, in
 * this process or another, holds the same region. */
static int make_region(int fd)
{
        struct stat st;
        struct pending p;
        int r;

        pthread_mutex_lock(&pending_lock);
        r = lock_pending(fd);
        if (r < 0)
                goto out;
        /* another thread or process may have made it meanwhile */
        if (fstat(fd, &st) < 0) {
                r = -errno;
        } else if (!is_pending(fd, &st, &p)) {
                r = 0;
        } else if (p.size == 0) {
                r = -EINVAL;    /* the driver: no SET_SIZE, no mapping */
        } else {
                /* what other holders read back (the memfd keeps its own
                 * name, "dev/ashmem"), set before the region exists */
                if (p.name[0])
                        (void)fsetxattr(fd, NAME_XATTR, p.name, strlen(p.name), 0);
                if (p.prot != PROT_ALL)
                        record_mask(fd, (int)p.prot);
                r = am_memfd_make_in_place(fd, p.name[0] ? p.name : ASHMEM_NAME_DEF,
                                           (size_t)p.size);
                if (r == -EFBIG)
                        r = -EINVAL;
                if (r == 0 && p.prot != PROT_ALL &&
                    ashmem_set_prot_region(fd, (int)p.prot) < 0)
                        r = -errno;
        }
        unlock_pending(fd);
out:
        pthread_mutex_unlock(&pending_lock);
        return r;
}

/* ------------------------------------------------------------ user memory */

/* Copies that fail with EFAULT on a bad address, as the kernel's do. */
static int copy_in(void *dst, const void *src, size_t n)
{
        struct iovec l = { dst, n }, rm = { (void *)src, n };
        ssize_t r;

        if (!src)
                return -EFAULT;
        r = process_vm_readv(getpid(), &l, 1, &rm, 1, 0);
        if (r < 0 && errno == ENOSYS) {
                memcpy(dst, src, n);
                return 0;
        }
        return r == (ssize_t)n ? 0 : -EFAULT;
}

static int copy_out(void *dst, const void *src, size_t n)
{
        struct iovec l = { (void *)src, n }, rm = { dst, n };
        ssize_t r;

        if (!dst)
                return -EFAULT;
        r = process_vm_writev(getpid(), &l, 1, &rm, 1, 0);
        if (r < 0 && errno == ENOSYS) {
                memcpy(dst, src, n);
                return 0;
        }
        return r == (ssize_t)n ? 0 : -EFAULT;
}

/* A NUL-terminated string of at most len - 1 bytes from the caller, read
 * up to a page boundary at a time (strncpy_from_user's rule) */
static int copy_in_string(char *dst, const char *src, size_t len)
{
        size_t got = 0, ps = (size_t)sysconf(_SC_PAGESIZE);

        if (!src)
                return -EFAULT;
        while (got < len) {
                uintptr_t a = (uintptr_t)src + got;
                size_t n = ps - a % ps;
                if (n > len - got)
                        n = len - got;
                if (copy_in(dst + got, src + got, n) < 0)
                        return -EFAULT;
                if (memchr(dst + got, 0, n))
                        return 0;
                got += n;
        }
        dst[len - 1] = 0;       /* truncated, as the driver does */
        return 0;
}

/* ------------------------------------------------------------ ioctls */

static size_t page_size(void)
{
        static size_t ps;
        size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);

        if (!v) {
                v = (size_t)sysconf(_SC_PAGESIZE);
                __atomic_store_n(&ps, v, __ATOMIC_RELAXED);
        }
        return v;
}

static int capable_sys_admin(void)
{
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

        if (syscall(SYS_capget, &h, d) < 0)
                return 0;
        return (d[CAP_SYS_ADMIN / 32].effective >> (CAP_SYS_ADMIN % 32)) & 1;
}

/* PURGE_ALL_CACHES: the driver purges every region of the system; this
 * process can reach the regions it holds. Pages purged. */
static int purge_all(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int total = 0;

        if (!d)
                return -errno;
        while ((e = readdir(d))) {
                char *end;
                long k = strtol(e->d_name, &end, 10);
                int n;

                if (*end || k < 0 || k > INT_MAX || k == dirfd(d) || !ashmem_valid((int)k))
                        continue;
                n = ashmem_purge((int)k);
                if (n > 0 && total <= INT_MAX - n)
                        total += n;
        }
        closedir(d);
        return total;
}

/* The driver's range rules for PIN, UNPIN and GET_PIN_STATUS (32-bit
 * offset and length, 0 = to the end of the page-rounded size). */
static int pin_range(const struct ashmem_pin *pin, size_t size, size_t *off, size_t *len)
{
        size_t ps = page_size(), end = (size + ps - 1) / ps * ps;
        uint32_t o = pin->offset, l = pin->len;

        if (!l)
                l = (uint32_t)(end - o);
        if ((o | l) % ps)
                return -EINVAL;
        if ((uint32_t)-1 - o < l)
                return -EINVAL;
        if (end < (size_t)o + l)
                return -EINVAL;
        *off = o;
        *len = l;
        return 0;
}

static int region_name(int fd, const struct stat *st, const struct am_driver *d,
                       char *buf)
{
        char x[ASHMEM_NAME_LEN];
        ssize_t n;
        int r;

        /* the control block's name where this process has it, else the
         * memfd's; a region made from /dev/ashmem is "dev/ashmem" there,
         * and its name as set is in the attribute */
        r = d->get_name(fd, st, buf, ASHMEM_NAME_LEN);
        if (r < 0)
                return r;
        if (!buf[0] || strcmp(buf, ASHMEM_NAME_DEF) == 0) {
                n = fgetxattr(fd, NAME_XATTR, x, sizeof(x) - 1);
                if (n > 0 && !memchr(x, 0, (size_t)n)) {
                        memcpy(buf, x, (size_t)n);
                        buf[n] = 0;
                } else {
                        snprintf(buf, ASHMEM_NAME_LEN, "%s", ASHMEM_NAME_DEF);
                }
        }
        return 0;
}

static int read_implies_exec(unsigned long prot)
{
        int pers = personality(0xffffffff);

        if ((prot & PROT_READ) && pers != -1 && (pers & READ_IMPLIES_EXEC))
                prot |= PROT_EXEC;
        return (int)prot;
}

/* An ioctl on a region that has not been mapped yet */
static int pending_ioctl(int fd, unsigned long req, void *arg)
{
        struct stat st;
        struct pending p;
        char name[ASHMEM_NAME_LEN];
        unsigned long prot;
        int r, locked;

        switch (req) {
        case ASHMEM_SET_NAME:
                r = copy_in_string(name, arg, sizeof(name));
                if (r < 0)
                        return r;
                break;
        case ASHMEM_PURGE_ALL_CACHES:
                return capable_sys_admin() ? purge_all() : -EPERM;
        case ASHMEM_PIN:
        case ASHMEM_UNPIN:
        case ASHMEM_GET_PIN_STATUS: {
                /* the driver reads the argument first */
                struct ashmem_pin pin;
                r = copy_in(&pin, arg, sizeof(pin));
                return r < 0 ? r : -EINVAL;
        }
        case ASHMEM_GET_FILE_ID:
                return -EINVAL; /* no backing file before the first mmap */
        }
        pthread_mutex_lock(&pending_lock);
        locked = req == ASHMEM_SET_NAME || req == ASHMEM_SET_SIZE ||
                 req == ASHMEM_SET_PROT_MASK;
        r = locked ? lock_pending(fd) : 0;
        /* under the lock: the region may have been made meanwhile */
        if (r < 0)
                locked = 0;
        else if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!is_pending(fd, &st, &p))
                r = -EAGAIN;    /* made meanwhile: the caller retries */
        else switch (req) {
        case ASHMEM_SET_NAME:
                memcpy(p.name, name, sizeof(p.name));
                r = pending_write(fd, &p);
                break;
        case ASHMEM_GET_NAME:
                r = copy_out(arg, p.name[0] ? p.name : ASHMEM_NAME_DEF,
                             strlen(p.name[0] ? p.name : ASHMEM_NAME_DEF) + 1);
                break;
        case ASHMEM_SET_SIZE:
                p.size = (uint64_t)(uintptr_t)arg;
                r = pending_write(fd, &p);
                break;
        case ASHMEM_GET_SIZE:
                r = (int)p.size;
                break;
        case ASHMEM_SET_PROT_MASK:
                prot = (unsigned long)arg;
                if ((p.prot & prot) != prot) {
                        r = -EINVAL;
                        break;
                }
                p.prot = (uint32_t)read_implies_exec(prot);
                r = pending_write(fd, &p);
                break;
        case ASHMEM_GET_PROT_MASK:
                r = (int)p.prot;
                break;
        default:
                r = -ENOTTY;
        }
        if (locked)
                unlock_pending(fd);
        pthread_mutex_unlock(&pending_lock);
        return r;
}

/* An ioctl of the uapi on a region (fd, whose fstat() is st) */
static int region_ioctl(int fd, const struct stat *st, const struct am_driver *d,
                        unsigned long req, void *arg)
{
        struct ashmem_pin pin;
        char name[ASHMEM_NAME_LEN];
        size_t off, len;
        unsigned long prot, ino;
        int r, cur;

        switch (req) {
        case ASHMEM_PIN:
        case ASHMEM_UNPIN:
        case ASHMEM_GET_PIN_STATUS:
                /* the fast path: no system call but the caller's fstat() */
                if (!arg)
                        return -EFAULT;
                memcpy(&pin, arg, sizeof(pin));
                r = pin_range(&pin, (size_t)st->st_size, &off, &len);
                if (r < 0)
                        return r;
                if (req == ASHMEM_PIN)
                        return d->pin(fd, st, off, len);
                if (req == ASHMEM_UNPIN)
                        return d->unpin(fd, st, off, len);
                return d->pin_status(fd, st, off, len);
        }
        /* the other requests: on a region (a memfd sealed against
         * resizing) only; anything else is the kernel's (ENOTTY) */
        r = fcntl(fd, F_GET_SEALS);
        if (r < 0 || !is_region_seals(r)) {
                /* being made elsewhere: wait, and the caller retries with
                 * what fstat() says then */
                if (r >= 0 && is_ours_unmade(fd, r)) {
                        int w = wait_made(fd);
                        if (w < 0)
                                return w;
                        r = fcntl(fd, F_GET_SEALS);
                        if (r >= 0 && is_region_seals(r))
                                return -EAGAIN;
                }
                return -ENOTTY;
        }
        switch (req) {
        case ASHMEM_SET_NAME:
                r = copy_in_string(name, arg, sizeof(name));
                return r < 0 ? r : -EINVAL;     /* fixed at the first mmap */
        case ASHMEM_GET_NAME:
                r = region_name(fd, st, d, name);
                return r < 0 ? r : copy_out(arg, name, strlen(name) + 1);
        case ASHMEM_SET_SIZE:
                return -EINVAL;                 /* fixed at the first mmap */
        case ASHMEM_GET_SIZE:
                return (int)st->st_size;
        case ASHMEM_SET_PROT_MASK:
                prot = (unsigned long)arg;
                cur = d->get_prot(fd, st);
                if (cur < 0)
                        return cur;
                cur &= recorded_mask(fd);
                if (((unsigned long)cur & prot) != prot)
                        return -EINVAL;
                r = d->set_prot(fd, st, read_implies_exec(prot) & cur);
                if (r == 0)
                        record_mask(fd, read_implies_exec(prot) & cur);
                return r;
        case ASHMEM_GET_PROT_MASK:
                r = d->get_prot(fd, st);
                return r < 0 ? r : r & recorded_mask(fd);
        case ASHMEM_PURGE_ALL_CACHES:
                return capable_sys_admin() ? purge_all() : -EPERM;
        case ASHMEM_GET_FILE_ID:
                ino = (unsigned long)st->st_ino;
                return copy_out(arg, &ino, sizeof(ino));
        }
        return -ENOTTY;
}

static int is_uapi(unsigned long req)
{
        switch (req) {
        case ASHMEM_SET_NAME: case ASHMEM_GET_NAME: case ASHMEM_SET_SIZE:
        case ASHMEM_GET_SIZE: case ASHMEM_SET_PROT_MASK: case ASHMEM_GET_PROT_MASK:
        case ASHMEM_PIN: case ASHMEM_UNPIN: case ASHMEM_GET_PIN_STATUS:
        case ASHMEM_PURGE_ALL_CACHES: case ASHMEM_GET_FILE_ID:
                return 1;
        }
        return 0;
}

EXPORT int ioctl(int fd, unsigned long req, ...);
EXPORT int ioctl(int fd, unsigned long req, ...)
{
        struct stat st;
        struct pending p;
        const struct am_driver *d;
        unsigned long cmd;
        void *arg;
        va_list ap;
        int r, saved = errno;

        va_start(ap, req);
        arg = va_arg(ap, void *);
        va_end(ap);
        if (!NEXT(real_ioctl, "ioctl"))
                return fail(ENOSYS);
        /* the kernel reads the request as 32 bits: one kept in an int
         * arrives sign-extended */
        cmd = (unsigned int)req;
        if (!is_uapi(cmd))
                return real_ioctl(fd, req, arg);
        for (int tries = 0; tries < 4; tries++) {
                r = am_driver_of(fd, &st, &d);
                if (r == -EBADF)
                        return fail(EBADF);
                if (r < 0)      /* no file of ours: the kernel answers */
                        return real_ioctl(fd, req, arg);
                if (looks_pending(&st) && is_pending(fd, &st, &p))
                        r = pending_ioctl(fd, cmd, arg);
                else
                        r = region_ioctl(fd, &st, d, cmd, arg);
                if (r != -EAGAIN)
                        break;
        }
        if (r == -ENOTTY)
                return real_ioctl(fd, req, arg);
        /* errors are -1 .. -4095, as the C library reads the kernel's
         * answer: a size past INT_MAX comes back truncated, no error */
        if (r < 0 && r >= -4095)
                return fail(-r);
        errno = saved;
        return r;
}

/* ------------------------------------------------------------ open */

EXPORT int open(const char *path, int flags, ...);
EXPORT int open64(const char *path, int flags, ...);
EXPORT int openat(int dirfd, const char *path, int flags, ...);
EXPORT int openat64(int dirfd, const char *path, int flags, ...);
EXPORT int __open_2(const char *path, int flags);
EXPORT int __open64_2(const char *path, int flags);
EXPORT int __openat_2(int dirfd, const char *path, int flags);
EXPORT int __openat64_2(int dirfd, const char *path, int flags);

static mode_t mode_arg(int flags, va_list ap)
{
        return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ?
               (mode_t)va_arg(ap, int) : 0;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
        if (is_ashmem_path(path))
                return open_ashmem(flags);
        if (!NEXT(real_openat, "openat"))
                return fail(ENOSYS);
        return real_openat(dirfd, path, flags, mode);
}

static int do_open(const char *path, int flags, mode_t mode)
{
        if (is_ashmem_path(path))
                return open_ashmem(flags);
        if (!NEXT(real_open, "open"))
                return fail(ENOSYS);
        return real_open(path, flags, mode);
}

EXPORT int open(const char *path, int flags, ...)
{
        va_list ap;
        mode_t m;

        va_start(ap, flags);
        m = mode_arg(flags, ap);
        va_end(ap);
        return do_open(path, flags, m);
}

EXPORT int open64(const char *path, int flags, ...)
{
        va_list ap;
        mode_t m;

        va_start(ap, flags);
        m = mode_arg(flags, ap);
        va_end(ap);
        return do_open(path, flags | O_LARGEFILE, m);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
        va_list ap;
        mode_t m;

        va_start(ap, flags);
        m = mode_arg(flags, ap);
        va_end(ap);
        return do_openat(dirfd, path, flags, m);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
        va_list ap;
        mode_t m;

        va_start(ap, flags);
        m = mode_arg(flags, ap);
        va_end(ap);
        return do_openat(dirfd, path, flags | O_LARGEFILE, m);
}

/* the _FORTIFY_SOURCE entry points (no mode: O_CREAT is refused there) */
EXPORT int __open_2(const char *path, int flags) { return do_open(path, flags, 0); }
EXPORT int __open64_2(const char *path, int flags) { return do_open(path, flags | O_LARGEFILE, 0); }
EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
        return do_openat(dirfd, path, flags, 0);
}
EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
        return do_openat(dirfd, path, flags | O_LARGEFILE, 0);
}

/* ------------------------------------------------------------ mappings */

/* Mappings of regions whose mask lacked a bit when they were made: the
 * driver takes the matching VM_MAY* flags away, so mprotect() cannot add
 * them later. A short-held lock; no system call under it. */
struct masked {
        uintptr_t start, end;
        int mask;
};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct masked *maps;
static size_t nmaps, cap_maps;

/* Drop [start, end) from the table (munmap, or a new mapping over it);
 * under maps_lock */
static void maps_cut(uintptr_t start, uintptr_t end)
{
        for (size_t i = 0; i < nmaps; i++) {
                struct masked *m = &maps[i];
                if (m->end <= start || m->start >= end)
                        continue;
                if (m->start < start && m->end > end && nmaps < cap_maps) {
                        /* a hole in the middle: split (capacity allowing) */
                        maps[nmaps++] = (struct masked){ end, m->end, m->mask };
                        m->end = start;
                } else if (m->start < start) {
                        m->end = start;
                } else if (m->end > end) {
                        m->start = end;
                } else {
                        maps[i--] = maps[--nmaps];
                }
        }
}

static void maps_add(uintptr_t start, uintptr_t end, int mask)
{
        pthread_mutex_lock(&maps_lock);
        maps_cut(start, end);
        if (nmaps + 2 > cap_maps) {
                size_t n = cap_maps ? cap_maps * 2 : 16;
                struct masked *m = realloc(maps, n * sizeof(*m));
                if (m) {
                        maps = m;
                        cap_maps = n;
                }
        }
        if (nmaps < cap_maps)
                maps[nmaps++] = (struct masked){ start, end, mask };
        pthread_mutex_unlock(&maps_lock);
}

static size_t round_up(size_t n)
{
        size_t ps = page_size();
        return n > SIZE_MAX - ps ? SIZE_MAX / ps * ps : (n + ps - 1) / ps * ps;
}

/* (mmap64 underneath both: a 32-bit process's off_t is narrower) */
static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
        struct stat st;
        struct pending p;
        int seals, mask = PROT_ALL, r, saved = errno;
        void *m;

        if (!NEXT(real_mmap64, "mmap64")) {
                errno = ENOSYS;
                return MAP_FAILED;
        }
        /* (no bytes: the kernel's EINVAL, before any driver's check) */
        if (fd < 0 || len == 0 || (flags & MAP_ANONYMOUS) || fstat(fd, &st) < 0 ||
            !S_ISREG(st.st_mode))
                goto plain;
        if (looks_pending(&st) && is_pending(fd, &st, &p)) {
                /* the driver's order: no size set, or a mapping larger
                 * than it: EINVAL; a protection outside the mask: EPERM;
                 * only then is the region made (a refused mapping leaves
                 * name and size open) */
                r = len > round_up((size_t)p.size) ? -EINVAL :
                    (prot & ~(int)p.prot & PROT_ALL) ? -EPERM : make_region(fd);
                if (r == 0 && fstat(fd, &st) < 0)
                        r = -errno;
                if (r < 0) {
                        /* another holder keeps the record locked: mmap's
                         * "the file has been locked" */
                        errno = r == -EBUSY ? EAGAIN : -r;
                        return MAP_FAILED;
                }
        }
        /* the driver's rules apply to regions: memfds sealed against
         * resizing; any other file is the kernel's business */
        seals = fcntl(fd, F_GET_SEALS);
        if (seals >= 0 && !is_region_seals(seals) && is_ours_unmade(fd, seals)) {
                /* one of ours, neither pending nor a region: being made
                 * by another thread or process (wait for it, bounded), or
                 * truncated or rewritten by another holder: no mapping
                 * that could end past the file's end */
                r = wait_made(fd);
                seals = fcntl(fd, F_GET_SEALS);
                if (r == 0 && (fstat(fd, &st) < 0 || seals < 0 || !is_region_seals(seals)))
                        r = -EINVAL;
                if (r < 0) {
                        errno = r == -EBUSY ? EAGAIN : -r;
                        return MAP_FAILED;
                }
        }
        if (seals < 0 || !is_region_seals(seals))
                goto plain;
        /* what fstat() said above may be from before the region was made
         * (by another thread or process) */
        if (fstat(fd, &st) < 0)
                goto plain;
        mask = ashmem_get_prot(fd);
        if (mask < 0)
                goto plain;
        mask &= recorded_mask(fd);
        if (len > round_up((size_t)st.st_size)) {
                errno = EINVAL;
                return MAP_FAILED;
        }
        if (prot & ~mask & PROT_ALL) {
                errno = EPERM;
                return MAP_FAILED;
        }
plain:
        errno = saved;  /* what the checks above left is no answer */
        m = real_mmap64(addr, len, prot, flags, fd, off);
        if (m == MAP_FAILED)
                return m;
        if (mask != PROT_ALL) {
                maps_add((uintptr_t)m, (uintptr_t)m + round_up(len), mask);
        } else if (__atomic_load_n(&nmaps, __ATOMIC_RELAXED)) {
                /* a new mapping over a masked one (MAP_FIXED) replaced it */
                pthread_mutex_lock(&maps_lock);
                maps_cut((uintptr_t)m, (uintptr_t)m + round_up(len));
                pthread_mutex_unlock(&maps_lock);
        }
        return m;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
        return do_mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
        return do_mmap(addr, len, prot, flags, fd, off);
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
        uintptr_t s = (uintptr_t)addr, e = s + round_up(len);
        int refused = 0;

        if (!NEXT(real_mprotect, "mprotect"))
                return fail(ENOSYS);
        if (__atomic_load_n(&nmaps, __ATOMIC_RELAXED)) {
                pthread_mutex_lock(&maps_lock);
                for (size_t i = 0; i < nmaps; i++)
                        if (maps[i].start < e && maps[i].end > s &&
                            (prot & ~maps[i].mask & PROT_ALL))
                                refused = 1;
                pthread_mutex_unlock(&maps_lock);
        }
        if (refused)
                return fail(EACCES);
        return real_mprotect(addr, len, prot);
}

EXPORT int munmap(void *addr, size_t len)
{
        int r;

        if (!NEXT(real_munmap, "munmap"))
                return fail(ENOSYS);
        r = real_munmap(addr, len);
        if (r == 0 && __atomic_load_n(&nmaps, __ATOMIC_RELAXED)) {
                pthread_mutex_lock(&maps_lock);
                maps_cut((uintptr_t)addr, (uintptr_t)addr + round_up(len));
                pthread_mutex_unlock(&maps_lock);
        }
        return r;
}

/* ------------------------------------------------------------ fork */

/* A child of fork has only the forking thread: a lock another thread held
 * stays held. Neither lock guards anything a half-done change could break
 * (the pending state lives in files; the table's fields are each stored
 * whole), so the child starts both afresh. Taking them before the fork
 * instead would order them against libashmem's own fork locks, which
 * make_region() takes under pending_lock. */
static void child_after_fork(void)
{
        pthread_mutex_init(&pending_lock, NULL);
        pthread_mutex_init(&maps_lock, NULL);
}

/* ------------------------------------------------------------ exec */

/*
 * A region's pin state lives in its control block, whose descriptor the
 * library keeps close-on-exec. Before every exec, each region descriptor
 * that survives the exec gets a descriptor of its block that survives it
 * too, and the new program is told the pairs in ASHMEM_PRELOAD_BLOCKS
 * ("data:control,..."): the constructor below attaches them. The control
 * descriptors are made close-on-exec (by ashmem_get_control) and lose the
 * flag only just before the exec: a fork+exec in another thread in that
 * instant inherits them too (it holds them; nothing else). If the exec
 * fails they get the flag back and are closed.
 */
#define BLOCKS_VAR "ASHMEM_PRELOAD_BLOCKS"
#define BLOCKS_MAX 256
#define ENV_STACK 512

/* On the caller's stack, and no allocation unless the environment holds
 * more than ENV_STACK variables: after vfork() the caller's heap is its
 * parent's, and what a successful exec leaves there is never freed. */
struct handoff {
        int ctl[BLOCKS_MAX];
        size_t n;
        char **env;             /* the child's environment, or NULL */
        char *env_stack[ENV_STACK];
        char var[sizeof(BLOCKS_VAR) + BLOCKS_MAX * 24];
};

static int handoff_region(int fd)
{
        struct stat st;
        const struct am_driver *d;
        int fl = fcntl(fd, F_GETFD), seals;

        if (fl < 0 || (fl & FD_CLOEXEC))
                return 0;
        if (am_driver_of(fd, &st, &d) < 0)
                return 0;
        seals = fcntl(fd, F_GET_SEALS);
        return seals >= 0 && is_region_seals(seals);
}

static void handoff_undo(struct handoff *h)
{
        for (size_t i = 0; i < h->n; i++) {
                (void)fcntl(h->ctl[i], F_SETFD, FD_CLOEXEC);
                (void)close(h->ctl[i]);
        }
        h->n = 0;
        if (h->env != h->env_stack)
                free(h->env);
        h->env = NULL;
}

/* Find the regions, make their block descriptors, build the child's
 * environment from envp (never changed in place). 0 or -errno. */
static int handoff_prepare(struct handoff *h, char *const envp[])
{
        char buf[4096];
        size_t len = 0, ne = 0, o = 0;
        int dir, r;

        h->n = 0;
        h->env = NULL;
        len = (size_t)snprintf(h->var, sizeof(h->var), "%s=", BLOCKS_VAR);
        dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
                           O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return 0;       /* no /proc: nothing can be told */
        for (;;) {
                long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                for (long at = 0; at < n;) {
                        struct dirent64 *e = (struct dirent64 *)(buf + at);
                        char *end;
                        long fd;
                        int ctl;

                        at += e->d_reclen;
                        errno = 0;
                        fd = strtol(e->d_name, &end, 10);
                        if (errno || *end || end == e->d_name || fd < 0 ||
                            fd > INT_MAX || fd == dir || h->n == BLOCKS_MAX)
                                continue;
                        if (!handoff_region((int)fd) || ashmem_get_control((int)fd, &ctl) < 0)
                                continue;
                        /* at most 2 * 10 digits and 2 separators: fits */
                        len += (size_t)snprintf(h->var + len, sizeof(h->var) - len, "%s%ld:%d",
                                                h->n ? "," : "", fd, ctl);
                        h->ctl[h->n++] = ctl;
                }
        }
        (void)close(dir);
        if (!h->n)
                return 0;
        while (envp && envp[ne])
                ne++;
        if (ne + 2 <= ENV_STACK) {
                h->env = h->env_stack;
        } else {
                h->env = calloc(ne + 2, sizeof(char *));
                if (!h->env) {
                        handoff_undo(h);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < ne; i++)
                if (strncmp(envp[i], BLOCKS_VAR "=", sizeof(BLOCKS_VAR)) != 0)
                        h->env[o++] = envp[i];
        h->env[o++] = h->var;
        h->env[o] = NULL;
        for (size_t i = 0; i < h->n; i++)
                if (fcntl(h->ctl[i], F_SETFD, 0) < 0) {
                        r = -errno;
                        handoff_undo(h);
                        return r;
                }
        return 0;
}

static char *const *handoff_env(const struct handoff *h, char *const envp[])
{
        return h->env ? h->env : envp;
}

/* after an exec that returned (failed), keeping its errno */
static int handoff_failed(struct handoff *h, int r)
{
        int e = errno;
        handoff_undo(h);
        errno = e;
        return r;
}

extern char **environ;

static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);
static int (*real_posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                               const posix_spawnattr_t *, char *const[], char *const[]);
static int (*real_posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                                const posix_spawnattr_t *, char *const[], char *const[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[]);
EXPORT int execv(const char *path, char *const argv[]);
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]);
EXPORT int execvp(const char *file, char *const argv[]);
EXPORT int fexecve(int fd, char *const argv[], char *const envp[]);
EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                    int flags);
EXPORT int execl(const char *path, const char *arg, ...);
EXPORT int execlp(const char *file, const char *arg, ...);
EXPORT int execle(const char *path, const char *arg, ...);
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *at, char *const argv[], char *const envp[]);
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *at, char *const argv[], char *const envp[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
        struct handoff h;
        int r;

        if (!NEXT(real_execve, "execve"))
                return fail(ENOSYS);
        r = handoff_prepare(&h, envp);
        if (r < 0)
                return fail(-r);
        return handoff_failed(&h, real_execve(path, argv, handoff_env(&h, envp)));
}

EXPORT int execv(const char *path, char *const argv[])
{
        return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
        struct handoff h;
        int r;

        if (!NEXT(real_execvpe, "execvpe"))
                return fail(ENOSYS);
        r = handoff_prepare(&h, envp);
        if (r < 0)
                return fail(-r);
        return handoff_failed(&h, real_execvpe(file, argv, handoff_env(&h, envp)));
}

EXPORT int execvp(const char *file, char *const argv[])
{
        return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
        struct handoff h;
        int r;

        if (!NEXT(real_fexecve, "fexecve"))
                return fail(ENOSYS);
        r = handoff_prepare(&h, envp);
        if (r < 0)
                return fail(-r);
        return handoff_failed(&h, real_fexecve(fd, argv, handoff_env(&h, envp)));
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                    int flags)
{
        struct handoff h;
        int r;

        if (!NEXT(real_execveat, "execveat"))
                return fail(ENOSYS);
        r = handoff_prepare(&h, envp);
        if (r < 0)
                return fail(-r);
        return handoff_failed(&h, real_execveat(dirfd, path, argv, handoff_env(&h, envp), flags));
}

/* the execl family: argv gathered from the arguments (and envp after the
 * NULL for execle), on the stack unless there are many */
#define ARGV_STACK 256
#define GATHER(argv, arg, ap, after)                                    \
        do {                                                            \
                size_t n_ = 1;                                          \
                va_list c_;                                             \
                va_copy(c_, ap);                                        \
                while (va_arg(c_, const char *))                        \
                        n_++;                                           \
                va_end(c_);                                             \
                if (n_ > 1u << 20)                                      \
                        return fail(E2BIG);                             \
                argv = n_ < ARGV_STACK ? stackv :                       \
                       calloc(n_ + 1, sizeof(char *));                  \
                if (!argv)                                              \
                        return fail(ENOMEM);                            \
                argv[0] = (char *)arg;                                  \
                for (size_t i_ = 1; i_ <= n_; i_++)                     \
                        argv[i_] = va_arg(ap, char *);                  \
                after;                                                  \
        } while (0)

/* run an exec of the execv family on a gathered argv; what comes back is
 * a failure: free argv if it was not on the stack, keeping errno */
static int exec_gathered(int (*fn)(const char *, char *const[], char *const[]),
                         const char *what, char **argv, char **stackv, char *const envp[])
{
        int r = fn(what, argv, envp), e = errno;

        if (argv != stackv)
                free(argv);
        errno = e;
        return r;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
        char **argv, *stackv[ARGV_STACK];
        va_list ap;

        va_start(ap, arg);
        GATHER(argv, arg, ap, (void)0);
        va_end(ap);
        return exec_gathered(execve, path, argv, stackv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
        char **argv, *stackv[ARGV_STACK];
        va_list ap;

        va_start(ap, arg);
        GATHER(argv, arg, ap, (void)0);
        va_end(ap);
        return exec_gathered(execvpe, file, argv, stackv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
        char **argv, **envp, *stackv[ARGV_STACK];
        va_list ap;

        va_start(ap, arg);
        GATHER(argv, arg, ap, envp = va_arg(ap, char **));
        va_end(ap);
        return exec_gathered(execve, path, argv, stackv, envp);
}

/* posix_spawn: the child has exec'd (or failed) when it returns, so the
 * descriptors go back to close-on-exec and are closed either way */
typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *,
                     const posix_spawnattr_t *, char *const[], char *const[]);

static int spawn_handoff(spawn_fn *real, pid_t *pid, const char *what,
                         const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                         char *const argv[], char *const envp[])
{
        struct handoff h;
        int r;

        if (!real)
                return ENOSYS;
        r = handoff_prepare(&h, envp);
        if (r < 0)
                return -r;
        r = real(pid, what, fa, at, argv, handoff_env(&h, envp));
        handoff_undo(&h);
        return r;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *at, char *const argv[], char *const envp[])
{
        return spawn_handoff(NEXT(real_posix_spawn, "posix_spawn"), pid, path, fa, at, argv,
                             envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *at, char *const argv[], char *const envp[])
{
        return spawn_handoff(NEXT(real_posix_spawnp, "posix_spawnp"), pid, file, fa, at, argv,
                             envp);
}

/* a decimal descriptor number, then the expected separator */
static int parse_fd(const char **s, char sep, int *fd)
{
        long v = 0;
        const char *p = *s;

        if (*p < '0' || *p > '9')
                return -1;
        while (*p >= '0' && *p <= '9') {
                v = v * 10 + (*p++ - '0');
                if (v > INT_MAX)
                        return -1;
        }
        if (*p != sep)
                return -1;
        *fd = (int)v;
        *s = *p ? p + 1 : p;
        return 0;
}

/* In the new program: attach the blocks named by ASHMEM_PRELOAD_BLOCKS.
 * The variable is anyone's to set: a pair is used only if the first is a
 * region, the second a different file that libashmem accepts as that
 * region's control block; only then is the second closed (the library
 * keeps its own duplicate). Anything else is left alone. */
static void handoff_attach(void)
{
        const char *s = getenv(BLOCKS_VAR);

        if (!s)
                return;
        for (int i = 0; *s && i < BLOCKS_MAX; i++) {
                struct stat sd, sc;
                int fd, ctl;
                const char *next = strchr(s, ',');

                if (parse_fd(&s, ':', &fd) < 0 || parse_fd(&s, next ? ',' : '\0', &ctl) < 0)
                        break;
                if (fd == ctl || fstat(fd, &sd) < 0 || fstat(ctl, &sc) < 0 ||
                    !S_ISREG(sd.st_mode) || !S_ISREG(sc.st_mode) ||
                    (sd.st_dev == sc.st_dev && sd.st_ino == sc.st_ino) || !handoff_region(fd))
                        continue;
                if (ashmem_set_control(fd, ctl) == 0) {
                        (void)fcntl(ctl, F_SETFD, FD_CLOEXEC);
                        (void)close(ctl);
                }
        }
        (void)unsetenv(BLOCKS_VAR);
}

__attribute__((constructor)) static void preload_init(void)
{
        pthread_atfork(NULL, NULL, child_after_fork);
        handoff_attach();
}
