/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/) and the tests. Not installed, not exported from libashmem.so.
 *
 * One SOCK_SEQPACKET message with descriptors attached (SCM_RIGHTS), the
 * protocol's transport on both ends.
 */
#ifndef ASHMEM_SCM_H
#define ASHMEM_SCM_H

#include <stddef.h>
#include <sys/types.h>

#define AM_SCM_MAX 2            /* descriptors per message, by the protocol */
#define AM_SCM_SEND_MAX 253     /* the kernel's limit per message */
/* received at most: all the kernel may attach to a message, so that it
 * never drops (and so releases, on the receiving thread) any of them */
#define AM_SCM_RECV_MAX AM_SCM_SEND_MAX

/* Close fds[0..n-1] (those >= 0), setting them to -1. */
void am_close_fds(int *fds, int n);

/* Send data (len bytes) with fds[0..nfds-1]; flags are added to
 * MSG_NOSIGNAL (MSG_DONTWAIT, say). EINTR is retried. 0, or -errno
 * (-EINVAL for more than AM_SCM_MAX descriptors, -EPROTO for a short send). */
int am_send_fds(int fd, const void *data, size_t len, const int *fds,
                int nfds, int flags);
/* The same with up to AM_SCM_SEND_MAX descriptors, beyond what the
 * protocol allows: for tests of a receiver's robustness. */
int am_send_fds_any(int fd, const void *data, size_t len, const int *fds,
                    int nfds, int flags);

/* Receive one message (at most len bytes into buf) and the descriptors
 * attached to it, close-on-exec; flags are added to MSG_CMSG_CLOEXEC
 * (MSG_DONTWAIT, say). EINTR is retried. The first max descriptors (max at
 * most AM_SCM_RECV_MAX) go to fds, *nfds of them; the others are closed and
 * counted in *extra (when extra is not NULL). *mflags (when not NULL) gets
 * the message's flags (MSG_TRUNC; MSG_CTRUNC: the kernel dropped
 * descriptors, which cannot happen with room for AM_SCM_RECV_MAX unless
 * other control messages came too). Returns the message's
 * length (0: the peer shut down, or an empty message), or -errno. */
ssize_t am_recv_fds(int fd, void *buf, size_t len, int flags, int *fds,
                    int max, int *nfds, int *extra, int *mflags);

#endif
