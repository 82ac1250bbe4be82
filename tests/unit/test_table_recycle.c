/* SPDX-License-Identifier: MIT */
/*
 * Control blocks kept for reuse: a block that no other process can have
 * (made here, its descriptor never handed out, not inherited by a fork
 * child) outlives its region as a spare, and the next region needing a
 * block of its size takes it as a fresh block. Every way a block can leave
 * the process makes it unreusable; nothing in flight on the old region
 * ever sees it reused; a region whose entry was dropped while it was still
 * open cannot reach its old block once another region has it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "ashmem/broker.h"
#include "../../drivers/memfd/memfd.h"
#include "lib/internal/forget.h"
#include "t.h"

#define MAXC 256

static size_t ps(void)
{
        return (size_t)sysconf(_SC_PAGESIZE);
}

struct inodes {
        ino_t *v;
        int n;
};

static void add_inode(int cfd, void *arg)
{
        struct inodes *in = arg;
        struct stat st;

        CHECK_EQ(fstat(cfd, &st), 0);
        CHECK(in->n < MAXC);
        in->v[in->n++] = st.st_ino;
}

/* The inode numbers of this process's control block descriptors. */
static int ctl_inodes(ino_t *v)
{
        struct inodes in = { v, 0 };

        CHECK_EQ(t_control_walk(add_inode, &in), in.n);
        return in.n;
}

static int has_ino(const ino_t *v, int n, ino_t ino)
{
        for (int i = 0; i < n; i++)
                if (v[i] == ino)
                        return 1;
        return 0;
}

struct block_of {
        struct stat data;       /* the region's */
        ino_t ctl;              /* the block whose header names it, or 0 */
};

static void block_names(int cfd, void *arg)
{
        struct block_of *w = arg;
        struct stat cst;
        const struct amc_block *b;

        CHECK_EQ(fstat(cfd, &cst), 0);
        b = mmap(NULL, sizeof(*b), PROT_READ, MAP_SHARED, cfd, 0);
        CHECK(b != MAP_FAILED);
        if (b->data_ino == (uint64_t)w->data.st_ino && b->data_dev == (uint64_t)w->data.st_dev) {
                CHECK_EQ(w->ctl, 0);
                w->ctl = cst.st_ino;
        }
        munmap((void *)b, sizeof(*b));
}

/* The inode of the control block this process keeps for region fd (0 if
 * none): the one whose header names fd's memfd, read through a read-only
 * mapping of each control descriptor (nothing handed out). */
static ino_t block_of(int fd)
{
        struct block_of w = { .ctl = 0 };

        CHECK_EQ(fstat(fd, &w.data), 0);
        t_control_walk(block_names, &w);
        return w.ctl;
}

/* A region of `pages` pages with its control block made (one unpin and
 * pin), and the inode of that block. */
static int region_with_block(const char *name, size_t pages, ino_t *ctl)
{
        int fd = ashmem_create_region(name, pages * ps());

        CHECK(fd >= 0);
        CHECK_EQ(ashmem_unpin_region(fd, 0, ps()), 0);
        CHECK_EQ(ashmem_pin_region(fd, 0, ps()), ASHMEM_NOT_PURGED);
        if (ctl) {
                *ctl = block_of(fd);
                CHECK(*ctl != 0);
        }
        return fd;
}

/* Close a region and drop its entry at once (the path a collection takes
 * for a region it finds gone). */
static void drop(int fd)
{
        struct stat st;

        CHECK_EQ(fstat(fd, &st), 0);
        CHECK_EQ(close(fd), 0);
        CHECK_EQ(am_table_forget(&st), 1);
}

