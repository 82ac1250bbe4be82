/* SPDX-License-Identifier: MIT */
/*
 * The broker and its client library: every op of the protocol through
 * ashmem_broker_*, access control (root tests run a client as nobody),
 * transient shares, lookup of the shared pin state, the purger, limits,
 * and the robustness rules: garbage, truncated, oversized and
 * many-descriptor messages get an error and leave the broker's descriptor
 * count unchanged; 10,000 attach/close cycles leave nothing behind.
 *
 * Each test starts `ashmemctl broker run` (the binary next to this test's
 * directory) on a socket in a fresh temporary directory, and stops it with
 * SIGTERM, checking it exits 0 and removes its socket. Roles that must not
 * share this process's pin state run in forked children started before
 * the region exists.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../../drivers/memfd/memfd.h"
#include "lib/internal/clock.h"
#include "lib/internal/scm.h"
#include "t.h"

#define WAIT_MS 10000   /* generous bound for waits on the broker */

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

/* ------------------------------------------------------------ the broker */

static char dir[64], sock[96];
static pid_t broker_pid;

static long long mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void ashmemctl_path(char *buf, size_t len)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (n < 0)
                t_fail(__FILE__, __LINE__, "readlink: %m");
        self[n] = 0;
        slash = strrchr(self, '/');
        *slash = 0;
        if ((size_t)snprintf(buf, len, "%.*s/../ashmemctl", (int)(len - 16), self) >= len)
                t_fail(__FILE__, __LINE__, "path too long");
        if (access(buf, X_OK) < 0)
                t_fail(__FILE__, __LINE__, "%s: %m (build ashmemctl first)", buf);
}

static void remove_dir(void);

/* A test that fails (exit) or is killed takes its broker along. */
static void kill_broker(void)
{
        if (broker_pid > 0) {
                kill(broker_pid, SIGKILL);
                while (waitpid(broker_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                broker_pid = 0;
                remove_dir();
        }
}

/* Run in the broker's process before its exec, when set (a broker of
 * another user's, which the library refuses to talk to: start_broker_args
 * then waits for its socket to accept a connection). */
static void (*broker_pre_exec)(void);

static int broker_accepts(void)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r;

        CHECK(fd >= 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
        r = connect(fd, (struct sockaddr *)&a, sizeof(a));
        close(fd);
        return r == 0;
}

/* Copy the program at prog into dir (as dir/ashmemctl, mode 0755) and put
 * the copy's path in prog: a broker of another user may not reach the
 * build directory (a checkout in a directory of mode 0700). */
static void stage_prog(char *prog, size_t len)
{
        char dst[PATH_MAX], buf[65536];
        int in = open(prog, O_RDONLY | O_CLOEXEC), out;
        ssize_t n;

        if ((size_t)snprintf(dst, sizeof(dst), "%s/ashmemctl", dir) >= sizeof(dst))
                t_fail(__FILE__, __LINE__, "path too long");
        out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        if (in < 0 || out < 0)
                t_fail(__FILE__, __LINE__, "copying %s to %s: %m", prog, dst);
        while ((n = read(in, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || write(out, buf, (size_t)n) != n)
                        t_fail(__FILE__, __LINE__, "copying %s to %s: %m", prog, dst);
        }
        if (close(out) < 0)
                t_fail(__FILE__, __LINE__, "copying %s to %s: %m", prog, dst);
        close(in);
        snprintf(prog, len, "%s", dst);
}

/* Start a broker with extra arguments (NULL-terminated). */
static void start_broker_args(const char *const *extra)
{
        char prog[PATH_MAX], log[128];
        long long deadline;
        pid_t parent = getpid();

        snprintf(dir, sizeof(dir), "/tmp/ashmem-tb-XXXXXX");
        if (!mkdtemp(dir))
                t_fail(__FILE__, __LINE__, "mkdtemp: %m");
        chmod(dir, 0755);       /* so that nobody reaches the socket */
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        snprintf(log, sizeof(log), "%s/log", dir);
        setenv("ASHMEM_SOCKET", sock, 1);
        ashmemctl_path(prog, sizeof(prog));
        if (broker_pre_exec)
                stage_prog(prog, sizeof(prog));
        broker_pid = fork();
        if (broker_pid < 0)
                t_fail(__FILE__, __LINE__, "fork: %m");
        if (broker_pid == 0) {
                const char *argv[32];
                int n = 0, fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                int nul = open("/dev/null", O_RDWR);
                if (fd < 0 || nul < 0 || dup2(fd, 2) < 0 || dup2(nul, 1) < 0 || dup2(nul, 0) < 0)
                        _exit(126);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                close_range(3, ~0U, 0);
                argv[n++] = "ashmemctl";
                argv[n++] = "--socket";
                argv[n++] = sock;
                argv[n++] = "broker";
                argv[n++] = "run";
                argv[n++] = "-v";
                for (int i = 0; extra && extra[i] && n < 31; i++)
                        argv[n++] = extra[i];
                argv[n] = NULL;
                if (broker_pre_exec)
                        broker_pre_exec();
                execv(prog, (char *const *)argv);
                _exit(127);
        }
        atexit(kill_broker);
        deadline = mono_ms() + WAIT_MS;
        for (;;) {
                ashmem_broker *b;
                int status;
                if (broker_pre_exec && broker_accepts())
                        return;
                if (!broker_pre_exec && ashmem_broker_connect(sock, &b) == 0) {
                        ashmem_broker_close(b);
                        return;
                }
                if (waitpid(broker_pid, &status, WNOHANG) == broker_pid)
                        t_fail(__FILE__, __LINE__, "the broker exited (status 0x%x)", status);
                if (mono_ms() > deadline)
                        t_fail(__FILE__, __LINE__, "the broker does not answer");
                nap(5);
        }
}

static void start_broker(void)
{
        start_broker_args(NULL);
}

static void remove_dir(void)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        rmdir(dir);
}

/* SIGTERM: the broker exits 0 and removes its socket. */
static void stop_broker(void)
{
        int status;
        struct stat st;

        CHECK_EQ(kill(broker_pid, SIGTERM), 0);
        while (waitpid(broker_pid, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                char cmd[160];
                snprintf(cmd, sizeof(cmd), "cat %s/log >&2", dir);
                if (system(cmd) < 0)
                        perror("system");
                t_fail(__FILE__, __LINE__, "broker exit status 0x%x", status);
        }
        broker_pid = 0;
        CHECK(lstat(sock, &st) < 0 && errno == ENOENT);
        remove_dir();
}

/* The entries of the broker's /proc/PID/what: its descriptors ("fd"), its
 * threads ("task"). */
static int broker_entries(const char *what)
{
        char path[64];
        DIR *d;
        struct dirent *de;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)broker_pid, what);
        d = opendir(path);
        if (!d)
                t_fail(__FILE__, __LINE__, "%s: %m", path);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* The broker's descriptors now (see broker_fds()). */
static int broker_fds_now(void)
{
        return broker_entries("fd");
}

/* The broker's descriptors, once settled: it closes descriptors clients
 * sent, and connections' sockets, on a thread of its own, a moment after
 * the reply. */
static int broker_fds(void)
{
        int n = broker_fds_now();

        for (long long end = mono_ms() + WAIT_MS, still = mono_ms() + 100;
             mono_ms() < still && mono_ms() < end;) {
                int m;
                nap(10);
                m = broker_fds_now();
                if (m != n) {
                        n = m;
                        still = mono_ms() + 100;
                }
        }
        return n;
}

static ashmem_broker *conn(void)
{
        ashmem_broker *b;
        int r = ashmem_broker_connect(sock, &b);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "connect %s: %s", sock, strerror(-r));
        return b;
}

static int create(ashmem_broker *b, const char *name, size_t size, int mode)
{
        int fd, r = ashmem_broker_create(b, name, size, ASHMEM_BROKER_DEFAULT, mode, &fd, NULL);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "create %s: %s", name, strerror(-r));
        return fd;
}

#define CHILD_OK(fn, arg) do {                                          \
                int s_ = t_in_child((fn), (arg));                       \
                if (!WIFEXITED(s_) || WEXITSTATUS(s_) != 0)             \
                        t_fail(__FILE__, __LINE__, "child %s failed (status 0x%x)", #fn, s_); \
        } while (0)

/* ------------------------------------------------------------ raw protocol */

static int raw_connect(void)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        CHECK(fd >= 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
        CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        return fd;
}

static void raw_send(int fd, const void *data, size_t len, const int *fds, int nfds)
{
        if (am_send_fds_any(fd, data, len, fds, nfds, 0) < 0)
                t_fail(__FILE__, __LINE__, "sendmsg: %m");
}

static void raw_sends(int fd, const char *text, const int *fds, int nfds)
{
        raw_send(fd, text, strlen(text), fds, nfds);
}

/* Receive a reply into buf; of its descriptors the first max go to keep
 * (the caller's to close), the rest are closed; their number in *nfds
 * (when not NULL). Returns the reply's length. */
static int raw_recv_keep(int fd, char *buf, size_t len, int *nfds, int *keep, int max)
{
        union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr a; } u;
        struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        int k = 0;

        if (n < 0)
                t_fail(__FILE__, __LINE__, "recvmsg: %m");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < cnt; i++) {
                        int x;
                        memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (k < max)
                                keep[k] = x;
                        else
                                close(x);
                        k++;
                }
        }
        buf[n] = 0;
        if (nfds)
                *nfds = k;
        return (int)n;
}

/* Receive a reply; closes any descriptors; returns its length. */
static int raw_recv(int fd, char *buf, size_t len, int *nfds)
{
        return raw_recv_keep(fd, buf, len, nfds, NULL, 0);
}

/* Send text, expect a failure naming errno e. */
static void expect_error(int fd, const char *text, const char *e)
{
        char buf[70000], want[64];

        raw_send(fd, text, strlen(text), NULL, 0);
        raw_recv(fd, buf, sizeof(buf), NULL);
        snprintf(want, sizeof(want), "\"errno\":\"%s\"", e);
        if (!strstr(buf, "\"ok\":false") || !strstr(buf, want))
                t_fail(__FILE__, __LINE__, "%s -> %s, expected %s", text, buf, e);
}

/* ------------------------------------------------------------ hello, stats */

TEST(hello_names_the_broker)
{
        ashmem_broker *b;
        ashmem_broker_server srv;
        ashmem_broker_counters st;

        start_broker();
        b = conn();
        CHECK_EQ(ashmem_broker_hello(b, &srv), 0);
        CHECK_EQ(srv.version, 1);
        CHECK_EQ(srv.pid, broker_pid);
        CHECK(strcmp(srv.driver, "memfd") == 0);
        CHECK_EQ(ashmem_broker_stats(b, &st), 0);
        CHECK(st.connections >= 1);   /* the start-up probe may still count */
        CHECK_EQ(st.regions, 0);
        CHECK_EQ(st.requests, 2);
        CHECK_EQ(st.errors, 0);
        ashmem_broker_close(b);
        stop_broker();
}

TEST(socket_path_resolution)
{
        char buf[128];

        setenv("ASHMEM_SOCKET", "/x/y.sock", 1);
        CHECK_EQ(ashmem_broker_socket_path(0, buf, sizeof(buf)), 9);
        CHECK(strcmp(buf, "/x/y.sock") == 0);
        unsetenv("ASHMEM_SOCKET");
        setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
        CHECK(ashmem_broker_socket_path(0, buf, sizeof(buf)) > 0);
        CHECK(strcmp(buf, "/run/user/7/ashmem/broker.sock") == 0);
        unsetenv("XDG_RUNTIME_DIR");
        CHECK(ashmem_broker_socket_path(0, buf, sizeof(buf)) > 0);
        {
                char want[64];
                snprintf(want, sizeof(want), "/tmp/ashmem-%u/broker.sock", (unsigned)getuid());
                CHECK(strcmp(buf, want) == 0);
        }
        CHECK(ashmem_broker_socket_path(1, buf, sizeof(buf)) > 0);
        CHECK(strcmp(buf, "/run/ashmem/broker.sock") == 0);
        CHECK_NEG(ashmem_broker_socket_path(1, buf, 5), ENAMETOOLONG);
        {
                char longp[200];
                memset(longp, 'a', sizeof(longp) - 1);
                longp[0] = '/';
                longp[sizeof(longp) - 1] = 0;
                setenv("ASHMEM_SOCKET", longp, 1);
                CHECK_NEG(ashmem_broker_socket_path(0, buf, sizeof(buf)), ENAMETOOLONG);
                {
                        ashmem_broker *b;
                        CHECK_NEG(ashmem_broker_connect(NULL, &b), ENAMETOOLONG);
                }
        }
        {
                ashmem_broker *b;
                CHECK_NEG(ashmem_broker_connect("/nonexistent/dir/sock", &b), ENOENT);
        }
}

/* ------------------------------------------------------------ create, attach */

struct role { int val; const char *name; int pipefd; };

static void reader_ro(void *arg)
{
        struct role *ro = arg;
        ashmem_broker *b = conn();
        int fd, fl;
        size_t off, len;
        char *p;

        CHECK_EQ(ashmem_broker_attach(b, ro->name, 0, &fd, &off, &len), 0);
        CHECK_EQ(off, 0);
        CHECK_EQ(len, 3 * ps() + 1);
        fl = fcntl(fd, F_GETFL);
        CHECK_EQ(fl & O_ACCMODE, O_RDONLY);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        /* the kernel refuses a writable shared mapping */
        CHECK(mmap(NULL, ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EACCES);
        {
                void *m;
                CHECK_NEG(ashmem_map(fd, PROT_READ | PROT_WRITE, 0, 0, &m), EACCES);
        }
        p = mmap(NULL, ps(), PROT_READ, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        CHECK_EQ(p[0], 'w');
        /* the pin state is read-only: status yes, changes no */
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, ps()), EPERM);
        CHECK_ERRNO(ashmem_pin_region(fd, ps(), ps()), EPERM);
        CHECK_NEG(ashmem_purge(fd), EPERM);
        {
                ashmem_stats st;
                CHECK_EQ(ashmem_get_stats(fd, &st), 0);
                CHECK_EQ(st.shared_state, 1);
                CHECK_EQ(st.writable_state, 0);
                CHECK_EQ(st.unpinned, 1);
        }
        munmap(p, ps());
        close(fd);
        ashmem_broker_close(b);
}

static void writer_rw(void *arg)
{
        struct role *ro = arg;
        ashmem_broker *b = conn();
        int fd;
        char *p;

        CHECK_EQ(ashmem_broker_attach(b, ro->name, 1, &fd, NULL, NULL), 0);
        CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        p = mmap(NULL, ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        CHECK_EQ(p[1], 'x');    /* the creator's write */
        p[0] = 'w';
        /* pin state is shared with the creator */
        CHECK_EQ(ashmem_unpin_region(fd, ps(), ps()), 0);
        munmap(p, ps());
        close(fd);
        ashmem_broker_close(b);
}

/* Fork a child that runs fn(arg) once this process writes a byte to
 * go[1] (go[0] is closed here), then exits 0, or 3 if the byte never
 * comes: forked before this process has pin state or heaps of its own,
 * it inherits none. */
static pid_t fork_on_go(void (*fn)(void *), void *arg, int go[2])
{
        pid_t child;

        CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) != 1)
                        _exit(3);
                close(go[0]);
                fn(arg);
                _exit(0);
        }
        close(go[0]);
        return child;
}

