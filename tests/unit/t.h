/* SPDX-License-Identifier: MIT */
/*
 * A small unit-test harness. Each TEST runs in its own forked child, so a
 * crash fails that test only; the harness also fails a test that leaves a
 * descriptor open. A test binary prints one line per test and a summary
 * line "N passed, N failed". `test_x NAME...` runs only the named tests.
 */
#ifndef ASHMEM_TEST_T_H
#define ASHMEM_TEST_T_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void t_register(const char *name, void (*fn)(void));
void t_fail(const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4), noreturn));
/* Do not count descriptors in the leak check of the current test. */
void t_allow_fd_leak(void);

#define TEST(name)                                                      \
        static void name(void);                                         \
        __attribute__((constructor)) static void t_reg_##name(void)     \
        { t_register(#name, name); }                                    \
        static void name(void)

#define CHECK(cond)                                                     \
        do { if (!(cond)) t_fail(__FILE__, __LINE__, "%s", #cond); } while (0)

#define CHECK_EQ(a, b)                                                  \
        do {                                                            \
                long long a_ = (long long)(a), b_ = (long long)(b);     \
                if (a_ != b_)                                           \
                        t_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                               #a, a_, #b, b_);                         \
        } while (0)

/* A classic call that must fail with errno e. */
#define CHECK_ERRNO(call, e)                                            \
        do {                                                            \
                errno = 0;                                              \
                long long r_ = (long long)(call);                       \
                if (r_ != -1 || errno != (e))                           \
                        t_fail(__FILE__, __LINE__, "%s = %lld errno %s, expected -1 errno %s", \
                               #call, r_, strerrorname_np(errno) ? strerrorname_np(errno) : "0", \
                               strerrorname_np(e));                     \
        } while (0)

/* A native call that must return -e. */
#define CHECK_NEG(call, e)                                              \
        do {                                                            \
                long long r_ = (long long)(call);                       \
                if (r_ != -(e))                                         \
                        t_fail(__FILE__, __LINE__, "%s = %lld, expected -%s", \
                               #call, r_, strerrorname_np(e));          \
        } while (0)

/* Run fn(arg) in a forked child; return its wait status. */
int t_in_child(void (*fn)(void *), void *arg);

/* How many of this process's descriptors are control blocks (their
 * /proc/self/fd link names an ashmem-control memfd), with fn(fd, arg)
 * called for each when fn is not NULL; a test fails if the directory
 * cannot be read. */
int t_control_walk(void (*fn)(int fd, void *arg), void *arg);

/* The same count, alone. */
int t_control_fds(void);

#endif
