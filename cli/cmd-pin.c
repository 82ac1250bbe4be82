/* SPDX-License-Identifier: MIT */
/* pin, unpin, status, purge: the pin state of a region's pages. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"

enum pin_op { OP_PIN, OP_UNPIN, OP_STATUS };

/*
 * The page range [*off, *off + *len) in the region for OFFSET and LENGTH
 * given relative to the view (either may be NULL). Without OFFSET: every
 * page the view touches. OFFSET must fall on a page boundary of the region;
 * LENGTH must be whole pages unless it reaches the end of the view; no or
 * zero LENGTH means to the end of the view. Returns 0 or an exit status.
 */
static int pin_range(struct cmd_ctx *ctx, const struct region *r, const char *os,
                     const char *ls, size_t *off, size_t *len)
{
        size_t ps = am_page_size(), end = (r->off + r->len + ps - 1) / ps * ps;
        uint64_t o = 0, l = 0;
        int e;

        if (os && (e = arg_offset(ctx, "offset", os, &o)))
                return e;
        if (ls && (e = arg_offset(ctx, "length", ls, &l)))
                return e;
        if (o > r->len)
                return cli_error(ctx, EINVAL, "offset %s is past the end of %s (%zu bytes)",
                                 os, r->name, r->len);
        if (!os) {
                *off = r->off / ps * ps;
                *len = end - *off;
                return 0;
        }
        if ((r->off + o) % ps) {
                if (r->off % ps)
                        return cmd_usage(ctx, "offset %s is not page-aligned (the slice %s starts at byte %zu of its region)",
                                         os, r->name, r->off);
                return cmd_usage(ctx, "offset %s is not page-aligned (page size %zu)", os, ps);
        }
        *off = r->off + o;
        if (l == 0) {
                *len = end - *off;
                return 0;
        }
        if (l > r->len - o)
                return cli_error(ctx, EINVAL, "offset %s + length %s is past the end of %s (%zu bytes)",
                                 os, ls, r->name, r->len);
        if (l % ps && o + l != r->len)
                return cmd_usage(ctx, "length %s is not a multiple of the page size (%zu)", ls, ps);
        *len = (l + ps - 1) / ps * ps;
        return 0;
}

static int pin_common(struct cmd_ctx *ctx, struct cmd_args *a, enum pin_op op)
{
        const char *name = a->argv[0];
        const char *os = a->argc > 1 ? a->argv[1] : NULL, *ls = a->argc > 2 ? a->argv[2] : NULL;
        struct region reg;
        size_t off = 0, len = 0;
        uint64_t dummy;
        int r, e;

        if ((r = arg_name(ctx, name)))
                return r;
        /* bad numbers are usage errors before anything is asked of the broker */
        if ((os && (r = arg_offset(ctx, "offset", os, &dummy))) ||
            (ls && (r = arg_offset(ctx, "length", ls, &dummy))))
                return r;
        if (region_attach(ctx, name, op != OP_STATUS, &reg))
                return 1;
        r = pin_range(ctx, &reg, os, ls, &off, &len);
        if (r) {
                region_release(&reg);
                return r;
        }
        switch (op) {
        case OP_PIN: r = ashmem_pin_region(reg.fd, off, len); break;
        case OP_UNPIN: r = ashmem_unpin_region(reg.fd, off, len); break;
        default:
                r = ashmem_pin_status(reg.fd, off, len);
                if (r < 0) {
                        errno = -r;
                        r = -1;
                }
                break;
        }
        e = errno;
        region_release(&reg);
        if (r < 0) {
                if (e == EPERM)
                        return cli_error(ctx, e, "%s: not permitted (read-only access)", name);
                return cmd_error(ctx, e, "%s: range %zu+%zu", name, off, len);
        }
        if (ctx->json) {
                cJSON *doc = cJSON_CreateObject();
                cJSON_AddStringToObject(doc, "name", name);
                cJSON_AddNumberToObject(doc, "offset", (double)off);
                cJSON_AddNumberToObject(doc, "length", (double)len);
                if (op == OP_PIN)
                        cJSON_AddBoolToObject(doc, "was_purged", r == ASHMEM_WAS_PURGED);
                else if (op == OP_STATUS)
                        cJSON_AddBoolToObject(doc, "pinned", r == ASHMEM_IS_PINNED);
                return out_json(ctx, doc);
        }
        if (ctx->quiet)
                return 0;
        if (op == OP_PIN)
                puts(r == ASHMEM_WAS_PURGED ? "was-purged" : "not-purged");
        else if (op == OP_STATUS)
                puts(r == ASHMEM_IS_PINNED ? "pinned" : "unpinned");
        return 0;
}

