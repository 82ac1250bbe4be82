/* SPDX-License-Identifier: MIT */
/*
 * Reload: the running broker re-executes its binary (which an upgrade may
 * have replaced) and hands everything over to the new image, which goes on
 * serving the same clients on the same socket with the same regions.
 *
 * The old image (reload_run, on SIGHUP or the "reload" request):
 *   1. finishes what is in flight: purge jobs (5 s at most, else the
 *      reload is refused: EBUSY) and replies still owed (1 s, then the
 *      rest travels with the state);
 *   2. writes its state into a memfd and seals it (docs/reload.md has
 *      the format);
 *   3. forks; the child clears close-on-exec on exactly the descriptors
 *      the state names, the state's memfd and one end of a socketpair, and
 *      executes the binary by its path (/proc/self/exe read as a path, its
 *      " (deleted)" suffix dropped: after an upgrade the path holds the new
 *      binary, which is the point; the old file is never executed) with the
 *      same arguments (/proc/self/cmdline) and ASHMEM_BROKER_RELOAD=STATE,CHANNEL;
 *   4. waits (10 s at most) on the socketpair for "accepted" or
 *      "refused: WHY". On "accepted" it answers "go", tells the service
 *      manager the new main pid, and exits at once, closing nothing a
 *      client could notice (every descriptor it shares with the new image
 *      stays open there). Otherwise it kills and reaps the child and goes
 *      on serving as if nothing happened; the "reload" request gets the
 *      reason.
 *
 * The new image (reload_adopt, reload_finish, from broker_setup):
 *   validates the state (the old image is trusted, but a state that is
 *   corrupt, foreign, of an unknown version or naming a descriptor that is
 *   not what it claims is refused, with the reason sent back), rebuilds
 *   regions, names and connections, says "accepted", and serves only after
 *   "go". Refusing, or never getting "go", it exits at once without
 *   touching a client's connection (the old image still holds them all).
 *
 * A request is never lost: the old image reads nothing once the reload has
 * started, so every request not yet read waits in its socket for the new
 * image; a reply owed is sent before or travels with the state.
 *
 * Test hook: ASHMEM_BROKER_RELOAD_TEST_VERSION=N makes the new image
 * accept state version N only (so that a refused format can be tested);
 * it is read nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "ashmem/ashmem.h"
#include "drivers/memfd/memfd.h"
#include "internal.h"

#define RL_VERSION 1
#define RL_MAGIC "ASHMEMRS"
#define RL_END "ASHMEMRE"
#define RL_MAX_STATE (1ull << 30)       /* bytes: a bigger state is refused */
#define RL_JOB_WAIT_MS 5000
#define RL_FLUSH_MS 1000
#define RL_ANSWER_MS 10000
#define RL_ENV "ASHMEM_BROKER_RELOAD"
#define RL_TEST_ENV "ASHMEM_BROKER_RELOAD_TEST_VERSION"

extern char **environ;

/* ---------------------------------------------------------------- writing */

struct rl_w {
        unsigned char *p;
        size_t len, cap;
        int oom;
};

static void w_bytes(struct rl_w *w, const void *s, size_t n)
{
        if (w->oom)
                return;
        if (w->len + n > w->cap) {
                size_t cap = w->cap ? w->cap : 4096;
                unsigned char *p;
                while (cap < w->len + n)
                        cap *= 2;
                p = realloc(w->p, cap);
                if (!p) {
                        w->oom = 1;
                        return;
                }
                w->p = p;
                w->cap = cap;
        }
        memcpy(w->p + w->len, s, n);
        w->len += n;
}

static void w_le(struct rl_w *w, uint64_t v, int n)
{
        unsigned char b[8];

        for (int i = 0; i < n; i++)
                b[i] = (unsigned char)(v >> (8 * i));
        w_bytes(w, b, (size_t)n);
}

#define w_u8(w, v)  w_le(w, (uint64_t)(v), 1)
#define w_u16(w, v) w_le(w, (uint64_t)(v), 2)
#define w_u32(w, v) w_le(w, (uint64_t)(v), 4)
#define w_u64(w, v) w_le(w, (uint64_t)(v), 8)
#define w_i32(w, v) w_le(w, (uint64_t)(uint32_t)(int32_t)(v), 4)

/* ---------------------------------------------------------------- reading */

struct rl_r {
        const unsigned char *p;
        size_t len, off;
        char err[160];
};

