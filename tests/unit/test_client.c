/* SPDX-License-Identifier: MIT */
/*
 * The broker client library against fake brokers served by a thread of
 * the test: a timed-out or failed exchange closes the connection, so a
 * late reply is never taken for the answer to the next request; a request
 * that may have run is not sent again after a reset; errno is left alone;
 * and a broker of another user, or in a directory others may write, is
 * refused before anything is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "lib/internal/forget.h"
#include "lib/internal/json.h"
#include "lib/internal/scm.h"
#include "t.h"

/* A fake broker: answers each request with {"ok":true,"req":REQUEST}
 * after delay_ms for the first `slow` requests, or with
 * {"ok":true,RECORD} when record is set; with reset, closes each
 * connection after reading its first request without answering. Counts
 * the requests it read. */
struct fake {
        char dir[64], sock[96];
        int lfd;
        int delay_ms, slow, reset;
        const char *record;
        int fd, fd2;            /* > 0: sent with every reply */
        char *last;             /* not NULL: the last request, lastlen bytes */
        size_t lastlen;
        int requests;
        int stop;
        pthread_t t;
};

static void sleep_ms(int ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void *serve(void *arg)
{
        struct fake *f = arg;

        while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
                int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                for (;;) {
                        char in[65537], out[65600];
                        ssize_t n = recv(c, in, sizeof(in) - 1, 0);
                        int k, m;
                        if (n <= 0)
                                break;
                        in[n] = 0;
                        if (f->last) {
                                memcpy(f->last, in, (size_t)n + 1);
                                __atomic_store_n(&f->lastlen, (size_t)n, __ATOMIC_RELEASE);
                        }
                        k = __atomic_add_fetch(&f->requests, 1, __ATOMIC_SEQ_CST);
                        if (f->reset)
                                break;
                        if (k <= f->slow)
                                sleep_ms(f->delay_ms);
                        const char *rec = __atomic_load_n(&f->record, __ATOMIC_SEQ_CST);
                        if (rec)
                                m = snprintf(out, sizeof(out), "{\"ok\":true,%s}", rec);
                        else
                                m = snprintf(out, sizeof(out), "{\"ok\":true,\"req\":%s}", in);
                        int fds[2] = { f->fd, f->fd2 };
                        if (am_send_fds(c, out, (size_t)m, fds, (f->fd > 0) + (f->fd2 > 0), 0) < 0)
                                break;
                }
                close(c);
        }
        return NULL;
}

