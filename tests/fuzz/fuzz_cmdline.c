/* SPDX-License-Identifier: MIT */
/*
 * Fuzz ashmemctl's command-line parser: cmd_find() and cmd_parse() over
 * the whole command table (cli/cmd.c), never a command's exec().
 *
 * Input: words separated by NUL bytes. The first word picks the command
 * (by name, alias or unique prefix; when it names none, its first byte
 * picks one from the table), the rest are its arguments.
 *
 * Checked: cmd_find() finds exactly what the table says (exact name or
 * alias first, else the one unhidden command the word begins) and
 * explains a miss; cmd_parse() returns 0, EXIT_USAGE, CMD_PARSE_HELP (only
 * when a -h or --help was given) or CMD_PARSE_VERSION (only when a -V or
 * --version was given, and no help); on success the positionals are the
 * words in order, within the command's limits, options hold "" (a flag)
 * or a value taken from the words, CMD_PASSTHROUGH words after "--" are
 * kept as they are; a usage error prints "ashmemctl: COMMAND: ..." and the
 * usage line (or one JSON error object with --json) and leaves nothing
 * allocated; libFuzzer's leak check sees every allocation freed.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../cli/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXWORDS 64

static int ntable(void)
{
        int n = 0;
        while (cmd_table[n])
                n++;
        return n;
}

/* What cmd_find() must answer for name. */
static const struct cmd_entry *ref_find(const char *name)
{
        const struct cmd_entry *found = NULL;
        int n = 0;

        for (int i = 0; cmd_table[i]; i++)
                if (strcmp(cmd_table[i]->name, name) == 0 ||
                    (cmd_table[i]->alias && strcmp(cmd_table[i]->alias, name) == 0))
                        return cmd_table[i];
        for (int i = 0; *name && cmd_table[i]; i++)
                if (!(cmd_table[i]->flags & CMD_HIDDEN) &&
                    strncmp(cmd_table[i]->name, name, strlen(name)) == 0) {
                        found = cmd_table[i];
                        n++;
                }
        return n == 1 ? found : NULL;
}

/* p points into one of the words (or is the word itself). */
static int in_words(const char *p, char **w, int n)
{
        for (int i = 0; i < n; i++)
                if (p >= w[i] && p <= w[i] + strlen(w[i]))
                        return 1;
        return 0;
}

static int word_index(const char *p, char **w, int n)
{
        for (int i = 0; i < n; i++)
                if (p == w[i])
                        return i;
        return -1;
}

static void check_parsed(const struct cmd_entry *e, const struct cmd_args *a,
                         char **argv, int argc)
{
        int last = 0, dashdash = argc, nopts;

        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--") == 0) {
                        dashdash = i;
                        break;
                }
        assert(a->entry == e);
        assert(a->argc >= e->min_args && a->argc >= 0);
        assert(e->max_args < 0 || a->argc <= e->max_args);
        for (int i = 0; i < a->argc; i++) {
                int k = word_index(a->argv[i], argv, argc);
                const char *w;
                assert(k > last);       /* a word of the line, in order */
                last = k;
                w = argv[k];
                /* before "--", a positional does not look like an option */
                if (k < dashdash)
                        assert(w[0] != '-' || w[1] == 0 || (w[1] >= '0' && w[1] <= '9'));
        }
        for (nopts = 0; e->opts && e->opts[nopts].name; nopts++)
                ;
        assert(nopts <= CMD_MAX_OPTS);
        for (int i = 0; i < nopts; i++) {
                const char *v = a->val[i];
                if (!v)
                        continue;
                if (!e->opts[i].arg)
                        assert(v[0] == 0);              /* a flag */
                else
                        assert(in_words(v, argv, argc));
        }
        assert(a->nrest >= 0);
        if (a->nrest) {
                assert(e->flags & CMD_PASSTHROUGH);
                assert(a->rest == argv + dashdash + 1 && a->nrest == argc - dashdash - 1);
        }
}

