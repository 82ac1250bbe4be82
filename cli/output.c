/* SPDX-License-Identifier: MIT */
/* Output: JSON documents, region records, the column table, the list.
 * (A command's result as text or JSON, and errors: cli/output-result.c.) */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <locale.h>
#include <libsmartcols.h>

#include "lib/internal/dload.h"
#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"

int out_json(struct cmd_ctx *ctx, cJSON *doc)
{
        char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;

        cJSON_Delete(doc);
        if (!s)
                return cmd_error(ctx, ENOMEM, "building JSON output");
        puts(s);
        free(s);
        return 0;
}

/* cJSON keeps numbers as doubles: exact up to 2^53, far above any size,
 * page count or id a record holds. */
static void add_num(cJSON *o, const char *k, double v)
{
        cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v));
}

/*
 * A field's value as a record holds it, from either of the two forms a
 * region's record takes: the cJSON object (JSON, tables, --export) or the
 * broker's answer itself (region_val(), from which the cJSON object is
 * built, so that the text printed straight from the answer says the same).
 */
enum val_kind { VAL_ABSENT, VAL_NULL, VAL_STR, VAL_NUM, VAL_BOOL };

struct out_val {
        enum val_kind kind;
        const char *s;
        double n;
        int b;
};

typedef void val_fn(const void *src, const char *key, struct out_val *v);

/* a region's answer with room for the fields it formats */
struct region_src {
        const ashmem_region_info *r;
        char prot[8], mode[8], created[32];
};

static void region_val(const void *src, const char *key, struct out_val *v)
{
        struct region_src *rs = (struct region_src *)src;
        const ashmem_region_info *r = rs->r;
        /* the counts and ids, as numbers */
        const struct { const char *key; double n; } nums[] = {
                { "size", (double)r->size }, { "prot_mask", r->prot }, { "uid", r->uid },
                { "gid", r->gid }, { "pages", (double)r->pages }, { "pinned", (double)r->pinned },
                { "unpinned", (double)r->unpinned }, { "purged", (double)r->purged },
                { "attaches", (double)r->attaches },
        };

        memset(v, 0, sizeof(*v));
        v->kind = VAL_STR;
        if (strcmp(key, "name") == 0) {
                v->s = r->name;
        } else if (strcmp(key, "prot") == 0) {
                v->s = format_prot(r->prot, rs->prot);
        } else if (strcmp(key, "mode") == 0) {
                snprintf(rs->mode, sizeof(rs->mode), "%04o", r->mode & 07777);
                v->s = rs->mode;
        } else if (strcmp(key, "user") == 0) {
                v->s = r->user;
        } else if (strcmp(key, "group") == 0) {
                v->s = r->group;
        } else if (strcmp(key, "created") == 0) {
                v->s = format_utc(r->created, rs->created, sizeof(rs->created));
                if (!v->s)
                        v->kind = VAL_NULL;
        } else if (strcmp(key, "transient") == 0) {
                v->kind = VAL_BOOL;
                v->b = !!r->transient;
        } else if (r->is_slice && strcmp(key, "of") == 0) {
                v->s = r->of;
        } else if (r->is_slice && strcmp(key, "offset") == 0) {
                v->kind = VAL_NUM;
                v->n = (double)r->offset;
        } else if (r->is_slice && strcmp(key, "length") == 0) {
                v->kind = VAL_NUM;
                v->n = (double)r->length;
        } else {
                v->kind = VAL_ABSENT;
                for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
                        if (strcmp(key, nums[i].key) == 0) {
                                v->kind = VAL_NUM;
                                v->n = nums[i].n;
                                break;
                        }
        }
}

/* Are the region's strings UTF-8, as its record (where the others are
 * base64) holds them as they are? */
static int region_utf8(const ashmem_region_info *r)
{
        return out_utf8_valid(r->name, strlen(r->name)) &&
               out_utf8_valid(r->user, strlen(r->user)) &&
               out_utf8_valid(r->group, strlen(r->group)) &&
               (!r->is_slice || out_utf8_valid(r->of, strlen(r->of)));
}

