/* SPDX-License-Identifier: MIT */
/* errno names (lib/internal/errname.h). */
#include <string.h>

#include "internal/errname.h"

/* errno values are small: the largest Linux has is below 256 */
#define ERRNO_MAX 256

const char *am_errno_name(int e, const char *dflt)
{
        const char *n = e > 0 ? strerrorname_np(e) : NULL;
        return n ? n : dflt;
}

int am_errno_value(const char *name)
{
        for (int e = 1; e < ERRNO_MAX; e++) {
                const char *n = strerrorname_np(e);
                if (n && strcmp(n, name) == 0)
                        return e;
        }
        return 0;
}
