/* SPDX-License-Identifier: MIT */
/* Argument parsers: every bad value gets a message that names it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "parse.h"
#include "lib/internal/text.h"

#define ERR(...) (snprintf(err, PARSE_ERR_LEN, __VA_ARGS__), -1)

static int is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Digits at *p (decimal, or hex after 0x) into *ret; advances *p.
 * 0 ok, -1 no digits, -2 overflow. */
static int scan_number(const char **p, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;
        int base = 10, n = 0;

        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && am_hex_digit(s[2]) >= 0) {
                base = 16;
                s += 2;
        }
        for (;; s++, n++) {
                int d = base == 16 ? am_hex_digit(*s) : (is_digit(*s) ? *s - '0' : -1);
                if (d < 0)
                        break;
                if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) {
                        while (base == 16 ? am_hex_digit(*s) >= 0 : is_digit(*s))
                                s++;
                        *p = s;
                        return -2;
                }
                v = v * (uint64_t)base + (uint64_t)d;
        }
        *p = s;
        if (n == 0)
                return -1;
        *ret = v;
        return 0;
}

struct unit {
        const char *name;
        uint64_t mult;
};

static const struct unit units[] = {
        { "", 1 }, { "B", 1 },
        { "K", 1ULL << 10 }, { "k", 1ULL << 10 }, { "KiB", 1ULL << 10 },
        { "M", 1ULL << 20 }, { "m", 1ULL << 20 }, { "MiB", 1ULL << 20 },
        { "G", 1ULL << 30 }, { "g", 1ULL << 30 }, { "GiB", 1ULL << 30 },
        { "T", 1ULL << 40 }, { "t", 1ULL << 40 }, { "TiB", 1ULL << 40 },
        { "P", 1ULL << 50 }, { "p", 1ULL << 50 }, { "PiB", 1ULL << 50 },
        { "E", 1ULL << 60 }, { "e", 1ULL << 60 }, { "EiB", 1ULL << 60 },
        { "KB", 1000ULL }, { "kB", 1000ULL },
        { "MB", 1000000ULL }, { "GB", 1000000000ULL }, { "TB", 1000000000000ULL },
        { "PB", 1000000000000000ULL }, { "EB", 1000000000000000000ULL },
        { NULL, 0 }
};

/* Digits after a decimal point, at most FRAC_MAX of them (so that
 * fraction * unit fits in 128 bits: 10^18 * 2^60 < 2^127). */
#define FRAC_MAX 18

/*
 * DIGITS[.DIGITS][UNIT]: the value is DIGITS.DIGITS times the unit,
 * exact when that is a whole number of bytes, else rounded up to the next
 * byte (a size is never less than what was typed). A fraction needs a
 * unit larger than a byte; hex takes none.
 */
static int parse_bytes(const char *s, const char *what, int allow_zero,
                       uint64_t *ret, char *err)
{
        const char *p = s, *frac = NULL;
        uint64_t v = 0, fv = 0, scale = 1;
        int r, hex, nfrac = 0;

        if (!s || !*s)
                return ERR("invalid %s '': empty", what);
        if (*s == '-')
                return ERR("invalid %s '%s': negative", what, s);
        if (!is_digit(*s))
                return ERR("invalid %s '%s': not a number", what, s);
        hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
        r = scan_number(&p, &v);
        if (r == -2)
                return ERR("invalid %s '%s': too large", what, s);
        if (*p == '.' && !hex) {
                frac = ++p;
                while (is_digit(*p)) {
                        if (++nfrac > FRAC_MAX)
                                return ERR("invalid %s '%s': more than %d digits after the decimal point",
                                           what, s, FRAC_MAX);
                        fv = fv * 10 + (uint64_t)(*p++ - '0');
                        scale *= 10;
                }
                if (nfrac == 0)
                        return ERR("invalid %s '%s': no digits after the decimal point", what, s);
        }
        for (const struct unit *u = units; u->name; u++) {
                unsigned __int128 total;
                if (strcmp(p, u->name) != 0)
                        continue;
                if (frac && u->mult == 1)
                        return ERR("invalid %s '%s': a fraction of a byte (give a unit, as in 1.5K)",
                                   what, s);
                /* the whole part, then the fraction rounded up */
                total = (unsigned __int128)v * u->mult +
                        ((unsigned __int128)fv * u->mult + scale - 1) / scale;
                if (total > UINT64_MAX || total > SIZE_MAX)
                        return ERR("invalid %s '%s': too large", what, s);
                if (total == 0 && !allow_zero)
                        return ERR("invalid %s '%s': must be greater than zero", what, s);
                *ret = (uint64_t)total;
                return 0;
        }
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
                return ERR("invalid %s '%s': unknown unit '%s' (use K, M, G, T, P, E, KiB..EiB or KB..EB)",
                           what, s, p);
        return ERR("invalid %s '%s': trailing characters '%s'", what, s, p);
}