TEST(a_block_no_one_else_had_is_reused_as_a_fresh_block)
{
        size_t P = ps();
        ino_t a_ctl, v[MAXC];
        int a, b, base, n, cfd;
        char map[4], *m;
        ashmem_stats s;
        struct stat st;
        struct amc_block *blk;

        base = ctl_inodes(v);
        /* A's block made dirty: pages unpinned, purged, counted */
        a = region_with_block("a", 4, &a_ctl);
        CHECK(a_ctl != 0);
        m = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
        CHECK(m != MAP_FAILED);
        memset(m, 0x5a, 4 * P);
        CHECK_EQ(munmap(m, 4 * P), 0);
        CHECK_EQ(ashmem_unpin_region(a, 0, 0), 0);
        CHECK_EQ(ashmem_purge(a), 4);
        CHECK_EQ(ashmem_unpin_region(a, P, P), 0);
        CHECK_EQ(ashmem_set_prot_region(a, PROT_READ | PROT_WRITE), 0);
        drop(a);
        /* kept: still open, no region's */
        n = ctl_inodes(v);
        CHECK_EQ(n, base + 1);
        CHECK(has_ino(v, n, a_ctl));

        /* B, of A's size: its first unpin takes A's block, and finds it
         * as a new block would be */
        b = ashmem_create_region("b", 4 * P);
        CHECK(b >= 0);
        CHECK_EQ(ashmem_pin_status(b, 0, 0), ASHMEM_IS_PINNED);
        CHECK_EQ(ashmem_unpin_region(b, 0, P), 0);
        n = ctl_inodes(v);
        CHECK_EQ(n, base + 1);
        CHECK(has_ino(v, n, a_ctl));
        CHECK_EQ(ashmem_get_page_map(b, map, 4), 0);
        CHECK(memcmp(map, "uPPP", 4) == 0);
        CHECK_EQ(ashmem_get_stats(b, &s), 0);
        CHECK_EQ(s.pinned, 3);
        CHECK_EQ(s.unpinned, 1);
        CHECK_EQ(s.purged, 0);
        CHECK_EQ(s.purges, 0);
        CHECK_EQ(s.pages_reclaimed, 0);
        CHECK_EQ(ashmem_get_prot(b), PROT_READ | PROT_WRITE | PROT_EXEC);
        CHECK_EQ(ashmem_pin_region(b, 0, 0), ASHMEM_NOT_PURGED);
        CHECK_EQ(ashmem_pin_status(b, 0, 0), ASHMEM_IS_PINNED);
        /* its header is B's: identity and size (a holder attaching it
         * checks them against B's memfd) */
        CHECK_EQ(ashmem_get_control(b, &cfd), 0);
        CHECK_EQ(fstat(b, &st), 0);
        blk = mmap(NULL, sizeof(*blk), PROT_READ, MAP_SHARED, cfd, 0);
        CHECK(blk != MAP_FAILED);
        CHECK_EQ(blk->magic, AMC_MAGIC);
        CHECK_EQ(blk->data_ino, (uint64_t)st.st_ino);
        CHECK_EQ(blk->data_dev, (uint64_t)st.st_dev);
        CHECK_EQ(blk->size, 4 * P);
        CHECK_EQ(blk->name[0], 0);
        CHECK_EQ(blk->purges, 0);
        CHECK_EQ(blk->unpinned_ns != 0, 1);
        CHECK_EQ(munmap(blk, sizeof(*blk)), 0);
        CHECK_EQ(ashmem_set_control(b, cfd), 0);
        close(cfd);
        close(b);
}

TEST(a_block_is_reused_only_for_a_region_of_its_size)
{
        ino_t a_ctl, c_ctl, v[MAXC];
        int a, c, base = ctl_inodes(v);

        a = region_with_block("a", 4, &a_ctl);
        drop(a);
        /* 300 pages: a block of another size */
        c = region_with_block("c", 300, &c_ctl);
        CHECK(c_ctl != 0 && c_ctl != a_ctl);
        CHECK_EQ(ctl_inodes(v), base + 2);
        close(c);
        CHECK_EQ(ashmem_collect(), 1);
        CHECK_EQ(ctl_inodes(v), base);
}

/* Every way out: a block whose descriptor was handed out (what the
 * broker hand-off, share and the exec hand-off use) is closed with its
 * region, never reused. */
TEST(a_block_handed_out_is_never_reused)
{
        ino_t a_ctl, b_ctl, v[MAXC];
        int a, b, cfd, base = ctl_inodes(v);

        a = region_with_block("a", 4, &a_ctl);
        CHECK_EQ(ashmem_get_control(a, &cfd), 0);
        CHECK_EQ(close(cfd), 0);
        drop(a);
        CHECK_EQ(ctl_inodes(v), base);
        b = region_with_block("b", 4, &b_ctl);
        CHECK(b_ctl != 0 && b_ctl != a_ctl);
        close(b);
}

/* A block received from elsewhere (set_control) is not this process's to
 * reuse either. */
TEST(a_received_block_is_never_reused)
{
        ino_t a_ctl, b_ctl, v[MAXC];
        int a, dup_a, b, cfd, base = ctl_inodes(v);
        struct stat st;

        a = region_with_block("a", 4, &a_ctl);
        CHECK_EQ(ashmem_get_control(a, &cfd), 0);
        /* a fresh entry from the received descriptor, as a receiver has */
        CHECK_EQ(fstat(a, &st), 0);
        CHECK_EQ(am_table_forget(&st), 1);
        dup_a = a;
        CHECK_EQ(ashmem_set_control(dup_a, cfd), 0);
        close(cfd);
        drop(dup_a);
        CHECK_EQ(ctl_inodes(v), base);
        b = region_with_block("b", 4, &b_ctl);
        CHECK(b_ctl != a_ctl);
        close(b);
}

