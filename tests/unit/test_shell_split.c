/* SPDX-License-Identifier: MIT */
/* The shell's tokenizer (cli/shell-split.c, compiled into this test). */
#include "../../cli/shell-split.c"
#include "t.h"

/* The split of line as text: each command's words in brackets, commands
 * separated by one space: "a 'b c'; d" gives "[a][b c] [d]". A failure
 * gives "ERR(open)". The result is a static buffer. */
static const char *show(const char *line, unsigned flags, struct shell_split *keep)
{
        static char out[4096];
        struct shell_split s;
        size_t o = 0;
        int r = shell_split(line, flags, &s);

        if (r == -EINVAL) {
                CHECK(s.cmds == NULL && s.buf == NULL && s.ptrs == NULL);
                snprintf(out, sizeof(out), "ERR(%c)", s.open ? s.open : '0');
                return out;
        }
        if (r != 0)
                t_fail(__FILE__, __LINE__, "shell_split(\"%s\") = %d", line, r);
        out[0] = 0;
        for (int i = 0; i < s.ncmds; i++) {
                if (i)
                        o += (size_t)snprintf(out + o, sizeof(out) - o, " ");
                CHECK(s.cmds[i].argv[s.cmds[i].argc] == NULL);
                for (int j = 0; j < s.cmds[i].argc; j++)
                        o += (size_t)snprintf(out + o, sizeof(out) - o, "[%s]", s.cmds[i].argv[j]);
                if (s.cmds[i].argc == 0)
                        o += (size_t)snprintf(out + o, sizeof(out) - o, "()");
        }
        if (keep)
                *keep = s;
        else
                shell_split_free(&s);
        return out;
}

#define SPLIT(line, want)                                                       \
        do {                                                                    \
                const char *got_ = show((line), 0, NULL);                       \
                if (strcmp(got_, (want)) != 0)                                  \
                        t_fail(__FILE__, __LINE__, "split of <%s>: %s, expected %s", \
                               (line), got_, (want));                           \
        } while (0)

#define PARTIAL(line, want)                                                     \
        do {                                                                    \
                const char *got_ = show((line), SHELL_SPLIT_PARTIAL, NULL);     \
                if (strcmp(got_, (want)) != 0)                                  \
                        t_fail(__FILE__, __LINE__, "partial split of <%s>: %s, expected %s", \
                               (line), got_, (want));                           \
        } while (0)

TEST(blanks_separate_words)
{
        SPLIT("", "");
        SPLIT("   \t ", "");
        SPLIT("list", "[list]");
        SPLIT("  create   frame\t4K  ", "[create][frame][4K]");
        SPLIT("a\r\n", "[a]");
        SPLIT("a\nb", "[a][b]");
}

TEST(semicolons_separate_commands)
{
        SPLIT("a; b", "[a] [b]");
        SPLIT("a;b;c", "[a] [b] [c]");
        SPLIT("a 1 2 ;b 3", "[a][1][2] [b][3]");
        /* empty commands are dropped */
        SPLIT(";", "");
        SPLIT(";; a ;; ; b;", "[a] [b]");
        SPLIT("a;", "[a]");
}

TEST(single_quotes_keep_everything)
{
        SPLIT("info 'my region'", "[info][my region]");
        SPLIT("'a;b#c\\d\"e'", "[a;b#c\\d\"e]");
        SPLIT("x'y z'w", "[xy zw]");
        SPLIT("''", "[]");
        SPLIT("a '' b", "[a][][b]");
        SPLIT("'multi\nline'", "[multi\nline]");
}

TEST(double_quotes_escape_four_characters)
{
        SPLIT("\"my region\"", "[my region]");
        SPLIT("\"a\\\"b\"", "[a\"b]");
        SPLIT("\"a\\\\b\"", "[a\\b]");
        SPLIT("\"\\$HOME \\`x\\`\"", "[$HOME `x`]");
        /* other backslashes stay */
        SPLIT("\"a\\nb\\'\"", "[a\\nb\\']");
        SPLIT("\"a;b #c\"", "[a;b #c]");
        SPLIT("\"\"", "[]");
        SPLIT("\"ab\\\ncd\"", "[abcd]");
        SPLIT("\"it's\"", "[it's]");
}

TEST(backslash_outside_quotes)
{
        SPLIT("my\\ region", "[my region]");
        SPLIT("a\\;b", "[a;b]");
        SPLIT("\\#x", "[#x]");
        SPLIT("\\'", "[']");
        SPLIT("\\\\", "[\\]");
        SPLIT("\\a\\b", "[ab]");
        /* backslash-newline: the line goes on */
        SPLIT("create fr\\\name 4K", "[create][frame][4K]");
        SPLIT("create \\\n frame", "[create][frame]");
}

TEST(comments)
{
        SPLIT("# all comment", "");
        SPLIT("list # the regions; not a command", "[list]");
        SPLIT("a#b", "[a#b]");
        SPLIT("a '#b' \"#c\" \\#d", "[a][#b][#c][#d]");
        SPLIT("a # one\nb", "[a][b]");
        SPLIT("a; # one\nb; c", "[a] [b] [c]");
        SPLIT("#x;y", "");
}

TEST(incomplete_lines_fail_with_the_open_quote)
{
        struct shell_split s;

        SPLIT("info 'my reg", "ERR(')");
        SPLIT("info \"my reg", "ERR(\")");
        SPLIT("info my\\", "ERR(\\)");
        SPLIT("\"a\\\"", "ERR(\")");
        SPLIT("'", "ERR(')");
        SPLIT("\\", "ERR(\\)");
        /* the caller joins the next line with a newline */
        SPLIT("info 'my\nreg'", "[info][my\nreg]");
        SPLIT("info my\\\nreg", "[info][myreg]");
        CHECK_EQ(shell_split("a 'b", 0, &s), -EINVAL);
        CHECK_EQ(s.open, '\'');
        CHECK_EQ(s.ncmds, 0);
        CHECK_EQ(shell_split("a 'b'", 0, &s), 0);
        CHECK_EQ(s.open, 0);
        CHECK_EQ(s.in_word, 0);
        shell_split_free(&s);
}

