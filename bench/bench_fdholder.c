/* SPDX-License-Identifier: MIT */
/*
 * Handing out descriptors under load: 1, 4, 16 and 64 client processes,
 * each on one connection kept open, ask the server for a descriptor again
 * and again; the figure is the throughput of all of them together
 * (descriptors handed out per second of wall time).
 *
 * "ours" is the broker (`ashmemctl broker run`) serving
 * ashmem_broker_attach() by name, read-write: the request and reply as
 * JSON, the access check, the descriptors passed. The reply is what
 * ashmem_broker_attach() asks for: the size, without the region record
 * ("record":false; a caller that wants the record, or names the owner,
 * gets it and pays for its pin counts). Two regions are handed out: one
 * made by create and never unpinned, which has no control block, so one
 * descriptor goes out; and one whose pin state is in use ("with pin
 * state"), whose attach passes the data and the control descriptor and
 * whose control block the client library checks against its table.
 *
 * The baselines: s6-fdholderd (Debian package s6) serving
 * s6_fdholder_retrieve() by identifier through s6's own client library
 * (libs6), one descriptor passed over s6's own framing; and the raw floor,
 * a minimal single-threaded epoll server (this program run as
 * `bench_fdholder --floor-server SOCKET NFD`) answering every request
 * with a small reply and NFD descriptors, run twice: with one descriptor
 * (the floor of the region without pin state) and with two (that of the
 * region with it). Each row compares servers that pass the same number of
 * descriptors. Each client closes what it receives. Targets (the broker
 * service's): the broker's throughput at least 1.1x s6's and at least
 * 0.95x the floor's (ratio = ours / baseline, higher is better). Beside
 * them, for information: each server's CPU time per request (from
 * /proc/PID/task/TID/schedstat over the round), the broker's against
 * s6's (the two-descriptor floor's is in JSON).
 *
 * The servers are started the same way: a child process of this program,
 * exec'd with its standard descriptors on /dev/null and nothing else open,
 * listening on a socket in one temporary directory. With several clients
 * nothing is pinned to a CPU. With one client, the client and the servers
 * are pinned to one CPU: a lone request/response pair whose sides sit on
 * two CPUs pays a cross-CPU wakeup each way, which on an idle virtual
 * machine (CPUs asleep) costs ten times the work of the exchange, so the
 * row would measure the wakeups; on one CPU all servers pay the same
 * switch and the row compares their work. s6-fdholder-daemon gets an access rules
 * directory that lets this user store and retrieve the identifier "bench"
 * and room for the largest number of clients (-c); the broker's defaults
 * already allow 1,024 connections. The descriptor held is a 4 KiB region
 * on both sides.
 *
 * The clients connect and make one request before the clock starts. A
 * round is a window of fixed length (250 ms, 40 ms with --quick) in which
 * all the clients ask at once: at its end a flag in shared memory tells
 * them to stop, and each reports how many requests it completed (one in
 * flight at the end counts; at most one a client, the same for every
 * variant). The figure is the requests of all clients over the window.
 * A fixed number of requests a client would instead end the round with
 * the last client alone: the clients never finish together, and the
 * tail, one or two clients left, measured the scheduler's fairness and a
 * lone cross-CPU exchange rather than the server under as many clients
 * (at 4 clients a round's figure moved 2x from round to round). For
 * every client count the five variants take turns, round by round (the
 * first rotates); each figure is the median of 11 rounds (3 with
 * --quick), with the slowest and fastest round as the spread.
 *
 * Built without s6's headers (package libs6-dev), the program says so and
 * fails: `make bench` installs them (mk/deps.sh bench).
 *
 * Usage: bench_fdholder [--json] [--quick]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#if defined(__has_include)
#if __has_include(<s6/fdholder.h>)
#define HAVE_S6 1
#endif
#endif

#ifdef HAVE_S6
#include <skalibs/tai.h>
#include <s6/fdholder.h>
#endif

#define MAX_ROUNDS 32
#define WINDOW_MS 250
#define WINDOW_MS_QUICK 40
#define MAX_CLIENTS 64
#define REGION "bench"
#define REGION_PINNED "bench-pinned"
#define REGION_SIZE 4096

static const int clients[] = { 1, 4, 16, 64 };
#define NCLIENTS (int)(sizeof(clients) / sizeof(clients[0]))

static char dir[64], broker_sock[96], s6_sock[96], floor_sock[96], floor1_sock[96], rules[96];
static pid_t main_pid, broker_pid, s6_pid, floor_pid, floor1_pid;

/* the variants: the broker handing out a region without pin state (one
 * descriptor) and one with it (data and control), s6, the floor server
 * passing two descriptors and the one passing one */
