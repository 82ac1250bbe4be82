/* SPDX-License-Identifier: MIT */
/*
 * Fuzz ashmemctl's argument parsers (cli/parse.c) against reference
 * parsers written here from the contract in cli/parse.h, with 128-bit
 * arithmetic where the real ones must guard against overflow:
 *
 *   - sizes and offsets: accepted exactly when the reference accepts,
 *     with the same value, never above SIZE_MAX, a size never 0; the
 *     value printed back (decimal, hex, with the largest binary unit that
 *     divides it) parses to the same value; format_size() prints it
 *     within rounding, and what it prints parses back;
 *   - plain integers under a limit (from 0 to UINT64_MAX);
 *   - names, protections, modes, types, values and increments of every
 *     type, each printed back and parsed again where there is a printer;
 *   - every rejection writes a message (at most PARSE_ERR_LEN bytes).
 *
 * Input: byte 0 picks the limit of parse_uint() and the type of
 * parse_value()/parse_delta(); the rest is the text (up to its first NUL).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../cli/parse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef unsigned __int128 u128;

/* A parser failed: it said why. */
static void rejected(const char *err)
{
        size_t n = strnlen(err, PARSE_ERR_LEN);
        assert(n > 0 && n < PARSE_ERR_LEN);
}

/* ---------------------------------------------------------------- numbers */

static int dec(char c)
{
        return c >= '0' && c <= '9' ? c - '0' : -1;
}

static int hex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Digits at *p: decimal, or hex after 0x/0X when a hex digit follows.
 * The value, saturated at 2^64 (above any limit, and times a unit still
 * within 128 bits); -1 if there are no digits. */
static int ref_digits(const char **p, u128 *v)
{
        const char *s = *p;
        int base = 10, n = 0;
        u128 x = 0, cap = (u128)1 << 64;

        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hex(s[2]) >= 0) {
                base = 16;
                s += 2;
        }
        for (;; s++, n++) {
                int d = base == 16 ? hex(*s) : dec(*s);
                if (d < 0)
                        break;
                x = x * (u128)base + (u128)d;
                if (x > cap)
                        x = cap;
        }
        *p = s;
        *v = x;
        return n ? 0 : -1;
}

