/* SPDX-License-Identifier: MIT */
/* ashmemctl: global options, then one command from the table. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "region.h"

/* ASHMEM_DRIVER as the library reads it (unset, auto or memfd): 0, or
 * EXIT_USAGE with the variable and the values it takes named. */
static int check_driver(struct cmd_ctx *ctx)
{
        const char *v = getenv("ASHMEM_DRIVER");

        if (!v || !*v || strcmp(v, "auto") == 0 || strcmp(v, "memfd") == 0)
                return 0;
        if (strcmp(v, "ashmem") == 0)
                return cmd_usage(ctx, "ASHMEM_DRIVER=ashmem (environment): this build has no "
                                 "/dev/ashmem driver; use auto or memfd, or unset it");
        return cmd_usage(ctx, "ASHMEM_DRIVER=%s (environment): no such driver; "
                         "the values are auto and memfd (or unset it)", v);
}

/* ASHMEM_IDLE_EXIT, what an auto-started broker gets as --idle-exit: 0, or
 * EXIT_USAGE when it is not a number of seconds. */
static int check_idle_exit(struct cmd_ctx *ctx)
{
        const char *v = getenv("ASHMEM_IDLE_EXIT");
        size_t n = v ? strspn(v, "0123456789") : 0;

        if (!v || (n > 0 && n <= 8 && !v[n]))
                return 0;
        return cmd_usage(ctx, "ASHMEM_IDLE_EXIT=%s (environment): not a number of seconds "
                         "(0 to 99999999; 0: an auto-started broker never exits)", v);
}

int main(int argc, char **argv)
{
        struct cmd_ctx ctx = { 0 };
        const char *na = getenv("ASHMEM_NO_AUTOSTART");
        int ind, r;

        if (na && strcmp(na, "1") == 0)
                ctx.no_autostart = NOAUTO_ENV;
        r = cmd_parse_globals(&ctx, argc, argv, &ind);
        /*
         * A one-shot command: the heap grows by what it needs, not by
         * malloc's default 128 KiB pad. A broker connection carries two
         * message buffers (128 KiB) that calloc() would otherwise carve
         * out of that pad and clear byte by byte, faulting in 32 pages
         * for a request and a reply that fill one or two: past the pad
         * they come from mmap() already zero, and only the pages used are
         * touched. The broker daemon keeps malloc's defaults.
         */
        if (r == 0 && ind < argc && strcmp(argv[ind], "broker") != 0)
                (void)mallopt(M_TOP_PAD, 16 * 1024);
        if (r == CMD_PARSE_HELP) {
                cmd_print_overview(stdout, 0);
                r = 0;
        } else if (r == CMD_PARSE_VERSION) {
                r = cmd_run_version(&ctx);
        } else if (r) {
                return r;
        } else if ((ind == argc || strcmp(argv[ind], "__complete") != 0) &&
                   ((r = check_driver(&ctx)) || (r = check_idle_exit(&ctx)))) {
                return r;
        } else if (ind == argc) {
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
        region_forget_closed();
        (void)ashmem_collect();         /* a scan only if some are left */
        return r;
}
