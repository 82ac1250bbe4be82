/* SPDX-License-Identifier: MIT */
/*
 * read, write, dump: bytes in and out of a region. Transfers go straight
 * between the file and the region's mapping (read(2) into it, write(2) out
 * of it), with no staging buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"
#include "lib/internal/clock.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14 */
#endif

#define CHUNK           ((size_t)8 << 20)       /* per system call, and per progress step */
#define PIPE_GROW_MIN   ((uint64_t)1 << 20)     /* transfers above this grow the pipe */
#define PIPE_SIZE       (1 << 20)               /* to this (the default unprivileged limit) */
#define PROGRESS_MIN    ((uint64_t)64 << 20)    /* transfers above this show progress */

/* ---------------------------------------------------------------- progress */

struct progress {
        const char *what;       /* "read NAME" */
        const char *name;
        uint64_t total;         /* 0 if unknown */
        int on;
        int shown;
        long long last;         /* when it was drawn last (ms) */
};

static void progress_init(struct progress *p, struct cmd_ctx *ctx, const char *what,
                          const char *name, uint64_t total)
{
        p->what = what;
        p->name = name;
        p->total = total;
        p->shown = 0;
        p->on = out_chatty(ctx) && isatty(STDERR_FILENO);
}

static void progress_show(struct progress *p, uint64_t done)
{
        char d[32], t[32];
        long long now;

        if (!p->on || (p->total ? p->total : done) <= PROGRESS_MIN)
                return;
        /* ten times a second is plenty */
        now = am_mono_ms();
        if (p->shown && done != p->total && now - p->last < 100)
                return;
        p->last = now;
        format_size(done, d, sizeof(d));
        if (p->total) {
                format_size(p->total, t, sizeof(t));
                fprintf(stderr, "\rashmemctl: %s %s: %s / %s (%d%%)\033[K", p->what, p->name,
                        d, t, (int)(done * 100 / p->total));
        } else {
                fprintf(stderr, "\rashmemctl: %s %s: %s\033[K", p->what, p->name, d);
        }
        p->shown = 1;
}

static void progress_done(struct progress *p)
{
        if (p->shown)
                fputs("\r\033[K", stderr);
        p->shown = 0;
}

/* Write all of buf to fd, EINTR and short writes handled. 0 or -errno. */
static int write_all(int fd, const unsigned char *buf, size_t len)
{
        while (len) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

static const struct cmd_opt range_opts[] = {
        { "offset", 'o', "N", NULL, "start N bytes into the region (default 0)" },
        { "length", 'l', "N", NULL, "this many bytes (default: to the end)" },
        { 0 }
};

/* Attach name read-only and resolve --offset/--length: 0 or exit status. */
static int open_range(struct cmd_ctx *ctx, struct cmd_args *a, struct region *reg,
                      uint64_t *off, uint64_t *len)
{
        const char *name = a->argv[0], *os = cmd_opt(a, "offset"), *ls = cmd_opt(a, "length");
        int r;

        *off = *len = 0;
        if ((r = arg_name(ctx, name)))
                return r;
        if (os && (r = arg_offset(ctx, "offset", os, off)))
                return r;
        if (ls && (r = arg_size(ctx, "length", ls, len)))
                return r;
        if (region_attach(ctx, name, 0, reg))
                return 1;
        if (region_range(ctx, reg, off, len)) {
                region_release(reg);
                return 1;
        }
        return 0;
}

/* ---------------------------------------------------------------- read */

/* The region's protection must allow what the transfer does. */
static int check_prot(struct cmd_ctx *ctx, const struct region *r, int need)
{
        int mask = ashmem_get_prot(r->fd);
        char buf[4];

        if (mask < 0)
                return cmd_error(ctx, -mask, "%s", r->name);
        if (need & ~mask)
                return cli_error(ctx, EPERM, "%s: the region's protection is %s", r->name,
                                 format_prot(mask, buf));
        return 0;
}

/* Region bytes [pos, pos+len) to stdout. To a pipe or a file the kernel
 * moves the pages itself (sendfile); to anything else (a terminal,
 * /dev/null) write(2) takes them straight from a read-only mapping.
 * Returns 0, or an exit status with the error reported. */
static int read_out(struct cmd_ctx *ctx, const struct region *reg, uint64_t off, uint64_t len)
{
        struct progress pr;
        struct mapping m = { 0 };
        struct stat st;
        uint64_t done = 0;
        int r = 0, use_sendfile;

        if (fstat(STDOUT_FILENO, &st) < 0)
                return cmd_error(ctx, errno, "standard output");
        use_sendfile = S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode);
        /* a bigger pipe: fewer wake-ups on both sides (best effort) */
        if (S_ISFIFO(st.st_mode) && len > PIPE_GROW_MIN)
                (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, PIPE_SIZE);
        progress_init(&pr, ctx, "read", reg->name, len);
        while (use_sendfile && done < len) {
                off_t pos = (off_t)(reg->off + off + done);
                size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
                ssize_t k = sendfile(STDOUT_FILENO, reg->fd, &pos, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && done == 0 && (errno == EINVAL || errno == ENOSYS)) {
                        use_sendfile = 0;       /* not here: the mapping does it */
                        break;
                }
                if (k < 0) {
                        r = cmd_error(ctx, errno, "writing output");
                        goto out;
                }
                if (k == 0) {
                        r = cli_error(ctx, EIO, "%s: the region ended early", reg->name);
                        goto out;
                }
                done += (uint64_t)k;
                progress_show(&pr, done);
        }
        if (done < len) {
                if ((r = region_map(ctx, reg, PROT_READ, off, len, &m)))
                        goto out;
                while (done < len) {
                        size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
                        int e = write_all(STDOUT_FILENO, m.ptr + done, n);
                        if (e < 0) {
                                r = cmd_error(ctx, -e, "writing output");
                                goto out;
                        }
                        done += n;
                        progress_show(&pr, done);
                }
        }
out:
        progress_done(&pr);
        mapping_release(&m);
        return r;
}

