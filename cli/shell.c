/* SPDX-License-Identifier: MIT */
/* `ashmemctl shell`: reading lines (readline at a terminal, else a
 * script) and running them (cli/shell.h says what it does; its history,
 * tab completion and own commands are in cli/shell-history.c,
 * shell-complete.c and shell-cmds.c). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "ashmem/ashmem.h"
#include "cmd.h"
#include "options.h"
#include "shell-int.h"
#include "shell-rl.h"
#include "shell-split.h"
#include "output.h"
#include "shell.h"

#define PROMPT          "ashmem> "
#define PROMPT_MORE     "> "

/* readline's callbacks take no argument: the shell running */
static struct shell *the_shell;

/* An error of the shell itself: "ashmemctl: shell: ...". */
static __attribute__((format(printf, 3, 4)))
int shell_error(struct shell *sh, int err, const char *fmt, ...)
{
        struct cmd_ctx c = sh->ctx;
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        c.cmd = &cmd_shell_entry;
        return cmd_error(&c, err, "%s", msg);
}

/* ---------------------------------------------------------------- running lines */

/* The session's connection is of no more use once the broker closed it
 * (stopped, restarted): drop it, and the next command connects again. */
void shell_check_broker(struct shell *sh, int quiet)
{
        struct pollfd p;
        int fd;

        if (!sh->ctx.broker)
                return;
        fd = ashmem_broker_fd(sh->ctx.broker);
        p = (struct pollfd){ .fd = fd, .events = POLLIN | POLLRDHUP };
        if (fd >= 0 && poll(&p, 1, 0) == 0)
                return;
        cmd_broker_close(&sh->ctx);
        if (!quiet && sh->interactive)
                fprintf(stderr, "ashmemctl: shell: the broker closed this shell's connection "
                        "(transient shares made through it are gone); connecting again\n");
}

static int run_command(struct shell *sh, int argc, char **argv)
{
        struct cmd_ctx c = sh->ctx;
        /* a command naming a socket of its own (--socket) gets a
         * connection of its own, not the session's */
        int own = opt_socket_of(argc, argv) != NULL, r;

        if (!own)
                shell_check_broker(sh, 0);
        c.broker = own ? NULL : sh->ctx.broker;
        r = cmd_run(&c, argc, argv);
        if (own)
                cmd_broker_close(&c);
        else
                sh->ctx.broker = c.broker;
        fflush(stdout);
        fflush(stderr);
        return r;
}

static const char *open_what(char open)
{
        return open == '\\' ? "a backslash at the end" : open == '"' ? "an unterminated \" quote" :
               "an unterminated ' quote";
}

/* pending + "\n" + line, or line (a new string). */
static char *join_pending(struct shell *sh, const char *line)
{
        char *t;

        if (!sh->pending)
                return strdup(line);
        if (asprintf(&t, "%s\n%s", sh->pending, line) < 0)
                return NULL;
        return t;
}

/* Take one line (without its newline): run its commands, or keep it when
 * it ends inside quotes. Returns 1 if more lines are needed, else 0. */
static int take_line(struct shell *sh, const char *line)
{
        struct shell_split s;
        char *text = join_pending(sh, line);
        int r;

        free(sh->pending);
        sh->pending = NULL;
        if (!text) {
                sh->status = shell_error(sh, ENOMEM, "reading a line");
                return 0;
        }
        r = shell_split(text, 0, &s);
        if (r == -EINVAL) {
                sh->pending = text;
                return 1;
        }
        if (sh->interactive)
                shell_history_add(sh, text);
        free(text);
        if (r < 0) {
                sh->status = shell_error(sh, -r, "splitting the line");
                return 0;
        }
        for (int i = 0; i < s.ncmds && !sh->stop && !cmd_interrupted; i++) {
                sh->status = run_command(sh, s.cmds[i].argc, s.cmds[i].argv);
                /* Ctrl-C: the command stopped, and the rest of the line
                 * does not run */
                if (cmd_interrupted)
                        sh->status = 128 + SIGINT;
                if (sh->status && sh->errexit)
                        sh->stop = 1;
        }
        shell_split_free(&s);
        return 0;
}

/* The input ended inside quotes: say so. */
static void unfinished(struct shell *sh, const char *what, long lineno)
{
        struct shell_split s;
        char where[64] = "", open;

        if (shell_split(sh->pending, 0, &s) == 0)
                shell_split_free(&s);
        open = s.open;
        if (lineno > 0)
                snprintf(where, sizeof(where), "line %ld: ", lineno);
        shell_error(sh, 0, "%s%s%s%s", what ? what : "", what ? ": " : "", where, open_what(open));
        sh->status = EXIT_USAGE;
        free(sh->pending);
        sh->pending = NULL;
}

