/* SPDX-License-Identifier: MIT */
/* broker run|start|stop|status: the daemon and its control. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ashmem/ashmem.h"
#include "broker.h"
#include "lib/internal/clock.h"
#include "lib/internal/scm.h"
#include "lib/internal/sockdir.h"
#include "cmd.h"
#include "region.h"
#include "output.h"
#include "parse.h"

#define STOP_TIMEOUT_MS 10000

static const struct cmd_opt broker_opts[] = {
        { "socket-mode", 0, "MODE", NULL, "the socket's permissions (default 0600, 0666 with --system)" },
        { "purge-below", 0, "PERCENT", NULL, "purge while MemAvailable is below PERCENT of MemTotal" },
        { "purge-step", 0, "SIZE", NULL, "bytes to reclaim per pressure event (default 64M)" },
        { "no-psi", 0, NULL, NULL, "do not watch /proc/pressure/memory" },
        { "psi-stall", 0, "MS", NULL, "PSI trigger: stall per window, in ms (default 150)" },
        { "psi-window", 0, "MS", NULL, "PSI trigger: window, in ms (default 2000)" },
        { "poll-interval", 0, "MS", NULL, "MemAvailable poll period, in ms (default 1000)" },
        { "max-connections", 0, "N", NULL, "connections at once (default 1024)" },
        { "max-regions", 0, "N", NULL, "names per user (default 4096)" },
        { "max-uid-connections", 0, "N", NULL, "connections per user (default: a quarter of --max-connections)" },
        { "max-uid-fds", 0, "N", NULL, "broker descriptors per user, 5 a region, 1 a connection (default: a quarter of the broker's)" },
        { "max-bytes", 0, "SIZE", NULL, "bytes per user (default: MemTotal)" },
        { "max-closing", 0, "N", NULL, "descriptors waiting to be closed, a total for all users; each user gets a share, an eighth, at least 16 (default: a quarter of the broker's)" },
        { "max-parked", 0, "N", NULL, "refused connections parked, a total for all users; each user gets a share, an eighth, at least 16 (default: as many, at most 1000)" },
        { "park-bytes", 0, "SIZE", NULL, "send buffer of a user's park of refused connections (default 256M)" },
        { "max-message", 0, "BYTES", NULL, "largest request (default and at most 65536)" },
        { "idle-timeout", 0, "SECONDS", NULL, "drop idle connections after this (default 300, 0: never)" },
        { "idle-exit", 0, "SECONDS", NULL, "exit after SECONDS holding nothing and serving nobody (default 0: never)" },
        { "log", 0, "FILE", "file", "start: append the broker's log to FILE" },
        { "verbose", 'v', NULL, NULL, "log every connection and request" },
        { "fds", 0, "N", NULL, "call: attach N descriptors (of /dev/null) to the message" },
        { 0 }
};

/* The options that `start` hands on to `run`. */
static const char *const passed[] = {
        "socket-mode", "purge-below", "purge-step", "no-psi", "psi-stall", "psi-window",
        "poll-interval", "max-connections", "max-regions", "max-uid-connections", "max-uid-fds",
        "max-bytes", "max-message", "max-closing", "max-parked", "park-bytes",
        "idle-timeout", "idle-exit", "verbose", NULL
};

static int num_opt(struct cmd_ctx *ctx, const struct cmd_args *a, const char *name,
                   uint64_t max, uint64_t *v)
{
        char err[PARSE_ERR_LEN];
        const char *s = cmd_opt(a, name);

        if (!s)
                return 0;
        if (parse_uint(s, name, max, v, err) < 0)
                return cmd_usage(ctx, "%s", err);
        return 1;
}

static int size_opt(struct cmd_ctx *ctx, const struct cmd_args *a, const char *name,
                    uint64_t *v)
{
        char err[PARSE_ERR_LEN];
        const char *s = cmd_opt(a, name);

        if (!s)
                return 0;
        if (parse_size(s, name, v, err) < 0)
                return cmd_usage(ctx, "%s", err);
        return 1;
}