/* the record's keys in the order of its JSON (ashmem-protocol(7)) */
static const char *const region_keys[] = {
        "name", "size", "prot", "prot_mask", "mode", "uid", "gid", "user", "group", "pages",
        "pinned", "unpinned", "purged", "attaches", "created", "transient", "of", "offset",
        "length", NULL
};

cJSON *out_region_record(const ashmem_region_info *r)
{
        struct region_src rs = { .r = r };
        cJSON *o = cJSON_CreateObject();
        int oom = 0;

        if (!o)
                return NULL;
        for (int i = 0; region_keys[i]; i++) {
                const char *k = region_keys[i];
                struct out_val v;
                region_val(&rs, k, &v);
                switch (v.kind) {
                case VAL_ABSENT:
                        break;
                case VAL_NULL:
                        cJSON_AddNullToObject(o, k);
                        break;
                case VAL_STR:
                        oom |= out_json_string(o, k, v.s);
                        break;
                case VAL_NUM:
                        add_num(o, k, v.n);
                        break;
                case VAL_BOOL:
                        cJSON_AddBoolToObject(o, k, v.b);
                        break;
                }
        }
        if (oom) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

const struct out_col out_cols[] = {
        { "NAME", "name", "Name", "region name", OUT_STR, OUT_COL_DEFAULT | OUT_COL_TRUNC },
        { "SIZE", "size", "Size", "size (bytes, of the view for a slice)", OUT_BYTES,
          OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "PROT", "prot", "Protection", "protection mask (rwx)", OUT_STR, OUT_COL_DEFAULT },
        { "PROTMASK", "prot_mask", "Protection mask", "protection mask as a number (PROT_* bits)",
          OUT_NUM, OUT_COL_RIGHT },
        { "MODE", "mode", "Mode", "access mode (octal, like a file's)", OUT_STR, OUT_COL_DEFAULT },
        { "OWNER", "user", "Owner", "owner's user name", OUT_OWNER, OUT_COL_DEFAULT },
        { "UID", "uid", "UID", "owner's user id", OUT_NUM, OUT_COL_RIGHT },
        { "GROUP", "group", "Group", "owner's group name", OUT_GROUP, 0 },
        { "GID", "gid", "GID", "owner's group id", OUT_NUM, OUT_COL_RIGHT },
        { "PAGES", "pages", "Pages", "pages (page-rounded size)", OUT_NUM,
          OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "RES", "resident_bytes", "Resident", "top: bytes of the pages in memory now",
          OUT_BYTES, OUT_COL_TOP | OUT_COL_RIGHT },
        { "RESIDENT", "resident", "Resident pages", "top: pages in memory now (mincore)",
          OUT_NUM, OUT_COL_TOP | OUT_COL_RIGHT },
        { "PINNED", "pinned", "Pinned", "pages pinned", OUT_NUM, OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "UNPINNED", "unpinned", "Unpinned", "pages unpinned, not purged", OUT_NUM,
          OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "PURGED", "purged", "Purged", "pages purged (their data is gone)", OUT_NUM,
          OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "ATTACHES", "attaches", "Attaches", "attach requests served", OUT_NUM,
          OUT_COL_DEFAULT | OUT_COL_RIGHT },
        { "CREATED", "created", "Created", "when it was created or shared", OUT_TIME,
          OUT_COL_DEFAULT },
        { "TRANSIENT", "transient", "Transient", "goes away with the process that shared it",
          OUT_BOOL, 0 },
        { "OF", "of", "Slice of", "slice: the region it is cut from", OUT_STR,
          OUT_COL_SLICE | OUT_COL_TRUNC },
        { "OFFSET", "offset", "Offset", "slice: bytes into that region", OUT_BYTES,
          OUT_COL_SLICE | OUT_COL_RIGHT },
        { "LENGTH", "length", "Length", "slice: bytes in the view", OUT_BYTES,
          OUT_COL_SLICE | OUT_COL_RIGHT },
        { NULL, NULL, NULL, NULL, OUT_STR, 0 }
};

static int col_index(const char *name, size_t len)
{
        for (int i = 0; out_cols[i].name; i++)
                if (strlen(out_cols[i].name) == len && strncasecmp(out_cols[i].name, name, len) == 0)
                        return i;
        return -1;
}

int out_cols_select(const char *spec, unsigned allow, int *cols, char *err)
{
        int n = 0;

        if (!spec || *spec == '+') {
                for (int i = 0; out_cols[i].name; i++)
                        if (out_cols[i].flags & OUT_COL_DEFAULT)
                                cols[n++] = i;
                if (!spec)
                        return n;
                spec++;
        }
        if (!*spec) {
                snprintf(err, PARSE_ERR_LEN, "no columns given to --output");
                return -1;
        }
        for (const char *p = spec;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                int i = col_index(p, len);
                if (i < 0) {
                        snprintf(err, PARSE_ERR_LEN, "unknown column '%.*s' (see 'list --list-columns')",
                                 (int)len, p);
                        return -1;
                }
                if ((out_cols[i].flags & OUT_COL_TOP) && !(allow & OUT_COL_TOP)) {
                        snprintf(err, PARSE_ERR_LEN, "column '%.*s' is shown only by 'top'",
                                 (int)len, p);
                        return -1;
                }
                if (n == OUT_MAX_COLS) {
                        snprintf(err, PARSE_ERR_LEN, "too many columns (at most %d)", OUT_MAX_COLS);
                        return -1;
                }
                cols[n++] = i;
                if (!comma)
                        break;
                p = comma + 1;
        }
        return n;
}

void out_cols_help(FILE *f)
{
        fprintf(f, "Columns (-o/--output; default ones marked *):\n");
        for (int i = 0; out_cols[i].name; i++)
                if (!(out_cols[i].flags & OUT_COL_TOP))
                        fprintf(f, " %c %-10s %s\n",
                                out_cols[i].flags & OUT_COL_DEFAULT ? '*' : ' ',
                                out_cols[i].name, out_cols[i].help);
}

cJSON *out_cols_json(void)
{
        cJSON *doc = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(doc, "columns");

        for (int i = 0; a && out_cols[i].name; i++) {
                cJSON *c;
                if (out_cols[i].flags & OUT_COL_TOP)
                        continue;       /* top's own (see top in the manual) */
                c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "name", out_cols[i].name);
                cJSON_AddStringToObject(c, "key", out_cols[i].key);
                cJSON_AddStringToObject(c, "help", out_cols[i].help);
                cJSON_AddBoolToObject(c, "default", !!(out_cols[i].flags & OUT_COL_DEFAULT));
                cJSON_AddItemToArray(a, c);
        }
        return doc;
}

