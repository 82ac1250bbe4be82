/* SPDX-License-Identifier: MIT */
/* Loading readline for the interactive shell (cli/shell-rl.h). */
#include <stdio.h>

#include "lib/internal/dload.h"
#define SHELL_RL_NO_MACROS
#include "shell-rl.h"

struct shell_rl shell_rl;

static const struct dload_sym rl_syms[] = {
#define SHELL_RL_SYM(n) DLOAD_SYM(n, shell_rl.n),
        SHELL_RL_SYMS(SHELL_RL_SYM)
#undef SHELL_RL_SYM
};

int shell_rl_load(char *err, size_t len)
{
        static struct dload rl = { SHELL_RL_SONAME, "", RTLD_NOW | RTLD_LOCAL, 0, "" };

        if (dload(&rl, rl_syms, sizeof(rl_syms) / sizeof(rl_syms[0])) < 0) {
                snprintf(err, len, "%s", rl.error);
                return -1;
        }
        return 0;
}
