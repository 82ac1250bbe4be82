/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "output.h"

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
