/* SPDX-License-Identifier: MIT */
/*
 * A memory cgroup of a bench program's own, made under the cgroup this
 * process is in (cgroup v2, else the v1 memory controller): what it
 * charges (kernel memory included), a limit, and its removal.
 *
 * The cgroup is named ashmem-bench-PID-TAG. Making one first removes the
 * empty cgroups of that name pattern whose program is gone (left behind by
 * a program killed with SIGKILL). bench_cgroup_remove() kills what is
 * still in the cgroup (SIGKILL, then waits until it is empty) and removes
 * it; call it at exit and from signal handlers' exit paths.
 */
#ifndef BENCH_SUPPORT_CGROUP_H
#define BENCH_SUPPORT_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_cgroup {
        char path[PATH_MAX];    /* "" when none */
        int v2;
};

/* Make the cgroup. 0, or -errno with the reason in why (a sentence). */
int bench_cgroup_create(struct bench_cgroup *cg, const char *tag, char *why, size_t len);
/* Move process pid (0: this one) into it. 0 or -errno. */
int bench_cgroup_enter(const struct bench_cgroup *cg, pid_t pid);
/* The bytes charged to it now (user and kernel memory), or -errno. */
int64_t bench_cgroup_usage(const struct bench_cgroup *cg);
/* Its memory limit (memory.max, v1: memory.limit_in_bytes). 0 or -errno. */
int bench_cgroup_set_limit(const struct bench_cgroup *cg, uint64_t bytes);
/* Kill what is left in it and remove it; nothing when there is none.
 * 0 or -errno (the path is kept then, for the message). */
int bench_cgroup_remove(struct bench_cgroup *cg);
/* "cgroup v2 memory.current" or "cgroup v1 memory.usage_in_bytes". */
const char *bench_cgroup_counter(const struct bench_cgroup *cg);

#endif
