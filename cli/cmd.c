/* SPDX-License-Identifier: MIT */
/* The command table, lookup, argument parsing, help and error reporting. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd.h"
#include "lib/internal/errname.h"

extern const struct cmd_entry cmd_help_entry, cmd_version_entry;
/* the broker daemon (cli/cmd-broker.c) */
extern const struct cmd_entry cmd_broker_entry;
/* region commands (cli/cmd-region.c, cmd-pin.c, cmd-data.c, cmd-value.c,
 * cmd-share.c) */
extern const struct cmd_entry cmd_create_entry, cmd_list_entry, cmd_info_entry,
        cmd_size_entry, cmd_prot_entry, cmd_pin_entry, cmd_unpin_entry,
        cmd_status_entry, cmd_purge_entry, cmd_read_entry, cmd_write_entry,
        cmd_dump_entry, cmd_get_entry, cmd_set_entry, cmd_incr_entry,
        cmd_share_entry, cmd_slice_entry, cmd_unshare_entry, cmd_attach_entry;
/* the shell and its own commands (cli/shell.c), the completion helper
 * (cli/complete.c) */
extern const struct cmd_entry cmd_shell_entry, cmd_map_entry, cmd_unmap_entry,
        cmd_regions_entry, cmd_exit_entry, cmd_complete_entry;

const struct cmd_entry *const cmd_table[] = {
        &cmd_create_entry,
        &cmd_list_entry,
        &cmd_info_entry,
        &cmd_size_entry,
        &cmd_prot_entry,
        &cmd_pin_entry,
        &cmd_unpin_entry,
        &cmd_status_entry,
        &cmd_purge_entry,
        &cmd_read_entry,
        &cmd_write_entry,
        &cmd_dump_entry,
        &cmd_get_entry,
        &cmd_set_entry,
        &cmd_incr_entry,
        &cmd_share_entry,
        &cmd_slice_entry,
        &cmd_unshare_entry,
        &cmd_attach_entry,
        &cmd_broker_entry,
        &cmd_shell_entry,
        &cmd_map_entry,
        &cmd_unmap_entry,
        &cmd_regions_entry,
        &cmd_exit_entry,
        &cmd_help_entry,
        &cmd_version_entry,
        &cmd_complete_entry,
        NULL
};

const struct cmd_opt cmd_global_opts[] = {
        { "json", 'j', NULL, NULL, "print one JSON document" },
        { "socket", 0, "PATH", "file", "the broker's socket" },
        { "no-autostart", 0, NULL, NULL, "do not start a broker when none runs" },
        { "quiet", 'q', NULL, NULL, "print nothing on success" },
        { "help", 'h', NULL, NULL, "show help and exit" },
        { 0 }
};

const struct cmd_entry *cmd_find(const char *name, char *err, size_t errlen)
{
        const struct cmd_entry *found = NULL;
        size_t len = strlen(name);
        int n = 0;

        for (int i = 0; cmd_table[i]; i++) {
                const struct cmd_entry *e = cmd_table[i];
                if (strcmp(e->name, name) == 0 || (e->alias && strcmp(e->alias, name) == 0))
                        return e;
        }
        for (int i = 0; len && cmd_table[i]; i++) {
                const struct cmd_entry *e = cmd_table[i];
                if (!(e->flags & CMD_HIDDEN) && strncmp(e->name, name, len) == 0) {
                        found = e;
                        n++;
                }
        }
        if (n == 1)
                return found;
        if (n == 0) {
                snprintf(err, errlen, "unknown command: %s", name);
                return NULL;
        }
        {
                size_t o = (size_t)snprintf(err, errlen, "ambiguous command: %s, could be:", name);
                const char *sep = " ";
                for (int i = 0; cmd_table[i] && o < errlen; i++) {
                        const struct cmd_entry *e = cmd_table[i];
                        if (!(e->flags & CMD_HIDDEN) && strncmp(e->name, name, len) == 0) {
                                o += (size_t)snprintf(err + o, errlen - o, "%s%s", sep, e->name);
                                sep = ", ";
                        }
                }
        }
        return NULL;
}

const char *cmd_opt(const struct cmd_args *a, const char *name)
{
        const struct cmd_opt *o = a->entry->opts;
        for (int i = 0; o && o[i].name; i++)
                if (strcmp(o[i].name, name) == 0)
                        return a->val[i];
        return NULL;
}

int cmd_flag(const struct cmd_args *a, const char *name)
{
        return cmd_opt(a, name) != NULL;
}