static int r_fail(struct rl_r *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int r_fail(struct rl_r *r, const char *fmt, ...)
{
        va_list ap;

        if (!r->err[0]) {
                va_start(ap, fmt);
                vsnprintf(r->err, sizeof(r->err), fmt, ap);
                va_end(ap);
        }
        return -1;
}

static uint64_t r_le(struct rl_r *r, int n)
{
        uint64_t v = 0;

        if (r->err[0])
                return 0;
        if (r->len - r->off < (size_t)n) {
                r_fail(r, "truncated at byte %zu", r->off);
                return 0;
        }
        for (int i = 0; i < n; i++)
                v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
        r->off += (size_t)n;
        return v;
}

#define r_u8(r)  ((unsigned)r_le(r, 1))
#define r_u16(r) ((unsigned)r_le(r, 2))
#define r_u32(r) ((uint32_t)r_le(r, 4))
#define r_u64(r) r_le(r, 8)
#define r_i32(r) ((int32_t)(uint32_t)r_le(r, 4))

static const unsigned char *r_bytes(struct rl_r *r, size_t n)
{
        const unsigned char *s;

        if (r->err[0])
                return NULL;
        if (r->len - r->off < n) {
                r_fail(r, "truncated at byte %zu", r->off);
                return NULL;
        }
        s = r->p + r->off;
        r->off += n;
        return s;
}

/* A string of n bytes (no NUL inside), as a new C string; NULL on error. */
static char *r_str(struct rl_r *r, size_t n, const char *what)
{
        const unsigned char *s = r_bytes(r, n);
        char *c;

        if (!s)
                return NULL;
        if (memchr(s, 0, n)) {
                r_fail(r, "%s holds a NUL byte", what);
                return NULL;
        }
        c = malloc(n + 1);
        if (!c) {
                r_fail(r, "out of memory");
                return NULL;
        }
        memcpy(c, s, n);
        c[n] = 0;
        return c;
}

/* ---------------------------------------------------------------- the old image */

/* The descriptors the state names (each cleared of close-on-exec in the
 * child), collected while writing. */
struct rl_fds {
        int *v;
        size_t n, cap;
        int oom;
};

static void fds_add(struct rl_fds *f, int fd)
{
        if (fd < 0 || f->oom)
                return;
        if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 64;
                int *v = realloc(f->v, cap * sizeof(*v));
                if (!v) {
                        f->oom = 1;
                        return;
                }
                f->v = v;
                f->cap = cap;
        }
        f->v[f->n++] = fd;
}

/* A region and its number in the state. */
struct rl_ix {
        struct held_region *r;
        uint32_t i;
};

static int ix_cmp(const void *a, const void *b)
{
        const struct held_region *x = ((const struct rl_ix *)a)->r, *y = ((const struct rl_ix *)b)->r;
        return x < y ? -1 : x > y;
}

static void write_state(struct broker *b, struct conn *owed, struct rl_w *w, struct rl_fds *f)
{
        struct name_pos p = { 0, 0 };
        struct entry *e;
        size_t nconns = 0, nregions = 0, lenoff, at;
        unsigned long long walk;
        size_t plen = strlen(b->path);

        w_bytes(w, RL_MAGIC, 8);
        w_u32(w, RL_VERSION);
        w_u32(w, 0);
        lenoff = w->len;
        w_u64(w, 0);                    /* the total, filled in below */
        /* the broker */
        w_u64(w, (uint64_t)(int64_t)b->started);
        w_u64(w, b->n.requests);
        w_u64(w, b->n.errors);
        w_u64(w, b->n.attaches);
        w_u64(w, b->n.purges);
        w_u64(w, b->n.pages_purged);
        w_u64(w, b->n.dropped);
        w_u64(w, b->n.connections_total);
        w_u64(w, b->n.purge_skipped);
        /* the socket and the lock */
        w_i32(w, b->lfd);
        w_i32(w, b->lockfd);
        w_u8(w, service_managed_socket());
        w_u8(w, b->sock_ino != 0);
        w_u64(w, (uint64_t)b->sock_dev);
        w_u64(w, (uint64_t)b->sock_ino);
        w_u16(w, plen);
        w_bytes(w, b->path, plen);
        fds_add(f, b->lfd);
        fds_add(f, b->lockfd);
        /* the connections (live ones), numbered from 0 in list order */
        {
                int32_t idx = -1, i = 0;
                for (struct conn *c = b->conns; c; c = c->next)
                        if (!c->dead) {
                                if (c == owed)
                                        idx = i;
                                i++;
                                nconns++;
                        }
                w_i32(w, idx);
        }
        w_u32(w, nconns);
        for (struct conn *c = b->conns; c; c = c->next) {
                long long idle = am_mono_ms() - c->last_ms;
                if (c->dead)
                        continue;
                w_i32(w, c->fd);
                w_u64(w, (uint64_t)(idle > 0 ? idle : 0));
                w_u32(w, c->out ? c->outlen : 0);
                if (c->out)
                        w_bytes(w, c->out, c->outlen);
                w_u8(w, c->out ? c->noutfds : 0);
                for (int k = 0; c->out && k < c->noutfds; k++) {
                        w_i32(w, c->outfds[k]);
                        fds_add(f, c->outfds[k]);
                }
                fds_add(f, c->fd);
        }
        /* the regions, numbered from 0 in the order the names first meet
         * them; a name's region by its number (found by address in a
         * sorted copy) */
        {
                struct rl_ix *ix = calloc(b->regions.n ? b->regions.n : 1, sizeof(*ix));
                if (!ix) {
                        w->oom = 1;
                        return;
                }
                at = w->len;
                w_u32(w, 0);
                walk = names_walk(b);
                while ((e = name_next(b, &p))) {
                        struct held_region *r = e->r;
                        if (r->seen == walk || nregions == b->regions.n)
                                continue;
                        r->seen = walk;
                        w_i32(w, r->fd);
                        w_i32(w, r->ctl);
                        w_u64(w, r->size);
                        w_u8(w, (r->fd_charged ? 1 : 0) | (r->made ? 2 : 0));
                        w_u32(w, (uint32_t)r->fd_uid);
                        fds_add(f, r->fd);
                        fds_add(f, r->ctl);
                        ix[nregions].r = r;
                        ix[nregions].i = (uint32_t)nregions;
                        nregions++;
                }
                if (!w->oom)
                        for (int i = 0; i < 4; i++)
                                w->p[at + (size_t)i] = (unsigned char)(nregions >> (8 * i));
                qsort(ix, nregions, sizeof(*ix), ix_cmp);
                w_u32(w, b->nnames);
                p = (struct name_pos){ 0, 0 };
                while ((e = name_next(b, &p))) {
                        struct rl_ix key = { .r = e->r }, *hit;
                        size_t nl = strlen(e->name), ol = e->of ? strlen(e->of) : 0;
                        int32_t o = -1, i = 0;

                        hit = bsearch(&key, ix, nregions, sizeof(*ix), ix_cmp);
                        if (!hit) {             /* cannot be: every region has a name */
                                w->oom = 1;
                                break;
                        }
                        w_u16(w, nl);
                        w_bytes(w, e->name, nl);
                        w_u32(w, hit->i);
                        w_u8(w, (e->ranged ? 1 : 0) | (e->of ? 2 : 0));
                        if (e->of) {
                                w_u16(w, ol);
                                w_bytes(w, e->of, ol);
                        }
                        w_u64(w, e->ranged ? e->offset : 0);
                        w_u64(w, e->ranged ? e->length : 0);
                        w_u32(w, (uint32_t)e->uid);
                        w_u32(w, (uint32_t)e->gid);
                        w_u32(w, e->mode);
                        w_u64(w, (uint64_t)(int64_t)e->created);
                        w_u64(w, e->attaches);
                        for (struct conn *c = b->conns; e->owner && c; c = c->next) {
                                if (c->dead)
                                        continue;
                                if (c == e->owner) {
                                        o = i;
                                        break;
                                }
                                i++;
                        }
                        w_i32(w, o);
                }
                free(ix);
        }
        w_bytes(w, RL_END, 8);
        if (!w->oom)
                for (int i = 0; i < 8; i++)
                        w->p[lenoff + (size_t)i] = (unsigned char)((uint64_t)w->len >> (8 * i));
}

