/* SPDX-License-Identifier: MIT */
/*
 * get, set, incr: typed values in a region. Integers (u8..u64, i8..i64)
 * are read and written atomically at naturally aligned offsets, so several
 * processes can share a counter; str is a NUL-terminated string.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cmd.h"
#include "output.h"
#include "parse.h"
#include "region.h"

static const struct cmd_opt value_opts[] = {
        { "type", 't', "TYPE", "type", "u8, u16, u32, u64, i8, i16, i32, i64 or str (default i32)" },
        { "offset", 'o', "N", NULL, "bytes into the region (default 0; aligned to the type's size)" },
        { 0 }
};

enum value_op { OP_GET, OP_SET, OP_INCR };

static uint64_t load(const void *p, unsigned size)
{
        switch (size) {
        case 1: return __atomic_load_n((const uint8_t *)p, __ATOMIC_SEQ_CST);
        case 2: return __atomic_load_n((const uint16_t *)p, __ATOMIC_SEQ_CST);
        case 4: return __atomic_load_n((const uint32_t *)p, __ATOMIC_SEQ_CST);
        default: return __atomic_load_n((const uint64_t *)p, __ATOMIC_SEQ_CST);
        }
}

static void store(void *p, unsigned size, uint64_t v)
{
        switch (size) {
        case 1: __atomic_store_n((uint8_t *)p, (uint8_t)v, __ATOMIC_SEQ_CST); break;
        case 2: __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_SEQ_CST); break;
        case 4: __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_SEQ_CST); break;
        default: __atomic_store_n((uint64_t *)p, v, __ATOMIC_SEQ_CST); break;
        }
}

/* Add in two's complement (wrapping), return the new bit pattern. */
static uint64_t add(void *p, unsigned size, int64_t delta)
{
        uint64_t d = (uint64_t)delta;

        switch (size) {
        case 1: return __atomic_add_fetch((uint8_t *)p, (uint8_t)d, __ATOMIC_SEQ_CST);
        case 2: return __atomic_add_fetch((uint16_t *)p, (uint16_t)d, __ATOMIC_SEQ_CST);
        case 4: return __atomic_add_fetch((uint32_t *)p, (uint32_t)d, __ATOMIC_SEQ_CST);
        default: return __atomic_add_fetch((uint64_t *)p, d, __ATOMIC_SEQ_CST);
        }
}

/* The value: shown (get, incr), or only in JSON (set: quiet_text). */
static int print_value(struct cmd_ctx *ctx, const char *name, const struct vtype *t,
                       uint64_t off, const char *text, int quiet_text)
{
        enum out_to to = quiet_text ? OUT_JSON : OUT_ANY;
        struct out o;

        out_begin(&o, ctx, OUT_REPORT);
        out_str(&o, OUT_JSON, "name", NULL, name);
        out_str(&o, OUT_JSON, "type", NULL, t->name);
        out_u64(&o, OUT_JSON, "offset", NULL, off);
        out_raw(&o, to, "value", "%s\n", text);    /* exact, even for 64 bits */
        return out_end(&o);
}

/*
 * A string: the bytes of a region, which any writer may have filled with
 * anything. In JSON "value" is the text when it is valid UTF-8
 * ("encoding":"utf-8"), else its base64 ("encoding":"base64"), so the
 * document stays valid. As text, control characters (but a newline and a
 * tab), bytes that are not UTF-8 and backslashes show as \xNN (never a
 * terminal escape sequence), unless --raw asks for the bytes as they are.
 */
static int print_string(struct cmd_ctx *ctx, const char *name, uint64_t off,
                        const char *s, size_t n)
{
        int utf8 = out_utf8_valid(s, n);
        char *shown;
        struct out o;

        out_begin(&o, ctx, OUT_REPORT);
        /* --export: the bytes, which it quotes for a shell */
        shown = ctx->json ? (utf8 ? strdup(s) : out_base64((const unsigned char *)s, n))
                          : o.export || ctx->out_flags & OUT_RAW ? strdup(s)
                                                     : out_escape(s, n, OUT_ESC_BACKSLASH | OUT_ESC_KEEP_LINES);
        if (!shown) {
                out_discard(&o);
                return cmd_error(ctx, ENOMEM, "%s", name);
        }
        out_str(&o, OUT_JSON, "name", NULL, name);
        out_str(&o, OUT_JSON, "type", NULL, "str");
        out_u64(&o, OUT_JSON, "offset", NULL, off);
        if (o.export) {
                out_str(&o, OUT_JSON, "value", NULL, shown);
        } else if (ctx->json) {
                out_str(&o, OUT_JSON, "value", NULL, shown);
                out_str(&o, OUT_JSON, "encoding", NULL, utf8 ? "utf-8" : "base64");
        } else if (o.text) {
                /* the bytes themselves with --raw: not through printf's %s
                 * conversions, which a locale might check */
                fwrite(shown, 1, strlen(shown), stdout);
                putchar('\n');
        }
        free(shown);
        return out_end(&o);
}