/* A script: every line of f. */
static int run_script(struct shell *sh, FILE *f, const char *what)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = 0;
        long lineno = 0;

        while (!sh->stop && (errno = 0, n = getline(&line, &cap, f)) >= 0) {
                lineno++;
                if (n && line[n - 1] == '\n')
                        line[--n] = 0;
                take_line(sh, line);
        }
        if (n < 0 && errno && !sh->stop)
                sh->status = shell_error(sh, errno, "reading %s", what);
        free(line);
        if (sh->pending && !sh->stop)
                unfinished(sh, what, lineno);
        return sh->status;
}

/* ---------------------------------------------------------------- interactive */

static volatile sig_atomic_t got_int, got_winch, got_tstp, got_term;

static void on_signal(int sig)
{
        switch (sig) {
        case SIGINT:
                got_int = 1;
                break;
        case SIGWINCH:
                got_winch = 1;
                break;
        case SIGTSTP:
                got_tstp = 1;
                break;
        default:
                got_term = sig;
                break;
        }
}

static void set_handler(int sig, void (*fn)(int))
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = fn;
        sa.sa_flags = SA_RESTART;       /* commands' system calls go on */
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
}

/* Ctrl-C while a command runs: it interrupts the command (a blocking read
 * of the terminal returns EINTR, and cmd_interrupted tells the command to
 * stop; the terminal has dropped the line being typed). */
static void on_interrupt(int sig)
{
        (void)sig;
        got_int = 1;
        cmd_interrupted = 1;
}

static void set_interrupting(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_interrupt;   /* no SA_RESTART: system calls stop */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
}

static void on_line(char *line)
{
        struct shell *sh = the_shell;
        int more;

        if (!line) {
                /* Ctrl-D: leave, or give up the unfinished line */
                fputc('\n', rl_outstream);
                fflush(rl_outstream);
                if (sh->pending) {
                        unfinished(sh, NULL, 0);
                        rl_set_prompt(PROMPT);
                        return;
                }
                sh->eof = 1;
                rl_callback_handler_remove();
                return;
        }
        /* a command runs on the terminal as readline left it (normal mode):
         * Ctrl-Z stops the shell with it, Ctrl-C does not interrupt it */
        set_handler(SIGTSTP, SIG_DFL);
        cmd_interrupted = 0;
        set_interrupting();
        more = take_line(sh, line);
        free(line);
        set_handler(SIGINT, on_signal);
        cmd_interrupted = 0;
        set_handler(SIGTSTP, on_signal);
        if (got_int) {
                /* the terminal echoed ^C while the command ran: the
                 * prompt goes on a line of its own */
                fputc('\n', rl_outstream);
                got_int = 0;
        }
        if (sh->stop || got_term) {
                rl_callback_handler_remove();
                return;
        }
        rl_set_prompt(more ? PROMPT_MORE : PROMPT);
}

/* Ctrl-C at the prompt: forget the line (and an unfinished one). */
static void cancel_line(struct shell *sh)
{
        rl_free_line_state();
        rl_callback_sigcleanup();
        rl_replace_line("", 0);
        rl_point = rl_end = rl_mark = 0;
        free(sh->pending);
        sh->pending = NULL;
        fputs("^C\n", rl_outstream);
        fflush(rl_outstream);
        rl_set_prompt(PROMPT);
        rl_on_new_line();
        rl_redisplay();
}

/* Ctrl-Z at the prompt: give the terminal back in its normal mode, stop,
 * and take it again when continued. */
static void suspend(void)
{
        rl_cleanup_after_signal();
        set_handler(SIGTSTP, SIG_DFL);
        raise(SIGTSTP);
        set_handler(SIGTSTP, on_signal);
        rl_reset_after_signal();
        rl_clear_signals();     /* readline's handlers only inside readline */
        rl_forced_update_display();
}