static int pin_exec(struct cmd_ctx *ctx, struct cmd_args *a) { return pin_common(ctx, a, OP_PIN); }
static int unpin_exec(struct cmd_ctx *ctx, struct cmd_args *a) { return pin_common(ctx, a, OP_UNPIN); }
static int status_exec(struct cmd_ctx *ctx, struct cmd_args *a) { return pin_common(ctx, a, OP_STATUS); }

static const char *const complete_region[] = { "region", "none", NULL };

const struct cmd_entry cmd_pin_entry = {
        .name = "pin",
        .args_usage = "NAME [OFFSET [LENGTH]]",
        .summary = "pin pages; prints was-purged if any was purged while unpinned",
        .min_args = 1,
        .max_args = 3,
        .complete_args = complete_region,
        .flags = CMD_BROKER,
        .exec = pin_exec,
};

const struct cmd_entry cmd_unpin_entry = {
        .name = "unpin",
        .args_usage = "NAME [OFFSET [LENGTH]]",
        .summary = "unpin pages: the system may reclaim them",
        .min_args = 1,
        .max_args = 3,
        .complete_args = complete_region,
        .flags = CMD_BROKER,
        .exec = unpin_exec,
};

const struct cmd_entry cmd_status_entry = {
        .name = "status",
        .args_usage = "NAME [OFFSET [LENGTH]]",
        .summary = "print pinned if every page of the range is pinned, else unpinned",
        .min_args = 1,
        .max_args = 3,
        .complete_args = complete_region,
        .flags = CMD_BROKER,
        .exec = status_exec,
};

/* ---------------------------------------------------------------- purge */

static const struct cmd_opt purge_opts[] = {
        { "all", 'a', NULL, NULL, "every region you own (root: every region)" },
        { 0 }
};

static int purge_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argc ? a->argv[0] : NULL;
        unsigned long long pages = 0, bytes;
        ashmem_broker *b;
        int r;

        if (name && cmd_flag(a, "all"))
                return cmd_usage(ctx, "give a region name or --all, not both");
        if (!name && !cmd_flag(a, "all"))
                return cmd_usage(ctx, "give a region name, or --all for every region");
        if (name && (r = arg_name(ctx, name)))
                return r;
        if (cli_broker(ctx, &b))
                return 1;
        r = ashmem_broker_purge(b, name, &pages);
        if (r < 0)
                return name ? cli_broker_error(ctx, r, name) : cmd_error(ctx, -r, "purging");
        bytes = pages * am_page_size();
        if (ctx->json) {
                cJSON *doc = cJSON_CreateObject();
                cJSON_AddNumberToObject(doc, "pages", (double)pages);
                cJSON_AddNumberToObject(doc, "bytes", (double)bytes);
                return out_json(ctx, doc);
        }
        if (!ctx->quiet)
                printf("purged %llu page%s (%llu bytes)\n", pages, pages == 1 ? "" : "s", bytes);
        return 0;
}

static const char *const purge_complete[] = { "region", NULL };

const struct cmd_entry cmd_purge_entry = {
        .name = "purge",
        .args_usage = "[NAME]",
        .summary = "reclaim the unpinned pages of a region (or --all) now",
        .opts = purge_opts,
        .max_args = 1,
        .complete_args = purge_complete,
        .flags = CMD_BROKER,
        .exec = purge_exec,
};