enum { BROKER, S6, FLOOR, BROKER_PINNED, FLOOR1, NSERVERS };

static void stop_servers(void);
static void on_signal(int sig);

/* ---------------------------------------------------------------- s6 */

#ifdef HAVE_S6
static int s6_connect(s6_fdholder_t *a)
{
        tain deadline;

        tain_now_set_stopwatch_g();     /* as s6's own tools start */
        tain_addsec_g(&deadline, 10);
        return s6_fdholder_start_g(a, s6_sock, &deadline) ? 0 : -errno;
}

static int s6_once(s6_fdholder_t *a)
{
        tain deadline;
        int fd;

        /* what s6's own tools do per request: a deadline from now */
        tain_now_g();
        tain_addsec_g(&deadline, 10);
        fd = s6_fdholder_retrieve_g(a, REGION, &deadline);
        if (fd < 0)
                return errno ? -errno : -EIO;
        return close(fd) < 0 ? -errno : 0;
}

/* Store a 4 KiB memfd under REGION, as s6-fdholder-store does: no
 * expiry. */
static void s6_store(void)
{
        s6_fdholder_t a = S6_FDHOLDER_ZERO      /* the macro has its ';' */
        tain deadline, limit;
        int fd = memfd_create("bench-s6", MFD_CLOEXEC), r;

        if (fd < 0 || ftruncate(fd, REGION_SIZE) < 0)
                bench_die("memfd", errno);
        r = s6_connect(&a);
        if (r < 0)
                bench_die("s6_fdholder_start", -r);
        tain_addsec_g(&deadline, 10);
        tain_add_g(&limit, &tain_infinite_relative);
        if (!s6_fdholder_store_g(&a, fd, REGION, &limit, &deadline))
                bench_die("s6_fdholder_store", errno);
        s6_fdholder_end(&a);
        close(fd);
}
#endif

/* ---------------------------------------------------------------- servers */

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t len = strlen(text);

        if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0)
                bench_die(path, errno);
}

static void make_dir(const char *path)
{
        if (mkdir(path, 0700) < 0)
                bench_die(path, errno);
}

/* The s6 access rules: this uid may connect, store and retrieve "bench". */
static void make_rules(void)
{
        char p[256];

        snprintf(rules, sizeof(rules), "%s/rules", dir);
        make_dir(rules);
        snprintf(p, sizeof(p), "%s/uid", rules);
        make_dir(p);
        snprintf(p, sizeof(p), "%s/uid/%u", rules, (unsigned)getuid());
        make_dir(p);
        snprintf(p, sizeof(p), "%s/uid/%u/allow", rules, (unsigned)getuid());
        write_file(p, "");
        snprintf(p, sizeof(p), "%s/uid/%u/env", rules, (unsigned)getuid());
        make_dir(p);
        snprintf(p, sizeof(p), "%s/uid/%u/env/S6_FDHOLDER_STORE_REGEX", rules,
                 (unsigned)getuid());
        write_file(p, "^" REGION "$\n");
        snprintf(p, sizeof(p), "%s/uid/%u/env/S6_FDHOLDER_RETRIEVE_REGEX", rules,
                 (unsigned)getuid());
        write_file(p, "^" REGION "$\n");
}

static void remove_rules(void)
{
        char p[256];

        if (!rules[0])
                return;
        snprintf(p, sizeof(p), "%s/uid/%u/env/S6_FDHOLDER_STORE_REGEX", rules,
                 (unsigned)getuid());
        unlink(p);
        snprintf(p, sizeof(p), "%s/uid/%u/env/S6_FDHOLDER_RETRIEVE_REGEX", rules,
                 (unsigned)getuid());
        unlink(p);
        snprintf(p, sizeof(p), "%s/uid/%u/env", rules, (unsigned)getuid());
        rmdir(p);
        snprintf(p, sizeof(p), "%s/uid/%u/allow", rules, (unsigned)getuid());
        unlink(p);
        snprintf(p, sizeof(p), "%s/uid/%u", rules, (unsigned)getuid());
        rmdir(p);
        snprintf(p, sizeof(p), "%s/uid", rules);
        rmdir(p);
        rmdir(rules);
}