/* The daemon's configuration from the options; 0 or EXIT_USAGE. */
static int config(struct cmd_ctx *ctx, const struct cmd_args *a, struct broker_config *c)
{
        char err[PARSE_ERR_LEN];
        uint64_t v;
        int r;

        broker_config_init(c);
        c->socket_path = ctx->socket;
        c->system = ctx->system;
        c->verbose = cmd_flag(a, "verbose") ? 2 : ctx->quiet ? 0 : 1;
        c->psi = !cmd_flag(a, "no-psi");
        if (cmd_opt(a, "socket-mode")) {
                unsigned m;
                if (parse_mode(cmd_opt(a, "socket-mode"), &m, err) < 0)
                        return cmd_usage(ctx, "%s", err);
                c->socket_mode = (int)m;
        }
#define NUM(name, max, field, scale)                                    \
        if ((r = num_opt(ctx, a, name, max, &v)) > 1)                   \
                return r;                                               \
        if (r == 1)                                                     \
                c->field = (__typeof__(c->field))(v * (scale));
        NUM("purge-below", 100, purge_below, 1)
        NUM("psi-stall", 10000, psi_stall_us, 1000)
        NUM("psi-window", 10000, psi_window_us, 1000)
        NUM("poll-interval", 3600000, poll_ms, 1)
        NUM("max-connections", 1000000, max_connections, 1)
        NUM("max-regions", 100000000, max_regions, 1)
        NUM("max-uid-connections", 1000000, max_uid_connections, 1)
        NUM("max-uid-fds", 100000000, max_uid_fds, 1)
        NUM("max-message", 65536, max_message, 1)
        NUM("max-closing", 100000000, max_closing, 1)
        NUM("max-parked", 100000000, max_parked, 1)
        NUM("idle-timeout", 86400 * 365, idle_timeout_ms, 1000)
        NUM("idle-exit", 86400 * 365, idle_exit_ms, 1000)
#undef NUM
        if ((r = size_opt(ctx, a, "purge-step", &v)) > 1)
                return r;
        if (r == 1)
                c->purge_step = v;
        if ((r = size_opt(ctx, a, "max-bytes", &v)) > 1)
                return r;
        if (r == 1)
                c->max_bytes = v;
        if (c->psi_stall_us == 0 || c->psi_window_us == 0 || c->psi_stall_us > c->psi_window_us)
                return cmd_usage(ctx, "--psi-stall must be between 1 and --psi-window");
        if (c->poll_ms == 0)
                return cmd_usage(ctx, "--poll-interval must be at least 1");
        if (c->max_connections == 0 || c->max_regions == 0)
                return cmd_usage(ctx, "limits must be at least 1");
        if ((r = size_opt(ctx, a, "park-bytes", &v)) > 1)
                return r;
        if (r == 1) {
                if (v < 4096 || v > (1u << 30))
                        return cmd_usage(ctx, "--park-bytes must be between 4K and 1G");
                c->park_bytes = v;
        }
        if (cmd_opt(a, "max-closing") && c->max_closing == 0)
                return cmd_usage(ctx, "--max-closing must be at least 1");
        if (cmd_opt(a, "max-parked") && c->max_parked == 0)
                return cmd_usage(ctx, "--max-parked must be at least 1");
        if (c->max_message < 256)
                return cmd_usage(ctx, "--max-message must be at least 256");
        return 0;
}

/* Connect and say hello. srv->pid is the pid the kernel gives for the
 * peer (SO_PEERCRED), never the one the reply claims. */
static int hello(const char *path, ashmem_broker **ret, ashmem_broker_server *srv)
{
        pid_t pid;
        int r = ashmem_broker_connect(path, ret);

        if (r < 0)
                return r;
        r = ashmem_broker_hello(*ret, srv);
        if (r == 0)
                r = ashmem_broker_peer(*ret, &pid, NULL);
        if (r < 0)
                *ret = ashmem_broker_close(*ret);
        else
                srv->pid = pid;
        return r;
}

