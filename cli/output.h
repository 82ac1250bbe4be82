/* SPDX-License-Identifier: MIT */
/*
 * One output path for text and JSON: a command builds its result once as a
 * cJSON document and renders it with these helpers, so the two forms never
 * say different things.
 *
 * Region records: out_region_record() builds the region record of
 * ashmem-protocol(7) from the broker's answer. One column table, out_cols[], (like
 * lsipc's coldescs) describes every field once: its column name and JSON
 * key, its label for `info`, its help line, how to render it as text. The
 * table drives the default columns of `list`, `-o/--output`, the column
 * help (`list --list-columns`), the key/value lines of `info` and the
 * fields kept in JSON when columns are chosen.
 */
#ifndef ASHMEMCTL_OUTPUT_H
#define ASHMEMCTL_OUTPUT_H

#include <stdio.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "ashmem/ashmem.h"

struct cmd_ctx;
struct out;

/* The character type of the user's locale (LC_CTYPE from the environment),
 * set the first time it is needed: by whatever measures display width or
 * decodes multibyte text through the C library (libsmartcols tables, top,
 * the shell and readline). The rest of the output escapes and validates
 * UTF-8 on its own and needs no locale; a one-shot command that prints no
 * table does not pay for loading one. */
void out_locale(void);

/* Print doc as one line of JSON on stdout and free it. Returns 0, or 1
 * (through cmd_error) if it cannot be printed. */
int out_json(struct cmd_ctx *ctx, cJSON *doc);

/* The region record as a new cJSON object (NULL if out of memory). */
cJSON *out_region_record(const ashmem_region_info *r);

enum out_kind {
        OUT_STR,        /* a string field */
        OUT_NUM,        /* a count */
        OUT_BYTES,      /* a byte count: human-readable unless --bytes */
        OUT_BOOL,       /* yes / no */
        OUT_TIME,       /* ISO 8601 UTC in JSON, local time in text */
        OUT_OWNER,      /* user name (uid if none) */
        OUT_GROUP,      /* group name (gid if none) */
};

struct out_col {
        const char *name;       /* column name, as -o takes it: "SIZE" */
        const char *key;        /* JSON key: "size" */
        const char *label;      /* info's label: "Size" */
        const char *help;       /* one line for the column list */
        enum out_kind kind;
        unsigned flags;         /* OUT_COL_* */
};

#define OUT_COL_DEFAULT 0x1u    /* shown by `list` without -o */
#define OUT_COL_RIGHT   0x2u    /* right-aligned */
#define OUT_COL_SLICE   0x4u    /* only slices have it */
#define OUT_COL_TRUNC   0x8u    /* may be shortened to fit a terminal
                                   (not with --notruncate) */
#define OUT_COL_TOP     0x10u   /* only top measures it (resident pages) */

extern const struct out_col out_cols[];

#define OUT_MAX_COLS 32

/* Columns from a -o list: "NAME,SIZE" (case does not matter), or "+COLS"
 * for the default columns and these. NULL spec: the default columns.
 * allow: OUT_COL_TOP to accept the columns only top fills (else they are
 * refused with a message).
 * Fills cols[] with indexes into out_cols[]; returns their number, or -1
 * with a message in err (PARSE_ERR_LEN bytes). */
int out_cols_select(const char *spec, unsigned allow, int *cols, char *err);

/* The columns, their help lines and which are default, for --help. */
void out_cols_help(FILE *f);
/* The same as JSON: {"columns":[{"name","key","help","default"}...]}. */
cJSON *out_cols_json(void);

#define OUT_BYTES_EXACT 0x1u    /* --bytes */
#define OUT_NOHEADINGS  0x2u    /* --noheadings */
/* 0x4u is OUT_REPORT (below) */
#define OUT_RAW         0x8u    /* --raw: tables unaligned, one space between
                                   fields, unsafe characters as \xNN (lsblk
                                   -r); string values as their bytes */
