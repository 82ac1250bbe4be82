/* SPDX-License-Identifier: MIT */
/* create, list (ls), info, size, prot: regions as the broker holds them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"

/* ---------------------------------------------------------------- create */

static const struct cmd_opt create_opts[] = {
        { "prot", 'p', "PROT", "prot", "protection: r, rw, rx or rwx (default rwx)" },
        { "mode", 'm', "MODE", NULL, "who may attach, octal like a file's (default 0600)" },
        { "transient", 't', NULL, NULL, "gone when this connection closes (in the shell)" },
        { "local", 'l', NULL, NULL, "held by the shell itself, shared later with share" },
        { 0 }
};

/* A region held by this process, shared transient (or kept local). */
static int create_here(struct cmd_ctx *ctx, const char *name, size_t size, int prot,
                       int mode, int local)
{
        ashmem_region_info info;
        int fd = ashmem_create_region(name, size), r;

        if (fd < 0)
                return cmd_error(ctx, errno, "creating %s", name);
        if (prot != ASHMEM_BROKER_DEFAULT && ashmem_set_prot_region(fd, prot) < 0) {
                r = cmd_error(ctx, errno, "%s: setting the protection", name);
                close(fd);
                return r;
        }
        if (local) {
                r = region_info_of_fd(fd, &info);
                if (r < 0) {
                        close(fd);
                        return cmd_error(ctx, -r, "%s", name);
                }
                r = cli_local->add(ctx, name, fd);
                if (r < 0)
                        return cli_broker_error(ctx, r, name);
        } else {
                ashmem_broker *b;
                if (cli_broker(ctx, &b)) {
                        close(fd);
                        return 1;
                }
                r = ashmem_broker_share(b, fd, name, mode, 1, &info);
                close(fd);
                if (r < 0)
                        return cli_broker_error(ctx, r, name);
        }
        return out_region(ctx, &info);
}

static int create_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0], *ps = cmd_opt(a, "prot"), *ms = cmd_opt(a, "mode");
        char err[PARSE_ERR_LEN];
        ashmem_region_info info;
        ashmem_broker *b;
        uint64_t size;
        int prot = ASHMEM_BROKER_DEFAULT, mode = ASHMEM_BROKER_DEFAULT, fd, r;
        int local = cmd_flag(a, "local"), transient = cmd_flag(a, "transient");

        if ((r = arg_name(ctx, name)) || (r = arg_size(ctx, "size", a->argv[1], &size)))
                return r;
        if (size > ASHMEM_SIZE_MAX)
                return cmd_usage(ctx, "invalid size '%s': larger than the 4T limit", a->argv[1]);
        if (ps) {
                if (parse_prot(ps, &prot, err) < 0)
                        return cmd_usage(ctx, "%s", err);
        }
        if ((r = arg_mode(ctx, ms, &mode)))
                return r;
        if (local && transient)
                return cmd_usage(ctx, "--local and --transient do not go together");
        if ((r = arg_shell_only(ctx, local, "--local makes a region held by the shell")) ||
            (r = arg_shell_only(ctx, transient, "--transient regions end with the connection")))
                return r;
        if (local && ms)
                return cmd_usage(ctx, "--mode is given when the local region is shared (share --mode)");
        if (local || transient)
                return create_here(ctx, name, size, prot, mode, local);
        if (cli_broker(ctx, &b))
                return 1;
        r = ashmem_broker_create(b, name, size, prot, mode, &fd, &info);
        if (r < 0)
                return cli_broker_error(ctx, r, name);
        region_close_fd(fd);
        return out_region(ctx, &info);
}

const struct cmd_entry cmd_create_entry = {
        .name = "create", .args_usage = "NAME SIZE", .flags = CMD_BROKER | CMD_AUTOSTART, .exec = create_exec,
        .summary = "create a region held by the broker",
        .opts = create_opts, .min_args = 2, .max_args = 2,
};

/* ---------------------------------------------------------------- list */

static const struct cmd_opt list_opts[] = {
        { "output", 'o', "COLS", "column", "columns to show (NAME,SIZE,...; +COLS adds to the default)" },
        { "bytes", 'b', NULL, NULL, "sizes in bytes, not human-readable" },
        { "noheadings", 'n', NULL, NULL, "no header line" },
        { "list-columns", 'H', NULL, NULL, "list the columns -o accepts" },
        { 0 }
};

