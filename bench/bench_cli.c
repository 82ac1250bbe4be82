/* SPDX-License-Identifier: MIT */
/*
 * The command line as a shell script sees it: one process per call, the
 * whole command timed from fork to exit, against the tool a script would
 * use instead on the same machine:
 *
 *   ashmemctl create NAME 4K        ipcmk -M 4096
 *   ashmemctl info NAME             ipcs -m -i ID
 *   ashmemctl list                  lsipc -m (the shared memory segments)
 *   ashmemctl --json list           lsipc -m -J
 *   ashmemctl rm NAME               ipcrm -m ID
 *   ashmemctl write NAME FILE       cat FILE > /dev/shm/X     (4 KiB)
 *   ashmemctl read NAME > OUT       cat /dev/shm/X > OUT      (1 MiB)
 *   ashmemctl --version             cat --version             (start-up)
 *
 * and, shown without a target, the first call that starts the broker
 * itself (`ashmemctl create`, no broker running: the autostart) against
 * the same call with the broker running.
 *
 * Targets: create, rm, info, list and --json list at most 1.0x the System
 * V tools (the listings hold as many regions as segments); write 4 KiB and
 * read 1 MiB at most 1.1x cat on /dev/shm; start-up at most 1.1x `cat
 * --version`. A call's output goes where a script would send it: to a pipe
 * this program reads (create, where ipcmk's output carries the id a script
 * needs), else /dev/null, or OUT (a regular file, truncated before the
 * call, not timed) for the reads.
 *
 * Calls alternate A and B one by one (the order flips with each pair), in
 * one process, unpinned; a round is CALLS pairs of every row, and a
 * round's figure is the median call. Each figure is the median over the
 * rounds, with the smallest and largest round as the spread. A broker of
 * its own runs on a socket in a temporary directory; every System V
 * segment made is removed (at exit or on SIGINT/SIGTERM too).
 *
 * Usage: bench_cli [--json] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/bench.h"

#define MAX_ROUNDS 16
#define MAX_CALLS 64
#define HELD 16                 /* regions and segments held while listing */

static char ctl[PATH_MAX], dir[64], sock[PATH_MAX], small[PATH_MAX], out[PATH_MAX],
            shm4k[PATH_MAX], shm1m[PATH_MAX];
static int broker_up, ids[MAX_CALLS + HELD], nids;
static pid_t main_pid;

/* Run argv: stdout to a pipe read into buf (buf != NULL), else to fd out
 * (-1: /dev/null). Its wall time in ns; dies when it fails. */
