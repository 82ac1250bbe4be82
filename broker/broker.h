/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon as ashmemctl runs it (`ashmemctl broker run`, in
 * cli/cmd-broker.c): its configuration and its entry point. This is all of
 * the daemon that cli/ sees; the daemon itself is the rest of broker/.
 */
#ifndef ASHMEM_BROKER_BROKER_H
#define ASHMEM_BROKER_BROKER_H

#include <stddef.h>

struct broker_config {
        const char *socket_path;        /* NULL: the default */
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
        unsigned max_uid_connections;   /* per uid; 0: a quarter of
                                           max_connections */
        unsigned long long max_uid_fds; /* broker descriptors per uid; 0: a
                                           quarter of RLIMIT_NOFILE */
        unsigned long long max_bytes;   /* bytes per uid; 0: MemTotal */
        /* the closer, all users together (0: the defaults) */
        unsigned long long max_closing; /* descriptors it holds: a quarter
                                           of RLIMIT_NOFILE */
        unsigned long long max_parked;  /* refused connections parked: as
                                           many, at most 1000 */
        unsigned long long park_bytes;  /* a park's send buffer: 256 MiB */
        size_t max_message;             /* bytes, at most 65536 (default) */
        unsigned idle_timeout_ms;       /* 0: none; default 300000 */
        unsigned long long idle_exit_ms; /* exit after holding nothing and
                                           serving nobody this long; 0:
                                           never (the default) */
};

void broker_config_init(struct broker_config *cfg);

/* Run the daemon in the foreground until SIGTERM or SIGINT. Logs go to
 * stderr. Returns the exit status (0 after a clean stop). */
int broker_run(const struct broker_config *cfg);

/* The socket path: opt (--socket), else the system or the user default.
 * Returns the length or -errno. */
int broker_socket_path(const char *opt, int system, char *buf, size_t len);

#endif