/* A usage error was reported: the message and the usage line, or one
 * JSON object {"error":{...}}. */
static void check_usage(const struct cmd_entry *e, const char *out, int json)
{
        char want[64];

        if (json) {
                const char *end = NULL;
                cJSON *o = cJSON_ParseWithOpts(out, &end, 0);
                const cJSON *err, *msg;
                assert(o && cJSON_IsObject(o));
                err = cJSON_GetObjectItemCaseSensitive(o, "error");
                msg = cJSON_GetObjectItemCaseSensitive(err, "message");
                assert(cJSON_IsString(msg) && msg->valuestring[0]);
                assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "errno")));
                assert(strcmp(end, "\n") == 0);         /* one line, nothing else */
                cJSON_Delete(o);
                return;
        }
        snprintf(want, sizeof(want), "ashmemctl: %s: ", e->name);
        assert(strncmp(out, want, strlen(want)) == 0 && out[strlen(want)] != '\n');
        snprintf(want, sizeof(want), "\nusage: ashmemctl %s", e->name);
        assert(strstr(out, want));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf, *argv[MAXWORDS + 1], err[512], *out = NULL;
        const struct cmd_entry *e, *want;
        struct cmd_ctx ctx = { 0 };
        struct cmd_args a;
        size_t outlen = 0;
        int argc = 0, r, help = 0, version = 0, json = 0;
        FILE *saved, *mem;

        if (size == 0)
                return 0;
        buf = malloc(size + 1);
        assert(buf);
        memcpy(buf, data, size);
        buf[size] = 0;
        for (char *p = buf; argc < MAXWORDS && p <= buf + size; p += strlen(p) + 1)
                argv[argc++] = p;
        argv[argc] = NULL;

        memset(err, 0, sizeof(err));
        e = cmd_find(argv[0], err, sizeof(err));
        want = ref_find(argv[0]);
        assert(e == want);
        if (!e) {
                assert(strncmp(err, "unknown command: ", 17) == 0 ||
                       strncmp(err, "ambiguous command: ", 19) == 0);
                e = cmd_table[(unsigned char)argv[0][0] % (unsigned)ntable()];
        }

        /* words that may ask for help, the version or JSON (a "--" may be
         * an option's value, so look at them all) */
        for (int i = 1; i < argc; i++) {
                const char *w = argv[i];
                if (strcmp(w, "--help") == 0 || (w[0] == '-' && w[1] != '-' && strchr(w, 'h')))
                        help = 1;
                if (strcmp(w, "--version") == 0 || (w[0] == '-' && w[1] != '-' && strchr(w, 'V')))
                        version = 1;
                if (strcmp(w, "--json") == 0 || (w[0] == '-' && w[1] != '-' && strchr(w, 'j')))
                        json = 1;
        }

        /* what the parser reports goes to a buffer */
        mem = open_memstream(&out, &outlen);
        assert(mem);
        saved = stderr;
        stderr = mem;
        ctx.cmd = e;
        r = cmd_parse(&ctx, e, argc, argv, &a);
        stderr = saved;
        assert(fclose(mem) == 0);

        assert(r == 0 || r == EXIT_USAGE || r == CMD_PARSE_HELP || r == CMD_PARSE_VERSION);
        if (r == 0) {
                assert(outlen == 0);
                check_parsed(e, &a, argv, argc);
                free(a.argv);
        } else if (r == CMD_PARSE_HELP || r == CMD_PARSE_VERSION) {
                /* only -h or --help asks for help, -V or --version for
                 * the version */
                assert(r == CMD_PARSE_HELP ? help : version);
                assert(outlen == 0);
                free(a.argv);
        } else {
                assert(a.argv == NULL);
                assert(outlen > 0 && out[outlen - 1] == '\n');
                /* --json seen before the error switches the report */
                check_usage(e, out, ctx.json);
                if (ctx.json)
                        assert(json);
        }
        free(out);
        free(buf);
        return 0;
}
