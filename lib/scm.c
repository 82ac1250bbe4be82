/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal/scm.h"

int am_send_fds(int fd, const void *data, size_t len, const int *fds,
                int nfds, int flags)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * AM_SCM_MAX)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds < 0 || nfds > AM_SCM_MAX)
                return -EINVAL;
        if (nfds > 0) {
                struct cmsghdr *c;
                memset(&u, 0, sizeof(u));
                m.msg_control = u.buf;
                m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
                c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        while ((n = sendmsg(fd, &m, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
                ;
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EPROTO;
}
