/* SPDX-License-Identifier: MIT */
/*
 * notifysock PATH SECONDS: a service manager's notification socket for the
 * tests. Binds an AF_UNIX datagram socket at PATH, prints "ready" on stdout
 * once bound, then every datagram it receives, each on its own lines
 * followed by a line "--"; it exits 0 after a datagram with STOPPING=1,
 * or 1 after SECONDS (the bound, so a test never hangs on it), removing
 * PATH. Each datagram's sender pid (SCM_CREDENTIALS) is printed too, as
 * "pid=N", so a test can tell which process spoke.
 *
 * notifysock --connect-stream PATH: connect an AF_UNIX stream socket to
 * PATH and close it (what wakes a socket-activating manager listening on
 * a stream socket).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        char buf[4097], *end;
        long secs;
        struct timespec start, now;
        int s, on = 1, rc = 1;

        if (argc == 3 && strcmp(argv[1], "--connect-stream") == 0) {
                if (strlen(argv[2]) >= sizeof(a.sun_path)) {
                        fprintf(stderr, "notifysock: path too long: %s\n", argv[2]);
                        return 2;
                }
                strcpy(a.sun_path, argv[2]);
                s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
                        fprintf(stderr, "notifysock: %s: %s\n", argv[2], strerror(errno));
                        return 1;
                }
                close(s);
                return 0;
        }
        if (argc != 3) {
                fprintf(stderr, "usage: notifysock PATH SECONDS | --connect-stream PATH\n");
                return 2;
        }
        secs = strtol(argv[2], &end, 10);
        if (*end || secs <= 0 || secs > 3600) {
                fprintf(stderr, "notifysock: SECONDS must be 1 to 3600: %s\n", argv[2]);
                return 2;
        }
        if (strlen(argv[1]) >= sizeof(a.sun_path)) {
                fprintf(stderr, "notifysock: path too long: %s\n", argv[1]);
                return 2;
        }
        strcpy(a.sun_path, argv[1]);
        s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0 || setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0 ||
            bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
                fprintf(stderr, "notifysock: %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(struct ucred))];
                } cm;
                struct iovec iov = { buf, sizeof(buf) - 1 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                                    .msg_control = &cm, .msg_controllen = sizeof(cm) };
                struct pollfd p = { .fd = s, .events = POLLIN };
                long left;
                ssize_t n;
                int r;

                clock_gettime(CLOCK_MONOTONIC, &now);
                left = secs * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                      (now.tv_nsec - start.tv_nsec) / 1000000);
                if (left <= 0) {
                        fprintf(stderr, "notifysock: no STOPPING=1 within %ld s\n", secs);
                        break;
                }
                r = poll(&p, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        fprintf(stderr, "notifysock: poll: %s\n", strerror(errno));
                        break;
                }
                if (r == 0)
                        continue;
                n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "notifysock: recvmsg: %s\n", strerror(errno));
                        break;
                }
                buf[n] = 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                                struct ucred cr;
                                memcpy(&cr, CMSG_DATA(c), sizeof(cr));
                                printf("pid=%d\n", (int)cr.pid);
                        }
                }
                printf("%s%s--\n", buf, n && buf[n - 1] == '\n' ? "" : "\n");
                fflush(stdout);
                if (strstr(buf, "STOPPING=1")) {
                        rc = 0;
                        break;
                }
        }
        unlink(argv[1]);
        close(s);
        return rc;
}
