/* SPDX-License-Identifier: MIT */
/*
 * A library loaded (dlopen) by the part that needs it, the first time it
 * does, rather than linked: every other command starts without the
 * dynamic loader mapping and relocating it. The caller describes the
 * library once (its soname, where the build found it, the dlopen flags)
 * and the symbols it uses as a table; dload() opens it, resolves the
 * table, and remembers how it went, so that a failure is met once and
 * then answered from memory, with a message that names the library.
 *
 * Not thread-safe by itself: a caller that may race runs it under
 * pthread_once().
 */
#ifndef ASHMEM_INTERNAL_DLOAD_H
#define ASHMEM_INTERNAL_DLOAD_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* One symbol: its name, and the pointer its address goes to. */
struct dload_sym {
        const char *name;
        void **addr;
};

/* A table entry for symbol s into the pointer p (a pointer to a function
 * or to a variable, of s's type). */
#define DLOAD_SYM(s, p) { #s, (void **)&(p) }

struct dload {
        const char *soname;     /* "libfoo.so.1", as the package installs it */
        const char *path;       /* where the build found it (absolute), or "" */
        int flags;              /* dlopen's RTLD_* */
        int state;              /* 0 not tried yet, 1 loaded, -1 failed */
        char error[256];        /* why it failed, naming the library */
};

/* Load l and resolve the n symbols of syms: 0, or -1 with why in
 * l->error. Only the first call does anything; later ones answer the
 * same. The library is opened by l->path when that is an absolute path
 * it can open (the dynamic loader then reads no cache to find it), else
 * by its soname; once loaded it stays for the life of the process. */
static inline int dload(struct dload *l, const struct dload_sym *syms, size_t n)
{
        void *h;
        const char *e;

        if (l->state)
                return l->state > 0 ? 0 : -1;
        l->state = -1;
        h = l->path && l->path[0] == '/' ? dlopen(l->path, l->flags) : NULL;
        if (!h)
                h = dlopen(l->soname, l->flags);
        if (!h) {
                e = dlerror();
                if (e && strstr(e, l->soname))
                        snprintf(l->error, sizeof(l->error), "%s", e);
                else
                        snprintf(l->error, sizeof(l->error), "%s: %s", l->soname,
                                 e ? e : "cannot be opened");
                return -1;
        }
        for (size_t i = 0; i < n; i++)
                if (!(*syms[i].addr = dlsym(h, syms[i].name))) {
                        snprintf(l->error, sizeof(l->error), "%s lacks %s", l->soname,
                                 syms[i].name);
                        while (i > 0)   /* nothing points into what is unloaded */
                                *syms[--i].addr = NULL;
                        (void)dlclose(h);
                        return -1;
                }
        l->state = 1;
        return 0;
}

#endif
