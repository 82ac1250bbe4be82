/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon (`ashmemctl broker run`) and the way clients find or
 * start it. The daemon holds regions under names and hands them out over
 * the protocol of ashmem-protocol(7); see cli/broker.c.
 */
#ifndef ASHMEMCTL_BROKER_H
#define ASHMEMCTL_BROKER_H

#include <stddef.h>
#include <sys/types.h>

struct ashmem_broker;

struct broker_config {
        const char *socket_path;        /* NULL: the default (DESIGN 6) */
        int system;                     /* /run/ashmem/broker.sock */
        int socket_mode;                /* -1: 0600, or 0666 with system */
        int verbose;                    /* 0 warnings, 1 info, 2 requests */
        /* the purger */
        int purge_below;                /* % of MemTotal; -1: off */
        int psi;                        /* watch a PSI trigger (default 1) */
        unsigned psi_stall_us;          /* default 150000 */
        unsigned psi_window_us;         /* default 2000000 */
        int fallback_below;             /* % used when PSI is unavailable (10) */
        unsigned poll_ms;               /* MemAvailable poll period (1000) */
        unsigned long long purge_step;  /* bytes reclaimed per PSI event */
        /* limits */
        unsigned max_connections;       /* default 1024 */
        unsigned max_regions;           /* names per uid, default 4096 */
        unsigned long long max_bytes;   /* bytes per uid; 0: MemTotal */
        size_t max_message;             /* bytes, at most 65536 (default) */
        unsigned idle_timeout_ms;       /* 0: none; default 300000 */
};

void broker_config_init(struct broker_config *cfg);

/* Run the daemon in the foreground until SIGTERM or SIGINT. Logs go to
 * stderr. Returns the exit status (0 after a clean stop). */
int broker_run(const struct broker_config *cfg);

/* The socket path: opt (--socket), else the system or the user default.
 * Returns the length or -errno. */
int broker_socket_path(const char *opt, int system, char *buf, size_t len);

/* Start a broker in the background (setsid, descriptors closed, output to
 * log or /dev/null) as `ashmemctl broker run [--socket PATH|--system]
 * ARGS...`, and wait until it says it listens (it writes a line to the
 * descriptor named by $ASHMEM_BROKER_READY_FD). Serialised by a lock file
 * next to the socket (PATH.start), so racing starters end with one broker:
 * 0 also when another's broker answers first. */
int broker_spawn(const char *path, int system, char *const *args,
                 const char *log);

/* Connect to the broker at path; with autostart, start it first when no
 * broker listens there (ENOENT, ECONNREFUSED). */
int broker_connect(const char *path, int autostart, struct ashmem_broker **ret);

#endif
