/* SPDX-License-Identifier: MIT */
/*
 * Finding the broker, and starting it when it does not run (the way tmux
 * starts its server): connect; on ENOENT or ECONNREFUSED take the start
 * lock next to the socket, connect again (another client may have started
 * it meanwhile), start `ashmemctl broker run` in a new session with every
 * other descriptor closed, and wait until it says it listens. Racing
 * clients queue on the lock and all end up talking to one broker; the
 * broker itself also holds a lifetime lock, so even a manual `broker run`
 * racing with an automatic start cannot give two.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "broker.h"
#include "lib/internal/clock.h"
#include "lib/internal/sockdir.h"
#include "cmd.h"

#define START_TIMEOUT_MS 10000

/* Does a broker accept connections at path? */
static int answers(const char *path)
{
        ashmem_broker *b;

        if (ashmem_broker_connect(path, &b) < 0)
                return 0;
        ashmem_broker_close(b);
        return 1;
}

/* Why the last start was refused, naming the path ("" if it was not). */
static char refusal[512];

const char *broker_spawn_refusal(void)
{
        return refusal;
}

/* The default socket's directory: created 0700 if missing, refused if it is
 * someone else's or open to others (the broker checks the same). */
static int default_dir(const char *path, int system)
{
        char dir[sizeof(((struct sockaddr_un *)0)->sun_path)] = "";
        const char *why = NULL;
        int r = am_socket_dir(path, geteuid(),
                              AM_SOCKDIR_CREATE | (system ? AM_SOCKDIR_SYSTEM : 0),
                              dir, sizeof(dir), &why);

        if (r < 0)
                snprintf(refusal, sizeof(refusal), "%s: %s", dir,
                         why ? why : strerror(-r));
        return r;
}

/* In the grandchild: become the daemon. Never returns. */
static void exec_broker(const char *path, int system, char *const *args,
                        const char *log, int ready)
{
        char *argv[64], fdenv[32], idle[32];
        const char *ie = getenv("ASHMEM_IDLE_EXIT");
        int n = 0, nul, err;

        /* out of the way of 0-3 */
        ready = fcntl(ready, F_DUPFD_CLOEXEC, 10);
        if (ready < 0)
                _exit(127);
        nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
        if (nul < 0)
                _exit(127);
        if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(err >= 0 ? err : nul, 2) < 0)
                _exit(127);
        /* the ready pipe goes to fd 3; everything else is closed */
        if (dup2(ready, 3) < 0)
                _exit(127);
        close_range(4, ~0U, 0);
        snprintf(fdenv, sizeof(fdenv), "%d", 3);
        setenv("ASHMEM_BROKER_READY_FD", fdenv, 1);
        argv[n++] = (char *)"ashmemctl";
        argv[n++] = (char *)"broker";
        argv[n++] = (char *)"run";
        /* the socket always on the command line, so that ps tells brokers
         * apart */
        if (system)
                argv[n++] = (char *)"--system";
        argv[n++] = (char *)"--socket";
        argv[n++] = (char *)path;
        /* args NULL: started for a command (autostart), so it goes when
         * it has nothing left to do */
        if (!args) {
                snprintf(idle, sizeof(idle), "%s", ie && *ie ? ie : "300");
                argv[n++] = (char *)"--idle-exit";
                argv[n++] = idle;
        }
        for (int i = 0; args && args[i] && n < 63; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
        }
        execv("/proc/self/exe", argv);
        _exit(127);
}

/* Wait for the daemon's word on the ready pipe: 0 when it listens, -errno
 * when it exited without (another broker got there first, or it failed). */
static int wait_ready(int rfd)
{
        long long deadline = am_mono_ms() + START_TIMEOUT_MS;
        char buf[16];

        for (;;) {
                int r = am_wait_fd(rfd, POLLIN, deadline);
                ssize_t n;

                if (r < 0)
                        return r;
                n = read(rfd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n > 0)
                        return 0;
                return -ECHILD;         /* it exited without listening */
        }
}

int broker_spawn(const char *opt_path, int system, char *const *args,
                 const char *log)
{
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char lock[sizeof(path) + 8];
        int lfd, r, pipefd[2];
        pid_t pid;

        refusal[0] = 0;
        r = broker_socket_path(opt_path, system, path, sizeof(path));
        if (r < 0)
                return r;
        if (!opt_path && (system || !getenv("ASHMEM_SOCKET") || !*getenv("ASHMEM_SOCKET")) &&
            (r = default_dir(path, system)) < 0)
                return r;
        snprintf(lock, sizeof(lock), "%s.start", path);
        lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lfd < 0)
                return -errno;
        while ((r = flock(lfd, LOCK_EX)) < 0 && errno == EINTR)
                ;
        if (r < 0) {
                r = -errno;
                close(lfd);
                return r;
        }
        /* someone may have started it while we waited for the lock */
        if (answers(path)) {
                close(lfd);
                return 0;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                r = -errno;
                close(lfd);
                return r;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto out;
        }
        if (pid == 0) {
                pid_t gc;
                if (setsid() < 0)
                        _exit(127);
                gc = fork();
                if (gc < 0)
                        _exit(127);
                if (gc > 0)
                        _exit(0);
                exec_broker(path, system, args, log, pipefd[1]);
        }
        close(pipefd[1]);
        pipefd[1] = -1;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        r = wait_ready(pipefd[0]);
        /* a broker started by someone else (by hand) is as good */
        if (r < 0 && answers(path))
                r = 0;
out:
        close(pipefd[0]);
        if (pipefd[1] >= 0)
                close(pipefd[1]);
        close(lfd);
        return r;
}

int broker_connect(const char *path, int system, int autostart, ashmem_broker **ret)
{
        char sys[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int r;

        if (!path && system) {
                r = broker_socket_path(NULL, 1, sys, sizeof(sys));
                if (r < 0)
                        return r;
                path = sys;
        }
        r = ashmem_broker_connect(path, ret);
        if (r == 0 || !autostart || (r != -ENOENT && r != -ECONNREFUSED))
                return r;
        r = broker_spawn(system ? NULL : path, system, NULL, NULL);
        if (r < 0)
                return r;
        return ashmem_broker_connect(path, ret);
}

void cmd_socket_path(const struct cmd_ctx *ctx, char *buf, size_t len)
{
        if (broker_socket_path(ctx->socket, ctx->system, buf, len) < 0 && len)
                buf[0] = 0;
}

int cmd_broker(struct cmd_ctx *ctx, struct ashmem_broker **ret)
{
        int r;

        if (!ctx->broker) {
                int autostart = !ctx->no_autostart && ctx->cmd &&
                                (ctx->cmd->flags & CMD_AUTOSTART);
                r = broker_connect(ctx->socket, ctx->system, autostart, &ctx->broker);
                if (r < 0)
                        return r;
        }
        *ret = ctx->broker;
        return 0;
}

void cmd_broker_close(struct cmd_ctx *ctx)
{
        ctx->broker = ashmem_broker_close(ctx->broker);
}