/* The state into a sealed memfd; the descriptor or -errno. */
static int state_memfd(const struct rl_w *w)
{
        int fd = memfd_create("ashmem-broker-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        size_t off = 0;

        if (fd < 0)
                return -errno;
        while (off < w->len) {
                ssize_t n = write(fd, w->p + off, w->len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? errno : EIO;
                        close(fd);
                        return -e;
                }
                off += (size_t)n;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

/* The binary's path (not the descriptor of the file that runs now: after
 * an upgrade the path names the new binary). */
static int exe_path(char *buf, size_t len)
{
        ssize_t n = readlink("/proc/self/exe", buf, len - 1);
        static const char del[] = " (deleted)";

        if (n < 0)
                return -errno;
        if ((size_t)n >= len - 1)
                return -ENAMETOOLONG;
        buf[n] = 0;
        if ((size_t)n > sizeof(del) - 1 && strcmp(buf + n - (sizeof(del) - 1), del) == 0)
                buf[n - (ssize_t)(sizeof(del) - 1)] = 0;
        return 0;
}

/* This process's arguments, split (argv[n] = NULL); the buffer holds them. */
static int own_args(char *buf, size_t len, char **argv, int max)
{
        int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC), n = 0;
        size_t got = 0;

        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t k = read(fd, buf + got, len - 1 - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                if (k == 0)
                        break;
                got += (size_t)k;
                if (got == len - 1) {
                        close(fd);
                        return -E2BIG;
                }
        }
        close(fd);
        if (got == 0 || buf[got - 1] != 0)
                return -EINVAL;
        for (size_t i = 0; i < got; i += strlen(buf + i) + 1) {
                if (n == max - 1)
                        return -E2BIG;  /* never a shorter command line */
                argv[n++] = buf + i;
        }
        argv[n] = NULL;
        return n;
}

/* Wait for what the child says, until deadline: its message's length, or
 * -errno (-EPIPE: it closed the channel without a word). */
static ssize_t hear(int ch, char *buf, size_t len, long long deadline)
{
        for (;;) {
                ssize_t n;
                int r = am_wait_fd(ch, POLLIN, deadline);
                if (r < 0)
                        return r;
                n = recv(ch, buf, len - 1, MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EPIPE;
                buf[n] = 0;
                return n;
        }
}

static int reloading;

/* Reload (SIGHUP, or the "reload" request of owed). Returns only when the
 * old image goes on serving: -errno with the reason in why. */
int reload_run(struct broker *b, struct conn *owed, char *why, size_t whylen)
{
        struct rl_w w = { 0 };
        struct rl_fds f = { 0 };
        char exe[PATH_MAX], args[65536], *argv[1024], env[64], msg[256];
        char **envp = NULL;
        long long deadline;
        int sv[2] = { -1, -1 }, st = -1, r = 0, nenv = 0;
        pid_t pid;
        ssize_t n;

#ifdef RELOAD_DISABLED
        /* a build that must never execute itself again (the fuzzing
         * harness, whose binary is no broker) */
        (void)owed;
        return snprintf(why, whylen, "reload is not available in this build"), -EOPNOTSUPP;
#endif
        if (reloading || b->stopping)
                return snprintf(why, whylen, "a reload or a stop is under way"), -EBUSY;
        reloading = 1;
        blog(b, 1, "reloading");
        service_reloading(b);
        /* 1. what is in flight */
        if (purge_drain(b, am_mono_ms() + RL_JOB_WAIT_MS) > 0) {
                snprintf(why, whylen, "a purge is still running after %d s", RL_JOB_WAIT_MS / 1000);
                r = -EBUSY;
                goto fail;
        }
        deadline = am_mono_ms() + RL_FLUSH_MS;
        for (struct conn *c = b->conns; c; c = c->next)
                while (c->out && !c->dead && am_wait_fd(c->fd, POLLOUT, deadline) == 0)
                        conn_flush(b, c);
        /* 2. the state */
        write_state(b, owed, &w, &f);
        if (w.oom || f.oom) {
                snprintf(why, whylen, "out of memory writing the state");
                r = -ENOMEM;
                goto fail;
        }
        st = state_memfd(&w);
        if (st < 0) {
                r = st;
                snprintf(why, whylen, "the state's memfd: %s", strerror(-r));
                goto fail;
        }
        /* 3. the new image */
        if ((r = exe_path(exe, sizeof(exe))) < 0) {
                snprintf(why, whylen, "/proc/self/exe: %s", strerror(-r));
                goto fail;
        }
        if ((r = own_args(args, sizeof(args), argv, (int)(sizeof(argv) / sizeof(argv[0])))) < 0) {
                snprintf(why, whylen, "/proc/self/cmdline: %s", strerror(-r));
                goto fail;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                snprintf(why, whylen, "socketpair: %s", strerror(-r));
                goto fail;
        }
        snprintf(env, sizeof(env), RL_ENV "=%d,%d", st, sv[1]);
        for (char **e = environ; *e; e++)
                nenv++;
        envp = calloc((size_t)nenv + 2, sizeof(*envp));
        if (!envp) {
                r = -ENOMEM;
                snprintf(why, whylen, "out of memory");
                goto fail;
        }
        nenv = 0;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, RL_ENV "=", sizeof(RL_ENV)) != 0)
                        envp[nenv++] = *e;
        envp[nenv++] = env;
        envp[nenv] = NULL;
        fflush(stderr);
        /* _Fork(): no fork handlers. The child only executes the new
         * image, and libashmem's handlers would make a control block in
         * this image for every region that has none (and leave the rest
         * unable to get one here, should the new image refuse) */
        pid = _Fork();
        if (pid < 0) {
                r = -errno;
                snprintf(why, whylen, "fork: %s", strerror(-r));
                goto fail;
        }
        if (pid == 0) {
                /* only async-signal-safe calls from here to execve */
                static const char nope[] = "refused: cannot execute the broker's binary";
                for (size_t i = 0; i < f.n; i++)
                        fcntl(f.v[i], F_SETFD, 0);
                fcntl(st, F_SETFD, 0);
                fcntl(sv[1], F_SETFD, 0);
                execve(exe, argv, envp);
                (void)!write(sv[1], nope, sizeof(nope) - 1);
                _exit(127);
        }
        close(sv[1]);
        sv[1] = -1;
        close(st);
        st = -1;
        /* 4. its answer */
        n = hear(sv[0], msg, sizeof(msg), am_mono_ms() + RL_ANSWER_MS);
        if (n > 0 && strcmp(msg, "accepted") == 0) {
                static const char go[] = "go";
                if (send(sv[0], go, sizeof(go) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(go) - 1)) {
                        sigset_t pend;
                        /* committed: the new image serves from now on */
                        service_main_pid(b, pid);
                        /* a stop asked for during the reload waits,
                         * unread, in this image's signalfd: it is the new
                         * image's to carry out */
                        if (sigpending(&pend) == 0) {
                                if (sigismember(&pend, SIGTERM) == 1)
                                        (void)kill(pid, SIGTERM);
                                if (sigismember(&pend, SIGINT) == 1)
                                        (void)kill(pid, SIGINT);
                        }
                        blog(b, 1, "reloaded: pid %d serves from now on", (int)pid);
                        fflush(stderr);
                        _exit(0);
                }
                n = -errno;
        }
        if (n > 0)
                snprintf(why, whylen, "the new image %s", strncmp(msg, "refused: ", 9) == 0 ?
                         msg : "answered nonsense");
        else
                snprintf(why, whylen, "the new image %s", n == -ETIMEDOUT ?
                         "did not answer within 10 s" : "exited without an answer");
        r = n > 0 ? -EPROTO : n == -ETIMEDOUT ? -ETIMEDOUT : -ECHILD;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
fail:
        blog(b, 0, "reload failed: %s; this broker goes on serving", why);
        service_ready(b);
        if (st >= 0)
                close(st);
        if (sv[0] >= 0)
                close(sv[0]);
        if (sv[1] >= 0)
                close(sv[1]);
        free(envp);
        free(w.p);
        free(f.v);
        reloading = 0;
        return r;
}

/* The "reload" request: root or the broker's own user only. */
int op_reload(struct broker *b, struct conn *c, struct req *req,
              int *fds, int nfds, struct reply *rep)
{
        int r;

        (void)req; (void)fds; (void)nfds;
        if (c->uid != 0 && c->uid != geteuid())
                return FAIL(rep, EPERM, "only root or uid %u may reload the broker",
                            (unsigned)geteuid());
        r = reload_run(b, c, rep->err, sizeof(rep->err));
        return r;               /* only on failure: success exits */
}

/* ---------------------------------------------------------------- the new image */

static int rl_chan = -1;                /* the channel to the old image */
static int rl_state = -1;
static unsigned char *rl_buf;
static size_t rl_len;
static struct conn *rl_owed;
static pid_t rl_oldpid;

/* Refuse the state: tell the old image why, and go without touching a
 * thing the clients could notice. */
static void __attribute__((noreturn)) refuse(struct broker *b, const char *why)
{
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "refused: %s", why);

        blog(b, 0, "refusing the reload state: %s", why);
        if (rl_chan >= 0)
                (void)!send(rl_chan, msg, (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1),
                            MSG_NOSIGNAL);
        fflush(stderr);
        _exit(1);
}

