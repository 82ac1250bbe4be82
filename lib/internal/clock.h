/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/), ashmemctl and the tests. Not installed, not
 * exported from libashmem.so.
 *
 * The monotonic clock, for deadlines and ages, and waiting on a
 * descriptor until a deadline.
 */
#ifndef ASHMEM_LIB_CLOCK_H
#define ASHMEM_LIB_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds; with coarse, CLOCK_MONOTONIC_COARSE (the
 * same timebase a few milliseconds behind, and much cheaper to read).
 * Never 0, so that 0 can mean "not yet": 1 if the clock cannot be read. */
int64_t am_mono_ns(int coarse);

/* CLOCK_MONOTONIC in milliseconds. */
long long am_mono_ms(void);

/* Wait until fd is ready for events (POLLIN, POLLOUT) or the deadline (in
 * am_mono_ms() time) passes; EINTR is retried. 0 when ready (or in error or
 * hung up: the next call on it says which), -ETIMEDOUT, or -errno. */
int am_wait_fd(int fd, short events, long long deadline);

#endif
