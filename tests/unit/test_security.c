/* SPDX-License-Identifier: MIT */
/*
 * A read-only handoff must stay read-only: another user holding a read-only
 * descriptor of a region cannot reopen it read-write through /proc (the
 * memfds are owner-only), neither the data nor the control memfd.
 * Needs root (to become another user); skipped, and said so, otherwise.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "t.h"

#define NOBODY 65534

/* In a child that became another user: try to reopen fd read-write. */
static int reopen_as_other_user(int fd)
{
        int status;
        pid_t p = fork();

        CHECK(p >= 0);
        if (p == 0) {
                char path[64];
                if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
                        _exit(90);
                /* stay dumpable so /proc/self/fd is ours to look into */
                prctl(PR_SET_DUMPABLE, 1);
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                _exit(open(path, O_RDWR | O_CLOEXEC) >= 0 ? 0 : errno == EACCES ? 13 : 91);
        }
        CHECK(waitpid(p, &status, 0) == p);
        CHECK(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static int ro_reopen(int fd)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return open(path, O_RDONLY | O_CLOEXEC);
}

TEST(region_memfds_are_owner_only)
{
        int fd = ashmem_create_region("private", 4096), cfd = -1;
        struct stat st;

        CHECK(fd >= 0);
        CHECK(fstat(fd, &st) == 0);
        /* owner-only, with the sticky bit that marks libashmem's regions */
        CHECK_EQ(st.st_mode & 07777, 01600);
        CHECK_EQ(ashmem_get_control(fd, &cfd), 0);
        CHECK(fstat(cfd, &st) == 0);
        CHECK_EQ(st.st_mode & 07777, 0600);
        close(cfd);
        close(fd);
}

TEST(read_only_descriptor_cannot_be_reopened_writable_by_another_user)
{
        int fd, ro, cfd, cro;

        if (geteuid() != 0) {
                printf("    skipped: needs root to become another user\n");
                return;
        }
        fd = ashmem_create_region("handoff", 4096);
        CHECK(fd >= 0);
        CHECK_EQ(ashmem_get_control(fd, &cfd), 0);
        ro = ro_reopen(fd);
        cro = ro_reopen(cfd);
        CHECK(ro >= 0 && cro >= 0);
        CHECK_EQ(reopen_as_other_user(ro), 13);
        CHECK_EQ(reopen_as_other_user(cro), 13);

        /* the same attempt succeeds on a memfd left world-accessible: the
         * check above fails if the modes are ever left open again */
        CHECK(fchmod(fd, 0666) == 0);
        CHECK_EQ(reopen_as_other_user(ro), 0);
        close(cro);
        close(cfd);
        close(ro);
        close(fd);
}
