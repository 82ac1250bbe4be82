/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/) and the tests. Not installed, not exported from libashmem.so.
 *
 * libashmem's JSON: a validating scanner for the broker's replies and
 * requests (one object whose top-level fields are located, not copied) and
 * a writer, for the client's requests (into a caller's buffer: an attach is
 * on the fast path of every client, and allocates nothing) and the
 * broker's replies (into a buffer that grows).
 */
#ifndef ASHMEM_LIB_JSON_H
#define ASHMEM_LIB_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A top-level field: its key (raw, as between the quotes) and its value
 * (the JSON text of it). */
struct am_jfield {
        const char *key;
        size_t klen;
        const char *val;
        size_t vlen;
};

#define AM_JFIELDS 48

struct am_jobj {
        struct am_jfield f[AM_JFIELDS];
        int n;                  /* fields kept (later ones are checked, not kept) */
};

/* What a byte is in a JSON string: 0 if it must be escaped (a control
 * byte, '"', '\\'), 1 printable ASCII as it stands, 2 any other byte as
 * it stands (0x7f and up). */
extern const unsigned char am_json_plain[256];

/* Check that s[0..n) is exactly one JSON object (white space around it
 * allowed) and locate its fields. 0 or -EPROTO. */
int am_json_object(const char *s, size_t n, struct am_jobj *o);

/* The first field named key, or NULL. */
const struct am_jfield *am_json_get(const struct am_jobj *o, const char *key);

/* The kind of a value: 's' string, 'n' number, 't' true, 'f' false,
 * 'z' null, 'o' object, 'a' array. */
char am_json_kind(const struct am_jfield *f);

/* A non-negative integer no larger than max (plain digits). 0 or -EPROTO. */
int am_json_u64(const struct am_jfield *f, uint64_t max, uint64_t *v);
/* true or false. 0 or -EPROTO. */
int am_json_bool(const struct am_jfield *f, int *v);
/* A string, unescaped into buf (NUL-terminated). Its length, -EPROTO if f is
 * no string, -ERANGE if it does not fit. */
int am_json_str(const struct am_jfield *f, char *buf, size_t len);

/* The elements of an array field: start with *pos = 0; 1 and the element's
 * text, or 0 at the end. */
int am_json_next(const struct am_jfield *arr, size_t *pos, const char **elem,
                 size_t *elen);

/* JSON text being written: into a caller's buffer of fixed size (a
 * request, begun by am_jw_begin()), or into one that grows (malloc) as
 * needed: a writer all zero (= { 0 }) is an empty growing one. The text is
 * NUL-terminated all along. A string is escaped the same way wherever it
 * goes, keys included: '"' and '\\' with a backslash, control characters
 * as \u00xx. Text that does not fit (or memory that runs out) sets
 * overflow, after which nothing more is written. */
struct am_jw {
        char *buf;
        size_t cap, len;
        int overflow;
        int fixed;              /* buf is the caller's: never grown or freed */
};

/* Start a request in buf (cap bytes): {"v":1,"op":"OP" */
void am_jw_begin(struct am_jw *w, char *buf, size_t cap, const char *op);
/* ,"key":value */
void am_jw_str(struct am_jw *w, const char *key, const char *val);
void am_jw_u64(struct am_jw *w, const char *key, uint64_t val);
void am_jw_bool(struct am_jw *w, const char *key, int val);
/* Close the object; the text's length, or -EMSGSIZE. */
int am_jw_end(struct am_jw *w);

/* The pieces: n bytes as they are; a C string as it is; printf (the
 * caller writes valid JSON with it: numbers, fixed words); a C string as a
 * JSON string; ,"key": ; a number. */
void am_jw_raw_grow(struct am_jw *w, const char *s, size_t n);
static inline void am_jw_raw(struct am_jw *w, const char *s, size_t n)
{
        /* inline while there is room: replies are written piece by piece
         * on the broker's hot path */
        if (!w->overflow && n < w->cap && w->len < w->cap - n) {
                memcpy(w->buf + w->len, s, n);
                w->len += n;
                w->buf[w->len] = 0;
                return;
        }
        am_jw_raw_grow(w, s, n);
}
static inline void am_jw_puts(struct am_jw *w, const char *s)
{
        am_jw_raw(w, s, strlen(s));
}
void am_jw_printf(struct am_jw *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void am_jw_string(struct am_jw *w, const char *s);
void am_jw_key(struct am_jw *w, const char *key);
void am_jw_uint(struct am_jw *w, uint64_t v);

/* Empty the text (and clear overflow), keeping the buffer. */
void am_jw_reset(struct am_jw *w);
/* Free a growing writer's buffer. */
void am_jw_free(struct am_jw *w);

#endif