static int not_running(struct cmd_ctx *ctx, const char *path, int r)
{
        if (r == -ENOENT || r == -ECONNREFUSED)
                return cli_error(ctx, -r, "no broker running on %s", path);
        if (r == -EPERM && *am_broker_refusal())
                return cli_error(ctx, -r, "refusing the broker socket %s", am_broker_refusal());
        return cmd_error(ctx, -r, "%s", path);
}

/* "broker VERB on PATH (pid N)", or {"running", "socket", "pid"}. */
static int print_broker(struct cmd_ctx *ctx, int running, const char *verb, const char *path,
                        pid_t pid)
{
        struct out o;

        out_begin(&o, ctx, OUT_REPORT);
        out_bool(&o, OUT_JSON, "running", NULL, NULL, running);
        out_text(&o, "broker %s on ", verb);
        out_str(&o, OUT_ANY, "socket", "%s", path);
        out_i64(&o, OUT_ANY, "pid", " (pid %lld)\n", pid);
        return out_end(&o);
}

static int do_start(struct cmd_ctx *ctx, const struct cmd_args *a, const char *path,
                    int system)
{
        char *args[2 * (sizeof(passed) / sizeof(passed[0])) + 1];
        ashmem_broker *b;
        ashmem_broker_server srv;
        int n = 0, r;
        char flags[sizeof(passed) / sizeof(passed[0])][32];

        r = hello(path, &b, &srv);
        if (r == 0) {
                ashmem_broker_close(b);
                return print_broker(ctx, 1, "already running", path, srv.pid);
        }
        if (r == -EPERM)                /* a socket we do not trust */
                return not_running(ctx, path, r);
        for (int i = 0; passed[i]; i++) {
                const char *v = cmd_opt(a, passed[i]);
                const struct cmd_opt *o = broker_opts;
                if (!v)
                        continue;
                while (strcmp(o->name, passed[i]) != 0)
                        o++;
                snprintf(flags[i], sizeof(flags[i]), "--%s", passed[i]);
                args[n++] = flags[i];
                if (o->arg)
                        args[n++] = (char *)v;
        }
        args[n] = NULL;
        r = broker_spawn(ctx->socket, system, args, cmd_opt(a, "log"));
        if (r < 0)
                return cmd_error(ctx, -r, "starting the broker on %s%s", path,
                                 r == -ECHILD ? " (it exited; see --log FILE)" : "");
        r = hello(path, &b, &srv);
        if (r < 0)
                return not_running(ctx, path, r);
        ashmem_broker_close(b);
        return print_broker(ctx, 1, "started", path, srv.pid);
}

/* Signal the broker whose pid the kernel gave (srv.pid) and wait until it
 * is gone: through a pidfd taken while the connection b still holds the
 * broker, so the pid cannot have been reused; where pidfds are missing
 * (ENOSYS: an old kernel, valgrind), with kill(2) on that same pid. */
static int do_stop(struct cmd_ctx *ctx, const char *path)
{
        ashmem_broker *b;
        ashmem_broker_server srv;
        long long deadline;
        int pidfd, r = hello(path, &b, &srv);

        if (r < 0)
                return not_running(ctx, path, r);
        pidfd = (int)syscall(SYS_pidfd_open, srv.pid, 0);
        r = pidfd < 0 && errno != ENOSYS ? errno : 0;
        if (r == 0 && ashmem_broker_hello(b, &(ashmem_broker_server){ 0 }) < 0)
                r = ESRCH;              /* it went meanwhile */
        ashmem_broker_close(b);
        if (r == 0 && (pidfd >= 0 ? syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0)
                                  : kill(srv.pid, SIGTERM)) < 0)
                r = errno;
        if (r) {
                if (pidfd >= 0)
                        close(pidfd);
                return cmd_error(ctx, r, "stopping the broker (pid %d)", (int)srv.pid);
        }
        deadline = am_mono_ms() + STOP_TIMEOUT_MS;
        if (pidfd >= 0) {
                r = am_wait_fd(pidfd, POLLIN, deadline);
                close(pidfd);
        }
        /* it has exited (or, without a pidfd, is exiting); wait for its
         * parent to reap it, so that the pid is gone when we say it
         * stopped (a zombie still answers kill 0) */
        while (r == 0 && (kill(srv.pid, 0) == 0 || errno == EPERM)) {
                struct timespec ts = { 0, 2 * 1000000L };
                if (am_mono_ms() > deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                nanosleep(&ts, NULL);
        }
        if (r < 0)
                return cmd_error(ctx, -r, "the broker (pid %d) did not stop", (int)srv.pid);
        return print_broker(ctx, 0, "stopped", path, srv.pid);
}

