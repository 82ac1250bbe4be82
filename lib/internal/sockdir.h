/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/), ashmemctl and the tests. Not installed, not exported from
 * libashmem.so.
 *
 * The directory a broker socket sits in: the client, the starter and the
 * broker apply the same rules to it.
 */
#ifndef ASHMEM_LIB_SOCKDIR_H
#define ASHMEM_LIB_SOCKDIR_H

#include <sys/types.h>

#define AM_SOCKDIR_CREATE  1    /* make it if missing (0700; 0755 with SYSTEM) */
#define AM_SOCKDIR_SYSTEM  2    /* the system socket's: others may read it */
#define AM_SOCKDIR_ROOT_OK 4    /* owned by root will do as well as by uid */

/* Check the directory of the socket path (what comes before its last '/';
 * 0 when that is nothing or the root): a directory (not a symbolic link),
 * owned by uid, that neither group nor others may access (with
 * AM_SOCKDIR_SYSTEM: may write). Returns 0, -errno when it cannot be made
 * or looked at, or -EPERM when it breaks the rules: then *why (when why is
 * not NULL) says which ("not a directory", "owned by another user", "open
 * to others"); it is NULL after any other failure. On failure dir (dirlen
 * bytes, when not NULL) holds the directory's path. */
int am_socket_dir(const char *path, uid_t uid, int flags, char *dir,
                  size_t dirlen, const char **why);

/* Who may answer on a broker socket. A client trusts a broker socket only
 * in a directory that belongs to the user or root and that neither group
 * nor others may write (am_broker_trust_dir: 0, -errno when it cannot be
 * looked at, -EPERM when it breaks the rules), and only when the process
 * listening there runs as the user or root (am_broker_trust_peer, on the
 * connected socket fd: 0 with its pid in *pid and uid in *uid when they
 * are not NULL, or
 * -EPERM). After -EPERM, am_broker_refusal() says why, naming the path
 * (the calling thread's last refusal; "" when the last check passed). */
int am_broker_trust_dir(const char *path);
int am_broker_trust_peer(const char *path, int fd, pid_t *pid, uid_t *uid);
const char *am_broker_refusal(void);

#endif