static int read_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct region reg;
        struct mapping m;
        uint64_t off, len;
        int r;

        if ((r = open_range(ctx, a, &reg, &off, &len)))
                return r;
        if ((r = check_prot(ctx, &reg, PROT_READ)))
                goto out;
        /* read has no text rendering: without --json the bytes themselves
         * go out, streamed by the kernel (read_out) */
        if (ctx->json) {
                cJSON *doc = cJSON_CreateObject();
                char *s;
                if (len == 0) {
                        s = strdup("");
                } else {
                        if ((r = region_map(ctx, &reg, PROT_READ, off, len, &m))) {
                                cJSON_Delete(doc);
                                goto out;
                        }
                        s = out_base64(m.ptr, len);
                        mapping_release(&m);
                }
                if (!s) {
                        cJSON_Delete(doc);
                        r = cmd_error(ctx, ENOMEM, "%s: encoding", reg.name);
                        goto out;
                }
                cJSON_AddStringToObject(doc, "name", reg.name);
                cJSON_AddNumberToObject(doc, "offset", (double)off);
                cJSON_AddNumberToObject(doc, "length", (double)len);
                cJSON_AddStringToObject(doc, "base64", s);
                free(s);
                r = out_json(ctx, doc);
                goto out;
        }
        if (fflush(stdout) == EOF) {
                r = cmd_error(ctx, errno, "writing output");
                goto out;
        }
        if (len)
                r = read_out(ctx, &reg, off, len);
out:
        region_release(&reg);
        return r;
}

const struct cmd_entry cmd_read_entry = {
        .name = "read", .args_usage = "NAME", .flags = CMD_BROKER, .exec = read_exec,
        .summary = "copy a region's bytes to standard output",
        .opts = range_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};

/* ---------------------------------------------------------------- write */

static const struct cmd_opt write_opts[] = {
        { "offset", 'o', "N", NULL, "start N bytes into the region (default 0)" },
        { 0 }
};

/*
 * Input into the region, straight: from a regular file the kernel copies
 * the pages (sendfile, into a private open of the region so the file
 * offset is ours alone); from a pipe it splices them (at an explicit
 * offset); anything else is read(2) into a writable mapping, each chunk's
 * pages allocated in one go first (MADV_POPULATE_WRITE) rather than one
 * fault at a time.
 */
struct xfer {
        struct cmd_ctx *ctx;
        const struct region *reg;
        int in;
        const char *what;       /* the input, for messages */
        uint64_t off;           /* into the view */
        uint64_t room;          /* bytes to fill at most */
        uint64_t got;           /* bytes written so far */
        struct progress pr;
};

/* One step of a transfer into the region: the bytes moved (at most n), 0
 * at the end of the input, or -1 with errno. */
typedef ssize_t move_fn(struct xfer *x, int out, size_t n);

/* Move the input into the region (through out) until the input ends or
 * the room is full. Returns 0, or 1 with the error reported; *fallback
 * is set, with nothing moved, when move() cannot work on these files. */
