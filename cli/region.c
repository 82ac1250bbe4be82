/* SPDX-License-Identifier: MIT */
/* Helpers shared by the region commands. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lib/internal/forget.h"
#include "lib/internal/sockdir.h"
#include "broker.h"
#include "cmd.h"
#include "parse.h"
#include "region.h"

const struct cli_local_ops *cli_local;

int cli_error(struct cmd_ctx *ctx, int err, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        cmd_verror(ctx, err, 0, fmt, ap);
        va_end(ap);
        return 1;
}

/* EMFILE without the broker's words: the options that may be at it */
static const char limits_reached[] = "the broker's limit on connections or descriptors is "
                                     "reached (broker run --max-connections, "
                                     "--max-uid-connections, --max-uid-fds)";

void cli_broker_message(int r, const char *name, const char *why, char *buf, size_t len)
{
        int e = r < 0 ? -r : r;

        switch (e) {
        case ENOENT:
                snprintf(buf, len, "no such region: %s", name);
                break;
        case EEXIST:
                snprintf(buf, len, "a region named %s exists already", name);
                break;
        case EACCES:
                snprintf(buf, len, "%s: permission denied", name);
                break;
        case EPERM:
                snprintf(buf, len, "%s: operation not permitted", name);
                break;
        case EDQUOT:
                snprintf(buf, len, "%s: the broker's per-user byte limit would be passed "
                         "(broker run --max-bytes SIZE; default the machine's memory)", name);
                break;
        case ENOSPC:
                snprintf(buf, len, "%s: the broker's per-user limit on names is reached "
                         "(broker run --max-regions N)", name);
                break;
        case ESTALE:
                snprintf(buf, len, "%s: a slice of a region that was removed (stale; rm it)", name);
                break;
        default:
                /* what the broker said is wrong, else the errno's text */
                snprintf(buf, len, "%s: %s", name, why && *why ? why :
                         e == EMFILE ? limits_reached : strerror(e));
                break;
        }
}

const char *cli_broker_why(const struct cmd_ctx *ctx)
{
        return ctx->broker ? ashmem_broker_error(ctx->broker) : "";
}

int cli_broker_fail(struct cmd_ctx *ctx, int r, const char *why, const char *what)
{
        int e = r < 0 ? -r : r;

        if (why && *why)
                return cli_error(ctx, e, "%s: %s", what, why);
        if (e == EMFILE)
                return cli_error(ctx, e, "%s: %s", what, limits_reached);
        return cmd_error(ctx, e, "%s", what);
}

int cli_broker_error(struct cmd_ctx *ctx, int r, const char *name)
{
        char msg[512];

        cli_broker_message(r, name, cli_broker_why(ctx), msg, sizeof(msg));
        return cli_error(ctx, r < 0 ? -r : r, "%s", msg);
}

/* No broker listens there. */
static int none_runs(int r)
{
        return r == -ENOENT || r == -ECONNREFUSED;
}

static int starts_broker(const struct cmd_ctx *ctx)
{
        return ctx->cmd && (ctx->cmd->flags & CMD_AUTOSTART);
}

/* cmd_broker()'s failure r, reported. Returns 1. */
static int broker_failed(struct cmd_ctx *ctx, int r)
{
        char path[108];

        cmd_socket_path(ctx, path, sizeof(path));
        if (none_runs(r) && ctx->no_autostart && starts_broker(ctx))
                return cli_error(ctx, -r, "no broker is running on %s, and %s says not to start one",
                                 path, ctx->no_autostart == NOAUTO_ENV ?
                                 "ASHMEM_NO_AUTOSTART=1 (environment)" : "--no-autostart");
        if (r == -ENOENT && !ctx->no_autostart && starts_broker(ctx)) {
                /* the start failed before any broker ran: a missing
                 * directory is the usual reason */
                char dir[sizeof(path)];
                char *slash;
                struct stat st;
                snprintf(dir, sizeof(dir), "%s", path);
                slash = strrchr(dir, '/');
                if (slash && slash != dir) {
                        *slash = 0;
                        if (stat(dir, &st) < 0 && errno == ENOENT)
                                return cli_error(ctx, -r, "cannot start a broker on %s: the directory %s "
                                                 "does not exist", path, dir);
                }
        }
        if (none_runs(r))
                return cli_error(ctx, -r, "no broker is running on %s", path);
        if (r == -EPERM && *broker_spawn_refusal())
                return cli_error(ctx, -r, "not starting a broker: refusing the socket directory %s",
                                 broker_spawn_refusal());
        if (r == -EPERM && *am_broker_refusal())
                return cli_error(ctx, -r, "refusing the broker socket %s", am_broker_refusal());
        if (r == -EPERM) {
                /* the library's check of the default directory: why */
                char dir[108];
                const char *why = NULL;
                if (am_socket_dir(path, geteuid(), AM_SOCKDIR_ROOT_OK, dir, sizeof(dir), &why) < 0 &&
                    why)
                        return cli_error(ctx, -r, "refusing the socket directory %s: %s", dir, why);
        }
        if (r == -ECHILD)
                return cli_error(ctx, -r, "the broker started on %s exited at once "
                                 "(ashmemctl broker start --log FILE says why)", path);
        return cmd_error(ctx, -r, "cannot reach the broker on %s", path);
}

