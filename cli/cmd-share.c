/* SPDX-License-Identifier: MIT */
/*
 * share, slice, unshare (rm), attach: names for regions, and regions handed
 * to other programs.
 *
 * share from the command line registers a region descriptor that already
 * exists somewhere:
 *   share NAME --fd N        a descriptor ashmemctl inherited (from the
 *                            program that runs it: `3<&...`, or a server
 *                            that forks it);
 *   share NAME --file PATH   a path that opens the region, typically
 *                            /proc/PID/fd/N of a running process that holds
 *                            it (opened read-write: the same memfd).
 * When the process holding the region also holds its pin state (a region
 * made by libashmem), that goes along: ashmemctl looks for the region's
 * control block among the same process's descriptors (/proc/PID/fd, or its
 * own for --fd) and attaches it, so every holder shares one pin state.
 * In the shell, `share NAME` with neither shares a region made there with
 * `create --local`.
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/internal/errname.h"
#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"

/* ---------------------------------------------------------------- share */

static const struct cmd_opt share_opts[] = {
        { "fd", 0, "N", NULL, "share the region open on descriptor N (inherited)" },
        { "file", 'f', "PATH", "file", "share the region PATH opens (e.g. /proc/PID/fd/N)" },
        { "mode", 'm', "MODE", NULL, "who may attach, octal like a file's (default 0600)" },
        { "offset", 'o', "N", NULL, "share only the view from byte N (with --length)" },
        { "length", 'l', "N", NULL, "bytes in the view" },
        { "transient", 't', NULL, NULL, "gone when this connection closes (in the shell)" },
        { "keep", 'k', NULL, NULL, "a local region of the shell: the name outlives the shell" },
        { 0 }
};

/* Is the descriptor path of link a libashmem control block? */
static int is_control_link(const char *dir, const char *ent)
{
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s", dir, ent);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return 0;
        target[n] = 0;
        return strncmp(target, "/memfd:ashmem-control", 21) == 0;
}

/* Find the pin state of region fd among the descriptors in dir
 * ("/proc/PID/fd") and attach it: 1 found, 0 not. */
static int adopt_control(int fd, const char *dir)
{
        DIR *d;
        struct dirent *de;
        int found = 0, cfd;

        if (ashmem_get_control(fd, &cfd) == 0) {
                close(cfd);
                return 1;       /* this process has it already */
        }
        d = opendir(dir);
        if (!d)
                return 0;
        while (!found && (de = readdir(d))) {
                char path[PATH_MAX];
                if (de->d_name[0] == '.' || !is_control_link(dir, de->d_name))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                cfd = open(path, O_RDWR | O_CLOEXEC);
                if (cfd < 0)
                        continue;
                /* the library checks that the block belongs to this region */
                found = ashmem_set_control(fd, cfd) == 0;
                close(cfd);
        }
        closedir(d);
        return found;
}

/* "/proc/PID/fd" for a path "/proc/PID/fd/N", else "". */
static void proc_fd_dir(const char *path, char *dir, size_t len)
{
        const char *p = path + 6, *slash;

        dir[0] = 0;
        if (strncmp(path, "/proc/", 6) != 0)
                return;
        slash = strchr(p, '/');
        if (!slash || strncmp(slash, "/fd/", 4) != 0 || !slash[4] || strchr(slash + 4, '/'))
                return;
        snprintf(dir, len, "%.*s/fd", (int)(slash - path), path);
}

