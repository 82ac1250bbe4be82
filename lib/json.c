/* SPDX-License-Identifier: MIT */
/* libashmem's JSON scanner and writer (see internal/json.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/json.h"
#include "internal/text.h"

#define DEPTH_MAX 32

static const char *ws(const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

/* p at the opening quote; the position after the closing one, or NULL. */
static const char *string(const char *p, const char *end)
{
        for (p++; p < end; p++) {
                unsigned char c = (unsigned char)*p;
                if (c == '"')
                        return p + 1;
                if (c < 0x20)
                        return NULL;
                if (c != '\\')
                        continue;
                if (++p == end)
                        return NULL;
                switch (*p) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                        break;
                case 'u':
                        if (end - p < 5 || am_hex_digit(p[1]) < 0 || am_hex_digit(p[2]) < 0 ||
                            am_hex_digit(p[3]) < 0 || am_hex_digit(p[4]) < 0)
                                return NULL;
                        p += 4;
                        break;
                default:
                        return NULL;
                }
        }
        return NULL;
}

static int digit(const char *p, const char *end)
{
        return p < end && *p >= '0' && *p <= '9';
}

static const char *number(const char *p, const char *end)
{
        if (p < end && *p == '-')
                p++;
        if (!digit(p, end))
                return NULL;
        if (*p == '0')
                p++;
        else
                while (digit(p, end))
                        p++;
        if (p < end && *p == '.') {
                if (!digit(++p, end))
                        return NULL;
                while (digit(p, end))
                        p++;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                if (!digit(p, end))
                        return NULL;
                while (digit(p, end))
                        p++;
        }
        return p;
}