TEST(partial_splits_for_completion)
{
        struct shell_split s;

        /* the command being typed is kept, even with no word yet */
        PARTIAL("", "()");
        PARTIAL("list; ", "[list] ()");
        PARTIAL("info ", "[info]");
        PARTIAL("info 'my re", "[info][my re]");
        PARTIAL("a;b \"x y", "[a] [b][x y]");
        PARTIAL("x\\", "[x]");

        show("info 'my re", SHELL_SPLIT_PARTIAL, &s);
        CHECK_EQ(s.open, '\'');
        CHECK_EQ(s.in_word, 1);
        CHECK_EQ(s.ncmds, 1);
        CHECK_EQ(s.cmds[0].argc, 2);
        shell_split_free(&s);

        show("info ", SHELL_SPLIT_PARTIAL, &s);
        CHECK_EQ(s.in_word, 0);
        CHECK_EQ(s.open, 0);
        shell_split_free(&s);

        show("info fr", SHELL_SPLIT_PARTIAL, &s);
        CHECK_EQ(s.in_word, 1);
        shell_split_free(&s);

        show("info \"\"", SHELL_SPLIT_PARTIAL, &s);
        CHECK_EQ(s.in_word, 1);
        CHECK_EQ(s.cmds[0].argc, 2);
        CHECK_EQ(strlen(s.cmds[0].argv[1]), 0);
        shell_split_free(&s);

        show("list # com", SHELL_SPLIT_PARTIAL, &s);
        CHECK_EQ(s.in_comment, 1);
        CHECK_EQ(s.in_word, 0);
        shell_split_free(&s);

        /* a full split never reports these */
        show("info fr", 0, &s);
        CHECK_EQ(s.in_word, 0);
        shell_split_free(&s);
}

/* Every quoted form splits back to the word itself. */
static void round_trip(const char *word)
{
        static const char quotes[] = { 0, '\'', '"' };

        for (size_t i = 0; i < sizeof(quotes); i++) {
                char *q = shell_quote(word, quotes[i]), *line;
                struct shell_split s;
                size_t n;

                CHECK(q != NULL);
                n = strlen(q) + 8;
                line = malloc(n);
                CHECK(line != NULL);
                if (quotes[i])
                        snprintf(line, n, "x %c%s%c y", quotes[i], q, quotes[i]);
                else
                        snprintf(line, n, "x %s y", q);
                if (shell_split(line, 0, &s) != 0)
                        t_fail(__FILE__, __LINE__, "split of <%s> failed", line);
                if (s.ncmds != 1 || s.cmds[0].argc != 3 || strcmp(s.cmds[0].argv[1], word) != 0)
                        t_fail(__FILE__, __LINE__, "<%s> quoted %s as <%s> splits back as %d commands, <%s>",
                               word, quotes[i] == '\'' ? "in '" : quotes[i] ? "in \"" : "bare", q,
                               s.ncmds, s.ncmds && s.cmds[0].argc > 1 ? s.cmds[0].argv[1] : "");
                shell_split_free(&s);
                free(line);
                free(q);
        }
}

TEST(quote_round_trips)
{
        char *q;

        round_trip("frame");
        round_trip("my region");
        round_trip("it's");
        round_trip("say \"hi\"");
        round_trip("a;b#c");
        round_trip("#start");
        round_trip("back\\slash");
        round_trip("tab\there");
        round_trip("new\nline");
        round_trip("$HOME `x`");
        round_trip("");
        round_trip("'\"\\;# \t\n\r");
        /* a plain word stays as it is; a special one gets backslashes */
        q = shell_quote("frame", 0);
        CHECK(strcmp(q, "frame") == 0);
        free(q);
        q = shell_quote("my region", 0);
        CHECK(strcmp(q, "my\\ region") == 0);
        free(q);
        q = shell_quote("", 0);
        CHECK(strcmp(q, "''") == 0);
        free(q);
}

/* Every byte string of up to 4 characters from an alphabet of the special
 * characters: the split never fails other than -EINVAL, the partial split
 * never fails, and neither reads or writes out of bounds (ASan build). */
TEST(exhaustive_short_inputs)
{
        static const char alpha[] = "a '\"\\;#\n";
        const size_t k = sizeof(alpha) - 1;
        char line[5];
        size_t total = 1;

        for (int i = 0; i < 4; i++)
                total *= k + 1;
        for (size_t n = 0; n < total; n++) {
                size_t x = n, len = 0;
                struct shell_split s;
                int r;
                for (int i = 0; i < 4; i++, x /= k + 1)
                        if (x % (k + 1))
                                line[len++] = alpha[x % (k + 1) - 1];
                line[len] = 0;
                r = shell_split(line, 0, &s);
                CHECK(r == 0 || r == -EINVAL);
                if (r == 0) {
                        for (int c = 0; c < s.ncmds; c++)
                                CHECK(s.cmds[c].argc > 0 && s.cmds[c].argv[s.cmds[c].argc] == NULL);
                        shell_split_free(&s);
                } else {
                        CHECK(s.open != 0);
                }
                CHECK_EQ(shell_split(line, SHELL_SPLIT_PARTIAL, &s), 0);
                CHECK(s.ncmds >= 1);
                shell_split_free(&s);
        }
}
