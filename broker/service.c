/* SPDX-License-Identifier: MIT */
/*
 * The broker as a system service (libsystemd's sd-daemon): the listening
 * socket handed over by socket activation (sd_listen_fds), readiness and
 * status for the service manager (sd_notify: READY=1, STATUS=, STOPPING=1,
 * RELOADING=1), and the log's priority prefixes when stderr is the journal.
 * Without a service manager (no LISTEN_FDS, no NOTIFY_SOCKET, stderr not
 * the journal) all of this does nothing.
 *
 * libsystemd is loaded (dlopen) only when the environment says a service
 * manager is there: linked in, it and the libraries it pulls in (libgcrypt,
 * liblzma, libzstd, liblz4, libcap) cost every ashmemctl command a third
 * of its start-up, and only the broker under a service manager uses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "lib/internal/dload.h"
#include "internal.h"

/* libsystemd's sd-daemon calls, loaded on first need. */
static struct {
        __typeof__(sd_listen_fds) *listen_fds;
        __typeof__(sd_is_socket_unix) *is_socket_unix;
        __typeof__(sd_notify) *notify;
} sd;

static const struct dload_sym sd_syms[] = {
        DLOAD_SYM(sd_listen_fds, sd.listen_fds),
        DLOAD_SYM(sd_is_socket_unix, sd.is_socket_unix),
        DLOAD_SYM(sd_notify, sd.notify),
};

static struct dload systemd = { "libsystemd.so.0", "", RTLD_NOW | RTLD_LOCAL, 0, "" };

/* Whether the service manager's variables are set (then libsystemd is
 * needed; without them its calls do nothing). */
static int sd_wanted(void)
{
        const char *l = getenv("LISTEN_FDS"), *n = getenv("NOTIFY_SOCKET");
        return (l && *l) || (n && *n);
}

/* 0, or -ENOSYS when libsystemd cannot be loaded (logged once). */
static int sd_load(struct broker *b)
{
        int tried = systemd.state != 0;

        if (dload(&systemd, sd_syms, sizeof(sd_syms) / sizeof(sd_syms[0])) == 0)
                return 0;
        if (!tried)
                blog(b, 0, "a service manager is there (LISTEN_FDS or NOTIFY_SOCKET) but %s "
                     "cannot be loaded: %s (install libsystemd0)", systemd.soname, systemd.error);
        return -ENOSYS;
}

/* The last status sent, and when (the tick sends a change at most once
 * a second). */
static size_t sv_names = (size_t)-1;
static unsigned sv_conns = (unsigned)-1;
static int sv_activated;

/* A socket from the service manager: 1 (b->lfd and b->path set), 0 (none
 * was passed), or -errno (logged): more than one, or not a listening
 * AF_UNIX SOCK_SEQPACKET socket bound to a path. */
