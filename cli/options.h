/* SPDX-License-Identifier: MIT */
/*
 * ashmemctl's one option parser. The top level (options before the
 * command), every command's words (cmd_parse), the shell's lines and
 * completion all read options through opt_next(), so they cannot disagree.
 *
 * The grammar:
 *   -q -j, or bundled: -qj        short options, any number in one word;
 *   -o NAME, or attached: -oNAME  a short option's argument (the rest of
 *                                 the word, else the next word);
 *   --output NAME, --output=NAME  a long option's argument;
 *   --                            ends the options: every later word is a
 *                                 positional (for CMD_PASSTHROUGH commands,
 *                                 the words are kept as they are);
 *   -  and  -5                    positionals (standard input; a number).
 * Options and positionals may come in any order. A long option is spelt
 * in full: prefixes are not accepted, so that an option added later never
 * changes what an existing command line means (command names do take
 * prefixes; completion offers the full option names).
 *
 * An option is looked up in the command's table first, then in the global
 * one (cmd_global_opts[]).
 */
#ifndef ASHMEMCTL_OPTIONS_H
#define ASHMEMCTL_OPTIONS_H

#include <stddef.h>

#include "cmd.h"

enum opt_kind {
        OPT_END,        /* no more words */
        OPT_OPTION,     /* an option: opt, global, val (NULL for a flag) */
        OPT_POSITIONAL, /* a positional: word */
        OPT_DASHDASH,   /* "--": every later word is a positional */
        OPT_UNKNOWN,    /* no such option: name, namelen, is_long */
        OPT_NEEDS_ARG,  /* opt takes an argument and the words ended */
        OPT_NO_ARG,     /* a flag given a value: --opt=value */
};

struct opt_scan {
        const struct cmd_opt *opts;     /* the command's (may be NULL) */
        int argc;
        char **argv;
        int ind;                        /* the next word */
        const char *group;              /* the rest of a short-option group */
        int positional_only;            /* after "--" */
};

struct opt_item {
        enum opt_kind kind;
        const struct cmd_opt *opt;      /* OPT_OPTION, OPT_NEEDS_ARG, OPT_NO_ARG */
        int global;                     /* opt is one of cmd_global_opts[] */
        const char *val;                /* its argument, or NULL */
        const char *word;               /* the word it came from */
        int index;                      /* that word's index in argv */
        const char *name;               /* the option as written, without
                                           its dashes (namelen bytes) */
        size_t namelen;
        int is_long;
};

/* Does word w start an option: "-", "--", "-q", "--json", but not the
 * number "-5"? (Alone, "-" and "--" are not options, but a word being
 * typed that far is starting one.) */
int opt_starts_option(const char *w);

/* Read argv[first..argc) with the options opts and the global ones. */
void opt_scan_init(struct opt_scan *s, const struct cmd_opt *opts, int argc,
                   char **argv, int first);

/* The next option or positional; returns it->kind. After an error kind the
 * scan may go on (completion does): the rest of a short group is skipped. */
enum opt_kind opt_next(struct opt_scan *s, struct opt_item *it);

/* An option of opts, or else a global one, by long name (len bytes) or
 * short name; NULL if none. *global tells which table (may be NULL). */
const struct cmd_opt *opt_find_long(const struct cmd_opt *opts, const char *name,
                                    size_t len, int *global);
const struct cmd_opt *opt_find_short(const struct cmd_opt *opts, char c, int *global);

/* Report an error item as a usage error (cmd_usage). Returns EXIT_USAGE. */
int opt_error(struct cmd_ctx *ctx, const struct opt_item *it);

/* The --socket a command's words give (the system socket for --system), as
 * cmd_parse reads them, or NULL (also when the words do not parse). */
const char *opt_socket_of(int argc, char **argv);

#endif
