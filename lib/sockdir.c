/* SPDX-License-Identifier: MIT */
/* The directory of a broker socket (lib/internal/sockdir.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "internal/sockdir.h"

int am_socket_dir(const char *path, uid_t uid, int flags, char *dir,
                  size_t dirlen, const char **why)
{
        char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int system = flags & AM_SOCKDIR_SYSTEM;
        const char *bad = NULL;
        char *slash;
        struct stat st;
        int r = 0;

        snprintf(buf, sizeof(buf), "%s", path);
        slash = strrchr(buf, '/');
        if (!slash || slash == buf)
                return 0;
        *slash = 0;
        if ((flags & AM_SOCKDIR_CREATE) &&
            mkdir(buf, system ? 0755 : 0700) < 0 && errno != EEXIST) {
                r = -errno;
        } else if (lstat(buf, &st) < 0) {
                r = -errno;
        } else if (!S_ISDIR(st.st_mode)) {
                r = -EPERM;
                bad = "not a directory";
        } else if (st.st_uid != uid && !((flags & AM_SOCKDIR_ROOT_OK) && st.st_uid == 0)) {
                r = -EPERM;
                bad = "owned by another user";
        } else if (st.st_mode & (system ? 022 : 077)) {
                r = -EPERM;
                bad = "open to others";
        }
        if (r < 0) {
                if (why)
                        *why = bad;
                if (dir && dirlen)
                        snprintf(dir, dirlen, "%s", buf);
        }
        return r;
}
