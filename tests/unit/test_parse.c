/* SPDX-License-Identifier: MIT */
/* ashmemctl's argument parsers (cli/parse.c, compiled into this test). */
#include <stdint.h>
#include <sys/mman.h>

#include "../../cli/parse.c"
#include "t.h"

static uint64_t size_ok(const char *s)
{
        char err[PARSE_ERR_LEN] = "";
        uint64_t v = 12345;
        if (parse_size(s, "size", &v, err) != 0)
                t_fail(__FILE__, __LINE__, "parse_size(\"%s\") failed: %s", s, err);
        return v;
}

/* The parse must fail and the message must contain want. */
#define SIZE_BAD(s, want)                                                       \
        do {                                                                    \
                char err_[PARSE_ERR_LEN] = "";                                  \
                uint64_t v_ = 777;                                              \
                CHECK_EQ(parse_size((s), "size", &v_, err_), -1);               \
                CHECK_EQ(v_, 777);                                              \
                if (!strstr(err_, (want)))                                      \
                        t_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", err_, (want)); \
        } while (0)

TEST(sizes_plain_and_units)
{
        CHECK_EQ(size_ok("1"), 1);
        CHECK_EQ(size_ok("4096"), 4096);
        CHECK_EQ(size_ok("100B"), 100);
        CHECK_EQ(size_ok("4K"), 4096);
        CHECK_EQ(size_ok("4k"), 4096);
        CHECK_EQ(size_ok("4KiB"), 4096);
        CHECK_EQ(size_ok("4KB"), 4000);
        CHECK_EQ(size_ok("4kB"), 4000);
        CHECK_EQ(size_ok("3M"), 3ULL << 20);
        CHECK_EQ(size_ok("3MiB"), 3ULL << 20);
        CHECK_EQ(size_ok("3MB"), 3000000);
        CHECK_EQ(size_ok("2G"), 2ULL << 30);
        CHECK_EQ(size_ok("2GiB"), 2ULL << 30);
        CHECK_EQ(size_ok("2GB"), 2000000000ULL);
        CHECK_EQ(size_ok("1T"), 1ULL << 40);
        CHECK_EQ(size_ok("1TiB"), 1ULL << 40);
        CHECK_EQ(size_ok("1TB"), 1000000000000ULL);
        CHECK_EQ(size_ok("0x1000"), 4096);
        CHECK_EQ(size_ok("0x10K"), 16 * 1024);
        CHECK_EQ(size_ok("18446744073709551615"), UINT64_MAX);
        CHECK_EQ(size_ok("16777215T"), 16777215ULL << 40);
}

TEST(sizes_bad)
{
        SIZE_BAD("", "invalid size '': empty");
        SIZE_BAD("0", "invalid size '0': must be greater than zero");
        SIZE_BAD("0K", "'0K': must be greater than zero");
        SIZE_BAD("-1", "'-1': negative");
        SIZE_BAD("-4K", "'-4K': negative");
        SIZE_BAD("abc", "'abc': not a number");
        SIZE_BAD(" 4", "' 4': not a number");
        SIZE_BAD("+4", "'+4': not a number");
        SIZE_BAD("4Q", "'4Q': unknown unit 'Q'");
        SIZE_BAD("4KiBB", "unknown unit 'KiBB'");
        SIZE_BAD("4kib", "unknown unit 'kib'");
        SIZE_BAD("4 K", "'4 K': trailing characters ' K'");
        SIZE_BAD("1.5", "'1.5': a fraction of a byte (give a unit, as in 1.5K)");
        SIZE_BAD("1.5B", "a fraction of a byte");
        SIZE_BAD("1.M", "'1.M': no digits after the decimal point");
        SIZE_BAD("1.5.5M", "trailing characters '.5M'");
        SIZE_BAD("0x1.8K", "trailing characters '.8K'");
        SIZE_BAD("1.0000000000000000001K", "more than 18 digits after the decimal point");
        SIZE_BAD("0.0K", "'0.0K': must be greater than zero");
        SIZE_BAD("16E", "'16E': too large");
        SIZE_BAD("16.0E", "too large");
        SIZE_BAD("12x", "unknown unit 'x'");
        SIZE_BAD("18446744073709551616", "too large");
        SIZE_BAD("99999999999999999999999", "too large");
        SIZE_BAD("16777216T", "'16777216T': too large");
        SIZE_BAD("18446744073709551615K", "too large");
        SIZE_BAD("0xfffffffffffffffff", "too large");
}

TEST(offsets_accept_zero)
{
        char err[PARSE_ERR_LEN];
        uint64_t v = 1;
        CHECK_EQ(parse_offset("0", "offset", &v, err), 0);
        CHECK_EQ(v, 0);
        CHECK_EQ(parse_offset("8K", "offset", &v, err), 0);
        CHECK_EQ(v, 8192);
        CHECK_EQ(parse_offset("-8", "offset", &v, err), -1);
        CHECK(strstr(err, "invalid offset '-8': negative"));
        CHECK_EQ(parse_offset("4097x", "length", &v, err), -1);
        CHECK(strstr(err, "invalid length '4097x'"));
}

TEST(uints)
{
        char err[PARSE_ERR_LEN];
        uint64_t v;
        CHECK_EQ(parse_uint("9", "fd", 1000, &v, err), 0);
        CHECK_EQ(v, 9);
        CHECK_EQ(parse_uint("1000", "fd", 1000, &v, err), 0);
        CHECK_EQ(parse_uint("1001", "fd", 1000, &v, err), -1);
        CHECK(strstr(err, "invalid fd '1001': larger than 1000"));
        CHECK_EQ(parse_uint("3a", "fd", 1000, &v, err), -1);
        CHECK(strstr(err, "not a number"));
        CHECK_EQ(parse_uint("", "fd", 1000, &v, err), -1);
        CHECK_EQ(parse_uint("-3", "fd", 1000, &v, err), -1);
        CHECK(strstr(err, "negative"));
        /* a limit below 9 (found by tests/fuzz/fuzz_parse.c: max - digit
         * wrapped around and "2" passed a limit of 1) */
        CHECK_EQ(parse_uint("2", "n", 1, &v, err), -1);
        CHECK(strstr(err, "invalid n '2': larger than 1"));
        CHECK_EQ(parse_uint("9", "n", 0, &v, err), -1);
        CHECK_EQ(parse_uint("0", "n", 0, &v, err), 0);
        CHECK_EQ(v, 0);
        CHECK_EQ(parse_uint("8", "n", 8, &v, err), 0);
        CHECK_EQ(v, 8);
        CHECK_EQ(parse_uint("18446744073709551615", "n", UINT64_MAX, &v, err), 0);
        CHECK_EQ(v, UINT64_MAX);
}

TEST(names)
{
        char err[PARSE_ERR_LEN], big[300];

        CHECK_EQ(parse_name("frame", err), 0);
        CHECK_EQ(parse_name("a b-c_d.e:f@1", err), 0);
        CHECK_EQ(parse_name("caf\xc3\xa9", err), 0);          /* UTF-8 */
        memset(big, 'n', 255);
        big[255] = 0;
        CHECK_EQ(parse_name(big, err), 0);
        big[255] = 'n';
        big[256] = 0;
        CHECK_EQ(parse_name(big, err), -1);
        CHECK(strstr(err, "256 bytes long (at most 255)"));
        CHECK_EQ(parse_name("", err), -1);
        CHECK(strstr(err, "invalid name '': empty"));
        CHECK_EQ(parse_name("a/b", err), -1);
        CHECK(strstr(err, "invalid name 'a/b': contains '/'"));
        CHECK_EQ(parse_name("a\tb", err), -1);
        CHECK(strstr(err, "control character 0x09"));
        CHECK_EQ(parse_name("a\x7f", err), -1);
        CHECK_EQ(parse_name("\xff", err), -1);
        CHECK(strstr(err, "not valid UTF-8"));
        CHECK_EQ(parse_name("\xc3", err), -1);                /* cut short */
        CHECK_EQ(parse_name("\xc0\xaf", err), -1);            /* overlong '/' */
        CHECK_EQ(parse_name("\xed\xa0\x80", err), -1);        /* surrogate */
        CHECK_EQ(parse_name("\xc2\x85", err), -1);            /* C1 control */
}

TEST(prots_and_modes)
{
        char err[PARSE_ERR_LEN], buf[4];
        int p = -1;
        unsigned m = 1;

        CHECK_EQ(parse_prot("r", &p, err), 0);
        CHECK_EQ(p, PROT_READ);
        CHECK_EQ(parse_prot("rw", &p, err), 0);
        CHECK_EQ(p, PROT_READ | PROT_WRITE);
        CHECK_EQ(parse_prot("rx", &p, err), 0);
        CHECK_EQ(p, PROT_READ | PROT_EXEC);
        CHECK_EQ(parse_prot("rwx", &p, err), 0);
        CHECK_EQ(p, PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(parse_prot("rw-", &p, err), 0);
        CHECK_EQ(p, PROT_READ | PROT_WRITE);
        CHECK_EQ(parse_prot("none", &p, err), 0);
        CHECK_EQ(p, 0);
        CHECK_EQ(parse_prot("w", &p, err), -1);
        CHECK(strstr(err, "invalid protection 'w'"));
        CHECK_EQ(parse_prot("", &p, err), -1);
        CHECK_EQ(parse_prot("RW", &p, err), -1);
        CHECK(strcmp(format_prot(PROT_READ | PROT_EXEC, buf), "r-x") == 0);
        CHECK(strcmp(format_prot(0, buf), "---") == 0);

        CHECK_EQ(parse_mode("0640", &m, err), 0);
        CHECK_EQ(m, 0640);
        CHECK_EQ(parse_mode("644", &m, err), 0);
        CHECK_EQ(m, 0644);
        CHECK_EQ(parse_mode("0", &m, err), 0);
        CHECK_EQ(m, 0);
        CHECK_EQ(parse_mode("0648", &m, err), -1);
        CHECK(strstr(err, "invalid mode '0648'"));
        CHECK_EQ(parse_mode("4755", &m, err), -1);
        CHECK(strstr(err, "at most 0777"));
        CHECK(strstr(err, "setuid, setgid and sticky bits (04000)"));
        CHECK_EQ(parse_mode("01777", &m, err), -1);
        CHECK(strstr(err, "sticky bits (01000)"));
        CHECK_EQ(parse_mode("0640000", &m, err), -1);
        CHECK(strstr(err, "larger than 0777"));
        CHECK_EQ(parse_mode("00640", &m, err), -1);
        CHECK(strstr(err, "three or four octal digits"));
        CHECK_EQ(parse_mode("", &m, err), -1);
        CHECK_EQ(parse_mode("rw", &m, err), -1);
}

TEST(types_and_values)
{
        char err[PARSE_ERR_LEN], buf[32];
        const struct vtype *t = NULL, *u8, *i8, *u64, *i64, *str;
        uint64_t v;
        int64_t d;

        CHECK_EQ(parse_type("u8", &u8, err), 0);
        CHECK_EQ(parse_type("i8", &i8, err), 0);
        CHECK_EQ(parse_type("u64", &u64, err), 0);
        CHECK_EQ(parse_type("i64", &i64, err), 0);
        CHECK_EQ(parse_type("str", &str, err), 0);
        CHECK_EQ(u64->size, 8);
        CHECK_EQ(i8->is_signed, 1);
        CHECK_EQ(parse_type("i32", &t, err), 0);
        CHECK_EQ(t->size, 4);
        CHECK_EQ(parse_type("u128", &t, err), -1);
        CHECK(strstr(err, "invalid type 'u128'"));
        CHECK_EQ(parse_type("int", &t, err), -1);

        CHECK_EQ(parse_value(u8, "255", &v, err), 0);
        CHECK_EQ(v, 255);
        CHECK_EQ(parse_value(u8, "256", &v, err), -1);
        CHECK(strstr(err, "invalid value '256': out of range for u8"));
        CHECK_EQ(parse_value(u8, "-1", &v, err), -1);
        CHECK(strstr(err, "negative, but u8 is unsigned"));
        CHECK_EQ(parse_value(i8, "-128", &v, err), 0);
        CHECK_EQ(v, 0x80);
        CHECK_EQ(parse_value(i8, "-129", &v, err), -1);
        CHECK_EQ(parse_value(i8, "127", &v, err), 0);
        CHECK_EQ(parse_value(i8, "128", &v, err), -1);
        CHECK_EQ(parse_value(i8, "0x7f", &v, err), 0);
        CHECK_EQ(v, 127);
        CHECK_EQ(parse_value(u64, "18446744073709551615", &v, err), 0);
        CHECK(v == UINT64_MAX);
        CHECK_EQ(parse_value(u64, "18446744073709551616", &v, err), -1);
        CHECK_EQ(parse_value(i64, "-9223372036854775808", &v, err), 0);
        CHECK(v == (uint64_t)1 << 63);
        CHECK_EQ(parse_value(i64, "9223372036854775808", &v, err), -1);
        CHECK_EQ(parse_value(i64, "12abc", &v, err), -1);
        CHECK(strstr(err, "trailing characters 'abc'"));
        CHECK_EQ(parse_value(i64, "", &v, err), -1);
        CHECK_EQ(parse_value(i64, "x", &v, err), -1);
        CHECK_EQ(parse_value(str, "1", &v, err), -1);

        CHECK_EQ(parse_delta(u8, "-255", &d, err), 0);
        CHECK_EQ(d, -255);
        CHECK_EQ(parse_delta(u8, "256", &d, err), -1);
        CHECK(strstr(err, "invalid increment '256': out of range for u8"));
        CHECK_EQ(parse_delta(i8, "-128", &d, err), 0);
        CHECK_EQ(parse_delta(i8, "128", &d, err), -1);
        CHECK_EQ(parse_delta(u64, "9223372036854775807", &d, err), 0);
        CHECK_EQ(parse_delta(u64, "9223372036854775808", &d, err), -1);
        CHECK_EQ(parse_delta(str, "1", &d, err), -1);

        format_value(i8, 0xff, buf, sizeof(buf));
        CHECK(strcmp(buf, "-1") == 0);
        format_value(u8, 0xff, buf, sizeof(buf));
        CHECK(strcmp(buf, "255") == 0);
        format_value(i64, (uint64_t)1 << 63, buf, sizeof(buf));
        CHECK(strcmp(buf, "-9223372036854775808") == 0);
}

TEST(sizes_with_a_fraction)
{
        char err[PARSE_ERR_LEN];
        uint64_t v;

        CHECK_EQ(size_ok("1.5M"), 1536 * 1024);
        CHECK_EQ(size_ok("0.5G"), 512ULL << 20);
        CHECK_EQ(size_ok("1.5KiB"), 1536);
        CHECK_EQ(size_ok("2.25k"), 2304);
        CHECK_EQ(size_ok("1.5MB"), 1500000);
        CHECK_EQ(size_ok("301.2M"), 315831092);         /* 315831091.2 up */
        CHECK_EQ(size_ok("0.3K"), 308);                 /* 307.2 up */
        CHECK_EQ(size_ok("0.001K"), 2);                 /* 1.024 up */
        CHECK_EQ(size_ok("0.000000000000000001K"), 1);  /* a byte at least */
        CHECK_EQ(size_ok("1.5P"), 3ULL << 49);
        CHECK_EQ(size_ok("15.5E"), 31ULL << 59);
        CHECK_EQ(size_ok("2.000K"), 2048);
        CHECK_EQ(parse_offset("0.5K", "offset", &v, err), 0);
        CHECK_EQ(v, 512);
}

/* Every size format_size() prints parses back, within its rounding. */
TEST(printed_sizes_read_back)
{
        uint64_t samples[4096];
        size_t n = 0;

        for (uint64_t b = 0; b < 2048; b++)
                samples[n++] = b;
        /* around every power of two and its tenths, up to 15 EiB */
        for (int k = 10; k < 64 && n + 40 < 4096; k++) {
                uint64_t p = 1ULL << k;
                for (int t = 0; t < 10; t++) {
                        uint64_t x = p + p / 10 * (uint64_t)t;
                        samples[n++] = x - 1;
                        samples[n++] = x;
                        samples[n++] = x + 1;
                }
        }
        for (size_t i = 0; i < n; i++) {
                char buf[32], err[PARSE_ERR_LEN];
                uint64_t v = samples[i], got = 0;
                long double diff;
                if (v >= 15ULL << 60)
                        continue;
                format_size(v, buf, sizeof(buf));
                if (parse_offset(buf, "offset", &got, err) != 0)
                        t_fail(__FILE__, __LINE__, "%llu printed as '%s' does not read back: %s",
                               (unsigned long long)v, buf, err);
                /* within half a tenth of the unit it was printed in (and a byte) */
                diff = (long double)got - (long double)v;
                if (diff < 0)
                        diff = -diff;
                if (diff > (long double)v / 20 + 1)
                        t_fail(__FILE__, __LINE__, "%llu printed as '%s' reads back as %llu",
                               (unsigned long long)v, buf, (unsigned long long)got);
        }
}

TEST(human_sizes)
{
        char buf[32];
        format_size(0, buf, sizeof(buf));
        CHECK(strcmp(buf, "0B") == 0);
        format_size(1023, buf, sizeof(buf));
        CHECK(strcmp(buf, "1023B") == 0);
        format_size(4096, buf, sizeof(buf));
        CHECK(strcmp(buf, "4K") == 0);
        format_size(1536 * 1024, buf, sizeof(buf));
        CHECK(strcmp(buf, "1.5M") == 0);
        format_size(64ULL << 20, buf, sizeof(buf));
        CHECK(strcmp(buf, "64M") == 0);
        format_size((1ULL << 20) - 1, buf, sizeof(buf));    /* rounds up */
        CHECK(strcmp(buf, "1M") == 0);
        format_size((1ULL << 30) * 3 / 2 + 1, buf, sizeof(buf));
        CHECK(strcmp(buf, "1.5G") == 0);
        format_size(UINT64_MAX, buf, sizeof(buf));
        CHECK(strcmp(buf, "16E") == 0);
        /* rounded on the whole remainder, not on its top 10 bits (found
         * by tests/fuzz/fuzz_parse.c): 1.45 MiB and 1 byte is 1.5M */
        format_size((1ULL << 20) * 145 / 100 + 1, buf, sizeof(buf));
        CHECK(strcmp(buf, "1.5M") == 0);
        format_size(3977583575300322359ULL, buf, sizeof(buf));     /* 3.450004E */
        CHECK(strcmp(buf, "3.5E") == 0);
}

/* UTC without the time zone: what gmtime_r() and strftime() say, across
 * leap years, centuries, the epoch and before it. */
TEST(utc_times)
{
        static const time_t at[] = {
                0, -1, 59, 86399, 86400, 951782400 /* 2000-02-29 */, 951868800,
                1709164800 /* 2024-02-29 */, 4107542399 /* 2100-02-28T23:59:59 */,
                4107542400, -2208988800 /* 1900-01-01 */, 253402300799 /* 9999-12-31 */,
                -30610224000 /* 1000-01-01 */,
        };
        char buf[32], want[32];
        struct tm tm;

        for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
                CHECK(format_utc(at[i], buf, sizeof(buf)) == buf);
                CHECK(gmtime_r(&at[i], &tm) != NULL);
                CHECK(strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
                if (strcmp(buf, want) != 0)
                        t_fail(__FILE__, __LINE__, "%lld: %s, not %s", (long long)at[i], buf, want);
        }
        /* every day of four centuries, at a time of day that varies */
        for (long long d = -146097; d < 2 * 146097; d += 1) {
                time_t t = (time_t)(d * 86400 + (d * 7919) % 86400);
                format_utc(t, buf, sizeof(buf));
                gmtime_r(&t, &tm);
                strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
                if (strcmp(buf, want) != 0)
                        t_fail(__FILE__, __LINE__, "%lld: %s, not %s", (long long)t, buf, want);
        }
        CHECK(format_utc(253402300800, buf, sizeof(buf)) == NULL);     /* year 10000 */
        CHECK(format_utc(-62167219201, buf, sizeof(buf)) == NULL);     /* year -1 */
}