TEST(create_attach_read_write_and_read_only)
{
        ashmem_broker *b;
        ashmem_region_info ri;
        struct role ro = { .name = "shared" };
        int fd, status;
        pid_t child;
        char *p;
        int sync[2];

        start_broker();
        /* the read-only reader must not inherit our read-write pin state:
         * fork it now, let it go once the region exists */
        child = fork_on_go(reader_ro, &ro, sync);
        b = conn();
        fd = -1;
        CHECK_EQ(ashmem_broker_create(b, "shared", 3 * ps() + 1, ASHMEM_BROKER_DEFAULT, 0640,
                                      &fd, &ri), 0);
        CHECK(fd >= 0);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK(strcmp(ri.name, "shared") == 0);
        CHECK_EQ(ri.size, 3 * ps() + 1);
        CHECK_EQ(ri.mode, 0640);
        CHECK_EQ(ri.uid, getuid());
        CHECK_EQ(ri.gid, getgid());
        CHECK_EQ(ri.prot, PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(ri.pages, 4);
        CHECK_EQ(ri.pinned, 4);
        CHECK_EQ(ri.transient, 0);
        CHECK_EQ(ri.is_slice, 0);
        CHECK(ri.created > 0 && ri.created <= time(NULL));
        CHECK_EQ(ashmem_get_size_region(fd), (int)(3 * ps() + 1));
        {
                char name[ASHMEM_NAME_LEN];
                CHECK(ashmem_get_name(fd, name, sizeof(name)) >= 0);
                CHECK(strcmp(name, "shared") == 0);
        }
        p = mmap(NULL, ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        p[1] = 'x';
        CHILD_OK(writer_rw, &ro);
        CHECK_EQ(p[0], 'w');    /* the other process's write */
        CHECK_EQ(ashmem_pin_status(fd, ps(), ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(write(sync[1], "go", 1), 1);
        close(sync[1]);
        while (waitpid(child, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ(ashmem_broker_info(b, "shared", &ri), 0);
        CHECK_EQ(ri.attaches, 2);
        CHECK_EQ(ri.unpinned, 1);
        CHECK_EQ(ri.pinned, 3);
        /* duplicates and bad input */
        {
                int fd2;
                CHECK_NEG(ashmem_broker_create(b, "shared", 10, ASHMEM_BROKER_DEFAULT,
                                               ASHMEM_BROKER_DEFAULT, &fd2, NULL), EEXIST);
                CHECK_NEG(ashmem_broker_create(b, "", 10, ASHMEM_BROKER_DEFAULT,
                                               ASHMEM_BROKER_DEFAULT, &fd2, NULL), EINVAL);
                CHECK_NEG(ashmem_broker_create(b, "bad\nname", 10, ASHMEM_BROKER_DEFAULT,
                                               ASHMEM_BROKER_DEFAULT, &fd2, NULL), EINVAL);
                CHECK_NEG(ashmem_broker_create(b, "big", ASHMEM_SIZE_MAX + 1, ASHMEM_BROKER_DEFAULT,
                                               ASHMEM_BROKER_DEFAULT, &fd2, NULL), EINVAL);
                CHECK_NEG(ashmem_broker_create(b, "x", 0, ASHMEM_BROKER_DEFAULT,
                                               ASHMEM_BROKER_DEFAULT, &fd2, NULL), EINVAL);
                CHECK_NEG(ashmem_broker_attach(b, "nope", 0, &fd2, NULL, NULL), ENOENT);
                CHECK_NEG(ashmem_broker_info(b, "nope", &ri), ENOENT);
        }
        munmap(p, ps());
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ share, slice, list */

TEST(share_slice_info_list_unshare)
{
        ashmem_broker *b;
        ashmem_region_info ri, *v = NULL;
        size_t n = 0, off, len;
        int fd, afd;

        start_broker();
        b = conn();
        fd = ashmem_create_region("mine", 2 * ps());
        CHECK(fd >= 0);
        CHECK_EQ(ashmem_broker_share(b, fd, "mine", 0644, 0, &ri), 0);
        CHECK(strcmp(ri.name, "mine") == 0);
        CHECK_EQ(ri.mode, 0644);
        CHECK_EQ(ri.size, 2 * ps());
        CHECK_EQ(ri.transient, 0);
        CHECK_NEG(ashmem_broker_share(b, fd, "mine", 0644, 0, NULL), EEXIST);
        /* a slice of it, and a slice of the slice */
        CHECK_EQ(ashmem_broker_slice(b, "mine.s", "mine", 100, 200, ASHMEM_BROKER_DEFAULT, &ri), 0);
        CHECK_EQ(ri.is_slice, 1);
        CHECK(strcmp(ri.of, "mine") == 0);
        CHECK_EQ(ri.offset, 100);
        CHECK_EQ(ri.length, 200);
        CHECK_EQ(ri.size, 200);
        CHECK_EQ(ri.mode, 0600);
        CHECK_EQ(ri.pages, 1);
        /* a slice may not grant what its base's mode does not */
        CHECK_NEG(ashmem_broker_slice(b, "mine.s.t", "mine.s", 10, 20, 0640, &ri), EPERM);
        CHECK_EQ(ashmem_broker_slice(b, "mine.s.t", "mine.s", 10, 20, 0400, &ri), 0);
        CHECK_EQ(ri.offset, 110);
        CHECK_EQ(ri.length, 20);
        CHECK_NEG(ashmem_broker_slice(b, "x", "mine.s", 190, 11, 0600, NULL), EINVAL);
        CHECK_NEG(ashmem_broker_slice(b, "x", "mine", 0, 2 * ps() + 1, 0640, NULL), EINVAL);
        CHECK_NEG(ashmem_broker_slice(b, "x", "nope", 0, 1, 0640, NULL), ENOENT);
        CHECK_NEG(ashmem_broker_slice(b, "mine", "mine", 0, 1, 0640, NULL), EEXIST);
        CHECK_EQ(ashmem_broker_attach(b, "mine.s.t", 1, &afd, &off, &len), 0);
        CHECK_EQ(off, 110);
        CHECK_EQ(len, 20);
        {
                struct stat a, c;
                CHECK_EQ(fstat(afd, &a), 0);
                CHECK_EQ(fstat(fd, &c), 0);
                CHECK_EQ(a.st_ino, c.st_ino);   /* the whole region */
        }
        close(afd);
        /* a range shared directly */
        CHECK_EQ(ashmem_broker_share_range(b, fd, ps(), 8, "mine.r", 0600, 0, &ri), 0);
        CHECK_EQ(ri.is_slice, 1);
        CHECK_EQ(ri.of[0], 0);
        CHECK_EQ(ri.offset, ps());
        CHECK_EQ(ri.length, 8);
        CHECK_NEG(ashmem_broker_share_range(b, fd, ps(), ps() + 1, "mine.r2", 0600, 0, NULL), EINVAL);
        CHECK_NEG(ashmem_broker_share_range(b, fd, 0, 0, "mine.r2", 0600, 0, NULL), EINVAL);
        /* list, in name order */
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 4);
        CHECK(strcmp(v[0].name, "mine") == 0);
        CHECK(strcmp(v[1].name, "mine.r") == 0);
        CHECK(strcmp(v[2].name, "mine.s") == 0);
        CHECK(strcmp(v[3].name, "mine.s.t") == 0);
        free(v);
        /* unshare: the name goes, holders keep their descriptors */
        CHECK_EQ(ashmem_broker_unshare(b, "mine"), 0);
        CHECK_NEG(ashmem_broker_unshare(b, "mine"), ENOENT);
        CHECK_NEG(ashmem_broker_info(b, "mine", &ri), ENOENT);
        /* its slices (and theirs) go with it; a range shared by itself stays */
        CHECK_NEG(ashmem_broker_info(b, "mine.s", &ri), ENOENT);
        CHECK_NEG(ashmem_broker_info(b, "mine.s.t", &ri), ENOENT);
        CHECK_EQ(ashmem_broker_info(b, "mine.r", &ri), 0);
        CHECK_EQ(ashmem_broker_attach(b, "mine.r", 0, &afd, NULL, NULL), 0);
        close(afd);
        /* the name taken again: no slice of the old region shows up */
        CHECK_EQ(ashmem_broker_create(b, "mine", ps(), ASHMEM_BROKER_DEFAULT,
                                      ASHMEM_BROKER_DEFAULT, &afd, &ri), 0);
        close(afd);
        CHECK_NEG(ashmem_broker_info(b, "mine.s", &ri), ENOENT);
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 2);
        free(v);
        CHECK_EQ(ashmem_get_size_region(fd), (int)(2 * ps()));
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

TEST(list_pages_through_the_cursor)
{
        ashmem_broker *b;
        ashmem_region_info *v = NULL;
        size_t n = 0;
        char name[32];
        int fd = ashmem_create_region("many", ps());

        CHECK(fd >= 0);
        start_broker();
        b = conn();
        for (int i = 99; i >= 0; i--) {
                snprintf(name, sizeof(name), "r%03d", i);
                CHECK_EQ(ashmem_broker_share(b, fd, name, ASHMEM_BROKER_DEFAULT, 0, NULL), 0);
        }
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 100);
        for (int i = 0; i < 100; i++) {
                snprintf(name, sizeof(name), "r%03d", i);
                CHECK(strcmp(v[i].name, name) == 0);
        }
        free(v);
        /* the raw reply carries a cursor while more remain */
        {
                char *reply = NULL;
                int rfds[2], nr;
                CHECK_EQ(ashmem_broker_call(b, "{\"op\":\"list\"}", NULL, 0, &reply, rfds, &nr), 0);
                CHECK_EQ(nr, 0);
                CHECK(strstr(reply, "\"cursor\":\"r031\"") != NULL);
                free(reply);
                CHECK_EQ(ashmem_broker_call(b, "{\"op\":\"list\",\"cursor\":\"r095\"}", NULL, 0,
                                            &reply, rfds, &nr), 0);
                CHECK(strstr(reply, "\"cursor\"") == NULL);
                CHECK(strstr(reply, "\"r096\"") && strstr(reply, "\"r099\"") &&
                      !strstr(reply, "\"r095\""));
                free(reply);
        }
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ transient */

static void sharer(void *arg)
{
        struct role *ro = arg;
        ashmem_broker *b = conn();
        int fd = ashmem_create_region("t", ps());

        CHECK(fd >= 0);
        CHECK_EQ(ashmem_broker_share(b, fd, "gone-with-me", 0600, 1, NULL), 0);
        CHECK_EQ(ashmem_broker_slice(b, "gone-too", "gone-with-me", 0, 8, 0600, NULL), 0);
        CHECK_EQ(write(ro->pipefd, "s", 1), 1);
        /* the owner dies without closing anything */
        pause();
}

static int info_errno(ashmem_broker *b, const char *name)
{
        ashmem_region_info ri;
        return ashmem_broker_info(b, name, &ri);
}

TEST(transient_share_goes_with_its_connection)
{
        ashmem_broker *b;
        ashmem_region_info ri;
        struct role ro;
        int p[2], status;
        pid_t child;
        char c;
        long long deadline;

        start_broker();
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        ro.pipefd = p[1];
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
                close(p[0]);
                sharer(&ro);
                _exit(0);
        }
        close(p[1]);
        CHECK_EQ(read(p[0], &c, 1), 1);
        close(p[0]);
        b = conn();
        CHECK_EQ(ashmem_broker_info(b, "gone-with-me", &ri), 0);
        CHECK_EQ(ri.transient, 1);
        CHECK_EQ(ashmem_broker_info(b, "gone-too", &ri), 0);
        CHECK_EQ(ri.transient, 1);
        CHECK_EQ(kill(child, SIGKILL), 0);
        while (waitpid(child, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        deadline = mono_ms() + WAIT_MS;
        while (info_errno(b, "gone-with-me") == 0 && mono_ms() < deadline)
                nap(5);
        CHECK_EQ(info_errno(b, "gone-with-me"), -ENOENT);
        CHECK_EQ(info_errno(b, "gone-too"), -ENOENT);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ lookup */

struct lk { int sv; int ro; };

static int recv_one_fd(int s)
{
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
        char c;
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *cm;
        int fd;

        if (recvmsg(s, &m, MSG_CMSG_CLOEXEC) != 1)
                t_fail(__FILE__, __LINE__, "recvmsg: %m");
        cm = CMSG_FIRSTHDR(&m);
        CHECK(cm && cm->cmsg_type == SCM_RIGHTS);
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        return fd;
}

/* A process that got only the data descriptor (from a peer, not from the
 * broker): its first pin call finds the shared state through the broker. */
static void data_only_holder(void *arg)
{
        struct lk *l = arg;
        int fd = recv_one_fd(l->sv);
        ashmem_stats st;

        CHECK_EQ(ashmem_get_stats(fd, &st), 0);
        CHECK_EQ(st.shared_state, 0);
        if (l->ro) {
                /* explicit lookup with a read-only descriptor: read-only state */
                ashmem_broker *b = conn();
                CHECK_EQ(ashmem_broker_lookup(b, fd), 0);
                ashmem_broker_close(b);
                CHECK_EQ(ashmem_get_stats(fd, &st), 0);
                CHECK_EQ(st.shared_state, 1);
                CHECK_EQ(st.writable_state, 0);
                CHECK_EQ(ashmem_pin_status(fd, ps(), ps()), ASHMEM_IS_UNPINNED);
                CHECK_ERRNO(ashmem_pin_region(fd, ps(), ps()), EPERM);
        } else {
                /* implicit: the library asks the broker by itself */
                CHECK_EQ(ashmem_unpin_region(fd, ps(), ps()), 0);
                CHECK_EQ(ashmem_get_stats(fd, &st), 0);
                CHECK_EQ(st.shared_state, 1);
                CHECK_EQ(st.writable_state, 1);
        }
        close(fd);
}

static void send_one_fd(int s, int fd)
{
        raw_sends(s, "f", &fd, 1);
}

static pid_t fork_holder(struct lk *l)
{
        pid_t child = fork();

        CHECK(child >= 0);
        if (child == 0) {
                data_only_holder(l);
                _exit(0);
        }
        return child;
}

static void wait_ok(pid_t child)
{
        int status;

        while (waitpid(child, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                t_fail(__FILE__, __LINE__, "child failed (status 0x%x)", status);
}

TEST(lookup_gives_a_data_only_holder_the_shared_pin_state)
{
        ashmem_broker *b;
        int sa[2], sb[2], fd, rofd;
        pid_t ca, cb;
        struct lk la, lb;
        unsigned long long pages = 0;
        char path[64];

        start_broker();
        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sa), 0);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sb), 0);
        /* both holders exist before the region: they never had its state */
        la = (struct lk){ .sv = sa[1], .ro = 0 };
        lb = (struct lk){ .sv = sb[1], .ro = 1 };
        ca = fork_holder(&la);
        cb = fork_holder(&lb);
        close(sa[1]);
        close(sb[1]);
        b = conn();
        fd = ashmem_create_region("lk", 3 * ps());
        CHECK(fd >= 0);
        CHECK_EQ(ashmem_broker_share(b, fd, "lk", 0600, 0, NULL), 0);
        /* A: read-write data only; unpins page 1 */
        send_one_fd(sa[0], fd);
        wait_ok(ca);
        CHECK_EQ(ashmem_pin_status(fd, ps(), ps()), ASHMEM_IS_UNPINNED);
        /* purge through the broker; our pin sees it */
        CHECK_EQ(ashmem_broker_purge(b, "lk", &pages), 0);
        CHECK_EQ(pages, 1);
        CHECK_EQ(ashmem_pin_region(fd, ps(), ps()), ASHMEM_WAS_PURGED);
        /* B: a read-only descriptor gets read-only state */
        CHECK_EQ(ashmem_unpin_region(fd, ps(), ps()), 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rofd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(rofd >= 0);
        send_one_fd(sb[0], rofd);
        close(rofd);
        wait_ok(cb);
        /* a region the broker does not hold */
        {
                int other = ashmem_create_region("other", ps());
                CHECK_NEG(ashmem_broker_lookup(b, other), ENOENT);
                CHECK_NEG(ashmem_broker_lookup(b, -1), EBADF);
                close(other);
        }
        close(sa[0]);
        close(sb[0]);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ robustness */

static void expect_ok(int fd, const char *text)
{
        char buf[70000];

        raw_send(fd, text, strlen(text), NULL, 0);
        raw_recv(fd, buf, sizeof(buf), NULL);
        if (strncmp(buf, "{\"ok\":true", 10) != 0)
                t_fail(__FILE__, __LINE__, "%s -> %s", text, buf);
}

TEST(bad_requests_get_errors_and_change_nothing)
{
        char buf[70000];
        int fd, before, n, devnull[200];

        start_broker();
        fd = raw_connect();
        expect_ok(fd, "{\"v\":1,\"op\":\"hello\"}");
        before = broker_fds();
        expect_error(fd, "hello", "EPROTO");
        expect_error(fd, "[1,2]", "EPROTO");
        expect_error(fd, "{\"v\":1,\"op\":\"hello\"} trailing", "EPROTO");
        expect_error(fd, "{\"v\":1,\"op\":\"hel", "EPROTO");        /* truncated */
        expect_error(fd, "{\"op\":\"hello\"}", "EINVAL");
        expect_error(fd, "{\"v\":2,\"op\":\"hello\"}", "EPROTO");
        expect_error(fd, "{\"v\":\"1\",\"op\":\"hello\"}", "EPROTO");
        expect_error(fd, "{\"v\":1}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":7}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"explode\"}", "EOPNOTSUPP");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":\"10\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":1.5}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":-1}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":1,\"size\":10}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":10,\"mode\":\"999\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":10,\"mode\":420}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"a\",\"size\":10,\"prot\":\"rq\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"\\u00ff\\u0001\",\"size\":10}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"create\",\"name\":\"\xff\xfe\",\"size\":10}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"attach\",\"name\":\"a\",\"access\":\"w\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"share\",\"name\":\"a\"}", "EINVAL");   /* no fd */
        expect_error(fd, "{\"v\":1,\"op\":\"lookup\"}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"list\",\"cursor\":5}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"share\",\"name\":\"a\",\"transient\":1}", "EINVAL");
        expect_error(fd, "{\"v\":1,\"op\":\"slice\",\"name\":\"a\",\"of\":\"b\",\"offset\":0}", "EINVAL");
        /* empty message */
        raw_sends(fd, "", NULL, 0);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EPROTO\"") != NULL);
        /* oversized: larger than 65536 bytes */
        {
                size_t big = 70000;
                char *m = malloc(big);
                CHECK(m != NULL);
                memset(m, ' ', big);
                memcpy(m, "{\"v\":1,\"op\":\"hello\"}", 20);
                raw_send(fd, m, big, NULL, 0);
                free(m);
                raw_recv(fd, buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EMSGSIZE\"") != NULL);
        }
        /* descriptors where none belong, a non-region, too many, 200 */
        for (int i = 0; i < 200; i++) {
                devnull[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                CHECK(devnull[i] >= 0);
        }
        raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", devnull, 1);
        raw_recv(fd, buf, sizeof(buf), &n);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\"") != NULL);
        CHECK_EQ(n, 0);
        raw_sends(fd, "{\"v\":1,\"op\":\"share\",\"name\":\"n\"}", devnull, 1);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\"") != NULL);
        raw_sends(fd, "{\"v\":1,\"op\":\"share\",\"name\":\"n\"}", devnull, 3);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\"") != NULL);
        raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", devnull, 200);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "too many descriptors") != NULL);
        raw_sends(fd, "garbage", devnull, 200);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"ok\":false") != NULL);
        for (int i = 0; i < 200; i++)
                close(devnull[i]);
        /* a client that sends and leaves at once */
        for (int i = 0; i < 20; i++) {
                int g = raw_connect();
                raw_sends(g, "{\"v\":1,\"op\":\"stats\"}", NULL, 0);
                close(g);
        }
        /* still serving, nothing kept (once it has seen those leave) */
        expect_ok(fd, "{\"v\":1,\"op\":\"hello\"}");
        {
                long long deadline = mono_ms() + WAIT_MS;
                while (broker_fds() != before && mono_ms() < deadline)
                        nap(5);
        }
        CHECK_EQ(broker_fds(), before);
        {
                ashmem_broker *b = conn();
                ashmem_broker_counters st;
                CHECK_EQ(ashmem_broker_stats(b, &st), 0);
                CHECK_EQ(st.regions, 0);
                CHECK(st.errors >= 30);
                ashmem_broker_close(b);
        }
        close(fd);
        stop_broker();
}

TEST(share_checks_its_descriptors)
{
        ashmem_broker *b;
        int fd, other, rofd, fds[2];
        char path[64], buf[4096];

        start_broker();
        b = conn();
        fd = ashmem_create_region("chk", ps());
        other = ashmem_create_region("other", ps());
        CHECK(fd >= 0 && other >= 0);
        /* read-only data descriptor */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rofd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(rofd >= 0);
        CHECK_NEG(ashmem_broker_share(b, rofd, "ro", 0600, 0, NULL), EACCES);
        close(rofd);
        /* a file that is no region: the library says so, and so does the
         * broker to a client that sends it anyway */
        {
                int dn = open("/dev/null", O_RDWR | O_CLOEXEC), rf = raw_connect();
                CHECK_NEG(ashmem_broker_share(b, dn, "null", 0600, 0, NULL), ENOTTY);
                raw_sends(rf, "{\"v\":1,\"op\":\"share\",\"name\":\"null\"}", &dn, 1);
                raw_recv(rf, buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EINVAL\"") != NULL);
                close(rf);
                close(dn);
        }
        /* a control block of another region */
        {
                int rf = raw_connect();
                CHECK_EQ(ashmem_get_control(other, &fds[1]), 0);
                fds[0] = fd;
                raw_sends(rf, "{\"v\":1,\"op\":\"share\",\"name\":\"mix\"}", fds, 2);
                raw_recv(rf, buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EINVAL\"") != NULL);
                close(fds[1]);
                close(rf);
        }
        /* a memfd libashmem did not make: refused until sealed against
         * resizing, then shared without pin state, its mode tightened */
        {
                int mf = memfd_create("foreign", MFD_CLOEXEC | MFD_ALLOW_SEALING), afd;
                struct stat mst;
                CHECK(mf >= 0);
                CHECK_EQ(ftruncate(mf, 100), 0);
                CHECK_NEG(ashmem_broker_share(b, mf, "foreign", 0600, 0, NULL), EINVAL);
                CHECK_EQ(fcntl(mf, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
                CHECK_EQ(ashmem_broker_share(b, mf, "foreign", 0600, 0, NULL), 0);
                CHECK_EQ(fstat(mf, &mst), 0);
                CHECK_EQ(mst.st_mode & 022, 0);
                CHECK_EQ(ashmem_broker_attach(b, "foreign", 1, &afd, NULL, NULL), 0);
                CHECK_EQ(ashmem_get_size_region(afd), 100);
                CHECK_NEG(ashmem_broker_lookup(b, mf), ENOENT);
                close(afd);
                close(mf);
        }
        close(fd);
        close(other);
        ashmem_broker_close(b);
        stop_broker();
}

TEST(attach_close_cycles_leave_no_descriptor)
{
        ashmem_broker *b;
        int fd, before;

        start_broker();
        b = conn();
        fd = create(b, "cycle", ps(), 0644);
        close(fd);
        /* warm up: the read-only reopenings are made once */
        CHECK_EQ(ashmem_broker_attach(b, "cycle", 0, &fd, NULL, NULL), 0);
        close(fd);
        before = broker_fds();
        for (int i = 0; i < 10000; i++) {
                int r = ashmem_broker_attach(b, "cycle", i & 1, &fd, NULL, NULL);
                if (r < 0)
                        t_fail(__FILE__, __LINE__, "attach %d: %s", i, strerror(-r));
                close(fd);
        }
        CHECK_EQ(broker_fds(), before);
        {
                ashmem_region_info ri;
                CHECK_EQ(ashmem_broker_info(b, "cycle", &ri), 0);
                CHECK_EQ(ri.attaches, 10001);
        }
        ashmem_broker_close(b);
        stop_broker();
}

TEST(pipelined_requests_are_answered_in_order)
{
        char buf[70000];
        int fd, sent = 0, got = 0, stalls = 0;

        start_broker();
        fd = raw_connect();
        /* send without reading until the sockets push back, far beyond what
         * their buffers hold in replies; read a reply each time */
        while (got < 2000) {
                while (sent < 2000) {
                        char req[96];
                        int n = snprintf(req, sizeof(req),
                                         "{\"v\":1,\"op\":\"info\",\"name\":\"n%d\"}", sent);
                        if (send(fd, req, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                                CHECK_EQ(errno, EAGAIN);
                                stalls++;
                                break;
                        }
                        sent++;
                }
                raw_recv(fd, buf, sizeof(buf), NULL);
                {
                        char want[32];
                        snprintf(want, sizeof(want), "named \\\"n%d\\\"", got);
                        if (!strstr(buf, "\"errno\":\"ENOENT\"") || !strstr(buf, want))
                                t_fail(__FILE__, __LINE__, "reply %d: %s", got, buf);
                }
                got++;
        }
        CHECK(stalls > 0);      /* the back-pressure was exercised */
        close(fd);
        stop_broker();
}

/* A loopback TCP connection whose peer never reads, its send queue full and
 * SO_LINGER set: the last close() of its sending end blocks for as long as
 * the peer lives. *peer gets the end that never reads. */
static int lingering_socket(int *peer)
{
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);
        struct linger lg = { 1, 600 };
        int small = 4096, l, t, full = 0;
        static char junk[65536];

        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(l >= 0);
        CHECK_EQ(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
        CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
        CHECK_EQ(listen(l, 1), 0);
        t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(t >= 0);
        CHECK_EQ(setsockopt(t, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        if (connect(t, (struct sockaddr *)&a, sizeof(a)) < 0)
                CHECK_EQ(errno, EINPROGRESS);
        *peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        CHECK(*peer >= 0);
        close(l);
        memset(junk, 'x', sizeof(junk));
        /* fill both the peer's receive buffer and our send queue */
        for (int quiet = 0; quiet < 20;) {
                if (write(t, junk, sizeof(junk)) > 0) {
                        full = 1;
                        quiet = 0;
                        continue;
                }
                CHECK_EQ(errno, EAGAIN);
                quiet++;
                nap(5);
        }
        CHECK(full);
        CHECK_EQ(setsockopt(t, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        return t;
}

/* A Unix socket whose queue holds a lingering socket: its last close blocks
 * whatever SO_LINGER it has itself. */
static int blocking_unix_socket(int *peer)
{
        int sv[2], t = lingering_socket(peer);

        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        raw_send(sv[0], "x", 1, &t, 1);
        close(t);
        close(sv[0]);
        return sv[1];
}

/* Stop the broker (all its threads) until thaw_broker(): what a client
 * sends meanwhile, and closes, leaves the broker the last reference. */
static void freeze_broker(void)
{
        char path[64], st[512], *p;

        CHECK_EQ(kill(broker_pid, SIGSTOP), 0);
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)broker_pid);
        for (long long end = mono_ms() + WAIT_MS;; nap(1)) {
                FILE *f = fopen(path, "re");
                size_t n;

                CHECK(f);
                n = fread(st, 1, sizeof(st) - 1, f);
                fclose(f);
                st[n] = 0;
                p = strrchr(st, ')');
                if (p && p[1] == ' ' && p[2] == 'T')
                        return;
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "the broker does not stop");
        }
}

static void thaw_broker(void)
{
        CHECK_EQ(kill(broker_pid, SIGCONT), 0);
}

/* Send text with fds on s and close them, so that the broker holds the
 * last references (as a client does that closes right after sending). */
static void send_and_drop(int s, const char *text, int *fds, int nfds)
{
        freeze_broker();
        raw_sends(s, text, fds, nfds);
        for (int i = 0; i < nfds; i++)
                if (i == 0 || fds[i] != fds[i - 1])
                        close(fds[i]);
        thaw_broker();
}

/* Another client's hello is answered within a second. */
static void hello_answered_promptly(void)
{
        char buf[4096];
        struct pollfd p;
        int fd = raw_connect();

        raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", NULL, 0);
        p = (struct pollfd){ .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 1000) != 1)
                t_fail(__FILE__, __LINE__, "the broker does not answer while it holds "
                       "a lingering socket");
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"ok\":true"));
        close(fd);
}

TEST(descriptors_whose_close_blocks_do_not_stall_the_broker)
{
        char buf[4096];
        int peer, t, s, many[12];
        start_broker();
        /* one unwanted descriptor with a request */
        t = lingering_socket(&peer);
        s = raw_connect();
        send_and_drop(s, "{\"v\":1,\"op\":\"stats\"}", &t, 1);
        hello_answered_promptly();
        raw_recv(s, buf, sizeof(buf), NULL);
        close(s);
        close(peer);
        /* a socket whose own close releases a lingering one */
        t = blocking_unix_socket(&peer);
        s = raw_connect();
        send_and_drop(s, "{\"v\":1,\"op\":\"stats\"}", &t, 1);
        hello_answered_promptly();
        raw_recv(s, buf, sizeof(buf), NULL);
        close(s);
        close(peer);
        /* more descriptors than the protocol allows, all unwanted */
        t = lingering_socket(&peer);
        for (int i = 0; i < 12; i++)
                many[i] = t;
        s = raw_connect();
        send_and_drop(s, "{\"v\":1,\"op\":\"list\"}", many, 12);
        hello_answered_promptly();
        raw_recv(s, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\""));
        close(s);
        close(peer);
        stop_broker();
}

