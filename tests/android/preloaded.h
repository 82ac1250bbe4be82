/* SPDX-License-Identifier: MIT */
/*
 * A test program that drives /dev/ashmem runs under libashmem-preload.so:
 * started without it, it starts itself again with LD_PRELOAD naming
 * $ASHMEM_TEST_PRELOAD (else libashmem-preload.so of its build, one folder
 * up), after the sanitizer runtime (ASan's, TSan's) when the program is
 * sanitized: that one must come first.
 */
#ifndef ASHMEM_TEST_PRELOADED_H
#define ASHMEM_TEST_PRELOADED_H

#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int find_sanitizer(struct dl_phdr_info *info, size_t size, void *data)
{
        (void)size;
        if (info->dlpi_name && (strstr(info->dlpi_name, "/libasan.so") ||
                                strstr(info->dlpi_name, "/libtsan.so"))) {
                snprintf(data, PATH_MAX, "%s", info->dlpi_name);
                return 1;
        }
        return 0;
}

__attribute__((constructor(101))) static void run_preloaded(int argc, char **argv)
{
        static char self[PATH_MAX], lib[PATH_MAX], asan[PATH_MAX], list[3 * PATH_MAX];
        const char *env = getenv("ASHMEM_TEST_PRELOAD"), *have = getenv("LD_PRELOAD");
        ssize_t n;

        (void)argc;
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
                perror("readlink /proc/self/exe");
                exit(1);
        }
        self[n] = 0;
        if (env && *env) {
                snprintf(lib, sizeof(lib), "%s", env);
        } else {
                char *slash = strrchr(self, '/');
                snprintf(lib, sizeof(lib), "%.*s/../libashmem-preload.so",
                         (int)(slash - self), self);
        }
        if (have && strstr(have, "libashmem-preload.so"))
                return;
        dl_iterate_phdr(find_sanitizer, asan);
        snprintf(list, sizeof(list), "%s%s%s", asan, asan[0] ? " " : "", lib);
        if (setenv("LD_PRELOAD", list, 1) < 0) {
                perror("setenv");
                exit(1);
        }
        execv(self, argv);
        fprintf(stderr, "%s: exec under LD_PRELOAD=%s: %m\n", self, list);
        exit(1);
}

#endif
