/* SPDX-License-Identifier: MIT */
/*
 * The broker: attach on an open connection against the floor, a plain
 * SOCK_SEQPACKET request/response that passes one descriptor.
 *
 * "ours" is ashmem_broker_attach() of a shared region with read-write
 * access and the close of the descriptor it returns: the request built and
 * parsed as JSON, the access check, the region record (with the region's
 * pin counts), two descriptors passed (data and control), the control
 * block checked on the client side. "baseline" is the least any broker can
 * cost: a small request, a small reply and one descriptor passed, served
 * by a minimal single-threaded epoll server of the same shape as the
 * broker. Target: at most 2x.
 *
 * Then the attach of regions the attaching process has never seen (regions
 * no holder has unpinned, so the reply carries the data descriptor alone;
 * the first attach of one with pin state maps its control block and enters
 * it in the library's table): each round a fresh process, on the same CPU,
 * attaches distinct names that another process created, against the same
 * number of floor requests from a fresh process. Target: at most 1.5x.
 *
 * Then the same with 1, 4 and 16 client processes at once, each on its own
 * connection, all asking for a window of 250 ms (bench_window()): wall time
 * per attach (the inverse of their throughput), against the floor server
 * under the same load. These rows have no target: on a small machine their
 * spread is mostly the scheduler's placement.
 *
 * Both servers run as child processes (the broker is `ashmemctl broker
 * run`, found next to this program's directory); the variants alternate
 * round by round, and each figure is the median of the rounds (with the
 * smallest and largest round as the spread).
 *
 * For the one-connection row, client and servers are pinned to one CPU: a
 * request/response pair whose two sides sit on different CPUs pays a
 * cross-CPU wakeup each way, which (in a virtual machine especially) can
 * cost ten times the whole exchange, and where the scheduler puts each
 * side is luck. On one CPU both variants pay the same switch and the rows
 * compare the work done. The concurrent rows run unpinned.
 *
 * Usage: bench_broker [--json] [--quick]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "support/bench.h"

#define MAX_ROUNDS 64
#define REGION "bench"

static char dir[64], broker_sock[96], floor_sock[96];
static pid_t broker_pid, floor_pid;

/* ---------------------------------------------------------------- the floor */

static const char floor_req[] = "{\"v\":1,\"op\":\"attach\",\"name\":\"bench\",\"access\":\"rw\"}";
static const char floor_rep[] = "{\"ok\":true,\"name\":\"bench\",\"size\":4096}";

static int send_fd(int s, const char *buf, size_t len, int fd)
{
        union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *c;

        memset(&u, 0, sizeof(u));
        m.msg_control = u.b;
        m.msg_controllen = sizeof(u.b);
        c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        return sendmsg(s, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* A minimal server: accept, read a request, reply with one descriptor. */
static void floor_server(int lfd)
{
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int mfd = memfd_create("bench-floor", MFD_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[64];
        char buf[65536];

        if (ep < 0 || mfd < 0 || ftruncate(mfd, 4096) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
                _exit(1);
        for (;;) {
                int n = epoll_wait(ep, evs, 64, -1);
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd == lfd) {
                                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                                if (c >= 0)
                                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                                continue;
                        }
                        for (int k = 0; k < 16; k++) {
                                ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                                if (r <= 0) {
                                        if (r == 0 || errno != EAGAIN)
                                                close(fd);
                                        break;
                                }
                                send_fd(fd, floor_rep, sizeof(floor_rep) - 1, mfd);
                        }
                }
        }
}

static int listen_at(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0)
                bench_die("floor server socket", errno);
        return fd;
}

static int connect_to(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                bench_die(path, errno);
        return fd;
}

static int floor_once(int s)
{
        union { char b[CMSG_SPACE(sizeof(int) * 2)]; struct cmsghdr a; } u;
        char buf[4096];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.b, .msg_controllen = sizeof(u.b) };
        struct cmsghdr *c;
        int fd;

        if (send(s, floor_req, sizeof(floor_req) - 1, MSG_NOSIGNAL) < 0 ||
            recvmsg(s, &m, MSG_CMSG_CLOEXEC) <= 0)
                return -errno;
        c = CMSG_FIRSTHDR(&m);
        if (!c || c->cmsg_type != SCM_RIGHTS)
                return -EPROTO;
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        return close(fd) < 0 ? -errno : 0;
}

