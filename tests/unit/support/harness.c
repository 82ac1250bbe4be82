/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../t.h"

struct t_case { const char *name; void (*fn)(void); };
static struct t_case cases[256];
static int ncases, allow_leak;

void t_register(const char *name, void (*fn)(void))
{
        if (ncases < (int)(sizeof(cases) / sizeof(cases[0])))
                cases[ncases++] = (struct t_case){ name, fn };
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "    %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

void t_allow_fd_leak(void) { allow_leak = 1; }

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = -1;     /* the DIR's own descriptor */
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

int t_in_child(void (*fn)(void *), void *arg)
{
        int status;
        pid_t p = fork();
        if (p < 0)
                t_fail(__FILE__, __LINE__, "fork: %m");
        if (p == 0) {
                fn(arg);
                _exit(0);
        }
        while (waitpid(p, &status, 0) < 0)
                if (errno != EINTR)
                        t_fail(__FILE__, __LINE__, "waitpid: %m");
        return status;
}

static int selected(int argc, char **argv, const char *name)
{
        if (argc < 2)
                return 1;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return 1;
        return 0;
}

int main(int argc, char **argv)
{
        int passed = 0, failed = 0;
        const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (int i = 0; i < ncases; i++) {
                int status;
                pid_t p;
                if (!selected(argc, argv, cases[i].name))
                        continue;
                fflush(NULL);
                p = fork();
                if (p < 0) {
                        perror("fork");
                        return 1;
                }
                if (p == 0) {
                        int before = count_fds(), after;
                        cases[i].fn();
                        /* the library's control descriptors of regions the
                         * test closed are not leaks: let it drop them */
                        ashmem_collect();
                        after = count_fds();
                        if (!allow_leak && after > before)
                                t_fail(__FILE__, __LINE__, "%d descriptor(s) leaked",
                                       after - before);
                        exit(0);
                }
                while (waitpid(p, &status, 0) < 0)
                        if (errno != EINTR) {
                                perror("waitpid");
                                return 1;
                        }
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                        passed++;
                        printf("ok   %s.%s\n", prog, cases[i].name);
                } else {
                        failed++;
                        if (WIFSIGNALED(status))
                                printf("FAIL %s.%s (signal %s)\n", prog, cases[i].name,
                                       sigabbrev_np(WTERMSIG(status)));
                        else
                                printf("FAIL %s.%s\n", prog, cases[i].name);
                }
        }
        printf("%s: %d passed, %d failed\n", prog, passed, failed);
        return failed ? 1 : 0;
}

int t_control_walk(void (*fn)(int fd, void *arg), void *arg)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        if (!d)
                t_fail(__FILE__, __LINE__, "/proc/self/fd: %m");
        while ((de = readdir(d))) {
                char path[300], link[256];
                ssize_t l;
                int fd = atoi(de->d_name);

                if (de->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
                l = readlink(path, link, sizeof(link) - 1);
                if (l <= 0)
                        continue;
                link[l] = 0;
                if (strncmp(link, "/memfd:ashmem-control", 21) != 0)
                        continue;
                n++;
                if (fn)
                        fn(fd, arg);
        }
        closedir(d);
        return n;
}

int t_control_fds(void)
{
        return t_control_walk(NULL, NULL);
}