static const char *word(const char *p, const char *end, const char *w)
{
        size_t n = strlen(w);
        return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

static const char *value(const char *p, const char *end, int depth,
                         struct am_jobj *o);

/* An object or array at p (fields of the top level go into o). */
static const char *compound(const char *p, const char *end, int depth,
                            struct am_jobj *o)
{
        char close = *p == '{' ? '}' : ']';

        if (depth > DEPTH_MAX)
                return NULL;
        p = ws(p + 1, end);
        if (p < end && *p == close)
                return p + 1;
        for (;;) {
                const char *k = NULL, *v;
                size_t klen = 0;
                if (close == '}') {
                        const char *q;
                        if (p >= end || *p != '"' || !(q = string(p, end)))
                                return NULL;
                        k = p + 1;
                        klen = (size_t)(q - p - 2);
                        p = ws(q, end);
                        if (p >= end || *p != ':')
                                return NULL;
                        p = ws(p + 1, end);
                }
                v = p;
                p = value(p, end, depth + 1, NULL);
                if (!p)
                        return NULL;
                if (o && k && o->n < AM_JFIELDS) {
                        struct am_jfield *f = &o->f[o->n++];
                        f->key = k;
                        f->klen = klen;
                        f->val = v;
                        f->vlen = (size_t)(p - v);
                }
                p = ws(p, end);
                if (p < end && *p == ',') {
                        p = ws(p + 1, end);
                        continue;
                }
                if (p < end && *p == close)
                        return p + 1;
                return NULL;
        }
}

static const char *value(const char *p, const char *end, int depth,
                         struct am_jobj *o)
{
        if (p >= end)
                return NULL;
        switch (*p) {
        case '"':
                return string(p, end);
        case '{':
        case '[':
                return compound(p, end, depth, o);
        case 't':
                return word(p, end, "true");
        case 'f':
                return word(p, end, "false");
        case 'n':
                return word(p, end, "null");
        default:
                return number(p, end);
        }
}

const unsigned char am_json_plain[256] = {
        [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1, [0x7f ... 0xff] = 2,
};

int am_json_object(const char *s, size_t n, struct am_jobj *o)
{
        const char *end = s + n, *p = ws(s, end);

        o->n = 0;
        if (p >= end || *p != '{')
                return -EPROTO;
        p = compound(p, end, 0, o);
        if (!p || ws(p, end) != end)
                return -EPROTO;
        return 0;
}

const struct am_jfield *am_json_get(const struct am_jobj *o, const char *key)
{
        size_t n = strlen(key);

        for (int i = 0; i < o->n; i++)
                if (o->f[i].klen == n && memcmp(o->f[i].key, key, n) == 0)
                        return &o->f[i];
        return NULL;
}

char am_json_kind(const struct am_jfield *f)
{
        switch (f->val[0]) {
        case '"': return 's';
        case '{': return 'o';
        case '[': return 'a';
        case 't': return 't';
        case 'f': return 'f';
        case 'n': return 'z';
        default:  return 'n';
        }
}

int am_json_u64(const struct am_jfield *f, uint64_t max, uint64_t *v)
{
        uint64_t x = 0;

        if (!f || f->vlen == 0 || f->vlen > 20)
                return -EPROTO;
        for (size_t i = 0; i < f->vlen; i++) {
                unsigned d = (unsigned)(f->val[i] - '0');
                /* 19 digits cannot overflow 64 bits: only a 20th is checked */
                if (d > 9 || (i == 19 && x > (UINT64_MAX - d) / 10))
                        return -EPROTO;
                x = x * 10 + d;
        }
        if (x > max)
                return -EPROTO;
        *v = x;
        return 0;
}

int am_json_bool(const struct am_jfield *f, int *v)
{
        if (!f)
                return -EPROTO;
        if (am_json_kind(f) == 't')
                *v = 1;
        else if (am_json_kind(f) == 'f')
                *v = 0;
        else
                return -EPROTO;
        return 0;
}

/* Append code point cp as UTF-8. */
static int put_utf8(char *buf, size_t len, size_t *o, unsigned cp)
{
        unsigned char b[4];
        size_t n;

        if (cp < 0x80) {
                b[0] = (unsigned char)cp;
                n = 1;
        } else if (cp < 0x800) {
                b[0] = (unsigned char)(0xc0 | cp >> 6);
                b[1] = (unsigned char)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                b[0] = (unsigned char)(0xe0 | cp >> 12);
                b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                b[2] = (unsigned char)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                b[0] = (unsigned char)(0xf0 | cp >> 18);
                b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                b[3] = (unsigned char)(0x80 | (cp & 0x3f));
                n = 4;
        }
        if (*o + n >= len)
                return -ERANGE;
        memcpy(buf + *o, b, n);
        *o += n;
        return 0;
}

static unsigned hex4(const char *p)
{
        return (unsigned)(am_hex_digit(p[0]) << 12 | am_hex_digit(p[1]) << 8 | am_hex_digit(p[2]) << 4 | am_hex_digit(p[3]));
}

int am_json_str(const struct am_jfield *f, char *buf, size_t len)
{
        const char *p, *end;
        size_t o = 0;

        if (!f || am_json_kind(f) != 's' || len == 0)
                return -EPROTO;
        /* the scanner checked the escapes */
        for (p = f->val + 1, end = f->val + f->vlen - 1; p < end; p++) {
                char c = *p;
                if (c == '\\') {
                        c = *++p;
                        switch (c) {
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        case 'u': {
                                unsigned cp = hex4(p + 1);
                                p += 4;
                                if (cp >= 0xd800 && cp < 0xdc00 && end - p > 6 &&
                                    p[1] == '\\' && p[2] == 'u') {
                                        unsigned lo = hex4(p + 3);
                                        if (lo >= 0xdc00 && lo < 0xe000) {
                                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                                p += 6;
                                        }
                                }
                                if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
                                        return -EPROTO;
                                if (put_utf8(buf, len, &o, cp) < 0)
                                        return -ERANGE;
                                continue;
                        }
                        default: break;         /* " \ / */
                        }
                }
                if (o + 1 >= len)
                        return -ERANGE;
                buf[o++] = c;
        }
        buf[o] = 0;
        return (int)o;
}

int am_json_next(const struct am_jfield *arr, size_t *pos, const char **elem,
                 size_t *elen)
{
        const char *end = arr->val + arr->vlen - 1, *p, *q;   /* before ']' */

        if (am_json_kind(arr) != 'a')
                return -EPROTO;
        p = ws(arr->val + (*pos ? *pos : 1), end);
        if (*pos && p < end && *p == ',')
                p = ws(p + 1, end);
        if (p >= end)
                return 0;
        q = value(p, end, 1, NULL);
        if (!q)
                return -EPROTO;
        *elem = p;
        *elen = (size_t)(q - p);
        *pos = (size_t)(q - arr->val);
        return 1;
}

/* ---------------------------------------------------------------- writing */

/* Room for n more bytes and the NUL, or overflow set. */
static int room(struct am_jw *w, size_t n)
{
        size_t cap;
        char *b;

        if (w->overflow)
                return 0;
        if (n < w->cap && w->len < w->cap - n)
                return 1;
        if (w->fixed || n > SIZE_MAX / 4 - w->len) {
                w->overflow = 1;
                return 0;
        }
        cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n + 1)
                cap *= 2;
        b = realloc(w->buf, cap);
        if (!b) {
                w->overflow = 1;
                return 0;
        }
        w->buf = b;
        w->cap = cap;
        return 1;
}

/* am_jw_raw() when the text must grow first (or has overflowed) */
void am_jw_raw_grow(struct am_jw *w, const char *s, size_t n)
{
        if (!room(w, n))
                return;
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = 0;
}

void am_jw_printf(struct am_jw *w, const char *fmt, ...)
{
        char tmp[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n < 0) {
                w->overflow = 1;
        } else if ((size_t)n < sizeof(tmp)) {
                am_jw_raw(w, tmp, (size_t)n);
        } else if (room(w, (size_t)n)) {
                /* too long for tmp: again, straight into the text */
                va_start(ap, fmt);
                vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
                va_end(ap);
                w->len += (size_t)n;
        }
}

void am_jw_string(struct am_jw *w, const char *s)
{
        static const char hexd[] = "0123456789abcdef";

        am_jw_raw(w, "\"", 1);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                const unsigned char *q = p;
                while (am_json_plain[*q])
                        q++;
                if (q != p) {
                        am_jw_raw(w, (const char *)p, (size_t)(q - p));
                        p = q;
                        if (!*p)
                                break;
                }
                if (*p == '"' || *p == '\\') {
                        char e[2] = { '\\', (char)*p };
                        am_jw_raw(w, e, 2);
                } else {
                        char e[6] = { '\\', 'u', '0', '0', hexd[*p >> 4], hexd[*p & 15] };
                        am_jw_raw(w, e, 6);
                }
        }
        am_jw_raw(w, "\"", 1);
}

