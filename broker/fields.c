/* SPDX-License-Identifier: MIT */
/*
 * The fields of a request: located by the JSON scanner, checked and
 * decoded here (strings into the request's arena), each failure an error
 * reply that names the field.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "internal.h"
#include "lib/internal/unicode.h"

int field_str(struct req *q, const char *k, int required,
              const char **out, struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);
        size_t room = sizeof(q->arena) - q->used;
        int n;

        *out = NULL;
        if (!f)
                return required ? FAIL(rep, EINVAL, "missing field \"%s\"", k) : 0;
        if (am_json_kind(f) != 's')
                return FAIL(rep, EINVAL, "field \"%s\" must be a string", k);
        if (room > 1024)
                room = 1024;
        if (f->vlen - 2 < room && !memchr(f->val + 1, '\\', f->vlen - 2)) {
                /* nothing escaped (the scanner let no control character
                 * through): the text is the string */
                n = (int)(f->vlen - 2);
                memcpy(q->arena + q->used, f->val + 1, (size_t)n);
                q->arena[q->used + (size_t)n] = 0;
        } else {
                n = am_json_str(f, q->arena + q->used, room);
        }
        if (n == -ERANGE)
                return FAIL(rep, EINVAL, "field \"%s\" is too long", k);
        if (n < 0)
                return FAIL(rep, EINVAL, "field \"%s\" holds a NUL or a lone surrogate", k);
        *out = q->arena + q->used;
        q->used += (size_t)n + 1;
        return 1;
}

int field_uint(struct req *q, const char *k, int required,
               unsigned long long max, unsigned long long *out,
               struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);
        uint64_t v;

        if (!f)
                return required ? FAIL(rep, EINVAL, "missing field \"%s\"", k) : 0;
        if (am_json_u64(f, UINT64_MAX, &v) < 0)
                return FAIL(rep, EINVAL, "field \"%s\" must be a non-negative integer", k);
        if (v > max)
                return FAIL(rep, EINVAL, "field \"%s\" is too large", k);
        *out = v;
        return 1;
}

int field_bool(struct req *q, const char *k, int *out, struct reply *rep)
{
        const struct am_jfield *f = am_json_get(&q->o, k);

        *out = 0;
        if (!f)
                return 0;
        if (am_json_bool(f, out) < 0)
                return FAIL(rep, EINVAL, "field \"%s\" must be true or false", k);
        return 1;
}

int field_mode(struct req *req, unsigned *out, struct reply *rep)
{
        const char *s;
        unsigned m = 0;
        int r = field_str(req, "mode", 0, &s, rep);

        *out = DEFAULT_MODE;
        if (r <= 0)
                return r;
        if (!*s || strlen(s) > 4)
                return FAIL(rep, EINVAL, "field \"mode\" must be an octal string like \"0640\"");
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '7')
                        return FAIL(rep, EINVAL, "field \"mode\" must be an octal string like \"0640\"");
                m = m * 8 + (unsigned)(*p - '0');
        }
        if (m > 0777)
                return FAIL(rep, EINVAL, "mode %s: only permission bits (0777) are allowed", s);
        *out = m;
        return 1;
}

int field_prot(struct req *req, int *out, struct reply *rep)
{
        const char *s;
        int r = field_str(req, "prot", 0, &s, rep), m = 0;

        *out = PROT_READ | PROT_WRITE | PROT_EXEC;
        if (r <= 0)
                return r;
        for (const char *p = s; *p; p++) {
                int bit = *p == 'r' ? PROT_READ : *p == 'w' ? PROT_WRITE :
                          *p == 'x' ? PROT_EXEC : 0;
                if (!bit || (m & bit))
                        return FAIL(rep, EINVAL, "field \"prot\" must be letters r, w, x (like \"rw\")");
                m |= bit;
        }
        *out = m;
        return 1;
}

/* A name: 1..255 bytes of UTF-8 without control characters, not beginning
 * or ending with white space, with no invisible or look-alike character.
 * NULL, or what is wrong with it (in a buffer of the main thread's). */
static const char *bad_name(const char *s)
{
        static char why[96];
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);

        if (n == 0 || n >= ASHMEM_NAME_LEN)
                return "a name is 1 to 255 bytes";
        while (*p) {
                unsigned c = *p, cp = c;
                int k = 0;
                if (c < 0x20 || c == 0x7f)
                        return "a name may not hold control characters";
                if (c < 0x80)
                        k = 0;
                else if (c >= 0xc2 && c <= 0xdf)
                        k = 1;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3;
                else
                        return "a name must be UTF-8";
                if (k) {
                        cp = c & (0x3fu >> k);
                        for (int i = 1; i <= k; i++) {
                                if ((p[i] & 0xc0) != 0x80)
                                        return "a name must be UTF-8";
                                cp = cp << 6 | (p[i] & 0x3fu);
                        }
                        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
                                return "a name must be UTF-8";
                        if (cp >= 0x80 && cp < 0xa0)
                                return "a name may not hold control characters";
                }
                /* so that two names that look alike are alike */
                if (am_look_alike(cp)) {
                        snprintf(why, sizeof(why), "a name may not hold U+%04X, an invisible, "
                                 "blank or bidirectional format character", cp);
                        return why;
                }
                p += k + 1;
        }
        if (s[0] == ' ' || s[n - 1] == ' ')
                return "a name may not begin or end with white space";
        return NULL;
}

int field_name(struct req *req, const char *k, int required,
               const char **out, struct reply *rep)
{
        int r = field_str(req, k, required, out, rep);
        const char *why;

        if (r > 0 && (why = bad_name(*out)))
                return FAIL(rep, EINVAL, "field \"%s\": %s", k, why);
        return r;
}

