/* SPDX-License-Identifier: MIT */
/* `ashmemctl shell`: the line editor, history, completion and the running
 * of lines (cli/shell.h says what it does; its own commands are in
 * cli/shell-cmds.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "complete.h"
#include "options.h"
#include "shell-int.h"
#include "shell-split.h"
#include "shell.h"

#define PROMPT          "ashmem> "
#define PROMPT_MORE     "> "
#define HISTORY_MAX     1000

/* readline's callbacks take no argument: the shell running */
static struct shell *the_shell;

static void history_add(struct shell *sh, const char *text);

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
static void check_broker(struct shell *sh, int quiet)
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
                check_broker(sh, 0);
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
                history_add(sh, text);
        free(text);
        if (r < 0) {
                sh->status = shell_error(sh, -r, "splitting the line");
                return 0;
        }
        for (int i = 0; i < s.ncmds && !sh->stop; i++) {
                sh->status = run_command(sh, s.cmds[i].argc, s.cmds[i].argv);
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

/* ---------------------------------------------------------------- history */

/* mkdir -p path, new directories 0700. */
static int make_dirs(char *path)
{
        for (char *p = path + 1; ; p++) {
                if (*p != '/' && *p)
                        continue;
                char c = *p;
                *p = 0;
                if (mkdir(path, 0700) < 0 && errno != EEXIST) {
                        int e = errno;
                        *p = c;
                        return -e;
                }
                *p = c;
                if (!c)
                        return 0;
        }
}

/* The history file's directory (made if missing, 0700), or NULL when
 * there is no home to put it in. *err: 0, or why it could not be made. */
static char *history_dir(int *err)
{
        const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        char *dir = NULL;
        int n = -1;

        *err = 0;
        if (!home || !*home) {
                struct passwd *pw = getpwuid(getuid());
                home = pw ? pw->pw_dir : NULL;
        }
        /* the base directory spec: a relative path is to be ignored */
        if (state && state[0] == '/')
                n = asprintf(&dir, "%s/ashmemctl", state);
        else if (home && home[0] == '/')
                n = asprintf(&dir, "%s/.local/state/ashmemctl", home);
        if (n < 0)
                return NULL;
        *err = -make_dirs(dir);
        return dir;
}

/* History is a convenience: a file that cannot be read or written is said
 * once, and the shell goes on without. */
static void history_warn(struct shell *sh, const char *path, int err)
{
        if (!sh->history_failed)
                fprintf(stderr, "ashmemctl: shell: history %s: %s (going on without)\n",
                        path, strerror(err));
        sh->history_failed = 1;
}

static void history_open(struct shell *sh)
{
        char *dir;
        int err;

        using_history();
        stifle_history(HISTORY_MAX);
        dir = history_dir(&err);
        if (!dir || err) {
                if (dir)
                        history_warn(sh, dir, err);
                sh->history_failed = 1;
                free(dir);
                return;
        }
        if (asprintf(&sh->history, "%s/history", dir) < 0) {
                sh->history = NULL;
                sh->history_failed = 1;
        }
        free(dir);
        if (sh->history && (err = read_history(sh->history)) && err != ENOENT)
                history_warn(sh, sh->history, err);
}

static void history_add(struct shell *sh, const char *text)
{
        HIST_ENTRY *last;
        int fd, r;

        if (!text[strspn(text, " \t\n")])
                return;
        last = history_get(history_base + history_length - 1);
        if (last && strcmp(last->line, text) == 0)
                return;
        add_history(text);
        if (sh->history_failed)
                return;
        /* append_history() wants the file to exist */
        fd = open(sh->history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
                history_warn(sh, sh->history, errno);
                return;
        }
        close(fd);
        r = append_history(1, sh->history);
        if (r)
                history_warn(sh, sh->history, r);
}

static void history_close(struct shell *sh)
{
        if (sh->history && !sh->history_failed)
                (void)history_truncate_file(sh->history, HISTORY_MAX);
        free(sh->history);
        sh->history = NULL;
        clear_history();
}

/* ---------------------------------------------------------------- completion */

/* The last completion: what readline shows on a second Tab. */
static struct complete last_c;
static char **last_matches;
static size_t last_nmatches;

static char *next_match(const char *text, int state)
{
        static size_t i;

        (void)text;
        if (!state)
                i = 0;
        return i < last_nmatches ? strdup(last_matches[i++]) : NULL;
}

/* File names starting with cur (directories with a '/'), as candidates. */
static void add_files(struct complete *c, const char *cur)
{
        char *f;

        for (int state = 0; (f = rl_filename_completion_function(cur, state)); state++) {
                char *path = tilde_expand(f);
                struct stat st;
                if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                        size_t n = strlen(f);
                        char *d = malloc(n + 2);
                        if (d) {
                                memcpy(d, f, n);
                                memcpy(d + n, "/", 2);
                                complete_add(c, d, NULL);
                        }
                        free(d);
                } else {
                        complete_add(c, f, NULL);
                }
                free(path);
                free(f);
        }
}

/* Is the character at index quoted (escaped by a backslash, or inside
 * quotes)? readline asks about word-break characters. */
static int char_is_quoted(char *line, int index)
{
        char q = 0;

        for (int i = 0; i < index; i++) {
                if (q == '\'') {
                        if (line[i] == '\'')
                                q = 0;
                } else if (line[i] == '\\') {
                        if (++i == index)
                                return 1;
                } else if (q == '"') {
                        if (line[i] == '"')
                                q = 0;
                } else if (line[i] == '\'' || line[i] == '"') {
                        q = line[i];
                }
        }
        return q != 0;
}

