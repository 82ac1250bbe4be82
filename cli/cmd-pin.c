/* SPDX-License-Identifier: MIT */
/* pin, unpin, status, purge: the pin state of a region's pages. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

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
        if (!os) {
                *off = r->off / ps * ps;
                *len = end - *off;
                return 0;
        }
        /* alignment first: it is wrong wherever the offset falls */
        if ((r->off + o) % ps) {
                if (r->off % ps)
                        return cmd_usage(ctx, "offset %s is not page-aligned (the slice %s starts at byte %zu of its region)",
                                         os, r->name, r->off);
                return cmd_usage(ctx, "offset %s is not page-aligned (page size %zu)", os, ps);
        }
        if (o > r->len)
                return cli_error(ctx, EINVAL, "offset %s is past the end of %s (%zu bytes)",
                                 os, r->name, r->len);
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

/* pin, unpin and status (a->entry->op says which). */
static int pin_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        enum pin_op op = (enum pin_op)a->entry->op;
        const char *name = a->argv[0];
        const char *os = a->argc > 1 ? a->argv[1] : NULL, *ls = a->argc > 2 ? a->argv[2] : NULL;
        struct region reg;
        size_t off = 0, len = 0;
        uint64_t dummy;
        struct out o;
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
        out_begin(&o, ctx, OUT_REPORT);
        out_str(&o, OUT_JSON, "name", NULL, name);
        out_u64(&o, OUT_JSON, "offset", NULL, off);
        out_u64(&o, OUT_JSON, "length", NULL, len);
        if (op == OP_PIN)
                out_bool(&o, OUT_ANY, "was_purged", "was-purged\n", "not-purged\n",
                         r == ASHMEM_WAS_PURGED);
        else if (op == OP_STATUS)
                out_bool(&o, OUT_ANY, "pinned", "pinned\n", "unpinned\n", r == ASHMEM_IS_PINNED);
        return out_end(&o);
}

const struct cmd_entry cmd_pin_entry = {
        .name = "pin", .args_usage = "NAME [OFFSET [LENGTH]]",
        .flags = CMD_BROKER, .exec = pin_exec, .op = OP_PIN,
        .summary = "pin pages; prints was-purged if any was purged while unpinned",
        .min_args = 1, .max_args = 3, .complete_args = cmd_complete_region,
};

const struct cmd_entry cmd_unpin_entry = {
        .name = "unpin", .args_usage = "NAME [OFFSET [LENGTH]]",
        .flags = CMD_BROKER, .exec = pin_exec, .op = OP_UNPIN,
        .summary = "unpin pages: the system may reclaim them",
        .min_args = 1, .max_args = 3, .complete_args = cmd_complete_region,
};

const struct cmd_entry cmd_status_entry = {
        .name = "status", .args_usage = "NAME [OFFSET [LENGTH]]",
        .flags = CMD_BROKER, .exec = pin_exec, .op = OP_STATUS,
        .summary = "print pinned if every page of the range is pinned, else unpinned",
        .min_args = 1, .max_args = 3, .complete_args = cmd_complete_region,
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
        ashmem_region_info info;
        const char *why = NULL;
        char pbuf[4];
        ashmem_broker *b;
        struct out o;
        int r;

        if (name && cmd_flag(a, "all"))
                return cmd_usage(ctx, "give a region name or --all, not both");
        if (!name && !cmd_flag(a, "all"))
                return cmd_usage(ctx, "give a region name, or --all for every region");
        if (name && (r = arg_name(ctx, name)))
                return r;
        if (name ? cli_broker_name(ctx, name, &b) : cli_broker_opt(ctx, &b))
                return 1;
        /* no broker running (--all) holds nothing to purge */
        r = b ? ashmem_broker_purge(b, name, &pages) : 0;
        if (r < 0)
                return name ? cli_broker_error(ctx, r, name) :
                              cli_broker_fail(ctx, r, cli_broker_why(ctx), "purging");
        /* nothing purged from a region that cannot be written: say why */
        if (name && pages == 0 && ashmem_broker_info(b, name, &info) == 0 &&
            !(info.prot & PROT_WRITE))
                why = "its protection has no write";
        bytes = pages * am_page_size();
        out_begin(&o, ctx, OUT_REPORT);
        if (name)
                out_str(&o, OUT_JSON, "name", NULL, name);
        else
                out_bool(&o, OUT_JSON, "all", NULL, NULL, 1);
        out_u64(&o, OUT_ANY, "pages", "purged %llu", pages);
        out_text(&o, " page%s", pages == 1 ? "" : "s");
        out_u64(&o, OUT_ANY, "bytes", " (%llu bytes)", bytes);
        if (why) {
                out_str(&o, OUT_ANY, "not_purged", " (%s: ", why);
                out_text(&o, "%s is never purged while its protection is %s)",
                         name, format_prot(info.prot, pbuf));
        }
        out_text(&o, "\n");
        return out_end(&o);
}

const struct cmd_entry cmd_purge_entry = {
        .name = "purge", .args_usage = "[NAME]", .flags = CMD_BROKER, .exec = purge_exec,
        .summary = "reclaim the unpinned pages of a region (or --all) now",
        .opts = purge_opts, .max_args = 1, .complete_args = cmd_complete_regions,
};
