/* SPDX-License-Identifier: MIT */
/*
 * run: a command under libashmem-preload.so, so that a program written for
 * Android's /dev/ashmem (open and the ashmem ioctls) runs unmodified.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "output.h"
#include "region.h"

#define PRELOAD_NAME "libashmem-preload.so"
/* what separates the entries of LD_PRELOAD */
#define LD_SEPARATORS " :"

#ifndef ASHMEM_LIBDIR
#define ASHMEM_LIBDIR "/usr/local/lib"
#endif

/* path = dir + rest, and readable: 1, else 0 */
static int readable(char *path, size_t len, const char *dir, const char *rest)
{
        int n = snprintf(path, len, "%s%s", dir, rest);

        return n > 0 && (size_t)n < len && access(path, R_OK) == 0;
}

/* The interposer: $ASHMEM_PRELOAD; else beside this ashmemctl (a build
 * tree), in ../lib from it (an install), or in the LIBDIR it was built
 * for. 0, or 1 after saying what is missing. */
static int find_preload(struct cmd_ctx *ctx, char *path, size_t len)
{
        const char *env = getenv("ASHMEM_PRELOAD");
        char self[PATH_MAX], *slash;
        ssize_t n;

        if (env && *env) {
                if (env[0] != '/')
                        return cmd_error(ctx, EINVAL, "ASHMEM_PRELOAD=%s: not an absolute path", env);
                if (access(env, R_OK) < 0)
                        return cmd_error(ctx, errno, "ASHMEM_PRELOAD=%s", env);
                if (!readable(path, len, env, ""))
                        return cmd_error(ctx, ENAMETOOLONG, "ASHMEM_PRELOAD=%s", env);
                if (strpbrk(path, LD_SEPARATORS))
                        return cmd_error(ctx, EINVAL, "ASHMEM_PRELOAD=%s: a space or colon in "
                                         "the path, which LD_PRELOAD cannot hold", env);
                return 0;
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        if (readable(path, len, self, "/" PRELOAD_NAME) ||
                            readable(path, len, self, "/../lib/" PRELOAD_NAME)) {
                                if (strpbrk(path, LD_SEPARATORS))
                                        return cmd_error(ctx, EINVAL, "%s: a space or colon in the "
                                                         "path, which LD_PRELOAD cannot hold "
                                                         "(set ASHMEM_PRELOAD)", path);
                                return 0;
                        }
                }
        }
        if (readable(path, len, ASHMEM_LIBDIR, "/" PRELOAD_NAME))
                return strpbrk(path, LD_SEPARATORS) ?
                       cmd_error(ctx, EINVAL, "%s: a space or colon in the path, which "
                                 "LD_PRELOAD cannot hold (set ASHMEM_PRELOAD)", path) : 0;
        return cmd_error(ctx, ENOENT, "%s: not beside ashmemctl nor in %s (set ASHMEM_PRELOAD)",
                         PRELOAD_NAME, ASHMEM_LIBDIR);
}

/* LD_PRELOAD with the interposer added after what is there (a sanitizer
 * runtime must stay first), once */
static int add_preload(struct cmd_ctx *ctx, const char *lib)
{
        const char *have = getenv("LD_PRELOAD");
        char *v;
        int r;

        if (have && *have) {
                const char *p = have;
                size_t l = strlen(lib);
                while ((p = strstr(p, lib))) {
                        if ((p == have || p[-1] == ':' || p[-1] == ' ') &&
                            (p[l] == 0 || p[l] == ':' || p[l] == ' '))
                                return 0;
                        p += l;
                }
                if (asprintf(&v, "%s:%s", have, lib) < 0)
                        return cmd_error(ctx, ENOMEM, "setting LD_PRELOAD");
        } else if (!(v = strdup(lib))) {
                return cmd_error(ctx, ENOMEM, "setting LD_PRELOAD");
        }
        r = setenv("LD_PRELOAD", v, 1);
        free(v);
        return r < 0 ? cmd_error(ctx, errno, "setting LD_PRELOAD") : 0;
}

static int run_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        char lib[PATH_MAX];
        pid_t pid;

        if (a->nrest == 0)
                return cmd_usage(ctx, "no command to run (run -- CMD [ARGS...])");
        if (find_preload(ctx, lib, sizeof(lib)) || add_preload(ctx, lib))
                return 1;
        if (!ctx->shell)
                return cmd_exec_argv(ctx, a->rest);    /* its exit status is ours */
        /* the shell goes on: run the command in a child and wait for it */
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return cmd_error(ctx, errno, "fork");
        if (pid == 0)
                _exit(cmd_exec_argv(ctx, a->rest));
        return cmd_wait_child(ctx, pid, a->rest[0]);
}

const struct cmd_entry cmd_run_entry = {
        .name = "run", .args_usage = "-- CMD [ARGS...]",
        .flags = CMD_PASSTHROUGH, .exec = run_exec,
        .summary = "run a command with /dev/ashmem and its ioctls (LD_PRELOAD=" PRELOAD_NAME ")",
};
