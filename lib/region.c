/* SPDX-License-Identifier: MIT */
/*
 * The public region API: libcutils' surface (-1 and errno) and the native
 * one (negative errno), both dispatched to the driver that owns the
 * descriptor. One fstat() per call is the identity check.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../drivers/driver.h"
#include "internal/forget.h"
#include "internal/lookup.h"

static const struct am_driver *const drivers[] = {
        &am_driver_memfd,
};

/* What the drivers need of the library, handed down before their first
 * use: the broker lookup of a control block. */
static pthread_once_t handed_down = PTHREAD_ONCE_INIT;

static void hand_down(void)
{
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (drivers[i]->set_lookup)
                        drivers[i]->set_lookup(am_lookup_control);
}

/* ASHMEM_DRIVER: unset, "auto" or "memfd" choose the memfd driver, the one
 * built in (auto would prefer a working /dev/ashmem, which this build does
 * not drive). Any other value makes creation fail: -ENODEV for "ashmem",
 * -EINVAL for a name no build knows, rather than silently using another
 * driver than the one asked for. */
static int driver_from_env(const struct am_driver **ret)
{
        const char *v = getenv("ASHMEM_DRIVER");

        pthread_once(&handed_down, hand_down);
        if (!v || !*v || strcmp(v, "auto") == 0 || strcmp(v, "memfd") == 0) {
                *ret = &am_driver_memfd;
                return 0;
        }
        *ret = NULL;
        return strcmp(v, "ashmem") == 0 ? -ENODEV : -EINVAL;
}

const struct am_driver *am_driver_default(void)
{
        const struct am_driver *d;
        driver_from_env(&d);
        return d;
}

/* fstat(), as the system call of that name where the kernel's struct stat
 * is the C library's: glibc's fstat() is fstatat(fd, "", AT_EMPTY_PATH),
 * whose empty path the kernel reads and checks, a tenth of the call, and
 * every operation on a descriptor makes this one call. */
static inline int fd_stat(int fd, struct stat *st)
{
#if defined(__x86_64__) && !defined(__ILP32__) && defined(SYS_fstat)
        return (int)syscall(SYS_fstat, fd, st);
#else
        return fstat(fd, st);
#endif
}

int am_driver_of(int fd, struct stat *st, const struct am_driver **ret)
{
        if (fd < 0)
                return -EBADF;
        if (fd_stat(fd, st) < 0)
                return -errno;
        pthread_once(&handed_down, hand_down);
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
                if (drivers[i]->owns(fd, st)) {
                        *ret = drivers[i];
                        return 0;
                }
        }
        return -ENOTTY;
}

/* libcutils convention from a negative errno result */
static int classic(int r)
{
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return r;
}

const char *ashmem_driver_name(void)
{
        const struct am_driver *d = am_driver_default();
        return d ? d->name : "none";
}

int ashmem_valid(int fd)
{
        struct stat st;
        const struct am_driver *d;
        char name[ASHMEM_NAME_LEN];

        int seals;

        if (am_driver_of(fd, &st, &d) < 0)
                return 0;
        /* a memfd its holders can still resize is no region: a receiver
         * that mapped it could be cut short under the mapping (SIGBUS) */
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) !=
                         (F_SEAL_GROW | F_SEAL_SHRINK))
                return 0;
        /* get_name fails with -ENOTTY for a descriptor that is not a
         * region (a plain file, a /dev/shm file) */
        return d->get_name(fd, &st, name, sizeof(name)) >= 0;
}

int am_create(const char *name, size_t size)
{
        const struct am_driver *d;
        int saved = errno, r = driver_from_env(&d);

        if (r == 0)
                r = d->create(name, size);
        errno = saved;
        return r;
}

int ashmem_create_region(const char *name, size_t size)
{
        return classic(am_create(name, size));
}

/* The native convention leaves errno as it was: every call saves it and
 * puts it back, whatever the system calls on the way did to it. */
#define DISPATCH(fd, call)                                      \
        do {                                                    \
                struct stat st_;                                \
                const struct am_driver *d_;                     \
                int saved_ = errno;                             \
                int r_ = am_driver_of((fd), &st_, &d_);         \
                if (r_ >= 0)                                    \
                        r_ = d_->call;                          \
                errno = saved_;                                 \
                return r_;                                      \
        } while (0)