/* ------------------------------------------------------------ access control */

static void become_uid(uid_t uid)
{
        if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0)
                t_fail(__FILE__, __LINE__, "dropping to uid %u: %m", (unsigned)uid);
}

static void become_nobody(void)
{
        /* nobody / nogroup on Debian */
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                t_fail(__FILE__, __LINE__, "dropping to nobody: %m");
}

static void as_nobody(void *arg)
{
        ashmem_broker *b;
        ashmem_region_info ri, *v = NULL;
        size_t n = 0;
        int fd;
        unsigned long long pages;

        (void)arg;
        become_nobody();
        b = conn();
        /* 0600: nothing, and not even that it exists */
        CHECK_NEG(ashmem_broker_attach(b, "private", 0, &fd, NULL, NULL), ENOENT);
        CHECK_NEG(ashmem_broker_attach(b, "private", 1, &fd, NULL, NULL), ENOENT);
        CHECK_NEG(ashmem_broker_info(b, "private", &ri), ENOENT);
        /* 0644: read only, and not the owner's rights */
        CHECK_EQ(ashmem_broker_info(b, "public", &ri), 0);
        CHECK_EQ(ri.uid, 0);
        CHECK(strcmp(ri.user, "root") == 0);
        CHECK_NEG(ashmem_broker_attach(b, "public", 1, &fd, NULL, NULL), EACCES);
        CHECK_EQ(ashmem_broker_attach(b, "public", 0, &fd, NULL, NULL), 0);
        CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        CHECK(mmap(NULL, ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        CHECK_EQ(errno, EACCES);
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, 0), EPERM);
        /* a read-only holder cannot share it on */
        CHECK_NEG(ashmem_broker_share(b, fd, "stolen", 0666, 0, NULL), EACCES);
        close(fd);
        CHECK_NEG(ashmem_broker_unshare(b, "public"), EACCES);
        CHECK_NEG(ashmem_broker_purge(b, "public", &pages), EACCES);
        CHECK_NEG(ashmem_broker_slice(b, "mine", "public", 0, 1, 0666, NULL), EACCES);
        /* purge of "all" covers only what nobody owns: nothing */
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 0);
        /* 0666: read-write */
        CHECK_EQ(ashmem_broker_attach(b, "open", 1, &fd, NULL, NULL), 0);
        CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        close(fd);
        /* group bits: 0640 of group nogroup */
        CHECK_EQ(ashmem_broker_attach(b, "group", 0, &fd, NULL, NULL), 0);
        close(fd);
        CHECK_NEG(ashmem_broker_attach(b, "group", 1, &fd, NULL, NULL), EACCES);
        /* list shows what nobody may read */
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 3);
        CHECK(strcmp(v[0].name, "group") == 0);
        CHECK(strcmp(v[1].name, "open") == 0);
        CHECK(strcmp(v[2].name, "public") == 0);
        free(v);
        /* nobody's own region: owner rights */
        CHECK_EQ(ashmem_broker_create(b, "nobodys", ps(), ASHMEM_BROKER_DEFAULT,
                                      ASHMEM_BROKER_DEFAULT, &fd, &ri), 0);
        CHECK_EQ(ri.uid, 65534);
        close(fd);
        CHECK_EQ(ashmem_broker_unshare(b, "nobodys"), 0);
        ashmem_broker_close(b);
}

/* root with primary group nogroup: a region of that group */
static void create_as_nogroup(void *arg)
{
        ashmem_broker *b;
        ashmem_region_info ri;
        int fd;

        (void)arg;
        CHECK_EQ(setgid(65534), 0);
        b = conn();
        CHECK_EQ(ashmem_broker_create(b, "group", ps(), ASHMEM_BROKER_DEFAULT, 0640, &fd, &ri), 0);
        CHECK_EQ(ri.gid, 65534);
        close(fd);
        ashmem_broker_close(b);
}

TEST(access_follows_owner_and_mode)
{
        ashmem_broker *b;
        const char *const args[] = { "--socket-mode", "0666", NULL };
        int go[2];
        pid_t child;

        if (getuid() != 0) {
                printf("    (needs root to run a client as nobody)\n");
                return;
        }
        start_broker_args(args);
        {
                struct stat st;
                CHECK_EQ(stat(sock, &st), 0);
                CHECK_EQ(st.st_mode & 0777, 0666);
        }
        /* nobody must not inherit our pin state: fork it first */
        child = fork_on_go(as_nobody, NULL, go);
        b = conn();
        close(create(b, "private", ps(), 0600));
        close(create(b, "public", ps(), 0644));
        close(create(b, "open", ps(), 0666));
        CHILD_OK(create_as_nogroup, NULL);
        CHECK_EQ(write(go[1], "g", 1), 1);
        close(go[1]);
        wait_ok(child);
        /* the owner (root) still may */
        CHECK_EQ(ashmem_broker_unshare(b, "public"), 0);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ limits */

/* A connection of nobody's, for this process to use. */
static void connect_as_nobody(void *arg)
{
        int to = *(int *)arg, s;

        become_nobody();
        s = raw_connect();
        raw_sends(to, "f", &s, 1);
        close(s);
        close(to);
}

/* A new connection of nobody's gets an answer: errno (e.g. "EMFILE") or
 * "ok" in arg. */
static void nobody_hello(void *arg)
{
        const char *want = arg;
        char buf[4096], w[64];

        become_nobody();
        {
                /* a refused connection may be reset before we read */
                int fd = raw_connect();
                ssize_t n;
                raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", NULL, 0);
                n = recv(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0 && errno == ECONNRESET)       /* the reply comes after */
                        n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                close(fd);
                if (n < 0)
                        _exit(1);
                buf[n] = 0;
        }
        if (strcmp(want, "ok") == 0)
                snprintf(w, sizeof(w), "\"ok\":true");
        else
                snprintf(w, sizeof(w), "\"errno\":\"%s\"", want);
        if (!strstr(buf, w))
                _exit(1);
}

TEST(descriptors_the_broker_cannot_close_yet_count_against_the_user)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-fds", "8", NULL };
        char buf[4096];
        int sv[2], s, u, p[2], peer, refused = 0;

        start_broker_args(args);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        CHILD_OK(connect_as_nobody, &sv[1]);
        close(sv[1]);
        s = recv_one_fd(sv[0]);
        close(sv[0]);
        /* the closer thread blocks on this one for as long as peer lives */
        u = blocking_unix_socket(&peer);
        send_and_drop(s, "{\"v\":1,\"op\":\"stats\"}", &u, 1);
        raw_recv(s, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\""));    /* stats takes none */
        /* what follows waits behind it, counted against the limit (8) */
        for (int i = 0; i < 8 && !refused; i++) {
                CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
                raw_sends(s, "{\"v\":1,\"op\":\"stats\"}", p, 2);
                close(p[0]);
                close(p[1]);
                raw_recv(s, buf, sizeof(buf), NULL);
                refused = strstr(buf, "\"errno\":\"EMFILE\"") != NULL;
        }
        if (!refused) {
                /* at the limit now: the next request is refused */
                raw_sends(s, "{\"v\":1,\"op\":\"stats\"}", NULL, 0);
                raw_recv(s, buf, sizeof(buf), NULL);
        }
        if (!strstr(buf, "\"errno\":\"EMFILE\"") || !strstr(buf, "not closed yet"))
                t_fail(__FILE__, __LINE__, "a user at the limit: %s", buf);
        close(s);
        /* so is a new connection of that user; others are served */
        CHILD_OK(nobody_hello, "EMFILE");
        hello_answered_promptly();
        /* once the blocked close is done, the charges go */
        close(peer);
        for (long long end = mono_ms() + WAIT_MS;; nap(50)) {
                int st = t_in_child(nobody_hello, "ok");
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                        break;
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "nobody is still refused");
        }
        stop_broker();
}

/* Look the region of fd up on a new connection: the reply in buf. */
static void raw_lookup(int fd, char *buf, size_t len)
{
        int s = raw_connect();

        raw_sends(s, "{\"v\":1,\"op\":\"lookup\"}", &fd, 1);
        raw_recv(s, buf, len, NULL);
        close(s);
}

/* nobody holds a read-only descriptor of "pub", a 0644 view of a region
 * whose whole-region name is 0600: lookup names "pub", never the other;
 * once "pub" is gone, the region is as unknown as one never shared. */
static void lookup_as_nobody(void *arg)
{
        int *sync = arg, fd;
        char buf[4096], x;
        ashmem_broker *b;

        become_nobody();
        b = conn();
        CHECK_EQ(ashmem_broker_attach(b, "pub", 0, &fd, NULL, NULL), 0);
        ashmem_broker_close(b);
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"ok\":true") || !strstr(buf, "\"name\":\"pub\"") ||
            strstr(buf, "secret"))
                t_fail(__FILE__, __LINE__, "lookup as nobody: %s", buf);
        CHECK_EQ(write(sync[1], "u", 1), 1);   /* unshare pub now */
        CHECK_EQ(read(sync[0], &x, 1), 1);
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"errno\":\"ENOENT\"") || strstr(buf, "secret"))
                t_fail(__FILE__, __LINE__, "lookup as nobody, pub gone: %s", buf);
        close(fd);
}

TEST(lookup_names_only_what_the_caller_may_see)
{
        const char *const args[] = { "--socket-mode", "0666", NULL };
        ashmem_broker *b;
        int fd, up[2], down[2], sync[2], st;
        char buf[4096], x;
        pid_t pid;

        start_broker_args(args);
        b = conn();
        fd = create(b, "secret", 2 * ps(), 0600);
        CHECK_EQ(ashmem_broker_share_range(b, fd, 0, ps(), "pub", 0644, 0, NULL), 0);
        /* the owner gets the whole region's name */
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"name\":\"secret\""))
                t_fail(__FILE__, __LINE__, "lookup as the owner: %s", buf);
        CHECK_EQ(pipe2(up, O_CLOEXEC), 0);
        CHECK_EQ(pipe2(down, O_CLOEXEC), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                sync[0] = down[0];
                sync[1] = up[1];
                lookup_as_nobody(sync);
                _exit(0);
        }
        close(down[0]);
        close(up[1]);
        if (read(up[0], &x, 1) == 1)
                CHECK_EQ(ashmem_broker_unshare(b, "pub"), 0);
        CHECK_EQ(write(down[1], "g", 1), 1);
        close(up[0]);
        close(down[1]);
        while (waitpid(pid, &st, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* uid 5002 makes a base others may read and its own group may not. */
static void base_of_5002(void *arg)
{
        ashmem_broker *b;

        (void)arg;
        become_uid(5002);
        b = conn();
        close(create(b, "grp-base", ps(), 0604));
        ashmem_broker_close(b);
}

/* The info of "view" as uid (with supplementary group 5002 when grp):
 * exits 0 if it names "grp-base" as what it was cut from exactly when
 * the caller may see that name. */
static void view_as(uid_t uid, int grp)
{
        gid_t g = 5002;
        char buf[4096];
        int s, sees;

        if (setgroups(grp ? 1 : 0, &g) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0)
                _exit(2);
        s = raw_connect();
        raw_sends(s, "{\"v\":1,\"op\":\"info\",\"name\":\"grp-base\"}", NULL, 0);
        raw_recv(s, buf, sizeof(buf), NULL);
        sees = strstr(buf, "\"ok\":true") != NULL;
        raw_sends(s, "{\"v\":1,\"op\":\"info\",\"name\":\"view\"}", NULL, 0);
        raw_recv(s, buf, sizeof(buf), NULL);
        if (!strstr(buf, "\"ok\":true") || !strstr(buf, "\"offset\":0") ||
            (strstr(buf, "\"of\":\"grp-base\"") != NULL) != sees ||
            (!sees && strstr(buf, "grp-base")))
                _exit(3);
        close(s);
}

static void view_as_group_member(void *arg)
{
        (void)arg;
        view_as(5003, 1);
}

static void view_as_other(void *arg)
{
        (void)arg;
        view_as(5004, 0);
}

/* A slice may be visible to more than the name it was cut from (root cut
 * a 0604 view of uid 5002's 0604 base: a member of 5002's group may read
 * the view, not the base); its record names the base only to those who
 * may see it. */
TEST(a_slice_names_its_base_only_to_those_who_may_see_it)
{
        const char *const args[] = { "--socket-mode", "0666", NULL };
        ashmem_broker *b;

        start_broker_args(args);
        CHILD_OK(base_of_5002, NULL);
        b = conn();
        CHECK_EQ(ashmem_broker_slice(b, "view", "grp-base", 0, ps(), 0604, NULL), 0);
        CHILD_OK(view_as_group_member, NULL);
        CHILD_OK(view_as_other, NULL);
        ashmem_broker_close(b);
        stop_broker();
}

/* lookup of a region with several names answers a whole-region name
 * before a view, and of those the first in name order, whatever order the
 * names came in (the broker walks the region's own names, not all). */
TEST(lookup_answers_the_first_whole_region_name)
{
        ashmem_broker *b;
        char buf[4096];
        int fd;

        start_broker();
        b = conn();
        fd = create(b, "m", 2 * ps(), 0600);
        CHECK_EQ(ashmem_broker_share(b, fd, "z", 0600, 0, NULL), 0);
        CHECK_EQ(ashmem_broker_share(b, fd, "a", 0600, 0, NULL), 0);
        CHECK_EQ(ashmem_broker_share_range(b, fd, 0, ps(), "0", 0600, 0, NULL), 0);
        close(create(b, "0-other", ps(), 0600));
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"name\":\"a\""))
                t_fail(__FILE__, __LINE__, "lookup of m, z, a and a view 0: %s", buf);
        CHECK_EQ(ashmem_broker_unshare(b, "a"), 0);
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"name\":\"m\""))
                t_fail(__FILE__, __LINE__, "lookup of m, z and a view 0: %s", buf);
        CHECK_EQ(ashmem_broker_unshare(b, "m"), 0);
        CHECK_EQ(ashmem_broker_unshare(b, "z"), 0);
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"name\":\"0\""))
                t_fail(__FILE__, __LINE__, "lookup of the view 0 alone: %s", buf);
        CHECK_EQ(ashmem_broker_unshare(b, "0"), 0);
        raw_lookup(fd, buf, sizeof(buf));
        CHECK(strstr(buf, "\"errno\":\"ENOENT\""));
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* The client sends an attach it sent last as it stands and reads a short
 * reply it read before through what it said then. Whatever comes between
 * (another name, another access, another request, a request that failed
 * half written, the name given to another region), every attach answers
 * with the region its name has now. */
static ino_t ino_of(int fd)
{
        struct stat st;

        CHECK_EQ(fstat(fd, &st), 0);
        return st.st_ino;
}

static void attach_is(ashmem_broker *b, const char *name, int writable, ino_t want,
                      size_t want_size)
{
        size_t size = 0;
        int fd;

        CHECK_EQ(ashmem_broker_attach(b, name, writable, &fd, NULL, &size), 0);
        if (ino_of(fd) != want || size != want_size)
                t_fail(__FILE__, __LINE__, "attach of %s (%s) gave inode %lu of %zu bytes, "
                       "not %lu of %zu", name, writable ? "rw" : "r",
                       (unsigned long)ino_of(fd), size, (unsigned long)want, want_size);
        CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, writable ? O_RDWR : O_RDONLY);
        /* pin state works through what came: the control block known or
         * taken */
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        close(fd);
}

TEST(an_attach_again_answers_for_the_name_asked_now)
{
        ashmem_broker *b;
        ashmem_region_info info;
        char *big;
        ino_t a, p, a2;
        int fd, fa, fp;

        start_broker();
        b = conn();
        fa = create(b, "a", ps(), 0600);
        a = ino_of(fa);
        fp = create(b, "p", 2 * ps(), 0600);
        p = ino_of(fp);
        /* p has pin state: its attach brings the control block too */
        CHECK_EQ(ashmem_unpin_region(fp, 0, 0), 0);
        CHECK(ashmem_pin_region(fp, 0, 0) >= 0);
        attach_is(b, "a", 1, a, ps());
        attach_is(b, "a", 1, a, ps());
        attach_is(b, "p", 1, p, 2 * ps());
        attach_is(b, "p", 1, p, 2 * ps());
        attach_is(b, "a", 1, a, ps());
        attach_is(b, "a", 0, a, ps());
        attach_is(b, "p", 0, p, 2 * ps());
        attach_is(b, "a", 1, a, ps());
        /* a name that begins as the last one does */
        CHECK_NEG(ashmem_broker_attach(b, "aa", 1, &fd, NULL, NULL), ENOENT);
        attach_is(b, "a", 1, a, ps());
        /* another request between two attaches */
        CHECK_EQ(ashmem_broker_info(b, "p", &info), 0);
        attach_is(b, "a", 1, a, ps());
        CHECK_EQ(ashmem_broker_attach_owned(b, "p", 1, getuid(), &fd, &info), 0);
        CHECK(ino_of(fd) == p);
        close(fd);
        attach_is(b, "a", 1, a, ps());
        /* a request too long to send, of a name that begins as the last */
        big = malloc(ASHMEM_BROKER_MSG_MAX + 2);
        CHECK(big != NULL);
        memset(big, 'a', ASHMEM_BROKER_MSG_MAX + 1);
        big[ASHMEM_BROKER_MSG_MAX + 1] = 0;
        CHECK_NEG(ashmem_broker_attach(b, big, 1, &fd, NULL, NULL), EMSGSIZE);
        attach_is(b, "a", 1, a, ps());
        /* a name with a byte to escape, then the last again */
        CHECK_NEG(ashmem_broker_attach(b, "a\"", 1, &fd, NULL, NULL), ENOENT);
        attach_is(b, "a", 1, a, ps());
        free(big);
        /* the name given to another region of the same size */
        CHECK_EQ(ashmem_broker_unshare(b, "a"), 0);
        close(fa);
        fa = create(b, "a", ps(), 0600);
        a2 = ino_of(fa);
        CHECK(a2 != a);
        attach_is(b, "a", 1, a2, ps());
        /* and to the region that had pin state */
        CHECK_EQ(ashmem_broker_unshare(b, "a"), 0);
        CHECK_EQ(ashmem_broker_share(b, fp, "a", 0600, 0, NULL), 0);
        attach_is(b, "a", 1, p, 2 * ps());
        attach_is(b, "a", 1, p, 2 * ps());
        close(fa);
        close(fp);
        ashmem_broker_close(b);
        stop_broker();
}

TEST(limits_answer_with_errors)
{
        const char *const args[] = { "--max-regions", "3", "--max-bytes", "1M",
                                     "--max-connections", "2", NULL };
        ashmem_broker *b, *b2, *b3;
        int fd, r;

        start_broker_args(args);
        b = conn();
        close(create(b, "a", ps(), 0600));
        close(create(b, "b", 512 * 1024, 0600));
        CHECK_NEG(ashmem_broker_create(b, "c", 600 * 1024, ASHMEM_BROKER_DEFAULT,
                                       ASHMEM_BROKER_DEFAULT, &fd, NULL), EDQUOT);
        /* the broker's words name the limit and its option */
        CHECK(strstr(ashmem_broker_error(b), "--max-bytes") != NULL);
        close(create(b, "c", ps(), 0600));
        CHECK_EQ(strcmp(ashmem_broker_error(b), ""), 0);
        CHECK_NEG(ashmem_broker_create(b, "d", ps(), ASHMEM_BROKER_DEFAULT,
                                       ASHMEM_BROKER_DEFAULT, &fd, NULL), ENOSPC);
        CHECK(strstr(ashmem_broker_error(b), "--max-regions") != NULL);
        CHECK_NEG(ashmem_broker_slice(b, "d", "a", 0, 1, 0600, NULL), ENOSPC);
        /* and what is wrong with a name */
        CHECK_NEG(ashmem_broker_create(b, "x\xe2\x80\xaey", ps(), ASHMEM_BROKER_DEFAULT,
                                       ASHMEM_BROKER_DEFAULT, &fd, NULL), EINVAL);
        CHECK(strstr(ashmem_broker_error(b), "U+202E") != NULL);
        CHECK_EQ(ashmem_broker_unshare(b, "c"), 0);
        CHECK_EQ(ashmem_broker_slice(b, "d", "a", 0, 1, 0600, NULL), 0);
        /* a third connection is refused with EMFILE */
        b2 = conn();
        {
                ashmem_broker_server srv;
                CHECK_EQ(ashmem_broker_hello(b2, &srv), 0);
                b3 = conn();
                r = ashmem_broker_hello(b3, &srv);
                CHECK_EQ(r, -EMFILE);
                CHECK(strstr(ashmem_broker_error(b3), "--max-connections") != NULL);
                ashmem_broker_close(b3);
        }
        ashmem_broker_close(b2);
        ashmem_broker_close(b);
        stop_broker();
}

/* A connection belongs to the process that made it: a child's copy
 * refuses every request (parent and child would read each other's
 * replies, and take one region for another), the child connects anew, and
 * the parent's connection goes on. */
TEST(a_connection_made_before_fork_serves_its_parent_only)
{
        ashmem_broker *b;
        int fa, fb, fd, go[2], st;
        ino_t a, bi;
        pid_t pid;

        start_broker();
        b = conn();
        fa = create(b, "a", ps(), 0600);
        fb = create(b, "b", 2 * ps(), 0600);
        a = ino_of(fa);
        bi = ino_of(fb);
        CHECK_EQ(pipe(go), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                ashmem_broker *mine = NULL;
                int ok = 1, f;
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) != 0)
                        _exit(9);
                ok &= ashmem_broker_attach(b, "b", 1, &f, NULL, NULL) == -ENOTCONN;
                {
                        ashmem_region_info info;
                        ok &= ashmem_broker_info(b, "b", &info) == -ENOTCONN;
                }
                ashmem_broker_close(b);
                ok &= ashmem_broker_connect(sock, &mine) == 0;
                for (int i = 0; ok && i < 200; i++) {
                        ok &= ashmem_broker_attach(mine, "b", 1, &f, NULL, NULL) == 0;
                        if (ok) {
                                struct stat sb;
                                ok &= fstat(f, &sb) == 0 && sb.st_ino == bi;
                                close(f);
                        }
                }
                ashmem_broker_close(mine);
                _exit(ok ? 0 : 1);
        }
        close(go[0]);
        close(go[1]);           /* go: both ask at once */
        for (int i = 0; i < 200; i++) {
                CHECK_EQ(ashmem_broker_attach(b, "a", 1, &fd, NULL, NULL), 0);
                if (ino_of(fd) != a)
                        t_fail(__FILE__, __LINE__, "attach %d of a gave another region", i);
                close(fd);
        }
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_EQ(ashmem_broker_attach(b, "a", 1, &fd, NULL, NULL), 0);
        CHECK(ino_of(fd) == a);
        close(fd);
        close(fa);
        close(fb);
        ashmem_broker_close(b);
        stop_broker();
}