#define OUT_EXPORT      0x10u   /* --export: KEY="value" pairs (lsblk -P) */
#define OUT_SHELLVAR    0x20u   /* --shell: --export with keys a shell can assign (UID_) */
#define OUT_NOTRUNC     0x40u   /* --notruncate: never shorten a field */
#define OUT_TIME_SHORT  0x100u  /* --time-format short: "12:04" today, else "May01" */
#define OUT_TIME_FULL   0x200u  /* --time-format full: "Wed May  1 12:04:03 2024" */
#define OUT_TIME_ISO    0x400u  /* --time-format iso: "2024-05-01T12:04:03+0200" */
#define OUT_TIME_MASK   (OUT_TIME_SHORT | OUT_TIME_FULL | OUT_TIME_ISO)

/* --time-format's argument as its OUT_TIME_* flag: 0, or -1 with a
 * message in err (PARSE_ERR_LEN bytes). */
int out_time_format(const char *s, unsigned *flag, char *err);
/* A time for people in the form flags choose (without one: local time
 * "2024-05-01T12:04:03"). */
const char *out_time_text(time_t t, unsigned flags, char *buf, size_t len);

/*
 * Bytes from a region or a peer, made safe to show or to put in JSON.
 * out_escape: printable UTF-8 as it is; every other byte (C0 and C1
 * control characters, DEL, bytes that are not valid UTF-8, code points
 * that are invisible or look like a blank (bidirectional overrides,
 * zero-width spaces: am_look_alike()), and the backslash when
 * OUT_ESC_BACKSLASH, so that the form reads back) as \xNN,
 * the form lsblk uses; with OUT_ESC_KEEP_LINES a newline and a tab stay
 * (they lay text out but drive no terminal). Returns a new string, NULL
 * if out of memory.
 */
#define OUT_ESC_BACKSLASH  0x1u
#define OUT_ESC_KEEP_LINES 0x2u
char *out_escape(const char *s, size_t n, unsigned how);
/* Is s (n bytes) valid UTF-8 (and so fit for a JSON string)? */
int out_utf8_valid(const char *s, size_t n);
/* base64 (RFC 4648, with padding) of n bytes; NULL if out of memory. */
char *out_base64(const unsigned char *p, size_t n);
/* Add string s under key to a JSON object: as it is when valid UTF-8,
 * else base64 with "KEY_encoding":"base64" beside it. 0, or -1 if out of
 * memory. */
int out_json_string(cJSON *obj, const char *key, const char *s);

/* One field of a record as text (buf at least 64 bytes; a string field
 * may be returned without copying). "-" for an absent field. */
const char *out_field_text(const cJSON *rec, const struct out_col *c,
                           unsigned flags, char *buf, size_t len);

/* A table of records (a cJSON array) with the chosen columns, through
 * libsmartcols: aligned by display width, or as --raw, --export, --shell
 * say. 0, or -errno. */
int out_table(FILE *f, const cJSON *records, const int *cols, int ncols,
              unsigned flags);
/* The same for the regions of a list, the records' text taken straight
 * from them (no cJSON objects); -ENOTSUP for --export and --shell, and for
 * a region with a string that is not UTF-8 (out_table() shows its base64). */
int out_region_table(FILE *f, const ashmem_region_info *regions, size_t n, const int *cols,
                     int ncols, unsigned flags);
/* Why out_table() failed when it could not load libsmartcols. */
const char *out_table_error(void);
/* The same into a new string (for a screen redrawn whole, as top does),
 * termwidth columns wide at most (0: no limit). */
int out_table_string(const cJSON *records, const int *cols, int ncols,
                     unsigned flags, size_t termwidth, char **ret);

/*
 * A command's result (not a table of records) as --export and --shell
 * print it: the document's scalar fields on one line, KEY="value" pairs,
 * each key the JSON key in capitals (a nested object's keys behind its own
 * and "_": STATS_UPTIME); then each element of an array on a line of its
 * own, its keys behind the array's (rm: REMOVED="a", FAILED_NAME="b"
 * FAILED_ERRNO="ENOENT" ...). Numbers as in JSON (sizes in bytes), true
 * and false as yes and no, null as "". 0, or -EIO.
 */
int out_export_doc(FILE *f, const cJSON *doc, unsigned flags);

/* A copy of rec with only the chosen columns' keys. */
cJSON *out_record_pick(const cJSON *rec, const int *cols, int ncols);

/* A record as "Label:  value" lines, every field it has. */
void out_record_text(FILE *f, const cJSON *rec, unsigned flags);

/* A region's record into o: its fields in the JSON being built, or its
 * text lines (as out_record_text() prints them) printed at once. 0, or -1
 * if out of memory. */