/* After fork() the blocks that existed then are the child's too: the
 * parent never reuses one for another region (the child would pin that
 * region's pages), and the child does not keep the parent's spares. */
TEST(blocks_existing_at_fork_are_never_reused)
{
        size_t P = ps();
        ino_t a_ctl, s_ctl, b_ctl, v[MAXC];
        int a, s, b, go[2], done[2], status, base = ctl_inodes(v);
        char map[4], c;
        pid_t pid;

        a = region_with_block("a", 4, &a_ctl);
        s = region_with_block("spare", 4, &s_ctl);
        drop(s);                        /* a spare in the parent */
        CHECK_EQ(ctl_inodes(v), base + 2);
        CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
        CHECK_EQ(pipe2(done, O_CLOEXEC), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                int n;
                alarm(10);      /* a parent that failed sends nothing */
                close(go[1]);
                close(done[0]);
                n = ctl_inodes(v);
                /* the parent's spare is not the child's */
                if (n != base + 1 || has_ino(v, n, s_ctl) || !has_ino(v, n, a_ctl))
                        _exit(3);
                if (read(go[0], &c, 1) != 1)
                        _exit(4);
                /* A, still held here: every page unpinned */
                if (ashmem_unpin_region(a, 0, 0) != 0)
                        _exit(5);
                if (write(done[1], "d", 1) != 1)
                        _exit(6);
                _exit(0);
        }
        close(go[0]);
        close(done[1]);
        /* the parent lets go of A; its block is the child's too */
        drop(a);
        CHECK(!has_ino(v, ctl_inodes(v), a_ctl));
        /* B of A's size takes the parent's spare, never A's block */
        b = region_with_block("b", 4, &b_ctl);
        CHECK_EQ(b_ctl, s_ctl);
        CHECK_EQ(ctl_inodes(v), base + 1);
        CHECK_EQ(ashmem_unpin_region(b, 2 * P, P), 0);
        CHECK_EQ(write(go[1], "g", 1), 1);
        CHECK_EQ(read(done[0], &c, 1), 1);
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
        /* the child's unpin of A touched nothing of B */
        CHECK_EQ(ashmem_get_page_map(b, map, 4), 0);
        CHECK(memcmp(map, "PPuP", 4) == 0);
        close(b);
        close(go[1]);
        close(done[0]);
}

/* A thread that looked A up before A's entry went still uses A's block
 * (its cache holds the entry): no region gets that block until the thread
 * lets go. */
struct holder {
        int fd;
        pthread_barrier_t *used, *let_go, *gone;
        int status;
};

static void *holder_main(void *arg)
{
        struct holder *h = arg;

        h->status = ashmem_pin_status(h->fd, 0, 0);
        pthread_barrier_wait(h->used);
        pthread_barrier_wait(h->let_go);
        am_forget_thread();
        pthread_barrier_wait(h->gone);
        return NULL;
}

TEST(a_block_in_use_by_another_thread_is_not_reused)
{
        pthread_barrier_t used, let_go, gone;
        struct holder h;
        pthread_t t;
        ino_t a_ctl, b_ctl, c_ctl, v[MAXC];
        int a, b, c, base = ctl_inodes(v);

        a = region_with_block("a", 4, &a_ctl);
        CHECK_EQ(ashmem_unpin_region(a, 0, 0), 0);
        CHECK_EQ(pthread_barrier_init(&used, NULL, 2), 0);
        CHECK_EQ(pthread_barrier_init(&let_go, NULL, 2), 0);
        CHECK_EQ(pthread_barrier_init(&gone, NULL, 2), 0);
        h = (struct holder){ a, &used, &let_go, &gone, -1 };
        CHECK_EQ(pthread_create(&t, NULL, holder_main, &h), 0);
        pthread_barrier_wait(&used);
        drop(a);
        /* out of the table, but the thread's cache still holds it */
        b = region_with_block("b", 4, &b_ctl);
        CHECK(b_ctl != 0 && b_ctl != a_ctl);
        CHECK(has_ino(v, ctl_inodes(v), a_ctl));
        pthread_barrier_wait(&let_go);
        pthread_barrier_wait(&gone);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(h.status, ASHMEM_IS_UNPINNED);
        /* let go: now a spare, and the next region's */
        c = region_with_block("c", 4, &c_ctl);
        CHECK_EQ(ctl_inodes(v), base + 2);
        CHECK(has_ino(v, base + 2, a_ctl));
        CHECK_EQ(ashmem_pin_status(c, 0, 0), ASHMEM_IS_PINNED);
        close(b);
        close(c);
        pthread_barrier_destroy(&used);
        pthread_barrier_destroy(&let_go);
        pthread_barrier_destroy(&gone);
}