/* Lines of the broker's log holding text. */
static int log_lines(const char *text)
{
        char path[128], line[2048];
        FILE *f;
        int n = 0;

        snprintf(path, sizeof(path), "%s/log", dir);
        f = fopen(path, "re");
        if (!f)
                t_fail(__FILE__, __LINE__, "%s: %m", path);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, text))
                        n++;
        fclose(f);
        return n;
}

TEST(a_flood_of_refused_connections_logs_a_bounded_number_of_lines)
{
        const char *const args[] = { "--max-connections", "1", NULL };
        long long start, secs;
        int held, flood = 0, lines;
        char buf[256];

        start_broker_args(args);
        /* the one connection allowed (once start_broker_args()'s is gone) */
        for (long long end = mono_ms() + WAIT_MS;; nap(20)) {
                static const char hello[] = "{\"v\":1,\"op\":\"hello\"}";
                ssize_t n = -1;
                held = raw_connect();
                /* refused while the earlier connection is still counted,
                 * it may be closed before the hello goes out: try again */
                if (send(held, hello, sizeof(hello) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(hello) - 1)
                        n = recv(held, buf, sizeof(buf) - 1, 0);
                else if (errno != EPIPE && errno != ECONNRESET)
                        t_fail(__FILE__, __LINE__, "send: %m");
                buf[n > 0 ? n : 0] = 0;
                if (strstr(buf, "\"ok\":true"))
                        break;
                close(held);
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "no connection: %s", buf);
        }
        start = mono_ms();
        while (mono_ms() - start < 1500) {
                int fd = raw_connect();
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                CHECK(n > 0);
                buf[n] = 0;
                CHECK(strstr(buf, "\"errno\":\"EMFILE\""));
                close(fd);
                flood++;
        }
        CHECK(flood >= 100);
        secs = (mono_ms() - start) / 1000 + 1;
        lines = log_lines("refused a connection of uid");
        if (lines < 1 || lines > secs + 1)
                t_fail(__FILE__, __LINE__, "%d refusals in %lld s logged in %d lines",
                       flood, secs, lines);
        /* what went unlogged is counted in one line, a second later */
        for (long long end = mono_ms() + WAIT_MS; !log_lines("more connections of uid 0"); nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "no line counts the refusals not logged");
        close(held);
        stop_broker();
}

TEST(idle_connections_are_dropped_and_the_client_reconnects)
{
        const char *const args[] = { "--idle-timeout", "1", NULL };
        ashmem_broker *idle, *keeper, *b;
        ashmem_broker_counters st;
        ashmem_broker_server srv;
        long long deadline;
        int fd = ashmem_create_region("keep", ps());

        CHECK(fd >= 0);
        start_broker_args(args);
        idle = conn();
        keeper = conn();
        CHECK_EQ(ashmem_broker_hello(idle, &srv), 0);
        /* a connection holding a transient share is never idle */
        CHECK_EQ(ashmem_broker_share(keeper, fd, "kept", 0600, 1, NULL), 0);
        deadline = mono_ms() + WAIT_MS;
        do {
                nap(50);
                b = conn();
                CHECK_EQ(ashmem_broker_stats(b, &st), 0);
                ashmem_broker_close(b);
        } while (st.dropped < 1 && mono_ms() < deadline);
        CHECK(st.dropped >= 1);
        /* the dropped connection is opened again by the library */
        CHECK_EQ(ashmem_broker_hello(idle, &srv), 0);
        CHECK_EQ(srv.pid, broker_pid);
        b = conn();
        CHECK_EQ(info_errno(b, "kept"), 0);
        ashmem_broker_close(b);
        ashmem_broker_close(idle);
        ashmem_broker_close(keeper);
        close(fd);
        stop_broker();
}

/* ------------------------------------------------------------ purging */

TEST(forced_pressure_purges_unpinned_pages_only)
{
        const char *const args[] = { "--purge-below", "100", "--poll-interval", "50", NULL };
        ashmem_broker *b;
        ashmem_broker_counters st;
        long long deadline;
        int fd;
        char *p;

        start_broker_args(args);
        b = conn();
        fd = create(b, "lru", 4 * ps(), 0600);
        p = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        memset(p, 'd', 4 * ps());
        CHECK_EQ(ashmem_unpin_region(fd, 2 * ps(), 2 * ps()), 0);
        deadline = mono_ms() + WAIT_MS;
        do {
                nap(20);
                CHECK_EQ(ashmem_broker_stats(b, &st), 0);
        } while (st.pages_purged < 2 && mono_ms() < deadline);
        CHECK_EQ(st.pages_purged, 2);
        CHECK(st.purges >= 1);
        /* pinned pages intact, unpinned ones gone */
        CHECK_EQ(p[0], 'd');
        CHECK_EQ(p[2 * ps() - 1], 'd');
        CHECK_EQ(p[2 * ps()], 0);
        CHECK_EQ(p[4 * ps() - 1], 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, 2 * ps()), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_region(fd, 2 * ps(), 0), ASHMEM_WAS_PURGED);
        munmap(p, 4 * ps());
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
        /* the purges were logged with pages and bytes */
}

TEST(purge_request_is_ordered_and_owner_only)
{
        ashmem_broker *b;
        unsigned long long pages = 7;
        int a, c;

        start_broker();
        b = conn();
        a = create(b, "pa", 3 * ps(), 0600);
        c = create(b, "pc", 2 * ps(), 0600);
        CHECK_EQ(ashmem_unpin_region(a, 0, 0), 0);
        CHECK_EQ(ashmem_unpin_region(c, ps(), ps()), 0);
        CHECK_EQ(ashmem_broker_purge(b, "pc", &pages), 0);
        CHECK_EQ(pages, 1);
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 3);
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 0);
        CHECK_NEG(ashmem_broker_purge(b, "nope", &pages), ENOENT);
        CHECK_EQ(ashmem_pin_region(a, 0, 0), ASHMEM_WAS_PURGED);
        close(a);
        close(c);
        ashmem_broker_close(b);
        stop_broker();
}

/* uid 5001 purges all it owns: its region once however many names it
 * has, nobody else's. */
static void purge_all_as_a_user(void *arg)
{
        unsigned long long pages = 7;
        ashmem_broker *b;
        int fd;

        (void)arg;
        become_uid(5001);
        b = conn();
        fd = create(b, "mine", 2 * ps(), 0600);
        CHECK_EQ(ashmem_broker_share(b, fd, "mine-too", 0600, 0, NULL), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 2);
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 0);
        close(fd);
        ashmem_broker_close(b);
}

TEST(a_users_purge_of_all_takes_its_own_regions_only)
{
        const char *const args[] = { "--socket-mode", "0666", NULL };
        unsigned long long pages = 7;
        ashmem_broker *b;
        char map[3];
        int fd;

        start_broker_args(args);
        b = conn();
        fd = create(b, "roots", 3 * ps(), 0644);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHILD_OK(purge_all_as_a_user, NULL);
        CHECK_EQ(ashmem_get_page_map(fd, map, 3), 0);
        CHECK(memcmp(map, "uuu", 3) == 0);
        CHECK_EQ(ashmem_broker_purge(b, NULL, &pages), 0);
        CHECK_EQ(pages, 3);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A client that holds a region's purge lock for ever (or scribbles its
 * state) never stalls the broker: the broker's purge of that region answers
 * at once with what it could do (nothing), everyone else is served, and
 * once the holder is gone the region purges again. */
