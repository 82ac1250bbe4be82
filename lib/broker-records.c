/* SPDX-License-Identifier: MIT */
/*
 * The broker client's reading of replies: optional fields and region
 * records (ashmem-protocol(7)) into ashmem_region_info. See
 * lib/internal/client.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ashmem/ashmem.h"
#include "internal/client.h"
#include "internal/json.h"

/* An optional number field: 0 absent, 1 read, -EPROTO bad. */
int am_field_num(const struct am_jobj *o, const char *k, uint64_t max, uint64_t *v)
{
        const struct am_jfield *f = am_json_get(o, k);

        if (!f)
                return 0;
        return am_json_u64(f, max, v) < 0 ? -EPROTO : 1;
}

int am_field_size(const struct am_jobj *o, const char *k, size_t *v)
{
        uint64_t x;
        int r = am_field_num(o, k, SIZE_MAX, &x);

        if (r > 0)
                *v = (size_t)x;
        return r;
}

int am_field_ull(const struct am_jobj *o, const char *k, unsigned long long *v)
{
        uint64_t x;
        int r = am_field_num(o, k, UINT64_MAX, &x);

        if (r > 0)
                *v = x;
        return r;
}

void am_field_str(const struct am_jobj *o, const char *k, char *buf, size_t len)
{
        const struct am_jfield *f = am_json_get(o, k);

        if (f && am_json_str(f, buf, len) < 0)
                buf[0] = 0;
}

/* Seconds since the epoch of a broken-down UTC time (the civil date to
 * days by H. Hinnant's algorithm): timegm() would load the local time zone
 * first, a file read on every record for a time zone no record uses. */
static time_t utc_seconds(const struct tm *tm)
{
        long long y = (long long)tm->tm_year + 1900 - (tm->tm_mon < 2);
        long long m = tm->tm_mon + 1, era = (y >= 0 ? y : y - 399) / 400;
        long long yoe = y - era * 400;
        long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + tm->tm_mday - 1;
        long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        long long days = era * 146097 + doe - 719468;

        return (time_t)(days * 86400 + tm->tm_hour * 3600 + tm->tm_min * 60 + tm->tm_sec);
}

int am_record_parse(const struct am_jobj *o, ashmem_region_info *ri)
{
        const struct am_jfield *f;
        uint64_t v;
        int r = 0;

        memset(ri, 0, sizeof(*ri));
        f = am_json_get(o, "name");
        if (!f || am_json_str(f, ri->name, sizeof(ri->name)) < 0)
                return -EPROTO;
        r |= am_field_size(o, "size", &ri->size);
        v = 0;
        r |= am_field_num(o, "prot_mask", 7, &v);
        ri->prot = (int)v;
        f = am_json_get(o, "mode");
        if (f) {
                char m[8], *end;
                unsigned long x;
                if (am_json_str(f, m, sizeof(m)) < 0)
                        return -EPROTO;
                x = strtoul(m, &end, 8);
                if (!m[0] || *end || x > 07777)
                        return -EPROTO;
                ri->mode = (unsigned)x;
        }
        v = 0;
        r |= am_field_num(o, "uid", UINT32_MAX, &v);
        ri->uid = (uid_t)v;
        v = 0;
        r |= am_field_num(o, "gid", UINT32_MAX, &v);
        ri->gid = (gid_t)v;
        am_field_str(o, "user", ri->user, sizeof(ri->user));
        am_field_str(o, "group", ri->group, sizeof(ri->group));
        r |= am_field_size(o, "pages", &ri->pages);
        r |= am_field_size(o, "pinned", &ri->pinned);
        r |= am_field_size(o, "unpinned", &ri->unpinned);
        r |= am_field_size(o, "purged", &ri->purged);
        r |= am_field_ull(o, "attaches", &ri->attaches);
        f = am_json_get(o, "created");
        if (f) {
                char when[40];
                struct tm tm;
                const char *end;
                memset(&tm, 0, sizeof(tm));
                if (am_json_str(f, when, sizeof(when)) >= 0 &&
                    (end = strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm)) && !*end)
                        ri->created = utc_seconds(&tm);
        }
        f = am_json_get(o, "transient");
        if (f && am_json_bool(f, &ri->transient) < 0)
                return -EPROTO;
        if (am_json_get(o, "offset")) {
                ri->is_slice = 1;
                r |= am_field_size(o, "offset", &ri->offset);
                r |= am_field_size(o, "length", &ri->length);
                am_field_str(o, "of", ri->of, sizeof(ri->of));
        } else {
                ri->length = ri->size;
        }
        return r < 0 ? -EPROTO : 0;
}

int am_record_out(const struct am_jobj *o, ashmem_region_info *info)
{
        return info ? am_record_parse(o, info) : 0;
}