static const struct { const char *name; uint64_t mult; } ref_units[] = {
        { "", 1 }, { "B", 1 },
        { "K", 1024 }, { "k", 1024 }, { "KiB", 1024 },
        { "M", 1024 * 1024 }, { "m", 1024 * 1024 }, { "MiB", 1024 * 1024 },
        { "G", 1024ull * 1024 * 1024 }, { "g", 1024ull * 1024 * 1024 },
        { "GiB", 1024ull * 1024 * 1024 },
        { "T", 1024ull * 1024 * 1024 * 1024 }, { "t", 1024ull * 1024 * 1024 * 1024 },
        { "TiB", 1024ull * 1024 * 1024 * 1024 },
        { "KB", 1000 }, { "kB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
        { "TB", 1000000000000ull },
        { "P", 1ull << 50 }, { "p", 1ull << 50 }, { "PiB", 1ull << 50 },
        { "E", 1ull << 60 }, { "e", 1ull << 60 }, { "EiB", 1ull << 60 },
        { "PB", 1000000000000000ull }, { "EB", 1000000000000000000ull },
};

/* The reference byte count: 0 and the value, or -1. A decimal fraction
 * (1 to 18 digits, not after hex, only with a unit above a byte) adds
 * fraction * unit rounded up. */
static int ref_bytes(const char *s, int allow_zero, uint64_t *ret)
{
        const char *p = s;
        u128 v, f = 0, scale = 1;
        int nf = 0, hexed = s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hex(s[2]) >= 0;

        if (dec(*s) < 0 || ref_digits(&p, &v) < 0)
                return -1;
        if (*p == '.' && !hexed) {
                for (p++; dec(*p) >= 0; p++, nf++) {
                        f = f * 10 + (u128)dec(*p);
                        scale *= 10;
                }
                if (nf == 0 || nf > 18)
                        return -1;
        }
        for (size_t i = 0; i < sizeof(ref_units) / sizeof(ref_units[0]); i++) {
                if (strcmp(p, ref_units[i].name) != 0)
                        continue;
                if (nf && ref_units[i].mult == 1)
                        return -1;
                v = v * ref_units[i].mult + (f * ref_units[i].mult + scale - 1) / scale;
                if (v > SIZE_MAX || (v == 0 && !allow_zero))
                        return -1;
                *ret = (uint64_t)v;
                return 0;
        }
        return -1;
}

/* parse_size/parse_offset agree with the reference; what they accept
 * prints back to the same value. */
static void check_bytes(const char *s)
{
        static const char *const bin[] = { "K", "M", "G", "T" };
        char err[PARSE_ERR_LEN], buf[64];
        for (int allow_zero = 0; allow_zero < 2; allow_zero++) {
                uint64_t v = 0, w = 0, again;
                int r, want;

                memset(err, 0, sizeof(err));
                r = allow_zero ? parse_offset(s, "offset", &v, err)
                               : parse_size(s, "size", &v, err);
                want = ref_bytes(s, allow_zero, &w);
                assert(r == want);
                if (r < 0) {
                        rejected(err);
                        assert(strstr(err, allow_zero ? "offset" : "size"));
                        continue;
                }
                assert(v == w && v <= SIZE_MAX && (allow_zero || v > 0));
                snprintf(buf, sizeof(buf), "%" PRIu64, v);
                assert(parse_offset(buf, "offset", &again, err) == 0 && again == v);
                snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
                assert(parse_offset(buf, "offset", &again, err) == 0 && again == v);
                for (int k = 4; k >= 1; k--) {
                        uint64_t unit = 1ull << (10 * k);
                        if (v && v % unit == 0) {
                                snprintf(buf, sizeof(buf), "%" PRIu64 "%s", v / unit, bin[k - 1]);
                                assert(parse_size(buf, "size", &again, err) == 0 && again == v);
                                break;
                        }
                }
        }
}

/* format_size(): "NB" under 1 KiB, else N[.D] and a unit letter, within
 * half a tenth of the unit. */
static void check_format_size(uint64_t bytes)
{
        static const char suffix[] = "BKMGTPE";
        char buf[32], *end;
        const char *u;
        long double shown, unit = 1;
        size_t n;

        format_size(bytes, buf, sizeof(buf));
        n = strlen(buf);
        assert(n >= 2 && n <= 8);
        u = strchr(suffix, buf[n - 1]);
        assert(u && *u);
        if (*u == 'B') {
                assert(strtoull(buf, &end, 10) == bytes && end == buf + n - 1);
                return;
        }
        for (const char *x = suffix; x < u; x++)
                unit *= 1024;
        shown = strtold(buf, &end);
        assert(end == buf + n - 1);
        assert(shown >= 1 && shown < 1024);
        shown *= unit;
        assert(shown - (long double)bytes <= unit / 20 + 1 &&
               (long double)bytes - shown <= unit / 20 + 1);
        /* and it reads back, as an offset (0B too) */
        {
                char err[PARSE_ERR_LEN];
                uint64_t again;
                if (bytes < (1ull << 60) * 15)
                        assert(parse_offset(buf, "offset", &again, err) == 0);
        }
}

static void check_uint(const char *s, uint8_t pick)
{
        static const uint64_t limits[] = {
                0, 1, 5, 8, 9, 10, 11, 99, 100, 253, 255, 65536, 1u << 20,
                INT32_MAX, UINT32_MAX, INT64_MAX, UINT64_MAX - 1, UINT64_MAX,
        };
        uint64_t max = limits[pick % (sizeof(limits) / sizeof(limits[0]))], v = 0;
        char err[PARSE_ERR_LEN] = "";
        u128 x = 0;
        int want = *s ? 0 : -1;

        for (const char *p = s; *p && want == 0; p++) {
                if (dec(*p) < 0)
                        want = -1;
                else if ((x = x * 10 + (u128)dec(*p)) > max)
                        want = -1;
        }
        assert(parse_uint(s, "count", max, &v, err) == want);
        if (want < 0)
                rejected(err);
        else
                assert(v == (uint64_t)x && v <= max);
}

/* ---------------------------------------------------------------- values */

/* Sign and magnitude: 0, or -1 if s is no integer. */
static int ref_int(const char *s, int *neg, u128 *mag)
{
        const char *p = s;

        *neg = *p == '-';
        if (*p == '-' || *p == '+')
                p++;
        if (dec(*p) < 0 || ref_digits(&p, mag) < 0)
                return -1;
        return *p ? -1 : 0;
}

static void check_values(const char *s, uint8_t pick)
{
        const struct vtype *t = &vtypes[pick % 9];
        char err[PARSE_ERR_LEN], buf[32];
        u128 mag = 0, max;
        uint64_t v = 0, again = 0;
        int64_t d = 0;
        int neg = 0, ok, r;

        assert(t->name);
        memset(err, 0, sizeof(err));
        r = parse_value(t, s, &v, err);
        if (t->size == 0) {
                assert(r < 0);
                rejected(err);
                memset(err, 0, sizeof(err));
                assert(parse_delta(t, s, &d, err) < 0);
                rejected(err);
                return;
        }
        max = t->is_signed ? ((u128)1 << (t->size * 8 - 1)) - 1 : ((u128)1 << (t->size * 8)) - 1;
        ok = ref_int(s, &neg, &mag) == 0 &&
             (neg ? (t->is_signed ? mag <= max + 1 : mag == 0) : mag <= max);
        assert((r == 0) == ok);
        if (!ok) {
                rejected(err);
        } else {
                uint64_t bits = neg ? (uint64_t)0 - (uint64_t)mag : (uint64_t)mag;
                if (t->size < 8)
                        bits &= (1ull << (t->size * 8)) - 1;
                assert(v == bits);
                format_value(t, v, buf, sizeof(buf));
                assert(parse_value(t, buf, &again, err) == 0 && again == v);
        }

        /* an increment: |delta| up to the type's largest value (and one
         * more below zero for a signed type), within int64_t */
        memset(err, 0, sizeof(err));
        r = parse_delta(t, s, &d, err);
        if (max > INT64_MAX)
                max = INT64_MAX;
        ok = ref_int(s, &neg, &mag) == 0 && mag <= max + (neg && t->is_signed ? 1 : 0);
        assert((r == 0) == ok);
        if (!ok) {
                rejected(err);
        } else {
                assert(neg ? (u128)(-(__int128)d) == mag : (u128)d == mag);
        }
}

/* ---------------------------------------------------------------- text */

/* A name: 1..255 bytes of UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF), no C0 or C1 control character, no DEL, no '/'. */
static int ref_name(const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);

        if (n == 0 || n > 255)
                return -1;
        while (*p) {
                unsigned c = *p, cp, need, min;
                if (c == '/' || c < 0x20 || c == 0x7f)
                        return -1;
                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc0 && c < 0xe0) {
                        need = 1; min = 0x80; cp = c & 0x1f;
                } else if (c >= 0xe0 && c < 0xf0) {
                        need = 2; min = 0x800; cp = c & 0x0f;
                } else if (c >= 0xf0 && c < 0xf8) {
                        need = 3; min = 0x10000; cp = c & 0x07;
                } else {
                        return -1;
                }
                for (unsigned i = 1; i <= need; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return -1;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000) ||
                    (cp >= 0x80 && cp < 0xa0))
                        return -1;
                p += need + 1;
        }
        return 0;
}

