/* SPDX-License-Identifier: MIT */
/*
 * shared_buffer_client: attach "shared-buffer" (see shared_buffer_server)
 * as a slice, print the int it holds and increment it atomically. Run it
 * three times: it prints 0, 1, 2.
 */
#include <stdio.h>
#include <string.h>

#include <ashmem/ashmem.h>

int main(void)
{
        ashmem_broker *b = NULL;
        ashmem_slice *slice = NULL;
        int *value, r;

        r = ashmem_broker_connect(NULL, &b);
        if (r == 0)
                r = ashmem_broker_attach_slice(b, "shared-buffer", 1, &slice);
        ashmem_broker_close(b);         /* the slice keeps the region */
        if (r < 0) {
                fprintf(stderr, "shared_buffer_client: shared-buffer: %s\n", strerror(-r));
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
