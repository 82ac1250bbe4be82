/* SPDX-License-Identifier: MIT */
/* The shell's own commands (map, unmap, regions, exit) and the regions it
 * holds: local ones (create --local) and mappings. cli/shell.h says what
 * they do; cli/shell-int.h has the session they work on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "complete.h"
#include "output.h"
#include "parse.h"
#include "region.h"
#include "shell-int.h"
#include "shell.h"

static struct shell *shell_of(struct cmd_ctx *ctx)
{
        return ctx->shell;
}

/* ---------------------------------------------------------------- local regions */


static struct local *local_find(struct shell *sh, const char *name)
{
        for (struct local *l = sh->locals; l; l = l->next)
                if (strcmp(l->name, name) == 0)
                        return l;
        return NULL;
}

static int local_add(struct cmd_ctx *ctx, const char *name, int fd)
{
        struct shell *sh = shell_of(ctx);
        struct local *l, **tail;

        if (!sh || local_find(sh, name)) {
                close(fd);
                return sh ? -EEXIST : -EINVAL;
        }
        l = calloc(1, sizeof(*l));
        if (!l || !(l->name = strdup(name))) {
                free(l);
                close(fd);
                return -ENOMEM;
        }
        l->fd = fd;
        for (tail = &sh->locals; *tail; tail = &(*tail)->next)
                ;
        *tail = l;
        return 0;
}

static int local_fd(struct cmd_ctx *ctx, const char *name)
{
        struct shell *sh = shell_of(ctx);
        struct local *l = sh ? local_find(sh, name) : NULL;

        return l ? l->fd : -ENOENT;
}

const struct cli_local_ops shell_local_ops = {
        .add = local_add,
        .find = local_fd,
};

void shell_names(struct complete *c, const char *kind, void *arg)
{
        struct shell *sh = arg;

        if (strcmp(kind, "region") == 0 || strcmp(kind, "local") == 0)
                for (struct local *l = sh->locals; l; l = l->next)
                        complete_add(c, l->name, "local region");
        if (strcmp(kind, "mapping") == 0)
                for (struct map *m = sh->maps; m; m = m->next)
                        complete_add(c, m->name, "mapped");
}

/* ---------------------------------------------------------------- map, unmap */

static const struct cmd_opt map_opts[] = {
        { "ro", 'r', NULL, NULL, "map read-only (attach with read access)" },
        { 0 }
};

static void map_free(struct map *m)
{
        mapping_release(&m->m);
        close(m->fd);
        free(m->name);
        free(m);
}

static struct map *map_find(struct shell *sh, const char *name)
{
        for (struct map *m = sh->maps; m; m = m->next)
                if (strcmp(m->name, name) == 0)
                        return m;
        return NULL;
}

/* A mapping's fields: map's line, or a row of the table of regions. */
static void out_mapping(struct out *o, const struct map *m, int row)
{
        char prot[4], addr[32];

        snprintf(addr, sizeof(addr), "%p", (void *)m->m.ptr);
        out_str(o, OUT_ANY, "name", row ? "  %-20s" : "%s:", m->name);
        out_size(o, OUT_ANY, "size", row ? " %10s" : " %s mapped", m->len);
        out_u64(o, OUT_JSON, "offset", NULL, m->off);
        out_str(o, OUT_ANY, "prot", row ? " %-4s" : " %s", format_prot(m->prot, prot));
        out_str(o, OUT_ANY, "address", row ? " %s\n" : " at %s\n", addr);
}

static int map_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct shell *sh = shell_of(ctx);
        const char *name = a->argv[0];
        int ro = cmd_flag(a, "ro"), lfd = local_fd(ctx, name), mask, prot, r;
        struct region reg;
        struct map *m, **pm;
        struct out o;

        if ((r = arg_name(ctx, name)))
                return r;
        if (map_find(sh, name))
                return cli_error(ctx, EEXIST, "%s is mapped already (unmap %s first)", name, name);
        if (lfd >= 0) {
                /* a local region: our own descriptor of it */
                memset(&reg, 0, sizeof(reg));
                reg.name = name;
                reg.fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
                if (reg.fd < 0)
                        return cmd_error(ctx, errno, "%s", name);
                reg.writable = 1;
                r = ashmem_get_size(reg.fd, &reg.size);
                if (r < 0) {
                        region_release(&reg);
                        return cmd_error(ctx, -r, "%s: reading the size", name);
                }
                reg.len = reg.size;
        } else if (region_attach(ctx, name, !ro, &reg)) {
                return 1;
        }
        mask = ashmem_get_prot(reg.fd);
        if (mask < 0) {
                region_release(&reg);
                return cmd_error(ctx, -mask, "%s", name);
        }
        prot = mask & (PROT_READ | PROT_WRITE);
        if (ro)
                prot &= ~PROT_WRITE;
        m = calloc(1, sizeof(*m));
        if (!m || !(m->name = strdup(name))) {
                free(m);
                region_release(&reg);
                return cmd_error(ctx, ENOMEM, "%s", name);
        }
        if (reg.len == 0 ? (r = cli_error(ctx, EINVAL, "%s: nothing to map (empty view)", name)) :
            (r = region_map(ctx, &reg, prot, 0, reg.len, &m->m))) {
                free(m->name);
                free(m);
                region_release(&reg);
                return r;
        }
        m->fd = reg.fd;
        m->off = reg.off;
        m->len = reg.len;
        m->prot = prot;
        for (pm = &sh->maps; *pm; pm = &(*pm)->next)
                ;
        *pm = m;
        out_begin(&o, ctx, OUT_REPORT);
        out_mapping(&o, m, 0);
        return out_end(&o);
}

