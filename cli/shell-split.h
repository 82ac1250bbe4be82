/* SPDX-License-Identifier: MIT */
/*
 * The shell's tokenizer: a line into commands of words, the way sh splits
 * them, without any expansion:
 *
 *   - blanks (space, tab, newline, carriage return) separate words;
 *   - ';' ends a command (empty commands are dropped);
 *   - '#' at the start of a word starts a comment, to the end of the line;
 *   - 'single quotes' keep every character as it is;
 *   - "double quotes" keep every character except \" \\ \$ \` (the
 *     character after the backslash) and backslash-newline (removed);
 *   - outside quotes a backslash keeps the next character as it is, and
 *     backslash-newline is removed (the line goes on);
 *   - '' and "" make an empty word.
 *
 * A pure function of its input (no globals, no I/O, only malloc): the
 * shell runs it on every line and the completion on the line so far, and
 * a fuzzer may target it on its own. cli/shell-split.c has no other
 * dependency, so tests include it directly.
 */
#ifndef ASHMEMCTL_SHELL_SPLIT_H
#define ASHMEMCTL_SHELL_SPLIT_H

struct shell_words {
        int argc;
        char **argv;            /* argv[argc] is NULL */
};

struct shell_split {
        int ncmds;
        struct shell_words *cmds;
        /* How the input ended (set on success and on -EINVAL):
         * the quote still open ('\'' or '"'), '\\' for a trailing
         * backslash, or 0. */
        char open;
        /* SHELL_SPLIT_PARTIAL only: the input ends inside a word (the last
         * word of the last command is still being typed), or inside a
         * comment. */
        int in_word;
        int in_comment;
        /* storage (the words, the argv arrays) */
        char *buf;
        char **ptrs;
};

/*
 * For completion: an unterminated quote or trailing backslash is no error
 * (the word is cut where the input ends, open tells which quote is open),
 * and the last command is kept even when it has no word yet (the line ends
 * with ';' or blanks after one): ncmds is then at least 1.
 */
#define SHELL_SPLIT_PARTIAL 0x1u

/*
 * Split line. Returns 0 with out filled (free it with shell_split_free),
 * -EINVAL if the line ends inside quotes or after a backslash (out->open
 * says which; the caller may read another line, join them with "\n" and
 * split again), -ENOMEM. On failure out holds nothing to free.
 */
int shell_split(const char *line, unsigned flags, struct shell_split *out);
void shell_split_free(struct shell_split *s);

/*
 * A word quoted so that shell_split() gives it back unchanged: as it is
 * when it has no special character, else with backslashes before each
 * special one (quote 0), or for inside an open quote (quote '\'' or '"';
 * the closing quote is not added). A new string, or NULL (out of memory).
 */
char *shell_quote(const char *word, char quote);

#endif