static void free_last(void)
{
        for (size_t i = 0; i < last_nmatches; i++)
                free(last_matches[i]);
        free(last_matches);
        last_matches = NULL;
        last_nmatches = 0;
        complete_free(&last_c);
}

/*
 * readline asks for the matches of text = line[start, end). The words
 * come from the tokenizer on the line up to the cursor (so quotes and
 * backslashes count as the shell will count them); what readline replaces
 * starts at start, so each candidate loses the part of the word before
 * start and is quoted for where it goes.
 */
static char **shell_complete(const char *text, int start, int end)
{
        struct shell *sh = the_shell;
        struct shell_split upto = { 0 }, before = { 0 };
        const char *prefix = "", *cur;
        char **words = NULL, *s1 = NULL, *s2 = NULL, quote = 0;
        char **matches = NULL;
        struct shell_words *w;
        size_t plen;
        int n;

        rl_attempted_completion_over = 1;
        free_last();
        if (!sh || !(s1 = strndup(rl_line_buffer, (size_t)end)) ||
            !(s2 = strndup(rl_line_buffer, (size_t)start)))
                goto out;
        if (shell_split(s1, SHELL_SPLIT_PARTIAL, &upto) < 0 || upto.in_comment)
                goto out;
        if (shell_split(s2, SHELL_SPLIT_PARTIAL, &before) < 0)
                goto out;
        if (before.in_word) {
                struct shell_words *b = &before.cmds[before.ncmds - 1];
                prefix = b->argv[b->argc - 1];
        }
        if (before.open == '\'' || before.open == '"')
                quote = before.open;
        plen = strlen(prefix);
        w = &upto.cmds[upto.ncmds - 1];
        n = w->argc + !upto.in_word;
        words = calloc((size_t)n + 1, sizeof(*words));
        if (!words)
                goto out;
        memcpy(words, w->argv, (size_t)w->argc * sizeof(*words));
        if (!upto.in_word)
                words[n - 1] = (char *)"";
        cur = words[n - 1];
        check_broker(sh, 1);
        last_c.shell = 1;
        last_c.names = shell_names;
        last_c.names_arg = sh;
        if (complete_words(&sh->ctx, n, words, &last_c) < 0)
                goto out;
        if (last_c.directive == COMPLETE_FILES || last_c.directive == COMPLETE_COMMANDS) {
                /* file names after what goes before them ("--socket=") */
                char *lead = strndup(cur, last_c.lead_len);
                if (!lead)
                        goto out;
                last_c.lead = lead;
                last_c.cur = cur + last_c.lead_len;
                add_files(&last_c, last_c.cur);
                last_c.lead = "";
                free(lead);
        }
        last_matches = calloc(last_c.n + 1, sizeof(*last_matches));
        if (!last_matches)
                goto out;
        for (size_t i = 0; i < last_c.n; i++) {
                const char *cand = last_c.cand[i];
                char *q;
                if (strncmp(cand, prefix, plen) != 0)
                        continue;
                q = cand[plen] ? shell_quote(cand + plen, quote) : strdup("");
                if (q)
                        last_matches[last_nmatches++] = q;
        }
        if (last_c.directive == COMPLETE_NOSPACE)
                rl_completion_suppress_append = 1;
        if (last_nmatches == 1 && last_c.n == 1) {
                size_t l = strlen(last_c.cand[0]);
                if (l && last_c.cand[0][l - 1] == '/' && last_c.directive != COMPLETE_WORDS)
                        rl_completion_suppress_append = 1;
        }
        if (last_nmatches)
                matches = rl_completion_matches(text, next_match);
out:
        free(words);
        free(s1);
        free(s2);
        shell_split_free(&upto);
        shell_split_free(&before);
        return matches;
}

/* A second Tab: the candidates, with what they are when that is known. */
static void show_matches(char **matches, int len, int max)
{
        int width = 0, any = 0;

        for (size_t i = 0; i < last_c.n; i++) {
                int l = (int)strlen(last_c.cand[i]);
                width = l > width ? l : width;
                any |= last_c.desc[i] != NULL;
        }
        if (!any || (size_t)len != last_c.n || len > 200) {
                rl_display_match_list(matches, len, max);
                rl_forced_update_display();
                return;
        }
        width = width > 32 ? 32 : width;
        fputc('\n', rl_outstream);
        for (size_t i = 0; i < last_c.n; i++)
                fprintf(rl_outstream, "  %-*s  %s\n", width, last_c.cand[i],
                        last_c.desc[i] ? last_c.desc[i] : "");
        rl_forced_update_display();
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
        more = take_line(sh, line);
        free(line);
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

        sh->interactive = 1;
        history_open(sh);
        rl_readline_name = "ashmemctl";
        rl_attempted_completion_function = shell_complete;
        rl_completion_display_matches_hook = show_matches;
        rl_completer_word_break_characters = " \t\n;=";
        rl_completer_quote_characters = "'\"";
        rl_char_is_quoted_p = char_is_quoted;
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
        free_last();
        history_close(sh);
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
        memset(&sh, 0, sizeof(sh));
        sh.ctx = *ctx;
        sh.ctx.cmd = NULL;
        sh.ctx.shell = &sh;
        ctx->broker = NULL;             /* the session's now */
        sh.errexit = cmd_flag(a, "errexit");
        the_shell = &sh;
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
        return r;
}

static const char *const shell_complete_args[] = { "file", NULL };

const struct cmd_entry cmd_shell_entry = {
        .name = "shell",
        .args_usage = "[FILE]",
        .summary = "commands at a prompt (or from a script), over one broker connection",
        .opts = shell_opts,
        .max_args = 1,
        .complete_args = shell_complete_args,
        .flags = CMD_NO_SHELL,
        .exec = shell_exec,
};
