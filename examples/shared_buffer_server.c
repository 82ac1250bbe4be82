/* SPDX-License-Identifier: MIT */
/*
 * shared_buffer_server: the classic shared-buffer service, on libashmem.
 *
 * Like an Android service that makes a MemoryHeapBase, cuts a MemoryBase
 * out of it and registers it with servicemanager: a 4-byte heap, a slice
 * over it holding an int set to 0, shared with the broker as
 * "shared-buffer". The share is transient: when this process dies, the
 * name goes. It waits until SIGTERM or SIGINT.
 *
 * The broker is the one of $ASHMEM_SOCKET (or the user's default socket);
 * start it first (`ashmemctl broker start`). Then run shared_buffer_client.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ashmem/ashmem.h>

int main(void)
{
        ashmem_heap *heap = NULL;
        ashmem_slice *slice = NULL;
        ashmem_broker *b = NULL;
        sigset_t set;
        int *value, sig, r;

        /* wait for the signals with sigwait(): block them first */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
                perror("sigprocmask");
                return 1;
        }
        r = ashmem_heap_new("shared-buffer", sizeof(int), 0, &heap);
        if (r == 0)
                r = ashmem_slice_new(heap, 0, sizeof(int), &slice);
        if (r < 0) {
                fprintf(stderr, "shared_buffer_server: heap: %s\n", strerror(-r));
                goto out;
        }
        value = ashmem_slice_ptr(slice);
        __atomic_store_n(value, 0, __ATOMIC_SEQ_CST);

        r = ashmem_broker_connect(NULL, &b);
        if (r < 0) {
                fprintf(stderr, "shared_buffer_server: no broker (%s); "
                        "start one with 'ashmemctl broker start'\n", strerror(-r));
                goto out;
        }
        /* mode 0600: this user's processes only; transient: gone with us */
        r = ashmem_broker_share_slice(b, slice, "shared-buffer", 0600, 1, NULL);
        if (r < 0) {
                fprintf(stderr, "shared_buffer_server: share: %s\n", strerror(-r));
                goto out;
        }
        printf("shared_buffer_server: sharing \"shared-buffer\" (%zu bytes), pid %d\n",
               ashmem_slice_size(slice), (int)getpid());
        fflush(stdout);

        while ((sig = sigwaitinfo(&set, NULL)) < 0)
                ;
        printf("shared_buffer_server: %s; the value is %d\n", strsignal(sig),
               __atomic_load_n(value, __ATOMIC_SEQ_CST));
        r = 0;
out:
        ashmem_broker_close(b);         /* the transient share goes here */
        ashmem_slice_unref(slice);
        ashmem_heap_unref(heap);
        return r < 0 ? 1 : 0;
}
