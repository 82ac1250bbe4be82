/* SPDX-License-Identifier: MIT */
/* Completion from the command table, and the hidden `__complete` helper
 * the bash, zsh and fish scripts call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ashmem/ashmem.h"
#include "broker.h"
#include "cmd.h"
#include "complete.h"
#include "options.h"
#include "output.h"
#include "parse.h"

/* Give up on a broker that does not answer a completion in this time. */
#define COMPLETE_TIMEOUT_MS 3000

static void add_full(struct complete *c, const char *cand, const char *desc)
{
        size_t ll = strlen(c->lead), cl = strlen(cand);
        char *full, *d = NULL;

        if (c->oom)
                return;
        full = malloc(ll + cl + 1);
        if (!full)
                goto oom;
        memcpy(full, c->lead, ll);
        memcpy(full + ll, cand, cl + 1);
        for (size_t i = 0; i < c->n; i++) {
                if (strcmp(c->cand[i], full) == 0) {
                        free(full);
                        return;
                }
        }
        if (desc && !(d = strdup(desc)))
                goto oom;
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 32;
                char **nc = realloc(c->cand, cap * sizeof(*nc)), **nd;
                if (!nc)
                        goto oom;
                c->cand = nc;
                nd = realloc(c->desc, cap * sizeof(*nd));
                if (!nd)
                        goto oom;
                c->desc = nd;
                c->cap = cap;
        }
        c->cand[c->n] = full;
        c->desc[c->n] = d;
        c->n++;
        return;
oom:
        free(full);
        free(d);
        c->oom = 1;
}

void complete_add(struct complete *c, const char *cand, const char *desc)
{
        const char *cur = c->cur ? c->cur : "";

        if (strncmp(cand, cur, strlen(cur)) == 0)
                add_full(c, cand, desc);
}

void complete_free(struct complete *c)
{
        for (size_t i = 0; i < c->n; i++) {
                free(c->cand[i]);
                free(c->desc[i]);
        }
        free(c->cand);
        free(c->desc);
        c->cand = c->desc = NULL;
        c->n = c->cap = 0;
}

static int usable(const struct complete *c, const struct cmd_entry *e)
{
        if (e->flags & CMD_HIDDEN)
                return 0;
        return c->shell ? !(e->flags & CMD_NO_SHELL) : !(e->flags & CMD_SHELL_ONLY);
}

static void add_commands(struct complete *c)
{
        for (int i = 0; cmd_table[i]; i++)
                if (usable(c, cmd_table[i]))
                        complete_add(c, cmd_table[i]->name, cmd_table[i]->summary);
}

static void add_option(struct complete *c, const struct cmd_opt *o)
{
        char name[80], desc[256];

        snprintf(name, sizeof(name), "--%s", o->name);
        if (o->arg)
                snprintf(desc, sizeof(desc), "%s: %s", o->arg, o->help);
        else
                snprintf(desc, sizeof(desc), "%s", o->help);
        complete_add(c, name, desc);
}

/* Regions the broker at socket holds (the caller's connection if it has
 * one for that socket). A broker that does not run is not started. */
static void add_regions(struct complete *c, struct cmd_ctx *ctx, const char *socket)
{
        ashmem_region_info *regions = NULL;
        ashmem_broker *b = NULL, *own = NULL;
        size_t n = 0;

        if (socket == ctx->socket && ctx->broker) {
                b = ctx->broker;
        } else if (socket == ctx->socket && ctx->shell) {
                /* the shell's connection, made now, is kept for the session */
                if (broker_connect(socket, ctx->system, 0, &ctx->broker) < 0)
                        return;
                b = ctx->broker;
        } else {
                if (broker_connect(socket, socket == ctx->socket ? ctx->system : 0, 0, &own) < 0)
                        return;
                ashmem_broker_set_timeout(own, COMPLETE_TIMEOUT_MS);
                b = own;
        }
        if (ashmem_broker_list(b, &regions, &n) == 0) {
                for (size_t i = 0; i < n; i++) {
                        char size[32], prot[4], desc[96];
                        format_size(regions[i].size, size, sizeof(size));
                        snprintf(desc, sizeof(desc), "%s %s%s", size, format_prot(regions[i].prot, prot),
                                 regions[i].is_slice ? " slice" : "");
                        complete_add(c, regions[i].name, desc);
                }
        }
        free(regions);
        ashmem_broker_close(own);
}

/* -o COLS: one column name after the last comma (or a leading '+');
 * top: also the columns only top fills. */
static void add_columns(struct complete *c, int top)
{
        const char *cur = c->cur, *comma = strrchr(cur, ','), *part;
        size_t base = comma ? (size_t)(comma - cur) + 1 : (cur[0] == '+' ? 1 : 0);

        part = cur + base;
        c->directive = COMPLETE_NOSPACE;
        for (const struct out_col *col = out_cols; col->name; col++) {
                char cand[256];
                if (strncasecmp(col->name, part, strlen(part)) != 0 ||
                    ((col->flags & OUT_COL_TOP) && !top))
                        continue;
                snprintf(cand, sizeof(cand), "%.*s%s", (int)base, cur, col->name);
                add_full(c, cand, col->help);
        }
}