static void check_text(const char *s)
{
        static const char *const prot_words[] = {
                "r", "rw", "rx", "rwx", "r--", "rw-", "r-x", "none", "---",
        };
        static const char *const types[] = {
                "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "str",
        };
        char err[PARSE_ERR_LEN], buf[16];
        const struct vtype *t = NULL;
        int prot = -1, want, known = 0;
        unsigned mode = 0, m = 0;

        memset(err, 0, sizeof(err));
        want = ref_name(s);
        assert(parse_name(s, err) == want);
        if (want < 0)
                rejected(err);

        for (size_t i = 0; i < sizeof(prot_words) / sizeof(prot_words[0]); i++)
                known |= strcmp(s, prot_words[i]) == 0;
        memset(err, 0, sizeof(err));
        assert((parse_prot(s, &prot, err) == 0) == known);
        if (known) {
                int again = -1;
                assert((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) == 0);
                assert(prot == 0 || (prot & PROT_READ));
                assert(parse_prot(format_prot(prot, buf), &again, err) == 0 && again == prot);
        } else {
                rejected(err);
        }

        want = *s && strlen(s) <= 4 && strspn(s, "01234567") == strlen(s) ? 0 : -1;
        for (const char *p = s; want == 0 && *p; p++)
                m = m * 8 + (unsigned)(*p - '0');
        if (m > 0777)
                want = -1;
        memset(err, 0, sizeof(err));
        assert(parse_mode(s, &mode, err) == want);
        if (want == 0) {
                unsigned again = 1000;
                assert(mode == m && mode <= 0777);
                snprintf(buf, sizeof(buf), "%04o", mode);
                assert(parse_mode(buf, &again, err) == 0 && again == mode);
        } else {
                rejected(err);
        }

        known = 0;
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
                known |= strcmp(s, types[i]) == 0;
        memset(err, 0, sizeof(err));
        assert((parse_type(s, &t, err) == 0) == known);
        if (known)
                assert(t && strcmp(t->name, s) == 0);
        else
                rejected(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char s[1024];
        size_t n;
        uint64_t v;
        char err[PARSE_ERR_LEN];

        if (size < 1)
                return 0;
        n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
        memcpy(s, data + 1, n);
        s[n] = 0;

        check_bytes(s);
        check_uint(s, data[0]);
        check_values(s, data[0]);
        check_text(s);
        /* what parses as an offset, and the raw bytes of the input, print */
        if (parse_offset(s, "offset", &v, err) == 0)
                check_format_size(v);
        if (size >= 9) {
                memcpy(&v, data + 1, sizeof(v));
                check_format_size(v);
        }
        return 0;
}
