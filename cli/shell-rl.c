/* SPDX-License-Identifier: MIT */
/* Loading readline for the interactive shell (cli/shell-rl.h). */
#include <dlfcn.h>
#include <stdio.h>

#define SHELL_RL_NO_MACROS
#include "shell-rl.h"

struct shell_rl shell_rl;

int shell_rl_load(char *err, size_t len)
{
        static void *lib;
        void *h;

        if (lib)
                return 0;
        h = dlopen(SHELL_RL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                snprintf(err, len, "%s", dlerror());
                return -1;
        }
#define SHELL_RL_LOAD(n)                                                        \
        if (!(*(void **)&shell_rl.n = dlsym(h, #n))) {                          \
                snprintf(err, len, "%s has no %s", SHELL_RL_SONAME, #n);        \
                dlclose(h);                                                     \
                return -1;                                                      \
        }
        SHELL_RL_SYMS(SHELL_RL_LOAD)
#undef SHELL_RL_LOAD
        lib = h;
        return 0;
}