static void fake_start(struct fake *f)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        struct timeval tv = { 0, 100000 };

        snprintf(f->dir, sizeof(f->dir), "/tmp/ashmem-tc-XXXXXX");
        if (!mkdtemp(f->dir))
                t_fail(__FILE__, __LINE__, "mkdtemp: %m");
        snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", f->dir);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->sock);
        f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        CHECK(f->lfd >= 0);
        CHECK_EQ(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        CHECK_EQ(listen(f->lfd, 8), 0);
        /* accept() wakes up now and then to see stop */
        CHECK_EQ(setsockopt(f->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        CHECK_EQ(pthread_create(&f->t, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
        __atomic_store_n(&f->stop, 1, __ATOMIC_SEQ_CST);
        pthread_join(f->t, NULL);
        close(f->lfd);
        unlink(f->sock);
        rmdir(f->dir);
}

/* One raw request tagged tag: the tag the reply carries, or "" */
static int tagged(ashmem_broker *b, const char *tag, char *got, size_t len)
{
        char req[128], *reply = NULL, *p;
        int rfds[2], nr = 0, r;

        snprintf(req, sizeof(req), "{\"op\":\"hello\",\"tag\":\"%s\"}", tag);
        got[0] = 0;
        r = ashmem_broker_call(b, req, NULL, 0, &reply, rfds, &nr);
        if (reply && (p = strstr(reply, "\"tag\":\""))) {
                p += 7;
                snprintf(got, len, "%.*s", (int)strcspn(p, "\""), p);
        }
        free(reply);
        return r;
}

TEST(a_timed_out_request_never_answers_the_next_one)
{
        struct fake f = { .delay_ms = 400, .slow = 1 };
        ashmem_broker *b;
        char got[32];

        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        CHECK_EQ(ashmem_broker_set_timeout(b, 100), 0);
        errno = 4242;
        CHECK_NEG(tagged(b, "A", got, sizeof(got)), ETIMEDOUT);
        CHECK_EQ(errno, 4242);
        /* the late reply to A arrives meanwhile: B must get B's */
        sleep_ms(500);
        CHECK_EQ(ashmem_broker_set_timeout(b, 2000), 0);
        CHECK_EQ(tagged(b, "B", got, sizeof(got)), 0);
        CHECK(strcmp(got, "B") == 0);
        CHECK_EQ(tagged(b, "C", got, sizeof(got)), 0);
        CHECK(strcmp(got, "C") == 0);
        CHECK_EQ(errno, 4242);
        ashmem_broker_close(b);
        CHECK_EQ(errno, 4242);
        fake_stop(&f);
}

TEST(a_request_that_may_have_run_is_not_sent_again)
{
        struct fake f = { .reset = 1 };
        ashmem_broker *b;
        char got[32];
        int r;

        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        errno = 4242;
        r = tagged(b, "A", got, sizeof(got));
        CHECK(r == -ECONNRESET || r == -EPIPE);
        CHECK_EQ(errno, 4242);
        sleep_ms(100);
        /* the broker read it once, and was not asked twice */
        CHECK_EQ(__atomic_load_n(&f.requests, __ATOMIC_SEQ_CST), 1);
        ashmem_broker_close(b);
        fake_stop(&f);
}

TEST(errno_is_left_alone_by_failed_connects)
{
        ashmem_broker *b;

        errno = 4242;
        CHECK_NEG(ashmem_broker_connect("/nonexistent/dir/sock", &b), ENOENT);
        CHECK_EQ(errno, 4242);
}

TEST(a_socket_in_a_directory_others_may_write_is_refused)
{
        struct fake f = { 0 };
        ashmem_broker *b;

        fake_start(&f);
        CHECK_EQ(chmod(f.dir, 0777), 0);
        CHECK_NEG(ashmem_broker_connect(f.sock, &b), EPERM);
        CHECK_EQ(chmod(f.dir, 0775), 0);
        CHECK_NEG(ashmem_broker_connect(f.sock, &b), EPERM);
        CHECK_EQ(chmod(f.dir, 0755), 0);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        ashmem_broker_close(b);
        CHECK_EQ(__atomic_load_n(&f.requests, __ATOMIC_SEQ_CST), 0);
        fake_stop(&f);
}

/* In a child: a fake broker as uid 4243 in a directory of ours; the
 * connection is refused, and the lookup path too. */
TEST(a_broker_of_another_user_is_refused)
{
        struct fake f = { 0 };
        ashmem_broker *b;
        pid_t pid;
        int st, r;

        if (geteuid() != 0) {
                printf("  (skipped: needs root to run a peer as another uid)\n");
                return;
        }
        snprintf(f.dir, sizeof(f.dir), "/tmp/ashmem-tc-XXXXXX");
        CHECK(mkdtemp(f.dir) != NULL);
        CHECK_EQ(chmod(f.dir, 0777), 0);        /* for the other user's bind */
        snprintf(f.sock, sizeof(f.sock), "%s/broker.sock", f.dir);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                int l, c;
                snprintf(a.sun_path, sizeof(a.sun_path), "%s", f.sock);
                /* the peer's credentials are the listener's at listen() */
                if (setresgid(4243, 4243, 4243) < 0 || setresuid(4243, 4243, 4243) < 0)
                        _exit(3);
                l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
                        _exit(2);
                c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) {
                        char buf[256];
                        /* the client must hang up without sending */
                        ssize_t n = recv(c, buf, sizeof(buf), 0);
                        _exit(n == 0 ? 0 : 4);
                }
                _exit(5);
        }
        for (int i = 0; i < 200 && access(f.sock, F_OK) < 0; i++)
                sleep_ms(10);
        sleep_ms(50);                           /* listening */
        CHECK_EQ(chmod(f.dir, 0755), 0);        /* a directory we trust */
        r = ashmem_broker_connect(f.sock, &b);
        CHECK_NEG(r, EPERM);
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        unlink(f.sock);
        rmdir(f.dir);
}

/* The implicit lookup (a process holding a region's data descriptor alone
 * asks the broker for its pin state) checks the broker as a connection
 * does: a default socket directory that another user made first is
 * refused before anything connects to it, and the pin operation fails
 * (ENOLCK) rather than taking a stranger's word for the region's state. */
TEST(the_implicit_lookup_refuses_a_planted_default_directory)
{
        const uid_t victim = 4244, other = 4243;
        char dir[64], sock[96];
        int ready[2], st, r;
        pid_t planter, holder;

        if (geteuid() != 0) {
                printf("  (skipped: needs root to run processes as other uids)\n");
                return;
        }
        snprintf(dir, sizeof(dir), "/tmp/ashmem-%u", (unsigned)victim);
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        unlink(sock);
        rmdir(dir);
        CHECK_EQ(pipe(ready), 0);
        planter = fork();
        CHECK(planter >= 0);
        if (planter == 0) {
                /* the other user's fake broker on the victim's default
                 * path: any connection fails the test */
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                struct timeval tv = { 3, 0 };
                int l, c;
                close(ready[0]);
                snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
                if (setresgid(other, other, other) < 0 || setresuid(other, other, other) < 0 ||
                    mkdir(dir, 0755) < 0)
                        _exit(3);
                l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(sock, 0666) < 0 ||
                    listen(l, 4) < 0 ||
                    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                        _exit(2);
                if (write(ready[1], "r", 1) != 1)
                        _exit(2);
                c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                _exit(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : 4);
        }
        close(ready[1]);
        {
                char ch;
                CHECK_EQ(read(ready[0], &ch, 1), 1);
        }
        close(ready[0]);
        holder = fork();
        CHECK(holder >= 0);
        if (holder == 0) {
                struct stat sb;
                int fd;
                unsetenv("ASHMEM_SOCKET");
                unsetenv("XDG_RUNTIME_DIR");
                if (setresgid(victim, victim, victim) < 0 || setresuid(victim, victim, victim) < 0)
                        _exit(3);
                /* a region whose pin state this process then forgets: it
                 * holds the data descriptor alone, as a process that got
                 * it across an exec does */
                fd = ashmem_create_region("held", 2 * 4096);
                if (fd < 0 || ashmem_unpin_region(fd, 0, 0) < 0 || ashmem_pin_region(fd, 0, 0) < 0 ||
                    fstat(fd, &sb) < 0 || am_forget_region(&sb) != 1)
                        _exit(5);
                r = ashmem_unpin_region(fd, 0, 0);
                _exit(r < 0 && errno == ENOLCK ? 0 : 6);
        }
        CHECK_EQ(waitpid(holder, &st, 0), holder);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                t_fail(__FILE__, __LINE__, "the holder's unpin: exit status %d (0: ENOLCK)",
                       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        CHECK_EQ(waitpid(planter, &st, 0), planter);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                t_fail(__FILE__, __LINE__, "the planted broker: exit status %d (4: it was "
                       "connected to)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        unlink(sock);
        rmdir(dir);
}

/* A record's creation time (UTC text) comes back as the second it names,
 * on every kind of day: leap days, the ends of months and years, the
 * centuries (2000 a leap year, 2100 not), from 1970 to 2200. */
TEST(a_records_creation_time_is_the_utc_second_it_names)
{
        struct fake f = { 0 };
        ashmem_broker *b = NULL;
        static char rec[160];
        int n = 0;

        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        /* a step of 3 days, 1 hour, 1 minute and 7 seconds walks through
         * every day of the month and time of day over the years */
        for (long long t = 0; t < 7258118400LL; t += 3 * 86400 + 3667, n++) {
                time_t tt = (time_t)t;
                struct tm tm;
                char when[32];
                ashmem_region_info ri;
                CHECK(gmtime_r(&tt, &tm) != NULL);
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
                snprintf(rec, sizeof(rec), "\"name\":\"r\",\"size\":4096,\"created\":\"%s\"", when);
                __atomic_store_n(&f.record, rec, __ATOMIC_SEQ_CST);
                CHECK_EQ(ashmem_broker_info(b, "r", &ri), 0);
                if (ri.created != tt)
                        t_fail(__FILE__, __LINE__, "%s read back as %lld, not %lld", when,
                               (long long)ri.created, t);
        }
        CHECK(n > 20000);
        ashmem_broker_close(b);
        fake_stop(&f);
}

/* The attach reply without the record is read without the JSON scanner
 * when it is exactly the broker's short form; any other text, however
 * close, is read by the scanner, and both read the same. */
TEST(short_attach_replies_are_read_as_the_scanner_reads_them)
{
        static const struct {
                const char *fields;
                int e;                  /* 0: attached, size is */
                size_t size;
        } cases[] = {
                { "\"size\":4096", 0, 4096 },
                { "\"size\":0", 0, 0 },
                { "\"size\":18446744073709551615", 0, SIZE_MAX },
                { "\"size\":4096,\"dev\":1,\"ino\":2", 0, 4096 },
                { "\"size\":4096,\"ino\":2,\"dev\":1", 0, 4096 },
                { "\"size\":4096,\"dev\":1", 0, 4096 },
                { "\"size\": 4096", 0, 4096 },
                { "\"size\":4096,\"offset\":8192,\"length\":4096", 0, 4096 },
                { "\"size\":18446744073709551616", EPROTO, 0 },
                { "\"size\":04096", EPROTO, 0 },
                { "\"size\":-1", EPROTO, 0 },
                { "\"size\":4096.5", EPROTO, 0 },
                { "\"size\":4096,\"dev\":1,\"ino\":", EPROTO, 0 },
                { "\"size\":4096,\"dev\":01,\"ino\":2", EPROTO, 0 },
                { "\"size\":4096,\"dev\":1,\"ino\":2,", EPROTO, 0 },
                { "\"size\":", EPROTO, 0 },
                { "\"siz\":4096", EPROTO, 0 },         /* no size: no answer to attach */
        };
        struct fake f = { 0 };
        ashmem_broker *b = NULL;

        f.fd = memfd_create("short-reply", MFD_CLOEXEC);
        CHECK(f.fd > 0);
        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        /* each reply twice in a row: the second is read through what the
         * connection kept of the first (same text, same answer), and the
         * next case's through nothing kept */
        for (size_t k = 0; k < 2 * (sizeof(cases) / sizeof(cases[0])); k++) {
                size_t i = k / 2, off = 7, len = 7;
                int fd = -1, r;
                __atomic_store_n(&f.record, cases[i].fields, __ATOMIC_SEQ_CST);
                r = ashmem_broker_attach(b, "r", 1, &fd, &off, &len);
                if (r != -cases[i].e || (r == 0 && len != cases[i].size))
                        t_fail(__FILE__, __LINE__, "{\"ok\":true,%s}: %d, size %zu", cases[i].fields,
                               r, len);
                if (r == 0) {
                        CHECK(fd >= 0);
                        close(fd);
                } else {
                        CHECK_EQ(fd, -1);
                }
        }
        ashmem_broker_close(b);
        fake_stop(&f);
        close(f.fd);
}

/* Every name goes out as the JSON writer writes it, whether the client
 * copies it as it stands (its fast path) or escapes it: names at the
 * edges of that path (bytes 0x7f and up, the two escaped ASCII bytes, a
 * control byte, ASHMEM_NAME_LEN bytes and one more), each read-only and
 * read-write. */
TEST(attach_requests_spell_every_name_as_the_json_writer_does)
{
        static char longest[ASHMEM_NAME_LEN + 1], over[ASHMEM_NAME_LEN + 2];
        const char *names[] = { "r", "bench-pinned", "a b~", "caf\xc3\xa9", "del\x7f",
                                "quo\"te", "back\\slash", "tab\tbed", "\x1f", longest, over };
        static char last[65537];
        struct fake f = { 0 };
        ashmem_broker *b = NULL;

        memset(longest, 'n', ASHMEM_NAME_LEN);
        memset(over, 'o', ASHMEM_NAME_LEN + 1);
        f.fd = memfd_create("spelled", MFD_CLOEXEC);
        CHECK(f.fd > 0);
        f.last = last;
        f.record = "\"size\":4096";
        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                for (int rw = 0; rw <= 1; rw++) {
                        char want[1024];
                        struct am_jw w = { .buf = want, .cap = sizeof(want), .fixed = 1 };
                        size_t len = 0;
                        int fd = -1;
                        am_jw_raw(&w, "{\"v\":1,\"op\":\"attach\",\"name\":", 28);
                        am_jw_string(&w, names[i]);
                        am_jw_puts(&w, rw ? ",\"access\":\"rw\"" : ",\"access\":\"r\"");
                        am_jw_puts(&w, ",\"record\":false}");
                        CHECK(!w.overflow);
                        __atomic_store_n(&f.lastlen, 0, __ATOMIC_RELEASE);
                        CHECK_EQ(ashmem_broker_attach(b, names[i], rw, &fd, NULL, &len), 0);
                        CHECK_EQ(len, 4096);
                        close(fd);
                        len = __atomic_load_n(&f.lastlen, __ATOMIC_ACQUIRE);
                        if (len != w.len || memcmp(last, want, len) != 0)
                                t_fail(__FILE__, __LINE__, "name %zu (%s): sent %.*s, not %s", i,
                                       rw ? "rw" : "r", (int)len, last, want);
                }
        ashmem_broker_close(b);
        fake_stop(&f);
        close(f.fd);
}

/* A broker whose short reply names another region than the one it sends
 * (one this process keeps the pin state of, of the same size): the client
 * takes the word of the broker it checked, so it keeps the pin state it
 * has and drops the control descriptor that came. What that costs stays
 * with the descriptor received: the named region's pin state is not
 * touched, the received region keeps its own, nothing leaks. */
TEST(a_reply_naming_another_region_touches_only_the_received_one)
{
        struct fake f = { 0 };
        ashmem_broker *b = NULL;
        size_t ps = (size_t)sysconf(_SC_PAGESIZE);
        int a = ashmem_create_region("named", ps), got = -1;
        struct stat sa, sb, sg;
        ashmem_stats st;
        static char rec[128];

        CHECK(a >= 0);
        CHECK_EQ(ashmem_unpin_region(a, 0, 0), 0);     /* its block is made here */
        CHECK_EQ(fstat(a, &sa), 0);
        f.fd = ashmem_create_region("sent", ps);
        f.fd2 = memfd_create("not-a-control-block", MFD_CLOEXEC);
        CHECK(f.fd > 0 && f.fd2 > 0);
        CHECK_EQ(fstat(f.fd, &sb), 0);
        snprintf(rec, sizeof(rec), "\"size\":%zu,\"dev\":%llu,\"ino\":%llu", ps,
                 (unsigned long long)sa.st_dev, (unsigned long long)sa.st_ino);
        f.record = rec;
        fake_start(&f);
        CHECK_EQ(ashmem_broker_connect(f.sock, &b), 0);
        CHECK_EQ(ashmem_broker_attach(b, "sent", 1, &got, NULL, NULL), 0);
        CHECK_EQ(fstat(got, &sg), 0);
        CHECK_EQ(sg.st_ino, sb.st_ino);
        /* the received region's own pin state, not the named one's */
        CHECK_EQ(ashmem_unpin_region(got, 0, 0), 0);
        CHECK_EQ(ashmem_get_stats(f.fd, &st), 0);
        CHECK_EQ(st.unpinned, 1u);
        CHECK_EQ(ashmem_pin_region(got, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_get_stats(a, &st), 0);
        CHECK_EQ(st.unpinned, 1u);
        CHECK_EQ(ashmem_pin_region(a, 0, 0), ASHMEM_NOT_PURGED);
        close(got);
        ashmem_broker_close(b);
        fake_stop(&f);
        close(f.fd);
        close(f.fd2);
        close(a);
}