static void hold_lock(void *arg)
{
        int *pfd = arg, fd;
        ashmem_broker *b = conn();
        struct stat st;
        struct amc_ref ref;
        struct amc_plock lk;

        CHECK_EQ(ashmem_broker_attach(b, "locked", 1, &fd, NULL, NULL), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(am_table_hold(&st, &ref), 0);
        CHECK_EQ(amc_purge_lock(&ref, &lk), 0);
        /* and page 0 left purging (page 1 unpinned), as a purger stopped
         * mid-way leaves them */
        __atomic_store_n(&ref.state[0], (uint64_t)0x6, __ATOMIC_RELEASE);
        CHECK_EQ(write(pfd[1], "l", 1), 1);
        pause();
}

TEST(a_held_purge_lock_never_stalls_the_broker)
{
        ashmem_broker *b, *other;
        ashmem_broker_server srv;
        int fd, p[2], status, rf;
        pid_t child;
        char c, buf[256];
        long long t0;

        start_broker();
        b = conn();
        fd = create(b, "locked", 2 * ps(), 0600);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
                hold_lock(p);
                _exit(0);
        }
        CHECK_EQ(read(p[0], &c, 1), 1);
        /* the purge answers at once, with the page nobody else is
         * purging (purgers share the lock) */
        t0 = am_mono_ms();
        rf = raw_connect();
        raw_sends(rf, "{\"v\":1,\"op\":\"purge\",\"name\":\"locked\"}", NULL, 0);
        raw_recv(rf, buf, sizeof(buf), NULL);
        CHECK(strcmp(buf, "{\"ok\":true,\"pages\":1}") == 0);
        CHECK(am_mono_ms() - t0 < 1000);
        other = conn();
        for (int i = 0; i < 100; i++)
                CHECK_EQ(ashmem_broker_hello(other, &srv), 0);
        /* the holder dies: nothing is left unpinned, but the broker does
         * not skip the region: it finishes the page the dead purger left
         * purging (punched, purged), and the next pin says so */
        CHECK_EQ(kill(child, SIGKILL), 0);
        while (waitpid(child, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        raw_sends(rf, "{\"v\":1,\"op\":\"purge\",\"name\":\"locked\"}", NULL, 0);
        raw_recv(rf, buf, sizeof(buf), NULL);
        if (strcmp(buf, "{\"ok\":true,\"pages\":1}") != 0)
                t_fail(__FILE__, __LINE__, "purge after the holder died: %s", buf);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        close(rf);
        close(p[0]);
        close(p[1]);
        close(fd);
        ashmem_broker_close(other);
        ashmem_broker_close(b);
        stop_broker();
}

/* A holder scribbles over a broker-held region's control block (random
 * bytes, all ones, all zeros, purging bits under a purge lock it keeps)
 * while the broker purges it again and again: the broker keeps answering
 * stats within a second, another region it holds is untouched, and it
 * stops cleanly. */
static void scribble_block(void *arg)
{
        ashmem_broker *b = conn();
        int fd, *stop = arg;
        struct stat st;
        struct amc_ref ref;
        uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();

        CHECK_EQ(ashmem_broker_attach(b, "scribbled", 1, &fd, NULL, NULL), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        {
                /* the block, made by the broker on this first need */
                int c;
                CHECK_EQ(ashmem_get_control(fd, &c), 0);
                close(c);
        }
        CHECK_EQ(am_table_hold(&st, &ref), 0);
        for (unsigned round = 0; !__atomic_load_n(stop, __ATOMIC_RELAXED); round++) {
                uint64_t *w = (uint64_t *)(void *)ref.b;
                size_t nw = ref.map_len / sizeof(uint64_t);
                struct amc_plock lk;
                for (size_t i = 0; i < nw; i++) {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        __atomic_store_n(&w[i], round % 4 == 0 ? seed :
                                         round % 4 == 1 ? ~(uint64_t)0 :
                                         round % 4 == 2 ? 0 : 0xaaaaaaaaaaaaaaaaull,
                                         __ATOMIC_RELAXED);
                }
                if (round % 4 == 3 && amc_purge_lock(&ref, &lk) == 0) {
                        struct timespec ts = { 0, 50 * 1000000 };
                        nanosleep(&ts, NULL);
                        amc_purge_unlock(&ref, &lk);
                }
        }
        _exit(0);
}

TEST(a_scribbled_block_never_stalls_the_broker)
{
        ashmem_broker *b;
        ashmem_broker_counters n;
        int fd, other, status, *stop;
        unsigned long long pages;
        char *o;
        pid_t child;
        long long t0, worst = 0;

        start_broker();
        b = conn();
        fd = create(b, "scribbled", 64 * ps(), 0600);
        other = create(b, "bystander", 4 * ps(), 0600);
        o = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE, MAP_SHARED, other, 0);
        CHECK(o != MAP_FAILED);
        memset(o, 'o', 4 * ps());
        CHECK_EQ(ashmem_unpin_region(other, 2 * ps(), 2 * ps()), 0);
        stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(stop != MAP_FAILED);
        *stop = 0;
        fflush(NULL);
        child = fork();
        CHECK(child >= 0);
        if (child == 0)
                scribble_block(stop);
        for (int i = 0; i < 200; i++) {
                t0 = am_mono_ms();
                CHECK_EQ(ashmem_broker_purge(b, "scribbled", &pages), 0);
                CHECK_EQ(ashmem_broker_stats(b, &n), 0);
                (void)ashmem_pin_region(fd, 0, 0);
                (void)ashmem_unpin_region(fd, 0, 0);
                if (am_mono_ms() - t0 > worst)
                        worst = am_mono_ms() - t0;
        }
        __atomic_store_n(stop, 1, __ATOMIC_RELAXED);
        status = 0;
        while (waitpid(child, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* each round (a purge, stats, and a pin that may wait its bound
         * behind the scribbler's purge lock) within the bound and a second */
        if (worst > 1000 + AMC_WAIT_NS / 1000000)
                t_fail(__FILE__, __LINE__, "a round took %lld ms", worst);
        /* the bystander: pinned pages intact, unpinned ones still there */
        CHECK(o[0] == 'o' && o[ps()] == 'o');
        CHECK_EQ(ashmem_pin_status(other, 0, 2 * ps()), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_pin_status(other, 2 * ps(), 2 * ps()), ASHMEM_IS_UNPINNED);
        CHECK_EQ(ashmem_broker_stats(b, &n), 0);
        printf("    200 rounds against a scribbler, the slowest %lld ms\n", worst);
        munmap(o, 4 * ps());
        munmap(stop, sizeof(*stop));
        close(fd);
        close(other);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ stopping */

TEST(sigterm_finishes_and_removes_the_socket)
{
        ashmem_broker *b;
        struct stat st;
        char lock[128];

        start_broker();
        b = conn();
        close(create(b, "x", ps(), 0600));
        CHECK_EQ(lstat(sock, &st), 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK_EQ(st.st_mode & 0777, 0600);
        snprintf(lock, sizeof(lock), "%s.lock", sock);
        /* a second broker on the same socket refuses to start */
        {
                char prog[PATH_MAX];
                int status;
                pid_t p;
                ashmemctl_path(prog, sizeof(prog));
                p = fork();
                CHECK(p >= 0);
                if (p == 0) {
                        int nul = open("/dev/null", O_WRONLY);
                        dup2(nul, 2);
                        close_range(3, ~0U, 0);
                        execl(prog, "ashmemctl", "--socket", sock, "broker", "run", (char *)NULL);
                        _exit(127);
                }
                while (waitpid(p, &status, 0) < 0)
                        CHECK_EQ(errno, EINTR);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
                CHECK_EQ(lstat(sock, &st), 0);          /* ours is untouched */
        }
        ashmem_broker_close(b);
        stop_broker();  /* checks exit 0 and the socket gone */
        CHECK(lstat(lock, &st) < 0);    /* remove_dir took the lock file */
}

/* ------------------------------------------------------------ heaps and slices */

static void heap_client(void *arg)
{
        ashmem_broker *b = conn();
        ashmem_slice *s = NULL, *ro = NULL;
        ashmem_heap *h = NULL;
        int *v;

        (void)arg;
        CHECK_EQ(ashmem_broker_attach_slice(b, "counter", 1, &s), 0);
        CHECK_EQ(ashmem_slice_offset(s), 8);
        CHECK_EQ(ashmem_slice_size(s), sizeof(int));
        v = ashmem_slice_ptr(s);
        CHECK_EQ(__atomic_fetch_add(v, 1, __ATOMIC_SEQ_CST), 41);
        /* the whole region as a heap: the same mapping (the heap cache) */
        CHECK_EQ(ashmem_broker_attach_heap(b, "counter", 1, &h), 0);
        CHECK_EQ(ashmem_heap_size(h), 64);
        CHECK(ashmem_heap_base(h) == ashmem_heap_base(ashmem_slice_heap(s)));
        CHECK_EQ(*(int *)((char *)ashmem_heap_base(h) + 8), 42);
        /* read-only: a read-only mapping of its own */
        CHECK_EQ(ashmem_broker_attach_slice(b, "counter", 0, &ro), 0);
        CHECK(ashmem_heap_base(ashmem_slice_heap(ro)) != ashmem_heap_base(h));
        CHECK_EQ(*(int *)ashmem_slice_ptr(ro), 42);
        CHECK_EQ(ashmem_heap_pin(h, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_NEG(ashmem_broker_attach_heap(b, "nope", 0, &h), ENOENT);
        ashmem_slice_unref(ro);
        ashmem_heap_unref(h);
        ashmem_slice_unref(s);
        ashmem_broker_close(b);
}

TEST(heaps_and_slices_through_the_broker)
{
        ashmem_broker *b;
        ashmem_heap *h;
        ashmem_slice *s;
        ashmem_region_info ri;
        int *v, go[2];
        pid_t child;

        start_broker();
        /* the client must not inherit our heap cache: fork it first */
        child = fork_on_go(heap_client, NULL, go);
        b = conn();
        CHECK_EQ(ashmem_heap_new("heap", 64, 0, &h), 0);
        CHECK_EQ(ashmem_slice_new(h, 8, sizeof(int), &s), 0);
        v = ashmem_slice_ptr(s);
        *v = 41;
        CHECK_EQ(ashmem_broker_share_slice(b, s, "counter", 0600, 1, &ri), 0);
        CHECK_EQ(ri.transient, 1);
        CHECK_EQ(ri.offset, 8);
        CHECK_EQ(ri.length, sizeof(int));
        CHECK_EQ(ashmem_broker_share_heap(b, h, "whole", 0600, 0, &ri), 0);
        CHECK_EQ(ri.is_slice, 0);
        CHECK_EQ(ri.size, 64);
        CHECK_EQ(write(go[1], "g", 1), 1);
        close(go[1]);
        wait_ok(child);
        CHECK_EQ(*v, 42);
        ashmem_slice_unref(s);
        ashmem_heap_unref(h);
        ashmem_broker_close(b);
        stop_broker();
}

/* broker.h: every function leaves errno as it found it, success or not. */
TEST(errno_is_left_alone)
{
        ashmem_broker *b;
        ashmem_region_info ri, *all = NULL;
        ashmem_broker_server srv;
        ashmem_broker_counters bc;
        unsigned long long pages;
        size_t n;
        int fd, fd2, own;

        start_broker();
        errno = 4242;
        b = conn();
        CHECK_EQ(errno, 4242);
        CHECK_EQ(ashmem_broker_hello(b, &srv), 0);
        CHECK_EQ(ashmem_broker_create(b, "e", 4096, ASHMEM_BROKER_DEFAULT, 0644, &fd, &ri), 0);
        CHECK_NEG(ashmem_broker_create(b, "e", 4096, ASHMEM_BROKER_DEFAULT, 0644, &fd2, NULL), EEXIST);
        CHECK_EQ(ashmem_broker_attach(b, "e", 0, &fd2, NULL, NULL), 0);
        close(fd2);
        CHECK_EQ(ashmem_broker_attach_owned(b, "e", 1, getuid(), &fd2, &ri), 0);
        close(fd2);
        CHECK_NEG(ashmem_broker_attach_owned(b, "e", 1, getuid() + 1, &fd2, &ri), EPERM);
        CHECK_NEG(ashmem_broker_attach(b, "nope", 0, &fd2, NULL, NULL), ENOENT);
        CHECK_EQ(ashmem_broker_info(b, "e", &ri), 0);
        CHECK_EQ(ashmem_broker_list(b, &all, &n), 0);
        free(all);
        CHECK_EQ(ashmem_broker_slice(b, "e.s", "e", 0, 10, 0600, &ri), 0);
        CHECK_EQ(ashmem_broker_purge(b, "e", &pages), 0);
        CHECK_EQ(ashmem_broker_stats(b, &bc), 0);
        own = ashmem_create_region("own", 4096);
        CHECK(own >= 0);
        errno = 4242;
        CHECK_EQ(ashmem_broker_share(b, own, "own", 0600, 1, &ri), 0);
        CHECK_EQ(ashmem_broker_unshare(b, "e.s"), 0);
        CHECK_NEG(ashmem_broker_unshare(b, "e.s"), ENOENT);
        CHECK_EQ(errno, 4242);
        close(own);
        close(fd);
        ashmem_broker_close(b);
        CHECK_EQ(errno, 4242);
        stop_broker();
}

/* --------------------------------------------- control blocks on demand */

/* The page map of fd is want. */
#define CHECK_MAP_OF(fd, want) do { \
        char map_[64] = { 0 }; \
        CHECK_EQ(ashmem_get_page_map((fd), map_, strlen(want)), 0); \
        if (memcmp(map_, (want), strlen(want)) != 0) \
                t_fail(__FILE__, __LINE__, "page map %.*s, expected %s", \
                       (int)strlen(want), map_, (want)); \
} while (0)

/* A holder of a broker-made region that got the data descriptor alone. */
struct lazy_holder { int sv; int page; };

static void lazy_holder(void *arg)
{
        struct lazy_holder *l = arg;
        int fd = recv_one_fd(l->sv);
        char c = 0;

        /* no block yet: every page pinned, said by the broker; asking
         * makes none */
        CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_get_stats(fd, &(ashmem_stats){ 0 }), 0);
        CHECK_EQ(write(l->sv, "r", 1), 1);
        /* wait for the go, then unpin one page: the first need */
        CHECK_EQ(read(l->sv, &c, 1), 1);
        CHECK_EQ(ashmem_unpin_region(fd, (size_t)l->page * ps(), ps()), 0);
        CHECK_EQ(write(l->sv, "k", 1), 1);
        CHECK_EQ(read(l->sv, &c, 1), 1);
        /* the other holder's unpin is in the same block */
        CHECK_EQ(ashmem_pin_status(fd, 0, 2 * ps()), ASHMEM_IS_UNPINNED);
        CHECK_MAP_OF(fd, "uuP");
        close(fd);
}

TEST(a_created_region_gets_one_block_through_the_broker_when_first_needed)
{
        ashmem_broker *b;
        int fd, ro, sv[2][2], n0, n1;
        pid_t kid[2];
        struct lazy_holder lh[2];
        char c;

        start_broker();
        b = conn();
        n0 = broker_fds();
        fd = create(b, "lazy", 3 * ps(), 0600);
        /* the reply carried the data descriptor alone, and the broker
         * keeps one descriptor for the region */
        CHECK_EQ(ashmem_get_stats(fd, &(ashmem_stats){ 0 }), 0);
        {
                ashmem_stats s;
                CHECK_EQ(ashmem_get_stats(fd, &s), 0);
                CHECK_EQ(s.shared_state, 0);
        }
        CHECK_EQ(broker_fds(), n0 + 1);
        CHECK_EQ(ashmem_broker_attach(b, "lazy", 0, &ro, NULL, NULL), 0);
        /* a read-only holder: all pinned, said by the broker, and it may
         * not make the block */
        CHECK_EQ(ashmem_pin_status(ro, 0, 0), ASHMEM_IS_PINNED);
        CHECK_ERRNO(ashmem_unpin_region(ro, 0, 0), EPERM);
        CHECK_NEG(ashmem_broker_lookup(b, ro), ENOENT);
        CHECK_EQ(broker_fds(), n0 + 2);         /* its read-only reopening */
        /* two holders with the data descriptor alone unpin at once: the
         * broker makes one block, which both get */
        for (int i = 0; i < 2; i++) {
                CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv[i]), 0);
                lh[i] = (struct lazy_holder){ .sv = sv[i][1], .page = i };
                kid[i] = fork();
                CHECK(kid[i] >= 0);
                if (kid[i] == 0) {
                        close(sv[i][0]);
                        lazy_holder(&lh[i]);
                        _exit(0);
                }
                close(sv[i][1]);
                send_one_fd(sv[i][0], fd);
        }
        /* both have seen the region all pinned before either unpins */
        for (int i = 0; i < 2; i++)
                CHECK_EQ(read(sv[i][0], &c, 1), 1);
        for (int i = 0; i < 2; i++)
                CHECK_EQ(write(sv[i][0], "g", 1), 1);
        for (int i = 0; i < 2; i++)
                CHECK_EQ(read(sv[i][0], &c, 1), 1);
        for (int i = 0; i < 2; i++)
                CHECK_EQ(write(sv[i][0], "g", 1), 1);
        for (int i = 0; i < 2; i++) {
                wait_ok(kid[i]);
                close(sv[i][0]);
        }
        /* the block the broker made (control, and the library's own copy) */
        n1 = broker_fds();
        CHECK(n1 >= n0 + 3 && n1 <= n0 + 4);
        /* this process: its status asks, and sees the holders' unpins */
        CHECK_EQ(ashmem_pin_status(fd, 0, ps()), ASHMEM_IS_UNPINNED);
        CHECK_MAP_OF(fd, "uuP");
        /* an attach now hands the block out with the data */
        {
                int fd2;
                ashmem_stats s;
                CHECK_EQ(ashmem_broker_attach(b, "lazy", 1, &fd2, NULL, NULL), 0);
                CHECK_EQ(ashmem_get_stats(fd2, &s), 0);
                CHECK_EQ(s.shared_state, 1);
                CHECK_EQ(s.unpinned, 2);
                close(fd2);
        }
        close(ro);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A broker holding many regions without pin state keeps one descriptor
 * for each: 9,000 of them under a limit of 10,000 descriptors. */
TEST(nine_thousand_blockless_regions_fit_under_ten_thousand_descriptors)
{
        const char *const args[] = { "--max-regions", "20000", NULL };
        struct rlimit lim = { 10000, 10000 };
        ashmem_broker *b;
        int n0, n1;

        /* the broker inherits the limit (each test runs in a process of
         * its own) */
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
        start_broker_args(args);
        b = conn();
        n0 = broker_fds();
        for (int i = 0; i < 9000; i++) {
                char name[32];
                int fd;
                snprintf(name, sizeof(name), "many-%d", i);
                fd = create(b, name, ps(), 0600);
                close(fd);
        }
        n1 = broker_fds();
        CHECK_EQ(n1 - n0, 9000);
        /* and the broker still answers, with room to spare */
        {
                int fd;
                CHECK_EQ(ashmem_broker_attach(b, "many-4321", 1, &fd, NULL, NULL), 0);
                CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
                CHECK_EQ(ashmem_pin_status(fd, 0, 0), ASHMEM_IS_UNPINNED);
                close(fd);
        }
        ashmem_broker_close(b);
        stop_broker();
}

/* Under pressure the purger also takes regions with nothing unpinned but
 * pages a dead purger left purging: it finishes them (punched, purged),
 * so that they do not stay unreclaimable. */
TEST(pressure_finishes_pages_a_dead_purger_left)
{
        const char *const args[] = { "--purge-below", "100", "--poll-interval", "50", NULL };
        ashmem_broker *b;
        ashmem_broker_counters st;
        long long deadline;
        struct stat fst;
        struct amc_ref ref;
        ashmem_stats s;
        int fd, c;
        char *p;

        start_broker_args(args);
        b = conn();
        fd = create(b, "halfdone", 4 * ps(), 0600);
        CHECK_EQ(ashmem_get_control(fd, &c), 0);
        close(c);
        p = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED);
        memset(p, 'd', 4 * ps());
        CHECK_EQ(fstat(fd, &fst), 0);
        CHECK_EQ(am_table_hold(&fst, &ref), 0);
        /* pages 2 and 3 purging, nobody purging them, nothing unpinned */
        __atomic_store_n(&ref.state[0], 0xa0ull, __ATOMIC_RELEASE);
        am_table_release(&fst);
        deadline = mono_ms() + WAIT_MS;
        do {
                nap(20);
                CHECK_EQ(ashmem_get_stats(fd, &s), 0);
                CHECK_EQ(ashmem_broker_stats(b, &st), 0);
        } while (p[2 * ps()] != 0 && mono_ms() < deadline);
        CHECK_EQ(p[0], 'd');
        CHECK_EQ(p[2 * ps() - 1], 'd');
        CHECK_EQ(p[2 * ps()], 0);
        CHECK_EQ(p[4 * ps() - 1], 0);
        CHECK_MAP_OF(fd, "PPxx");
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_WAS_PURGED);
        munmap(p, 4 * ps());
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A holder of a region the broker made and nobody has needed pin state
 * for yet, after the broker is gone: nobody can make the block now, and
 * its pin calls say so (ENOLCK) instead of pretending the pages pinned. */
TEST(a_blockless_region_after_its_broker_died_fails_with_enolck)
{
        ashmem_broker *b;
        int fd;

        start_broker();
        b = conn();
        fd = create(b, "orphan", 2 * ps(), 0600);
        ashmem_broker_close(b);
        stop_broker();
        CHECK_ERRNO(ashmem_unpin_region(fd, 0, 0), ENOLCK);
        CHECK_ERRNO(ashmem_pin_region(fd, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_pin_status(fd, 0, 0), ENOLCK);
        /* the data lives on */
        {
                char *p = mmap(NULL, 2 * ps(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                CHECK(p != MAP_FAILED);
                p[0] = 'x';
                CHECK_EQ(p[0], 'x');
                munmap(p, 2 * ps());
        }
        close(fd);
}

/* ------------------------------------------------------------ lookup "create" */

/* A lookup with "create":true of the region of fd on a new connection,
 * as any client may send it: the reply in buf; the descriptor it carried
 * (or -1) in *got, kept. */
static void raw_lookup_create(int fd, char *buf, size_t len, int *got)
{
        union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr a; } u;
        struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        int s = raw_connect(), k = 0;
        ssize_t n;

        raw_sends(s, "{\"v\":1,\"op\":\"lookup\",\"create\":true}", &fd, 1);
        n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
        if (n < 0)
                t_fail(__FILE__, __LINE__, "recvmsg: %m");
        buf[n] = 0;
        *got = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < cnt; i++, k++) {
                        int x;
                        memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (k == 0)
                                *got = x;
                        else
                                close(x);
                }
        }
        CHECK(k <= 1);
        close(s);
}

/* A lookup that must get no block: ok with the record and no descriptor
 * (ok), or the error e. */
static void lookup_gets_no_block(int fd, const char *e, int line)
{
        char buf[4096], want[64];
        int got;

        raw_lookup_create(fd, buf, sizeof(buf), &got);
        if (got >= 0) {
                close(got);
                t_fail(__FILE__, line, "lookup handed out a block: %s", buf);
        }
        if (e)
                snprintf(want, sizeof(want), "\"errno\":\"%s\"", e);
        else
                snprintf(want, sizeof(want), "\"ok\":true");
        if (!strstr(buf, want))
                t_fail(__FILE__, line, "lookup: %s, expected %s", buf, want);
}

/* A read-only holder may not make a region's block: the answer is the one
 * for any region without one (the record, no descriptor: all pinned), and
 * no block exists afterwards, not even for a read-write holder that asks
 * without "create". */
TEST(lookup_create_from_a_read_only_holder_makes_no_block)
{
        ashmem_broker *b;
        int fd, ro, n0, got;
        char buf[4096];

        start_broker();
        b = conn();
        fd = create(b, "lz", 2 * ps(), 0644);
        CHECK_EQ(ashmem_broker_attach(b, "lz", 0, &ro, NULL, NULL), 0);
        n0 = broker_fds();
        lookup_gets_no_block(ro, NULL, __LINE__);
        lookup_gets_no_block(ro, NULL, __LINE__);
        CHECK_EQ(broker_fds(), n0);
        /* a read-write holder asking without "create" sees none either */
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"ok\":true"))
                t_fail(__FILE__, __LINE__, "lookup: %s", buf);
        {
                int s = raw_connect(), k;
                raw_sends(s, "{\"v\":1,\"op\":\"lookup\"}", &fd, 1);
                raw_recv(s, buf, sizeof(buf), &k);
                CHECK_EQ(k, 0);
                close(s);
        }
        CHECK_EQ(broker_fds(), n0);
        /* the read-write holder's create still works afterwards */
        raw_lookup_create(fd, buf, sizeof(buf), &got);
        if (got < 0)
                t_fail(__FILE__, __LINE__, "lookup create: %s", buf);
        close(got);
        close(ro);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A descriptor of a region the broker does not hold, or none: ENOENT (or
 * EINVAL for none), and the broker makes nothing. */
TEST(lookup_create_of_a_region_the_broker_does_not_hold_makes_no_block)
{
        ashmem_broker *b;
        int fd, other, n0, s;

        start_broker();
        b = conn();
        fd = create(b, "held", ps(), 0600);
        n0 = broker_fds();
        other = memfd_create("other", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(other >= 0);
        CHECK_EQ(ftruncate(other, (off_t)ps()), 0);
        CHECK_EQ(fcntl(other, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
        lookup_gets_no_block(other, "ENOENT", __LINE__);
        /* a memfd the client made with the mark of the broker's regions
         * (mode 01600, sealed against resizing) is not one of them */
        CHECK_EQ(fchmod(other, 01600), 0);
        lookup_gets_no_block(other, "ENOENT", __LINE__);
        /* no descriptor at all */
        s = raw_connect();
        expect_error(s, "{\"v\":1,\"op\":\"lookup\",\"create\":true}", "EINVAL");
        close(s);
        CHECK_EQ(broker_fds(), n0);
        close(other);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A memfd a client made itself with the mark (mode 01600, sealed against
 * growing and shrinking) and shared without a block: the broker did not
 * make it, so it makes no block for it, however the client asks. */
TEST(lookup_create_of_a_shared_forged_region_makes_no_block)
{
        ashmem_broker *b;
        int forged, n0, n1, s;
        char buf[4096];

        start_broker();
        b = conn();
        forged = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(forged >= 0);
        CHECK_EQ(ftruncate(forged, (off_t)(2 * ps())), 0);
        CHECK_EQ(fchmod(forged, 01600), 0);
        CHECK_EQ(fcntl(forged, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
        n0 = broker_fds();
        s = raw_connect();
        raw_sends(s, "{\"v\":1,\"op\":\"share\",\"name\":\"forged\"}", &forged, 1);
        raw_recv(s, buf, sizeof(buf), NULL);
        close(s);
        if (!strstr(buf, "\"ok\":true"))
                t_fail(__FILE__, __LINE__, "share: %s", buf);
        n1 = broker_fds();
        CHECK_EQ(n1, n0 + 1);           /* the data descriptor, nothing else */
        lookup_gets_no_block(forged, "ENOENT", __LINE__);
        lookup_gets_no_block(forged, "ENOENT", __LINE__);
        {
                int fd2;
                CHECK_EQ(ashmem_broker_attach(b, "forged", 1, &fd2, NULL, NULL), 0);
                lookup_gets_no_block(fd2, "ENOENT", __LINE__);
                close(fd2);
        }
        CHECK_EQ(broker_fds(), n1);
        close(forged);
        ashmem_broker_close(b);
        stop_broker();
}

/* Two read-write holders both ask to create: one block, the same inode for
 * both, and read-only holders get a read-only descriptor of it. */
TEST(lookup_create_twice_gives_the_same_block)
{
        ashmem_broker *b;
        int fd, fd2, ro, c1, c2, c3, n1;
        struct stat s1, s2, s3;
        char buf[4096];

        start_broker();
        b = conn();
        fd = create(b, "once", 2 * ps(), 0644);
        CHECK_EQ(ashmem_broker_attach(b, "once", 1, &fd2, NULL, NULL), 0);
        CHECK_EQ(ashmem_broker_attach(b, "once", 0, &ro, NULL, NULL), 0);
        raw_lookup_create(fd, buf, sizeof(buf), &c1);
        if (c1 < 0)
                t_fail(__FILE__, __LINE__, "first create: %s", buf);
        n1 = broker_fds();
        raw_lookup_create(fd2, buf, sizeof(buf), &c2);
        if (c2 < 0)
                t_fail(__FILE__, __LINE__, "second create: %s", buf);
        CHECK_EQ(broker_fds(), n1);
        raw_lookup_create(ro, buf, sizeof(buf), &c3);
        if (c3 < 0)
                t_fail(__FILE__, __LINE__, "read-only lookup after the block: %s", buf);
        CHECK_EQ(fstat(c1, &s1), 0);
        CHECK_EQ(fstat(c2, &s2), 0);
        CHECK_EQ(fstat(c3, &s3), 0);
        CHECK_EQ(s1.st_ino, s2.st_ino);
        CHECK_EQ(s1.st_dev, s2.st_dev);
        CHECK_EQ(s1.st_ino, s3.st_ino);
        CHECK_EQ(fcntl(c1, F_GETFL) & O_ACCMODE, O_RDWR);
        CHECK_EQ(fcntl(c3, F_GETFL) & O_ACCMODE, O_RDONLY);
        close(c1);
        close(c2);
        close(c3);
        close(ro);
        close(fd2);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ the closer's lanes */

/* nobody connects for a second, every connection refused (it is at its
 * limit); exits 0 if at least 100 were answered EMFILE. */
static void nobody_floods(void *arg)
{
        long long end;
        int n = 0;
        char buf[512];

        (void)arg;
        become_nobody();
        for (end = mono_ms() + 1000; mono_ms() < end;) {
                int fd = raw_connect();
                ssize_t k = recv(fd, buf, sizeof(buf) - 1, 0);
                close(fd);
                if (k > 0) {
                        buf[k] = 0;
                        if (!strstr(buf, "\"errno\":\"EMFILE\""))
                                _exit(2);
                        n++;
                }
        }
        _exit(n >= 100 ? 0 : 3);
}

/* daemon (uid 1) opens, uses and closes 40 connections one after the
 * other, more than its descriptor limit, then at its connection limit is
 * refused promptly: each request answered within a second. */
static void daemon_served(void *arg)
{
        char buf[4096];
        int held[2];

        (void)arg;
        become_uid(1);
        for (int i = 0; i < 40; i++) {
                int fd = raw_connect();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", NULL, 0);
                if (poll(&p, 1, 1000) != 1)
                        t_fail(__FILE__, __LINE__, "request %d of daemon not answered", i);
                raw_recv(fd, buf, sizeof(buf), NULL);
                if (!strstr(buf, "\"ok\":true"))
                        t_fail(__FILE__, __LINE__, "request %d of daemon: %s", i, buf);
                close(fd);
        }
        /* its 2 connections: the broker frees a slot once it has seen
         * the hangup of a connection above, which may come a little after
         * close() returned */
        for (int i = 0; i < 2; i++)
                for (long long end = mono_ms() + WAIT_MS;; nap(20)) {
                        static const char hello[] = "{\"v\":1,\"op\":\"hello\"}";
                        ssize_t n = -1;
                        held[i] = raw_connect();
                        if (send(held[i], hello, sizeof(hello) - 1, MSG_NOSIGNAL) ==
                            (ssize_t)sizeof(hello) - 1)
                                n = recv(held[i], buf, sizeof(buf) - 1, 0);
                        buf[n > 0 ? n : 0] = 0;
                        if (strstr(buf, "\"ok\":true"))
                                break;
                        close(held[i]);
                        if (mono_ms() > end)
                                t_fail(__FILE__, __LINE__, "daemon's connection %d: %s", i, buf);
                }
        {
                int fd = raw_connect();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 1000) != 1)
                        t_fail(__FILE__, __LINE__, "daemon's refusal not answered");
                raw_recv(fd, buf, sizeof(buf), NULL);
                if (!strstr(buf, "\"errno\":\"EMFILE\"") || !strstr(buf, "--max-uid-connections"))
                        t_fail(__FILE__, __LINE__, "daemon over its limit: %s", buf);
                close(fd);
        }
        close(held[0]);
        close(held[1]);
}

/* A number in root's stats for uid: the field key ("parked", ...). */
/* A number of root's stats: field, in the object that starts with within;
 * 0 when there is no such object and absent_ok, else a failure. */
static long long stats_number(const char *within, const char *field, int absent_ok)
{
        char buf[65536], key[48];
        const char *p;
        int s = raw_connect();

        raw_sends(s, "{\"v\":1,\"op\":\"stats\"}", NULL, 0);
        raw_recv(s, buf, sizeof(buf), NULL);
        close(s);
        p = strstr(buf, within);
        if (!p && absent_ok)
                return 0;
        if (p) {
                snprintf(key, sizeof(key), "\"%s\":", field);
                p = strstr(p, key);
        }
        if (!p)
                t_fail(__FILE__, __LINE__, "stats without %s in %s: %s", field, within, buf);
        return atoll(p + strlen(key));
}

static long long stats_field(unsigned uid, const char *field)
{
        char within[32];

        snprintf(within, sizeof(within), "{\"uid\":%u,", uid);
        return stats_number(within, field, 1);
}

/* How many descriptors of uid the closer holds. */
static long long stats_closing(unsigned uid)
{
        return stats_field(uid, "closing");
}

/* A broker (socket mode 0666, 2 connections and 16 descriptors a user)
 * where nobody holds both its connections, s[0] and s[1], and a close of
 * nobody's is stuck for as long as *peer lives (its lane blocked). *base,
 * when not NULL: the broker's descriptors before nobody came. */
static void nobody_stuck_args(const char *const *args, int s[2], int *peer, int *base);

static void nobody_stuck(int s[2], int *peer, int *base)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "16", NULL };

        nobody_stuck_args(args, s, peer, base);
}

/* The same with the broker's arguments args. */
static void nobody_stuck_args(const char *const *args, int s[2], int *peer, int *base)
{
        char buf[4096];
        int sv[2], u;

        start_broker_args(args);
        if (base)
                *base = broker_fds();
        for (int i = 0; i < 2; i++) {
                CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
                CHILD_OK(connect_as_nobody, &sv[1]);
                close(sv[1]);
                s[i] = recv_one_fd(sv[0]);
                close(sv[0]);
        }
        u = blocking_unix_socket(peer);
        send_and_drop(s[0], "{\"v\":1,\"op\":\"stats\"}", &u, 1);
        raw_recv(s[0], buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"errno\":\"EINVAL\""));
        CHECK_EQ(stats_closing(65534), 1);
}

/* nobody's closes block (a Unix socket holding a lingering one) and it
 * floods the broker with connections over its limit: what the broker
 * holds for it stays bounded, and another user's connections are served,
 * refused and closed as usual (its descriptor limit is not eaten by
 * closes waiting behind nobody's). */
/* nobody stuck (nobody_stuck) floods with flood(), as nobody, then its
 * stuck close ends. */
static void stuck_and_flooding(void (*flood)(void *))
{
        int s[2], peer;
        long long closing;

        nobody_stuck(s, &peer, NULL);
        /* nobody, at its 2 connections, floods */
        CHILD_OK(flood, NULL);
        closing = stats_closing(65534);
        if (closing > 64 + 2)
                t_fail(__FILE__, __LINE__, "the broker holds %lld closes of nobody's", closing);
        /* another user is served as if nobody were not there */
        CHILD_OK(daemon_served, NULL);
        hello_answered_promptly();
        /* nobody's blocked close ends: everything of its goes */
        close(peer);
        close(s[0]);
        close(s[1]);
        for (long long end = mono_ms() + WAIT_MS; stats_closing(65534) != 0; nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "nobody's closes still held: %lld",
                               stats_closing(65534));
        CHECK_EQ(stats_closing(1), 0);
        stop_broker();
}

TEST(a_user_whose_closes_block_and_who_floods_delays_no_other_user)
{
        stuck_and_flooding(nobody_floods);
}

/* nobody floods as above, each connection sending messages before its
 * refusal comes (an empty one and a byte: nothing whose release waits). */
static void nobody_floods_with_messages(void *arg)
{
        long long end;
        int n = 0;
        char buf[512];

        (void)arg;
        become_nobody();
        /* 300 connections are plenty to tell a bound of 66 */
        for (end = mono_ms() + 1000; mono_ms() < end && n < 300;) {
                int fd = raw_connect();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                /* the broker may have shut the connection down already */
                if (send(fd, "", 0, MSG_NOSIGNAL) < 0 || send(fd, "x", 1, MSG_NOSIGNAL) < 0)
                        CHECK(errno == EPIPE || errno == ECONNRESET);
                if (poll(&p, 1, 1000) != 1)
                        _exit(4);       /* the refusal never came */
                k = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                close(fd);
                if (k > 0) {
                        buf[k] = 0;
                        if (!strstr(buf, "\"errno\":\"EMFILE\""))
                                _exit(2);
                        n++;
                }
        }
        _exit(n >= 100 ? 0 : 3);
}

/* The same with messages on the refused connections: messages that carry
 * no descriptor release nothing that may wait, so they do not make the
 * broker hold the connection behind the blocked close. */
TEST(refused_connections_with_messages_and_no_descriptors_stay_bounded)
{
        stuck_and_flooding(nobody_floods_with_messages);
}

/* A new connection to the broker that carries fd (one byte and fd by
 * SCM_RIGHTS), closed at once: 1 if the message went out, 0 if the broker
 * had refused the connection already. */
static int send_on_new_connection(int fd)
{
        int s = raw_connect(), sent;

        sent = am_send_fds_any(s, "x", 1, &fd, 1, MSG_DONTWAIT) == 0;
        if (!sent)
                CHECK(errno == EPIPE || errno == ECONNRESET || errno == EAGAIN);
        close(s);
        return sent;
}

/* nobody floods as above, each connection sending one descriptor (of
 * /dev/null) right after connect(), before the broker accepts and refuses
 * it: every refused connection carries a descriptor. Exits 0 if at least
 * 1,000 of its 2,500 connections sent theirs. */
/* As uid, count connections each carrying a descriptor of /dev/null; the
 * process exits 0 if at least least of them sent it. */
static void floods_with_null(uid_t uid, int count, int least)
{
        int null, n = 0;

        become_uid(uid);
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(null >= 0);
        for (int i = 0; i < count; i++)
                n += send_on_new_connection(null);
        close(null);
        _exit(n >= least ? 0 : 3);
}

static void nobody_floods_with_descriptors(void *arg)
{
        (void)arg;
        floods_with_null(65534, 2500, 1000);
}


/* Refused connections that carry descriptors cannot be closed on the event
 * loop, and nobody's closes are stuck: the broker parks them rather than
 * hold a descriptor for each, so its descriptors stay bounded, another
 * user is served, and all of them are closed once the stuck close ends. */
TEST(refused_connections_with_descriptors_do_not_fill_the_broker)
{
        int s[2], peer, base, fds;
        long long parked;

        nobody_stuck(s, &peer, &base);
        CHILD_OK(nobody_floods_with_descriptors, NULL);
        fds = broker_fds();
        if (fds - base >= 300)
                t_fail(__FILE__, __LINE__, "the broker holds %d descriptors (%d before the flood)",
                       fds, base);
        parked = stats_field(65534, "parked");
        CHECK(parked > 0);
        if (stats_closing(65534) > 64 + 2)
                t_fail(__FILE__, __LINE__, "the broker holds %lld closes of nobody's",
                       stats_closing(65534));
        CHILD_OK(daemon_served, NULL);
        hello_answered_promptly();
        /* the stuck close ends: every queued and parked close follows */
        close(peer);
        close(s[0]);
        close(s[1]);
        for (long long end = mono_ms() + WAIT_MS;
             stats_closing(65534) != 0 || stats_field(65534, "parked") != 0; nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "nobody's closes still held: %lld, parked %lld",
                               stats_closing(65534), stats_field(65534, "parked"));
        fds = broker_fds();
        if (fds != base)
                t_fail(__FILE__, __LINE__, "the broker holds %d descriptors, %d before", fds, base);
        stop_broker();
}

/* nobody floods as above, each connection writing 4 KiB of data in one
 * message right after connect() (no descriptor). Exits 0 if at least 100
 * of its 300 connections wrote theirs. */
static void nobody_floods_with_data(void *arg)
{
        static char data[4096];
        int n = 0;

        (void)arg;
        become_nobody();
        memset(data, 'x', sizeof(data));
        for (int i = 0; i < 300; i++) {
                int fd = raw_connect();

                /* the broker may have refused the connection already */
                if (send(fd, data, sizeof(data), MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
                        n++;
                else
                        CHECK(errno == EPIPE || errno == ECONNRESET || errno == EAGAIN);
                close(fd);
        }
        _exit(n >= 100 ? 0 : 3);
}

/* Refused connections whose queue holds data and no descriptor release
 * nothing that may wait, however long the data: the broker closes them
 * itself, neither parked nor held behind nobody's stuck close. */
/* nobody stuck floods with flood() (connections that carry no
 * descriptor): none of them is parked or held behind the stuck close, and
 * once it ends the broker's descriptors are back where they were. */
static void stuck_and_flooding_without_descriptors(void (*flood)(void *))
{
        int s[2], peer, base;

        nobody_stuck(s, &peer, &base);
        CHILD_OK(flood, NULL);
        if (stats_field(65534, "parked") != 0 || stats_closing(65534) > 64 + 2)
                t_fail(__FILE__, __LINE__, "refused connections of nobody's without descriptors: "
                       "%lld parked, %lld closing", stats_field(65534, "parked"),
                       stats_closing(65534));
        close(peer);
        close(s[0]);
        close(s[1]);
        for (long long end = mono_ms() + WAIT_MS; stats_closing(65534) != 0; nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "nobody's closes still held: %lld",
                               stats_closing(65534));
        CHECK_EQ(broker_fds(), base);
        stop_broker();
}

TEST(refused_connections_with_long_messages_are_not_parked)
{
        stuck_and_flooding_without_descriptors(nobody_floods_with_data);
}

/* nobody floods as above, each connection sending 400 one-byte messages
 * right after connect() (no descriptor): more than the broker takes off a
 * refused connection's queue one by one. Exits 0 if at least 20 of its
 * 300 connections sent them all. */
static void nobody_floods_with_many_messages(void *arg)
{
        int n = 0, size = 1 << 20;

        (void)arg;
        become_nobody();
        for (int i = 0; i < 300; i++) {
                int fd = raw_connect(), k = 0;

                struct mmsghdr mm[400];
                struct iovec iov = { .iov_base = "x", .iov_len = 1 };

                memset(mm, 0, sizeof(mm));
                for (int j = 0; j < 400; j++) {
                        mm[j].msg_hdr.msg_iov = &iov;
                        mm[j].msg_hdr.msg_iovlen = 1;
                }
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
                /* at once: the refusal may come any moment */
                k = sendmmsg(fd, mm, 400, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k == 400)
                        n++;
                else if (k < 0)
                        CHECK(errno == EPIPE || errno == ECONNRESET || errno == EAGAIN);
                close(fd);
        }
        _exit(n >= 20 ? 0 : 3);
}

/* However many messages without descriptors a refused connection holds,
 * closing it releases nothing that may wait: the broker closes it itself,
 * it is neither parked (where it would hold kernel memory no limit of its
 * sender's bounds) nor held behind nobody's stuck close. */
TEST(refused_connections_with_many_messages_are_not_parked)
{
        stuck_and_flooding_without_descriptors(nobody_floods_with_many_messages);
}

/* ------------------------------------------------------------ user and group names */

/* Copy the file at path into a new temporary file; its name in out, its
 * inode returned. */
static ino_t copy_to_temp(const char *path, char *out, size_t len)
{
        struct stat st;
        char buf[65536];
        int in = open(path, O_RDONLY | O_CLOEXEC), fd;
        ssize_t n;

        CHECK(in >= 0);
        snprintf(out, len, "/tmp/ashmem-test-idfile-XXXXXX");
        fd = mkostemp(out, O_CLOEXEC);
        CHECK(fd >= 0);
        while ((n = read(in, buf, sizeof(buf))) > 0)
                CHECK_EQ(write(fd, buf, (size_t)n), n);
        CHECK_EQ(n, 0);
        CHECK_EQ(fchmod(fd, 0644), 0);
        CHECK_EQ(fstat(fd, &st), 0);
        close(fd);
        close(in);
        return st.st_ino;
}

/* Rewrite path in place (the same inode, as a bind mount sees it), which
 * must be inode ino (a private copy, never the system's file): the lines
 * starting with from (a name and its colon) renamed to to. */
static void rename_in_place(const char *path, ino_t ino, const char *from, const char *to)
{
        char buf[65536], out[70000];
        size_t fl = strlen(from), o = 0;
        ssize_t n;
        struct stat st;
        int fd = open(path, O_RDWR | O_CLOEXEC);

        CHECK(fd >= 0);
        CHECK_EQ(fstat(fd, &st), 0);
        if (st.st_ino != ino)
                t_fail(__FILE__, __LINE__, "%s is not the private copy", path);
        n = read(fd, buf, sizeof(buf) - 1);
        CHECK(n > 0);
        buf[n] = 0;
        for (char *line = buf, *nl; *line; line = nl) {
                nl = strchr(line, '\n');
                nl = nl ? nl + 1 : line + strlen(line);
                if (strncmp(line, from, fl) == 0) {
                        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", to);
                        line += fl;
                }
                memcpy(out + o, line, (size_t)(nl - line));
                o += (size_t)(nl - line);
        }
        CHECK_EQ(ftruncate(fd, 0), 0);
        CHECK_EQ(pwrite(fd, out, o, 0), (ssize_t)o);
        close(fd);
}

/* The broker caches user and group names; a change of /etc/passwd or
 * /etc/group shows in the records made after it. The test runs in a
 * mount namespace of its own where both files are private copies. */
TEST(user_and_group_names_follow_changes_of_the_files)
{
        char pw[64], gr[64];
        ashmem_broker *b;
        ashmem_region_info ri;
        int fd, r;
        ino_t pwi, gri;

        pwi = copy_to_temp("/etc/passwd", pw, sizeof(pw));
        gri = copy_to_temp("/etc/group", gr, sizeof(gr));
        r = unshare(CLONE_NEWNS);
        if (r == 0)
                r = mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        if (r == 0)
                r = mount(pw, "/etc/passwd", NULL, MS_BIND, NULL);
        if (r == 0)
                r = mount(gr, "/etc/group", NULL, MS_BIND, NULL);
        /* the mounts hold the copies from now on */
        unlink(pw);
        unlink(gr);
        if (r < 0)
                t_fail(__FILE__, __LINE__, "a mount namespace with private /etc/passwd "
                       "and /etc/group: %m (needs root)");
        start_broker();
        b = conn();
        CHECK_EQ(ashmem_broker_create(b, "before", ps(), ASHMEM_BROKER_DEFAULT, 0600, &fd, &ri), 0);
        close(fd);
        CHECK(strcmp(ri.user, "root") == 0);
        CHECK(strcmp(ri.group, "root") == 0);
        /* a second create within the second reads the cache */
        rename_in_place("/etc/passwd", pwi, "root:", "superuser:");
        rename_in_place("/etc/group", gri, "root:", "wheelgroup:");
        for (long long end = mono_ms() + WAIT_MS;; nap(200)) {
                char name[32];
                snprintf(name, sizeof(name), "after-%lld", mono_ms());
                CHECK_EQ(ashmem_broker_create(b, name, ps(), ASHMEM_BROKER_DEFAULT, 0600,
                                              &fd, &ri), 0);
                close(fd);
                CHECK_EQ(ashmem_broker_unshare(b, name), 0);
                if (strcmp(ri.user, "superuser") == 0 && strcmp(ri.group, "wheelgroup") == 0)
                        break;
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "names after the change: %s %s", ri.user,
                               ri.group);
        }
        /* and back */
        rename_in_place("/etc/passwd", pwi, "superuser:", "root:");
        rename_in_place("/etc/group", gri, "wheelgroup:", "root:");
        for (long long end = mono_ms() + WAIT_MS;; nap(200)) {
                CHECK_EQ(ashmem_broker_create(b, "back", ps(), ASHMEM_BROKER_DEFAULT, 0600,
                                              &fd, &ri), 0);
                close(fd);
                CHECK_EQ(ashmem_broker_unshare(b, "back"), 0);
                if (strcmp(ri.user, "root") == 0 && strcmp(ri.group, "root") == 0)
                        break;
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "names after the change back: %s %s",
                               ri.user, ri.group);
        }
        ashmem_broker_close(b);
        stop_broker();
        CHECK_EQ(umount("/etc/passwd"), 0);
        CHECK_EQ(umount("/etc/group"), 0);
}

/* ------------------------------------------------------------ records */

/* The "prot" of name's record. */
static void record_prot(ashmem_broker *b, const char *name, char *out, size_t len)
{
        char req[128], *rep = NULL, *p;
        int rfds[2], nr = 0;

        snprintf(req, sizeof(req), "{\"v\":1,\"op\":\"info\",\"name\":\"%s\"}", name);
        CHECK_EQ(ashmem_broker_call(b, req, NULL, 0, &rep, rfds, &nr), 0);
        CHECK_EQ(nr, 0);
        p = strstr(rep, "\"prot\":\"");
        CHECK(p);
        snprintf(out, len, "%.3s", p + 8);
        free(rep);
}

/* A holder that seals the data memfd against writing itself is seen in
 * the records at once, with or without a block (the broker keeps what it
 * can of a record, never past a change of the seals). */
TEST(records_follow_a_holders_own_seals)
{
        ashmem_broker *b;
        int fd, fd2, ctl;
        char prot[8], buf[4096];

        start_broker();
        b = conn();
        fd = create(b, "quiet", ps(), 0600);
        fd2 = create(b, "blocked", ps(), 0600);
        record_prot(b, "quiet", prot, sizeof(prot));
        CHECK(strcmp(prot, "rwx") == 0);
        record_prot(b, "quiet", prot, sizeof(prot));
        CHECK(strcmp(prot, "rwx") == 0);
        CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
        record_prot(b, "quiet", prot, sizeof(prot));
        if (strcmp(prot, "r-x") != 0)
                t_fail(__FILE__, __LINE__, "a region sealed against writing: prot %s", prot);
        /* with a block */
        raw_lookup_create(fd2, buf, sizeof(buf), &ctl);
        if (ctl < 0)
                t_fail(__FILE__, __LINE__, "lookup create: %s", buf);
        close(ctl);
        record_prot(b, "blocked", prot, sizeof(prot));
        CHECK(strcmp(prot, "rwx") == 0);
        CHECK_EQ(fcntl(fd2, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
        record_prot(b, "blocked", prot, sizeof(prot));
        if (strcmp(prot, "r-x") != 0)
                t_fail(__FILE__, __LINE__, "a region with a block sealed against writing: prot %s",
                       prot);
        close(fd);
        close(fd2);
        ashmem_broker_close(b);
        stop_broker();
}

/* The counts of name's record, from info and from an attach that asks for
 * the record: they agree, and are pages, pinned and unpinned. */
static void expect_counts(ashmem_broker *b, const char *name, size_t pages, size_t pinned,
                          size_t unpinned)
{
        ashmem_region_info ri, ra;
        int fd;

        CHECK_EQ(ashmem_broker_info(b, name, &ri), 0);
        CHECK_EQ(ashmem_broker_attach_owned(b, name, 1, getuid(), &fd, &ra), 0);
        close(fd);
        CHECK_EQ(ra.pages, ri.pages);
        CHECK_EQ(ra.pinned, ri.pinned);
        CHECK_EQ(ra.unpinned, ri.unpinned);
        CHECK_EQ(ra.purged, ri.purged);
        CHECK_EQ(ra.prot, ri.prot);
        CHECK_EQ(ri.pages, pages);
        CHECK_EQ(ri.pinned, pinned);
        CHECK_EQ(ri.unpinned, unpinned);
}

/* A record's counts follow the region: all pinned without a block (a view
 * counts the pages it touches), then a holder's unpin and pin through the
 * block the broker made are seen by the next info and attach, and so is a
 * holder's seal against writing. */
TEST(records_follow_pin_counts_and_seals_at_once)
{
        ashmem_broker *b;
        ashmem_region_info ri;
        int fd;

        start_broker();
        b = conn();
        fd = create(b, "counted", 3 * ps(), 0600);
        CHECK_EQ(ashmem_broker_slice(b, "counted-view", "counted", ps() / 2, ps(), 0600, NULL), 0);
        expect_counts(b, "counted", 3, 3, 0);
        expect_counts(b, "counted-view", 2, 2, 0);
        /* the first unpin makes the block through the broker */
        CHECK_EQ(ashmem_unpin_region(fd, 0, ps()), ASHMEM_NOT_PURGED);
        expect_counts(b, "counted", 3, 2, 1);
        expect_counts(b, "counted-view", 2, 1, 1);
        CHECK_EQ(ashmem_unpin_region(fd, 2 * ps(), ps()), ASHMEM_NOT_PURGED);
        expect_counts(b, "counted", 3, 1, 2);
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), ASHMEM_NOT_PURGED);
        expect_counts(b, "counted", 3, 3, 0);
        /* a seal, seen by the attach's record too */
        CHECK_EQ(ashmem_broker_info(b, "counted", &ri), 0);
        CHECK_EQ(ri.prot, PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
        expect_counts(b, "counted", 3, 3, 0);
        CHECK_EQ(ashmem_broker_info(b, "counted", &ri), 0);
        CHECK_EQ(ri.prot, PROT_READ | PROT_EXEC);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* request, an attach of a region without a block: one descriptor and
 * exactly the reply want. */
static void expect_short_reply(ashmem_broker *b, const char *request, const char *want)
{
        char *rep = NULL;
        int rfds[2], nr = 0;

        CHECK_EQ(ashmem_broker_call(b, request, NULL, 0, &rep, rfds, &nr), 0);
        CHECK_EQ(nr, 1);
        close(rfds[0]);
        if (strcmp(rep, want) != 0)
                t_fail(__FILE__, __LINE__, "%s -> %s, not %s", request, rep, want);
        free(rep);
}

/* An attach with "record":false answers the size (and a view's range)
 * with the descriptor, and nothing of the record; a mistyped "record" is
 * refused, naming the field; ashmem_broker_attach() maps views right with
 * the short reply. */
TEST(attach_without_the_record_answers_what_a_holder_maps)
{
        ashmem_broker *b;
        char *rep = NULL;
        int rfds[2], nr = 0, fd;
        size_t off = 0, len = 0;
        char want[128];

        start_broker();
        b = conn();
        close(create(b, "short", 2 * ps(), 0600));
        CHECK_EQ(ashmem_broker_slice(b, "short-view", "short", ps(), ps(), 0600, NULL), 0);
        snprintf(want, sizeof(want), "{\"ok\":true,\"size\":%zu}", 2 * ps());
        expect_short_reply(b, "{\"v\":1,\"op\":\"attach\",\"name\":\"short\","
                              "\"access\":\"rw\",\"record\":false}", want);
        snprintf(want, sizeof(want), "{\"ok\":true,\"size\":%zu,\"offset\":%zu,\"length\":%zu}",
                 ps(), ps(), ps());
        expect_short_reply(b, "{\"v\":1,\"op\":\"attach\",\"name\":\"short-view\","
                              "\"access\":\"r\",\"record\":false}", want);
        /* "record":true, the default: the record */
        CHECK_EQ(ashmem_broker_call(b, "{\"v\":1,\"op\":\"attach\",\"name\":\"short\","
                                    "\"access\":\"rw\",\"record\":true}", NULL, 0, &rep, rfds,
                                    &nr), 0);
        close(rfds[0]);
        CHECK(strstr(rep, "\"name\":\"short\"") && strstr(rep, "\"pinned\":2"));
        free(rep);
        CHECK_NEG(ashmem_broker_call(b, "{\"v\":1,\"op\":\"attach\",\"name\":\"short\","
                                     "\"access\":\"rw\",\"record\":0}", NULL, 0, &rep, rfds,
                                     &nr), EINVAL);
        CHECK_EQ(nr, 0);
        CHECK(strstr(rep, "field \\\"record\\\" must be true or false"));
        free(rep);
        /* the library's attach, also of a name with characters to escape */
        close(create(b, "short \"q\\uoted\"", ps(), 0600));
        CHECK_EQ(ashmem_broker_attach(b, "short \"q\\uoted\"", 0, &fd, &off, &len), 0);
        CHECK_EQ(off, 0);
        CHECK_EQ(len, ps());
        close(fd);
        CHECK_NEG(ashmem_broker_attach(b, "short \"q\\uoted", 0, &fd, &off, &len), ENOENT);
        CHECK_EQ(ashmem_broker_attach(b, "short-view", 1, &fd, &off, &len), 0);
        CHECK_EQ(off, ps());
        CHECK_EQ(len, ps());
        {
                size_t size;
                CHECK_EQ(ashmem_get_size(fd, &size), 0);
                CHECK_EQ(size, 2 * ps());
        }
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

static void close_all(const int *fds, int n)
{
        for (int i = 0; i < n; i++)
                close(fds[i]);
}

/* Send text on fd; the reply in buf, its descriptors (at most 2) in fds. */
static int raw_call_fds(int fd, const char *text, char *buf, size_t len, int fds[2])
{
        int k;

        raw_sends(fd, text, NULL, 0);
        raw_recv_keep(fd, buf, len, &k, fds, 2);
        CHECK(k <= 2);
        return k;
}

/* An attach written as the library writes it is served without the JSON
 * scanner: it must answer exactly what the scanner's way answers, and a
 * message that only starts like one must go the scanner's way. */
TEST(an_attach_is_answered_alike_however_it_is_written)
{
        static const struct {
                const char *canonical, *other;
        } same[] = {
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\",\"record\":false}",
                  "{ \"v\": 1, \"op\": \"attach\", \"name\": \"alike\", \"access\": \"rw\", "
                  "\"record\": false }" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"r\",\"record\":false}",
                  "{\"access\":\"r\",\"record\":false,\"name\":\"al\\u0069ke\",\"op\":\"attach\","
                  "\"v\":1}" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"pinned alike\",\"access\":\"rw\","
                  "\"record\":false}",
                  "{\"v\":1,\"op\":\"attach\",\"name\":\"pinned\\u0020alike\",\"access\":\"rw\","
                  "\"record\":false}" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"pinned alike\",\"access\":\"r\","
                  "\"record\":false}",
                  "{\"v\":1,\"op\":\"attach\",\"name\":\"pinned alike\",\"record\":false,"
                  "\"access\":\"r\"}" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"missing\",\"access\":\"rw\"}",
                  "{\"v\":1,\"op\":\"attach\",\"access\":\"rw\",\"name\":\"missing\"}" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"\",\"access\":\"r\"}",
                  "{\"v\":1,\"op\":\"attach\",\"name\":\"\" ,\"access\":\"r\"}" },
        };
        /* close to the library's form, each a different request */
        static const struct {
                const char *text, *errno_name;
        } near[] = {
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\"}x", "EPROTO" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\",\"record\":false}}",
                  "EPROTO" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\",\"record\":false,"
                  "\"owner\":4242}", "EPERM" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rwx\"}", "EINVAL" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\",\"record\":fals}",
                  "EPROTO" },
                { "{\"v\":2,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"rw\"}", "EPROTO" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"ali\x01ke\",\"access\":\"rw\"}", "EPROTO" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike", "EPROTO" },
                { "{\"v\":1,\"op\":\"attach\",\"name\":\"alike\",\"access\":\"r", "EPROTO" },
        };
        char a[4096], o[4096], want[64];
        int s, fa[2], fo[2], na, no, fd;
        struct stat st, st2;
        ashmem_broker *b;

        start_broker();
        b = conn();
        close(create(b, "alike", ps(), 0600));
        fd = create(b, "pinned alike", ps(), 0600);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);     /* its block is made */
        CHECK_EQ(ashmem_pin_region(fd, 0, 0), 0);
        close(fd);
        s = raw_connect();
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
                na = raw_call_fds(s, same[i].canonical, a, sizeof(a), fa);
                no = raw_call_fds(s, same[i].other, o, sizeof(o), fo);
                if (strcmp(a, o) != 0 || na != no)
                        t_fail(__FILE__, __LINE__, "%s -> %s (%d descriptors)\n%s -> %s (%d)",
                               same[i].canonical, a, na, same[i].other, o, no);
                for (int k = 0; k < na; k++) {
                        /* the same files, with the same access */
                        CHECK_EQ(fstat(fa[k], &st), 0);
                        CHECK_EQ(fstat(fo[k], &st2), 0);
                        CHECK_EQ(st.st_ino, st2.st_ino);
                        CHECK_EQ(fcntl(fa[k], F_GETFL) & O_ACCMODE, fcntl(fo[k], F_GETFL) & O_ACCMODE);
                        CHECK_EQ(fcntl(fa[k], F_GETFL) & O_ACCMODE,
                                 strstr(same[i].canonical, "\"r\"") ? O_RDONLY : O_RDWR);
                }
                /* a region with pin state: the short reply names its
                 * identity, the data descriptor's */
                if (na == 2) {
                        char id[96];
                        CHECK_EQ(fstat(fa[0], &st), 0);
                        snprintf(id, sizeof(id), ",\"dev\":%llu,\"ino\":%llu}",
                                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
                        if (!strstr(a, id))
                                t_fail(__FILE__, __LINE__, "%s does not end in %s", a, id);
                }
                close_all(fa, na);
                close_all(fo, no);
        }
        for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
                na = raw_call_fds(s, near[i].text, a, sizeof(a), fa);
                close_all(fa, na);
                snprintf(want, sizeof(want), "\"errno\":\"%s\"", near[i].errno_name);
                if (na != 0 || !strstr(a, want))
                        t_fail(__FILE__, __LINE__, "%s -> %s (want %s)", near[i].text, a, want);
        }
        /* nothing so far needed a thread of the broker's: it serves on
         * one (its system calls take the single-threaded paths) */
        CHECK_EQ(broker_entries("task"), 1);
        CHECK_EQ(ashmem_broker_purge(b, "alike", NULL), 0);
        CHECK_EQ(broker_entries("task"), 2);
        /* a name the scanner decodes to a plain one is the same name */
        na = raw_call_fds(s, "{\"v\":1,\"op\":\"attach\",\"name\":\"\\u0061like\",\"access\":\"r\","
                             "\"record\":false}", a, sizeof(a), fa);
        CHECK_EQ(na, 1);
        close_all(fa, na);
        /* a block made after the short reply was first written: the reply
         * names the region from then on */
        CHECK_EQ(ashmem_broker_attach(b, "alike", 1, &fd, NULL, NULL), 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        close(fd);
        na = raw_call_fds(s, same[0].canonical, a, sizeof(a), fa);
        CHECK_EQ(na, 2);
        CHECK_EQ(fstat(fa[0], &st), 0);
        snprintf(want, sizeof(want), ",\"ino\":%llu}", (unsigned long long)st.st_ino);
        if (!strstr(a, want))
                t_fail(__FILE__, __LINE__, "after the block was made: %s", a);
        close_all(fa, na);
        close(s);
        ashmem_broker_close(b);
        stop_broker();
}

/* The library's attach of regions with pin state: each received
 * descriptor gets its own region's pin state, also when the process keeps
 * that of another region (the reply names which region it is). */
TEST(attaches_of_regions_with_pin_state_keep_each_ones_state)
{
        const char *names[] = { "state-a", "state-b", "state-a", "state-b", "state-a" };
        ashmem_broker *b;
        int fds[5], fd;
        ashmem_stats st;

        start_broker();
        b = conn();
        for (int i = 0; i < 2; i++) {
                fd = create(b, names[i], 2 * ps(), 0600);
                CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
                CHECK_EQ(ashmem_pin_region(fd, 0, 0), 0);
                close(fd);
        }
        /* this process keeps neither's pin state now */
        CHECK(ashmem_collect() >= 2);
        for (int i = 0; i < 5; i++)
                CHECK_EQ(ashmem_broker_attach(b, names[i], 1, &fds[i], NULL, NULL), 0);
        /* b's second page unpinned through its last descriptor: every
         * descriptor of b sees it, none of a's */
        CHECK_EQ(ashmem_unpin_region(fds[3], ps(), ps()), 0);
        for (int i = 0; i < 5; i++) {
                CHECK_EQ(ashmem_get_stats(fds[i], &st), 0);
                CHECK(st.shared_state && st.writable_state);
                CHECK_EQ(st.unpinned, i % 2 ? 1u : 0u);
        }
        /* and a's first page through its first */
        CHECK_EQ(ashmem_unpin_region(fds[0], 0, ps()), 0);
        CHECK_EQ(ashmem_get_stats(fds[4], &st), 0);
        CHECK_EQ(st.unpinned, 1u);
        CHECK_EQ(ashmem_pin_region(fds[4], 0, ps()), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_get_stats(fds[2], &st), 0);
        CHECK_EQ(st.unpinned, 0u);
        close_all(fds, 5);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ the closer's global limits */

/* A number in the "closer" object of root's stats: the field key. */
static long long closer_field(const char *field)
{
        return stats_number("\"closer\":{", field, 0);
}

struct uid_conn {
        uid_t uid;
        int to;
};

/* A connection of uid's, sent on u->to for this process to use. */
static void connect_as_uid(void *arg)
{
        struct uid_conn *u = arg;
        int s;

        become_uid(u->uid);
        s = raw_connect();
        raw_sends(u->to, "f", &s, 1);
        close(s);
        close(u->to);
}

/* A connection of uid's, for this process to use. */
static int uid_connection(uid_t uid)
{
        int sv[2], s;
        struct uid_conn uc = { uid, -1 };

        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        uc.to = sv[1];
        CHILD_OK(connect_as_uid, &uc);
        close(sv[1]);
        s = recv_one_fd(sv[0]);
        close(sv[0]);
        return s;
}

/* The closes of n users (uids from uid) stuck for as long as peers[i]
 * live: a connection of each, s[i], sent a Unix socket holding a
 * lingering one, and a closer thread waits in its close. All are sent
 * while the broker is stopped once: a signal ends a lingering close. */
static void uids_stuck(uid_t uid, int n, int *s, int *peers)
{
        char buf[4096];
        int u[16];

        CHECK(n <= 16);
        for (int i = 0; i < n; i++) {
                s[i] = uid_connection(uid + (uid_t)i);
                u[i] = blocking_unix_socket(&peers[i]);
        }
        freeze_broker();
        for (int i = 0; i < n; i++) {
                raw_sends(s[i], "{\"v\":1,\"op\":\"stats\"}", &u[i], 1);
                close(u[i]);
        }
        thaw_broker();
        for (int i = 0; i < n; i++) {
                raw_recv(s[i], buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EINVAL\""));
        }
}

/* What floods the closer. */
struct flood {
        uid_t uid;
        int n;                  /* connections */
        int least;              /* of them that must send (0: half) */
        int dups;               /* or: duplicates nobody sends on its stuck
                                 * connection (stuck_lane_flooded) */
};

/* As f->uid, f->n connections, each sending one descriptor (of /dev/null)
 * right after connect() and closed: those over its limits are refused
 * with the descriptor in their queue. Exits 0 if at least f->least (half,
 * when 0) sent theirs. */
static void flood_with_descriptors(void *arg)
{
        const struct flood *f = arg;

        floods_with_null(f->uid, f->n, f->least ? f->least : f->n / 2);
}

/* Wait until the closer holds nothing (every stuck close ended). */
static void closer_drained(void)
{
        for (long long end = mono_ms() + WAIT_MS;
             closer_field("closing") != 0 || closer_field("parked") != 0 ||
             closer_field("parks") != 0; nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "the closer still holds %lld descriptors, "
                               "%lld parked connections, %lld parks", closer_field("closing"),
                               closer_field("parked"), closer_field("parks"));
}

/* Wait until the closer holds nothing, the deferred list included. */
static void closer_all_drained(void)
{
        closer_drained();
        for (long long end = mono_ms() + WAIT_MS; closer_field("deferred") != 0; nap(50))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "%lld descriptors still deferred",
                               closer_field("deferred"));
}

/* The broker holds at most `more` descriptors over base. */
static void broker_fds_at_most(int base, int more)
{
        int fds = broker_fds();

        if (fds > base + more)
                t_fail(__FILE__, __LINE__, "the broker holds %d descriptors (%d before, at most "
                       "%d more allowed)", fds, base, more);
}

/* Another user is served as if nobody else were there. */
static void another_user_served(void)
{
        CHILD_OK(daemon_served, NULL);
        hello_answered_promptly();
}

/* The n stuck closes of uids_stuck() end. */
static void uids_unstuck(int n, const int *stuck, const int *peers)
{
        for (int i = 0; i < n; i++) {
                close(peers[i]);
                close(stuck[i]);
        }
}

/* Once every stuck close has ended: the closer lets go of all it held and
 * the broker is back to the base descriptors it held before; then it is
 * stopped. */
static void closer_let_go(int base)
{
        int fds;

        closer_all_drained();
        fds = broker_fds();
        if (fds != base)
                t_fail(__FILE__, __LINE__, "the broker holds %d descriptors, %d before", fds, base);
        stop_broker();
}

/* nobody's lane, stuck (stuck_lane_flooded). */
struct stuck_lane {
        int s[2];               /* nobody's connections, s[0] the stuck one */
        int peer;               /* keeps its close stuck while open */
        int base;               /* the broker's descriptors before nobody came */
};

/* nobody (its lane stuck, on its connection s) sends n duplicates of fd
 * with requests, 253 a message; each is refused (EINVAL) and its
 * descriptors left to the closer. */
static void nobody_sends_dups(int s, int fd, int n)
{
        static char buf[65536];
        int fds[253];

        for (int i = 0; i < 253; i++)
                fds[i] = fd;
        for (int sent = 0; sent < n; sent += 253) {
                int k = n - sent < 253 ? n - sent : 253;

                raw_sends(s, "{\"v\":1,\"op\":\"stats\"}", fds, k);
                raw_recv(s, buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EINVAL\""));
        }
}

/* nobody's lane stuck in a broker run with args, then flooded: f->n
 * connections of f->uid's, or f->dups duplicates of a pipe's end (cheap
 * to close) sent by nobody on its stuck connection. */
static void stuck_lane_flooded(struct stuck_lane *l, const char *const *args,
                               const struct flood *f)
{
        int p[2];

        nobody_stuck_args(args, l->s, &l->peer, &l->base);
        if (f->n > 0)
                CHILD_OK(flood_with_descriptors, (void *)f);
        if (f->dups > 0) {
                CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
                nobody_sends_dups(l->s[0], p[0], f->dups);
                close(p[0]);
                close(p[1]);
        }
}

/* nobody's stuck close ends, and the closer lets go (closer_let_go). */
static void stuck_lane_ends(struct stuck_lane *l)
{
        close(l->peer);
        close(l->s[0]);
        close(l->s[1]);
        closer_let_go(l->base);
}

/* One login may control many uids (subordinate uids): 8 of them with a
 * stuck close hold every closer thread, and 40 more flood with refused
 * connections that carry a descriptor. Each stays within its own limits,
 * and together they would make the broker hold some 3,000 descriptors;
 * the closer's global limits (--max-closing 200, --max-parked 100) bound
 * what it holds for all of them, what is past them is closed on the event
 * loop (counted), another user is served, and once the stuck closes end
 * the broker is back to its descriptors. */
TEST(many_users_with_stuck_closes_hold_at_most_the_closers_limits)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "16", "--max-closing", "200",
                                     "--max-parked", "100", NULL };
        int stuck[8], peers[8], base;

        start_broker_args(args);
        base = broker_fds();
        uids_stuck(20001, 8, stuck, peers);
        for (long long end = mono_ms() + WAIT_MS; closer_field("closing") != 8; nap(20))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "the closer holds %lld stuck closes, not 8",
                               closer_field("closing"));
        for (int i = 0; i < 40; i++) {
                struct flood f = { (uid_t)(30001 + i), 100, 0, 0 };
                CHILD_OK(flood_with_descriptors, &f);
        }
        /* the 8 connections held here, the closer's 200, nothing else */
        broker_fds_at_most(base, 8 + 200);
        CHECK(closer_field("closing") + 2 * closer_field("parks") <= 200);
        CHECK(closer_field("parked") <= 100);
        CHECK(closer_field("parked") > 0);
        CHECK(closer_field("park_limit") > 0);
        CHECK(closer_field("closed_on_loop") > 0);
        CHECK_EQ(closer_field("max_closing"), 200);
        CHECK_EQ(closer_field("max_parked"), 100);
        another_user_served();
        /* the stuck closes end: everything queued and parked goes */
        uids_unstuck(8, stuck, peers);
        closer_let_go(base);
}

/* nobody's closes are stuck and its parks hold 4 KiB (--park-bytes): a
 * few connections fill one. Of 2,500 refused connections each carrying a
 * descriptor, those its park cannot take join its lane, counted in its
 * descriptor limit (100), and past that are closed on the event loop; the
 * broker's descriptors stay bounded, another user is served, stats says
 * what happened, and all is closed once the stuck close ends. */
TEST(a_full_park_sends_refused_connections_to_the_lane_then_to_the_loop)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "100", "--park-bytes", "4K", NULL };
        struct flood f = { 65534, 2500, 1000, 0 };
        struct stuck_lane l;
        long long parked;

        stuck_lane_flooded(&l, args, &f);
        /* its limit's 100 (its 2 connections among them), a park */
        broker_fds_at_most(l.base, 100 + 2);
        parked = stats_field(65534, "parked");
        if (parked < 1 || parked > 100)
                t_fail(__FILE__, __LINE__, "%lld connections in a park of 4 KiB", parked);
        CHECK(closer_field("park_full") > 0);
        CHECK(closer_field("to_lane") > 0);
        CHECK(closer_field("closed_on_loop") > 0);
        CHECK_EQ(closer_field("park_limit"), 0);
        CHECK_EQ(closer_field("park_refused"), 0);
        another_user_served();
        stuck_lane_ends(&l);
}

