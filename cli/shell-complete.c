/* SPDX-License-Identifier: MIT */
/* Tab completion at the shell's prompt: readline asks, complete_words()
 * (cli/complete.h) answers from the command table, the broker's region
 * names and the shell's own (shell_names()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wchar.h>


#include "complete.h"
#include "shell-int.h"
#include "shell-rl.h"
#include "shell-split.h"

/* readline's callbacks take no argument: the shell completing */
static struct shell *completing;

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
        struct shell *sh = completing;
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
        shell_check_broker(sh, 1);
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

/* Columns s takes on a terminal (a region name may hold accents, CJK,
 * emoji): its bytes if it is not text of this locale. */
static int text_width(const char *s)
{
        size_t n = mbstowcs(NULL, s, 0);
        wchar_t *w;
        int r;

        if (n == (size_t)-1 || !(w = calloc(n + 1, sizeof(*w))))
                return (int)strlen(s);
        mbstowcs(w, s, n + 1);
        r = wcswidth(w, n);
        free(w);
        return r < 0 ? (int)strlen(s) : r;
}

/* A second Tab: the candidates, with what they are when that is known. */
static void show_matches(char **matches, int len, int max)
{
        int width = 0, any = 0;

        for (size_t i = 0; i < last_c.n; i++) {
                int l = text_width(last_c.cand[i]);
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
        for (size_t i = 0; i < last_c.n; i++) {
                /* padded by display width, not bytes */
                int pad = width - text_width(last_c.cand[i]);
                fprintf(rl_outstream, "  %s%*s  %s\n", last_c.cand[i], pad > 0 ? pad : 0, "",
                        last_c.desc[i] ? last_c.desc[i] : "");
        }
        rl_forced_update_display();
}

void shell_complete_setup(struct shell *sh)
{
        completing = sh;
        rl_attempted_completion_function = shell_complete;
        rl_completion_display_matches_hook = show_matches;
        rl_completer_word_break_characters = " \t\n;=";
        rl_completer_quote_characters = "'\"";
        rl_char_is_quoted_p = char_is_quoted;
}

void shell_complete_done(void)
{
        free_last();
        completing = NULL;
}
