/* SPDX-License-Identifier: MIT */
/*
 * One output path for text and JSON: a command builds its result once as a
 * cJSON document and renders it with these helpers, so the two forms never
 * say different things.
 *
 * Region records: out_region_record() builds the record of DESIGN.md
 * section 6 from the broker's answer. One column table, out_cols[], (like
 * lsipc's coldescs) describes every field once: its column name and JSON
 * key, its label for `info`, its help line, how to render it as text. The
 * table drives the default columns of `list`, `-o/--output`, the column
 * help (`list --list-columns`), the key/value lines of `info` and the
 * fields kept in JSON when columns are chosen.
 */
#ifndef ASHMEMCTL_OUTPUT_H
#define ASHMEMCTL_OUTPUT_H

#include <stdio.h>
#include <cjson/cJSON.h>

#include "ashmem/ashmem.h"

struct cmd_ctx;

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

extern const struct out_col out_cols[];

#define OUT_MAX_COLS 32

/* Columns from a -o list: "NAME,SIZE" (case does not matter), or "+COLS"
 * for the default columns and these. NULL spec: the default columns.
 * Fills cols[] with indexes into out_cols[]; returns their number, or -1
 * with a message in err (PARSE_ERR_LEN bytes). */
int out_cols_select(const char *spec, int *cols, char *err);

/* The columns, their help lines and which are default, for --help. */
void out_cols_help(FILE *f);
/* The same as JSON: {"columns":[{"name","key","help","default"}...]}. */
cJSON *out_cols_json(void);

#define OUT_BYTES_EXACT 0x1u    /* --bytes */
#define OUT_NOHEADINGS  0x2u    /* --noheadings */

/* One field of a record as text (buf at least 64 bytes; a string field
 * may be returned without copying). "-" for an absent field. */
const char *out_field_text(const cJSON *rec, const struct out_col *c,
                           unsigned flags, char *buf, size_t len);

/* An aligned table of records (a cJSON array) with the chosen columns. */
void out_table(FILE *f, const cJSON *records, const int *cols, int ncols,
               unsigned flags);

/* A copy of rec with only the chosen columns' keys. */
cJSON *out_record_pick(const cJSON *rec, const int *cols, int ncols);

/* A record as "Label:  value" lines, every field it has. */
void out_record_text(FILE *f, const cJSON *rec, unsigned flags);

/* Print a region's record: text lines, or the JSON record with --json;
 * nothing with --quiet. Returns the exit status. */
int out_region(struct cmd_ctx *ctx, const ashmem_region_info *info);

#endif