int cli_broker(struct cmd_ctx *ctx, ashmem_broker **ret)
{
        int r = cmd_broker(ctx, ret);

        return r < 0 ? broker_failed(ctx, r) : 0;
}

int cli_broker_opt(struct cmd_ctx *ctx, ashmem_broker **ret)
{
        int r = cmd_broker(ctx, ret);

        if (none_runs(r) && (!starts_broker(ctx) || ctx->no_autostart)) {
                *ret = NULL;
                return 0;
        }
        return r < 0 ? broker_failed(ctx, r) : 0;
}

int cli_broker_name(struct cmd_ctx *ctx, const char *name, ashmem_broker **ret)
{
        int r = cmd_broker(ctx, ret);

        if (none_runs(r) && !starts_broker(ctx)) {
                char path[108];
                cmd_socket_path(ctx, path, sizeof(path));
                return cli_error(ctx, ENOENT, "no such region: %s (no broker is running on %s)",
                                 name, path);
        }
        return r < 0 ? broker_failed(ctx, r) : 0;
}

int arg_name(struct cmd_ctx *ctx, const char *s)
{
        char err[PARSE_ERR_LEN];
        return parse_name(s, err) < 0 ? cmd_usage(ctx, "%s", err) : 0;
}

int arg_size(struct cmd_ctx *ctx, const char *what, const char *s, uint64_t *ret)
{
        char err[PARSE_ERR_LEN];
        return parse_size(s, what, ret, err) < 0 ? cmd_usage(ctx, "%s", err) : 0;
}

int arg_mode(struct cmd_ctx *ctx, const char *s, int *ret)
{
        char err[PARSE_ERR_LEN];
        unsigned m;

        if (!s)
                return 0;
        if (parse_mode(s, &m, err) < 0)
                return cmd_usage(ctx, "%s", err);
        *ret = (int)m;
        return 0;
}

int arg_shell_only(struct cmd_ctx *ctx, int given, const char *what)
{
        if (given && !ctx->shell)
                return cmd_usage(ctx, "%s: use it in 'ashmemctl shell'", what);
        return 0;
}

int arg_offset(struct cmd_ctx *ctx, const char *what, const char *s, uint64_t *ret)
{
        char err[PARSE_ERR_LEN];
        return parse_offset(s, what, ret, err) < 0 ? cmd_usage(ctx, "%s", err) : 0;
}

int region_attach(struct cmd_ctx *ctx, const char *name, int writable,
                  struct region *r)
{
        return region_attach_owned(ctx, name, writable, (uid_t)-1, r);
}

int region_attach_owned(struct cmd_ctx *ctx, const char *name, int writable, uid_t owner,
                        struct region *r)
{
        ashmem_broker *b;
        ashmem_region_info info;
        size_t off = 0, len = 0;
        int fd = -1, ret;

        memset(r, 0, sizeof(*r));
        r->fd = -1;
        if (cli_broker_name(ctx, name, &b))
                return 1;
        if (owner == (uid_t)-1) {
                ret = ashmem_broker_attach(b, name, writable, &fd, &off, &len);
        } else {
                ret = ashmem_broker_attach_owned(b, name, writable, owner, &fd, &info);
                off = info.offset;
                len = info.length;
        }
        if (ret == -EPERM && owner != (uid_t)-1)
                return cli_error(ctx, EPERM, "%s belongs to another user than uid %u: not attached",
                                 name, (unsigned)owner);
        if (ret < 0)
                return cli_broker_error(ctx, ret, name);
        r->name = name;
        r->fd = fd;
        r->writable = writable;
        ret = ashmem_get_size(fd, &r->size);
        if (ret < 0) {
                region_release(r);
                return cmd_error(ctx, -ret, "%s: reading the size", name);
        }
        r->off = off;
        r->len = len ? len : r->size - off;
        if (r->off > r->size || r->len > r->size - r->off) {
                region_release(r);
                return cli_error(ctx, EPROTO, "%s: the broker gave a view past the region's end", name);
        }
        return 0;
}