int service_listen(struct broker *b)
{
        struct sockaddr_un a;
        socklen_t len = sizeof(a);
        int n, fl;

        if (!getenv("LISTEN_FDS"))
                return 0;
        n = sd_load(b);
        if (n == 0)
                n = sd.listen_fds(1);
        if (n < 0) {
                blog(b, 0, "socket activation (LISTEN_FDS): %s", strerror(-n));
                return n;
        }
        if (n == 0)
                return 0;
        if (n > 1) {
                blog(b, 0, "socket activation passed %d sockets; the broker listens on one "
                     "(one ListenSequentialPacket= in the socket unit)", n);
                return -EINVAL;
        }
        n = sd.is_socket_unix(SD_LISTEN_FDS_START, SOCK_SEQPACKET, 1, NULL, 0);
        if (n <= 0) {
                blog(b, 0, "socket activation: descriptor %d is not a listening AF_UNIX "
                     "SOCK_SEQPACKET socket%s%s (the socket unit needs ListenSequentialPacket=)",
                     SD_LISTEN_FDS_START, n < 0 ? ": " : "", n < 0 ? strerror(-n) : "");
                return n < 0 ? n : -ENOTSOCK;
        }
        memset(&a, 0, sizeof(a));
        if (getsockname(SD_LISTEN_FDS_START, (struct sockaddr *)&a, &len) < 0) {
                int e = errno;
                blog(b, 0, "socket activation: getsockname: %s", strerror(e));
                return -e;
        }
        if (len <= offsetof(struct sockaddr_un, sun_path) || a.sun_path[0] != '/' ||
            len - offsetof(struct sockaddr_un, sun_path) >= sizeof(b->path)) {
                blog(b, 0, "socket activation: the socket is not bound to a path "
                     "(abstract or unnamed sockets are not supported)");
                return -EINVAL;
        }
        memcpy(b->path, a.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        b->path[len - offsetof(struct sockaddr_un, sun_path)] = 0;
        fl = fcntl(SD_LISTEN_FDS_START, F_GETFL);
        if (fl < 0 || fcntl(SD_LISTEN_FDS_START, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC) < 0) {
                int e = errno;
                blog(b, 0, "socket activation: fcntl: %s", strerror(e));
                return -e;
        }
        /* listen() again, with the backlog the unit asked for at most:
         * the kernel then gives clients this process's credentials as the
         * peer (SO_PEERCRED), not the service manager's (pid 1), so
         * `broker status` and `broker stop` find the broker */
        if (listen(SD_LISTEN_FDS_START, SOMAXCONN) < 0) {
                int e = errno;
                blog(b, 0, "socket activation: listen: %s", strerror(e));
                return -e;
        }
        b->lfd = SD_LISTEN_FDS_START;
        sv_activated = 1;
        /* the service manager owns the socket's path: never removed here */
        b->sock_ino = 0;
        return 1;
}

/* Whether the socket came from the service manager (a reload hands that
 * on). */
int service_managed_socket(void)
{
        return sv_activated;
}

void service_set_managed_socket(void)
{
        sv_activated = 1;
}

/* Is this broker run by a service manager (socket activation or a
 * notification socket)? Such a broker never exits for being idle: its
 * regions would go with it. */
int service_managed(void)
{
        const char *n = getenv("NOTIFY_SOCKET");
        return sv_activated || (n && *n);
}

static void notify(struct broker *b, const char *state)
{
        int r;

        if (!sd_wanted() || sd_load(b) < 0)
                return;
        r = sd.notify(0, state);
        if (r < 0)
                blog(b, 0, "sd_notify: %s", strerror(-r));
}

static void status(struct broker *b, const char *prefix)
{
        char s[160];

        sv_names = b->nnames;
        sv_conns = b->nconns;
        snprintf(s, sizeof(s), "%sSTATUS=%zu region%s, %u client%s", prefix, b->nnames,
                 b->nnames == 1 ? "" : "s", b->nconns, b->nconns == 1 ? "" : "s");
        notify(b, s);
}

/* The new image's pid after a reload (MAINPID=). */
void service_main_pid(struct broker *b, pid_t pid)
{
        char mp[64];

        snprintf(mp, sizeof(mp), "MAINPID=%d", (int)pid);
        notify(b, mp);
}

void service_ready(struct broker *b)
{
        status(b, "READY=1\n");
}

/* At the tick: the status again if it changed (so at most once a tick). */
void service_tick(struct broker *b)
{
        if (b->nnames != sv_names || b->nconns != sv_conns)
                status(b, "");
}

void service_stopping(struct broker *b)
{
        notify(b, "STOPPING=1");
}

void service_reloading(struct broker *b)
{
        notify(b, "RELOADING=1\nSTATUS=reloading");
}

/* Whether stderr is the journal (JOURNAL_STREAM names its device and
 * inode): then each line carries an sd-daemon priority prefix and no
 * time stamp or pid of its own (the journal records both). */
int service_journal(void)
{
        static int known = -1;

        if (known < 0) {
                const char *v = getenv("JOURNAL_STREAM");
                unsigned long long dev, ino;
                struct stat st;
                char c;

                known = v && sscanf(v, "%llu:%llu%c", &dev, &ino, &c) == 2 &&
                        fstat(2, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                        (unsigned long long)st.st_ino == ino;
        }
        return known;
}

/* The prefix of a line of the log at level (0 warnings, 1 info, 2
 * requests): SD_WARNING, SD_INFO, SD_DEBUG. */
const char *service_prefix(int level)
{
        return level <= 0 ? SD_WARNING : level == 1 ? SD_INFO : SD_DEBUG;
}