int out_time_format(const char *s, unsigned *flag, char *err)
{
        if (strcmp(s, "short") == 0)
                *flag = OUT_TIME_SHORT;
        else if (strcmp(s, "full") == 0)
                *flag = OUT_TIME_FULL;
        else if (strcmp(s, "iso") == 0)
                *flag = OUT_TIME_ISO;
        else {
                snprintf(err, PARSE_ERR_LEN, "invalid time format '%s': use short, full or iso", s);
                return -1;
        }
        return 0;
}

const char *out_time_text(time_t t, unsigned flags, char *buf, size_t len)
{
        const char *fmt = "%Y-%m-%dT%H:%M:%S";
        struct tm tm, now_tm;
        time_t now;

        if (!localtime_r(&t, &tm))
                return "-";
        switch (flags & OUT_TIME_MASK) {
        case OUT_TIME_SHORT:
                /* as lsipc: the time today, the day this year, else the date */
                now = time(NULL);
                if (!localtime_r(&now, &now_tm))
                        now_tm = tm;
                if (now_tm.tm_year == tm.tm_year && now_tm.tm_yday == tm.tm_yday)
                        fmt = "%H:%M";
                else if (now_tm.tm_year == tm.tm_year)
                        fmt = "%b%d";
                else
                        fmt = "%Y-%b%d";
                break;
        case OUT_TIME_FULL:
                fmt = "%a %b %e %H:%M:%S %Y";
                break;
        case OUT_TIME_ISO:
                fmt = "%Y-%m-%dT%H:%M:%S%z";
                break;
        }
        /* fmt is one of the literals above */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        if (!strftime(buf, len, fmt, &tm))
                return "-";
#pragma GCC diagnostic pop
        return buf;
}