static int share_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0], *fds = cmd_opt(a, "fd"), *file = cmd_opt(a, "file");
        const char *ms = cmd_opt(a, "mode"), *os = cmd_opt(a, "offset"), *ls = cmd_opt(a, "length");
        int transient = cmd_flag(a, "transient"), mode = ASHMEM_BROKER_DEFAULT, fd = -1, own = 0;
        char err[PARSE_ERR_LEN], dir[PATH_MAX];
        uint64_t off = 0, len = 0, v;
        ashmem_region_info info;
        ashmem_broker *b;
        int r;

        if ((r = arg_name(ctx, name)))
                return r;
        if ((r = arg_mode(ctx, ms, &mode)))
                return r;
        if (os && (r = arg_offset(ctx, "offset", os, &off)))
                return r;
        if (ls && (r = arg_size(ctx, "length", ls, &len)))
                return r;
        if (os && !ls)
                return cmd_usage(ctx, "--offset needs --length");
        if (fds && file)
                return cmd_usage(ctx, "give --fd or --file, not both");
        if ((r = arg_shell_only(ctx, transient, "--transient shares end with the connection")))
                return r;
        if (cmd_flag(a, "keep") && (fds || file || !cli_local))
                return cmd_usage(ctx, "--keep is for a local region of the shell (share NAME after create --local)");
        if (fds) {
                if (parse_uint(fds, "descriptor", INT_MAX, &v, err) < 0)
                        return cmd_usage(ctx, "%s", err);
                fd = (int)v;
                if (fcntl(fd, F_GETFD) < 0)
                        return cli_error(ctx, EBADF, "descriptor %d is not open", fd);
                adopt_control(fd, "/proc/self/fd");
        } else if (file) {
                fd = open(file, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        return cmd_error(ctx, errno, "%s", file);
                own = 1;
                proc_fd_dir(file, dir, sizeof(dir));
                if (dir[0])
                        adopt_control(fd, dir);
        } else if (cli_local) {
                fd = cli_local->find(ctx, name);
                if (fd < 0)
                        return cli_error(ctx, -fd, "no local region named %s (create --local makes one)", name);
                /* the shell's region is shared the way a server process
                 * shares its own: the name goes when the shell does */
                if (!cmd_flag(a, "keep"))
                        transient = 1;
                else if (transient)
                        return cmd_usage(ctx, "--keep and --transient do not go together");
        } else {
                return cmd_usage(ctx, "say which region: --fd N (an inherited descriptor) or --file PATH (like /proc/PID/fd/N)");
        }
        if (!ashmem_valid(fd)) {
                r = cli_error(ctx, EINVAL, "%s%s is not a shared memory region", fds ? "descriptor " : "",
                              fds ? fds : file ? file : name);
                goto out;
        }
        if ((r = cli_broker(ctx, &b)))
                goto out;
        if (ls)
                r = ashmem_broker_share_range(b, fd, off, len, name, mode, transient, &info);
        else
                r = ashmem_broker_share(b, fd, name, mode, transient, &info);
        if (r < 0) {
                if (r == -EACCES)
                        r = cli_error(ctx, EACCES, "%s: the descriptor is read-only; share needs a read-write one", name);
                else if (r == -EINVAL && ls)
                        r = cli_error(ctx, EINVAL, "%s: the view %llu+%llu is not inside the region", name,
                                      (unsigned long long)off, (unsigned long long)len);
                else
                        r = cli_broker_error(ctx, r, name);
                goto out;
        }
        r = out_region(ctx, &info);
out:
        if (own)
                close(fd);
        return r;
}

static const char *const share_complete[] = { "none", NULL };
/* in the shell, share NAME shares a local region: complete those */
static const char *const share_name_complete[] = { "local", NULL };

const struct cmd_entry cmd_share_entry = {
        .name = "share", .args_usage = "NAME", .flags = CMD_BROKER | CMD_AUTOSTART, .exec = share_exec,
        .summary = "register an existing region with the broker (--fd N, --file PATH)",
        .opts = share_opts, .min_args = 1, .max_args = 1, .complete_args = share_name_complete,
};

/* ---------------------------------------------------------------- slice */

static const struct cmd_opt slice_opts[] = {
        { "of", 0, "REGION", "region", "the region to cut the view from (required)" },
        { "offset", 'o', "N", NULL, "bytes into that region (default 0)" },
        { "length", 'l', "N", NULL, "bytes in the view (required)" },
        { "mode", 'm', "MODE", NULL, "who may attach, octal like a file's (default 0600)" },
        { 0 }
};

static int slice_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0], *of = cmd_opt(a, "of"), *os = cmd_opt(a, "offset");
        const char *ls = cmd_opt(a, "length"), *ms = cmd_opt(a, "mode");
        int mode = ASHMEM_BROKER_DEFAULT, r;
        uint64_t off = 0, len = 0;
        ashmem_region_info info;
        ashmem_broker *b;

        if ((r = arg_name(ctx, name)))
                return r;
        if (!of)
                return cmd_usage(ctx, "--of REGION is required");
        if (!ls)
                return cmd_usage(ctx, "--length N is required");
        if ((r = arg_name(ctx, of)))
                return r;
        if (os && (r = arg_offset(ctx, "offset", os, &off)))
                return r;
        if ((r = arg_size(ctx, "length", ls, &len)))
                return r;
        if ((r = arg_mode(ctx, ms, &mode)))
                return r;
        if (cli_broker(ctx, &b))
                return 1;
        r = ashmem_broker_slice(b, name, of, off, len, mode, &info);
        if (r == -ENOENT)
                return cli_error(ctx, ENOENT, "no such region: %s", of);
        if (r == -EPERM)
                return cli_error(ctx, EPERM, "mode %s is wider than the mode of %s: a slice may only narrow it",
                                 ms ? ms : "0600", of);
        if (r == -EINVAL)
                return cli_error(ctx, EINVAL, "offset %llu + length %llu is not inside %s",
                                 (unsigned long long)off, (unsigned long long)len, of);
        if (r < 0)
                return cli_broker_error(ctx, r, r == -EEXIST ? name : of);
        return out_region(ctx, &info);
}

