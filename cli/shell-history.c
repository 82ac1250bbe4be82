/* SPDX-License-Identifier: MIT */
/* The interactive shell's history: $XDG_STATE_HOME/ashmemctl/history
 * (default ~/.local/state/ashmemctl/history), through readline's. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "shell-int.h"
#include "shell-rl.h"

#define HISTORY_MAX     1000

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

void shell_history_open(struct shell *sh)
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

void shell_history_add(struct shell *sh, const char *text)
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

void shell_history_close(struct shell *sh)
{
        if (sh->history && !sh->history_failed)
                (void)history_truncate_file(sh->history, HISTORY_MAX);
        free(sh->history);
        sh->history = NULL;
        clear_history();
}
