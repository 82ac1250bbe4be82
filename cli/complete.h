/* SPDX-License-Identifier: MIT */
/*
 * Completion, from the command table: given the words of a command line
 * (the last one being typed, maybe empty), what can the last word be?
 * Command names, a command's options, and the kind of value an option or
 * positional takes (cmd_opt.complete, cmd_entry.complete_args): region
 * names from the broker (never starting one), value types, protections,
 * list columns, the alternatives of a usage word ("run|start|stop"), or
 * "file names" / "command names" left to the shell.
 *
 * The shell's readline completion and the hidden `ashmemctl __complete`
 * helper (what the bash, zsh and fish scripts call) both use it, so every
 * completion follows the one table.
 */
#ifndef ASHMEMCTL_COMPLETE_H
#define ASHMEMCTL_COMPLETE_H

#include <stddef.h>

struct cmd_ctx;

enum complete_directive {
        COMPLETE_WORDS,         /* the candidates */
        COMPLETE_NOSPACE,       /* the candidates; a sole one is not finished
                                   (a column list goes on after a comma) */
        COMPLETE_FILES,         /* file names (the caller completes them) */
        COMPLETE_COMMANDS,      /* programs on PATH (attach NAME -- CMD) */
};

struct complete;

/*
 * Names the caller holds itself (the shell's local regions and mappings)
 * for kind "region", "local" or "mapping": call complete_add() for each.
 */
typedef void complete_names_fn(struct complete *c, const char *kind, void *arg);

struct complete {
        /* in */
        int shell;                      /* words of a shell line: no global
                                           options before the command; the
                                           shell's own commands */
        complete_names_fn *names;       /* or NULL */
        void *names_arg;
        /* out */
        char **cand;                    /* candidates, in order, no duplicates */
        char **desc;                    /* a description each (or NULL) */
        size_t n, cap;
        enum complete_directive directive;
        size_t lead_len;                /* COMPLETE_FILES: the word's first
                                           lead_len bytes ("--socket=") are
                                           not part of the file name */
        int oom;                        /* some candidate was lost */
        /* while completing: the value typed so far and what goes before
         * each candidate ("--output=") */
        const char *cur;
        const char *lead;
};

/*
 * Complete argv[argc - 1] (argc >= 1) given the words before it. Regions
 * come from ctx's broker connection if it has one (the shell's), else from
 * a short-lived connection to ctx->socket (or a --socket among the words),
 * never auto-starting a broker. Returns 0 or -ENOMEM; free c with
 * complete_free().
 */
int complete_words(struct cmd_ctx *ctx, int argc, char **argv, struct complete *c);

/* Offer cand (with desc, may be NULL) if it starts with the word typed. */
void complete_add(struct complete *c, const char *cand, const char *desc);

void complete_free(struct complete *c);

#endif