static int64_t call(char *const argv[], int outfd, char *buf, size_t len)
{
        int p[2] = { -1, -1 }, nul = -1, status;
        int64_t t0;
        size_t got = 0;
        pid_t pid;

        if (buf && pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe2", errno);
        if (!buf && outfd < 0 && (nul = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
                bench_die("/dev/null", errno);
        t0 = bench_now_ns();
        pid = fork();
        if (pid < 0)
                bench_die("fork", errno);
        if (pid == 0) {
                int o = buf ? p[1] : outfd >= 0 ? outfd : nul;
                if (dup2(o, STDOUT_FILENO) < 0)
                        _exit(126);
                execvp(argv[0], argv);
                _exit(127);
        }
        if (buf) {
                close(p[1]);
                for (;;) {
                        ssize_t n = read(p[0], buf + got, len - 1 - got);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                bench_die("read", errno);
                        if (n == 0)
                                break;
                        got += (size_t)n;
                        if (got == len - 1)
                                break;
                }
                buf[got] = 0;
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        bench_die("waitpid", errno);
        t0 = bench_now_ns() - t0;
        if (buf)
                close(p[0]);
        if (nul >= 0)
                close(nul);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_cli: %s %s %s failed (status %d)\n", argv[0],
                        argv[1] ? argv[1] : "", argv[1] && argv[2] ? argv[2] : "", status);
                exit(1);
        }
        return t0;
}

/* A call with its standard output in a fresh regular file OUT. */
static int64_t call_to_file(char *const argv[])
{
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int64_t t;

        if (fd < 0)
                bench_die(out, errno);
        t = call(argv, fd, NULL, 0);
        if (close(fd) < 0)
                bench_die(out, errno);
        return t;
}

static void check_out(off_t size)
{
        struct stat st;

        if (stat(out, &st) < 0)
                bench_die(out, errno);
        if (st.st_size != size) {
                fprintf(stderr, "bench_cli: %s has %lld bytes, not %lld\n", out,
                        (long long)st.st_size, (long long)size);
                exit(1);
        }
}

static void ctl_quiet(const char *a, const char *b, const char *c)
{
        char *argv[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"--no-autostart",
                         (char *)a, (char *)b, (char *)c, NULL };
        call(argv, -1, NULL, 0);
}

static void stop_broker(void)
{
        char *argv[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"broker",
                         (char *)"stop", NULL };

        if (!broker_up)
                return;
        broker_up = 0;
        call(argv, -1, NULL, 0);
}

static void cleanup(void)
{
        char p[PATH_MAX + 16];

        if (getpid() != main_pid)
                return;
        for (int i = 0; i < nids; i++)
                shmctl(ids[i], IPC_RMID, NULL);
        nids = 0;
        stop_broker();
        if (!dir[0])
                return;
        unlink(small);
        unlink(out);
        unlink(shm4k);
        unlink(shm1m);
        snprintf(p, sizeof(p), "%s.lock", sock);
        unlink(p);
        snprintf(p, sizeof(p), "%s.start", sock);
        unlink(p);
        unlink(sock);
        if (rmdir(dir) < 0)
                fprintf(stderr, "bench_cli: %s: %s\n", dir, strerror(errno));
        dir[0] = 0;
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);        /* runs cleanup() */
}

static int ipcmk(void)
{
        char *argv[] = { (char *)"ipcmk", (char *)"-M", (char *)"4096", NULL };
        char buf[256], *p;
        int id;

        call(argv, -1, buf, sizeof(buf));
        p = strrchr(buf, ':');
        if (!p || (id = atoi(p + 1)) < 0 || (id == 0 && p[2] != '0'))
                bench_die("ipcmk printed no id", EPROTO);
        return id;
}

static void write_file(const char *path, size_t size)
{
        char buf[4096];
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0)
                bench_die(path, errno);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (char)('a' + i % 26);
        for (size_t done = 0; done < size; done += sizeof(buf))
                if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                        bench_die(path, errno ? errno : EIO);
        if (close(fd) < 0)
                bench_die(path, errno);
}

enum { CREATE, INFO, LIST, JLIST, RM, WRITE4K, READ1M, VERSION, AUTOSTART, NROWS };

static const struct { const char *name; double target; } defs[NROWS] = {
        [CREATE] = { "cli: ashmemctl create 4K vs ipcmk -M 4096", 1.0 },
        [INFO] = { "cli: ashmemctl info vs ipcs -m -i", 1.0 },
        [LIST] = { "cli: ashmemctl list vs lsipc -m (16 held)", 1.0 },
        [JLIST] = { "cli: ashmemctl --json list vs lsipc -m -J (16 held)", 1.0 },
        [RM] = { "cli: ashmemctl rm vs ipcrm -m", 1.0 },
        [WRITE4K] = { "cli: ashmemctl write 4 KiB vs cat > /dev/shm file", 1.1 },
        [READ1M] = { "cli: ashmemctl read 1 MiB > file vs cat /dev/shm file", 1.1 },
        [VERSION] = { "cli: start-up, ashmemctl --version vs cat --version", 1.1 },
        [AUTOSTART] = { "cli: first create, broker auto-started vs running", 0 },
};