/*
 * A record's number (a whole number, as every count, id and size is) as
 * "%.0f" prints it, but through the integer conversion: the C library's
 * floating-point printf is a large cold path (its code and tables) that a
 * one-shot command would page in for every record it prints.
 */
static const char *num_text(double v, char *buf, size_t len)
{
        if (v >= 0 && v < 18446744073709551616.0 && v == (double)(uint64_t)v && !signbit(v))
                snprintf(buf, len, "%" PRIu64, (uint64_t)v);
        else if (v < 0 && v >= -9223372036854775808.0 && v == (double)(int64_t)v)
                snprintf(buf, len, "%" PRId64, (int64_t)v);
        else
                snprintf(buf, len, "%.0f", v);
        return buf;
}

/* ISO 8601 UTC ("2024-05-01T12:00:03Z") for people, as flags say. */
static const char *local_time(const char *iso, unsigned flags, char *buf, size_t len)
{
        struct tm tm;
        const char *end;

        memset(&tm, 0, sizeof(tm));
        end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
                return iso;
        return out_time_text(timegm(&tm), flags, buf, len);
}

static void json_val(const void *src, const char *key, struct out_val *v)
{
        const cJSON *j = cJSON_GetObjectItemCaseSensitive((const cJSON *)src, key);

        memset(v, 0, sizeof(*v));
        if (!j) {
                v->kind = VAL_ABSENT;
        } else if (cJSON_IsString(j)) {
                v->kind = VAL_STR;
                v->s = j->valuestring;
        } else if (cJSON_IsNumber(j)) {
                v->kind = VAL_NUM;
                v->n = j->valuedouble;
        } else if (cJSON_IsBool(j)) {
                v->kind = VAL_BOOL;
                v->b = cJSON_IsTrue(j);
        } else {
                v->kind = VAL_NULL;
        }
}

/* Field c of src (whose value v is) as text. */
static const char *val_text(val_fn *get, const void *src, const struct out_col *c,
                            const struct out_val *v, unsigned flags, char *buf, size_t len)
{
        struct out_val id;

        switch (c->kind) {
        case OUT_OWNER:
        case OUT_GROUP:
                if (v->kind == VAL_STR && *v->s)
                        return v->s;
                /* no name known: the number */
                get(src, c->kind == OUT_OWNER ? "uid" : "gid", &id);
                if (id.kind != VAL_NUM)
                        return "-";
                return num_text(id.n, buf, len);
        case OUT_STR:
                return v->kind == VAL_STR ? v->s : "-";
        case OUT_BOOL:
                return v->kind == VAL_BOOL ? (v->b ? "yes" : "no") : "-";
        case OUT_TIME:
                return v->kind == VAL_STR ? local_time(v->s, flags, buf, len) : "-";
        case OUT_NUM:
                if (v->kind != VAL_NUM)
                        return "-";
                return num_text(v->n, buf, len);
        case OUT_BYTES:
                if (v->kind != VAL_NUM)
                        return "-";
                if (flags & OUT_BYTES_EXACT)
                        num_text(v->n, buf, len);
                else
                        format_size((uint64_t)v->n, buf, len);
                return buf;
        }
        return "-";
}

const char *out_field_text(const cJSON *rec, const struct out_col *c,
                           unsigned flags, char *buf, size_t len)
{
        struct out_val v;

        json_val(rec, c->key, &v);
        return val_text(json_val, rec, c, &v, flags, buf, len);
}

/*
 * libsmartcols, loaded the first time a table is printed: linked in, the
 * dynamic loader would map and relocate it at every start, which costs a
 * command that prints no table (version, create, --json list) about a
 * tenth of its start-up. The calls go through this table of pointers,
 * checked against the prototypes of <libsmartcols.h>.
 */