/* Values of a kind; 0, or -1 for a kind this does not know. */
static int add_kind(struct complete *c, struct cmd_ctx *ctx, const char *socket, const char *kind)
{
        static const char *const prots[][2] = {
                { "r", "read" }, { "rw", "read and write" }, { "rx", "read and execute" },
                { "rwx", "read, write and execute" },
        };

        if (!kind || strcmp(kind, "none") == 0)
                return 0;
        if (strcmp(kind, "region") == 0) {
                add_regions(c, ctx, socket);
                if (c->names)
                        c->names(c, kind, c->names_arg);
        } else if (strcmp(kind, "local") == 0 || strcmp(kind, "mapping") == 0) {
                if (c->names)
                        c->names(c, kind, c->names_arg);
        } else if (strcmp(kind, "type") == 0) {
                for (const struct vtype *t = vtypes; t->name; t++) {
                        char desc[64];
                        if (t->size)
                                snprintf(desc, sizeof(desc), "%s %u-bit integer",
                                         t->is_signed ? "signed" : "unsigned", t->size * 8);
                        else
                                snprintf(desc, sizeof(desc), "string (NUL-terminated)");
                        complete_add(c, t->name, desc);
                }
        } else if (strcmp(kind, "prot") == 0) {
                for (size_t i = 0; i < sizeof(prots) / sizeof(prots[0]); i++)
                        complete_add(c, prots[i][0], prots[i][1]);
        } else if (strcmp(kind, "column") == 0 || strcmp(kind, "topcolumn") == 0) {
                add_columns(c, kind[0] == 't');
        } else if (strcmp(kind, "timefmt") == 0) {
                complete_add(c, "short", "12:04 today, else May01");
                complete_add(c, "full", "Wed May  1 12:04:03 2024");
                complete_add(c, "iso", "2024-05-01T12:04:03+0200");
        } else if (strcmp(kind, "file") == 0) {
                c->directive = COMPLETE_FILES;
        } else if (strcmp(kind, "command") == 0) {
                add_commands(c);
        } else {
                return -1;
        }
        return 0;
}

/* Positional p of e spelt as alternatives in its usage ("run|start|stop"):
 * offer them. */