/* The broker runs as uid 2 with 256 descriptors (RLIMIT_NOFILE), which
 * also bounds what it may have in flight: it has no CAP_SYS_RESOURCE. */
static void broker_as_uid2(void)
{
        struct rlimit rl = { 256, 256 };

        if (chown(dir, 2, 2) < 0 || setrlimit(RLIMIT_NOFILE, &rl) < 0 ||
            setgroups(0, NULL) < 0 || setgid(2) < 0 || setuid(2) < 0)
                _exit(126);
}

/* A broker that is not root, nobody's closes stuck (its shares of
 * --max-parked and --max-closing, an eighth, above 256 and 100): past 256 parked
 * connections the kernel refuses it more in flight (ETOOMANYREFS); those
 * connections join nobody's lane, counted in its descriptor limit (100),
 * and past that are closed on the event loop. The broker's descriptors
 * stay bounded, another user is served, stats says what happened, and all
 * is closed once the stuck close ends. */
TEST(a_park_refused_by_the_kernel_sends_refused_connections_to_the_lane_then_to_the_loop)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "100", "--max-parked", "4000",
                                     "--max-closing", "1000", NULL };
        struct flood f = { 65534, 2500, 1000, 0 };
        struct stuck_lane l;
        long long parked;

        broker_pre_exec = broker_as_uid2;
        stuck_lane_flooded(&l, args, &f);
        broker_pre_exec = NULL;
        broker_fds_at_most(l.base, 100 + 2);
        parked = stats_field(65534, "parked");
        if (parked < 200 || parked > 300)
                t_fail(__FILE__, __LINE__, "%lld connections parked by a broker allowed 256 "
                       "descriptors in flight", parked);
        CHECK(closer_field("park_refused") > 0);
        CHECK(closer_field("to_lane") > 0);
        CHECK(closer_field("closed_on_loop") > 0);
        CHECK_EQ(closer_field("park_limit"), 0);
        another_user_served();
        stuck_lane_ends(&l);
}

