/* SPDX-License-Identifier: MIT */
/* A command's result printed as text or JSON by one set of calls (struct
 * out, cli/output.h), and errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "lib/internal/errname.h"

void out_begin(struct out *o, struct cmd_ctx *ctx, unsigned flags)
{
        memset(o, 0, sizeof(*o));
        o->ctx = ctx;
        o->flags = flags;
        o->json = ctx->json;
        o->text = !ctx->json && !((flags & OUT_REPORT) && ctx->quiet);
        if (o->json) {
                o->doc = o->cur[0] = cJSON_CreateObject();
                o->oom = !o->doc;
        }
}

int out_end(struct out *o)
{
        cJSON *doc = o->doc;

        o->doc = NULL;
        if (!o->json)
                return 0;
        if (o->oom) {
                cJSON_Delete(doc);
                return cmd_error(o->ctx, ENOMEM, "building JSON output");
        }
        return out_json(o->ctx, doc);
}

void out_discard(struct out *o)
{
        cJSON_Delete(o->doc);
        o->doc = NULL;
}

void out_text(struct out *o, const char *fmt, ...)
{
        va_list ap;

        if (!o->text)
                return;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
}

/* Add item under key (or to the array) of the JSON being built. */
static void add(struct out *o, const char *key, cJSON *item)
{
        cJSON *to = o->cur[o->depth];

        if (!item || !to) {
                cJSON_Delete(item);
                o->oom = 1;
                return;
        }
        if (!(key ? cJSON_AddItemToObject(to, key, item) : cJSON_AddItemToArray(to, item))) {
                cJSON_Delete(item);
                o->oom = 1;
        }
}

static int want_json(const struct out *o, enum out_to to)
{
        return o->json && to != OUT_TEXT;
}

static int want_text(const struct out *o, enum out_to to)
{
        return o->text && to != OUT_JSON;
}

/* A field's text form is a format its caller gives (output.h says what
 * it holds): one conversion, of the type the function fixes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* A field whose value is a string: make() gives its JSON item. */
static void str_field(struct out *o, enum out_to to, const char *key,
                      cJSON *(*make)(const char *), const char *fmt, const char *v)
{
        if (want_json(o, to))
                add(o, key, make(v));
        if (want_text(o, to))
                printf(fmt, v);
}

void out_str(struct out *o, enum out_to to, const char *key, const char *fmt,
             const char *v)
{
        str_field(o, to, key, cJSON_CreateString, fmt, v);
}

void out_u64(struct out *o, enum out_to to, const char *key, const char *fmt,
             unsigned long long v)
{
        /* cJSON keeps numbers as doubles: exact up to 2^53, far above any
         * count or size printed */
        if (want_json(o, to))
                add(o, key, cJSON_CreateNumber((double)v));
        if (want_text(o, to))
                printf(fmt, v);
}

void out_i64(struct out *o, enum out_to to, const char *key, const char *fmt,
             long long v)
{
        if (want_json(o, to))
                add(o, key, cJSON_CreateNumber((double)v));
        if (want_text(o, to))
                printf(fmt, v);
}

void out_size(struct out *o, enum out_to to, const char *key, const char *fmt,
              unsigned long long v)
{
        char buf[32];

        if (want_json(o, to))
                add(o, key, cJSON_CreateNumber((double)v));
        if (!want_text(o, to))
                return;
        if (o->flags & OUT_BYTES_EXACT)
                snprintf(buf, sizeof(buf), "%llu", v);
        else
                format_size(v, buf, sizeof(buf));
        printf(fmt, buf);
}

void out_raw(struct out *o, enum out_to to, const char *key, const char *fmt,
             const char *json)
{
        str_field(o, to, key, cJSON_CreateRaw, fmt, json);
}

#pragma GCC diagnostic pop

void out_bool(struct out *o, enum out_to to, const char *key, const char *yes,
              const char *no, int v)
{
        if (want_json(o, to))
                add(o, key, cJSON_CreateBool(v));
        if (want_text(o, to))
                fputs(v ? yes : no, stdout);
}