const struct cmd_entry cmd_slice_entry = {
        .name = "slice", .args_usage = "NAME", .flags = CMD_BROKER | CMD_AUTOSTART, .exec = slice_exec,
        .summary = "name a view (offset, length) of a shared region",
        .opts = slice_opts, .min_args = 1, .max_args = 1, .complete_args = share_complete,
};

/* ---------------------------------------------------------------- unshare */

static const struct cmd_opt unshare_opts[] = {
        { "force", 'f', NULL, NULL, "names that do not exist are no error" },
        { 0 }
};

/* Every name is tried; each one removed is reported ("removed NAME", and
 * in JSON under "removed"), each one that could not be as an error (and
 * in JSON under "failed", with its errno and message). */
static int unshare_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        int force = cmd_flag(a, "force"), failed = 0, r;
        ashmem_broker *b;
        struct out o;
        int *res;

        for (int i = 0; i < a->argc; i++)
                if ((r = arg_name(ctx, a->argv[i])))
                        return r;
        /* no broker running holds no names */
        if (cli_broker_opt(ctx, &b))
                return 1;
        res = calloc((size_t)a->argc, sizeof(*res));
        if (!res)
                return cmd_error(ctx, ENOMEM, "removing names");
        out_begin(&o, ctx, OUT_REPORT);
        out_open_array(&o, "removed");
        for (int i = 0; i < a->argc; i++) {
                res[i] = b ? ashmem_broker_unshare(b, a->argv[i]) : -ENOENT;
                if (res[i] == 0)
                        out_str(&o, OUT_ANY, NULL, "removed %s\n", a->argv[i]);
        }
        out_close(&o);
        out_open_array(&o, "failed");
        for (int i = 0; i < a->argc; i++) {
                char msg[512];
                if (res[i] == 0 || (force && res[i] == -ENOENT))
                        continue;
                failed = 1;
                cli_broker_message(res[i], a->argv[i], NULL, msg, sizeof(msg));
                if (!b) {
                        char path[108];
                        size_t l = strlen(msg);
                        cmd_socket_path(ctx, path, sizeof(path));
                        snprintf(msg + l, sizeof(msg) - l, " (no broker is running on %s)", path);
                }
                out_open_object(&o, NULL);
                out_str(&o, OUT_JSON, "name", NULL, a->argv[i]);
                out_str(&o, OUT_JSON, "errno", NULL, am_errno_name(-res[i], "EINVAL"));
                out_str(&o, OUT_JSON, "message", NULL, msg);
                out_close(&o);
                if (!ctx->json)
                        cli_error(ctx, -res[i], "%s", msg);
        }
        out_close(&o);
        free(res);
        r = out_end(&o);
        return failed ? 1 : r;
}

const struct cmd_entry cmd_unshare_entry = {
        .name = "unshare", .alias = "rm", .args_usage = "NAME...",
        .flags = CMD_BROKER, .exec = unshare_exec,
        .summary = "remove names from the broker (holders keep their descriptors)",
        .opts = unshare_opts, .min_args = 1, .max_args = -1, .complete_args = cmd_complete_regions,
};

/* ---------------------------------------------------------------- attach */

static const struct cmd_opt attach_opts[] = {
        { "ro", 'r', NULL, NULL, "attach read-only" },
        { "fd", 0, "N", NULL, "give the command the descriptor as N" },
        { "owner", 0, "USER", NULL, "refuse the name unless USER (a name or uid) owns it" },
        { "force", 'f', NULL, NULL, "allow --fd 0, 1 or 2 (the command's stdin, stdout, stderr)" },
        { 0 }
};

