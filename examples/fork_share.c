/* SPDX-License-Identifier: MIT */
/*
 * fork_share: the smallest ashmem program. Create a region, map it, fork;
 * the child writes, the parent reads what the child wrote, then the
 * parent unpins a page, purges it, and learns on re-pin that it was lost.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ashmem/ashmem.h>

int main(void)
{
        int fd = ashmem_create_region("fork-share", 2 * 4096);
        char *p;
        pid_t pid;
        int status;

        if (fd < 0) {
                perror("ashmem_create_region");
                return 1;
        }
        p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                perror("mmap");
                return 1;
        }
        printf("parent: created region \"fork-share\", %d bytes, driver %s\n",
               ashmem_get_size_region(fd), ashmem_driver_name());
        pid = fork();
        if (pid < 0) {
                perror("fork");
                return 1;
        }
        if (pid == 0) {
                snprintf(p, 4096, "hello from child %d", (int)getpid());
                printf("child:  wrote \"%s\"\n", p);
                _exit(0);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
                fprintf(stderr, "child failed\n");
                return 1;
        }
        printf("parent: reads \"%s\"\n", p);

        strcpy(p + 4096, "cache that may be dropped");
        if (ashmem_unpin_region(fd, 4096, 4096) < 0) {
                perror("ashmem_unpin_region");
                return 1;
        }
        printf("parent: unpinned page 1; pin status of the region: %s\n",
               ashmem_pin_status(fd, 0, 0) == ASHMEM_IS_PINNED ? "pinned" : "unpinned");
        printf("parent: purge reclaimed %d page(s)\n", ashmem_purge(fd));
        printf("parent: re-pin says %s; page 1 now reads \"%s\"\n",
               ashmem_pin_region(fd, 4096, 4096) == ASHMEM_WAS_PURGED ? "was-purged" : "not-purged",
               p + 4096);
        munmap(p, 2 * 4096);
        close(fd);
        return 0;
}