/* What a collection racing a renumbered descriptor can do: drop the entry
 * of a region still open. Its block may then go to another region; the
 * old region cannot reach it (the table is keyed by the data memfd's
 * identity): it answers ENOLCK, and nothing it does changes the other
 * region's pin state or data. */
TEST(a_region_dropped_while_open_cannot_reach_its_reused_block)
{
        size_t P = ps();
        ino_t a_ctl, b_ctl;
        int a, b, old = ashmem_broker_auto_lookup(0);
        struct stat st;
        char map[4], *ma, *mb;

        a = region_with_block("a", 4, &a_ctl);
        ma = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
        CHECK(ma != MAP_FAILED);
        memset(ma, 'a', 4 * P);
        CHECK_EQ(ashmem_unpin_region(a, 3 * P, P), 0);
        CHECK_EQ(fstat(a, &st), 0);
        CHECK_EQ(am_table_forget(&st), 1);      /* a wrong drop */
        b = region_with_block("b", 4, &b_ctl);
        CHECK_EQ(b_ctl, a_ctl);                 /* B has A's old block */
        mb = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
        CHECK(mb != MAP_FAILED);
        memset(mb, 'b', 4 * P);
        CHECK_EQ(ashmem_unpin_region(b, P, P), 0);
        /* A: no pin state, and it says so */
        CHECK_ERRNO(ashmem_unpin_region(a, 0, 0), ENOLCK);
        CHECK_ERRNO(ashmem_pin_region(a, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_pin_status(a, 0, 0), ENOLCK);
        CHECK_NEG(ashmem_purge(a), ENOLCK);
        /* B's state is its own */
        CHECK_EQ(ashmem_get_page_map(b, map, 4), 0);
        CHECK(memcmp(map, "PuPP", 4) == 0);
        CHECK_EQ(ashmem_purge(b), 1);
        CHECK_EQ(ashmem_get_page_map(b, map, 4), 0);
        CHECK(memcmp(map, "PxPP", 4) == 0);
        /* B's purge punched B's page only; A's data is all there */
        for (size_t i = 0; i < 4 * P; i++)
                if (ma[i] != 'a')
                        t_fail(__FILE__, __LINE__, "A's byte %zu is %d", i, ma[i]);
        CHECK_EQ(mb[P], 0);
        CHECK_EQ(mb[0], 'b');
        munmap(ma, 4 * P);
        munmap(mb, 4 * P);
        close(a);
        close(b);
        (void)ashmem_broker_auto_lookup(old);
}

/* n regions (at most 80) whose blocks were made, then dropped, which may
 * leave their blocks as spares; the control descriptors there were before. */
static int blocks_dropped(const char *name, int n)
{
        int fds[80], base = t_control_fds();

        CHECK(n <= 80);
        for (int i = 0; i < n; i++)
                fds[i] = region_with_block(name, 2, NULL);
        for (int i = 0; i < n; i++)
                drop(fds[i]);
        return base;
}

TEST(spares_are_bounded_and_given_back_by_a_collection)
{
        int base = blocks_dropped("many", 80);

        /* at most 64 kept */
        CHECK_EQ(t_control_fds(), base + 64);
        CHECK_EQ(ashmem_collect(), 0);
        CHECK_EQ(t_control_fds(), base);
}

/* A spare no region takes goes after two automatic collections. */
TEST(spares_no_region_takes_are_let_go)
{
        int base = blocks_dropped("idle", 8);

        CHECK_EQ(t_control_fds(), base + 8);
        /* regions that never need a block: the table collects itself
         * every 64 or so creations */
        for (int i = 0; i < 400; i++) {
                int fd = ashmem_create_region("lazy", ps());
                CHECK(fd >= 0);
                close(fd);
        }
        CHECK_EQ(t_control_fds(), base);
}

/* A process that forgets its regions itself (the broker) keeps no spare
 * (nothing would age it). */
TEST(a_process_that_forgets_by_itself_keeps_no_spares)
{
        ino_t v[MAXC];
        int a, base = ctl_inodes(v);

        am_manual_forget(1);
        a = region_with_block("a", 2, NULL);
        drop(a);
        CHECK_EQ(ctl_inodes(v), base);
        am_manual_forget(0);
}