static double median_of(double *v, int n)
{
        /* insertion sort: n is small */
        for (int i = 1; i < n; i++)
                for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        double t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const struct bench_style style = {
        .name_width = 60, .cell_width = 30, .ns_digits = 0, .scaled = 1,
        .strict = 0, .json_digits = 3,
};

int main(int argc, char **argv)
{
        static double a[NROWS][MAX_ROUNDS], b[NROWS][MAX_ROUNDS];
        double ca[NROWS][MAX_CALLS], cb[NROWS][MAX_CALLS];
        struct bench_row rows[NROWS];
        struct bench_opts opt = { 0, 0 };
        int rounds, calls, autocalls;

        bench_options(argc, argv, &opt);
        rounds = opt.quick ? 2 : 5;
        calls = opt.quick ? 6 : 30;
        autocalls = opt.quick ? 2 : 4;
        bench_ashmemctl(ctl, sizeof(ctl));
        snprintf(dir, sizeof(dir), "/tmp/bench-cli.XXXXXX");
        if (!mkdtemp(dir))
                bench_die("mkdtemp", errno);
        main_pid = getpid();
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
        snprintf(small, sizeof(small), "%s/small", dir);
        snprintf(out, sizeof(out), "%s/out", dir);
        snprintf(shm4k, sizeof(shm4k), "/dev/shm/bench-cli-4k-%ld", (long)getpid());
        snprintf(shm1m, sizeof(shm1m), "/dev/shm/bench-cli-1m-%ld", (long)getpid());
        unsetenv("ASHMEM_NO_AUTOSTART");
        unsetenv("ASHMEM_SOCKET");
        write_file(small, 4096);
        write_file(shm1m, 1 << 20);
        {
                char *start[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"broker",
                                  (char *)"start", NULL };
                call(start, -1, NULL, 0);
                broker_up = 1;
        }
        ctl_quiet("create", "big", "1M");
        {
                char *w[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"write",
                              (char *)"big", shm1m, NULL };
                call(w, -1, NULL, 0);
        }
        /* the listings: as many regions as segments */
        for (int i = 0; i < HELD; i++) {
                char name[32];
                snprintf(name, sizeof(name), "held-%d", i);
                ctl_quiet("create", name, "4K");
                ids[nids++] = ipcmk();
        }

        for (int r = 0; r < rounds; r++) {
                int base_ids[MAX_CALLS];
                char names[MAX_CALLS][32], idstr[MAX_CALLS][16];

                for (int i = 0; i < calls; i++)
                        snprintf(names[i], sizeof(names[i]), "cli-%d-%d", r, i);
                /* create: one of each, alternating */
                for (int i = 0; i < calls; i++) {
                        char *c[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                      (char *)"create", names[i], (char *)"4K", NULL };
                        char buf[512];
                        int64_t t0;
                        if (i % 2) {
                                t0 = bench_now_ns();
                                base_ids[i] = ids[nids++] = ipcmk();
                                cb[CREATE][i] = (double)(bench_now_ns() - t0);
                                ca[CREATE][i] = (double)call(c, -1, buf, sizeof(buf));
                        } else {
                                ca[CREATE][i] = (double)call(c, -1, buf, sizeof(buf));
                                t0 = bench_now_ns();
                                base_ids[i] = ids[nids++] = ipcmk();
                                cb[CREATE][i] = (double)(bench_now_ns() - t0);
                        }
                        snprintf(idstr[i], sizeof(idstr[i]), "%d", base_ids[i]);
                }
                for (int i = 0; i < calls; i++) {
                        char *oi[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                       (char *)"info", names[i], NULL };
                        char *bi[] = { (char *)"ipcs", (char *)"-m", (char *)"-i", idstr[i], NULL };
                        char *ol[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                       (char *)"list", NULL };
                        char *bl[] = { (char *)"lsipc", (char *)"-m", NULL };
                        char *oj[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                       (char *)"--json", (char *)"list", NULL };
                        char *bj[] = { (char *)"lsipc", (char *)"-m", (char *)"-J", NULL };
                        char *ow[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                       (char *)"write", names[i], small, NULL };
                        char *bw[] = { (char *)"cat", small, NULL };
                        char *orr[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                        (char *)"read", (char *)"big", NULL };
                        char *br[] = { (char *)"cat", shm1m, NULL };
                        char *ov[] = { ctl, (char *)"--version", NULL };
                        char *bv[] = { (char *)"cat", (char *)"--version", NULL };
                        int flip = i % 2;

                        for (int k = 0; k < 2; k++) {
                                int ours = (k == 0) != flip;
                                if (ours) {
                                        ca[INFO][i] = (double)call(oi, -1, NULL, 0);
                                        ca[LIST][i] = (double)call(ol, -1, NULL, 0);
                                        ca[JLIST][i] = (double)call(oj, -1, NULL, 0);
                                        ca[WRITE4K][i] = (double)call(ow, -1, NULL, 0);
                                        ca[READ1M][i] = (double)call_to_file(orr);
                                        check_out(1 << 20);
                                        ca[VERSION][i] = (double)call(ov, -1, NULL, 0);
                                } else {
                                        int fd;
                                        cb[INFO][i] = (double)call(bi, -1, NULL, 0);
                                        cb[LIST][i] = (double)call(bl, -1, NULL, 0);
                                        cb[JLIST][i] = (double)call(bj, -1, NULL, 0);
                                        /* the shell's `cat FILE > /dev/shm/X`:
                                         * its open is timed too */
                                        {
                                                int64_t t0 = bench_now_ns();
                                                fd = open(shm4k, O_WRONLY | O_CREAT | O_TRUNC |
                                                          O_CLOEXEC, 0600);
                                                if (fd < 0)
                                                        bench_die(shm4k, errno);
                                                call(bw, fd, NULL, 0);
                                                cb[WRITE4K][i] = (double)(bench_now_ns() - t0);
                                                close(fd);
                                        }
                                        cb[READ1M][i] = (double)call_to_file(br);
                                        check_out(1 << 20);
                                        cb[VERSION][i] = (double)call(bv, -1, NULL, 0);
                                }
                        }
                }
                for (int i = 0; i < calls; i++) {
                        char *o[] = { ctl, (char *)"--socket", sock, (char *)"--no-autostart",
                                      (char *)"rm", names[i], NULL };
                        char *bb[] = { (char *)"ipcrm", (char *)"-m", idstr[i], NULL };
                        if (i % 2) {
                                cb[RM][i] = (double)call(bb, -1, NULL, 0);
                                ca[RM][i] = (double)call(o, -1, NULL, 0);
                        } else {
                                ca[RM][i] = (double)call(o, -1, NULL, 0);
                                cb[RM][i] = (double)call(bb, -1, NULL, 0);
                        }
                        /* gone: no longer ours to remove */
                        for (int k = 0; k < nids; k++)
                                if (ids[k] == base_ids[i]) {
                                        ids[k] = ids[--nids];
                                        break;
                                }
                }
                /* the autostart: the broker stopped, then the first create
                 * starts it; against the same create with it running */
                for (int i = 0; i < autocalls; i++) {
                        char name[32], name2[32];
                        snprintf(name, sizeof(name), "auto-%d-%d", r, i);
                        snprintf(name2, sizeof(name2), "run-%d-%d", r, i);
                        char *c1[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"create",
                                       name, (char *)"4K", NULL };
                        char *c2[] = { ctl, (char *)"-q", (char *)"--socket", sock, (char *)"create",
                                       name2, (char *)"4K", NULL };
                        stop_broker();
                        ca[AUTOSTART][i] = (double)call(c1, -1, NULL, 0);
                        broker_up = 1;
                        cb[AUTOSTART][i] = (double)call(c2, -1, NULL, 0);
                }
                for (int k = 0; k < NROWS; k++) {
                        int n = k == AUTOSTART ? autocalls : calls;
                        a[k][r] = median_of(ca[k], n) / 1e6;    /* ms */
                        b[k][r] = median_of(cb[k], n) / 1e6;
                }
                if (autocalls && r + 1 < rounds) {
                        /* the autostarted broker holds none of the listed
                         * regions: make them again for the next round */
                        ctl_quiet("create", "big", "1M");
                        {
                                char *w[] = { ctl, (char *)"-q", (char *)"--socket", sock,
                                              (char *)"write", (char *)"big", shm1m, NULL };
                                call(w, -1, NULL, 0);
                        }
                        for (int i = 0; i < HELD; i++) {
                                char name[32];
                                snprintf(name, sizeof(name), "held-%d", i);
                                ctl_quiet("create", name, "4K");
                        }
                }
        }
        for (int k = 0; k < NROWS; k++)
                rows[k] = (struct bench_row){ defs[k].name, bench_summarise(a[k], rounds),
                                              bench_summarise(b[k], rounds), defs[k].target,
                                              "ms", 0, NULL };
        cleanup();
        if (opt.json) {
                bench_print_json(rows, NROWS, &style);
        } else {
                bench_print_table(rows, NROWS, &style);
                printf("\nwhole commands, one process per call; median call of %d per round, "
                       "%d rounds\n", calls, rounds);
        }
        return 0;
}