static int list_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *spec = cmd_opt(a, "output");
        char err[PARSE_ERR_LEN];
        int cols[OUT_MAX_COLS], ncols, r;
        unsigned flags = 0;
        ashmem_region_info *regions = NULL;
        ashmem_broker *b;
        size_t n = 0;
        cJSON *arr;

        if (cmd_flag(a, "list-columns"))
                return out_columns(ctx);
        ncols = out_cols_select(spec, 0, cols, err);
        if (ncols < 0)
                return cmd_usage(ctx, "%s", err);
        if (cmd_flag(a, "bytes"))
                flags |= OUT_BYTES_EXACT;
        if (cmd_flag(a, "noheadings"))
                flags |= OUT_NOHEADINGS;
        if (cli_broker_opt(ctx, &b))
                return 1;
        /* no broker running holds nothing: an empty list */
        r = b ? ashmem_broker_list(b, &regions, &n) : 0;
        if (r < 0)
                return cli_broker_fail(ctx, r, cli_broker_why(ctx), "listing regions");
        if (!ctx->json && !spec) {
                /* the table straight from the answer, when it can be */
                r = out_region_table(stdout, regions, n, cols, ncols, flags | ctx->out_flags);
                if (r != -ENOTSUP) {
                        free(regions);
                        if (r == -ELIBACC)
                                return cli_error(ctx, -r, "printing the list: %s",
                                                 out_table_error());
                        return r < 0 ? cmd_error(ctx, -r, "printing the list") : 0;
                }
        }
        arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < n; i++) {
                cJSON *rec = out_region_record(&regions[i]);
                if (rec && spec) {
                        cJSON *picked = out_record_pick(rec, cols, ncols);
                        cJSON_Delete(rec);
                        rec = picked;
                }
                if (!rec)
                        break;
                cJSON_AddItemToArray(arr, rec);
        }
        free(regions);
        if (!arr || cJSON_GetArraySize(arr) != (int)n) {
                cJSON_Delete(arr);
                return cmd_error(ctx, ENOMEM, "building the list");
        }
        return out_region_list(ctx, arr, cols, ncols, flags);
}

const struct cmd_entry cmd_list_entry = {
        .name = "list", .alias = "ls", .flags = CMD_BROKER, .exec = list_exec,
        .summary = "list the regions the broker holds",
        .opts = list_opts, .max_args = 0,
};

/* The broker's record of region name: 0, or an exit status with the error
 * reported (a bad name is a usage error). */
static int region_info(struct cmd_ctx *ctx, const char *name, ashmem_region_info *info)
{
        ashmem_broker *b;
        int r;

        if ((r = arg_name(ctx, name)))
                return r;
        if (cli_broker_name(ctx, name, &b))
                return 1;
        r = ashmem_broker_info(b, name, info);
        return r < 0 ? cli_broker_error(ctx, r, name) : 0;
}

/* ---------------------------------------------------------------- info */

static const struct cmd_opt info_opts[] = {
        { "map", 'M', NULL, NULL, "draw the pin state of every page" },
        { "bytes", 'b', NULL, NULL, "sizes in bytes only" },
        { 0 }
};

#define MAP_WIDTH 64

/* The page map of the view as 'P', 'u', 'x' per page (caller frees). */
static int page_map(struct cmd_ctx *ctx, const char *name, char **ret, size_t *npages)
{
        struct region r;
        size_t ps = am_page_size(), total, first, last;
        char *map;
        int e;

        if (region_attach(ctx, name, 0, &r))
                return 1;
        total = (r.size + ps - 1) / ps;
        map = malloc(total ? total : 1);
        if (!map) {
                region_release(&r);
                return cmd_error(ctx, ENOMEM, "%s: page map", name);
        }
        e = ashmem_get_page_map(r.fd, map, total);
        if (e < 0) {
                free(map);
                region_release(&r);
                return cmd_error(ctx, -e, "%s: reading the page map", name);
        }
        first = r.off / ps;
        last = r.len ? (r.off + r.len - 1) / ps : first;
        *npages = r.len ? last - first + 1 : 0;
        memmove(map, map + first, *npages);
        *ret = map;
        region_release(&r);
        return 0;
}

/* The page map: 'P', 'u', 'x' per page in JSON; drawn in text, one
 * character per cell, MAP_WIDTH cells at most: a cell shows the least
 * pinned state of its pages (purged, else unpinned, else pinned). */
static void out_map(struct out *o, const char *map, size_t n, size_t label_width)
{
        size_t w = n < MAP_WIDTH ? n : MAP_WIDTH;
        char cells[MAP_WIDTH + 1], *all = strndup(map, n);

        out_str(o, OUT_JSON, "map", NULL, all ? all : "");
        free(all);
        for (size_t c = 0; c < w; c++) {
                size_t from = c * n / w, to = (c + 1) * n / w;
                char s = '#';
                for (size_t p = from; p < to; p++) {
                        if (map[p] == 'x')
                                s = 'x';
                        else if (map[p] == 'u' && s == '#')
                                s = '-';
                }
                cells[c] = s;
        }
        cells[w] = 0;
        out_text(o, "%-*s [%s]\n%-*s %zu page%s", (int)label_width, "Map:", cells,
                 (int)label_width, "", n, n == 1 ? "" : "s");
        if (n > w)
                out_text(o, ", about %zu per character", (n + w - 1) / w);
        out_text(o, "; # pinned, - unpinned, x purged\n");
}