const struct cmd_entry cmd_map_entry = {
        .name = "map", .args_usage = "NAME", .flags = CMD_SHELL_ONLY | CMD_BROKER, .exec = map_exec,
        .summary = "keep a mapping of a region for the session (shell)",
        .opts = map_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};

static int unmap_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct shell *sh = shell_of(ctx);
        struct map **pm = &sh->maps, *m;
        const char *name = a->argv[0];

        while (*pm && strcmp((*pm)->name, name) != 0)
                pm = &(*pm)->next;
        m = *pm;
        if (!m)
                return cli_error(ctx, ENOENT, "%s is not mapped", name);
        *pm = m->next;
        map_free(m);
        return 0;
}

static const char *const unmap_complete[] = { "mapping", NULL };

const struct cmd_entry cmd_unmap_entry = {
        .name = "unmap", .args_usage = "NAME", .flags = CMD_SHELL_ONLY, .exec = unmap_exec,
        .summary = "drop a mapping made with map (shell)",
        .min_args = 1, .max_args = 1, .complete_args = unmap_complete,
};

void shell_drop_held(struct shell *sh)
{
        while (sh->maps) {
                struct map *m = sh->maps;
                sh->maps = m->next;
                map_free(m);
        }
        while (sh->locals) {
                struct local *l = sh->locals;
                sh->locals = l->next;
                close(l->fd);
                free(l->name);
                free(l);
        }
}

/* ---------------------------------------------------------------- regions */

static int regions_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct shell *sh = shell_of(ctx);
        ashmem_region_info *info;
        size_t n = 0, i = 0;
        struct out o;
        char prot[4];

        for (struct local *l = sh->locals; l; l = l->next)
                n++;
        info = calloc(n ? n : 1, sizeof(*info));
        if (!info)
                return cmd_error(ctx, ENOMEM, "listing");
        for (struct local *l = sh->locals; l; l = l->next, i++) {
                int r = region_info_of_fd(l->fd, &info[i]);
                if (r < 0) {
                        free(info);
                        return cmd_error(ctx, -r, "%s", l->name);
                }
        }
        out_begin(&o, ctx, OUT_REPORT | (cmd_flag(a, "bytes") ? OUT_BYTES_EXACT : 0));
        out_text(&o, "Local regions:%s\n", n ? "" : " none");
        if (n)
                out_text(&o, "  %-20s %10s %-4s %7s %8s %6s\n", "NAME", "SIZE", "PROT", "PINNED",
                         "UNPINNED", "PURGED");
        out_open_array(&o, "local");
        i = 0;
        for (struct local *l = sh->locals; l; l = l->next, i++) {
                out_open_object(&o, NULL);
                out_str(&o, OUT_ANY, "name", "  %-20s", l->name);
                out_size(&o, OUT_ANY, "size", " %10s", info[i].size);
                out_str(&o, OUT_ANY, "prot", " %-4s", format_prot(info[i].prot, prot));
                out_u64(&o, OUT_JSON, "pages", NULL, info[i].pages);
                out_u64(&o, OUT_ANY, "pinned", " %7llu", info[i].pinned);
                out_u64(&o, OUT_ANY, "unpinned", " %8llu", info[i].unpinned);
                out_u64(&o, OUT_ANY, "purged", " %6llu\n", info[i].purged);
                out_close(&o);
        }
        out_close(&o);
        free(info);
        out_text(&o, "Mappings:%s\n", sh->maps ? "" : " none");
        if (sh->maps)
                out_text(&o, "  %-20s %10s %-4s %s\n", "NAME", "SIZE", "PROT", "ADDRESS");
        out_open_array(&o, "mapped");
        for (struct map *m = sh->maps; m; m = m->next) {
                out_open_object(&o, NULL);
                out_mapping(&o, m, 1);
                out_close(&o);
        }
        out_close(&o);
        return out_end(&o);
}

static const struct cmd_opt regions_opts[] = {
        { "bytes", 'b', NULL, NULL, "sizes in bytes, not human-readable" },
        { 0 }
};

const struct cmd_entry cmd_regions_entry = {
        .name = "regions", .flags = CMD_SHELL_ONLY, .exec = regions_exec,
        .summary = "what the shell holds: local regions and mappings (shell)",
        .opts = regions_opts, .max_args = 0,
};

/* ---------------------------------------------------------------- exit */

static int exit_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct shell *sh = shell_of(ctx);
        char err[PARSE_ERR_LEN];
        uint64_t v = (uint64_t)sh->status;

        if (a->argc && parse_uint(a->argv[0], "exit status", 255, &v, err) < 0)
                return cmd_usage(ctx, "%s", err);
        sh->stop = 1;
        return (int)v;
}

const struct cmd_entry cmd_exit_entry = {
        .name = "exit", .alias = "quit", .args_usage = "[STATUS]", .flags = CMD_SHELL_ONLY,
        .exec = exit_exec,
        .summary = "leave the shell (with the last command's status, or STATUS)",
        .max_args = 1,
};