static void add_usage_words(struct complete *c, const struct cmd_entry *e, int p)
{
        const char *u = e->args_usage ? e->args_usage : "";
        char word[128];
        int i = 0;

        while (*u) {
                size_t n = strcspn(u, " ");
                if (n && i++ == p) {
                        const char *w = u, *end = u + n;
                        char *s, *save = NULL;
                        if (*w == '[')
                                w++;
                        if (end > w && end[-1] == ']')
                                end--;
                        if ((size_t)(end - w) >= sizeof(word))
                                return;
                        memcpy(word, w, (size_t)(end - w));
                        word[end - w] = 0;
                        if (!strchr(word, '|') || strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789|-") != strlen(word))
                                return;
                        for (s = strtok_r(word, "|", &save); s; s = strtok_r(NULL, "|", &save))
                                complete_add(c, s, NULL);
                        return;
                }
                u += n;
                u += strspn(u, " ");
        }
}

/* Options for cur ("-", "--o", "--output=N"): opts' and the global ones,
 * less those given already (ngiven of them). */
static int complete_option(struct complete *c, struct cmd_ctx *ctx, const char *socket,
                           const struct cmd_opt *opts, const struct cmd_opt *const *given,
                           int ngiven)
{
        const char *cur = c->cur, *eq = strchr(cur, '=');

        if (cur[1] == '-' && eq) {
                const struct cmd_opt *o = opt_find_long(opts, cur + 2, (size_t)(eq - cur - 2), NULL);
                char *lead;
                if (!o || !o->arg)
                        return 0;
                lead = strndup(cur, (size_t)(eq - cur) + 1);
                if (!lead)
                        return -ENOMEM;
                c->lead = lead;
                c->cur = eq + 1;
                add_kind(c, ctx, socket, o->complete);
                if (c->directive == COMPLETE_FILES)
                        c->lead_len = strlen(lead);
                c->lead = "";
                c->cur = cur;
                free(lead);
                return c->oom ? -ENOMEM : 0;
        }
        for (int t = 0; t < 2; t++) {
                for (const struct cmd_opt *o = t ? cmd_global_opts : opts; o && o->name; o++) {
                        int seen = 0;
                        for (int g = 0; g < ngiven; g++)
                                seen |= given[g] == o;
                        if (!seen)
                                add_option(c, o);
                }
        }
        return c->oom ? -ENOMEM : 0;
}

int complete_words(struct cmd_ctx *ctx, int argc, char **argv, struct complete *c)
{
        const char *socket = ctx->socket, *cur, *kind;
        const struct cmd_opt *given[64], *want = NULL;
        const struct cmd_entry *e;
        struct opt_scan s;
        struct opt_item it;
        int i = 0, last = argc - 1, npos = 0, ngiven = 0, dashdash = 0, rest = -1;
        char err[512];

        c->directive = COMPLETE_WORDS;
        c->lead_len = 0;
        c->lead = "";
        c->cur = "";
        if (argc < 1)
                return 0;
        cur = argv[last];
        c->cur = cur;
        if (!c->shell) {
                /* global options before the command */
                opt_scan_init(&s, NULL, last, argv, 0);
                i = last;
                while (!want && opt_next(&s, &it) != OPT_END) {
                        if (it.kind == OPT_POSITIONAL) {
                                i = it.index;
                                break;
                        }
                        if (it.kind == OPT_DASHDASH) {
                                i = s.ind;
                                break;
                        }
                        if (it.kind == OPT_NEEDS_ARG)
                                want = it.opt;
                        else if (it.kind == OPT_OPTION && strcmp(it.opt->name, "socket") == 0)
                                socket = it.val;
                }
                if (want) {
                        add_kind(c, ctx, socket, want->complete);
                        return c->oom ? -ENOMEM : 0;
                }
                if (i == last && opt_starts_option(cur))
                        return complete_option(c, ctx, socket, NULL, NULL, 0);
        }
        if (i == last) {
                add_commands(c);
                return c->oom ? -ENOMEM : 0;
        }
        e = cmd_find(argv[i], err, sizeof(err));
        if (!e || !(usable(c, e) || strcmp(e->name, argv[i]) == 0))
                return 0;
        /* the command's words before the one being completed, read as
         * cmd_parse reads them; an option unknown here is passed over */
        opt_scan_init(&s, e->opts, last, argv, i + 1);
        while (rest < 0 && opt_next(&s, &it) != OPT_END) {
                switch (it.kind) {
                case OPT_POSITIONAL:
                        npos++;
                        break;
                case OPT_DASHDASH:
                        if (e->flags & CMD_PASSTHROUGH)
                                rest = last - s.ind;
                        else
                                dashdash = 1;
                        break;
                case OPT_OPTION:
                case OPT_NEEDS_ARG:
                case OPT_NO_ARG:
                        if (ngiven < 64)
                                given[ngiven++] = it.opt;
                        if (it.kind == OPT_NEEDS_ARG)
                                want = it.opt;
                        else if (it.val && it.global && strcmp(it.opt->name, "socket") == 0)
                                socket = it.val;
                        break;
                default:
                        break;
                }
        }
        if (want) {
                add_kind(c, ctx, socket, want->complete);
                return c->oom ? -ENOMEM : 0;
        }
        if (rest >= 0) {
                c->directive = rest == 0 ? COMPLETE_COMMANDS : COMPLETE_FILES;
                return 0;
        }
        if (!dashdash && opt_starts_option(cur))
                return complete_option(c, ctx, socket, e->opts, given, ngiven);
        if (e->max_args >= 0 && npos >= e->max_args)
                return 0;
        kind = NULL;
        if (e->complete_args) {
                int k = 0;
                while (k < npos && e->complete_args[k + 1])
                        k++;
                kind = e->complete_args[k];
        }
        if (add_kind(c, ctx, socket, kind) < 0 || !kind)
                add_usage_words(c, e, npos);
        return c->oom ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------- __complete */

static const char *const directive_names[] = {
        [COMPLETE_WORDS] = "words",
        [COMPLETE_NOSPACE] = "nospace",
        [COMPLETE_FILES] = "files",
        [COMPLETE_COMMANDS] = "commands",
};

/*
 * `ashmemctl __complete -- WORDS...`: WORDS are the words after
 * "ashmemctl" up to the one being completed (maybe ""). Prints one
 * candidate per line, "CANDIDATE<TAB>DESCRIPTION" when there is a
 * description, then a last line ":DIRECTIVE": ":words" (the candidates),
 * ":nospace" (the candidates; do not add a space after a sole one),
 * ":files" (complete file names) or ":commands" (program names).
 */
static int complete_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct complete c = { 0 };
        char *none[] = { (char *)"", NULL };
        int r;

        ctx->no_autostart = 1;
        r = complete_words(ctx, a->nrest ? a->nrest : 1, a->nrest ? a->rest : none, &c);
        if (r < 0) {
                complete_free(&c);
                return cmd_error(ctx, -r, "completing");
        }
        for (size_t i = 0; i < c.n; i++) {
                if (c.desc[i])
                        printf("%s\t%s\n", c.cand[i], c.desc[i]);
                else
                        printf("%s\n", c.cand[i]);
        }
        printf(":%s\n", directive_names[c.directive]);
        complete_free(&c);
        return 0;
}

const struct cmd_entry cmd_complete_entry = {
        .name = "__complete", .args_usage = "-- WORDS...",
        .flags = CMD_HIDDEN | CMD_PASSTHROUGH, .exec = complete_exec,
        .summary = "completion candidates for the shell completion scripts",
        .max_args = 0,
};