static unsigned long long num(const cJSON *o, const char *k)
{
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(x) && x->valuedouble >= 0 ? (unsigned long long)x->valuedouble : 0;
}

static int do_status(struct cmd_ctx *ctx, const char *path)
{
        ashmem_broker *b;
        ashmem_broker_server srv;
        char *text = NULL, why[256];
        int rfds[2], nr, r = hello(path, &b, &srv);
        const cJSON *pg, *below;
        struct out o;
        cJSON *st;

        if (r < 0) {
                if (r != -ENOENT && r != -ECONNREFUSED)
                        return not_running(ctx, path, r);
                out_begin(&o, ctx, OUT_REPORT);
                out_bool(&o, OUT_JSON, "running", NULL, NULL, 0);
                out_str(&o, OUT_ANY, "socket", "no broker running on %s\n", path);
                out_end(&o);
                return 1;
        }
        r = ashmem_broker_call(b, "{\"op\":\"stats\"}", NULL, 0, &text, rfds, &nr);
        snprintf(why, sizeof(why), "%s", ashmem_broker_error(b));
        ashmem_broker_close(b);
        for (int i = 0; i < nr; i++)
                close(rfds[i]);
        st = text ? cJSON_Parse(text) : NULL;
        free(text);
        if (r < 0 || !st) {
                cJSON_Delete(st);
                return cli_broker_fail(ctx, r < 0 ? r : -EPROTO, why,
                                       "asking the broker for its counters");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(st, "ok");
        pg = cJSON_GetObjectItemCaseSensitive(st, "purger");
        below = cJSON_GetObjectItemCaseSensitive(pg, "purge_below");
        out_begin(&o, ctx, OUT_REPORT);
        out_bool(&o, OUT_JSON, "running", NULL, NULL, 1);
        out_str(&o, OUT_ANY, "socket", "broker running on %s\n", path);
        out_i64(&o, OUT_ANY, "pid", "pid:          %lld\n", srv.pid);
        out_i64(&o, OUT_ANY, "version", "protocol:     %lld", srv.version);
        out_str(&o, OUT_ANY, "driver", " (driver %s)\n", srv.driver);
        /* the counters: as the broker gave them in JSON, a few lines of
         * text */
        out_text(&o, "uptime:       %llus\n", num(st, "uptime"));
        out_text(&o, "connections:  %llu\n", num(st, "connections"));
        out_text(&o, "regions:      %llu (", num(st, "regions"));
        out_size(&o, OUT_TEXT, NULL, "%s)\n", num(st, "bytes"));
        out_text(&o, "requests:     %llu (%llu failed)\n", num(st, "requests"), num(st, "errors"));
        out_text(&o, "attaches:     %llu\n", num(st, "attaches"));
        {
                const cJSON *l = cJSON_GetObjectItemCaseSensitive(st, "limits");
                out_text(&o, "limits:       %llu connections, per user %llu connections, "
                         "%llu names, %llu descriptors, ", num(l, "connections"),
                         num(l, "connections_per_uid"), num(l, "regions_per_uid"),
                         num(l, "descriptors_per_uid"));
                out_size(&o, OUT_TEXT, NULL, "%s\n", num(l, "bytes_per_uid"));
        }
        {
                /* where the caller stands against them */
                const cJSON *u, *us = cJSON_GetObjectItemCaseSensitive(st, "uids");
                unsigned long long me = (unsigned long long)geteuid();
                cJSON_ArrayForEach(u, us)
                        if (num(u, "uid") == me) {
                                out_text(&o, "you (uid %llu): %llu connections, %llu names, "
                                         "%llu descriptors, ", me, num(u, "connections"),
                                         num(u, "regions"), num(u, "descriptors"));
                                out_size(&o, OUT_TEXT, NULL, "%s\n", num(u, "bytes"));
                        }
        }
        out_text(&o, "purged:       %llu pages in %llu purges\n", num(st, "pages_purged"),
                 num(st, "purges"));
        out_text(&o, "purger:       %s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pg, "psi")) ?
                 "PSI trigger" : "no PSI trigger");
        if (cJSON_IsNumber(below))
                out_text(&o, ", MemAvailable below %.0f%%", below->valuedouble);
        out_text(&o, "\n");
        out_item(&o, "stats", st);
        return out_end(&o);
}

/* broker call TEXT: send TEXT as one message, as it is (not even checked
 * to be JSON), with --fds N descriptors; print the reply. For people who
 * write other clients, and for the tests of the broker's robustness. */
static int do_call(struct cmd_ctx *ctx, const struct cmd_args *a, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        static char reply[65537];
        const char *text = a->argv[1];
        int fds[AM_SCM_SEND_MAX], nfds = 0, s, r = 0, got = 0, extra = 0;
        int rfds[AM_SCM_RECV_MAX];
        uint64_t n = 0;
        ssize_t len;

        if ((r = num_opt(ctx, a, "fds", AM_SCM_SEND_MAX, &n)) > 1)
                return r;
        s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0)
                return cmd_error(ctx, errno, "socket");
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = errno;
                close(s);
                return not_running(ctx, path, -r);
        }
        for (; nfds < (int)n; nfds++) {
                fds[nfds] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fds[nfds] < 0) {
                        r = cmd_error(ctx, errno, "/dev/null");
                        goto out;
                }
        }
        r = am_send_fds_any(s, text, strlen(text), fds, nfds, 0);
        /* a broker that refuses the connection (a limit) says why and
         * closes it, maybe before the request went out: read that */
        len = r < 0 && r != -EPIPE && r != -ECONNRESET ? r :
              am_recv_fds(s, reply, sizeof(reply) - 1, r < 0 ? MSG_DONTWAIT : 0, rfds,
                          AM_SCM_RECV_MAX, &got, &extra, NULL);
        /* the kernel reports the reset (the broker closed with our request
         * unread) before a reply queued ahead of it; the error is reported
         * once, and the reply is still there */
        if (len == -ECONNRESET)
                len = am_recv_fds(s, reply, sizeof(reply) - 1, MSG_DONTWAIT, rfds,
                                  AM_SCM_RECV_MAX, &got, &extra, NULL);
        if (r < 0 && len <= 0) {
                r = cmd_error(ctx, -r, "sending to %s", path);
                goto out;
        }
        if (len <= 0) {
                r = cmd_error(ctx, len < 0 ? (int)-len : ECONNRESET, "no reply from %s", path);
                goto out;
        }
        reply[len] = 0;
        for (int i = 0; i < got; i++)
                close(rfds[i]);
        got += extra;
        printf("%s\n", reply);
        if (got && out_chatty(ctx))
                fprintf(stderr, "(%d descriptor%s came with the reply)\n", got, got == 1 ? "" : "s");
        r = strncmp(reply, "{\"ok\":true", 10) == 0 ? 0 : 1;