/* Descriptors named by the state: each once, and open. */
struct rl_seen {
        int *v;
        size_t n, cap;
};

static int seen_add(struct rl_seen *s, int fd, struct rl_r *r, const char *what)
{
        if (fd < 3 || fcntl(fd, F_GETFD) < 0)
                return r_fail(r, "%s: descriptor %d is not open", what, fd);
        if (fd == rl_chan || fd == rl_state)
                return r_fail(r, "%s: descriptor %d is the reload's own", what, fd);
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i] == fd)
                        return r_fail(r, "%s: descriptor %d named twice", what, fd);
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                int *v = realloc(s->v, cap * sizeof(*v));
                if (!v)
                        return r_fail(r, "out of memory");
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = fd;
        return 0;
}

/* Is there a reload state to adopt (ASHMEM_BROKER_RELOAD)? 0: no. 1: yes,
 * and its socket and lock are b's now (the rest comes in reload_finish).
 * A state that cannot be read is refused (this does not return). */
int reload_adopt(struct broker *b)
{
        const char *v = getenv(RL_ENV);
        struct stat st;
        int seals, a, c;
        char x;

        if (!v)
                return 0;
        if (sscanf(v, "%d,%d%c", &a, &c, &x) != 2 || a < 3 || c < 3 || a == c) {
                unsetenv(RL_ENV);
                refuse(b, "malformed " RL_ENV);
        }
        unsetenv(RL_ENV);
        rl_oldpid = getppid();
        rl_state = a;
        rl_chan = c;
        if (fcntl(rl_chan, F_SETFD, FD_CLOEXEC) < 0)
                refuse(b, "the channel descriptor is not open");
        if (fcntl(rl_state, F_SETFD, FD_CLOEXEC) < 0 || fstat(rl_state, &st) < 0 ||
            !S_ISREG(st.st_mode))
                refuse(b, "the state descriptor is not a memfd");
        seals = fcntl(rl_state, F_GET_SEALS);
        if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) !=
            (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL))
                refuse(b, "the state memfd is not sealed");
        if (st.st_size < 28 || (unsigned long long)st.st_size > RL_MAX_STATE)
                refuse(b, "the state's size is out of bounds");
        rl_len = (size_t)st.st_size;
        rl_buf = malloc(rl_len);
        if (!rl_buf)
                refuse(b, "out of memory");
        for (size_t off = 0; off < rl_len;) {
                ssize_t n = pread(rl_state, rl_buf + off, rl_len - off, (off_t)off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        refuse(b, "cannot read the state");
                off += (size_t)n;
        }
        close(rl_state);
        rl_state = -1;
        return 1;
}