int parse_size(const char *s, const char *what, uint64_t *ret, char *err)
{
        return parse_bytes(s, what ? what : "size", 0, ret, err);
}

int parse_offset(const char *s, const char *what, uint64_t *ret, char *err)
{
        return parse_bytes(s, what ? what : "offset", 1, ret, err);
}

int parse_uint(const char *s, const char *what, uint64_t max, uint64_t *ret,
               char *err)
{
        uint64_t v = 0;

        if (!s || !*s)
                return ERR("invalid %s '': empty", what);
        if (*s == '-')
                return ERR("invalid %s '%s': negative", what, s);
        for (const char *p = s; *p; p++) {
                uint64_t d = (uint64_t)(*p - '0');
                if (!is_digit(*p))
                        return ERR("invalid %s '%s': not a number", what, s);
                /* v * 10 + d <= max; max - d must not wrap (max < 9) */
                if (d > max || v > (max - d) / 10)
                        return ERR("invalid %s '%s': larger than %" PRIu64, what, s, max);
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s)
{
        unsigned c = s[0], n, min, cp;

        if (c < 0x80)
                return 1;
        if ((c & 0xe0) == 0xc0) {
                n = 2; min = 0x80; cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3; min = 0x800; cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4; min = 0x10000; cp = c & 0x07;
        } else {
                return 0;
        }
        for (unsigned i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        /* C1 control characters */
        if (cp >= 0x80 && cp < 0xa0)
                return 0;
        return n;
}

int parse_name(const char *s, char *err)
{
        size_t len;

        if (!s || !*s)
                return ERR("invalid name '': empty");
        len = strlen(s);
        if (len > 255)
                return ERR("invalid name '%.32s...': %zu bytes long (at most 255)", s, len);
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                size_t n;
                if (*p == '/')
                        return ERR("invalid name '%s': contains '/'", s);
                if (*p < 0x20 || *p == 0x7f)
                        return ERR("invalid name: contains the control character 0x%02x", *p);
                /* U+0080..U+009F: valid UTF-8, but control characters */
                if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
                        return ERR("invalid name: contains the control character U+%04X", p[1]);
                n = utf8_len(p);
                if (n == 0)
                        return ERR("invalid name: not valid UTF-8 text (byte 0x%02x)", *p);
                p += n;
        }
        return 0;
}

static const struct {
        const char *s;
        int mask;
} prots[] = {
        { "r", PROT_READ }, { "rw", PROT_READ | PROT_WRITE },
        { "rx", PROT_READ | PROT_EXEC }, { "rwx", PROT_READ | PROT_WRITE | PROT_EXEC },
        { "r--", PROT_READ }, { "rw-", PROT_READ | PROT_WRITE },
        { "r-x", PROT_READ | PROT_EXEC }, { "none", 0 }, { "---", 0 },
        { NULL, 0 }
};

int parse_prot(const char *s, int *ret, char *err)
{
        for (int i = 0; s && prots[i].s; i++) {
                if (strcmp(s, prots[i].s) == 0) {
                        *ret = prots[i].mask;
                        return 0;
                }
        }
        return ERR("invalid protection '%s': use r, rw, rx, rwx or none", s ? s : "");
}

const char *format_prot(int mask, char *buf)
{
        buf[0] = mask & PROT_READ ? 'r' : '-';
        buf[1] = mask & PROT_WRITE ? 'w' : '-';
        buf[2] = mask & PROT_EXEC ? 'x' : '-';
        buf[3] = 0;
        return buf;
}

int parse_mode(const char *s, unsigned *ret, char *err)
{
        unsigned v = 0;
        size_t len = s ? strlen(s) : 0;

        if (len == 0)
                return ERR("invalid mode '': empty");
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '7')
                        return ERR("invalid mode '%s': not an octal number like 0640", s);
                if (v <= 07777)
                        v = v * 8 + (unsigned)(*p - '0');
        }
        if (v > 07777)
                return ERR("invalid mode '%s': larger than 0777, the permission bits", s);
        if (v > 0777)
                return ERR("invalid mode '%s': the setuid, setgid and sticky bits (%05o) mean "
                           "nothing for a region; use the permission bits only, at most 0777",
                           s, v & 07000);
        if (len > 4)
                return ERR("invalid mode '%s': use three or four octal digits, like 0640", s);
        *ret = v;
        return 0;
}

const struct vtype vtypes[] = {
        { "u8", 1, 0 }, { "u16", 2, 0 }, { "u32", 4, 0 }, { "u64", 8, 0 },
        { "i8", 1, 1 }, { "i16", 2, 1 }, { "i32", 4, 1 }, { "i64", 8, 1 },
        { "str", 0, 0 },
        { NULL, 0, 0 }
};

int parse_type(const char *s, const struct vtype **ret, char *err)
{
        for (const struct vtype *t = vtypes; s && t->name; t++) {
                if (strcmp(s, t->name) == 0) {
                        *ret = t;
                        return 0;
                }
        }
        return ERR("invalid type '%s': use u8, u16, u32, u64, i8, i16, i32, i64 or str",
                   s ? s : "");
}

