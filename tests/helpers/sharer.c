/* SPDX-License-Identifier: MIT */
/*
 * sharer: a test helper that shares hostile memfds with a broker, as a
 * client that does not use ashmem_create_region() could, and says what the
 * broker answered.
 *
 *   sharer SOCKET NAME KIND [MODE]
 *
 * KIND: plain (memfd_create() as it comes: mode 0777, no seals), unsealed
 * (mode 0600, no seals), open (sealed, mode 0777), ok (sealed, mode 0600),
 * chmodback (open, then after the share the sharer fchmods it 0666 again:
 * "ok MODE chmod ERRNO|ok MODE-NOW"),
 * bigctl (a region made by the library, sent with a control memfd of a
 * whole gibibyte), smallctl (the control memfd 64 bytes short).
 * MODE is the name's mode (default 0644). The region is 64 KiB. Prints
 * "ok MODE" (the memfd's inode mode after the share) or "ERRNO MESSAGE",
 * then waits for stdin to close (the share is transient) unless
 * stdin is /dev/null. Exit 0 when the broker said ok, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/broker.h"
#include "lib/internal/errname.h"

#define SIZE 65536

static int plain(int seal, unsigned mode)
{
        int fd = memfd_create("sharer", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0 || ftruncate(fd, SIZE) < 0 || fchmod(fd, mode) < 0 ||
            (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)) {
                perror("sharer");
                exit(2);
        }
        return fd;
}

int main(int argc, char **argv)
{
        const char *kind;
        char req[512], *reply = NULL;
        int fds[2], nfds = 1, rfds[2], nr = 0, r;
        ashmem_broker *b;
        struct stat st;

        if (argc < 4) {
                fprintf(stderr, "usage: sharer SOCKET NAME plain|unsealed|open|ok|chmodback|bigctl|smallctl [MODE]\n");
                return 2;
        }
        kind = argv[3];
        if (!strcmp(kind, "plain")) {
                fds[0] = plain(0, 0777);
        } else if (!strcmp(kind, "unsealed")) {
                fds[0] = plain(0, 0600);
        } else if (!strcmp(kind, "open") || !strcmp(kind, "chmodback")) {
                fds[0] = plain(1, 0777);
        } else if (!strcmp(kind, "ok")) {
                fds[0] = plain(1, 0600);
        } else if (!strcmp(kind, "bigctl") || !strcmp(kind, "smallctl")) {
                int ctl;
                struct stat cst;

                fds[0] = ashmem_create_region("sharer", SIZE);
                if (fds[0] < 0 || ashmem_get_control(fds[0], &ctl) < 0 ||
                    fstat(ctl, &cst) < 0) {
                        perror("sharer: region");
                        return 2;
                }
                /* a copy of the block in a memfd of the wrong size */
                fds[1] = memfd_create("ashmem-control", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                {
                        off_t len = !strcmp(kind, "bigctl") ? (off_t)1 << 30 : cst.st_size - 64;
                        char *p = mmap(NULL, (size_t)cst.st_size, PROT_READ, MAP_SHARED, ctl, 0);
                        if (fds[1] < 0 || p == MAP_FAILED || len <= 0 ||
                            ftruncate(fds[1], len) < 0 || fchmod(fds[1], 0600) < 0 ||
                            pwrite(fds[1], p, (size_t)(len < cst.st_size ? len : cst.st_size), 0) < 0 ||
                            fcntl(fds[1], F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0) {
                                perror("sharer: control");
                                return 2;
                        }
                }
                close(ctl);
                nfds = 2;
        } else {
                fprintf(stderr, "sharer: unknown kind %s\n", kind);
                return 2;
        }
        r = ashmem_broker_connect(argv[1], &b);
        if (r < 0) {
                fprintf(stderr, "sharer: connect: %s\n", strerror(-r));
                return 2;
        }
        snprintf(req, sizeof(req), "{\"op\":\"share\",\"name\":\"%s\",\"mode\":\"%s\",\"transient\":true}",
                 argv[2], argc > 4 ? argv[4] : "0644");
        r = ashmem_broker_call(b, req, fds, nfds, &reply, rfds, &nr);
        for (int i = 0; i < nr; i++)
                close(rfds[i]);
        if (r < 0) {
                const char *msg = reply ? strstr(reply, "\"error\":") : NULL;
                printf("%s %s\n", am_errno_name(-r, "E?"), msg ? msg : "");
        } else if (fstat(fds[0], &st) == 0) {
                printf("ok %04o", (unsigned)(st.st_mode & 07777));
                if (!strcmp(kind, "chmodback")) {
                        int e = fchmod(fds[0], 0666) < 0 ? errno : 0;
                        if (fstat(fds[0], &st) < 0) {
                                perror("sharer: fstat");
                                return 2;
                        }
                        printf(" chmod %s %04o", e ? am_errno_name(e, "E?") : "ok",
                               (unsigned)(st.st_mode & 07777));
                }
                printf("\n");
        }
        fflush(stdout);
        free(reply);
        if (r == 0 && !isatty(0)) {
                char c;
                while (read(0, &c, 1) > 0)
                        ;
        }
        ashmem_broker_close(b);
        return r < 0;
}
