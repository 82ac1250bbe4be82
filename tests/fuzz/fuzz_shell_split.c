/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the shell's tokenizer (cli/shell-split.c): shell_split() on any
 * line, full and partial, and shell_quote() on every word it gives.
 *
 * Checked:
 *   - a full split succeeds or fails with -EINVAL exactly when the line
 *     ends inside a quote or after a backslash (out->open says which, and
 *     nothing is left to free); a partial split never fails;
 *   - every command has a word (a partial split may end with an empty
 *     one), each argv ends with NULL;
 *   - a partial split of a line that splits gives the same commands;
 *   - every word quoted with shell_quote(w, 0), the words joined with
 *     blanks and the commands with ';', splits back to the same commands;
 *     a word quoted for an open ' or " quote and put inside that quote
 *     splits back to itself, and as the unfinished end of a line (the
 *     completion's case) too;
 *   - libFuzzer's leak check: everything is freed.
 *
 * Input: the line (up to its first NUL byte).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/shell-split.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_shape(const struct shell_split *s, unsigned flags)
{
        assert(s->ncmds >= 0);
        if (flags & SHELL_SPLIT_PARTIAL)
                assert(s->ncmds >= 1);
        for (int i = 0; i < s->ncmds; i++) {
                const struct shell_words *c = &s->cmds[i];
                /* only a partial split's last command may be empty */
                assert(c->argc >= 1 || ((flags & SHELL_SPLIT_PARTIAL) && i == s->ncmds - 1));
                assert(c->argv[c->argc] == NULL);
                for (int j = 0; j < c->argc; j++)
                        assert(c->argv[j]);
        }
}

static int same(const struct shell_split *a, const struct shell_split *b, int ncmds)
{
        for (int i = 0; i < ncmds; i++) {
                if (a->cmds[i].argc != b->cmds[i].argc)
                        return 0;
                for (int j = 0; j < a->cmds[i].argc; j++)
                        if (strcmp(a->cmds[i].argv[j], b->cmds[i].argv[j]) != 0)
                                return 0;
        }
        return 1;
}

/* The line made back from the words. */
static char *join(const struct shell_split *s)
{
        size_t cap = 16, len = 0;
        char *line = malloc(cap);

        assert(line);
        line[0] = 0;
        for (int i = 0; i < s->ncmds; i++) {
                for (int j = 0; j < s->cmds[i].argc; j++) {
                        char *q = shell_quote(s->cmds[i].argv[j], 0);
                        size_t n;
                        assert(q);
                        n = strlen(q);
                        while (len + n + 4 > cap) {
                                cap *= 2;
                                line = realloc(line, cap);
                                assert(line);
                        }
                        memcpy(line + len, q, n);
                        len += n;
                        line[len++] = j + 1 < s->cmds[i].argc ? ' ' : ';';
                        line[len] = 0;
                        free(q);
                }
        }
        return line;
}

/* A word quoted for an open quote, closed or left open at the end. */
static void check_in_quote(const char *word, char quote)
{
        char *q = shell_quote(word, quote), *line;
        struct shell_split s;
        size_t n;

        assert(q);
        n = strlen(q);
        line = malloc(n + 8);
        assert(line);
        line[0] = 'x';
        line[1] = ' ';
        line[2] = quote;
        memcpy(line + 3, q, n);
        line[n + 3] = quote;
        line[n + 4] = 0;
        assert(shell_split(line, 0, &s) == 0);
        assert(s.ncmds == 1 && s.cmds[0].argc == 2 && strcmp(s.cmds[0].argv[1], word) == 0);
        shell_split_free(&s);

        line[n + 3] = 0;                /* still being typed */
        assert(shell_split(line, SHELL_SPLIT_PARTIAL, &s) == 0);
        assert(s.open == quote && s.in_word);
        assert(s.ncmds == 1 && s.cmds[0].argc == 2 && strcmp(s.cmds[0].argv[1], word) == 0);
        shell_split_free(&s);
        free(line);
        free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct shell_split full, part, again;
        char *line = malloc(size + 1), *back;
        int r, rp;

        assert(line);
        memcpy(line, data, size);
        line[size] = 0;

        r = shell_split(line, 0, &full);
        rp = shell_split(line, SHELL_SPLIT_PARTIAL, &part);
        assert(rp == 0);
        check_shape(&part, SHELL_SPLIT_PARTIAL);
        assert(part.open == 0 || part.open == '\'' || part.open == '"' || part.open == '\\');
        if (r == -EINVAL) {
                assert(full.open && full.open == part.open);
                assert(!full.cmds && !full.ptrs && !full.buf && full.ncmds == 0);
                shell_split_free(&part);
                free(line);
                return 0;
        }
        assert(r == 0);
        assert(full.open == 0 && part.open == 0);
        check_shape(&full, 0);
        /* partial: the same commands, maybe one empty more at the end */
        assert(part.ncmds == full.ncmds ||
               (part.ncmds == full.ncmds + 1 && part.cmds[full.ncmds].argc == 0));
        assert(same(&full, &part, full.ncmds));

        back = join(&full);
        assert(shell_split(back, 0, &again) == 0);
        assert(again.ncmds == full.ncmds && same(&full, &again, full.ncmds));
        shell_split_free(&again);
        free(back);

        for (int i = 0; i < full.ncmds; i++)
                for (int j = 0; j < full.cmds[i].argc; j++) {
                        check_in_quote(full.cmds[i].argv[j], '\'');
                        check_in_quote(full.cmds[i].argv[j], '"');
                }
        shell_split_free(&full);
        shell_split_free(&part);
        free(line);
        return 0;
}
