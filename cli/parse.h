/* SPDX-License-Identifier: MIT */
/*
 * ashmemctl's argument parsers: sizes and offsets, region names, value
 * types and values, protection strings, modes. They never print: a parser
 * returns 0, or -1 with a message naming the bad value in err (at most
 * PARSE_ERR_LEN bytes), which the command reports as a usage error.
 */
#ifndef ASHMEMCTL_PARSE_H
#define ASHMEMCTL_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PARSE_ERR_LEN 512

/*
 * A byte count: digits (decimal, or hex after 0x), an optional fraction
 * (".5", decimal only, at most 18 digits), then an optional unit: B; K, M,
 * G, T, P, E, KiB..EiB (1024-based; k, m, g, t, p, e also); KB..EB
 * (1000-based). No sign, no spaces. A fraction needs a unit above a byte
 * and is rounded up to the next whole byte ("1.5M" is 1572864, "0.3K"
 * 308). Every size format_size() prints reads back.
 * what names the value in the message ("size", "offset", "length").
 * parse_size() refuses 0; parse_offset() accepts it.
 */
int parse_size(const char *s, const char *what, uint64_t *ret, char *err);
int parse_offset(const char *s, const char *what, uint64_t *ret, char *err);

/* A plain non-negative integer no larger than max (decimal), e.g. an fd. */
int parse_uint(const char *s, const char *what, uint64_t max, uint64_t *ret,
               char *err);

/* A region name: 1..255 bytes of valid UTF-8, no control characters, no '/'. */
int parse_name(const char *s, char *err);

/* A protection string: "r", "rw", "rx", "rwx", their ls-style forms "r--",
 * "rw-", "r-x", and "none" or "---" (no access). */
int parse_prot(const char *s, int *ret, char *err);
/* "rwx" with '-' for missing bits; buf holds at least 4 bytes. */
const char *format_prot(int mask, char *buf);

/* An octal permission mode "0640" or "640", at most 0777. */
int parse_mode(const char *s, unsigned *ret, char *err);

/* Value types of get/set/incr. */
struct vtype {
        const char *name;       /* "u8" .. "i64", "str" */
        unsigned size;          /* bytes; 0 for str */
        int is_signed;
};
extern const struct vtype vtypes[];     /* ends with { NULL } */
int parse_type(const char *s, const struct vtype **ret, char *err);

/* A value of integer type t: decimal (with '-' for signed types) or hex
 * (0x...), in range for t. *ret holds its two's complement bit pattern. */
int parse_value(const struct vtype *t, const char *s, uint64_t *ret, char *err);
/* An increment for type t: like a value, and negative also for unsigned
 * types (|delta| no larger than the type's largest value). */
int parse_delta(const struct vtype *t, const char *s, int64_t *ret, char *err);
/* Format the bit pattern v of integer type t in decimal. */
void format_value(const struct vtype *t, uint64_t v, char *buf, size_t len);

/* Human-readable size like lsblk/lsipc: "512B", "4K", "1.5M", "64M". */
void format_size(uint64_t bytes, char *buf, size_t len);

/* t as ISO 8601 UTC, "2024-05-01T12:04:03Z" (buf at least 21 bytes),
 * without loading the local time zone as gmtime_r() does; NULL for a year
 * outside 0..9999. */
const char *format_utc(time_t t, char *buf, size_t len);

#endif