static int info_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0];
        ashmem_region_info info;
        char *map = NULL;
        size_t npages = 0;
        struct out o;
        int r;

        if ((r = region_info(ctx, name, &info)))
                return r;
        if (cmd_flag(a, "map") && page_map(ctx, name, &map, &npages))
                return 1;
        out_begin(&o, ctx, cmd_flag(a, "bytes") ? OUT_BYTES_EXACT : 0);
        if (out_region_fields(&o, &info) < 0) {
                out_discard(&o);
                free(map);
                return cmd_error(ctx, ENOMEM, "building the record");
        }
        if (map)
                out_map(&o, map, npages, strlen("Protection mask:"));
        free(map);
        return out_end(&o);
}

const struct cmd_entry cmd_info_entry = {
        .name = "info", .args_usage = "NAME", .flags = CMD_BROKER, .exec = info_exec,
        .summary = "show a region's record",
        .opts = info_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};

/* ---------------------------------------------------------------- size */

static int size_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0];
        ashmem_region_info info;
        struct out o;
        int r;

        if ((r = region_info(ctx, name, &info)))
                return r;
        out_begin(&o, ctx, 0);
        out_str(&o, OUT_JSON, "name", NULL, info.name);
        out_u64(&o, OUT_ANY, "size", "%llu\n", info.size);
        return out_end(&o);
}

const struct cmd_entry cmd_size_entry = {
        .name = "size", .args_usage = "NAME", .flags = CMD_BROKER, .exec = size_exec,
        .summary = "print a region's size in bytes",
        .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};

/* ---------------------------------------------------------------- prot */

/* The protection: shown when asked for (to: OUT_ANY), only in JSON after
 * it was set (to: OUT_JSON). */
static int prot_result(struct cmd_ctx *ctx, const char *name, int mask, enum out_to to)
{
        struct out o;
        char buf[4];

        out_begin(&o, ctx, OUT_REPORT);
        out_str(&o, OUT_JSON, "name", NULL, name);
        out_str(&o, to, "prot", "%s\n", format_prot(mask, buf));
        out_u64(&o, OUT_JSON, "prot_mask", NULL, (unsigned)mask);
        return out_end(&o);
}

static int prot_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0];
        char err[PARSE_ERR_LEN], cur[4], want[4];
        struct region reg;
        int prot, mask, r;

        if ((r = arg_name(ctx, name)))
                return r;
        if (a->argc == 1) {
                ashmem_region_info info;
                if ((r = region_info(ctx, name, &info)))
                        return r;
                return prot_result(ctx, name, info.prot, OUT_ANY);
        }
        if (parse_prot(a->argv[1], &prot, err) < 0)
                return cmd_usage(ctx, "%s", err);
        if (region_attach(ctx, name, 1, &reg))
                return 1;
        mask = ashmem_get_prot(reg.fd);
        if (mask < 0) {
                region_release(&reg);
                return cmd_error(ctx, -mask, "%s", name);
        }
        if (prot & ~mask) {
                region_release(&reg);
                return cli_error(ctx, EINVAL, "%s: protection bits can only be dropped: it is %s, asked for %s",
                                 name, format_prot(mask, cur), format_prot(prot, want));
        }
        if (ashmem_set_prot_region(reg.fd, prot) < 0) {
                int e = errno;
                region_release(&reg);
                if (e == EPERM || e == EACCES)
                        return cli_error(ctx, e, "%s: permission denied (attached read-only)", name);
                return cmd_error(ctx, e, "%s: setting the protection", name);
        }
        mask = ashmem_get_prot(reg.fd);
        region_release(&reg);
        if (mask < 0)
                return cmd_error(ctx, -mask, "%s", name);
        return prot_result(ctx, name, mask, OUT_JSON);
}

static const char *const prot_complete[] = { "region", "prot", NULL };

const struct cmd_entry cmd_prot_entry = {
        .name = "prot", .args_usage = "NAME [PROT]", .flags = CMD_BROKER, .exec = prot_exec,
        .summary = "show a region's protection, or drop bits (r, rw, rx, rwx, none)",
        .min_args = 1, .max_args = 2, .complete_args = prot_complete,
};
