/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/) and the tests. Not installed, not exported from libashmem.so.
 *
 * One SOCK_SEQPACKET message with up
 * to AM_SCM_MAX descriptors attached (SCM_RIGHTS), the protocol's transport
 * on both ends.
 */
#ifndef ASHMEM_SCM_H
#define ASHMEM_SCM_H

#include <stddef.h>

#define AM_SCM_MAX 2    /* descriptors per message, by the protocol */

/* Send data (len bytes) with fds[0..nfds-1]; flags are added to
 * MSG_NOSIGNAL (MSG_DONTWAIT, say). EINTR is retried. 0, or -errno
 * (-EINVAL for more than AM_SCM_MAX descriptors, -EPROTO for a short send). */
int am_send_fds(int fd, const void *data, size_t len, const int *fds,
                int nfds, int flags);

#endif