void cmd_verror(struct cmd_ctx *ctx, int err, int spell_out, const char *fmt, va_list ap)
{
        char msg[1024];
        const char *cmd = ctx->cmd ? ctx->cmd->name : NULL;
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);

        if (spell_out && err > 0 && n >= 0 && (size_t)n < sizeof(msg))
                snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
        if (ctx->json) {
                cJSON *doc = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(doc, "error");
                const char *name = am_errno_name(err, "EINVAL");
                char *s;
                cJSON_AddStringToObject(e, "errno", name);
                cJSON_AddStringToObject(e, "message", msg);
                if (cmd)
                        cJSON_AddStringToObject(e, "command", cmd);
                s = cJSON_PrintUnformatted(doc);
                if (s)
                        fprintf(stderr, "%s\n", s);
                free(s);
                cJSON_Delete(doc);
        } else if (cmd) {
                fprintf(stderr, "ashmemctl: %s: %s\n", cmd, msg);
        } else {
                fprintf(stderr, "ashmemctl: %s\n", msg);
        }
}

int cmd_error(struct cmd_ctx *ctx, int err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cmd_verror(ctx, err, 1, fmt, ap);
        va_end(ap);
        return 1;
}

int cmd_usage(struct cmd_ctx *ctx, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cmd_verror(ctx, 0, 0, fmt, ap);
        va_end(ap);
        if (!ctx->json) {
                if (ctx->cmd)
                        cmd_print_usage(stderr, ctx->cmd);
                else
                        fprintf(stderr, "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]; see 'ashmemctl help'\n");
        }
        return EXIT_USAGE;
}

static void print_opts_usage(FILE *f, const struct cmd_opt *o)
{
        for (int i = 0; o && o[i].name; i++) {
                if (o[i].short_name)
                        fprintf(f, " [-%c|--%s%s%s]", o[i].short_name, o[i].name,
                                o[i].arg ? " " : "", o[i].arg ? o[i].arg : "");
                else
                        fprintf(f, " [--%s%s%s]", o[i].name,
                                o[i].arg ? " " : "", o[i].arg ? o[i].arg : "");
        }
}

void cmd_print_usage(FILE *f, const struct cmd_entry *e)
{
        fprintf(f, "usage: ashmemctl %s", e->name);
        print_opts_usage(f, e->opts);
        if (e->args_usage && *e->args_usage)
                fprintf(f, " %s", e->args_usage);
        fputc('\n', f);
}

static void print_opt_list(FILE *f, const struct cmd_opt *o)
{
        for (int i = 0; o && o[i].name; i++) {
                char left[64];
                snprintf(left, sizeof(left), "%c%c%c --%s%s%s",
                         o[i].short_name ? '-' : ' ', o[i].short_name ? o[i].short_name : ' ',
                         o[i].short_name ? ',' : ' ', o[i].name,
                         o[i].arg ? " " : "", o[i].arg ? o[i].arg : "");
                fprintf(f, "  %-26s %s\n", left, o[i].help);
        }
}

void cmd_print_help(FILE *f, const struct cmd_entry *e)
{
        cmd_print_usage(f, e);
        fprintf(f, "\n%s\n", e->summary);
        if (e->alias)
                fprintf(f, "Alias: %s\n", e->alias);
        if (e->opts && e->opts[0].name) {
                fprintf(f, "\nOptions:\n");
                print_opt_list(f, e->opts);
        }
        fprintf(f, "\nGlobal options:\n");
        print_opt_list(f, cmd_global_opts);
        fprintf(f, "\nSee ashmemctl(1) for details.\n");
}

void cmd_print_overview(FILE *f, int in_shell)
{
        fprintf(f, "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]\n"
                   "\nAndroid-style anonymous shared memory regions: create, share, inspect, pin.\n"
                   "\nCommands:\n");
        for (int i = 0; cmd_table[i]; i++) {
                const struct cmd_entry *e = cmd_table[i];
                char name[32];
                if ((e->flags & CMD_HIDDEN) || (in_shell && (e->flags & CMD_NO_SHELL)))
                        continue;
                snprintf(name, sizeof(name), "%s%s%s", e->name, e->alias ? ", " : "",
                         e->alias ? e->alias : "");
                fprintf(f, "  %-14s %s\n", name, e->summary);
        }
        fprintf(f, "\nOptions:\n");
        print_opt_list(f, cmd_global_opts);
        fprintf(f, "  %-26s %s\n", "-V, --version", "show the version and exit");
        fprintf(f, "\nCommand names may be abbreviated to a unique prefix.\n"
                   "'ashmemctl COMMAND --help' shows a command's options; ashmemctl(1) has the rest.\n");
}

/* Match a long option name (name or name=value) against a table. */
static int find_long(const struct cmd_opt *o, const char *word, size_t len)
{
        for (int i = 0; o && o[i].name; i++)
                if (strlen(o[i].name) == len && strncmp(o[i].name, word, len) == 0)
                        return i;
        return -1;
}

static int find_short(const struct cmd_opt *o, char c)
{
        for (int i = 0; o && o[i].name; i++)
                if (o[i].short_name == c)
                        return i;
        return -1;
}

static int looks_negative(const char *w)
{
        return w[0] == '-' && w[1] >= '0' && w[1] <= '9';
}

