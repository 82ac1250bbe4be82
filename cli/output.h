/* SPDX-License-Identifier: MIT */
/*
 * One output path for text and JSON: a command builds its result once as a
 * cJSON document and renders it with these helpers, so the two forms never
 * say different things.
 */
#ifndef ASHMEMCTL_OUTPUT_H
#define ASHMEMCTL_OUTPUT_H

#include <cjson/cJSON.h>

struct cmd_ctx;

/* Print doc as one line of JSON on stdout and free it. Returns 0, or 1
 * (through cmd_error) if it cannot be printed. */
int out_json(struct cmd_ctx *ctx, cJSON *doc);

#endif