static uint64_t umax(const struct vtype *t)
{
        unsigned bits = t->size * 8 - (t->is_signed ? 1 : 0);
        return bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1;
}

/* Sign and magnitude of an integer of type t (not str: "type str
 * <no_str>"): 0 ok, else the error was written. */
static int scan_int(const char *s, const char *what, const struct vtype *t,
                    const char *no_str, int *neg, uint64_t *mag, char *err)
{
        const char *p = s;
        int r;

        if (t->size == 0)
                return ERR("type %s %s", t->name, no_str);
        if (!s || !*s)
                return ERR("invalid %s '': empty", what);
        *neg = *p == '-';
        if (*p == '-' || *p == '+')
                p++;
        if (!is_digit(*p))
                return ERR("invalid %s '%s': not a number", what, s);
        r = scan_number(&p, mag);
        if (r == -2)
                return ERR("invalid %s '%s': out of range for %s", what, s, t->name);
        if (*p)
                return ERR("invalid %s '%s': trailing characters '%s'", what, s, p);
        return 0;
}

int parse_value(const struct vtype *t, const char *s, uint64_t *ret, char *err)
{
        uint64_t mag, max = umax(t);
        int neg;

        if (scan_int(s, "value", t, "has no numeric value", &neg, &mag, err) < 0)
                return -1;
        if (neg && mag && !t->is_signed)
                return ERR("invalid value '%s': negative, but %s is unsigned", s, t->name);
        if (neg ? mag > max + 1 : mag > max)
                return ERR("invalid value '%s': out of range for %s", s, t->name);
        *ret = neg ? (uint64_t)0 - mag : mag;
        if (t->size < 8)
                *ret &= (1ULL << (t->size * 8)) - 1;
        return 0;
}

int parse_delta(const struct vtype *t, const char *s, int64_t *ret, char *err)
{
        uint64_t mag, max;
        int neg;

        if (scan_int(s, "increment", t, "cannot be incremented", &neg, &mag, err) < 0)
                return -1;
        /* |delta| up to the type's largest value (one more below zero for
         * a signed type), within int64_t */
        max = umax(t) < INT64_MAX ? umax(t) : INT64_MAX;
        if (mag > max + (neg && t->is_signed ? 1 : 0))
                return ERR("invalid increment '%s': out of range for %s", s, t->name);
        *ret = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        return 0;
}

void format_value(const struct vtype *t, uint64_t v, char *buf, size_t len)
{
        if (t->is_signed) {
                int64_t x;
                switch (t->size) {
                case 1: x = (int8_t)v; break;
                case 2: x = (int16_t)v; break;
                case 4: x = (int32_t)v; break;
                default: x = (int64_t)v; break;
                }
                snprintf(buf, len, "%" PRId64, x);
        } else {
                snprintf(buf, len, "%" PRIu64, v);
        }
}

void format_size(uint64_t bytes, char *buf, size_t len)
{
        static const char suffix[] = "BKMGTPE";
        uint64_t unit = 1, whole;
        int i = 0;

        while (bytes / unit >= 1024 && i < 6) {
                unit <<= 10;
                i++;
        }
        if (i == 0) {
                snprintf(buf, len, "%" PRIu64 "B", bytes);
                return;
        }
        whole = bytes / unit;
        {
                /* one decimal, rounded on the whole remainder (not on its
                 * last 10 bits: 3.450004E is 3.5E); none if it is .0.
                 * rem * 10 + unit / 2 < 2^64 for unit <= 2^60 */
                uint64_t tenths = (bytes % unit * 10 + unit / 2) / unit;
                if (tenths == 10) {
                        whole++;
                        tenths = 0;
                }
                if (whole >= 1024 && i < 6) {
                        whole = 1;
                        i++;
                }
                if (tenths)
                        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%c", whole, tenths, suffix[i]);
                else
                        snprintf(buf, len, "%" PRIu64 "%c", whole, suffix[i]);
        }
}

const char *format_utc(time_t t, char *buf, size_t len)
{
        /* days to a civil date (H. Hinnant's algorithm): the C library's
         * gmtime_r() would load the local time zone first, which a
         * command that shows no local time has no use for */
        long long days = (long long)t / 86400, secs = (long long)t % 86400;
        long long z, era, doe, yoe, y, doy, mp, d, m;

        if (secs < 0) {
                secs += 86400;
                days--;
        }
        z = days + 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        y = yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        d = doy - (153 * mp + 2) / 5 + 1;
        m = mp < 10 ? mp + 3 : mp - 9;
        y += m <= 2;
        if (y < 0 || y > 9999)
                return NULL;
        snprintf(buf, len, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", y, m, d,
                 secs / 3600, secs / 60 % 60, secs % 60);
        return buf;
}