#define SCOLS_CALLS(X)                                                          \
        X(scols_new_table) X(scols_unref_table) X(scols_table_enable_raw)       \
        X(scols_table_enable_noheadings) X(scols_table_new_column)              \
        X(scols_table_new_line) X(scols_line_set_data) X(scols_table_set_stream) \
        X(scols_print_table) X(scols_table_set_termforce)                      \
        X(scols_table_set_termwidth) X(scols_print_table_to_string)

static struct {
#define X(f) __typeof__(f) *f;
        SCOLS_CALLS(X)
#undef X
} sc;

static const struct dload_sym sc_syms[] = {
#define X(f) DLOAD_SYM(f, sc.f),
        SCOLS_CALLS(X)
#undef X
};

/* where the build found it (Makefile) */
#ifndef SCOLS_PATH
#define SCOLS_PATH ""
#endif
static struct dload scols = { "libsmartcols.so.1", SCOLS_PATH, RTLD_LAZY | RTLD_LOCAL, 0, "" };

void out_locale(void)
{
        static int done;

        if (!done) {
                done = 1;
                (void)setlocale(LC_CTYPE, "");  /* else the C locale stays */
        }
}

static int scols_load(void)
{
        out_locale();
        return dload(&scols, sc_syms, sizeof(sc_syms) / sizeof(sc_syms[0])) < 0 ? -ELIBACC : 0;
}

const char *out_table_error(void)
{
        return scols.error[0] ? scols.error : "out of memory";
}

/* The records (a cJSON array), or else the n regions, as a libsmartcols
 * table of the chosen columns. */
static struct libscols_table *make_table(const cJSON *records, const ashmem_region_info *regions,
                                         size_t n, const int *cols, int ncols, unsigned flags)
{
        struct libscols_table *tb;
        const cJSON *rec = records ? records->child : NULL;
        char buf[128];

        if (scols_load() < 0 || !(tb = sc.scols_new_table()))
                return NULL;
        if ((flags & OUT_RAW) && sc.scols_table_enable_raw(tb, 1))
                goto fail;
        if ((flags & OUT_NOHEADINGS) && sc.scols_table_enable_noheadings(tb, 1))
                goto fail;
        for (int c = 0; c < ncols; c++) {
                const struct out_col *col = &out_cols[cols[c]];
                int fl = 0;
                double whint = 1;
                if (col->flags & OUT_COL_RIGHT)
                        fl |= SCOLS_FL_RIGHT;
                if ((col->flags & OUT_COL_TRUNC) && !(flags & OUT_NOTRUNC)) {
                        fl |= SCOLS_FL_TRUNC;
                        whint = 0.3;
                }
                /* no heading: an empty one, so that it does not widen the
                 * column (libsmartcols counts it all the same) */
                if (!sc.scols_table_new_column(tb, flags & OUT_NOHEADINGS ? "" : col->name,
                                               whint, fl))
                        goto fail;
        }
        for (size_t i = 0; records ? rec != NULL : i < n; i++) {
                struct libscols_line *ln = sc.scols_table_new_line(tb, NULL);
                struct region_src rs = { .r = regions ? &regions[i] : NULL };
                if (!ln)
                        goto fail;
                for (int c = 0; c < ncols; c++) {
                        const struct out_col *col = &out_cols[cols[c]];
                        struct out_val v;
                        const char *t;
                        if (records) {
                                t = out_field_text(rec, col, flags, buf, sizeof(buf));
                        } else {
                                region_val(&rs, col->key, &v);
                                t = val_text(region_val, &rs, col, &v, flags, buf, sizeof(buf));
                        }
                        if (sc.scols_line_set_data(ln, (size_t)c, t))
                                goto fail;
                }
                if (rec)
                        rec = rec->next;
        }
        return tb;
fail:
        sc.scols_unref_table(tb);
        return NULL;
}

/* value in double quotes for a POSIX shell: \, ", $ and ` behind a
 * backslash (so eval gives back the exact text), control characters and
 * bytes that are not UTF-8 as \xNN (left as they are by eval). */