static int move_all(struct xfer *x, int out, move_fn *move, int *fallback)
{
        while (x->got < x->room) {
                uint64_t left = x->room - x->got;
                ssize_t k = move(x, out, left < CHUNK ? (size_t)left : CHUNK);
                if (k < 0 && errno == EINTR && !cmd_interrupted)
                        continue;
                if (k < 0 && x->got == 0 && (errno == EINVAL || errno == ENOSYS)) {
                        *fallback = 1;
                        return 0;
                }
                if (k < 0)
                        return cmd_error(x->ctx, errno, "writing %s from %s (%llu bytes written)",
                                         x->reg->name, x->what, (unsigned long long)x->got);
                if (k == 0)
                        break;
                x->got += (uint64_t)k;
                progress_show(&x->pr, x->got);
        }
        return 0;
}

/* From a regular file: the kernel copies the pages (out is a private open
 * of the region, at the right offset). */
static ssize_t move_sendfile(struct xfer *x, int out, size_t n)
{
        return sendfile(out, x->in, NULL, n);
}

static int write_sendfile(struct xfer *x, int *fallback)
{
        char path[64];
        off_t pos = (off_t)(x->reg->off + x->off);
        int out, r;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", x->reg->fd);
        out = open(path, O_WRONLY | O_CLOEXEC);
        if (out < 0 || lseek(out, pos, SEEK_SET) != pos) {
                if (out >= 0)
                        close(out);
                *fallback = 1;
                return 0;
        }
        r = move_all(x, out, move_sendfile, fallback);
        close(out);
        return r;
}

/* From a pipe: the kernel splices the pages in, at an explicit offset. */
static ssize_t move_splice(struct xfer *x, int out, size_t n)
{
        loff_t pos = (loff_t)(x->reg->off + x->off + x->got);

        return splice(x->in, NULL, out, &pos, n, SPLICE_F_MOVE);
}

static int write_splice(struct xfer *x, int *fallback)
{
        /* a bigger pipe: fewer wake-ups on both sides (best effort) */
        if (x->room > PIPE_GROW_MIN)
                (void)fcntl(x->in, F_SETPIPE_SZ, PIPE_SIZE);
        return move_all(x, x->reg->fd, move_splice, fallback);
}

static int write_mapped(struct xfer *x)
{
        struct mapping m;
        int r;

        if ((r = region_map(x->ctx, x->reg, PROT_READ | PROT_WRITE, x->off, x->room, &m)))
                return r;
        while (x->got < x->room) {
                uint64_t left = x->room - x->got;
                size_t want = left < CHUNK ? (size_t)left : CHUNK;
                unsigned char *p = m.ptr + x->got;
                ssize_t n;
                /* allocate the chunk's pages at once (best effort: the
                 * read faults them in otherwise) */
                uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)(am_page_size() - 1);
                (void)madvise((void *)a0, (size_t)((uintptr_t)p + want - a0), MADV_POPULATE_WRITE);
                n = read(x->in, p, want);
                if (n < 0 && errno == EINTR && !cmd_interrupted)
                        continue;
                if (n < 0) {
                        int e = errno;
                        mapping_release(&m);
                        if (e == EINTR) {       /* Ctrl-C in the shell */
                                /* the message on a line of its own, not
                                 * after the terminal's echo of the key */
                                if (isatty(x->in))
                                        fputc('\n', stderr);
                                return cli_error(x->ctx, e, "interrupted reading %s (%llu bytes written)",
                                                 x->what, (unsigned long long)x->got);
                        }
                        return cmd_error(x->ctx, e, "reading %s (%llu bytes written)", x->what,
                                         (unsigned long long)x->got);
                }
                if (n == 0)
                        break;
                x->got += (uint64_t)n;
                progress_show(&x->pr, x->got);
        }
        mapping_release(&m);
        return 0;
}