/* Fork and exec argv the same way for every server. */
static pid_t start_server(char *const argv[])
{
        pid_t parent = getpid(), pid = fork();

        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                int nul = open("/dev/null", O_RDWR);
                if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                close_range(3, ~0U, 0);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static void wait_for_socket(const char *path, pid_t pid, const char *what)
{
        struct stat st;

        for (int i = 0; stat(path, &st) < 0 || !S_ISSOCK(st.st_mode); i++) {
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        fprintf(stderr, "bench_fdholder: %s exited (status %d)\n", what, status);
                        exit(1);
                }
                if (i == 1000)
                        bench_die(what, ETIMEDOUT);
                bench_nap_ms(10);
        }
}

static void start_servers(void)
{
        char prog[PATH_MAX + 32], maxconn[16];
        ashmem_broker *b;
        int fd, r;

        bench_ashmemctl(prog, sizeof(prog));
        snprintf(dir, sizeof(dir), "/tmp/ashmem-bench-XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        main_pid = getpid();
        atexit(stop_servers);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        snprintf(broker_sock, sizeof(broker_sock), "%s/broker.sock", dir);
        snprintf(s6_sock, sizeof(s6_sock), "%s/s6.sock", dir);
        snprintf(floor_sock, sizeof(floor_sock), "%s/floor.sock", dir);
        snprintf(floor1_sock, sizeof(floor1_sock), "%s/floor1.sock", dir);
        make_rules();
        snprintf(maxconn, sizeof(maxconn), "%d", MAX_CLIENTS + 16);
        {
                char *argv[] = { prog, (char *)"--socket", broker_sock, (char *)"-q",
                                 (char *)"broker", (char *)"run", (char *)"--idle-timeout",
                                 (char *)"0", (char *)"--no-psi", NULL };
                broker_pid = start_server(argv);
        }
        {
                char *argv[] = { (char *)"s6-fdholder-daemon", (char *)"-c", maxconn,
                                 (char *)"-i", rules, s6_sock, NULL };
                s6_pid = start_server(argv);
        }
        {
                char me[PATH_MAX];
                ssize_t m = readlink("/proc/self/exe", me, sizeof(me) - 1);
                if (m < 0)
                        bench_die("/proc/self/exe", errno);
                me[m] = 0;
                char *argv[] = { me, (char *)"--floor-server", floor_sock, (char *)"2", NULL };
                char *argv1[] = { me, (char *)"--floor-server", floor1_sock, (char *)"1", NULL };
                floor_pid = start_server(argv);
                floor1_pid = start_server(argv1);
        }
        wait_for_socket(broker_sock, broker_pid, "the broker");
        wait_for_socket(floor_sock, floor_pid, "the floor server");
        wait_for_socket(floor1_sock, floor1_pid, "the one-descriptor floor server");
        wait_for_socket(s6_sock, s6_pid, "s6-fdholder-daemon");
        for (int i = 0; (r = ashmem_broker_connect(broker_sock, &b)) < 0; i++) {
                if (i == 1000)
                        bench_die("the broker does not answer", -r);
                bench_nap_ms(10);
        }
        r = ashmem_broker_create(b, REGION, REGION_SIZE, ASHMEM_BROKER_DEFAULT, 0600, &fd, NULL);
        if (r < 0)
                bench_die("create", -r);
        close(fd);
        /* a region whose pin state is in use: its control block is made
         * (through the broker) at its first unpin, and every attach then
         * hands out both descriptors */
        r = ashmem_broker_create(b, REGION_PINNED, REGION_SIZE, ASHMEM_BROKER_DEFAULT, 0600, &fd,
                                 NULL);
        if (r < 0)
                bench_die("create", -r);
        if (ashmem_unpin_region(fd, 0, 0) < 0 || ashmem_pin_region(fd, 0, 0) < 0)
                bench_die("the first unpin of " REGION_PINNED, errno);
        close(fd);
        ashmem_broker_close(b);
#ifdef HAVE_S6
        s6_store();
#endif
}

/* Stop the servers and remove what they and this program made (also at
 * exit after a failure, in the main process only). */
static void stop_servers(void)
{
        char p[128];

        if (getpid() != main_pid)
                return;
        if (s6_pid > 0)
                kill(s6_pid, SIGTERM);
        if (floor_pid > 0)
                kill(floor_pid, SIGKILL);
        if (floor1_pid > 0)
                kill(floor1_pid, SIGKILL);
        while (floor_pid > 0 && waitpid(floor_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        while (floor1_pid > 0 && waitpid(floor1_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        floor_pid = floor1_pid = 0;
        if (broker_pid > 0)
                kill(broker_pid, SIGTERM);
        while (s6_pid > 0 && waitpid(s6_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        while (broker_pid > 0 && waitpid(broker_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        s6_pid = broker_pid = 0;
        if (!dir[0])
                return;
        /* the sockets and their lock files */
        unlink(s6_sock);
        unlink(broker_sock);
        unlink(floor_sock);
        unlink(floor1_sock);
        snprintf(p, sizeof(p), "%s.lock", s6_sock);
        unlink(p);
        snprintf(p, sizeof(p), "%s.lock", broker_sock);
        unlink(p);
        remove_rules();
        if (rmdir(dir) < 0)
                fprintf(stderr, "bench_fdholder: %s: %s\n", dir, strerror(errno));
        dir[0] = 0;
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);        /* runs stop_servers() */
}

/* ---------------------------------------------------------------- the floor */

/* The raw floor: the least a server handing out a region's descriptors
 * can cost. A single-threaded epoll server on a SOCK_SEQPACKET socket that
 * answers every request with a small reply and nfd descriptors (a data
 * memfd, and a control memfd when nfd is 2, as a region with pin state
 * has), without looking at the request. Run as `bench_fdholder
 * --floor-server SOCKET NFD`, exec'd like the other servers. */
static const char floor_req[] = "{\"v\":1,\"op\":\"attach\",\"name\":\"bench\",\"access\":\"rw\"}";
static const char floor_rep[] = "{\"ok\":true,\"name\":\"bench\",\"size\":4096}";

static int floor_server(const char *path, int nfd)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        struct epoll_event ev = { .events = EPOLLIN }, evs[64];
        int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int fds[2] = { memfd_create("bench-floor", MFD_CLOEXEC),
                       memfd_create("bench-floor-control", MFD_CLOEXEC) };
        union { char b[CMSG_SPACE(sizeof(fds))]; struct cmsghdr a; } u;
        char buf[65536];

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (nfd < 1 || nfd > 2 || lfd < 0 || ep < 0 || fds[0] < 0 || fds[1] < 0 ||
            ftruncate(fds[0], REGION_SIZE) < 0 || ftruncate(fds[1], 4096) < 0 ||
            bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0)
                return 1;
        ev.data.fd = lfd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
                return 1;
        for (;;) {
                int n = epoll_wait(ep, evs, 64, -1);
                if (n < 0 && errno != EINTR)
                        return 1;
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd == lfd) {
                                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                                if (c >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) < 0)
                                        close(c);
                                continue;
                        }
                        for (int k = 0; k < 16; k++) {
                                struct iovec iov = { .iov_base = (void *)floor_rep,
                                                     .iov_len = sizeof(floor_rep) - 1 };
                                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                                                    .msg_control = u.b,
                                                    .msg_controllen =
                                                            CMSG_SPACE(sizeof(int) * (size_t)nfd) };
                                struct cmsghdr *c;
                                ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                                if (r <= 0) {
                                        if (r == 0 || (errno != EAGAIN && errno != EINTR))
                                                close(fd);
                                        break;
                                }
                                memset(&u, 0, sizeof(u));
                                c = CMSG_FIRSTHDR(&m);
                                c->cmsg_level = SOL_SOCKET;
                                c->cmsg_type = SCM_RIGHTS;
                                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
                                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
                                if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
                                        close(fd);
                                        break;
                                }
                        }
                }
        }
}

static int floor_connect(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

/* One request to the floor: its nfd descriptors received and closed. */
static int floor_once(int s, int nfd)
{
        union { char b[CMSG_SPACE(sizeof(int) * 2)]; struct cmsghdr a; } u;
        char buf[4096];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.b, .msg_controllen = sizeof(u.b) };
        struct cmsghdr *c;
        int fds[2];

        if (send(s, floor_req, sizeof(floor_req) - 1, MSG_NOSIGNAL) < 0)
                return -errno;
        while (recvmsg(s, &m, MSG_CMSG_CLOEXEC) < 0)
                if (errno != EINTR)
                        return -errno;
        c = CMSG_FIRSTHDR(&m);
        if (!c || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int) * (size_t)nfd))
                return -EPROTO;
        memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfd);
        for (int i = 0; i < nfd; i++)
                if (close(fds[i]) < 0)
                        return -errno;
        return 0;
}