static int set_prot(int fd, int prot)              { DISPATCH(fd, set_prot(fd, &st_, prot)); }
static int pin(int fd, size_t off, size_t len)     { DISPATCH(fd, pin(fd, &st_, off, len)); }
static int unpin(int fd, size_t off, size_t len)   { DISPATCH(fd, unpin(fd, &st_, off, len)); }

int ashmem_set_prot_region(int fd, int prot)
{
        return classic(set_prot(fd, prot));
}

int ashmem_pin_region(int fd, size_t offset, size_t len)
{
        return classic(pin(fd, offset, len));
}

int ashmem_unpin_region(int fd, size_t offset, size_t len)
{
        return classic(unpin(fd, offset, len));
}

int ashmem_get_size_region(int fd)
{
        size_t size;
        int r = ashmem_get_size(fd, &size);

        if (r < 0)
                return classic(r);
        if (size > INT_MAX)
                return classic(-EOVERFLOW);
        return (int)size;
}

int ashmem_get_name(int fd, char *buf, size_t buflen)
{
        if (!buf)
                return -EINVAL;
        DISPATCH(fd, get_name(fd, &st_, buf, buflen));
}

int ashmem_get_prot(int fd)
{
        DISPATCH(fd, get_prot(fd, &st_));
}

int ashmem_get_size(int fd, size_t *size)
{
        if (!size)
                return -EINVAL;
        {
                /* the size of a descriptor that is no region is no answer */
                int v = ashmem_get_prot(fd);
                if (v < 0)
                        return v;
        }
        DISPATCH(fd, get_size(fd, &st_, size));
}

int ashmem_pin_status(int fd, size_t offset, size_t len)
{
        DISPATCH(fd, pin_status(fd, &st_, offset, len));
}

int ashmem_purge(int fd)
{
        DISPATCH(fd, purge(fd, &st_));
}

int ashmem_map(int fd, int prot, size_t offset, size_t len, void **ret)
{
        if (!ret)
                return -EINVAL;
        DISPATCH(fd, map(fd, &st_, prot, offset, len, ret));
}

int ashmem_unmap(void *addr, size_t len)
{
        int saved = errno, r;

        if (!addr || len == 0)
                return -EINVAL;
        r = munmap(addr, len) < 0 ? -errno : 0;
        errno = saved;
        return r;
}

int ashmem_get_control(int fd, int *ret_control_fd)
{
        if (!ret_control_fd)
                return -EINVAL;
        DISPATCH(fd, get_control(fd, &st_, ret_control_fd));
}

int ashmem_set_control(int fd, int control_fd)
{
        if (control_fd < 0)
                return -EBADF;
        DISPATCH(fd, set_control(fd, &st_, control_fd));
}

int ashmem_get_stats(int fd, ashmem_stats *ret)
{
        if (!ret)
                return -EINVAL;
        DISPATCH(fd, get_stats(fd, &st_, ret));
}

int ashmem_get_page_map(int fd, char *map, size_t pages)
{
        if (!map && pages)
                return -EINVAL;
        DISPATCH(fd, get_page_map(fd, &st_, map, pages));
}

int ashmem_collect(void)
{
        int saved = errno, r = 0;

        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
                int n = drivers[i]->collect ? drivers[i]->collect() : 0;
                if (r >= 0)
                        r = n < 0 ? n : r + n;
        }
        errno = saved;
        return r;
}

int am_forget_region(const struct stat *st)
{
        int saved = errno, r = 0;

        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (drivers[i]->forget)
                        r += drivers[i]->forget(st);
        errno = saved;
        return r;
}

void am_forget_thread(void)
{
        int saved = errno;

        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (drivers[i]->forget)
                        (void)drivers[i]->forget(NULL);
        errno = saved;
}

int am_has_control(const struct stat *st, int writable)
{
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (drivers[i]->has_control && drivers[i]->has_control(st, writable))
                        return 1;
        return 0;
}

void am_manual_forget(int on)
{
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (drivers[i]->set_manual)
                        drivers[i]->set_manual(on);
}
