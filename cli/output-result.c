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
#include "lib/internal/unicode.h"

/* The UTF-8 character at p (avail bytes): its length and code point, or 0
 * if it is not valid UTF-8 (overlong, a surrogate, past U+10FFFF, cut
 * short). */
static size_t u8_char(const unsigned char *p, size_t avail, unsigned *cp)
{
        unsigned c = p[0], n, min, v;

        if (c < 0x80) {
                *cp = c;
                return 1;
        }
        if ((c & 0xe0) == 0xc0) {
                n = 2; min = 0x80; v = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3; min = 0x800; v = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4; min = 0x10000; v = c & 0x07;
        } else {
                return 0;
        }
        if (avail < n)
                return 0;
        for (unsigned i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                v = v << 6 | (p[i] & 0x3f);
        }
        if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                return 0;
        *cp = v;
        return n;
}

int out_utf8_valid(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        unsigned cp;

        for (size_t i = 0; i < n;) {
                size_t k = u8_char(p + i, n - i, &cp);
                if (k == 0)
                        return 0;
                i += k;
        }
        return 1;
}

char *out_escape(const char *s, size_t n, unsigned how)
{
        const unsigned char *p = (const unsigned char *)s;
        char *r = malloc(n * 4 + 1), *o = r;
        unsigned cp;

        if (!r)
                return NULL;
        for (size_t i = 0; i < n;) {
                size_t k = u8_char(p + i, n - i, &cp);
                int unsafe = k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
                             am_look_alike(cp) || (cp == '\\' && (how & OUT_ESC_BACKSLASH));
                if ((cp == '\n' || cp == '\t') && k && (how & OUT_ESC_KEEP_LINES))
                        unsafe = 0;
                if (unsafe) {
                        /* each byte of it (a C1 control is two) */
                        for (size_t j = 0; j < (k ? k : 1); j++)
                                o += sprintf(o, "\\x%02x", p[i + j]);
                        i += k ? k : 1;
                        continue;
                }
                memcpy(o, p + i, k);
                o += k;
                i += k;
        }
        *o = 0;
        return r;
}

char *out_base64(const unsigned char *p, size_t n)
{
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned)p[i] << 16;
                if (i + 1 < n)
                        v |= (unsigned)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *o++ = tab[v >> 18 & 63];
                *o++ = tab[v >> 12 & 63];
                *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
                *o++ = i + 2 < n ? tab[v & 63] : '=';
        }
        *o = 0;
        return s;
}

/* A JSON item for string s: itself if valid UTF-8, else its base64
 * (*b64 set). */
static cJSON *json_string(const char *s, int *b64)
{
        cJSON *item;
        char *e;

        *b64 = 0;
        if (out_utf8_valid(s, strlen(s)))
                return cJSON_CreateString(s);
        e = out_base64((const unsigned char *)s, strlen(s));
        if (!e)
                return NULL;
        item = cJSON_CreateString(e);
        free(e);
        *b64 = 1;
        return item;
}

int out_json_string(cJSON *obj, const char *key, const char *s)
{
        char ekey[64];
        int b64;
        cJSON *item = json_string(s, &b64);

        if (!item || !cJSON_AddItemToObject(obj, key, item)) {
                cJSON_Delete(item);
                return -1;
        }
        if (!b64)
                return 0;
        snprintf(ekey, sizeof(ekey), "%s_encoding", key);
        return cJSON_AddStringToObject(obj, ekey, "base64") ? 0 : -1;
}

void out_begin(struct out *o, struct cmd_ctx *ctx, unsigned flags)
{
        memset(o, 0, sizeof(*o));
        o->ctx = ctx;
        o->flags = flags | ctx->out_flags;
        o->json = ctx->json;
        o->text = !ctx->json && !((flags & OUT_REPORT) && ctx->quiet);
        if (!ctx->json && (o->flags & (OUT_EXPORT | OUT_SHELLVAR))) {
                /* for scripts, like JSON: built whole, then printed as
                 * KEY="value" lines; --quiet does not silence it */
                o->json = o->export = 1;
                o->text = 0;
        }
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
        if (o->export) {
                int r = out_export_doc(stdout, doc, o->flags);
                cJSON_Delete(doc);
                return r < 0 ? cmd_error(o->ctx, -r, "writing output") : 0;
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

/* A string field in JSON: see out_json_string(); inside an array, a
 * string that is not UTF-8 is {"value":BASE64,"encoding":"base64"}. */
static void add_string(struct out *o, const char *key, const char *v)
{
        cJSON *to = o->cur[o->depth], *item, *wrap;
        int b64;

        if (o->export) {
                /* the bytes themselves: --export quotes them for a shell */
                add(o, key, cJSON_CreateString(v));
                return;
        }

        if (key && to && cJSON_IsObject(to)) {
                if (out_json_string(to, key, v) < 0)
                        o->oom = 1;
                return;
        }
        item = json_string(v, &b64);
        if (item && b64) {
                wrap = cJSON_CreateObject();
                if (!wrap || !cJSON_AddItemToObject(wrap, "value", item)) {
                        cJSON_Delete(wrap);
                        cJSON_Delete(item);
                        o->oom = 1;
                        return;
                }
                if (!cJSON_AddStringToObject(wrap, "encoding", "base64"))
                        o->oom = 1;
                item = wrap;
        }
        add(o, key, item);
}

void out_str(struct out *o, enum out_to to, const char *key, const char *fmt,
             const char *v)
{
        if (want_json(o, to))
                add_string(o, key, v);
        if (want_text(o, to)) {
                /* text from elsewhere (a region, a peer) may hold control
                 * characters: shown escaped, unless --raw */
                char *e = o->flags & OUT_RAW ? NULL : out_escape(v, strlen(v), 0);
                printf(fmt, e ? e : v);
                free(e);
        }
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
        if (want_json(o, to))
                add(o, key, cJSON_CreateRaw(json));
        if (want_text(o, to))
                printf(fmt, json);
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
        if (o->text || o->export)
                /* --export: the record's own line, its columns' keys */
                out_record_text(stdout, rec, o->flags);
        if (o->json && !o->export) {
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

void out_error(struct cmd_ctx *ctx, int err, const char *msg0, int usage)
{
        const char *cmd = ctx->cmd ? ctx->cmd->name : NULL;
        /* a message may quote what was typed or found: control characters
         * and bytes that are not UTF-8 shown as \xNN, on a terminal and in
         * JSON alike */
        char *esc = out_escape(msg0, strlen(msg0), 0);
        const char *msg = esc ? esc : "(out of memory)";

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
                free(esc);
                return;
        }
        if (cmd)
                fprintf(stderr, "ashmemctl: %s: %s\n", cmd, msg);
        else
                fprintf(stderr, "ashmemctl: %s\n", msg);
        free(esc);
        if (!usage)
                return;
        if (ctx->cmd)
                cmd_print_usage(stderr, ctx->cmd);
        else
                fprintf(stderr, "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]; see 'ashmemctl help'\n");
}
