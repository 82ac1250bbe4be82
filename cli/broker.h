/* SPDX-License-Identifier: MIT */
/*
 * The way clients find or start the broker daemon (`ashmemctl broker
 * run`, broker/broker.h). The daemon holds regions under names and hands
 * them out over the protocol of ashmem-protocol(7).
 */
#ifndef ASHMEMCTL_BROKER_H
#define ASHMEMCTL_BROKER_H

#include <stddef.h>
#include <sys/types.h>

#include "broker/broker.h"

struct ashmem_broker;

/* Start a broker in the background (setsid, descriptors closed, output to
 * log or /dev/null) as `ashmemctl broker run [--socket PATH|--system]
 * ARGS...`, and wait until it says it listens (it writes a line to the
 * descriptor named by $ASHMEM_BROKER_READY_FD). Serialised by a lock file
 * next to the socket (PATH.start), so racing starters end with one broker:
 * 0 also when another's broker answers first. */
int broker_spawn(const char *path, int system, char *const *args,
                 const char *log);

/* Why broker_spawn() last refused to start (the socket directory broke
 * the rules), as "DIRECTORY: reason"; "" otherwise. */
const char *broker_spawn_refusal(void);

/* Connect to the broker at path (NULL: the system socket with system, else
 * the default); with autostart, start it first when no broker listens
 * there (ENOENT, ECONNREFUSED). A broker started so (args NULL to
 * broker_spawn) gets --idle-exit $ASHMEM_IDLE_EXIT (default 300): it exits
 * when it has held nothing and served nobody for that many seconds. */
int broker_connect(const char *path, int system, int autostart,
                   struct ashmem_broker **ret);

#endif