/* the regions closed so far (dev, ino); beyond the last slot, the scan of
 * ashmem_collect() finds the rest */
static struct { dev_t dev; ino_t ino; } closed[16];
static size_t nclosed;

void region_close_fd(int fd)
{
        struct stat st;
        size_t i;

        if (fd < 0)
                return;
        if (fstat(fd, &st) == 0) {
                for (i = 0; i < nclosed; i++)
                        if (closed[i].dev == st.st_dev && closed[i].ino == st.st_ino)
                                break;
                if (i == nclosed && nclosed < sizeof(closed) / sizeof(closed[0])) {
                        closed[nclosed].dev = st.st_dev;
                        closed[nclosed].ino = st.st_ino;
                        nclosed++;
                }
        }
        close(fd);
}

void region_forget_closed(void)
{
        struct stat st;

        memset(&st, 0, sizeof(st));
        for (size_t i = 0; i < nclosed; i++) {
                st.st_dev = closed[i].dev;
                st.st_ino = closed[i].ino;
                (void)am_forget_region(&st);
        }
        nclosed = 0;
}

void region_release(struct region *r)
{
        region_close_fd(r->fd);
        r->fd = -1;
}

int region_range(struct cmd_ctx *ctx, const struct region *r, uint64_t *off,
                 uint64_t *len)
{
        if (*off > r->len)
                return cli_error(ctx, EINVAL, "offset %llu is past the end of %s (%zu bytes)",
                                 (unsigned long long)*off, r->name, r->len);
        if (*len == 0)
                *len = r->len - *off;
        else if (*len > r->len - *off)
                return cli_error(ctx, EINVAL, "offset %llu + length %llu is past the end of %s (%zu bytes)",
                                 (unsigned long long)*off, (unsigned long long)*len, r->name, r->len);
        return 0;
}

int region_map(struct cmd_ctx *ctx, const struct region *r, int prot,
               uint64_t off, uint64_t len, struct mapping *m)
{
        size_t ps = am_page_size();
        size_t start = r->off + off, first = start / ps * ps;
        void *p;
        int ret;

        memset(m, 0, sizeof(*m));
        if (len == 0 || off > r->len || len > r->len - off)
                return cli_error(ctx, EINVAL, "%s: nothing to map", r->name);
        ret = ashmem_map(r->fd, prot, first, start + len - first, &p);
        if (ret < 0) {
                char pbuf[4];
                int mask = ashmem_get_prot(r->fd);
                if (ret == -EPERM && mask >= 0)
                        return cli_error(ctx, EPERM, "%s: the region's protection is %s",
                                         r->name, format_prot(mask, pbuf));
                if (ret == -EACCES && !r->writable)
                        return cli_error(ctx, EACCES, "%s: attached read-only", r->name);
                if (ret == -EACCES || ret == -EPERM)
                        return cli_error(ctx, -ret, "%s: not writable", r->name);
                return cmd_error(ctx, -ret, "%s: mapping", r->name);
        }
        m->base = p;
        m->maplen = start + len - first;
        m->ptr = (unsigned char *)p + (start - first);
        return 0;
}

void mapping_release(struct mapping *m)
{
        if (m->base)
                munmap(m->base, m->maplen);
        m->base = NULL;
}

int region_info_of_fd(int fd, ashmem_region_info *info)
{
        ashmem_stats st;
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;
        char buf[4096];
        int r;

        memset(info, 0, sizeof(*info));
        r = ashmem_get_name(fd, info->name, sizeof(info->name));
        if (r < 0)
                return r;
        r = ashmem_get_stats(fd, &st);
        if (r < 0)
                return r;
        r = ashmem_get_prot(fd);
        if (r < 0)
                return r;
        info->prot = r;
        info->size = st.size;
        info->pages = st.pages;
        info->pinned = st.pinned;
        info->unpinned = st.unpinned;
        info->purged = st.purged;
        info->mode = 0600;
        info->uid = getuid();
        info->gid = getgid();
        if (getpwuid_r(info->uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
                snprintf(info->user, sizeof(info->user), "%s", pwp->pw_name);
        if (getgrgid_r(info->gid, &gr, buf, sizeof(buf), &grp) == 0 && grp)
                snprintf(info->group, sizeof(info->group), "%s", grp->gr_name);
        info->created = time(NULL);
        return 0;
}
