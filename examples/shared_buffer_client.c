/* SPDX-License-Identifier: MIT */
/*
 * shared_buffer_client: attach "shared-buffer" (see shared_buffer_server)
 * as a slice, print the int it holds and increment it atomically. Run it
 * three times: it prints 0, 1, 2. It takes the name only if this user
 * owns it (ashmem_broker_attach_owned): another user who took the name
 * first gets no write into us.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ashmem/ashmem.h>

int main(void)
{
        ashmem_broker *b = NULL;
        ashmem_slice *slice = NULL;
        ashmem_heap *heap = NULL;
        ashmem_region_info info;
        char why[256] = "";
        int *value, fd = -1, r;

        r = ashmem_broker_connect(NULL, &b);
        /* names are first come, first served: take "shared-buffer" only
         * from this user (the server runs as us), never from a squatter */
        if (r == 0)
                r = ashmem_broker_attach_owned(b, "shared-buffer", 1, getuid(), &fd, &info);
        /* the broker's words for a refusal ("... belongs to uid N") */
        snprintf(why, sizeof(why), "%s", ashmem_broker_error(b));
        ashmem_broker_close(b);
        if (r == 0) {
                r = ashmem_heap_adopt(fd, 0, &heap);
                close(fd);
        }
        if (r == 0) {
                r = ashmem_slice_new(heap, info.offset, info.length,
                                     &slice);
                ashmem_heap_unref(heap);        /* the slice keeps the region */
        }
        if (r < 0) {
                fprintf(stderr, "shared_buffer_client: shared-buffer: %s\n",
                        why[0] ? why : strerror(-r));
                return 1;
        }
        if (ashmem_slice_size(slice) < sizeof(int)) {
                fprintf(stderr, "shared_buffer_client: shared-buffer is too small\n");
                ashmem_slice_unref(slice);
                return 1;
        }
        value = ashmem_slice_ptr(slice);
        printf("%d\n", __atomic_fetch_add(value, 1, __ATOMIC_SEQ_CST));
        ashmem_slice_unref(slice);
        return 0;
}