static void put_quoted(FILE *f, const char *v)
{
        char *e = out_escape(v, strlen(v), 0);

        fputc('"', f);
        for (const char *p = e ? e : ""; *p; p++) {
                if (*p == '"' || *p == '$' || *p == '`' || *p == '\\')
                        fputc('\\', f);
                fputc(*p, f);
        }
        fputc('"', f);
        free(e);
}

/*
 * --export: KEY="value" pairs, a record a line. libsmartcols writes every
 * byte outside printable ASCII (and a quote) as \xNN, which eval leaves
 * as it is; these pairs give back the exact value, Unicode too.
 */
static int export_table(FILE *f, const cJSON *records, const int *cols, int ncols,
                        unsigned flags)
{
        const cJSON *rec;
        char buf[128];

        cJSON_ArrayForEach(rec, records) {
                for (int c = 0; c < ncols; c++) {
                        const struct out_col *col = &out_cols[cols[c]];
                        /* every column name is a valid shell variable
                         * name; --shell also keeps off the one bash makes
                         * read-only (an eval of UID=... fails there) */
                        const char *key = col->name;
                        if ((flags & OUT_SHELLVAR) && strcmp(key, "UID") == 0)
                                key = "UID_";
                        fprintf(f, "%s%s=", c ? " " : "", key);
                        put_quoted(f, out_field_text(rec, col, flags, buf, sizeof(buf)));
                }
                fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}

/* A shell variable name for a JSON key path: capitals, digits and '_'. */
static void export_key(char *buf, size_t len, const char *prefix, const char *key)
{
        size_t n;

        snprintf(buf, len, "%s%s%s", prefix, *prefix && key ? "_" : "", key ? key : "");
        for (n = 0; buf[n]; n++) {
                char c = buf[n];
                if (c >= 'a' && c <= 'z')
                        buf[n] = (char)(c - 'a' + 'A');
                else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                        buf[n] = '_';
        }
        if (n == 0 || (buf[0] >= '0' && buf[0] <= '9'))
                snprintf(buf, len, "_%s", prefix);
}

static void export_value(FILE *f, const char *key, const cJSON *v, unsigned flags, int *first)
{
        char num[64];
        const char *s = "";

        if (cJSON_IsString(v))
                s = v->valuestring;
        else if (cJSON_IsBool(v))
                s = cJSON_IsTrue(v) ? "yes" : "no";
        else if (cJSON_IsNumber(v)) {
                if (v->valuedouble == (double)(long long)v->valuedouble)
                        snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
                else
                        snprintf(num, sizeof(num), "%g", v->valuedouble);
                s = num;
        } else if (cJSON_IsRaw(v))
                s = v->valuestring;     /* an exact number */
        fprintf(f, "%s%s%s=", *first ? "" : " ", key,
                /* --shell: off the names bash keeps read-only */
                (flags & OUT_SHELLVAR) && (strcmp(key, "UID") == 0 || strcmp(key, "EUID") == 0 ||
                                           strcmp(key, "PPID") == 0) ? "_" : "");
        put_quoted(f, s);
        *first = 0;
}

/* The scalars of obj and of the objects in it, on the current line. */
static void export_fields(FILE *f, const cJSON *obj, const char *prefix, unsigned flags,
                          int *first)
{
        const cJSON *v;
        char key[256];

        cJSON_ArrayForEach(v, obj) {
                if (cJSON_IsArray(v))
                        continue;
                export_key(key, sizeof(key), prefix, v->string);
                if (cJSON_IsObject(v))
                        export_fields(f, v, key, flags, first);
                else
                        export_value(f, key, v, flags, first);
        }
}

/* The arrays in obj (and in the objects in it): a line an element. */
static void export_arrays(FILE *f, const cJSON *obj, const char *prefix, unsigned flags)
{
        const cJSON *v, *e;
        char key[256];

        cJSON_ArrayForEach(v, obj) {
                if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
                        continue;
                export_key(key, sizeof(key), prefix, v->string);
                if (cJSON_IsObject(v)) {
                        export_arrays(f, v, key, flags);
                        continue;
                }
                cJSON_ArrayForEach(e, v) {
                        int first = 1;
                        if (cJSON_IsObject(e))
                                export_fields(f, e, key, flags, &first);
                        else if (!cJSON_IsArray(e))
                                export_value(f, key, e, flags, &first);
                        if (!first)
                                fputc('\n', f);
                        if (cJSON_IsObject(e))
                                export_arrays(f, e, key, flags);
                }
        }
}

int out_export_doc(FILE *f, const cJSON *doc, unsigned flags)
{
        int first = 1;

        export_fields(f, doc, "", flags, &first);
        if (!first)
                fputc('\n', f);
        export_arrays(f, doc, "", flags);
        return ferror(f) ? -EIO : 0;
}

/* out_table() of records (a cJSON array), or else of the n regions (not
 * for --export and --shell). */
static int table(FILE *f, const cJSON *records, const ashmem_region_info *regions, size_t n,
                 const int *cols, int ncols, unsigned flags)
{
        struct libscols_table *tb;
        int r;

        if (records && (flags & (OUT_EXPORT | OUT_SHELLVAR)))
                return export_table(f, records, cols, ncols, flags);
        if (records ? !records->child : !n) {
                /* libsmartcols prints nothing for no lines: the heading
                 * alone, as lsipc does */
                if (flags & OUT_NOHEADINGS)
                        return 0;
                for (int c = 0; c < ncols; c++)
                        fprintf(f, "%s%s", c ? " " : "", out_cols[cols[c]].name);
                fputc('\n', f);
                return ferror(f) ? -EIO : 0;
        }
        tb = make_table(records, regions, n, cols, ncols, flags);
        if (!tb)
                return scols.state < 0 ? -ELIBACC : -ENOMEM;
        r = sc.scols_table_set_stream(tb, f);
        if (r == 0)
                r = sc.scols_print_table(tb);
        sc.scols_unref_table(tb);
        return r < 0 ? r : 0;
}

int out_table(FILE *f, const cJSON *records, const int *cols, int ncols,
              unsigned flags)
{
        return table(f, records, NULL, 0, cols, ncols, flags);
}

int out_region_table(FILE *f, const ashmem_region_info *regions, size_t n, const int *cols,
                     int ncols, unsigned flags)
{
        if (flags & (OUT_EXPORT | OUT_SHELLVAR))
                return -ENOTSUP;
        for (size_t i = 0; i < n; i++) {
                const ashmem_region_info *r = &regions[i];
                if (!region_utf8(r))
                        return -ENOTSUP;
        }
        return table(f, NULL, regions, n, cols, ncols, flags);
}

int out_table_string(const cJSON *records, const int *cols, int ncols,
                     unsigned flags, size_t termwidth, char **ret)
{
        struct libscols_table *tb;
        int r = 0;

        *ret = NULL;
        if (!cJSON_GetArraySize(records)) {
                /* the heading alone (see out_table) */
                char *buf = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&buf, &len);
                if (!f)
                        return -errno;
                r = out_table(f, records, cols, ncols, flags);
                if (fclose(f) == EOF && r == 0)
                        r = -errno;
                if (r < 0) {
                        free(buf);
                        return r;
                }
                *ret = buf;
                return 0;
        }
        tb = make_table(records, NULL, 0, cols, ncols, flags);
        if (!tb)
                return scols.state < 0 ? -ELIBACC : -ENOMEM;
        if (termwidth) {
                /* a terminal of that width: long fields shortened to fit */
                r = sc.scols_table_set_termforce(tb, SCOLS_TERMFORCE_ALWAYS);
                if (r == 0)
                        r = sc.scols_table_set_termwidth(tb, termwidth);
        }
        if (r == 0)
                r = sc.scols_print_table_to_string(tb, ret);
        sc.scols_unref_table(tb);
        if (r == 0 && !*ret)
                r = -ENOMEM;
        return r < 0 ? r : 0;
}

