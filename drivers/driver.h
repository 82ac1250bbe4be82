/* SPDX-License-Identifier: MIT */
/*
 * The driver interface: every way of providing ashmem regions implements one
 * ops table. Drivers never print; they return a negative errno on failure.
 *
 * Every operation on an existing region gets the descriptor and its fstat()
 * result, taken once by the caller: that one system call is the identity
 * check of the fast paths.
 */
#ifndef ASHMEM_DRIVER_H
#define ASHMEM_DRIVER_H

#include <stddef.h>
#include <sys/stat.h>

struct ashmem_stats;

struct am_driver {
        const char *name;
        /* 0 if the driver can create regions on this machine. */
        int (*probe)(void);
        /* 1 if the descriptor with this stat is one of the driver's. */
        int (*owns)(int fd, const struct stat *st);
        /* A new region's descriptor (close-on-exec). */
        int (*create)(const char *name, size_t size);
        int (*get_name)(int fd, const struct stat *st, char *buf, size_t len);
        int (*get_size)(int fd, const struct stat *st, size_t *size);
        int (*get_prot)(int fd, const struct stat *st);
        int (*set_prot)(int fd, const struct stat *st, int prot);
        int (*pin)(int fd, const struct stat *st, size_t off, size_t len);
        int (*unpin)(int fd, const struct stat *st, size_t off, size_t len);
        int (*pin_status)(int fd, const struct stat *st, size_t off, size_t len);
        int (*purge)(int fd, const struct stat *st);
        int (*map)(int fd, const struct stat *st, int prot, size_t off,
                   size_t len, void **ret);
        int (*get_stats)(int fd, const struct stat *st, struct ashmem_stats *ret);
        int (*get_page_map)(int fd, const struct stat *st, char *map, size_t n);
        int (*get_control)(int fd, const struct stat *st, int *ret);
        int (*set_control)(int fd, const struct stat *st, int control_fd);
};

extern const struct am_driver am_driver_memfd;

/* The driver for new regions (ASHMEM_DRIVER, default auto); NULL when
 * ASHMEM_DRIVER names a driver this build lacks. */
const struct am_driver *am_driver_default(void);
/* Create a region with the default driver: a descriptor or -errno
 * (-ENODEV/-EINVAL when ASHMEM_DRIVER names no driver of this build). */
int am_create(const char *name, size_t size);
/* The driver owning fd; fills *st. -EBADF for a bad fd, -ENOTTY for a
 * descriptor no driver owns. */
int am_driver_of(int fd, struct stat *st, const struct am_driver **ret);

/* Provided by the library (lib/broker.c) for the drivers: ask a running
 * broker for the control block of a region descriptor this process has no
 * pin state for, and attach it. 0 if attached, else -ENOENT (no broker, it
 * does not hold the region, or the lookup is off). Never starts a broker;
 * misses are remembered for a second. */
int am_lookup_control(int fd, const struct stat *st);

#endif