/* get, set and incr (a->entry->op says which). */
static int value_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        enum value_op op = (enum value_op)a->entry->op;
        const char *name = a->argv[0], *ts = cmd_opt(a, "type"), *os = cmd_opt(a, "offset");
        const char *vs = a->argc > 1 ? a->argv[1] : NULL;
        const struct vtype *t;
        char err[PARSE_ERR_LEN], text[32];
        uint64_t off = 0, val = 0, len;
        int64_t delta = 1;
        struct region reg;
        struct mapping m;
        int r;

        if ((r = arg_name(ctx, name)))
                return r;
        if (parse_type(ts ? ts : "i32", &t, err) < 0)
                return cmd_usage(ctx, "%s", err);
        if (os && (r = arg_offset(ctx, "offset", os, &off)))
                return r;
        if (op == OP_INCR && t->size == 0)
                return cmd_usage(ctx, "incr works on integer types, not %s", t->name);
        if (op == OP_SET && t->size && parse_value(t, vs, &val, err) < 0)
                return cmd_usage(ctx, "%s", err);
        if (op == OP_INCR && vs && parse_delta(t, vs, &delta, err) < 0)
                return cmd_usage(ctx, "%s", err);
        if (t->size && off % t->size)
                return cmd_usage(ctx, "offset %s is not aligned for %s (use a multiple of %u)",
                                 os, t->name, t->size);
        if (region_attach(ctx, name, op != OP_GET, &reg))
                return 1;
        if (t->size && (reg.off + off) % t->size) {
                region_release(&reg);
                return cmd_usage(ctx, "offset %s of the slice %s is not aligned for %s (the slice starts at byte %zu)",
                                 os ? os : "0", name, t->name, reg.off);
        }
        if (off >= reg.len) {
                region_release(&reg);
                return cli_error(ctx, EINVAL, "offset %llu is past the end of %s (%zu bytes)",
                                 (unsigned long long)off, name, reg.len);
        }
        if (t->size && t->size > reg.len - off) {
                region_release(&reg);
                return cli_error(ctx, EINVAL, "the %s at offset %llu runs past the end of %s (%zu bytes)",
                                 t->name, (unsigned long long)off, name, reg.len);
        }
        len = t->size ? t->size : reg.len - off;
        if (op == OP_SET && !t->size && strlen(vs) + 1 > len) {
                region_release(&reg);
                return cli_error(ctx, EFBIG, "the string (%zu bytes and a NUL) does not fit in %s at offset %llu (%llu bytes left)",
                                 strlen(vs), name, (unsigned long long)off, (unsigned long long)len);
        }
        if (op == OP_SET && !t->size)
                len = strlen(vs) + 1;
        r = region_map(ctx, &reg, op == OP_GET ? PROT_READ : PROT_READ | PROT_WRITE, off, len, &m);
        region_release(&reg);
        if (r)
                return r;
        if (!t->size) {
                if (op == OP_SET) {
                        memcpy(m.ptr, vs, len);
                        mapping_release(&m);
                        /* set prints the value for scripts only */
                        if (!ctx->json && !(ctx->out_flags & (OUT_EXPORT | OUT_SHELLVAR)))
                                return 0;
                        return print_string(ctx, name, off, vs, strlen(vs));
                }
                {
                        size_t n = strnlen((const char *)m.ptr, len);
                        char *s = strndup((const char *)m.ptr, n);
                        mapping_release(&m);
                        if (!s)
                                return cmd_error(ctx, ENOMEM, "%s", name);
                        r = print_string(ctx, name, off, s, n);
                        free(s);
                        return r;
                }
        }
        switch (op) {
        case OP_GET:
                val = load(m.ptr, t->size);
                break;
        case OP_SET:
                store(m.ptr, t->size, val);
                break;
        case OP_INCR:
                val = add(m.ptr, t->size, delta);
                break;
        }
        mapping_release(&m);
        format_value(t, val, text, sizeof(text));
        return print_value(ctx, name, t, off, text, op == OP_SET);
}

const struct cmd_entry cmd_get_entry = {
        .name = "get", .args_usage = "NAME", .flags = CMD_BROKER, .exec = value_exec, .op = OP_GET,
        .summary = "print a typed value (atomic load)",
        .opts = value_opts, .min_args = 1, .max_args = 1, .complete_args = cmd_complete_region,
};

const struct cmd_entry cmd_set_entry = {
        .name = "set", .args_usage = "NAME VALUE",
        .flags = CMD_BROKER, .exec = value_exec, .op = OP_SET,
        .summary = "store a typed value (atomic store)",
        .opts = value_opts, .min_args = 2, .max_args = 2, .complete_args = cmd_complete_region,
};

const struct cmd_entry cmd_incr_entry = {
        .name = "incr", .args_usage = "NAME [DELTA]",
        .flags = CMD_BROKER, .exec = value_exec, .op = OP_INCR,
        .summary = "add DELTA (default 1) atomically and print the new value",
        .opts = value_opts, .min_args = 1, .max_args = 2, .complete_args = cmd_complete_region,
};
