/* SPDX-License-Identifier: MIT */
/* Messages with descriptors attached (lib/internal/scm.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal/scm.h"

void am_close_fds(int *fds, int n)
{
        for (int i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

int am_send_fds_any(int fd, const void *data, size_t len, const int *fds,
                    int nfds, int flags)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * AM_SCM_SEND_MAX)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds < 0 || nfds > AM_SCM_SEND_MAX)
                return -EINVAL;
        if (nfds == 0) {
                /* send(2): no message header for the kernel to copy in */
                while ((n = send(fd, data, len, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
                        ;
        } else {
                struct cmsghdr *c;
                m.msg_control = u.buf;
                m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
                memset(u.buf, 0, m.msg_controllen);
                c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
                while ((n = sendmsg(fd, &m, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
                        ;
        }
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EPROTO;
}

int am_send_fds(int fd, const void *data, size_t len, const int *fds,
                int nfds, int flags)
{
        if (nfds > AM_SCM_MAX)
                return -EINVAL;
        return am_send_fds_any(fd, data, len, fds, nfds, flags);
}

ssize_t am_recv_fds(int fd, void *buf, size_t len, int flags, int *fds,
                    int max, int *nfds, int *extra, int *mflags)
{
        union {
                /* and room for credentials a sender may add */
                char buf[CMSG_SPACE(sizeof(int) * AM_SCM_RECV_MAX) + 64];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr m;
        ssize_t n;

        *nfds = 0;
        if (extra)
                *extra = 0;
        if (max < 0 || max > AM_SCM_RECV_MAX)
                return -EINVAL;
        do {
                memset(&m, 0, sizeof(m));
                m.msg_iov = &iov;
                m.msg_iovlen = 1;
                m.msg_control = u.buf;
                m.msg_controllen = sizeof(u.buf);
                n = recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int d;
                        memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (*nfds < max) {
                                fds[(*nfds)++] = d;
                        } else {
                                close(d);
                                if (extra)
                                        (*extra)++;
                        }
                }
        }
        if (mflags)
                *mflags = m.msg_flags;
        return n;
}
