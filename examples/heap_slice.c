/* SPDX-License-Identifier: MIT */
/*
 * heap_slice: a heap (a region and its one mapping in this process) and a
 * slice (an offset+length view of it), the C counterparts of Android's
 * MemoryHeapBase and MemoryBase.
 *
 * The parent makes a 4-page heap and a slice of 64 bytes in its second
 * page, writes a message through the slice, and forks. The child adopts the
 * heap's descriptor read-only (as a process that was handed the descriptor
 * would), makes its own slice at the same offset, and reads the message.
 * Back in the parent, a second heap of the same region shares the first
 * one's mapping; then the slice's page is unpinned, purged, and the re-pin
 * through the slice reports the loss. Pinning through a heap or a slice
 * makes no system call.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ashmem/ashmem.h>

static int fail(const char *what, int err)
{
        fprintf(stderr, "heap_slice: %s: %s\n", what, strerror(-err));
        return 1;
}

/* The child: adopt the region read-only and read the slice's bytes. */
static int child(int fd, size_t offset, size_t length, const char *expect)
{
        ashmem_heap *heap;
        ashmem_slice *slice;
        int r = ashmem_heap_adopt(fd, ASHMEM_HEAP_READ_ONLY, &heap), ok;

        if (r < 0)
                return fail("child: ashmem_heap_adopt", r);
        r = ashmem_slice_new(heap, offset, length, &slice);
        if (r < 0)
                return fail("child: ashmem_slice_new", r);
        printf("child:  adopted the heap read-only at %p; slice reads \"%s\"\n",
               ashmem_heap_base(heap), (char *)ashmem_slice_ptr(slice));
        ok = strcmp(ashmem_slice_ptr(slice), expect) == 0;
        ashmem_slice_unref(slice);
        ashmem_heap_unref(heap);
        fflush(stdout);         /* the caller leaves with _exit() */
        return ok ? 0 : 1;
}

int main(void)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        ashmem_heap *heap, *again;
        ashmem_slice *slice;
        char name[ASHMEM_NAME_LEN], *msg;
        int r, status;
        pid_t pid;

        r = ashmem_heap_new("frames", 4 * page, 0, &heap);
        if (r < 0)
                return fail("ashmem_heap_new", r);
        ashmem_heap_name(heap, name, sizeof(name));
        printf("parent: heap \"%s\", %zu bytes at %p\n", name, ashmem_heap_size(heap),
               ashmem_heap_base(heap));

        /* 64 bytes at 100 bytes into the second page */
        r = ashmem_slice_new(heap, page + 100, 64, &slice);
        if (r < 0)
                return fail("ashmem_slice_new", r);
        msg = ashmem_slice_ptr(slice);
        snprintf(msg, ashmem_slice_size(slice), "hello through a slice");
        printf("parent: slice at offset %zu, %zu bytes: wrote \"%s\"\n",
               ashmem_slice_offset(slice), ashmem_slice_size(slice), msg);

        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                perror("fork");
                return 1;
        }
        if (pid == 0)
                _exit(child(ashmem_heap_fd(heap), ashmem_slice_offset(slice),
                            ashmem_slice_size(slice), "hello through a slice"));
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
                fprintf(stderr, "heap_slice: the child failed\n");
                return 1;
        }

        /* the heap cache: a second heap of the region shares the mapping */
        r = ashmem_heap_adopt(ashmem_heap_fd(heap), 0, &again);
        if (r < 0)
                return fail("ashmem_heap_adopt", r);
        printf("parent: a second heap of the region maps at %p (%s), %d heaps share it\n",
               ashmem_heap_base(again),
               ashmem_heap_base(again) == ashmem_heap_base(heap) ? "the same" : "another",
               ashmem_heap_mapping_users(again));
        ashmem_heap_unref(again);

        /* pin state through the slice: it covers page 1 */
        r = ashmem_slice_unpin(slice);
        if (r < 0)
                return fail("ashmem_slice_unpin", r);
        printf("parent: unpinned the slice; page 1 is %s, page 0 is %s\n",
               ashmem_heap_pin_status(heap, page, page) == ASHMEM_IS_PINNED ? "pinned" : "unpinned",
               ashmem_heap_pin_status(heap, 0, page) == ASHMEM_IS_PINNED ? "pinned" : "unpinned");
        r = ashmem_purge(ashmem_heap_fd(heap));
        if (r < 0)
                return fail("ashmem_purge", r);
        printf("parent: purge reclaimed %d page(s)\n", r);
        r = ashmem_slice_pin(slice);
        if (r < 0)
                return fail("ashmem_slice_pin", r);
        printf("parent: re-pin through the slice says %s; the slice now reads \"%s\"\n",
               r == ASHMEM_WAS_PURGED ? "was-purged" : "not-purged", msg);
        if (r != ASHMEM_WAS_PURGED || msg[0] != 0)
                return 1;

        /* the slice holds a reference on its heap: drop both */
        heap = ashmem_heap_unref(heap);
        slice = ashmem_slice_unref(slice);
        return 0;
}