/* ---------------------------------------------------------------- the broker */

static void start_servers(void)
{
        char prog[PATH_MAX + 32];
        pid_t parent = getpid();
        int lfd;

        bench_ashmemctl(prog, sizeof(prog));
        snprintf(dir, sizeof(dir), "/tmp/ashmem-bench-XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        snprintf(broker_sock, sizeof(broker_sock), "%s/broker.sock", dir);
        snprintf(floor_sock, sizeof(floor_sock), "%s/floor.sock", dir);

        broker_pid = fork();
        if (broker_pid < 0)
                bench_die("fork", errno);
        if (broker_pid == 0) {
                int nul = open("/dev/null", O_RDWR);
                if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                close_range(3, ~0U, 0);
                execl(prog, "ashmemctl", "--socket", broker_sock, "-q", "broker", "run",
                      "--idle-timeout", "0", "--no-psi", (char *)NULL);
                _exit(127);
        }
        lfd = listen_at(floor_sock);
        floor_pid = fork();
        if (floor_pid < 0)
                bench_die("fork", errno);
        if (floor_pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                floor_server(lfd);
        }
        close(lfd);
        for (int i = 0;; i++) {
                ashmem_broker *b;
                if (ashmem_broker_connect(broker_sock, &b) == 0) {
                        ashmem_broker_close(b);
                        break;
                }
                if (i == 1000)
                        bench_die("the broker does not answer (is ashmemctl built?)", ETIMEDOUT);
                bench_nap_ms(10);
        }
}

static void stop_servers(void)
{
        kill(floor_pid, SIGKILL);
        kill(broker_pid, SIGTERM);
        while (waitpid(floor_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        while (waitpid(broker_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        unlink(floor_sock);
        {
                /* the broker's lock file stays beside its socket */
                char lock[sizeof(broker_sock) + 8];
                snprintf(lock, sizeof(lock), "%s.lock", broker_sock);
                unlink(lock);
        }
        if (rmdir(dir) < 0)
                fprintf(stderr, "bench_broker: %s: %s\n", dir, strerror(errno));
}

static void pin_all(int cpu)
{
        bench_set_cpu(0, cpu);
        bench_set_cpu(broker_pid, cpu);
        bench_set_cpu(floor_pid, cpu);
}

static int attach_once(ashmem_broker *b)
{
        int fd, r = ashmem_broker_attach(b, REGION, 1, &fd, NULL, NULL);

        if (r < 0)
                return r;
        return close(fd) < 0 ? -errno : 0;
}

/* ---------------------------------------------------------------- never seen */

/* n regions "unseen-%05d", made by a child process that then exits, so
 * that no process that measures has seen them. */
static void create_unseen(int n)
{
        pid_t pid = fork();

        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                ashmem_broker *b;
                if (ashmem_broker_connect(broker_sock, &b) < 0)
                        _exit(1);
                for (int i = 0; i < n; i++) {
                        char name[32];
                        int fd;
                        snprintf(name, sizeof(name), "unseen-%05d", i);
                        if (ashmem_broker_create(b, name, 4096, ASHMEM_BROKER_DEFAULT, 0600,
                                                 &fd, NULL) < 0)
                                _exit(2);
                        close(fd);
                }
                ashmem_broker_close(b);
                _exit(0);
        }
        bench_reap(&pid, 1, "creating the regions to attach");
}

/* A fresh process (this one's CPU) on a fresh connection: the mean ns of
 * attaching regions first..first+n-1, each once (floor: n floor requests
 * instead). One round trip before the clock starts. */
static double never_seen(int floor, int first, int n)
{
        int p[2];
        double mean = 0;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        pid = fork();
        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                ashmem_broker *b = NULL;
                int s = -1, fd;
                int64_t t0;
                close(p[0]);
                if (floor) {
                        s = connect_to(floor_sock);
                        if (floor_once(s) < 0)
                                _exit(1);
                } else if (ashmem_broker_connect(broker_sock, &b) < 0 ||
                           attach_once(b) < 0) {
                        _exit(1);
                }
                t0 = bench_now_ns();
                for (int i = 0; i < n; i++) {
                        char name[32];
                        if (floor) {
                                if (floor_once(s) < 0)
                                        _exit(2);
                                continue;
                        }
                        snprintf(name, sizeof(name), "unseen-%05d", first + i);
                        if (ashmem_broker_attach(b, name, 1, &fd, NULL, NULL) < 0)
                                _exit(2);
                        close(fd);
                }
                mean = (double)(bench_now_ns() - t0) / n;
                _exit(write(p[1], &mean, sizeof(mean)) == (ssize_t)sizeof(mean) ? 0 : 3);
        }
        close(p[1]);
        while (read(p[0], &mean, sizeof(mean)) < 0)
                if (errno != EINTR)
                        bench_die("read", errno);
        close(p[0]);
        bench_reap(&pid, 1, "the never-seen attach");
        return mean;
}

/* ---------------------------------------------------------------- measuring */

/* Mean ns per operation over n operations on one connection. */
static double batch_broker(ashmem_broker *b, int n)
{
        int64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++) {
                int r = attach_once(b);
                if (r < 0)
                        bench_die("attach", -r);
        }
        return (double)(bench_now_ns() - t0) / n;
}

static double batch_floor(int s, int n)
{
        int64_t t0 = bench_now_ns();

        for (int i = 0; i < n; i++) {
                int r = floor_once(s);
                if (r < 0)
                        bench_die("floor request", -r);
        }
        return (double)(bench_now_ns() - t0) / n;
}

/* A client of bench_window(): floor or broker (set before each window),
 * and in each client process its connection. */
static struct { int floor; int s; ashmem_broker *b; } cl;

static int client_once(void *arg)
{
        (void)arg;
        return cl.floor ? floor_once(cl.s) : attach_once(cl.b);
}

/* connect, and one round trip: connected, warm */
static int client_start(void *arg)
{
        int r;

        if (cl.floor)
                cl.s = connect_to(floor_sock);
        else if ((r = ashmem_broker_connect(broker_sock, &cl.b)) < 0)
                return r;
        return client_once(arg);
}

/* k client processes asking at once for window_ms: wall ns per
 * operation (the inverse of their throughput). */
static double concurrent(int floor, int k, int window_ms)
{
        const struct bench_clients c = { client_start, client_once, NULL,
                                         floor ? "floor client" : "broker client" };

        cl.floor = floor;
        return 1e9 / bench_window(&c, k, window_ms, 0, NULL);
}

static const struct bench_style style = {
        .name_width = 48, .cell_width = 30, .ns_digits = 0, .scaled = 1,
        .strict = 0, .json_digits = 1,
};

int main(int argc, char **argv)
{
        static const int clients[] = { 1, 4, 16 };
        static char names[3][64];
        struct bench_opts opt = { 0, 0 };
        int json, quick, rounds, per_round, crounds, cwindow, nrows = 0, fd, s, r;
        double ours[MAX_ROUNDS], base[MAX_ROUNDS], co[3][MAX_ROUNDS], cb[3][MAX_ROUNDS];
        double uo[MAX_ROUNDS], ub[MAX_ROUNDS];
        int unseen_per;
        struct bench_row rows[6];
        ashmem_broker *b;

        bench_options(argc, argv, &opt);
        json = opt.json;
        quick = opt.quick;
        rounds = quick ? 5 : 21;
        per_round = quick ? 500 : 5000;
        crounds = quick ? 3 : 7;
        cwindow = quick ? 40 : 250;   /* ms */
        unseen_per = quick ? 100 : 150;

        start_servers();
        r = ashmem_broker_connect(broker_sock, &b);
        if (r < 0)
                bench_die("connect", -r);
        r = ashmem_broker_create(b, REGION, 4096, ASHMEM_BROKER_DEFAULT, 0600, &fd, NULL);
        if (r < 0)
                bench_die("create", -r);
        close(fd);
        s = connect_to(floor_sock);

        /* one connection: everybody on one CPU (see above) */
        pin_all(sched_getcpu() >= 0 ? sched_getcpu() : 0);
        /* warm up both */
        (void)batch_broker(b, per_round / 4 + 1);
        (void)batch_floor(s, per_round / 4 + 1);
        for (int k = 0; k < rounds; k++) {
                if (k % 2) {
                        base[k] = batch_floor(s, per_round);
                        ours[k] = batch_broker(b, per_round);
                } else {
                        ours[k] = batch_broker(b, per_round);
                        base[k] = batch_floor(s, per_round);
                }
        }
        /* regions the attaching process has never seen: distinct names,
         * a fresh process each round, on the same CPU */
        create_unseen(rounds * unseen_per);
        for (int k = 0; k < rounds; k++) {
                if (k % 2) {
                        ub[k] = never_seen(1, 0, unseen_per);
                        uo[k] = never_seen(0, k * unseen_per, unseen_per);
                } else {
                        uo[k] = never_seen(0, k * unseen_per, unseen_per);
                        ub[k] = never_seen(1, 0, unseen_per);
                }
        }
        pin_all(-1);
        for (int k = 0; k < crounds; k++)
                for (int c = 0; c < 3; c++) {
                        if (k % 2) {
                                cb[c][k] = concurrent(1, clients[c], cwindow);
                                co[c][k] = concurrent(0, clients[c], cwindow);
                        } else {
                                co[c][k] = concurrent(0, clients[c], cwindow);
                                cb[c][k] = concurrent(1, clients[c], cwindow);
                        }
                }
        close(s);
        ashmem_broker_close(b);
        stop_servers();

        rows[nrows++] = (struct bench_row){ "attach, one connection, one CPU vs 1-fd request",
                                            bench_summarise(ours, rounds), bench_summarise(base, rounds),
                                            2.0, "ns", 0, NULL };
        rows[nrows++] = (struct bench_row){ "attach of never-seen regions, one CPU vs 1-fd request",
                                            bench_summarise(uo, rounds), bench_summarise(ub, rounds),
                                            1.5, "ns", 0, NULL };
        for (int c = 0; c < 3; c++) {
                snprintf(names[c], sizeof(names[c]), "attach, %d client%s (wall per op) vs floor",
                         clients[c], clients[c] == 1 ? "" : "s");
                /* reported, no target: with several processes on few CPUs
                 * where the scheduler puts them weighs more than the work */
                rows[nrows++] = (struct bench_row){ names[c], bench_summarise(co[c], crounds),
                                                    bench_summarise(cb[c], crounds), 0, "ns", 0, NULL };
        }
        if (json) {
                bench_print_json(rows, nrows, &style);
        } else {
                bench_print_table(rows, nrows, &style);
                printf("\nthroughput (attaches/s, medians):");
                for (int c = 0; c < 3; c++)
                        printf(" %d client%s %.0f (floor %.0f)%s", clients[c],
                               clients[c] == 1 ? "" : "s", 1e9 / rows[2 + c].ours.med,
                               1e9 / rows[2 + c].base.med, c < 2 ? "," : "\n");
                printf("%d rounds of %d attaches; for the concurrent rows %d rounds of a "
                       "%d ms window of all clients asking at once\n", rounds, per_round,
                       crounds, cwindow);
        }
        return 0;
}
