/* SPDX-License-Identifier: MIT */
/* The option parser (cli/options.h says the grammar) and its two users:
 * a command's words (cmd_parse) and the top level (cmd_parse_globals). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "options.h"
#include "output.h"
#include "parse.h"

const struct cmd_opt cmd_global_opts[] = {
        { "json", 'j', NULL, NULL, "print one JSON document" },
        { "socket", 0, "PATH", "file", "the broker's socket" },
        { "system", 0, NULL, NULL, "the system-wide broker (" ASHMEM_BROKER_SYSTEM_SOCKET ")" },
        { "no-autostart", 0, NULL, NULL, "do not start a broker when none runs" },
        { "quiet", 'q', NULL, NULL, "print nothing on success" },
        { "help", 'h', NULL, NULL, "show help and exit" },
        { "version", 'V', NULL, NULL, "show the version and exit" },
        { "raw", 'r', NULL, NULL, "tables unaligned, unsafe characters as \\xNN; strings as bytes" },
        { "export", 'e', NULL, NULL, "tables and records as KEY=\"value\" pairs" },
        { "shell", 'y', NULL, NULL, "--export with keys bash can assign too (UID_)" },
        { "notruncate", 0, NULL, NULL, "never shorten a column to fit the terminal" },
        { "time-format", 0, "FORMAT", "timefmt", "times as short, full or iso" },
        { 0 }
};

const struct cmd_opt *opt_find_long(const struct cmd_opt *opts, const char *name,
                                    size_t len, int *global)
{
        const struct cmd_opt *tabs[2] = { opts, cmd_global_opts };

        for (int t = 0; t < 2; t++)
                for (const struct cmd_opt *o = tabs[t]; o && o->name; o++)
                        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
                                if (global)
                                        *global = t;
                                return o;
                        }
        return NULL;
}

const struct cmd_opt *opt_find_short(const struct cmd_opt *opts, char c, int *global)
{
        const struct cmd_opt *tabs[2] = { opts, cmd_global_opts };

        for (int t = 0; c && t < 2; t++)
                for (const struct cmd_opt *o = tabs[t]; o && o->name; o++)
                        if (o->short_name == c) {
                                if (global)
                                        *global = t;
                                return o;
                        }
        return NULL;
}

void opt_scan_init(struct opt_scan *s, const struct cmd_opt *opts, int argc,
                   char **argv, int first)
{
        memset(s, 0, sizeof(*s));
        s->opts = opts;
        s->argc = argc;
        s->argv = argv;
        s->ind = first;
}

/* An option's argument: the rest of its word (rest, may be NULL), else
 * the next word. */
static enum opt_kind take_arg(struct opt_scan *s, struct opt_item *it, const char *rest)
{
        if (rest)
                it->val = rest;
        else if (s->ind < s->argc)
                it->val = s->argv[s->ind++];
        else
                return it->kind = OPT_NEEDS_ARG;
        return it->kind = OPT_OPTION;
}

/* The next letter of a short-option group. */
static enum opt_kind short_opt(struct opt_scan *s, struct opt_item *it)
{
        const char *c = s->group;

        it->index = s->ind - 1;
        it->word = s->argv[it->index];
        it->name = c;
        it->namelen = 1;
        s->group = c[1] ? c + 1 : NULL;
        it->opt = opt_find_short(s->opts, *c, &it->global);
        if (!it->opt) {
                s->group = NULL;
                return it->kind = OPT_UNKNOWN;
        }
        if (!it->opt->arg)
                return it->kind = OPT_OPTION;
        s->group = NULL;
        return take_arg(s, it, c[1] ? c + 1 : NULL);
}

int opt_starts_option(const char *w)
{
        /* "-5" is a number (incr NAME -5), not an option */
        return w[0] == '-' && !(w[1] >= '0' && w[1] <= '9');
}

enum opt_kind opt_next(struct opt_scan *s, struct opt_item *it)
{
        const char *w, *eq;