out:
        for (int i = 0; i < nfds; i++)
                close(fds[i]);
        close(s);
        return r;
}

/* broker reload: the broker re-executes its binary and hands everything
 * over (the "reload" request; the new image answers it). Waits for as
 * long as the broker may take: its purges (5 s), the new image's answer
 * (10 s). */
#define RELOAD_TIMEOUT_MS 30000
static int do_reload(struct cmd_ctx *ctx, const char *path)
{
        ashmem_broker *b;
        ashmem_broker_server srv;
        char *text = NULL;
        int rfds[2], nr = 0, r = hello(path, &b, &srv);
        const cJSON *np, *err;
        cJSON *rep;
        struct out o;

        if (r < 0)
                return not_running(ctx, path, r);
        ashmem_broker_set_timeout(b, RELOAD_TIMEOUT_MS);
        r = ashmem_broker_call(b, "{\"op\":\"reload\"}", NULL, 0, &text, rfds, &nr);
        ashmem_broker_close(b);
        for (int i = 0; i < nr; i++)
                close(rfds[i]);
        rep = text ? cJSON_Parse(text) : NULL;
        free(text);
        err = cJSON_GetObjectItemCaseSensitive(rep, "error");
        np = cJSON_GetObjectItemCaseSensitive(rep, "pid");
        if (r < 0) {
                r = cmd_error(ctx, -r, "reloading the broker (pid %d)%s%s", (int)srv.pid,
                              cJSON_IsString(err) ? ": " : "",
                              cJSON_IsString(err) ? err->valuestring : "");
                cJSON_Delete(rep);
                return r;
        }
        if (!cJSON_IsNumber(np)) {
                cJSON_Delete(rep);
                return cmd_error(ctx, EPROTO, "reloading the broker: no pid in the reply");
        }
        out_begin(&o, ctx, OUT_REPORT);
        out_bool(&o, OUT_JSON, "running", NULL, NULL, 1);
        out_text(&o, "broker reloaded on ");
        out_str(&o, OUT_ANY, "socket", "%s", path);
        out_i64(&o, OUT_ANY, "previous_pid", " (pid %lld", srv.pid);
        out_i64(&o, OUT_ANY, "pid", ", now %lld)\n", (long long)np->valuedouble);
        cJSON_Delete(rep);
        return out_end(&o);
}