static int write_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *name = a->argv[0], *os = cmd_opt(a, "offset");
        const char *file = a->argc > 1 ? a->argv[1] : "-";
        int in = STDIN_FILENO, r, known = 0, fallback = 0;
        uint64_t off = 0, need = 0;
        struct region reg;
        struct xfer x;
        struct stat st;
        struct out o;

        if ((r = arg_name(ctx, name)))
                return r;
        if (os && (r = arg_offset(ctx, "offset", os, &off)))
                return r;
        if (strcmp(file, "-") != 0) {
                in = open(file, O_RDONLY | O_CLOEXEC);
                if (in < 0)
                        return cmd_error(ctx, errno, "%s", file);
        }
        if (fstat(in, &st) < 0) {
                r = cmd_error(ctx, errno, "%s", file);
                goto out_in;
        }
        if (S_ISDIR(st.st_mode)) {
                r = cli_error(ctx, EISDIR, "%s is a directory", file);
                goto out_in;
        }
        if (S_ISREG(st.st_mode)) {
                off_t pos = lseek(in, 0, SEEK_CUR);
                if (pos >= 0 && pos <= st.st_size) {
                        need = (uint64_t)(st.st_size - pos);
                        known = 1;
                }
        }
        if ((r = region_attach(ctx, name, 1, &reg)))
                goto out_in;
        if ((r = check_prot(ctx, &reg, PROT_WRITE)))
                goto out_reg;
        {
                int fl = fcntl(reg.fd, F_GETFL);
                if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) {
                        r = cli_error(ctx, EACCES, "%s: attached read-only (no write access)", name);
                        goto out_reg;
                }
        }
        memset(&x, 0, sizeof(x));
        x.ctx = ctx;
        x.reg = &reg;
        x.in = in;
        x.what = strcmp(file, "-") ? file : "the input";
        x.off = off;
        if (off > reg.len) {
                r = cli_error(ctx, EINVAL, "offset %s is past the end of %s (%zu bytes)",
                              os, name, reg.len);
                goto out_reg;
        }
        x.room = reg.len - off;
        if (known && need > x.room) {
                r = cli_error(ctx, EFBIG, "%s (%llu bytes) does not fit: %s has %llu bytes from offset %llu",
                              x.what, (unsigned long long)need, name,
                              (unsigned long long)x.room, (unsigned long long)off);
                goto out_reg;
        }
        if (known)
                x.room = need;
        progress_init(&x.pr, ctx, "write", name, known ? need : 0);
        if (S_ISREG(st.st_mode))
                r = write_sendfile(&x, &fallback);
        else if (S_ISFIFO(st.st_mode))
                r = write_splice(&x, &fallback);
        else
                fallback = 1;
        if (!r && fallback && x.room)
                r = write_mapped(&x);
        progress_done(&x.pr);
        if (r)
                goto out_reg;
        if (x.got == x.room) {
                /* Full: anything left over would run past the end. One byte
                 * tells. */
                unsigned char extra;
                ssize_t n;
                do
                        n = read(in, &extra, 1);
                while (n < 0 && errno == EINTR);
                if (n > 0) {
                        r = cli_error(ctx, EFBIG, "the input runs past the end of %s (%llu bytes written from offset %llu; %zu bytes in all)",
                                      name, (unsigned long long)x.got, (unsigned long long)off, reg.len);
                        goto out_reg;
                }
                if (n < 0) {
                        r = cmd_error(ctx, errno, "reading %s", x.what);
                        goto out_reg;
                }
        }
        /* what was written: JSON only (text: silence, like cp) */
        out_begin(&o, ctx, 0);
        out_str(&o, OUT_JSON, "name", NULL, name);
        out_u64(&o, OUT_JSON, "offset", NULL, off);
        out_u64(&o, OUT_JSON, "bytes", NULL, x.got);
        r = out_end(&o);
out_reg:
        region_release(&reg);
out_in:
        if (in != STDIN_FILENO)
                close(in);
        return r;
}

static const char *const write_complete[] = { "region", "file", NULL };

const struct cmd_entry cmd_write_entry = {
        .name = "write", .args_usage = "NAME [FILE|-]", .flags = CMD_BROKER, .exec = write_exec,
        .summary = "copy a file (or standard input) into a region",
        .opts = write_opts, .min_args = 1, .max_args = 2, .complete_args = write_complete,
};

/* ---------------------------------------------------------------- dump */

static int dump_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        struct region reg;
        struct mapping m = { 0 };
        uint64_t off, len;
        struct out o;
        int r;

        if ((r = open_range(ctx, a, &reg, &off, &len)))
                return r;
        r = len ? region_map(ctx, &reg, PROT_READ, off, len, &m) : 0;
        region_release(&reg);
        if (r)
                return r;
        out_begin(&o, ctx, 0);
        out_str(&o, OUT_JSON, "name", NULL, reg.name);
        out_u64(&o, OUT_JSON, "offset", NULL, off);
        out_u64(&o, OUT_JSON, "length", NULL, len);
        out_hexdump(&o, "hex", m.ptr, (size_t)len, off);
        mapping_release(&m);
        return out_end(&o);
}

const struct cmd_entry cmd_dump_entry = {
        .name = "dump", .args_usage = "NAME", .flags = CMD_BROKER, .exec = dump_exec,
        .summary = "show a region's bytes in hex and ASCII (like hexdump -C)",
        .opts = range_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_regions,
};