cJSON *out_record_pick(const cJSON *rec, const int *cols, int ncols)
{
        cJSON *o = cJSON_CreateObject();

        for (int c = 0; o && c < ncols; c++) {
                const char *k = out_cols[cols[c]].key;
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, k);
                if (cJSON_GetObjectItemCaseSensitive(o, k))
                        continue;       /* a column asked for twice */
                cJSON_AddItemToObject(o, k, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
        }
        return o;
}

/* "Label:  value" lines, every field src has. */
static void record_lines(FILE *f, val_fn *get, const void *src, unsigned flags)
{
        size_t lw = 0;
        char buf[128];

        for (int i = 0; out_cols[i].name; i++)
                if (strlen(out_cols[i].label) > lw)
                        lw = strlen(out_cols[i].label);
        for (int i = 0; out_cols[i].name; i++) {
                const struct out_col *c = &out_cols[i];
                struct out_val v;
                const char *s;
                get(src, c->key, &v);
                if ((c->flags & (OUT_COL_SLICE | OUT_COL_TOP)) && v.kind == VAL_ABSENT)
                        continue;
                s = val_text(get, src, c, &v, flags, buf, sizeof(buf));
                fprintf(f, "%s:%*s %s", c->label, (int)(lw - strlen(c->label)), "", s);
                /* sizes: exact bytes beside the human form */
                if (c->kind == OUT_BYTES && !(flags & OUT_BYTES_EXACT) && v.kind == VAL_NUM &&
                    v.n >= 1024)
                        fprintf(f, " (%s bytes)", num_text(v.n, buf, sizeof(buf)));
                fputc('\n', f);
        }
}