        memset(it, 0, sizeof(*it));
        if (s->group)
                return short_opt(s, it);
        if (s->ind >= s->argc)
                return it->kind = OPT_END;
        it->index = s->ind;
        it->word = w = s->argv[s->ind++];
        if (s->positional_only || !opt_starts_option(w) || w[1] == 0)
                return it->kind = OPT_POSITIONAL;
        if (strcmp(w, "--") == 0) {
                s->positional_only = 1;
                return it->kind = OPT_DASHDASH;
        }
        if (w[1] != '-') {
                s->group = w + 1;
                return short_opt(s, it);
        }
        it->is_long = 1;
        it->name = w + 2;
        eq = strchr(it->name, '=');
        it->namelen = eq ? (size_t)(eq - it->name) : strlen(it->name);
        it->opt = opt_find_long(s->opts, it->name, it->namelen, &it->global);
        if (!it->opt)
                return it->kind = OPT_UNKNOWN;
        if (!it->opt->arg)
                return it->kind = eq ? OPT_NO_ARG : OPT_OPTION;
        return take_arg(s, it, eq ? eq + 1 : NULL);
}

int opt_error(struct cmd_ctx *ctx, const struct opt_item *it)
{
        const char *dashes = it->is_long ? "--" : "-";

        switch (it->kind) {
        case OPT_NEEDS_ARG:
                return cmd_usage(ctx, "option %s%.*s needs an argument (%s)", dashes,
                                 (int)it->namelen, it->name, it->opt->arg);
        case OPT_NO_ARG:
                return cmd_usage(ctx, "option --%s takes no argument", it->opt->name);
        default:
                return cmd_usage(ctx, "unknown option: %s%.*s", dashes, (int)it->namelen,
                                 it->name);
        }
}

/* Apply a global option: 0, CMD_PARSE_HELP / CMD_PARSE_VERSION for the
 * options that ask for those, or EXIT_USAGE (reported) for a bad value. */
static int global_opt(struct cmd_ctx *ctx, const struct cmd_opt *o, const char *val)
{
        static const struct { const char *name; unsigned flag; } outs[] = {
                { "raw", OUT_RAW }, { "export", OUT_EXPORT }, { "shell", OUT_SHELLVAR },
                { "notruncate", OUT_NOTRUNC },
        };

        for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++)
                if (strcmp(o->name, outs[i].name) == 0) {
                        ctx->out_flags |= outs[i].flag;
                        return 0;
                }
        if (strcmp(o->name, "time-format") == 0) {
                char err[PARSE_ERR_LEN];
                unsigned f;
                if (out_time_format(val, &f, err) < 0)
                        return cmd_usage(ctx, "%s", err);
                ctx->out_flags = (ctx->out_flags & ~OUT_TIME_MASK) | f;
                return 0;
        }
        if (strcmp(o->name, "json") == 0)
                ctx->json = 1;
        else if (strcmp(o->name, "quiet") == 0)
                ctx->quiet = 1;
        else if (strcmp(o->name, "no-autostart") == 0)
                ctx->no_autostart = NOAUTO_OPTION;
        else if (strcmp(o->name, "socket") == 0)
                ctx->socket = val;
        else if (strcmp(o->name, "system") == 0)
                ctx->system = 1;
        else if (strcmp(o->name, "help") == 0)
                return CMD_PARSE_HELP;
        else if (strcmp(o->name, "version") == 0)
                return CMD_PARSE_VERSION;
        return 0;
}

/* What help and version asked for, once every option is read: help
 * before version. */
static int wanted(int help, int version)
{
        return help ? CMD_PARSE_HELP : version ? CMD_PARSE_VERSION : 0;
}

/* The global options that cannot go together, once all are read: 0 or
 * EXIT_USAGE (reported). --system is --socket of the system socket, so
 * both may only name that one. */
static int globals_check(struct cmd_ctx *ctx)
{
        if (ctx->socket && !*ctx->socket)
                return cmd_usage(ctx, "--socket needs a path (it was empty)");
        if (ctx->system && ctx->socket && strcmp(ctx->socket, ASHMEM_BROKER_SYSTEM_SOCKET) != 0)
                return cmd_usage(ctx, "--system (" ASHMEM_BROKER_SYSTEM_SOCKET ") and --socket %s "
                                 "name different brokers: give one", ctx->socket);
        return 0;
}

