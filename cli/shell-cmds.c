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

#include <cjson/cJSON.h>

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

static cJSON *map_json(const struct map *m)
{
        cJSON *o = cJSON_CreateObject();
        char prot[4], addr[32];

        snprintf(addr, sizeof(addr), "%p", (void *)m->m.ptr);
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddNumberToObject(o, "size", (double)m->len);
        cJSON_AddNumberToObject(o, "offset", (double)m->off);
        cJSON_AddStringToObject(o, "prot", format_prot(m->prot, prot));
        cJSON_AddStringToObject(o, "address", addr);
        return o;
}

static int map_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct shell *sh = shell_of(ctx);
        const char *name = a->argv[0];
        int ro = cmd_flag(a, "ro"), lfd = local_fd(ctx, name), mask, prot, r;
        struct region reg;
        struct map *m, **pm;
        char pbuf[4], size[32];

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
        if (ctx->json)
                return out_json(ctx, map_json(m));
        if (!ctx->quiet) {
                format_size(m->len, size, sizeof(size));
                printf("%s: %s mapped %s at %p\n", name, size, format_prot(prot, pbuf), (void *)m->m.ptr);
        }
        return 0;
}

static const char *const map_complete[] = { "region", NULL };

const struct cmd_entry cmd_map_entry = {
        .name = "map",
        .args_usage = "NAME",
        .summary = "keep a mapping of a region for the session (shell)",
        .opts = map_opts,
        .min_args = 1,
        .max_args = 1,
        .complete_args = map_complete,
        .flags = CMD_SHELL_ONLY | CMD_BROKER,
        .exec = map_exec,
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
        .name = "unmap",
        .args_usage = "NAME",
        .summary = "drop a mapping made with map (shell)",
        .min_args = 1,
        .max_args = 1,
        .complete_args = unmap_complete,
        .flags = CMD_SHELL_ONLY,
        .exec = unmap_exec,
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
        cJSON *doc = cJSON_CreateObject(), *locals, *maps;
        int bytes = cmd_flag(a, "bytes");

        locals = cJSON_AddArrayToObject(doc, "local");
        maps = cJSON_AddArrayToObject(doc, "mapped");
        if (!locals || !maps) {
                cJSON_Delete(doc);
                return cmd_error(ctx, ENOMEM, "listing");
        }
        for (struct local *l = sh->locals; l; l = l->next) {
                ashmem_region_info info;
                cJSON *o;
                char prot[4];
                int r = region_info_of_fd(l->fd, &info);
                if (r < 0) {
                        cJSON_Delete(doc);
                        return cmd_error(ctx, -r, "%s", l->name);
                }
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", l->name);
                cJSON_AddNumberToObject(o, "size", (double)info.size);
                cJSON_AddStringToObject(o, "prot", format_prot(info.prot, prot));
                cJSON_AddNumberToObject(o, "pages", (double)info.pages);
                cJSON_AddNumberToObject(o, "pinned", (double)info.pinned);
                cJSON_AddNumberToObject(o, "unpinned", (double)info.unpinned);
                cJSON_AddNumberToObject(o, "purged", (double)info.purged);
                cJSON_AddItemToArray(locals, o);
        }
        for (struct map *m = sh->maps; m; m = m->next)
                cJSON_AddItemToArray(maps, map_json(m));
        if (ctx->json)
                return out_json(ctx, doc);
        if (ctx->quiet) {
                cJSON_Delete(doc);
                return 0;
        }
        {
                const cJSON *o;
                char size[32];
                printf("Local regions:%s\n", cJSON_GetArraySize(locals) ? "" : " none");
                if (cJSON_GetArraySize(locals))
                        printf("  %-20s %10s %-4s %7s %8s %6s\n", "NAME", "SIZE", "PROT", "PINNED",
                               "UNPINNED", "PURGED");
                cJSON_ArrayForEach(o, locals) {
                        double sz = cJSON_GetObjectItem(o, "size")->valuedouble;
                        if (bytes)
                                snprintf(size, sizeof(size), "%.0f", sz);
                        else
                                format_size((uint64_t)sz, size, sizeof(size));
                        printf("  %-20s %10s %-4s %7.0f %8.0f %6.0f\n",
                               cJSON_GetObjectItem(o, "name")->valuestring, size,
                               cJSON_GetObjectItem(o, "prot")->valuestring,
                               cJSON_GetObjectItem(o, "pinned")->valuedouble,
                               cJSON_GetObjectItem(o, "unpinned")->valuedouble,
                               cJSON_GetObjectItem(o, "purged")->valuedouble);
                }
                printf("Mappings:%s\n", cJSON_GetArraySize(maps) ? "" : " none");
                if (cJSON_GetArraySize(maps))
                        printf("  %-20s %10s %-4s %s\n", "NAME", "SIZE", "PROT", "ADDRESS");
                cJSON_ArrayForEach(o, maps) {
                        double sz = cJSON_GetObjectItem(o, "size")->valuedouble;
                        if (bytes)
                                snprintf(size, sizeof(size), "%.0f", sz);
                        else
                                format_size((uint64_t)sz, size, sizeof(size));
                        printf("  %-20s %10s %-4s %s\n", cJSON_GetObjectItem(o, "name")->valuestring,
                               size, cJSON_GetObjectItem(o, "prot")->valuestring,
                               cJSON_GetObjectItem(o, "address")->valuestring);
                }
        }
        cJSON_Delete(doc);
        return 0;
}

static const struct cmd_opt regions_opts[] = {
        { "bytes", 'b', NULL, NULL, "sizes in bytes, not human-readable" },
        { 0 }
};

const struct cmd_entry cmd_regions_entry = {
        .name = "regions",
        .summary = "what the shell holds: local regions and mappings (shell)",
        .opts = regions_opts,
        .max_args = 0,
        .flags = CMD_SHELL_ONLY,
        .exec = regions_exec,
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
        .name = "exit",
        .args_usage = "[STATUS]",
        .summary = "leave the shell (with the last command's status, or STATUS)",
        .max_args = 1,
        .flags = CMD_SHELL_ONLY,
        .exec = exit_exec,
};
