/* SPDX-License-Identifier: MIT */
/* The shell's tokenizer (cli/shell-split.h says the rules). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shell-split.h"
#include "lib/internal/text.h"

/* A growing array of size_t. */
struct sizes {
        size_t *v;
        size_t n, cap;
};

static int sizes_push(struct sizes *s, size_t x)
{
        void *v = s->v;

        if (am_array_room(&v, &s->cap, s->n, sizeof(*s->v), 16) < 0)
                return -ENOMEM;
        s->v = v;
        s->v[s->n++] = x;
        return 0;
}

static int is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int shell_split(const char *line, unsigned flags, struct shell_split *out)
{
        size_t len = strlen(line), o = 0, nptrs, w;
        struct sizes words = { 0 }, ends = { 0 };  /* word offsets; words per command */
        const char *p = line;
        int in_word = 0, r = -ENOMEM;
        char *buf;

        memset(out, 0, sizeof(*out));
        /* a dequoted word is never longer than its text, and each word's
         * terminating NUL takes the place of the blank, ';' or quote that
         * ended it (or of the end of the line, once) */
        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        while (*p) {
                char c = *p;

                if (!in_word) {
                        if (is_blank(c)) {
                                p++;
                                continue;
                        }
                        if (c == ';') {
                                /* the end of a command with words */
                                if (words.n > (ends.n ? ends.v[ends.n - 1] : 0) &&
                                    sizes_push(&ends, words.n) < 0)
                                        goto fail;
                                p++;
                                continue;
                        }
                        if (c == '#') {
                                const char *nl = strchr(p, '\n');
                                if (!nl) {
                                        out->in_comment = 1;
                                        break;
                                }
                                p = nl;
                                continue;
                        }
                        if (c == '\\' && p[1] == '\n') {
                                p += 2;
                                continue;
                        }
                        if (sizes_push(&words, o) < 0)
                                goto fail;
                        in_word = 1;
                }
                if (is_blank(c) || c == ';') {
                        buf[o++] = 0;
                        in_word = 0;
                        if (c != ';')
                                p++;
                        continue;
                }
                if (c == '\'') {
                        const char *q = strchr(++p, '\'');
                        size_t n = q ? (size_t)(q - p) : strlen(p);
                        memcpy(buf + o, p, n);
                        o += n;
                        p += n;
                        if (!q) {
                                out->open = '\'';
                                break;
                        }
                        p++;
                        continue;
                }
                if (c == '"') {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1] == '\n') {
                                        p++;
                                        continue;
                                }
                                if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                                        p++;
                                buf[o++] = *p;
                        }
                        if (!*p) {
                                out->open = '"';
                                break;
                        }
                        p++;
                        continue;
                }
                if (c == '\\') {
                        if (p[1] == '\n') {
                                p += 2;
                                continue;
                        }
                        if (!p[1]) {
                                out->open = '\\';
                                break;
                        }
                        buf[o++] = p[1];
                        p += 2;
                        continue;
                }
                buf[o++] = c;
                p++;
        }
        if (out->open && !(flags & SHELL_SPLIT_PARTIAL)) {
                char open = out->open;
                free(buf);
                free(words.v);
                free(ends.v);
                memset(out, 0, sizeof(*out));
                out->open = open;
                return -EINVAL;
        }
        if (in_word) {
                buf[o++] = 0;
                out->in_word = 1;
        }
        /* close the last command; a partial split keeps it even empty */
        if ((words.n > (ends.n ? ends.v[ends.n - 1] : 0) || (flags & SHELL_SPLIT_PARTIAL)) &&
            sizes_push(&ends, words.n) < 0)
                goto fail;
        if (!(flags & SHELL_SPLIT_PARTIAL))
                out->in_word = out->in_comment = 0;
        /* argv arrays: every command's words and its NULL, in one block */
        nptrs = words.n + ends.n;
        out->ptrs = malloc((nptrs ? nptrs : 1) * sizeof(char *));
        out->cmds = malloc((ends.n ? ends.n : 1) * sizeof(*out->cmds));
        if (!out->ptrs || !out->cmds)
                goto fail;
        w = 0;
        for (size_t i = 0, k = 0; i < ends.n; i++) {
                struct shell_words *cmd = &out->cmds[i];
                cmd->argv = out->ptrs + k;
                cmd->argc = (int)(ends.v[i] - w);
                for (; w < ends.v[i]; w++)
                        out->ptrs[k++] = buf + words.v[w];
                out->ptrs[k++] = NULL;
        }
        out->ncmds = (int)ends.n;
        out->buf = buf;
        free(words.v);
        free(ends.v);
        return 0;
fail:
        free(out->ptrs);
        free(out->cmds);
        free(buf);
        free(words.v);
        free(ends.v);
        memset(out, 0, sizeof(*out));
        return r;
}

void shell_split_free(struct shell_split *s)
{
        free(s->cmds);
        free(s->ptrs);
        free(s->buf);
        memset(s, 0, sizeof(*s));
}

char *shell_quote(const char *word, char quote)
{
        size_t len = strlen(word), o = 0;
        int plain = len > 0, nl = len == 0;
        char *r;

        for (const char *c = word; *c; c++) {
                if (strchr(" \t\n\r;#'\"\\", *c))
                        plain = 0;
                if (*c == '\n' || *c == '\r')
                        nl = 1;
        }
        if (plain && !quote)
                return strdup(word);
        if (!quote && nl) {
                /* backslash-newline would vanish: single quotes, with a
                 * ' written as '\'' */
                r = malloc(len * 4 + 3);
                if (!r)
                        return NULL;
                r[o++] = '\'';
                for (const char *c = word; *c; c++) {
                        if (*c == '\'') {
                                memcpy(r + o, "'\\''", 4);
                                o += 4;
                        } else {
                                r[o++] = *c;
                        }
                }
                r[o++] = '\'';
                r[o] = 0;
                return r;
        }
        r = malloc(len * 4 + 1);
        if (!r)
                return NULL;
        for (const char *c = word; *c; c++) {
                if (quote == '\'') {
                        if (*c == '\'') {
                                memcpy(r + o, "'\\''", 4);
                                o += 4;
                                continue;
                        }
                } else if (quote == '"') {
                        if (*c == '"' || *c == '\\')
                                r[o++] = '\\';
                } else if (strchr(" \t;#'\"\\", *c)) {
                        r[o++] = '\\';
                }
                r[o++] = *c;
        }
        r[o] = 0;
        return r;
}
