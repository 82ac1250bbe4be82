/* SPDX-License-Identifier: MIT */
/*
 * A fake broker for the tests: listens on a Unix SOCK_SEQPACKET socket and
 * answers every message as a broker's hello would, claiming whatever pid
 * it is told to. With --delay MS it answers each message that late (a
 * slow broker, for the client's timeouts); with --echo it answers the
 * n-th message with {"ok":true,"n":N} so a test can tell which request a
 * reply belongs to. It serves one connection at a time and exits after
 * --seconds S (default 30) or on SIGTERM.
 *
 *   fakebroker SOCKET [--mode MODE] [--pid PID] [--delay MS] [--echo]
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int main(int argc, char **argv)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        long pid = 1, delay = 0, seconds = 30;
        unsigned mode = 0600;
        int echo = 0, lfd;
        unsigned long n = 0;
        time_t end;

        if (argc < 2 || strlen(argv[1]) >= sizeof(a.sun_path)) {
                fprintf(stderr, "usage: fakebroker SOCKET [--mode MODE] [--pid PID] [--delay MS] [--echo] [--seconds S]\n");
                return 2;
        }
        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--echo") == 0)
                        echo = 1;
                else if (i + 1 < argc && strcmp(argv[i], "--mode") == 0)
                        mode = (unsigned)strtoul(argv[++i], NULL, 8);
                else if (i + 1 < argc && strcmp(argv[i], "--pid") == 0)
                        pid = strtol(argv[++i], NULL, 10);
                else if (i + 1 < argc && strcmp(argv[i], "--delay") == 0)
                        delay = strtol(argv[++i], NULL, 10);
                else if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0)
                        seconds = strtol(argv[++i], NULL, 10);
                else {
                        fprintf(stderr, "fakebroker: unknown option %s\n", argv[i]);
                        return 2;
                }
        }
        strcpy(a.sun_path, argv[1]);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            chmod(argv[1], mode) < 0 || listen(lfd, 16) < 0) {
                perror("fakebroker");
                return 1;
        }
        printf("listening\n");
        fflush(stdout);
        end = time(NULL) + seconds;
        while (time(NULL) < end) {
                struct pollfd p = { .fd = lfd, .events = POLLIN };
                int c;

                if (poll(&p, 1, 200) <= 0)
                        continue;
                c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                for (;;) {
                        char buf[65536], out[256];
                        ssize_t len;
                        int m;

                        len = recv(c, buf, sizeof(buf), 0);
                        if (len <= 0)
                                break;
                        n++;
                        if (delay)
                                sleep_ms(delay);
                        if (echo)
                                m = snprintf(out, sizeof(out), "{\"ok\":true,\"n\":%lu}", n);
                        else
                                m = snprintf(out, sizeof(out),
                                             "{\"ok\":true,\"version\":1,\"driver\":\"memfd\",\"pid\":%ld}",
                                             pid);
                        if (send(c, out, (size_t)m, MSG_NOSIGNAL) < 0)
                                break;
                }
                close(c);
        }
        unlink(argv[1]);
        return 0;
}