/* ---------------------------------------------------------------- clients */

static int attach_once(ashmem_broker *b, const char *name)
{
        int fd, r = ashmem_broker_attach(b, name, 1, &fd, NULL, NULL);

        if (r < 0)
                return r;
        return close(fd) < 0 ? -errno : 0;
}

/* A client of bench_window(): the variant it asks (set before each
 * window, inherited by the clients) and, in each client process, its
 * connection. */
static struct {
        int kind;
        ashmem_broker *b;
        int s;
#ifdef HAVE_S6
        s6_fdholder_t a;
#endif
} cl;

static int client_once(void *arg)
{
        (void)arg;
#ifdef HAVE_S6
        if (cl.kind == S6)
                return s6_once(&cl.a);
#endif
        if (cl.kind == FLOOR || cl.kind == FLOOR1)
                return floor_once(cl.s, cl.kind == FLOOR1 ? 1 : 2);
        return attach_once(cl.b, cl.kind == BROKER_PINNED ? REGION_PINNED : REGION);
}

/* connect, and one request */
static int client_start(void *arg)
{
        int r;

        if (cl.kind == S6) {
#ifdef HAVE_S6
                s6_fdholder_t zero = S6_FDHOLDER_ZERO   /* the macro has its ';' */
                cl.a = zero;
                if ((r = s6_connect(&cl.a)) < 0)
                        return r;
#else
                return -ENOSYS;
#endif
        } else if (cl.kind == FLOOR || cl.kind == FLOOR1) {
                if ((cl.s = r = floor_connect(cl.kind == FLOOR1 ? floor1_sock : floor_sock)) < 0)
                        return r;
        } else if ((r = ashmem_broker_connect(broker_sock, &cl.b)) < 0) {
                return r;
        }
        return client_once(arg);
}

