/* SPDX-License-Identifier: MIT */
/*
 * Inside the shell: the session's state, shared by the line editor and
 * runner (cli/shell.c), its history (cli/shell-history.c), its tab
 * completion (cli/shell-complete.c) and the shell's own commands
 * (cli/shell-cmds.c: map, unmap, regions, exit, and the local regions of
 * create --local).
 */
#ifndef ASHMEMCTL_SHELL_INT_H
#define ASHMEMCTL_SHELL_INT_H

#include <stddef.h>

#include "cmd.h"
#include "complete.h"
#include "region.h"

/* A region made with create --local: it lives in this process. */
struct local {
        struct local *next;
        char *name;
        int fd;
};

/* A mapping kept with map. */
struct map {
        struct map *next;
        char *name;
        int fd;                 /* the region's (our own descriptor) */
        struct mapping m;
        size_t off, len;        /* the view mapped: bytes into the region */
        int prot;
};

struct shell {
        struct cmd_ctx ctx;     /* the session's options and broker connection */
        struct local *locals;
        struct map *maps;
        int interactive;
        int errexit;            /* -e */
        int status;             /* the last command's exit status */
        int stop;               /* leave: exit, -e, a signal */
        int eof;
        char *pending;          /* an incomplete line (open quote) so far */
        char *history;          /* the history file, or NULL */
        int history_failed;
};

/* The shell's local regions, for create --local and share (cli_local). */
extern const struct cli_local_ops shell_local_ops;

/* Completion of the names the shell holds (complete_names_fn): its local
 * regions for "region" and "local", its mappings for "mapping". */
void shell_names(struct complete *c, const char *kind, void *arg);

/* Drop every mapping and local region the shell holds. */
void shell_drop_held(struct shell *sh);

/* The session's broker connection is of no more use once the broker
 * closed it: drop it (saying so unless quiet), the next command connects
 * again. */
void shell_check_broker(struct shell *sh, int quiet);

/* History (cli/shell-history.c): read at the start of an interactive
 * session, each line added as it is taken, trimmed at the end. A file
 * that cannot be used is said once, and the shell goes on without. */
void shell_history_open(struct shell *sh);
void shell_history_add(struct shell *sh, const char *text);
void shell_history_close(struct shell *sh);

/* Tab completion at the prompt (cli/shell-complete.c): readline's hooks
 * for the session sh, and their state freed. */
void shell_complete_setup(struct shell *sh);
void shell_complete_done(void);

#endif