/* 8 users whose closes are stuck hold every closer thread: another
 * user's connections, which carry no descriptor, are closed all the same
 * (by the event loop, their queues known empty), so they do not pile up
 * against its descriptor limit (16) behind the stuck ones (its refused
 * connection, the last, waits in its lane). */
TEST(eight_users_with_stuck_closes_do_not_hold_another_users_connections)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "16", NULL };
        int stuck[8], peers[8], base;

        start_broker_args(args);
        base = broker_fds();
        uids_stuck(20001, 8, stuck, peers);
        another_user_served();
        CHECK(stats_closing(1) <= 1);
        CHECK(closer_field("closing") <= 8 + 1);
        uids_unstuck(8, stuck, peers);
        closer_let_go(base);
}

/* ------------------------------------------------------------ the closer's last resort */

/* Another user's `stats` is answered within a second. */
static void stats_answered_promptly(const char *when)
{
        static char buf[65536];
        struct pollfd p;
        int fd = uid_connection(1);

        raw_sends(fd, "{\"v\":1,\"op\":\"stats\"}", NULL, 0);
        p = (struct pollfd){ .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 1000) != 1)
                t_fail(__FILE__, __LINE__, "another user's stats not answered within a second "
                       "(%s)", when);
        raw_recv(fd, buf, sizeof(buf), NULL);
        CHECK(strstr(buf, "\"ok\":true"));
        close(fd);
}

/* What a refused connection of nobody's carries: a lingering TCP socket
 * (lingering_socket), one in the queue of a Unix socket, one in the queue
 * of a connection a listening Unix socket has not accepted, or 606
 * copies of /dev/null in the queue of a Unix socket (more than the event
 * loop takes apart at once). */
enum { CARRY_TCP, CARRY_NESTED, CARRY_PENDING, CARRY_MANY };

struct carry {
        int what;
        int to;                 /* the lingering socket's peer goes there */
};

static int send_fds_nowait(int s, const int *fds, int n)
{
        return am_send_fds_any(s, "x", 1, fds, n, MSG_DONTWAIT) == 0 ? 0 : -1;
}

/* As nobody (at its limits, so every connection is refused): make what
 * c->what says, send it on a new connection right after connect() (again
 * if the refusal came first), and exit, so that the broker holds the
 * last references. */
static void nobody_sends_carry(void *arg)
{
        const struct carry *c = arg;
        int x = -1, t, peer, sv[2];

        become_nobody();
        if (c->what == CARRY_MANY) {
                int nulls[253];
                CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                for (int i = 0; i < 253; i++)
                        nulls[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                CHECK(nulls[252] >= 0);
                CHECK_EQ(send_fds_nowait(sv[0], nulls, 253), 0);
                CHECK_EQ(send_fds_nowait(sv[0], nulls, 253), 0);
                CHECK_EQ(send_fds_nowait(sv[0], nulls, 100), 0);
                for (int i = 0; i < 253; i++)
                        close(nulls[i]);
                close(sv[0]);
                x = sv[1];
        } else {
                t = lingering_socket(&peer);
                raw_send(c->to, "p", 1, &peer, 1);
                close(peer);
                x = t;
        }
        if (c->what == CARRY_NESTED) {
                CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                CHECK_EQ(send_fds_nowait(sv[0], &x, 1), 0);
                close(x);
                close(sv[0]);
                x = sv[1];
        } else if (c->what == CARRY_PENDING) {
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                socklen_t al = sizeof(sa_family_t);
                int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), k;

                CHECK(l >= 0);
                CHECK_EQ(bind(l, (struct sockaddr *)&a, al), 0);    /* an abstract name */
                al = sizeof(a);
                CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
                CHECK_EQ(listen(l, 4), 0);
                k = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CHECK(k >= 0);
                CHECK_EQ(connect(k, (struct sockaddr *)&a, al), 0);
                CHECK_EQ(send_fds_nowait(k, &x, 1), 0);
                close(x);
                close(k);
                x = l;
        }
        for (int i = 0; i < 1000; i++) {
                int fd = raw_connect();

                if (send_fds_nowait(fd, &x, 1) == 0) {
                        close(x);
                        close(fd);
                        _exit(0);
                }
                CHECK(errno == EPIPE || errno == ECONNRESET || errno == EAGAIN);
                close(fd);
        }
        _exit(3);
}

/* nobody sends what on a refused connection; the lingering socket's
 * peer, which never reads, is returned (-1 for CARRY_MANY). */
static int nobody_carries(int what)
{
        struct carry c = { what, -1 };
        int sv[2], peer = -1;

        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        c.to = sv[1];
        CHILD_OK(nobody_sends_carry, &c);
        close(sv[1]);
        if (what != CARRY_MANY)
                peer = recv_one_fd(sv[0]);
        close(sv[0]);
        return peer;
}

/* nobody's closes are stuck and it fills the closer's global limits
 * (--max-closing 8, --max-parked 4) with refused connections: those that
 * follow reach the last resort, closed on the event loop. They carry
 * lingering TCP sockets with unsent data, directly, in a Unix socket's
 * queue, and in a connection a listening socket has not accepted, whose
 * release would hold the loop for the linger's 600 s: taken apart first
 * (the sockets' lingers made abortive), they never stall it, and another
 * user is answered within a second after each. A Unix socket holding 606
 * descriptors, more than the loop takes at once, is kept and finished
 * later. The broker's descriptors stay bounded, stats count what was
 * taken apart, and all is closed once the stuck close ends. */