static int interactive(struct shell *sh)
{
        static const int sigs[] = { SIGINT, SIGWINCH, SIGTSTP, SIGTERM, SIGHUP };
        struct sigaction old[sizeof(sigs) / sizeof(sigs[0])];
        sigset_t block, prev;

        {
                char err[256];
                if (shell_rl_load(err, sizeof(err)) < 0)
                        return shell_error(sh, ELIBACC, "the interactive shell needs GNU readline "
                                           "(" SHELL_RL_SONAME ", Debian package libreadline8): %s "
                                           "(scripts on standard input or -c run without it)", err);
        }
        sh->interactive = 1;
        shell_history_open(sh);
        rl_readline_name = "ashmemctl";
        shell_complete_setup(sh);
        rl_catch_sigwinch = 0;
        /* the prompt and echo go where a person looks */
        if (!isatty(STDOUT_FILENO) && isatty(STDERR_FILENO))
                rl_outstream = stderr;
        sigemptyset(&block);
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
                sigaction(sigs[i], NULL, &old[i]);
                set_handler(sigs[i], on_signal);
                sigaddset(&block, sigs[i]);
        }
        rl_callback_handler_install(PROMPT, on_line);
        while (!sh->eof && !sh->stop && !got_term) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                int r;

                /* look at the flags and wait with the signals blocked in
                 * between, so none is missed */
                sigprocmask(SIG_BLOCK, &block, &prev);
                if (got_int || got_winch || got_tstp || got_term) {
                        sigprocmask(SIG_SETMASK, &prev, NULL);
                        if (got_int) {
                                got_int = 0;
                                cancel_line(sh);
                        }
                        if (got_winch) {
                                got_winch = 0;
                                rl_resize_terminal();
                        }
                        if (got_tstp) {
                                got_tstp = 0;
                                suspend();
                        }
                        continue;
                }
                r = ppoll(&p, 1, NULL, &prev);
                sigprocmask(SIG_SETMASK, &prev, NULL);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        sh->status = shell_error(sh, errno, "waiting for input");
                        break;
                }
                if (p.revents & POLLNVAL)
                        break;
                rl_callback_read_char();
        }
        if (!sh->eof && !sh->stop)
                rl_callback_handler_remove();
        if (got_term) {
                fputc('\n', rl_outstream);
                sh->status = 128 + got_term;
        }
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                sigaction(sigs[i], &old[i], NULL);
        shell_complete_done();
        shell_history_close(sh);
        return sh->status;
}

/* ---------------------------------------------------------------- shell */

static const struct cmd_opt shell_opts[] = {
        { "errexit", 'e', NULL, NULL, "stop at the first command that fails, with its exit status" },
        { "command", 'c', "LINE", NULL, "run LINE (commands separated by ';') and leave" },
        { 0 }
};


static void shell_release(struct shell *sh)
{
        shell_drop_held(sh);
        free(sh->pending);
        sh->pending = NULL;
        /* transient shares made through the connection go with it */
        cmd_broker_close(&sh->ctx);
}

static int shell_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *line = cmd_opt(a, "command"), *file = a->argc ? a->argv[0] : NULL;
        struct shell sh;
        int r;

        if (line && file)
                return cmd_usage(ctx, "give -c LINE or FILE, not both");
        if (the_shell)
                return cmd_usage(ctx, "already in the shell");
        out_locale();   /* readline, and the width of completion lists */
        memset(&sh, 0, sizeof(sh));
        sh.ctx = *ctx;
        sh.ctx.cmd = NULL;
        sh.ctx.shell = &sh;
        ctx->broker = NULL;             /* the session's now */
        sh.errexit = cmd_flag(a, "errexit");
        the_shell = &sh;
        cmd_usage_prog = "";
        cli_local = &shell_local_ops;
        if (line) {
                if (take_line(&sh, line))
                        unfinished(&sh, "-c", 0);
                r = sh.status;
        } else if (file) {
                FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
                if (!f) {
                        r = cmd_error(ctx, errno, "%s", file);
                } else {
                        r = run_script(&sh, f, file);
                        if (f != stdin)
                                fclose(f);
                }
        } else if (isatty(STDIN_FILENO)) {
                r = interactive(&sh);
        } else {
                r = run_script(&sh, stdin, "standard input");
        }
        shell_release(&sh);
        cli_local = NULL;
        the_shell = NULL;
        cmd_usage_prog = "ashmemctl ";
        return r;
}

static const char *const shell_complete_args[] = { "file", NULL };

const struct cmd_entry cmd_shell_entry = {
        .name = "shell", .args_usage = "[FILE]", .flags = CMD_NO_SHELL, .exec = shell_exec,
        .summary = "commands at a prompt (or from a script), over one broker connection",
        .opts = shell_opts, .max_args = 1, .complete_args = shell_complete_args,
};
