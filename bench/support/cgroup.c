/* SPDX-License-Identifier: MIT */
/* A memory cgroup of a bench program's own (see cgroup.h). */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "ashmem-bench-"

static int read_text(const char *path, char *buf, size_t len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t got = 0;

        if (fd < 0)
                return -errno;
        while (got < len - 1) {
                ssize_t n = read(fd, buf + got, len - 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = 0;
        close(fd);
        return (int)got;
}

static int write_text(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;
        size_t len = strlen(text);
        ssize_t n;

        if (fd < 0)
                return -errno;
        do
                n = write(fd, text, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                r = -errno;
        else if ((size_t)n != len)
                r = -EIO;
        if (close(fd) < 0 && !r)
                r = -errno;
        return r;
}

static int has_word(const char *list, const char *word, const char *seps)
{
        size_t wl = strlen(word);

        for (const char *p = list; *p; ) {
                size_t n = strcspn(p, seps);
                if (n == wl && strncmp(p, word, wl) == 0)
                        return 1;
                p += n;
                if (*p)
                        p++;
        }
        return 0;
}

/* The mount points of cgroup2 and of the v1 memory controller. */
static void find_mounts(char *v2, char *v1, size_t len)
{
        char line[4096];
        FILE *f = fopen("/proc/self/mountinfo", "re");

        v2[0] = v1[0] = 0;
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char mnt[PATH_MAX], fstype[64], super[1024], *dash = strstr(line, " - ");
                if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
                    sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
                        continue;
                if (strcmp(fstype, "cgroup2") == 0 && !v2[0])
                        snprintf(v2, len, "%s", mnt);
                else if (strcmp(fstype, "cgroup") == 0 && has_word(super, "memory", ",") &&
                         !v1[0])
                        snprintf(v1, len, "%s", mnt);
        }
        fclose(f);
}

/* This process' cgroup path in the v2 hierarchy (v2) or the v1 memory
 * controller's. */
static int own_path(int v2, char *buf, size_t len)
{
        char line[4096];
        FILE *f = fopen("/proc/self/cgroup", "re");
        int found = 0;

        if (!f)
                return -errno;
        while (!found && fgets(line, sizeof(line), f)) {
                char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c2 = 0;
                line[strcspn(line, "\n")] = 0;
                c2[1 + strcspn(c2 + 1, "\n")] = 0;
                if (v2 ? strcmp(line, "0") == 0 && c1[1] == 0 : has_word(c1 + 1, "memory", ",")) {
                        snprintf(buf, len, "%s", c2 + 1);
                        found = 1;
                }
        }
        fclose(f);
        return found ? 0 : -ENOENT;
}

/* Remove the empty cgroups of programs that are gone. */
static void remove_stale(const char *base)
{
        DIR *d = opendir(base);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char p[PATH_MAX];
                long pid;
                if (strncmp(de->d_name, PREFIX, sizeof(PREFIX) - 1) != 0)
                        continue;
                pid = strtol(de->d_name + sizeof(PREFIX) - 1, NULL, 10);
                if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
                        continue;
                if (snprintf(p, sizeof(p), "%s/%s", base, de->d_name) < (int)sizeof(p))
                        rmdir(p);       /* fails, and stays, if not empty */
        }
        closedir(d);
}

static int file_in(const struct bench_cgroup *cg, const char *name, char *buf, size_t len)
{
        if (snprintf(buf, len, "%s/%s", cg->path, name) >= (int)len)
                return -ENAMETOOLONG;
        return 0;
}

int bench_cgroup_create(struct bench_cgroup *cg, const char *tag, char *why, size_t len)
{
        char v2[PATH_MAX], v1[PATH_MAX], own[PATH_MAX], base[PATH_MAX * 2], f[PATH_MAX * 2 + 32];
        char ctl[256];
        int r;

        cg->path[0] = 0;
        find_mounts(v2, v1, sizeof(v2));
        /* v2 when its hierarchy has the memory controller here */
        cg->v2 = 0;
        if (v2[0] && own_path(1, own, sizeof(own)) == 0) {
                snprintf(base, sizeof(base), "%s%s", v2, own);
                snprintf(f, sizeof(f), "%s/cgroup.controllers", base);
                if (read_text(f, ctl, sizeof(ctl)) >= 0 && has_word(ctl, "memory", " \n"))
                        cg->v2 = 1;
        }
        if (!cg->v2) {
                if (!v1[0]) {
                        snprintf(why, len, "no memory controller is mounted (cgroup v2 without "
                                 "it here, no cgroup v1 memory hierarchy)");
                        return -ENOENT;
                }
                if ((r = own_path(0, own, sizeof(own))) < 0) {
                        snprintf(why, len, "this process is in no v1 memory cgroup");
                        return r;
                }
                snprintf(base, sizeof(base), "%s%s", v1, own);
        }
        remove_stale(base);
        if (snprintf(cg->path, sizeof(cg->path), "%s/%s%ld-%s", base, PREFIX, (long)getpid(),
                     tag) >= (int)sizeof(cg->path)) {
                cg->path[0] = 0;
                snprintf(why, len, "the cgroup path is too long");
                return -ENAMETOOLONG;
        }
        if (mkdir(cg->path, 0755) < 0) {
                r = -errno;
                snprintf(why, len, "cannot make a memory cgroup under %s: %s", base,
                         strerror(-r));
                cg->path[0] = 0;
                return r;
        }
        if (cg->v2) {
                struct stat st;
                file_in(cg, "memory.max", f, sizeof(f));
                if (stat(f, &st) < 0) {
                        char sub[PATH_MAX * 2 + 32];
                        snprintf(sub, sizeof(sub), "%s/cgroup.subtree_control", base);
                        if ((r = write_text(sub, "+memory")) < 0 || stat(f, &st) < 0) {
                                snprintf(why, len, "the memory controller cannot be enabled "
                                         "for the children of %s: %s", base,
                                         strerror(r < 0 ? -r : errno));
                                rmdir(cg->path);
                                cg->path[0] = 0;
                                return r < 0 ? r : -ENOTSUP;
                        }
                }
        }
        return 0;
}

int bench_cgroup_enter(const struct bench_cgroup *cg, pid_t pid)
{
        char f[PATH_MAX + 32], num[32];
        int r;

        if ((r = file_in(cg, "cgroup.procs", f, sizeof(f))) < 0)
                return r;
        snprintf(num, sizeof(num), "%ld", (long)(pid ? pid : getpid()));
        return write_text(f, num);
}

int64_t bench_cgroup_usage(const struct bench_cgroup *cg)
{
        char f[PATH_MAX + 32], buf[64];
        int r;

        if ((r = file_in(cg, cg->v2 ? "memory.current" : "memory.usage_in_bytes", f,
                         sizeof(f))) < 0)
                return r;
        if ((r = read_text(f, buf, sizeof(buf))) < 0)
                return r;
        return strtoll(buf, NULL, 10);
}

int bench_cgroup_set_limit(const struct bench_cgroup *cg, uint64_t bytes)
{
        char f[PATH_MAX + 32], num[32];
        int r;

        if ((r = file_in(cg, cg->v2 ? "memory.max" : "memory.limit_in_bytes", f,
                         sizeof(f))) < 0)
                return r;
        snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
        return write_text(f, num);
}

const char *bench_cgroup_counter(const struct bench_cgroup *cg)
{
        return cg->v2 ? "cgroup v2 memory.current" : "cgroup v1 memory.usage_in_bytes";
}

int bench_cgroup_remove(struct bench_cgroup *cg)
{
        char f[PATH_MAX + 32], buf[4096];
        int r = 0;

        if (!cg->path[0])
                return 0;
        file_in(cg, "cgroup.procs", f, sizeof(f));
        /* up to 5 s for what is in it to go */
        for (int i = 0; i < 500; i++) {
                struct timespec ts = { 0, 10000000 };
                char *p = buf;
                int n = read_text(f, buf, sizeof(buf)), any = 0;

                if (n < 0) {
                        r = n;
                        break;
                }
                while (*p) {
                        long pid = strtol(p, &p, 10);
                        if (pid > 0) {
                                kill((pid_t)pid, SIGKILL);
                                any = 1;
                        }
                        while (*p == '\n')
                                p++;
                }
                if (!any) {
                        if (rmdir(cg->path) == 0) {
                                cg->path[0] = 0;
                                return 0;
                        }
                        r = -errno;
                        if (errno != EBUSY)
                                break;
                }
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        if (!r)
                r = -EBUSY;
        fprintf(stderr, "%s: could not remove %s: %s\n", program_invocation_short_name,
                cg->path, strerror(-r));
        return r;
}