static int broker_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        static const char *const subs[] = { "run", "start", "stop", "status", "call", "reload", NULL };
        struct broker_config cfg;
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        const char *sub = a->argv[0];
        int r, system = ctx->system, which = -1;

        for (int i = 0; subs[i]; i++)
                if (strcmp(sub, subs[i]) == 0)
                        which = i;
        if (which < 0)
                return cmd_usage(ctx, "unknown broker command: %s (run, start, stop, status, call, reload)", sub);
        if ((which == 4) != (a->argc == 2))
                return cmd_usage(ctx, which == 4 ? "broker call needs the message (TEXT)" :
                                 "unexpected argument: %s", a->argv[a->argc - 1]);
        if ((r = config(ctx, a, &cfg)) != 0)
                return r;
        r = broker_socket_path(ctx->socket, system, path, sizeof(path));
        if (r < 0)
                return cmd_error(ctx, -r, "the broker's socket");
        switch (which) {
        case 0:
                fflush(stdout);
                return broker_run(&cfg);
        case 1:
                return do_start(ctx, a, path, system);
        case 2:
                return do_stop(ctx, path);
        case 3:
                return do_status(ctx, path);
        case 5:
                return do_reload(ctx, path);
        default:
                return do_call(ctx, a, path);
        }
}

static const char *const broker_complete[] = { "broker-command", NULL };

const struct cmd_entry cmd_broker_entry = {
        .name = "broker", .args_usage = "run|start|stop|status|reload|call [TEXT]",
        .flags = CMD_NO_SHELL, .exec = broker_exec,
        .summary = "run, start, stop, reload or query the broker daemon",
        .opts = broker_opts, .min_args = 1, .max_args = 2, .complete_args = broker_complete,
};