int out_region_fields(struct out *o, const ashmem_region_info *info);

/* Print a region's record: text lines, or the JSON record with --json;
 * nothing with --quiet. Returns the exit status. */
int out_region(struct cmd_ctx *ctx, const ashmem_region_info *info);

/* list: records (a cJSON array, taken) as {"regions":[...]} or a table of
 * the chosen columns. --list-columns: the column help, or its JSON. */
int out_region_list(struct cmd_ctx *ctx, cJSON *records, const int *cols, int ncols,
                    unsigned flags);
int out_columns(struct cmd_ctx *ctx);

/*
 * A command's result, printed as text or JSON by the same calls: each
 * field is given once, with its JSON key and its text form, a printf
 * format taking the value. With --json the fields
 * build one document, printed by out_end(); else the text forms print at
 * once on stdout. `to` says where a field goes: both forms, only JSON (a
 * value the text leaves out) or only text.
 */
enum out_to { OUT_ANY, OUT_JSON, OUT_TEXT };

#define OUT_REPORT      0x4u    /* the text reports what was done: --quiet
                                   silences it (not the JSON) */

#define OUT_DEPTH 4

struct out {
        struct cmd_ctx *ctx;
        unsigned flags;         /* OUT_REPORT, OUT_BYTES_EXACT */
        int json;               /* building a JSON document */
        int export;             /* ... for --export/--shell: out_end()
                                   prints it as KEY="value" lines */
        int text;               /* printing the text forms */
        cJSON *doc;
        cJSON *cur[OUT_DEPTH];  /* what fields go into: object or array */
        int depth;
        int oom;
};

void out_begin(struct out *o, struct cmd_ctx *ctx, unsigned flags);
/* Print the JSON document (text is out already). Returns 0, or 1 (with the
 * error reported) if it could not be built. */
int out_end(struct out *o);
/* Forget the result: the command failed after all. */
void out_discard(struct out *o);

/* Text for people only: headings, words between fields. */
void out_text(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fields; key is NULL inside an array. fmt is the text form: a printf
 * format with one conversion, of the value's type (%s for out_str,
 * out_size and out_raw, %llu for out_u64, %lld for out_i64), with its
 * width and the words around it; NULL for OUT_JSON. */
void out_str(struct out *o, enum out_to to, const char *key, const char *fmt,
             const char *v);
void out_u64(struct out *o, enum out_to to, const char *key, const char *fmt,
             unsigned long long v);
void out_i64(struct out *o, enum out_to to, const char *key, const char *fmt,
             long long v);
/* A byte count: a number in JSON; in text fmt takes a string, the size
 * human-readable ("4K") unless OUT_BYTES_EXACT. */
void out_size(struct out *o, enum out_to to, const char *key, const char *fmt,
              unsigned long long v);
/* true/false in JSON; in text the word yes or no, as it is. */
void out_bool(struct out *o, enum out_to to, const char *key, const char *yes,
              const char *no, int v);
/* A value already in JSON's form (an exact 64-bit number); fmt shows it. */
void out_raw(struct out *o, enum out_to to, const char *key, const char *fmt,
             const char *json);
/* JSON only: an item built elsewhere (taken, freed in text mode). */
void out_item(struct out *o, const char *key, cJSON *item);
/* A region record (taken): its fields in JSON, its "Label: value" lines
 * in text. */
void out_record(struct out *o, cJSON *rec);
/* Bytes at offset at: a hex string in JSON, hexdump -C lines in text
 * (a line like the one before it shown as '*'), then the end offset. */
void out_hexdump(struct out *o, const char *key, const unsigned char *p, size_t len,
                 unsigned long long at);

/* Objects and arrays in the JSON document; nothing in text. */
void out_open_object(struct out *o, const char *key);
void out_open_array(struct out *o, const char *key);
void out_close(struct out *o);

/* Whether a command may talk to people on stderr (progress, notes): not
 * with --json or --quiet. */
int out_chatty(const struct cmd_ctx *ctx);

/* Print an error (cmd_verror): "ashmemctl: CMD: msg" on stderr, and with
 * usage the command's usage line; with --json one error object. */
void out_error(struct cmd_ctx *ctx, int err, const char *msg, int usage);

#endif
