/* SPDX-License-Identifier: MIT */
/* The command table, lookup, help and error reporting; running a command.
 * (Its words are parsed by cli/options.c.) */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "output.h"
#include "region.h"

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
/* the shell (cli/shell.c) and its own commands (cli/shell-cmds.c), the
 * completion helper (cli/complete.c) */
extern const struct cmd_entry cmd_shell_entry, cmd_map_entry, cmd_unmap_entry,
        cmd_regions_entry, cmd_exit_entry, cmd_complete_entry;
extern const struct cmd_entry cmd_run_entry;   /* cli/cmd-run.c */
/* the live view (cli/cmd-top.c) */
extern const struct cmd_entry cmd_top_entry;

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
        &cmd_run_entry,
        &cmd_top_entry,
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

volatile sig_atomic_t cmd_interrupted;
const char *cmd_usage_prog = "ashmemctl ";

const char *const cmd_complete_regions[] = { "region", NULL };
const char *const cmd_complete_region[] = { "region", "none", NULL };

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

/* The message, with strerror(err) after it when spell_out, to out_error(). */
static void report(struct cmd_ctx *ctx, int err, int spell_out, int usage, const char *fmt,
                   va_list ap) __attribute__((format(printf, 5, 0)));
static void report(struct cmd_ctx *ctx, int err, int spell_out, int usage, const char *fmt,
                   va_list ap)
{
        char msg[1024];
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);

        if (spell_out && err > 0 && n >= 0 && (size_t)n < sizeof(msg))
                snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
        out_error(ctx, err, msg, usage);
}

void cmd_verror(struct cmd_ctx *ctx, int err, int spell_out, const char *fmt, va_list ap)
{
        report(ctx, err, spell_out, 0, fmt, ap);
}

int cmd_error(struct cmd_ctx *ctx, int err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        report(ctx, err, 1, 0, fmt, ap);
        va_end(ap);
        return 1;
}

int cmd_usage(struct cmd_ctx *ctx, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        report(ctx, 0, 0, 1, fmt, ap);
        va_end(ap);
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
        fprintf(f, "usage: %s%s", cmd_usage_prog, e->name);
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
        if (in_shell)
                fprintf(f, "Commands (help COMMAND, or COMMAND --help, for one):\n");
        else
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
        if (in_shell) {
                fprintf(f, "\nCommand names may be abbreviated to a unique prefix. Ctrl-C interrupts\n"
                           "a command, Ctrl-D, exit or quit leaves; ashmemctl(1) has the rest.\n");
                return;
        }
        fprintf(f, "\nCommand names may be abbreviated to a unique prefix; options may not.\n"
                   "Options, global ones too, may follow the command name; short ones bundle\n"
                   "(-qj, -oNAME,SIZE), long ones take --opt=VALUE or --opt VALUE; -- ends them.\n"
                   "'ashmemctl COMMAND --help' shows a command's options; ashmemctl(1) has the rest.\n");
}

int cmd_run_version(struct cmd_ctx *ctx)
{
        char *v[] = { (char *)"version", NULL };

        return cmd_run(ctx, 1, v);
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
        if (r == CMD_PARSE_HELP || r == CMD_PARSE_VERSION) {
                free(a.argv);
                if (r == CMD_PARSE_HELP) {
                        cmd_print_help(stdout, e);
                        return 0;
                }
                return cmd_run_version(ctx);
        }
        if (r)
                return r;
        r = e->exec(ctx, &a);
        free(a.argv);
        if (fflush(stdout) == EOF && r == 0)
                r = cmd_error(ctx, errno, "writing output");
        return r;
}

int cmd_wait_child(struct cmd_ctx *ctx, pid_t pid, const char *cmd)
{
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return cmd_error(ctx, errno, "waiting for %s", cmd);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WEXITSTATUS(status);
}

int cmd_exec_argv(struct cmd_ctx *ctx, char **argv)
{
        int e;

        fflush(stdout);
        fflush(stderr);
        execvp(argv[0], argv);
        e = errno;
        cli_error(ctx, e, "cannot run %s: %s", argv[0], strerror(e));
        return e == ENOENT ? 127 : 126;
}
