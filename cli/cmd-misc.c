/* SPDX-License-Identifier: MIT */
/* help and version. */
#include <stdlib.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "output.h"

static int help_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        char err[512];
        const struct cmd_entry *e;

        if (a->argc == 0) {
                cmd_print_overview(stdout, ctx->shell != NULL);
                return 0;
        }
        e = cmd_find(a->argv[0], err, sizeof(err));
        if (!e)
                return cmd_usage(ctx, "%s", err);
        cmd_print_help(stdout, e);
        return 0;
}

static const char *const help_complete[] = { "command", NULL };

const struct cmd_entry cmd_help_entry = {
        .name = "help", .args_usage = "[COMMAND]", .exec = help_exec,
        .summary = "show the commands, or one command's help",
        .max_args = 1, .complete_args = help_complete,
};

static int version_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct out o;

        (void)a;
        out_begin(&o, ctx, 0);
        out_str(&o, OUT_ANY, "version", "ashmemctl %s", ASHMEM_VERSION);
        out_str(&o, OUT_ANY, "driver", " (driver %s)\n", ashmem_driver_name());
        return out_end(&o);
}

const struct cmd_entry cmd_version_entry = {
        .name = "version", .exec = version_exec,
        .summary = "show the version",
};