/* USER as a uid: a user name, or a number; 0 or EXIT_USAGE. */
static int arg_user(struct cmd_ctx *ctx, const char *s, uid_t *uid)
{
        char buf[4096], err[PARSE_ERR_LEN];
        struct passwd pw, *res = NULL;
        uint64_t v;

        if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) == 0 && res) {
                *uid = res->pw_uid;
                return 0;
        }
        if (parse_uint(s, "owner", UINT32_MAX - 1, &v, err) < 0)
                return cmd_usage(ctx, "--owner %s: no such user", s);
        *uid = (uid_t)v;
        return 0;
}

/* In the process that runs the command: put the descriptor in place, set
 * the environment, exec. Returns only on failure, with an exit status. */
static int run_command(struct cmd_ctx *ctx, const struct region *reg, int target,
                       char **argv)
{
        char num[32];
        int fd = reg->fd;

        if (target >= 0 && target != fd) {
                if (dup2(fd, target) < 0)       /* the new descriptor is inheritable */
                        return cmd_error(ctx, errno, "putting the descriptor at %d", target);
                fd = target;
        } else {
                int fl = fcntl(fd, F_GETFD);
                if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                        return cmd_error(ctx, errno, "making the descriptor inheritable");
        }
        snprintf(num, sizeof(num), "%d", fd);
        if (setenv("ASHMEM_FD", num, 1) < 0)
                return cmd_error(ctx, errno, "setting ASHMEM_FD");
        snprintf(num, sizeof(num), "%zu", reg->len);
        if (setenv("ASHMEM_SIZE", num, 1) < 0)
                return cmd_error(ctx, errno, "setting ASHMEM_SIZE");
        snprintf(num, sizeof(num), "%zu", reg->off);
        if (setenv("ASHMEM_OFFSET", num, 1) < 0 || setenv("ASHMEM_NAME", reg->name, 1) < 0)
                return cmd_error(ctx, errno, "setting the environment");
        if (ctx->socket && setenv("ASHMEM_SOCKET", ctx->socket, 1) < 0)
                return cmd_error(ctx, errno, "setting ASHMEM_SOCKET");
        return cmd_exec_argv(ctx, argv);
}

static int attach_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0], *fds = cmd_opt(a, "fd");
        struct rlimit rl;
        char err[PARSE_ERR_LEN];
        struct region reg;
        int target = -1, r;
        uid_t owner = (uid_t)-1;
        uint64_t v;
        pid_t pid;

        if ((r = arg_name(ctx, name)))
                return r;
        if (fds) {
                if (parse_uint(fds, "descriptor", 1 << 20, &v, err) < 0)
                        return cmd_usage(ctx, "%s", err);
                target = (int)v;
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                    (rlim_t)target >= rl.rlim_cur)
                        return cmd_usage(ctx, "--fd %d is past the descriptor limit of the process "
                                         "(ulimit -n: %llu)", target, (unsigned long long)rl.rlim_cur);
                if (target <= 2 && !cmd_flag(a, "force"))
                        return cmd_usage(ctx, "--fd %d would replace the command's %s with the region "
                                         "(add --force if that is what you want)", target,
                                         target == 0 ? "stdin" : target == 1 ? "stdout" : "stderr");
        }
        if (a->nrest == 0)
                return cmd_usage(ctx, "no command to run (attach NAME -- CMD [ARGS...])");
        if (cmd_opt(a, "owner") && (r = arg_user(ctx, cmd_opt(a, "owner"), &owner)))
                return r;
        if (region_attach_owned(ctx, name, !cmd_flag(a, "ro"), owner, &reg))
                return 1;
        if (!ctx->shell) {
                /* the command takes ashmemctl's place: its exit status is ours */
                r = run_command(ctx, &reg, target, a->rest);
                region_release(&reg);
                return r;
        }
        /* the shell goes on: run the command in a child and wait for it */
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                r = cmd_error(ctx, errno, "fork");
                region_release(&reg);
                return r;
        }
        if (pid == 0)
                _exit(run_command(ctx, &reg, target, a->rest));
        region_release(&reg);
        return cmd_wait_child(ctx, pid, a->rest[0]);
}

const struct cmd_entry cmd_attach_entry = {
        .name = "attach", .args_usage = "NAME -- CMD [ARGS...]",
        .flags = CMD_BROKER | CMD_PASSTHROUGH, .exec = attach_exec,
        .summary = "run a command with the region's descriptor (ASHMEM_FD, ASHMEM_SIZE, ...)",
        .opts = attach_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};