/* k clients of one server asking at once for window_ms: requests per
 * second over the window; the server's CPU time per request in *cpu. */
static double round_of(int kind, int k, int window_ms, double *cpu)
{
        static const char *const what[NSERVERS] = {
                [BROKER] = "broker client", [S6] = "s6 client", [FLOOR] = "floor client",
                [BROKER_PINNED] = "broker client (pin state)",
                [FLOOR1] = "one-descriptor floor client",
        };
        const struct bench_clients c = { client_start, client_once, NULL, what[kind] };
        pid_t server = kind == BROKER || kind == BROKER_PINNED ? broker_pid :
                       kind == S6 ? s6_pid : kind == FLOOR ? floor_pid : floor1_pid;

        cl.kind = kind;
        return bench_window(&c, k, window_ms, server, cpu);
}

static void pin_all(int cpu)
{
        bench_set_cpu(0, cpu);
        bench_set_cpu(broker_pid, cpu);
        bench_set_cpu(s6_pid, cpu);
        bench_set_cpu(floor_pid, cpu);
        bench_set_cpu(floor1_pid, cpu);
}

/* ---------------------------------------------------------------- output */

static void print_row(int json, const char *name, struct bench_stat3 o, struct bench_stat3 b,
                      double target, int higher, const char *unit, const char *extra, int last)
{
        double ratio = o.med / b.med;
        int meets = higher ? ratio >= target : ratio <= target;

        if (json) {
                char t[16], m[8];
                snprintf(t, sizeof(t), target > 0 ? "%.2f" : "null", target);
                snprintf(m, sizeof(m), "%s", target > 0 ? (meets ? "true" : "false") : "null");
                printf("  {\"name\": \"%s\", \"ours\": %.1f, \"baseline\": %.1f, "
                       "\"ratio\": %.3f, \"target\": %s, \"meets\": %s, \"unit\": \"%s\", "
                       "%s\"spread\": {\"ours_min\": %.1f, \"ours_max\": %.1f, "
                       "\"baseline_min\": %.1f, \"baseline_max\": %.1f}%s}%s\n",
                       name, o.med, b.med, ratio, t, m, unit,
                       higher ? "\"higher_is_better\": true, " : "", o.min, o.max, b.min, b.max,
                       extra, last ? "" : ",");
        } else {
                char os[64], bs[64], t[16];
                snprintf(os, sizeof(os), "%.0f [%.0f..%.0f] %s", o.med, o.min, o.max, unit);
                snprintf(bs, sizeof(bs), "%.0f [%.0f..%.0f] %s", b.med, b.min, b.max, unit);
                if (target > 0)
                        snprintf(t, sizeof(t), "%s%.2f", higher ? ">=" : "<=", target);
                else
                        snprintf(t, sizeof(t), "-");
                printf("%-64s %-30s %-30s %6.2f %7s %s\n", name, os, bs, ratio, t,
                       target > 0 ? (meets ? "yes" : "NO") : "-");
        }
}