/* Is fd an AF_UNIX socket of type, listening or not, bound to path (plen
 * bytes; NULL: anywhere)? 1, 0 or -errno. (libsystemd has this check, but
 * the broker loads libsystemd only under a service manager, and a reload
 * checks what it inherits with or without one.) */
static int socket_is(int fd, int type, int listening, const char *path, size_t plen)
{
        struct sockaddr_un a;
        socklen_t len = sizeof(int), alen = sizeof(a);
        int v;

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
                return -errno;
        if (v != type)
                return 0;
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
                return -errno;
        if (!v != !listening)
                return 0;
        memset(&a, 0, sizeof(a));
        if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
                return -errno;
        if (a.sun_family != AF_UNIX)
                return 0;
        if (!path)
                return 1;
        return alen >= offsetof(struct sockaddr_un, sun_path) + plen &&
               plen <= sizeof(a.sun_path) && memcmp(a.sun_path, path, plen) == 0 &&
               (plen == sizeof(a.sun_path) || a.sun_path[plen] == 0);
}


static struct rl_r rl_rd;

/* The header, the counters, the socket and the lock (what broker_setup
 * needs before its own part). */
int reload_adopt_socket(struct broker *b)
{
        struct rl_r *r = &rl_rd;
        const char *want = getenv(RL_TEST_ENV);
        unsigned long long known = RL_VERSION;
        uint32_t ver, flags, plen;
        uint64_t total;
        int activated, owns;

        memset(r, 0, sizeof(*r));
        r->p = rl_buf;
        r->len = rl_len;
        if (want) {
                char *end;
                known = strtoull(want, &end, 10);
                if (*end || !*want)
                        refuse(b, RL_TEST_ENV " is not a number");
        }
        if (rl_len < 28 || memcmp(r_bytes(r, 8), RL_MAGIC, 8) != 0)
                refuse(b, "not a broker state (bad magic)");
        ver = r_u32(r);
        if (ver != known) {
                char m[96];
                snprintf(m, sizeof(m), "state format version %u is not %llu, the one this broker reads",
                         ver, known);
                refuse(b, m);
        }
        flags = r_u32(r);
        total = r_u64(r);
        if (flags != 0)
                refuse(b, "unknown flags in the state's header");
        if (total != rl_len)
                refuse(b, "the state's length does not match its header");
        if (rl_len < 16 || memcmp(rl_buf + rl_len - 8, RL_END, 8) != 0)
                refuse(b, "the state's end mark is missing");
        r->len = rl_len - 8;
        b->started = (time_t)(int64_t)r_u64(r);
        b->n.requests = r_u64(r);
        b->n.errors = r_u64(r);
        b->n.attaches = r_u64(r);
        b->n.purges = r_u64(r);
        b->n.pages_purged = r_u64(r);
        b->n.dropped = r_u64(r);
        b->n.connections_total = r_u64(r);
        b->n.purge_skipped = r_u64(r);
        b->lfd = r_i32(r);
        b->lockfd = r_i32(r);
        activated = (int)r_u8(r);
        owns = (int)r_u8(r);
        b->sock_dev = (dev_t)r_u64(r);
        b->sock_ino = (ino_t)r_u64(r);
        plen = r_u16(r);
        if (r->err[0])
                refuse(b, r->err);
        if (activated > 1 || owns > 1 || plen == 0 || plen >= sizeof(b->path))
                refuse(b, "bad socket record");
        {
                char *path = r_str(r, plen, "the socket path");
                if (!path)
                        refuse(b, r->err);
                memcpy(b->path, path, plen + 1);
                free(path);
        }
        if (!owns)
                b->sock_ino = 0;
        if (b->lfd < 3 || socket_is(b->lfd, SOCK_SEQPACKET, 1, NULL, 0) <= 0)
                refuse(b, "the listening descriptor is not a listening SOCK_SEQPACKET socket");
        /* and it is bound where the state says: the path is what the
         * broker reports, and removes when it made it */
        if (socket_is(b->lfd, SOCK_SEQPACKET, 1, b->path, plen) <= 0)
                refuse(b, "the listening socket is not bound to the state's path");
        {
                struct stat st;
                if (b->lockfd < 3 || b->lockfd == b->lfd || fstat(b->lockfd, &st) < 0 ||
                    !S_ISREG(st.st_mode))
                        refuse(b, "the lock descriptor is not a file");
        }
        if (fcntl(b->lfd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(b->lockfd, F_SETFD, FD_CLOEXEC) < 0)
                refuse(b, "fcntl on the socket or the lock failed");
        {
                int fl = fcntl(b->lfd, F_GETFL);
                if (fl < 0 || fcntl(b->lfd, F_SETFL, fl | O_NONBLOCK) < 0)
                        refuse(b, "fcntl on the socket failed");
        }
        if (activated)
                service_set_managed_socket();
        return 0;
}

/* Link every slice to the name it was cut from again: the names came in
 * their order, where a slice ("part") may come before the name it is a
 * slice of ("whole"), which then did not take it; a name that misses a
 * slice would leave it behind when it goes. */
static void relink_slices(struct broker *b)
{
        struct name_pos p = { 0, 0 };
        struct entry *e, *base, *x;

        while ((e = name_next(b, &p)))
                e->base = e->slist = e->sprev = e->snext = NULL;
        p = (struct name_pos){ 0, 0 };
        while ((e = name_next(b, &p))) {
                base = e->of ? name_find(b, e->of) : NULL;
                if (!base || base->r != e->r)
                        continue;
                /* never a circle (a state no broker writes): the slices
                 * stay a forest, which a removal walks */
                for (x = base; x && x != e; x = x->base)
                        ;
                if (!x)
                        slice_link(e, base);
        }
}

/* The connections, the regions and the names; then the handshake. Does
 * not return unless the old image said "go". */
void reload_finish(struct broker *b)
{
        struct rl_r *r = &rl_rd;
        struct rl_seen seen = { 0 };
        struct conn **conns = NULL;
        struct held_region **regs = NULL;
        uint32_t nconns, nregions, nnames;
        int32_t owed;
        unsigned save_conns = b->max_uid_conns;
        unsigned long long save_fds = b->max_uid_fds;
        char msg[16];
        ssize_t n;

        if (seen_add(&seen, b->lfd, r, "socket") < 0 || seen_add(&seen, b->lockfd, r, "lock") < 0)
                refuse(b, r->err);
        /* limits are for new connections: those handed over are kept */
        b->max_uid_conns = UINT_MAX;
        b->max_uid_fds = ULLONG_MAX;
        owed = r_i32(r);
        nconns = r_u32(r);
        if (r->err[0])
                refuse(b, r->err);
        if (nconns > (r->len - r->off) / 17)
                refuse(b, "more connections than the state can hold");
        if (owed < -1 || (owed >= 0 && (uint32_t)owed >= nconns))
                refuse(b, "the connection owed a reply is out of range");
        conns = calloc(nconns ? nconns : 1, sizeof(*conns));
        if (!conns)
                refuse(b, "out of memory");
        for (uint32_t i = 0; i < nconns; i++) {
                struct conn *c = calloc(1, sizeof(*c));
                struct ucred cr;
                socklen_t len = sizeof(cr);
                uint64_t idle;
                uint32_t outlen;
                unsigned nout;
                char m[160];

                if (!c)
                        refuse(b, "out of memory");
                c->fd = r_i32(r);
                idle = r_u64(r);
                outlen = r_u32(r);
                if (r->err[0] || seen_add(&seen, c->fd, r, "connection") < 0)
                        refuse(b, r->err);
                if (socket_is(c->fd, SOCK_SEQPACKET, 0, NULL, 0) <= 0 ||
                    getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
                        refuse(b, "a connection's descriptor is not a connected SOCK_SEQPACKET socket");
                if (outlen > MSG_MAX + 64)
                        refuse(b, "a pending reply is too long");
                if (outlen) {
                        const unsigned char *s = r_bytes(r, outlen);
                        c->out = s ? malloc(outlen) : NULL;
                        if (!c->out)
                                refuse(b, r->err[0] ? r->err : "out of memory");
                        memcpy(c->out, s, outlen);
                        c->outlen = outlen;
                }
                nout = r_u8(r);
                if (nout > FDS_MAX || (nout && !outlen))
                        refuse(b, "bad descriptors of a pending reply");
                for (unsigned k = 0; k < nout; k++) {
                        c->outfds[k] = r_i32(r);
                        if (r->err[0] || seen_add(&seen, c->outfds[k], r, "a pending reply") < 0)
                                refuse(b, r->err);
                        c->noutfds = (int)k + 1;
                        (void)fcntl(c->outfds[k], F_SETFD, FD_CLOEXEC);
                }
                (void)fcntl(c->fd, F_SETFD, FD_CLOEXEC);
                {
                        int fl = fcntl(c->fd, F_GETFL);
                        if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
                                refuse(b, "fcntl on a connection failed");
                }
                c->uid = cr.uid;
                c->gid = cr.gid;
                c->pid = cr.pid;
                c->last_ms = am_mono_ms() - (long long)(idle > 86400000ull * 365 ? 0 : idle);
                {
                        gid_t g[64];
                        socklen_t gl = sizeof(g);
                        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &gl) == 0 && gl > 0) {
                                c->groups = malloc(gl);
                                if (!c->groups)
                                        refuse(b, "out of memory");
                                memcpy(c->groups, g, gl);
                                c->ngroups = (int)(gl / sizeof(gid_t));
                        } else if (errno == ERANGE && gl > 0) {
                                c->groups = malloc(gl);
                                if (!c->groups || getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS,
                                                             c->groups, &gl) < 0)
                                        refuse(b, "SO_PEERGROUPS failed");
                                c->ngroups = (int)(gl / sizeof(gid_t));
                        }
                }
                if (uid_conn_open(b, c->uid, m, sizeof(m)) < 0)
                        refuse(b, m);
                if (epoll_set(b, EPOLL_CTL_ADD, c->fd, EPOLLRDHUP, c) < 0)
                        refuse(b, "epoll failed");
                /* in the old image's order: appended */
                if (i) {
                        conns[i - 1]->next = c;
                        c->prev = conns[i - 1];
                } else {
                        b->conns = c;
                }
                b->nconns++;
                conns[i] = c;
        }
        nregions = r_u32(r);
        if (r->err[0])
                refuse(b, r->err);
        if (nregions > (r->len - r->off) / 21)
                refuse(b, "more regions than the state can hold");
        regs = calloc(nregions ? nregions : 1, sizeof(*regs));
        if (!regs)
                refuse(b, "out of memory");
        for (uint32_t i = 0; i < nregions; i++) {
                int fd = r_i32(r), ctl = r_i32(r), lost;
                uint64_t size = r_u64(r);
                unsigned charged = r_u8(r);
                uid_t fuid = (uid_t)r_u32(r);
                struct stat st;

                if (r->err[0] || seen_add(&seen, fd, r, "region") < 0 ||
                    (ctl != -1 && seen_add(&seen, ctl, r, "control") < 0))
                        refuse(b, r->err);
                if (charged > 3)
                        refuse(b, "bad region record");
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !ashmem_valid(fd) ||
                    (uint64_t)st.st_size != size || size == 0)
                        refuse(b, "a region's descriptor is not a region of the size recorded");
                if (region_find(b, &st))
                        refuse(b, "a region is named twice");
                (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
                lost = 0;
                if (ctl >= 0) {
                        (void)fcntl(ctl, F_SETFD, FD_CLOEXEC);
                        if (ashmem_set_control(fd, ctl) < 0) {
                                /* a memfd whose header does not check: a
                                 * holder (a writer: it may destroy the
                                 * region) wrote over it. The region is kept
                                 * without it, so that one region never
                                 * holds up a reload; anything else is no
                                 * state a broker writes */
                                if (fcntl(ctl, F_GET_SEALS) < 0)
                                        refuse(b, "a control descriptor is not a memfd");
                                blog(b, 0, "a region's control block does not check: its pin "
                                     "state is not handed out any more");
                                close(ctl);
                                ctl = -1;
                                lost = 1;
                        }
                }
                if (region_new(b, fd, ctl, &st, &regs[i]) < 0)
                        refuse(b, "out of memory");
                regs[i]->ctl_lost = lost;
                /* the broker made it ("create"): it makes its block too,
                 * when first needed, as the region's creator */
                regs[i]->made = (charged & 2) != 0;
                if (regs[i]->made && ctl < 0 && !lost && am_memfd_adopt_made(fd) < 0)
                        refuse(b, "a region the broker made cannot be taken over as made here");
                if (charged & 1) {
                        struct conn who = { .uid = fuid };
                        uid_fd_charge(b, &who, regs[i]);
                }
        }
        nnames = r_u32(r);
        if (r->err[0])
                refuse(b, r->err);
        if (nnames > (r->len - r->off) / 56)
                refuse(b, "more names than the state can hold");
        {
                char *prev = NULL;
                for (uint32_t i = 0; i < nnames; i++) {
                        unsigned nl = r_u16(r), fl;
                        char *name = nl && nl < ASHMEM_NAME_LEN ? r_str(r, nl, "a name") : NULL;
                        char *of = NULL;
                        uint32_t ri;
                        uint64_t off, len, attaches;
                        int64_t created;
                        struct conn who = { 0 };
                        int32_t owner;
                        unsigned mode;
                        struct entry *e;

                        if (!name)
                                refuse(b, r->err[0] ? r->err : "a name of a bad length");
                        if (prev && strcmp(prev, name) >= 0)
                                refuse(b, "the names are not in strict order");
                        ri = r_u32(r);
                        fl = r_u8(r);
                        if (fl & ~3u)
                                refuse(b, "bad name flags");
                        if (fl & 2) {
                                unsigned ol = r_u16(r);
                                of = ol && ol < ASHMEM_NAME_LEN ? r_str(r, ol, "a slice's base") : NULL;
                                if (!of)
                                        refuse(b, r->err[0] ? r->err : "a slice's base of a bad length");
                        }
                        off = r_u64(r);
                        len = r_u64(r);
                        who.uid = (uid_t)r_u32(r);
                        who.gid = (gid_t)r_u32(r);
                        mode = r_u32(r);
                        created = (int64_t)r_u64(r);
                        attaches = r_u64(r);
                        owner = r_i32(r);
                        if (r->err[0])
                                refuse(b, r->err);
                        if (ri >= nregions)
                                refuse(b, "a name's region is out of range");
                        if (mode & ~0777u)
                                refuse(b, "a name's mode is out of range");
                        if ((fl & 2) && !(fl & 1))
                                refuse(b, "a slice without a range");
                        if ((fl & 1) && (len == 0 || off > regs[ri]->size ||
                                         len > regs[ri]->size - off))
                                refuse(b, "a name's range is not inside its region");
                        if (owner < -1 || (owner >= 0 && (uint32_t)owner >= nconns))
                                refuse(b, "a name's owner is out of range");
                        if (entry_add(b, &who, name, regs[ri], mode, of, &e) < 0)
                                refuse(b, "out of memory");
                        e->created = (time_t)created;
                        e->attaches = attaches;
                        if (fl & 1) {
                                e->ranged = 1;
                                e->offset = (size_t)off;
                                e->length = (size_t)len;
                        }
                        if (owner >= 0)
                                entry_set_owner(e, conns[owner]);
                        free(prev);
                        prev = name;
                }
                free(prev);
        }
        relink_slices(b);
        if (r->off != r->len)
                refuse(b, "bytes left over after the names");
        for (uint32_t i = 0; i < nregions; i++)
                if (!regs[i]->refs)
                        refuse(b, "a region that no name refers to");
        b->max_uid_conns = save_conns;
        b->max_uid_fds = save_fds;
        for (uint32_t i = 0; i < nconns; i++)
                conn_want(b, conns[i]);
        rl_owed = owed >= 0 ? conns[owed] : NULL;
        free(conns);
        free(regs);
        free(seen.v);
        free(rl_buf);
        rl_buf = NULL;
        /* the handshake */
        if (send(rl_chan, "accepted", 8, MSG_NOSIGNAL) != 8)
                _exit(1);
        n = hear(rl_chan, msg, sizeof(msg), am_mono_ms() + RL_ANSWER_MS);
        if (n != 2 || memcmp(msg, "go", 2) != 0) {
                /* the old image goes on: leave everything to it */
                blog(b, 0, "the old broker did not let go; leaving");
                fflush(stderr);
                _exit(1);
        }
        close(rl_chan);
        rl_chan = -1;
        /* listen() again: the kernel gives the clients that connect from
         * now on this process's credentials as the peer (SO_PEERCRED; set
         * at listen() time), so `broker status` and `stop` find this pid.
         * Only now: a refused image must not leave its pid there. */
        if (listen(b->lfd, service_managed_socket() ? SOMAXCONN : 128) < 0)
                blog(b, 0, "listen: %s (clients see the old pid as the broker's)",
                     strerror(errno));
        blog(b, 1, "took over %u connection%s, %u region%s, %u name%s on %s", nconns,
             nconns == 1 ? "" : "s", nregions, nregions == 1 ? "" : "s", nnames,
             nnames == 1 ? "" : "s", b->path);
}

/* After setup: the reply to the "reload" request that made this image. */
void reload_reply(struct broker *b)
{
        char text[96];
        int n;

        if (!rl_owed)
                return;
        n = snprintf(text, sizeof(text), "{\"ok\":true,\"pid\":%d,\"previous\":%d}", (int)getpid(),
                     (int)rl_oldpid);
        if (rl_owed->out) {
                /* the old image's reply before it goes first: a client
                 * never has two requests out, so this cannot happen; drop
                 * the connection rather than reorder */
                conn_close(b, rl_owed, "reply order");
        } else if (am_send_fds(rl_owed->fd, text, (size_t)n, NULL, 0, MSG_DONTWAIT) < 0) {
                conn_close(b, rl_owed, "reply to reload");
        }
        rl_owed = NULL;
}