void am_jw_key(struct am_jw *w, const char *key)
{
        am_jw_raw(w, ",", 1);
        am_jw_string(w, key);
        am_jw_raw(w, ":", 1);
}

void am_jw_uint(struct am_jw *w, uint64_t v)
{
        char d[24], *p = d + sizeof(d);

        do {
                *--p = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        am_jw_raw(w, p, (size_t)(d + sizeof(d) - p));
}

void am_jw_reset(struct am_jw *w)
{
        w->len = 0;
        w->overflow = 0;
        if (room(w, 0))
                w->buf[0] = 0;
}

void am_jw_free(struct am_jw *w)
{
        if (!w->fixed)
                free(w->buf);
        w->buf = NULL;
        w->cap = w->len = 0;
}

void am_jw_begin(struct am_jw *w, char *buf, size_t cap, const char *op)
{
        w->buf = buf;
        w->cap = cap;
        w->len = 0;
        w->overflow = 0;
        w->fixed = 1;
        am_jw_raw(w, "{\"v\":1", 6);
        am_jw_str(w, "op", op);
}

void am_jw_str(struct am_jw *w, const char *key, const char *val)
{
        am_jw_key(w, key);
        am_jw_string(w, val);
}

void am_jw_u64(struct am_jw *w, const char *key, uint64_t val)
{
        am_jw_key(w, key);
        am_jw_uint(w, val);
}

void am_jw_bool(struct am_jw *w, const char *key, int val)
{
        am_jw_key(w, key);
        am_jw_raw(w, val ? "true" : "false", val ? 4 : 5);
}

int am_jw_end(struct am_jw *w)
{
        am_jw_raw(w, "}", 1);
        if (w->overflow)
                return -EMSGSIZE;
        return (int)w->len;
}