int main(int argc, char **argv)
{
        const double target_s6 = 1.1, target_floor = 0.95;
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, window;
        static double tput[NSERVERS][NCLIENTS][MAX_ROUNDS], cpu[NSERVERS][NCLIENTS][MAX_ROUNDS];

        if (argc == 4 && strcmp(argv[1], "--floor-server") == 0)
                return floor_server(argv[2], atoi(argv[3]));
        bench_options(argc, argv, &opt);
        json = opt.json;
        quick = opt.quick;
#ifndef HAVE_S6
        bench_die("built without s6's client library (apt-get install libs6-dev skalibs-dev)", 0);
#endif
        rounds = quick ? 3 : 11;      /* the several-client rows spread 20% and more */
        window = quick ? WINDOW_MS_QUICK : WINDOW_MS;

        start_servers();
        /* warm them up once */
        for (int k = 0; k < NSERVERS; k++)
                (void)round_of(k, 4, window / 4, NULL);
        for (int r = 0; r < rounds; r++)
                for (int c = 0; c < NCLIENTS; c++) {
                        /* one client: it and the servers on one CPU */
                        if (clients[c] == 1)
                                pin_all(sched_getcpu() >= 0 ? sched_getcpu() : 0);
                        /* the variants take turns, the first rotating */
                        for (int k = 0; k < NSERVERS; k++) {
                                int srv = (k + r + c) % NSERVERS;
                                tput[srv][c][r] = round_of(srv, clients[c], window, &cpu[srv][c][r]);
                        }
                        if (clients[c] == 1)
                                pin_all(-1);
                }
        stop_servers();

        if (json)
                printf("[\n");
        else
                printf("%-64s %-30s %-30s %6s %7s %s\n", "benchmark", "ours [min..max]",
                       "baseline [min..max]", "ratio", "target", "meets");
        for (int c = 0; c < NCLIENTS; c++) {
                struct bench_stat3 o = bench_summarise(tput[BROKER][c], rounds);
                char name[128], extra[256];
                const char *pl = clients[c] == 1 ? "" : "s";

                snprintf(name, sizeof(name),
                         "hand-out, %d client%s: broker attach vs s6-fdholderd retrieve",
                         clients[c], pl);
                snprintf(extra, sizeof(extra), ", \"chart\": \"handout\", \"x\": %d, "
                         "\"series\": \"broker attach\", \"baseline_series\": "
                         "\"s6-fdholderd retrieve\", \"rounds\": %d, \"window_ms\": %d",
                         clients[c], rounds, window);
                print_row(json, name, o, bench_summarise(tput[S6][c], rounds), target_s6, 1,
                          "ops/s", extra, 0);
                snprintf(name, sizeof(name),
                         "hand-out, %d client%s: broker attach vs raw 1-fd floor", clients[c], pl);
                snprintf(extra, sizeof(extra), ", \"clients\": %d, \"rounds\": %d, "
                         "\"window_ms\": %d", clients[c], rounds, window);
                print_row(json, name, o, bench_summarise(tput[FLOOR1][c], rounds), target_floor,
                          1, "ops/s", extra, 0);
                snprintf(name, sizeof(name), "hand-out, %d client%s: broker attach with pin "
                         "state vs raw 2-fd floor", clients[c], pl);
                print_row(json, name, bench_summarise(tput[BROKER_PINNED][c], rounds),
                          bench_summarise(tput[FLOOR][c], rounds), target_floor, 1, "ops/s",
                          extra, 0);
                snprintf(name, sizeof(name), "hand-out, %d client%s: broker CPU per attach vs "
                         "s6-fdholderd's per retrieve", clients[c], pl);
                snprintf(extra, sizeof(extra), ", \"floor_cpu_ns\": %.1f",
                         bench_summarise(cpu[FLOOR][c], rounds).med);
                print_row(json, name, bench_summarise(cpu[BROKER][c], rounds),
                          bench_summarise(cpu[S6][c], rounds), 0, 0, "ns", extra,
                          c + 1 == NCLIENTS);
        }
        if (json)
                printf("]\n");
        else
                printf("\na round is %d ms of all clients asking at once; median of %d rounds\n",
                       window, rounds);
        return 0;
}
