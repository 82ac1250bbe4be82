/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by ashmemctl's region commands (cmd-region.c, cmd-pin.c,
 * cmd-data.c, cmd-value.c, cmd-share.c): argument checks that report usage
 * errors, the broker connection, errors named after the region, and a
 * region attached through the broker with its view and mappings.
 */
#ifndef ASHMEMCTL_REGION_H
#define ASHMEMCTL_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "ashmem/ashmem.h"
#include "cmd.h"
#include "lib/internal/page.h"     /* am_page_size() */

/* Report an error like cmd_error() but with the errno named only in JSON
 * (the text message says what went wrong by itself). Returns 1. */
int cli_error(struct cmd_ctx *ctx, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* A broker operation on region `name` failed with r (negative errno):
 * "no such region: NAME", "NAME: permission denied", ... Returns 1. */
int cli_broker_error(struct cmd_ctx *ctx, int r, const char *name);
/* The message of cli_broker_error() into buf; why: the broker's own words
 * for the refusal (ashmem_broker_error()), "" or NULL if none. */
void cli_broker_message(int r, const char *name, const char *why, char *buf, size_t len);
/* The broker's words for its refusal of the last request of ctx's
 * connection ("" if none). */
const char *cli_broker_why(const struct cmd_ctx *ctx);
/* A broker request that is about no one region (what: "listing regions")
 * failed with r: "WHAT: WHY" with the broker's words why (NULL or "" if
 * none: the errno's text, or for EMFILE the limits that may be reached).
 * Returns 1. */
int cli_broker_fail(struct cmd_ctx *ctx, int r, const char *why, const char *what);

/* The broker connection, or an error reported ("cannot reach the broker",
 * "no broker is running on PATH"). Returns 0 or 1. */
int cli_broker(struct cmd_ctx *ctx, ashmem_broker **ret);
/* The same, but no broker running (for a command that does not start one)
 * is no error: 0 with *ret NULL (list: nothing to list). */
int cli_broker_opt(struct cmd_ctx *ctx, ashmem_broker **ret);
/* The same for a command about region name: no broker running (for a
 * command that does not start one) is "no such region: NAME". */
int cli_broker_name(struct cmd_ctx *ctx, const char *name, ashmem_broker **ret);

/* Parse an argument, reporting a usage error. Return 0 or EXIT_USAGE. */
int arg_name(struct cmd_ctx *ctx, const char *s);
int arg_size(struct cmd_ctx *ctx, const char *what, const char *s, uint64_t *ret);
int arg_offset(struct cmd_ctx *ctx, const char *what, const char *s, uint64_t *ret);
/* A mode (parse_mode) into *ret; s NULL (not given) leaves *ret alone. */
int arg_mode(struct cmd_ctx *ctx, const char *s, int *ret);
/* An option only the shell can honour, given outside it: a usage error,
 * "WHAT: use it in 'ashmemctl shell'". */
int arg_shell_only(struct cmd_ctx *ctx, int given, const char *what);

/* A region attached through the broker. For a slice the descriptor is the
 * whole region's and [off, off+len) the view; commands address bytes
 * relative to the view. */
struct region {
        const char *name;
        int fd;                 /* close-on-exec, read-write or read-only */
        int writable;           /* attached for writing */
        size_t size;            /* the whole region's size */
        size_t off, len;        /* the view */
};

/* Attach name (writable: read-write access) through the broker. Returns 0,
 * or 1 with the error reported. */
int region_attach(struct cmd_ctx *ctx, const char *name, int writable,
                  struct region *r);
/* The same for a name that must belong to owner ((uid_t)-1: anyone's):
 * another owner's is refused with a message, and no descriptor taken. */
int region_attach_owned(struct cmd_ctx *ctx, const char *name, int writable, uid_t owner,
                        struct region *r);
void region_release(struct region *r);
/* Close a region descriptor the library has seen (the broker's answer or
 * region_attach), noting the region so region_forget_closed() can drop the
 * library's pin state of it without a scan of /proc/self. */
void region_close_fd(int fd);
/* At exit, every region descriptor closed: make the library drop the
 * control blocks of the regions closed with region_close_fd() (what
 * ashmem_collect() finds by scanning /proc/self/fd and /proc/self/maps,
 * which it then has no reason to do). */
void region_forget_closed(void);

/* Resolve [*off, *off + *len) within the view: *len 0 means "to the end of
 * the view". Returns 0, or 1 with "offset/length past the end" reported. */
int region_range(struct cmd_ctx *ctx, const struct region *r, uint64_t *off,
                 uint64_t *len);

/* A mapping of part of a region. */
struct mapping {
        void *base;             /* what mmap returned */
        size_t maplen;
        unsigned char *ptr;     /* the first byte asked for */
};

/* Map [off, off+len) of the view (len > 0) with prot. Returns 0, or 1 with
 * the error reported ("NAME is read-only", ...). */
int region_map(struct cmd_ctx *ctx, const struct region *r, int prot,
               uint64_t off, uint64_t len, struct mapping *m);
void mapping_release(struct mapping *m);

/*
 * The shell's local regions (`create --local`, then `share NAME`): a
 * region held by the shell process itself. The shell sets cli_local while
 * it runs; outside the shell it is NULL and these forms are usage errors.
 *   add:  keep fd (ownership passes) under name; 0 or a negative errno.
 *   find: a descriptor (still the shell's) of the local region name, or
 *         -ENOENT.
 */
struct cli_local_ops {
        int (*add)(struct cmd_ctx *ctx, const char *name, int fd);
        int (*find)(struct cmd_ctx *ctx, const char *name);
};
extern const struct cli_local_ops *cli_local;

/* Fill a region record for a descriptor this process holds (a local
 * region, or one about to be shared): name, size, prot, pin counts, owner. */
int region_info_of_fd(int fd, ashmem_region_info *info);

#endif
