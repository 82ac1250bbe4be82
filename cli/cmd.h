/* SPDX-License-Identifier: MIT */
/*
 * ashmemctl's command table. Every command is one `const struct cmd_entry`
 * (in a cmd-*.c file) listed in cmd_table[] (cli/cmd.c). The one entry feeds
 * dispatch, the usage line, --help, the shell and completion, so none of
 * them can drift from the others. An entry is written in three lines:
 * name (alias, usage), flags and exec; summary; options and positionals.
 *
 * A command's exec() returns the exit status: 0 success, 1 failure, 2 usage
 * error; it reports errors through cmd_error()/cmd_usage(), which print
 * "ashmemctl: COMMAND: message" (or a JSON error object with --json).
 */
#ifndef ASHMEMCTL_CMD_H
#define ASHMEMCTL_CMD_H

#include <signal.h>
#include <sys/types.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

#define EXIT_USAGE 2

enum {
        CMD_BROKER      = 1 << 0, /* talks to the broker (auto-starts it) */
        CMD_SHELL_ONLY  = 1 << 1, /* only inside `ashmemctl shell` */
        CMD_NO_SHELL    = 1 << 2, /* not inside the shell */
        CMD_HIDDEN      = 1 << 3, /* not listed in help (internal helpers) */
        CMD_PASSTHROUGH = 1 << 4, /* words after "--" are kept as they are */
        CMD_AUTOSTART   = 1 << 5, /* needs the broker to hold something:
                                     starts it when none runs (with
                                     CMD_BROKER) */
};

struct cmd_opt {
        const char *name;       /* long name, without the dashes */
        char short_name;        /* 0 if none */
        const char *arg;        /* NULL for a flag, else the argument's name */
        const char *complete;   /* what completes the argument: "region",
                                   "type", "prot", "column", "file", NULL */
        const char *help;
};

#define CMD_MAX_OPTS 24

struct cmd_ctx;
struct cmd_args;

struct cmd_entry {
        const char *name;
        const char *alias;              /* NULL if none */
        const char *args_usage;         /* positionals, e.g. "NAME SIZE" */
        const char *summary;            /* one line, for the command list */
        const struct cmd_opt *opts;     /* ends with { 0 }; may be NULL */
        int min_args, max_args;         /* positionals; max -1 = no limit */
        /* what completes positional i (the last one repeats); NULL-ended */
        const char *const *complete_args;
        unsigned flags;
        int (*exec)(struct cmd_ctx *ctx, struct cmd_args *args);
        int op;                         /* which of the commands an exec
                                           shared by several runs
                                           (args->entry->op) */
};

struct cmd_args {
        const struct cmd_entry *entry;
        int argc;                       /* positionals */
        char **argv;
        int nrest;                      /* words after "--" (CMD_PASSTHROUGH) */
        char **rest;
        const char *val[CMD_MAX_OPTS];  /* by index in entry->opts: the value,
                                           "" for a flag given, NULL if not */
};

struct ashmem_broker;
struct shell;

/* What ctx->no_autostart says, for the message that names it. */
#define NOAUTO_OPTION   1
#define NOAUTO_ENV      2

struct cmd_ctx {
        int json;                       /* --json */
        int quiet;                      /* --quiet */
        int no_autostart;               /* NOAUTO_OPTION (--no-autostart) or
                                           NOAUTO_ENV (ASHMEM_NO_AUTOSTART=1) */
        const char *socket;             /* --socket, or NULL for the default */
        int system;                     /* --system: the system broker */
        const struct cmd_entry *cmd;    /* the command running */
        struct ashmem_broker *broker;   /* connected on first use */
        struct shell *shell;            /* non-NULL inside the shell */
        unsigned out_flags;             /* --raw, --export, --shell,
                                           --notruncate, --time-format:
                                           OUT_* of cli/output.h */
};

/* Set by the shell's SIGINT handler while a command runs (Ctrl-C), which
 * then interrupts system calls (EINTR): a loop that retries on EINTR stops
 * when it is set. Always 0 outside the shell. */
extern volatile sig_atomic_t cmd_interrupted;

/* What usage lines start with after "usage: ": "ashmemctl " on the command
 * line, "" inside the shell. */
extern const char *cmd_usage_prog;

/* The table: every command, in the order help lists them. */
extern const struct cmd_entry *const cmd_table[];

