/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the drivers, the
 * broker daemon (broker/), ashmemctl and the tests. Not installed, not
 * exported from libashmem.so.
 *
 * The monotonic clock, for deadlines and ages.
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

#endif