void out_record_text(FILE *f, const cJSON *rec, unsigned flags)
{

        if (flags & (OUT_RAW | OUT_EXPORT | OUT_SHELLVAR)) {
                /* for scripts: a one-line table of every field it has */
                int cols[OUT_MAX_COLS], n = 0;
                cJSON *one = cJSON_CreateArray();
                for (int i = 0; out_cols[i].name && n < OUT_MAX_COLS; i++)
                        if (!(out_cols[i].flags & (OUT_COL_SLICE | OUT_COL_TOP)) ||
                            cJSON_GetObjectItemCaseSensitive(rec, out_cols[i].key))
                                cols[n++] = i;
                if (one && cJSON_AddItemReferenceToArray(one, (cJSON *)rec))
                        (void)out_table(f, one, cols, n, flags);
                cJSON_Delete(one);
                return;
        }

        record_lines(f, json_val, rec, flags);
}

int out_region_fields(struct out *o, const ashmem_region_info *info)
{
        cJSON *rec;

        if (!o->json && !o->text)
                return 0;       /* --quiet */
        if (!o->json && !(o->flags & OUT_RAW) && region_utf8(info)) {
                /* the lines straight from the answer: no cJSON object to
                 * build (nor libcjson to load) for text */
                struct region_src rs = { .r = info };
                record_lines(stdout, region_val, &rs, o->flags);
                return 0;
        }
        rec = out_region_record(info);
        if (!rec)
                return -1;
        out_record(o, rec);
        return 0;
}

int out_region(struct cmd_ctx *ctx, const ashmem_region_info *info)
{
        struct out o;

        out_begin(&o, ctx, OUT_REPORT);
        if (out_region_fields(&o, info) < 0) {
                out_discard(&o);
                return cmd_error(ctx, ENOMEM, "building the record");
        }
        return out_end(&o);
}

int out_region_list(struct cmd_ctx *ctx, cJSON *records, const int *cols, int ncols,
                    unsigned flags)
{
        cJSON *doc;

        if (!ctx->json) {
                int r = out_table(stdout, records, cols, ncols, flags | ctx->out_flags);
                cJSON_Delete(records);
                if (r == -ELIBACC)
                        return cli_error(ctx, -r, "printing the list: %s", out_table_error());
                return r < 0 ? cmd_error(ctx, -r, "printing the list") : 0;
        }
        doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddItemToObject(doc, "regions", records)) {
                cJSON_Delete(doc);
                cJSON_Delete(records);
                return cmd_error(ctx, ENOMEM, "building JSON output");
        }
        return out_json(ctx, doc);
}

int out_columns(struct cmd_ctx *ctx)
{
        if (ctx->json)
                return out_json(ctx, out_cols_json());
        out_cols_help(stdout);
        return 0;
}