/* Find a command by exact name, alias or unique prefix. On failure returns
 * NULL and writes why ("unknown command: x" or "ambiguous command: x, could
 * be: a, b") into err. */
const struct cmd_entry *cmd_find(const char *name, char *err, size_t errlen);

/* Run argv[0] with its arguments (global options are accepted among them).
 * The shared entry point of the command line and the shell. */
int cmd_run(struct cmd_ctx *ctx, int argc, char **argv);

/* cmd_run() for the version command: what -V/--version does. */
int cmd_run_version(struct cmd_ctx *ctx);

/* What cmd_parse() and cmd_parse_globals() return when -h/--help or
 * -V/--version was among the options (help wins over version). */
#define CMD_PARSE_HELP          (-1)
#define CMD_PARSE_VERSION       (-2)

/* Parse a command's words (argv[0] is its name) with the parser of
 * cli/options.h: the command's options go to out, the global ones to ctx.
 * Returns 0, EXIT_USAGE (reported through cmd_usage(); out->argv is then
 * freed and NULL), CMD_PARSE_HELP or CMD_PARSE_VERSION. */
int cmd_parse(struct cmd_ctx *ctx, const struct cmd_entry *e, int argc,
              char **argv, struct cmd_args *out);

/* The global options before the command: argv[1..] up to the first
 * positional (or after "--"), whose index goes to *ind (argc if none).
 * Returns like cmd_parse(). */
int cmd_parse_globals(struct cmd_ctx *ctx, int argc, char **argv, int *ind);

/* The value of option `name` ("" for a flag), or NULL if not given. */
const char *cmd_opt(const struct cmd_args *a, const char *name);
int cmd_flag(const struct cmd_args *a, const char *name);

/* Report a failure: "ashmemctl: CMD: message[: strerror(err)]" on stderr,
 * or {"error":{"errno":"E...","message":"..."}} with --json. err is a
 * positive errno value (0: none known, reported as EINVAL in JSON).
 * Returns 1, the failure exit status. */
int cmd_error(struct cmd_ctx *ctx, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Wait for the child pid that runs the command cmd (for the message) and
 * return its exit status as a shell does: its code, or 128 + the signal. */
int cmd_wait_child(struct cmd_ctx *ctx, pid_t pid, const char *cmd);

/* Run argv in place of this process (output flushed first). Returns only
 * if it cannot, with the message printed and the shell's status for it:
 * 127 (not found) or 126. */
int cmd_exec_argv(struct cmd_ctx *ctx, char **argv);

/* The message behind cmd_error and cli_error, printed by out_error()
 * (cli/output.h): spell_out 0 leaves the message as it is (err only named
 * in JSON). */
void cmd_verror(struct cmd_ctx *ctx, int err, int spell_out, const char *fmt,
                va_list ap) __attribute__((format(printf, 4, 0)));

/* Report a usage error (message, then the command's usage line). Returns
 * EXIT_USAGE. */
int cmd_usage(struct cmd_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

void cmd_print_usage(FILE *f, const struct cmd_entry *e);
void cmd_print_help(FILE *f, const struct cmd_entry *e);
/* The command list; in_shell leaves out what the shell refuses to run. */
void cmd_print_overview(FILE *f, int in_shell);

/* The broker connection of this invocation: connects on first use, starting
 * the broker when the command has CMD_AUTOSTART, unless ctx->no_autostart
 * (cli/autostart.c). 0 or -errno (-ENOENT or -ECONNREFUSED: none runs). */
int cmd_broker(struct cmd_ctx *ctx, struct ashmem_broker **ret);
/* The socket the command talks to (--socket, --system, $ASHMEM_SOCKET or
 * the default) into buf; "" if it cannot be worked out. */
void cmd_socket_path(const struct cmd_ctx *ctx, char *buf, size_t len);
/* How long an auto-started broker waits with nothing held and nobody
 * connected before it exits, in seconds (300; $ASHMEM_IDLE_EXIT). */
#define CMD_IDLE_EXIT_DEFAULT 300
/* Close it (at exit, or when the shell is done with a command). */
void cmd_broker_close(struct cmd_ctx *ctx);

/* complete_args of the commonest kinds: every positional a region name;
 * the first a region name, the others nothing to complete. */
extern const char *const cmd_complete_regions[];
extern const char *const cmd_complete_region[];

/* The global options, shared by the top level and every command
 * (cli/options.c). */
extern const struct cmd_opt cmd_global_opts[];

#endif
