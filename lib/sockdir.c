/* SPDX-License-Identifier: MIT */
/* The directory of a broker socket (lib/internal/sockdir.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

/* Why the last check of this thread refused a broker ("" if none did). */
static __thread char refusal[256];

const char *am_broker_refusal(void)
{
        return refusal;
}

static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refuse(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(refusal, sizeof(refusal), fmt, ap);
        va_end(ap);
        return -EPERM;
}

static int trusted_uid(uid_t u)
{
        return u == 0 || u == getuid() || u == geteuid();
}

int am_broker_trust_dir(const char *path)
{
        char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
        const char *dir = buf;
        char *slash;
        struct stat st;

        refusal[0] = 0;
        if (strlen(path) >= sizeof(buf))
                return -ENAMETOOLONG;
        snprintf(buf, sizeof(buf), "%s", path);
        slash = strrchr(buf, '/');
        if (!slash)
                dir = ".";
        else if (slash == buf)
                dir = "/";
        else
                *slash = 0;
        if (lstat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return refuse("%s: its directory %s is not a directory", path, dir);
        if (!trusted_uid(st.st_uid))
                return refuse("%s: its directory %s belongs to uid %u, not to this user or root",
                              path, dir, (unsigned)st.st_uid);
        if (st.st_mode & 022)
                return refuse("%s: its directory %s is writable by %s (mode %04o)", path, dir,
                              st.st_mode & 02 ? "others" : "its group",
                              (unsigned)(st.st_mode & 07777));
        return 0;
}

int am_broker_trust_peer(const char *path, int fd, pid_t *pid, uid_t *uid)
{
        struct ucred cr;
        socklen_t len = sizeof(cr);

        refusal[0] = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
                return -errno;
        if (len != sizeof(cr) || cr.pid <= 0)
                return refuse("%s: the kernel does not say who listens there", path);
        if (!trusted_uid(cr.uid))
                return refuse("%s: the broker there runs as uid %u, not as this user or root",
                              path, (unsigned)cr.uid);
        if (pid)
                *pid = cr.pid;
        if (uid)
                *uid = cr.uid;
        return 0;
}
