/* SPDX-License-Identifier: MIT */
/* ashmemctl: global options, then one command from the table. */
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "cmd.h"

static int global_opts(struct cmd_ctx *ctx, int argc, char **argv, int *ind)
{
        int i;

        for (i = 1; i < argc; i++) {
                const char *w = argv[i];
                if (w[0] != '-' || w[1] == 0)
                        break;
                if (strcmp(w, "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(w, "-j") == 0 || strcmp(w, "--json") == 0)
                        ctx->json = 1;
                else if (strcmp(w, "-q") == 0 || strcmp(w, "--quiet") == 0)
                        ctx->quiet = 1;
                else if (strcmp(w, "--no-autostart") == 0)
                        ctx->no_autostart = 1;
                else if (strncmp(w, "--socket=", 9) == 0)
                        ctx->socket = w + 9;
                else if (strcmp(w, "--socket") == 0) {
                        if (++i == argc)
                                return cmd_usage(ctx, "option --socket needs an argument (PATH)");
                        ctx->socket = argv[i];
                } else if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
                        cmd_print_overview(stdout, 0);
                        return -1;
                } else if (strcmp(w, "-V") == 0 || strcmp(w, "--version") == 0) {
                        char *v[] = { (char *)"version", NULL };
                        int r = cmd_run(ctx, 1, v);
                        return r ? r : -1;
                } else {
                        return cmd_usage(ctx, "unknown option: %s", w);
                }
        }
        *ind = i;
        return 0;
}

int main(int argc, char **argv)
{
        struct cmd_ctx ctx = { 0 };
        const char *na = getenv("ASHMEM_NO_AUTOSTART");
        int ind = argc, r;

        setlocale(LC_CTYPE, "");
        if (na && strcmp(na, "1") == 0)
                ctx.no_autostart = 1;
        r = global_opts(&ctx, argc, argv, &ind);
        if (r)
                return r < 0 ? 0 : r;
        if (ind == argc) {
                /* no command: the shell (a script when stdin is not a
                 * terminal) */
                char *shell[] = { (char *)"shell", NULL };
                r = cmd_run(&ctx, 1, shell);
        } else {
                r = cmd_run(&ctx, argc - ind, argv + ind);
        }
        /* leave nothing behind: the broker connection, and the library's
         * control blocks of the regions the command used */
        cmd_broker_close(&ctx);
        (void)ashmem_collect();
        return r;
}
