/* SPDX-License-Identifier: MIT */
/*
 * devashmem: a test helper written as Android code is, knowing nothing of
 * libashmem: open /dev/ashmem, name it, size it, map it, write, and print
 * what the driver's ioctls answer: "NAME SIZE PROT INODE-MATCHES TEXT".
 *
 *   devashmem NAME SIZE TEXT
 *
 * Exit 1 with the failing call and its errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload/uapi.h"

static int die(const char *what)
{
        fprintf(stderr, "devashmem: %s: %s\n", what, strerror(errno));
        return 1;
}

int main(int argc, char **argv)
{
        char name[ASHMEM_NAME_LEN];
        unsigned long id;
        struct stat st;
        size_t size;
        char *m;
        int fd, got;

        if (argc != 4) {
                fprintf(stderr, "usage: devashmem NAME SIZE TEXT\n");
                return 2;
        }
        size = strtoul(argv[2], NULL, 10);
        fd = open("/dev/ashmem", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return die("open /dev/ashmem");
        if (ioctl(fd, ASHMEM_SET_NAME, argv[1]) < 0)
                return die("ASHMEM_SET_NAME");
        if (ioctl(fd, ASHMEM_SET_SIZE, size) < 0)
                return die("ASHMEM_SET_SIZE");
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return die("mmap");
        snprintf(m, size, "%s", argv[3]);
        if (ioctl(fd, ASHMEM_GET_NAME, name) < 0)
                return die("ASHMEM_GET_NAME");
        if ((got = ioctl(fd, ASHMEM_GET_SIZE)) < 0)
                return die("ASHMEM_GET_SIZE");
        if (ioctl(fd, ASHMEM_GET_FILE_ID, &id) < 0 || fstat(fd, &st) < 0)
                return die("ASHMEM_GET_FILE_ID");
        printf("%s %d %d %s %s\n", name, got, ioctl(fd, ASHMEM_GET_PROT_MASK),
               id == st.st_ino ? "same-inode" : "other-inode", m);
        munmap(m, size);
        close(fd);
        return 0;
}