void out_item(struct out *o, const char *key, cJSON *item)
{
        if (o->json)
                add(o, key, item);
        else
                cJSON_Delete(item);
}

void out_record(struct out *o, cJSON *rec)
{
        if (!rec) {
                o->oom = 1;
                return;
        }
        if (o->text)
                out_record_text(stdout, rec, o->flags);
        if (o->json) {
                /* the record's fields go where the result's do */
                while (rec->child) {
                        cJSON *item = cJSON_DetachItemViaPointer(rec, rec->child);
                        add(o, item->string, item);
                }
        }
        cJSON_Delete(rec);
}

static void hexdump_line(unsigned long long at, const unsigned char *p, size_t n)
{
        printf("%08llx ", at);
        for (size_t i = 0; i < 16; i++) {
                if (i == 8)
                        putchar(' ');
                if (i < n)
                        printf(" %02x", p[i]);
                else
                        fputs("   ", stdout);
        }
        fputs("  |", stdout);
        for (size_t i = 0; i < n; i++)
                putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.');
        fputs("|\n", stdout);
}

void out_hexdump(struct out *o, const char *key, const unsigned char *p, size_t len,
                 unsigned long long at)
{
        int starred = 0;

        if (o->json) {
                char *s = malloc(len * 2 + 1);
                if (!s) {
                        o->oom = 1;
                        return;
                }
                for (size_t i = 0; i < len; i++)
                        snprintf(s + 2 * i, 3, "%02x", p[i]);
                s[2 * len] = 0;
                add(o, key, cJSON_CreateString(s));
                free(s);
        }
        if (!o->text)
                return;
        /* like hexdump -C: a line equal to the one before is shown as '*' */
        for (size_t i = 0; i < len; i += 16) {
                size_t n = len - i < 16 ? len - i : 16;
                if (i >= 16 && n == 16 && memcmp(p + i, p + i - 16, 16) == 0) {
                        if (!starred)
                                puts("*");
                        starred = 1;
                        continue;
                }
                starred = 0;
                hexdump_line(at + i, p + i, n);
        }
        printf("%08llx\n", at + len);
}

static void open_item(struct out *o, const char *key, cJSON *item)
{
        if (!o->json)
                return;
        if (o->depth + 1 >= OUT_DEPTH) {
                cJSON_Delete(item);
                o->oom = 1;
                return;
        }
        add(o, key, item);
        o->cur[++o->depth] = o->oom ? NULL : item;
}

void out_open_object(struct out *o, const char *key)
{
        if (o->json)
                open_item(o, key, cJSON_CreateObject());
}

void out_open_array(struct out *o, const char *key)
{
        if (o->json)
                open_item(o, key, cJSON_CreateArray());
}

void out_close(struct out *o)
{
        if (o->json && o->depth > 0)
                o->depth--;
}

int out_chatty(const struct cmd_ctx *ctx)
{
        return !ctx->quiet && !ctx->json;
}

void out_error(struct cmd_ctx *ctx, int err, const char *msg, int usage)
{
        const char *cmd = ctx->cmd ? ctx->cmd->name : NULL;

        if (ctx->json) {
                cJSON *doc = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(doc, "error");
                char *s;
                cJSON_AddStringToObject(e, "errno", am_errno_name(err, "EINVAL"));
                cJSON_AddStringToObject(e, "message", msg);
                if (cmd)
                        cJSON_AddStringToObject(e, "command", cmd);
                s = cJSON_PrintUnformatted(doc);
                if (s)
                        fprintf(stderr, "%s\n", s);
                free(s);
                cJSON_Delete(doc);
                return;
        }
        if (cmd)
                fprintf(stderr, "ashmemctl: %s: %s\n", cmd, msg);
        else
                fprintf(stderr, "ashmemctl: %s\n", msg);
        if (!usage)
                return;
        if (ctx->cmd)
                cmd_print_usage(stderr, ctx->cmd);
        else
                fprintf(stderr, "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]; see 'ashmemctl help'\n");
}