/* Apply a global option met among a command's words. */
static int global_opt(struct cmd_ctx *ctx, int gi, const char *val)
{
        const char *n = cmd_global_opts[gi].name;
        if (strcmp(n, "json") == 0)
                ctx->json = 1;
        else if (strcmp(n, "quiet") == 0)
                ctx->quiet = 1;
        else if (strcmp(n, "no-autostart") == 0)
                ctx->no_autostart = 1;
        else if (strcmp(n, "socket") == 0)
                ctx->socket = val;
        else if (strcmp(n, "help") == 0)
                return -1;
        return 0;
}

int cmd_parse(struct cmd_ctx *ctx, const struct cmd_entry *e, int argc,
              char **argv, struct cmd_args *out)
{
        static char *none[1];
        int npos = 0, help = 0;

        memset(out, 0, sizeof(*out));
        out->entry = e;
        out->argv = argc > 1 ? calloc((size_t)argc, sizeof(char *)) : NULL;
        if (argc > 1 && !out->argv)
                return cmd_error(ctx, ENOMEM, "parsing arguments");
        out->rest = none;
        for (int i = 1; i < argc; i++) {
                char *w = argv[i];
                if (strcmp(w, "--") == 0) {
                        if (e->flags & CMD_PASSTHROUGH) {
                                out->rest = argv + i + 1;
                                out->nrest = argc - i - 1;
                                break;
                        }
                        for (i++; i < argc; i++)
                                out->argv[npos++] = argv[i];
                        break;
                }
                if (w[0] != '-' || w[1] == 0 || looks_negative(w)) {
                        out->argv[npos++] = w;
                        continue;
                }
                if (w[1] == '-') {
                        const char *name = w + 2, *eq = strchr(name, '=');
                        size_t len = eq ? (size_t)(eq - name) : strlen(name);
                        int oi = find_long(e->opts, name, len), gi = -1;
                        const struct cmd_opt *o;
                        const char *val = NULL;
                        if (oi < 0 && (gi = find_long(cmd_global_opts, name, len)) < 0) {
                                cmd_usage(ctx, "unknown option: --%.*s", (int)len, name);
                                goto usage;
                        }
                        o = oi >= 0 ? &e->opts[oi] : &cmd_global_opts[gi];
                        if (o->arg) {
                                if (eq)
                                        val = eq + 1;
                                else if (i + 1 < argc)
                                        val = argv[++i];
                                else {
                                        cmd_usage(ctx, "option --%s needs an argument (%s)", o->name, o->arg);
                                        goto usage;
                                }
                        } else if (eq) {
                                cmd_usage(ctx, "option --%s takes no argument", o->name);
                                goto usage;
                        }
                        if (oi >= 0)
                                out->val[oi] = val ? val : "";
                        else if (global_opt(ctx, gi, val) < 0)
                                help = 1;
                        continue;
                }
                /* short options, possibly bundled: -qj, -oNAME, -o NAME */
                for (char *c = w + 1; *c; c++) {
                        int oi = find_short(e->opts, *c), gi = -1;
                        const struct cmd_opt *o;
                        const char *val = NULL;
                        if (oi < 0 && (gi = find_short(cmd_global_opts, *c)) < 0) {
                                cmd_usage(ctx, "unknown option: -%c", *c);
                                goto usage;
                        }
                        o = oi >= 0 ? &e->opts[oi] : &cmd_global_opts[gi];
                        if (o->arg) {
                                if (c[1])
                                        val = c + 1;
                                else if (i + 1 < argc)
                                        val = argv[++i];
                                else {
                                        cmd_usage(ctx, "option -%c needs an argument (%s)", *c, o->arg);
                                        goto usage;
                                }
                        }
                        if (oi >= 0)
                                out->val[oi] = val ? val : "";
                        else if (global_opt(ctx, gi, val) < 0)
                                help = 1;
                        if (val)
                                break;
                }
        }
        out->argc = npos;
        if (help)
                return -1;
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

int cmd_run(struct cmd_ctx *ctx, int argc, char **argv)
{
        char err[512];
        const struct cmd_entry *e;
        struct cmd_args a;
        int r;

        ctx->cmd = NULL;
        e = cmd_find(argv[0], err, sizeof(err));
        if (!e)
                return cmd_usage(ctx, "%s", err);
        ctx->cmd = e;
        if ((e->flags & CMD_SHELL_ONLY) && !ctx->shell)
                return cmd_usage(ctx, "only available in the shell (ashmemctl shell)");
        if ((e->flags & CMD_NO_SHELL) && ctx->shell)
                return cmd_usage(ctx, "not available in the shell");
        r = cmd_parse(ctx, e, argc, argv, &a);
        if (r < 0) {
                cmd_print_help(stdout, e);
                free(a.argv);
                return 0;
        }
        if (r)
                return r;
        r = e->exec(ctx, &a);
        free(a.argv);
        if (fflush(stdout) == EOF && r == 0)
                r = cmd_error(ctx, errno, "writing output");
        return r;
}