TEST(the_last_resort_never_waits_on_what_a_refused_connection_carries)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-uid-fds", "16", "--max-closing", "8",
                                     "--max-parked", "4", NULL };
        static const char *const names[] = { "a lingering TCP socket",
                                             "one in a Unix socket's queue",
                                             "one in a pending connection of a listening socket" };
        /* each send races the broker's refusal of its connection: on a
         * busy machine fewer than half get theirs in first; 20 fill the
         * limits (8 + 4) and reach the last resort, which the checks
         * below see */
        struct flood f = { 65534, 200, 20, 0 };
        struct stuck_lane l;
        int peers[9];
        long long defused, loop;

        stuck_lane_flooded(&l, args, &f);
        CHECK_EQ(closer_field("parked"), 4);
        CHECK(closer_field("closed_on_loop") > 0);
        defused = closer_field("defused_fds");
        loop = closer_field("closed_on_loop");
        stats_answered_promptly("after the flood");
        for (int round = 0; round < 3; round++)
                for (int k = 0; k < 3; k++) {
                        peers[round * 3 + k] = nobody_carries(k);
                        stats_answered_promptly(names[k]);
                }
        /* each took apart on the loop: 1, 2 and 3 descriptors received */
        if (closer_field("closed_on_loop") < loop + 9 ||
            closer_field("defused_fds") < defused + 3 * (1 + 2 + 3))
                t_fail(__FILE__, __LINE__, "closed on the loop %lld (before %lld), "
                       "descriptors taken apart %lld (before %lld)",
                       closer_field("closed_on_loop"), loop, closer_field("defused_fds"),
                       defused);
        /* its 2 connections, the closer's 8, nothing held for the loop */
        broker_fds_at_most(l.base, 2 + 8);
        CHECK_EQ(closer_field("deferred"), 0);
        /* more than a pass takes apart: deferred, then finished */
        nobody_carries(CARRY_MANY);
        stats_answered_promptly("606 descriptors in a queue");
        for (long long end = mono_ms() + WAIT_MS; closer_field("deferred") != 0; nap(20))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "%lld descriptors still deferred",
                               closer_field("deferred"));
        CHECK(closer_field("deferred_total") >= 1);
        CHECK(closer_field("deferred_on_loop") >= 1);
        CHECK(closer_field("defused_fds") >= defused + 18 + 1 + 606);
        broker_fds_at_most(l.base, 2 + 8);
        for (int i = 0; i < 9; i++)
                close(peers[i]);
        stuck_lane_ends(&l);
}

/* ------------------------------------------------------- slices, reload */

/* Reload the broker on b's connection (which lives on in the new image);
 * the test process takes the new image as its child, so that
 * stop_broker() stops and waits for it. */
static void reload_broker(ashmem_broker *b)
{
        char *rep = NULL, *p;
        int rfds[2], nr = 0, status;
        pid_t old = broker_pid;

        CHECK_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        CHECK_EQ(ashmem_broker_call(b, "{\"op\":\"reload\"}", NULL, 0, &rep, rfds, &nr), 0);
        CHECK_EQ(nr, 0);
        p = strstr(rep, "\"pid\":");
        CHECK(p);
        broker_pid = (pid_t)atoi(p + 6);
        free(rep);
        CHECK(broker_pid > 0 && broker_pid != old);
        while (waitpid(old, &status, 0) < 0)
                CHECK_EQ(errno, EINTR);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A holder writes over its region's control block header (a writer may
 * destroy its region): a reload still takes every region over; that one
 * is served without pin state (attach hands out its data alone, lookup
 * says the pin state was lost and makes no other block), the others as
 * before. */
TEST(a_block_a_holder_wrote_over_never_holds_up_a_reload)
{
        ashmem_broker *b;
        char buf[4096];
        void *m;
        size_t off = 9, len = 9;
        int fd, other, ctl, got;

        start_broker();
        b = conn();
        fd = create(b, "scribbled", 2 * ps(), 0600);
        other = create(b, "other", 2 * ps(), 0600);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK_EQ(ashmem_unpin_region(other, 0, ps()), 0);
        CHECK_EQ(ashmem_get_control(fd, &ctl), 0);
        m = mmap(NULL, (size_t)ps(), PROT_READ | PROT_WRITE, MAP_SHARED, ctl, 0);
        CHECK(m != MAP_FAILED);
        memset(m, 0xa5, 16);
        munmap(m, (size_t)ps());
        close(ctl);
        reload_broker(b);
        CHECK_EQ(info_errno(b, "scribbled"), 0);
        CHECK_EQ(ashmem_broker_attach(b, "scribbled", 1, &got, &off, &len), 0);
        CHECK_EQ(len, 2 * ps());
        close(got);
        raw_lookup(fd, buf, sizeof(buf));
        if (!strstr(buf, "\"errno\":\"ENOENT\"") || !strstr(buf, "lost"))
                t_fail(__FILE__, __LINE__, "lookup of the region whose block was written over: %s", buf);
        raw_lookup(other, buf, sizeof(buf));
        CHECK(strstr(buf, "\"name\":\"other\""));
        CHECK_EQ(ashmem_broker_attach(b, "other", 1, &got, &off, &len), 0);
        CHECK_EQ(ashmem_pin_region(got, 0, 0), ASHMEM_NOT_PURGED);
        close(got);
        close(fd);
        close(other);
        ashmem_broker_close(b);
        stop_broker();
}

/* A reload keeps what a slice belongs to, in whatever order the names
 * sort: removing a name after a reload takes its slices with it (and
 * theirs), also those that sort before it. A slice left behind could be
 * given a base of the same spelling on the same region later, a circle
 * whose removal crashed the broker. */
/* A list page counts the pin state of at most some 4 GiB of pages past
 * its first record: views of a 1 GiB region with pin state come four to a
 * page (then a cursor), and the library still lists every name. */
TEST(a_list_page_ends_early_past_its_pin_state_budget)
{
        ashmem_broker *b;
        ashmem_region_info *v = NULL;
        char buf[65536], name[16];
        size_t n = 0, big = (size_t)1 << 30;
        int fd, s, records = 0;
        const char *p;

        start_broker();
        b = conn();
        fd = create(b, "big", big, 0600);
        CHECK_EQ(ashmem_unpin_region(fd, 0, 0), 0);
        CHECK(ashmem_pin_region(fd, 0, 0) >= 0);
        for (int i = 0; i < 10; i++) {
                snprintf(name, sizeof(name), "big-%d", i);
                CHECK_EQ(ashmem_broker_slice(b, name, "big", 0, big, 0600, NULL), 0);
        }
        s = raw_connect();
        raw_sends(s, "{\"v\":1,\"op\":\"list\"}", NULL, 0);
        raw_recv(s, buf, sizeof(buf), NULL);
        close(s);
        for (p = buf; (p = strstr(p, "{\"name\":")); p++)
                records++;
        if (records != 4 || !strstr(buf, "\"cursor\":\"big-2\""))
                t_fail(__FILE__, __LINE__, "the first page of views of 1 GiB: %s", buf);
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 11);
        CHECK_EQ(strcmp(v[10].name, "big-9"), 0);
        CHECK_EQ(v[10].pinned, big / ps());
        free(v);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* Unsharing a name takes the whole tree of slices cut from it (slices of
 * slices, branches, a chain 2,000 deep), and nothing else: a name cut
 * from another region's name, and a name on the same region that is no
 * slice of it, stay. */
TEST(unsharing_a_name_takes_its_whole_tree_of_slices)
{
        const char *const args[] = { "--max-regions", "10000", NULL };
        ashmem_broker *b;
        ashmem_region_info *v = NULL;
        char name[32], of[32];
        size_t n = 0;
        int fd;

        start_broker_args(args);
        b = conn();
        fd = create(b, "root", 4 * ps(), 0600);
        CHECK_EQ(ashmem_broker_share(b, fd, "same-region", 0600, 0, NULL), 0);
        close(create(b, "elsewhere", ps(), 0600));
        CHECK_EQ(ashmem_broker_slice(b, "elsewhere-part", "elsewhere", 0, ps(), 0600, NULL), 0);
        for (int i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), "b%d", i);
                CHECK_EQ(ashmem_broker_slice(b, name, "root", 0, 2 * ps(), 0600, NULL), 0);
                for (int k = 0; k < 2; k++) {
                        snprintf(of, sizeof(of), "b%d", i);
                        snprintf(name, sizeof(name), "b%d-%d", i, k);
                        CHECK_EQ(ashmem_broker_slice(b, name, of, 0, ps(), 0600, NULL), 0);
                }
        }
        snprintf(of, sizeof(of), "b1-1");
        for (int i = 0; i < 2000; i++) {
                snprintf(name, sizeof(name), "chain-%04d", i);
                CHECK_EQ(ashmem_broker_slice(b, name, of, 0, ps(), 0600, NULL), 0);
                snprintf(of, sizeof(of), "%s", name);
        }
        CHECK_EQ(ashmem_broker_unshare(b, "root"), 0);
        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
        CHECK_EQ(n, 3);
        CHECK_EQ(strcmp(v[0].name, "elsewhere"), 0);
        CHECK_EQ(strcmp(v[1].name, "elsewhere-part"), 0);
        CHECK_EQ(strcmp(v[2].name, "same-region"), 0);
        free(v);
        close(fd);
        ashmem_broker_close(b);
        stop_broker();
}

/* A name whose slices fill more than one block of names (a name before
 * it, the name, 255 slices after: 257 names, two blocks) is unshared with
 * all its slices; the broker goes on (it once took a slice's place past
 * the end of a block and freed twice), the other name stays, and the
 * same again with the slices before the name and the other after. */
TEST(unsharing_a_name_whose_slices_cross_a_block_takes_them_all)
{
        static const char *const order[][3] = { { "a-other", "m-base", "z-" },
                                                { "z-other", "m-base", "a-" } };
        ashmem_broker *b;
        char name[32];

        start_broker();
        b = conn();
        for (int k = 0; k < 2; k++) {
                close(create(b, order[k][0], ps(), 0600));
                close(create(b, order[k][1], ps(), 0600));
                for (int i = 0; i < 255; i++) {
                        snprintf(name, sizeof(name), "%s%04d", order[k][2], i);
                        CHECK_EQ(ashmem_broker_slice(b, name, order[k][1], 0, ps(), 0600, NULL), 0);
                }
                CHECK_EQ(ashmem_broker_unshare(b, order[k][1]), 0);
                for (int i = 0; i < 255; i += 50) {
                        ashmem_region_info ri;
                        snprintf(name, sizeof(name), "%s%04d", order[k][2], i);
                        CHECK_NEG(ashmem_broker_info(b, name, &ri), ENOENT);
                }
                {
                        ashmem_region_info *v = NULL;
                        size_t n = 0;
                        CHECK_EQ(ashmem_broker_list(b, &v, &n), 0);
                        CHECK_EQ(n, 1);
                        CHECK_EQ(strcmp(v[0].name, order[k][0]), 0);
                        free(v);
                }
                CHECK_EQ(ashmem_broker_unshare(b, order[k][0]), 0);
        }
        ashmem_broker_close(b);
        stop_broker();
}

TEST(a_reload_keeps_the_slices_that_sort_before_their_name)
{
        ashmem_broker *b;
        ashmem_region_info ri;
        size_t n = 9;
        int fd;

        start_broker();
        b = conn();
        fd = create(b, "whole", 4 * ps(), 0600);
        close(fd);
        /* slices before and after "whole", a slice of a slice before both */
        CHECK_EQ(ashmem_broker_slice(b, "part", "whole", 0, 2 * ps(), 0600, &ri), 0);
        CHECK_EQ(ashmem_broker_slice(b, "apart", "part", 0, ps(), 0600, &ri), 0);
        CHECK_EQ(ashmem_broker_slice(b, "zpart", "whole", ps(), ps(), 0600, &ri), 0);
        fd = create(b, "other", ps(), 0600);
        close(fd);
        CHECK_EQ(ashmem_broker_slice(b, "another", "other", 0, ps(), 0600, &ri), 0);
        reload_broker(b);
        CHECK_EQ(ashmem_broker_unshare(b, "whole"), 0);
        if (info_errno(b, "part") != -ENOENT || info_errno(b, "apart") != -ENOENT ||
            info_errno(b, "zpart") != -ENOENT)
                t_fail(__FILE__, __LINE__, "slices of \"whole\" outlived it after a reload "
                       "(part %d, apart %d, zpart %d)", info_errno(b, "part"),
                       info_errno(b, "apart"), info_errno(b, "zpart"));
        /* the other name and its slice stay; a slice goes alone */
        CHECK_EQ(info_errno(b, "other"), 0);
        CHECK_EQ(ashmem_broker_unshare(b, "another"), 0);
        CHECK_EQ(info_errno(b, "other"), 0);
        /* the spelling again, on one region: a slice "whole" of "part" */
        fd = create(b, "whole", 2 * ps(), 0600);
        close(fd);
        CHECK_EQ(ashmem_broker_slice(b, "part", "whole", 0, ps(), 0600, &ri), 0);
        reload_broker(b);
        CHECK_EQ(ashmem_broker_unshare(b, "whole"), 0);
        CHECK_NEG(ashmem_broker_slice(b, "whole", "part", 0, ps(), 0600, &ri), ENOENT);
        CHECK_NEG(ashmem_broker_unshare(b, "part"), ENOENT);
        CHECK_EQ(ashmem_broker_unshare(b, "other"), 0);
        {
                ashmem_region_info *all = NULL;
                CHECK_EQ(ashmem_broker_list(b, &all, &n), 0);
                free(all);
        }
        CHECK_EQ(n, 0);
        ashmem_broker_close(b);
        stop_broker();
}

/* ------------------------------------------------------------ the closer's per-user shares */

/* nobody's lane is stuck and it sends 1,265 cheap descriptors (a pipe's):
 * its lane takes its share of --max-closing, its park all of
 * --max-parked (8, below the share's floor of 16), the rest is closed on
 * the event loop. Then 70 descriptors whose close may wait (/dev/ptmx),
 * with no lane room left to it: 16 wait on the deferred list for room,
 * the others are closed on the loop a few a turn. Accepting is never
 * paused for that: another user's stats is answered within a second
 * throughout, and all goes once the stuck close ends. */
TEST(one_user_at_every_share_of_the_closer_never_pauses_accepting)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-closing", "64",
                                     "--max-parked", "8", NULL };
        struct flood f = { .dups = 5 * 253 };
        struct stuck_lane l;
        int pt;

        stuck_lane_flooded(&l, args, &f);
        stats_answered_promptly("lanes and parks at nobody's shares");
        pt = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        CHECK(pt >= 0);
        nobody_sends_dups(l.s[0], pt, 70);
        close(pt);
        for (int i = 0; i < 8; i++) {
                stats_answered_promptly("70 descriptors that may wait, no lane room");
                nap(100);
        }
        CHECK_EQ(closer_field("uid_share_closing"), 16);
        CHECK_EQ(closer_field("closing"), 16);
        CHECK_EQ(closer_field("parked"), 8);
        for (long long end = mono_ms() + WAIT_MS; closer_field("deferred_waiting") > 16; nap(20))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "%lld descriptors that may wait deferred",
                               closer_field("deferred_waiting"));
        CHECK_EQ(closer_field("deferred_waiting"), 16);
        CHECK_EQ(closer_field("closed_waiting_on_loop"), 70 - 16);
        CHECK_EQ(closer_field("accept_paused"), 0);
        CHECK_EQ(closer_field("closing"), 16);
        stuck_lane_ends(&l);
}

/* In a user and network namespace of nobody's own: 253 AF_PACKET sockets
 * sent on to, or nothing (a message without descriptors) when the system
 * lets nobody make no such namespace. */
static void nobody_packet_sockets(void *arg)
{
        int to = *(int *)arg, f[253];

        become_nobody();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
                raw_sends(to, "n", NULL, 0);
                _exit(0);
        }
        for (int i = 0; i < 253; i++) {
                f[i] = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003));
                CHECK(f[i] >= 0);
        }
        raw_sends(to, "p", f, 253);
        _exit(0);
}

/* nobody's lane is stuck, its shares full (as above), and it sends 253
 * AF_PACKET sockets, whose close waits some 13 ms each for the network
 * stack: none is closed on the event loop at once (3 s), so another
 * user's stats is answered within a second throughout. */
TEST(sockets_whose_close_waits_never_stall_the_event_loop)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-closing", "64",
                                     "--max-parked", "8", NULL };
        union { char buf[CMSG_SPACE(sizeof(int) * 253)]; struct cmsghdr a; } u;
        char c;
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *h;
        struct flood f = { .dups = 5 * 253 };
        struct stuck_lane l;
        int sv[2], pk[253];

        CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        CHILD_OK(nobody_packet_sockets, &sv[1]);
        close(sv[1]);
        CHECK(recvmsg(sv[0], &m, MSG_CMSG_CLOEXEC) == 1);
        close(sv[0]);
        h = CMSG_FIRSTHDR(&m);
        if (c != 'p' || !h || h->cmsg_len != CMSG_LEN(sizeof(int) * 253)) {
                printf("    skipped: nobody cannot make a user and network namespace\n");
                return;
        }
        memcpy(pk, CMSG_DATA(h), sizeof(pk));
        stuck_lane_flooded(&l, args, &f);
        raw_sends(l.s[0], "{\"v\":1,\"op\":\"stats\"}", pk, 253);
        for (int i = 0; i < 253; i++)
                close(pk[i]);
        for (int i = 0; i < 10; i++) {
                stats_answered_promptly("253 AF_PACKET sockets to close");
                nap(100);
        }
        for (long long end = mono_ms() + WAIT_MS; closer_field("deferred_waiting") > 16; nap(20))
                if (mono_ms() > end)
                        t_fail(__FILE__, __LINE__, "%lld descriptors that may wait deferred",
                               closer_field("deferred_waiting"));
        CHECK_EQ(closer_field("closed_waiting_on_loop"), 253 - 16);
        {
                char buf[65536];
                raw_recv(l.s[0], buf, sizeof(buf), NULL);
                CHECK(strstr(buf, "\"errno\":\"EINVAL\""));
        }
        stuck_lane_ends(&l);
}

/* nobody's lane is stuck and it floods with refused connections carrying
 * a descriptor: it parks at most its share of --max-parked (an eighth:
 * 32 of 256) and queues at most its share of --max-closing (32 of 256);
 * another user, whose lane is stuck too, still finds room to park. */
TEST(one_user_holds_at_most_its_share_of_the_closer)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "2",
                                     "--max-closing", "256", "--max-parked", "256", NULL };
        struct flood f = { 65534, 300, 0, 0 }, g = { 20001, 300, 0, 0 };
        struct stuck_lane l;
        int stuck[1], peers[1];

        stuck_lane_flooded(&l, args, &f);
        CHECK_EQ(stats_field(65534, "parked"), 32);
        CHECK_EQ(closer_field("uid_share_closing"), 32);
        CHECK_EQ(closer_field("uid_share_parked"), 32);
        CHECK(stats_closing(65534) <= 32);
        CHECK(closer_field("park_limit") > 0);
        CHECK(closer_field("closing") <= 32);
        stats_answered_promptly("nobody at its shares");
        uids_stuck(20001, 1, stuck, peers);
        CHILD_OK(flood_with_descriptors, &g);
        CHECK(stats_field(20001, "parked") > 0);
        CHECK(stats_field(20001, "parked") <= 32);
        CHECK(closer_field("parked") <= 64);
        uids_unstuck(1, stuck, peers);
        stuck_lane_ends(&l);
}

/* ------------------------------------------------------------ many users */

/* A hello on fd: its reply. */
static void hello_on(int fd, char *buf, size_t len)
{
        raw_sends(fd, "{\"v\":1,\"op\":\"hello\"}", NULL, 0);
        raw_recv(fd, buf, len, NULL);
}

/* A broker that has seen 400 users (its index of users grown and filled
 * again six times on the way) keeps each one's books apart: with one
 * connection a user, each user's second is refused naming the limit, its
 * first still served, and the stats count one connection for each. */
TEST(many_users_keep_their_books_apart)
{
        const char *const args[] = { "--socket-mode", "0666", "--max-uid-connections", "1",
                                     NULL };
        enum { USERS = 400, FIRST = 30000 };
        static int first[USERS];
        char buf[4096];

        start_broker_args(args);
        for (int i = 0; i < USERS; i++) {
                first[i] = uid_connection(FIRST + (uid_t)i);
                hello_on(first[i], buf, sizeof(buf));
                if (!strstr(buf, "\"ok\":true"))
                        t_fail(__FILE__, __LINE__, "uid %d's first connection: %s", FIRST + i,
                               buf);
        }
        for (int i = USERS - 1; i >= 0; i -= 3) {
                int s = uid_connection(FIRST + (uid_t)i);
                raw_recv(s, buf, sizeof(buf), NULL);
                if (!strstr(buf, "\"errno\":\"EMFILE\"") || !strstr(buf, "--max-uid-connections"))
                        t_fail(__FILE__, __LINE__, "uid %d's second connection: %s", FIRST + i,
                               buf);
                close(s);
                hello_on(first[i], buf, sizeof(buf));
                CHECK(strstr(buf, "\"ok\":true"));
        }
        /* (root's stats lists the first 256 users) */
        for (int i = 0; i < 240; i += 37)
                CHECK_EQ(stats_field(FIRST + (unsigned)i, "connections"), 1);
        /* a user's own lists that user alone, the last of them too */
        for (int i = USERS - 1; i >= 0; i -= 131) {
                char own[64];
                raw_sends(first[i], "{\"v\":1,\"op\":\"stats\"}", NULL, 0);
                raw_recv(first[i], buf, sizeof(buf), NULL);
                snprintf(own, sizeof(own), "\"uids\":[{\"uid\":%d,\"connections\":1,", FIRST + i);
                if (!strstr(buf, own) || strstr(strstr(buf, own) + strlen(own), "{\"uid\":"))
                        t_fail(__FILE__, __LINE__, "uid %d's stats: %s", FIRST + i, buf);
        }
        for (int i = 0; i < USERS; i++)
                close(first[i]);
        stop_broker();
}