int cmd_parse(struct cmd_ctx *ctx, const struct cmd_entry *e, int argc,
              char **argv, struct cmd_args *out)
{
        static char *none[1];
        struct opt_scan s;
        struct opt_item it;
        int npos = 0, help = 0, version = 0;

        memset(out, 0, sizeof(*out));
        out->entry = e;
        out->argv = argc > 1 ? calloc((size_t)argc, sizeof(char *)) : NULL;
        if (argc > 1 && !out->argv)
                return cmd_error(ctx, ENOMEM, "parsing arguments");
        out->rest = none;
        opt_scan_init(&s, e->opts, argc, argv, 1);
        while (opt_next(&s, &it) != OPT_END) {
                switch (it.kind) {
                case OPT_POSITIONAL:
                        out->argv[npos++] = (char *)it.word;
                        break;
                case OPT_DASHDASH:
                        if (e->flags & CMD_PASSTHROUGH) {
                                out->rest = argv + s.ind;
                                out->nrest = argc - s.ind;
                                s.ind = argc;
                        }
                        break;
                case OPT_OPTION:
                        if (!it.global) {
                                out->val[it.opt - e->opts] = it.val ? it.val : "";
                                break;
                        }
                        switch (global_opt(ctx, it.opt, it.val)) {
                        case CMD_PARSE_HELP: help = 1; break;
                        case CMD_PARSE_VERSION: version = 1; break;
                        case EXIT_USAGE: goto usage;
                        }
                        break;
                default:
                        opt_error(ctx, &it);
                        goto usage;
                }
        }
        out->argc = npos;
        if (help || version)
                return wanted(help, version);
        if (globals_check(ctx))
                goto usage;
        if (npos < e->min_args) {
                cmd_usage(ctx, "missing argument%s (%s)", e->min_args - npos > 1 ? "s" : "",
                          e->args_usage ? e->args_usage : "");
                goto usage;
        }
        if (e->max_args >= 0 && npos > e->max_args) {
                cmd_usage(ctx, "unexpected argument: %s", out->argv[e->max_args]);
                goto usage;
        }
        return 0;
usage:
        free(out->argv);
        out->argv = NULL;
        return EXIT_USAGE;
}

int cmd_parse_globals(struct cmd_ctx *ctx, int argc, char **argv, int *ind)
{
        struct opt_scan s;
        struct opt_item it;
        int help = 0, version = 0;

        *ind = argc;
        opt_scan_init(&s, NULL, argc, argv, 1);
        while (opt_next(&s, &it) != OPT_END) {
                if (it.kind == OPT_POSITIONAL) {
                        *ind = it.index;
                        break;
                }
                if (it.kind == OPT_DASHDASH) {
                        *ind = s.ind;
                        break;
                }
                if (it.kind != OPT_OPTION)
                        return opt_error(ctx, &it);
                switch (global_opt(ctx, it.opt, it.val)) {
                case CMD_PARSE_HELP: help = 1; break;
                case CMD_PARSE_VERSION: version = 1; break;
                case EXIT_USAGE: return EXIT_USAGE;
                }
        }
        if (!help && !version && globals_check(ctx))
                return EXIT_USAGE;
        return wanted(help, version);
}

const char *opt_socket_of(int argc, char **argv)
{
        const struct cmd_entry *e;
        const char *socket = NULL;
        struct opt_scan s;
        struct opt_item it;
        char err[512];

        if (argc < 1 || !(e = cmd_find(argv[0], err, sizeof(err))))
                return NULL;
        opt_scan_init(&s, e->opts, argc, argv, 1);
        while (opt_next(&s, &it) != OPT_END) {
                if (it.kind == OPT_DASHDASH && (e->flags & CMD_PASSTHROUGH))
                        break;
                if (it.kind == OPT_OPTION && it.global && strcmp(it.opt->name, "socket") == 0)
                        socket = it.val;
                else if (it.kind == OPT_OPTION && it.global && strcmp(it.opt->name, "system") == 0)
                        socket = ASHMEM_BROKER_SYSTEM_SOCKET;
                else if (it.kind != OPT_OPTION && it.kind != OPT_POSITIONAL &&
                         it.kind != OPT_DASHDASH)
                        return NULL;
        }
        return socket;
}
