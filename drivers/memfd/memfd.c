/* SPDX-License-Identifier: MIT */
/*
 * The bundled driver: ashmem regions on memfd.
 *
 * A region is a data memfd (the region descriptor users map) sealed against
 * growing and shrinking and marked as libashmem's (AM_MARK_MODE), plus,
 * once it needs one, a control memfd holding the shared pin state
 * (control.h). A region without a control block has every page pinned; the
 * block is made at the first unpin (or pin), a protection change the seals
 * cannot record, ashmem_get_control(), or a fork(): by this process if it
 * created the region and never gave it a block, else by the broker that
 * holds the region (the lookup). A marked region held without its block
 * anywhere answers ENOLCK, never "always pinned". Every operation on a descriptor costs one fstat() (done by
 * the caller) and a table lookup (read-locked, the lock dropped before the
 * pin state is touched); pin state changes are a compare-and-swap per 32
 * pages of the control block.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ashmem/ashmem.h"
#include "../driver.h"
#include "memfd.h"
#include "lib/internal/page.h"

#define PROT_ALL (PROT_READ | PROT_WRITE | PROT_EXEC)
/* memfd_create() keeps at most this many bytes of a name */
#define MEMFD_NAME_MAX 249

static int probe(void)
{
        int fd = memfd_create("ashmem-probe", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        close(fd);
        return 0;
}

static int owns(int fd, const struct stat *st)
{
        (void)fd;
        return S_ISREG(st->st_mode);
}

/* The name of a memfd from /proc: "/memfd:NAME (deleted)". Returns the
 * length of NAME copied into buf (NUL-terminated), or -ENOTTY for a file
 * that is not a memfd. */
static int proc_memfd_name(int fd, char *buf, size_t len)
{
        char path[64], link[PATH_MAX];
        static const char pre[] = "/memfd:", post[] = " (deleted)";
        ssize_t n;
        size_t nl;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return errno == ENOENT ? -EBADF : -errno;
        link[n] = 0;
        if (strncmp(link, pre, sizeof(pre) - 1) != 0)
                return -ENOTTY;
        nl = (size_t)n - (sizeof(pre) - 1);
        if (nl >= sizeof(post) - 1 &&
            strcmp(link + n - (sizeof(post) - 1), post) == 0)
                nl -= sizeof(post) - 1;
        if (buf) {
                if (nl + 1 > len)
                        return -ERANGE;
                memcpy(buf, link + sizeof(pre) - 1, nl);
                buf[nl] = 0;
        }
        return (int)nl;
}

/* For operations on a descriptor with no control block: is it a memfd? */
static int foreign_check(int fd)
{
        int r = proc_memfd_name(fd, NULL, 0);
        return r < 0 ? r : 0;
}

static int map_control(int ctl_fd, size_t len, int writable, struct amc_ref *ref)
{
        void *m = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0),
                       MAP_SHARED, ctl_fd, 0);
        int r;

        if (m == MAP_FAILED)
                return -errno;
        r = amc_attach(ref, m, len, writable, ctl_fd);
        if (r < 0)
                munmap(m, len);
        return r;
}

/* A control block for region st (size from st), made by this process and
 * installed in the table if this process may still make it: 1 installed,
 * 0 if the region has a block already, or -errno (-ENOLCK: not ours to
 * make). name: stored in the block ("" for none). */
static int make_block(const struct stat *st, const char *name)
{
        size_t ps = am_page_size(), pages, clen;
        struct amc_ref ref;
        int cfd, r;
        void *m;

        pages = ((size_t)st->st_size + ps - 1) / ps;
        clen = amc_block_size(pages);
        if (am_table_spare_take(clen, &m, &cfd)) {
                /* a block of a region gone that no other process ever had:
                 * rewritten whole, it is a fresh block (every page pinned,
                 * nothing purged or purging, no pass under way, tags and
                 * generations zero), and this region's */
                memset(m, 0, clen);
        } else {
                cfd = memfd_create("ashmem-control", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (cfd < 0)
                        return -errno;
                if (fchmod(cfd, 0600) < 0 || ftruncate(cfd, (off_t)clen) < 0 ||
                    fcntl(cfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
                        r = -errno;
                        close(cfd);
                        return r;
                }
                m = mmap(NULL, clen, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
                if (m == MAP_FAILED) {
                        r = -errno;
                        close(cfd);
                        return r;
                }
        }
        /* a region without a block has lost no protection bit but what
         * its seals say, which get_prot() combines with the mask */
        amc_init(m, name ? name : "", (uint64_t)st->st_size, (uint32_t)ps,
                 st->st_dev, st->st_ino, PROT_ALL);
        r = amc_attach(&ref, m, clen, 1, cfd);
        if (r == 0)
                r = am_table_install(st, cfd, &ref);
        /* not installed: still known to this process alone */
        if (r <= 0)
                am_table_spare_put(m, clen, cfd);
        return r;
}

/* The pthread_atfork() maker (table.c). */
static int fork_make(const struct stat *st)
{
        return make_block(st, NULL);
}

static pthread_once_t fork_maker_once = PTHREAD_ONCE_INIT;

static void set_fork_maker(void)
{
        am_table_set_fork_maker(fork_make);
}

/* A block for the region of fd this process created. Its name stays
 * empty: get_name() reads the memfd's, which is the same (and a readlink
 * here would cost a tenth of the block). */
static int make_block_fd(int fd, const struct stat *st)
{
        (void)fd;
        return make_block(st, NULL);
}

static int create_once(const char *name, size_t size)
{
        char mname[MEMFD_NAME_MAX + 1] = "";
        int fd, r;
        struct stat st;

        /* Android's libcutils on memfd: no name is the name "none"; a name
         * memfd_create() cannot keep whole fails rather than being cut */
        if (!name)
                name = "none";
        if (size == 0 || strlen(name) > MEMFD_NAME_MAX)
                return -EINVAL;
        if (size > ASHMEM_SIZE_MAX)
                return -EFBIG;
        pthread_once(&fork_maker_once, set_fork_maker);
        snprintf(mname, sizeof(mname), "%s", name);
        fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        /* memfds are born mode 0777: anyone holding a read-only descriptor
         * could reopen /proc/PID/fd/N read-write. Owner-only modes make the
         * kernel refuse that to every other user, so a read-only handoff
         * stays read-only. The sticky bit is the mark (AM_MARK_MODE). No
         * control block yet: the region is all pinned until it needs one. */
        if (fchmod(fd, AM_MARK_MODE | 0600) < 0 || ftruncate(fd, (off_t)size) < 0 ||
            am_fd_stat(fd, &st) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        r = am_table_insert_lazy(&st);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int am_memfd_make_in_place(int fd, const char *name, size_t size)
{
        struct stat st;
        int seals, r;

        if (!name || size == 0 || strlen(name) >= ASHMEM_NAME_LEN)
                return -EINVAL;
        if (size > ASHMEM_SIZE_MAX)
                return -EFBIG;
        r = foreign_check(fd);
        if (r < 0)
                return r;
        /* a memfd anyone sealed in any way is not one to make over */
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return -errno;
        if (seals)
                return -EINVAL;
        /* owner-only and marked, as a new region (a holder that is not
         * the owner keeps the mode it has, and the region its mark-less
         * "always pinned" answers) */
        if (fchmod(fd, AM_MARK_MODE | 0600) < 0 && errno != EPERM)
                return -errno;
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0 || fstat(fd, &st) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
                return -errno;
        /* no control block yet, as for a region made by create(): this
         * process may make it when it first needs one */
        pthread_once(&fork_maker_once, set_fork_maker);
        r = am_table_insert_lazy(&st);
        return r < 0 ? r : 0;
}

static int marked(int fd, const struct stat *st);

int am_memfd_adopt_made(int fd)
{
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!marked(fd, &st))
                return -EINVAL;
        pthread_once(&fork_maker_once, set_fork_maker);
        r = am_table_insert_lazy(&st);
        return r < 0 ? r : 0;
}

/* The table holds a control descriptor per region until a collection finds
 * the region gone; a process near its descriptor limit may run out before
 * the next collection is due. Out of descriptors, collect and try again
 * (not in a process that forgets its regions itself). */
static int create(const char *name, size_t size)
{
        int r = create_once(name, size);

        if ((r == -EMFILE || r == -ENFILE) && !am_table_manual() &&
            am_table_collect() > 0)
                r = create_once(name, size);
        return r;
}

/* Each operation below looks its entry up under the table's read lock and
 * runs inside it: an argument block, and one callback per operation. */
struct op {
        int fd;
        const struct stat *st;
        size_t off, len;
        int prot;
        void *buf;
        size_t buflen;
        int final;              /* run(): the last pass, answer now */
        int want;               /* WANT_*: what run() must do, then again */
        int noblock;            /* the broker holds the region block-less */
};

enum { WANT_NONE, WANT_LOOKUP, WANT_BLOCK };

/* The library's lookup, handed down by set_lookup(); NULL: none. */
static am_lookup_fn lookup;

static void set_lookup(am_lookup_fn fn)
{
        __atomic_store_n(&lookup, fn, __ATOMIC_RELEASE);
}

/* 1 if fd (stat st) is a data memfd libashmem made: the mark, read from
 * the inode's mode and the seals (never from the /proc link text). */
static int marked(int fd, const struct stat *st)
{
        int seals;

        if (!S_ISREG(st->st_mode) || !(st->st_mode & AM_MARK_MODE))
                return 0;
        seals = fcntl(fd, F_GET_SEALS);
        return seals >= 0 &&
               (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) == (F_SEAL_GROW | F_SEAL_SHRINK);
}

/* An entry with a control block. */
static int has_block(const struct am_entry *e)
{
        return e && e->ref.b;
}

/* A lazy entry this process may still make the block of. A lazy one that
 * lost may_make counts as none: the block lives elsewhere, if anywhere. */
static int lazy_ours(const struct am_entry *e)
{
        return e && e->lazy && __atomic_load_n(&e->may_make, __ATOMIC_RELAXED);
}

/* No pin state for the region: 1 if the operation must ask (the caller
 * returns 0 and run() looks the block up), else 0 with *err the answer
 * to give for a marked region (0: answer as for an unmarked one). */
static int no_state(struct op *o, int *err)
{
        *err = 0;
        if (!marked(o->fd, o->st))
                return 0;
        if (!o->final) {
                o->want = WANT_LOOKUP;
                return 1;
        }
        if (!o->noblock)
                *err = -ENOLCK;
        return 0;
}

/* Run fn on the region's entry, then do what it asked for and run it
 * again, once: make the block of a region this process created (when fn
 * needs one), or ask a running broker for it (the library's lookup, the
 * slow path; it remembers misses), creating it if fn needs one and the
 * broker made the region. */
static int run(const struct stat *st, int (*fn)(struct am_entry *e, void *arg),
               struct op *o, int create)
{
        am_lookup_fn fn_lookup;
        int r;

        o->final = 0;
        o->want = WANT_NONE;
        o->noblock = 0;
        r = am_table_with(st, fn, o);
        if (o->want == WANT_NONE)
                return r;
        o->final = 1;
        if (o->want == WANT_BLOCK) {
                r = make_block_fd(o->fd, st);
                /* out of descriptors: as create() does */
                if ((r == -EMFILE || r == -ENFILE) && !am_table_manual() &&
                    am_table_collect_out_of_fds() > 0)
                        r = make_block_fd(o->fd, st);
                if (r >= 0)
                        return am_table_with(st, fn, o);
                if (r != -ENOLCK)
                        return r;
        }
        fn_lookup = __atomic_load_n(&lookup, __ATOMIC_ACQUIRE);
        if (fn_lookup && fn_lookup(o->fd, st, create) == 1)
                o->noblock = 1;
        return am_table_with(st, fn, o);
}

static int do_name(struct am_entry *e, void *a)
{
        struct op *o = a;
        size_t n;

        /* a block made here has no name: the memfd's is the same */
        if (!has_block(e) || !e->ref.b->name[0])
                return proc_memfd_name(o->fd, o->buf, o->buflen);
        n = strnlen(e->ref.b->name, ASHMEM_NAME_LEN - 1);
        if (n + 1 > o->buflen)
                return -ERANGE;
        memcpy(o->buf, e->ref.b->name, n);
        ((char *)o->buf)[n] = 0;
        return (int)n;
}

static int get_name(int fd, const struct stat *st, char *buf, size_t len)
{
        struct op o = { .fd = fd, .st = st, .buf = buf, .buflen = len };
        return am_table_with(st, do_name, &o);
}

static int get_size(int fd, const struct stat *st, size_t *size)
{
        (void)fd;
        *size = (size_t)st->st_size;
        return 0;
}

static int foreign_prot(int fd)
{
        int seals = fcntl(fd, F_GET_SEALS);

        if (seals < 0)
                return errno == EINVAL ? -ENOTTY : -errno;
        return (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) ?
               PROT_READ | PROT_EXEC : PROT_ALL;
}

static int do_prot(struct am_entry *e, void *a)
{
        struct op *o = a;
        int m;

        if (!has_block(e)) {
                int r = e ? 0 : foreign_check(o->fd);
                return r < 0 ? r : foreign_prot(o->fd);
        }
        /* the stored mask, less what the data memfd's seals forbid: a
         * holder that sealed it against writing itself is seen */
        m = foreign_prot(o->fd);
        if (m < 0)
                return m;
        return amc_prot(&e->ref) & m;
}

static int get_prot(int fd, const struct stat *st)
{
        struct op o = { .fd = fd, .st = st };
        return am_table_with(st, do_prot, &o);
}

static int do_set_prot(struct am_entry *e, void *a)
{
        struct op *o = a;
        int cur;

        if (has_block(e)) {
                /* adding back a bit a seal took away fails too */
                cur = do_prot(e, a);
                if (cur < 0)
                        return cur;
                if (o->prot & ~cur)
                        return -EINVAL;
                return amc_set_prot(&e->ref, o->fd, o->prot);
        }
        /* A memfd with no control block: only the write bit has a home (the
         * seal). A region libashmem made records READ and EXEC in a block
         * made for that; a foreign memfd accepts them unrecorded, as
         * Android's memfd path does. */
        cur = do_prot(e, a);
        if (cur < 0)
                return cur;
        if (o->prot & ~cur)
                return -EINVAL;
        if ((cur & ~PROT_WRITE) & ~o->prot) {
                int err = 0;
                if (lazy_ours(e)) {
                        if (!o->final) {
                                o->want = WANT_BLOCK;
                                return 0;
                        }
                        return -ENOLCK;
                }
                if (no_state(o, &err))
                        return 0;
                if (err)
                        return err;
        }
        if ((cur & PROT_WRITE) && !(o->prot & PROT_WRITE) &&
            fcntl(o->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0)
                return -errno;
        return 0;
}

static int set_prot(int fd, const struct stat *st, int prot)
{
        struct op o = { .fd = fd, .st = st, .prot = prot };

        if (prot & ~PROT_ALL)
                return -EINVAL;
        return run(st, do_set_prot, &o, 1);
}

/* Range check for a region with no control block: the same rules. */
static int foreign_range(const struct op *o, int check)
{
        size_t ps = am_page_size();
        uint64_t end = ((uint64_t)o->st->st_size + ps - 1) / ps * ps, first, count;
        int r = check ? foreign_check(o->fd) : 0;

        if (r < 0)
                return r;
        return am_page_range(o->off, o->len, end, am_page_shift(), &first, &count);
}

static int foreign_writable(int fd)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return -errno;
        return (fl & O_ACCMODE) == O_RDONLY ? -EPERM : 0;
}

/* inlined into each of the three callbacks below: `which` is a constant
 * there (the pin fast path) */
static inline __attribute__((always_inline))
int do_pin(struct am_entry *e, void *a, enum am_pin_op which)
{
        struct op *o = a;
        int r;

        if (__builtin_expect(!has_block(e), 0)) {
                int ours = lazy_ours(e), err = 0;
                r = foreign_range(o, !e);
                if (r == 0 && which != AM_STATUS)
                        r = foreign_writable(o->fd);
                if (r < 0)
                        return r;
                if (ours && which == AM_UNPIN) {
                        /* the first unpin makes the block; on the second
                         * pass, it could not be made */
                        if (!o->final) {
                                o->want = WANT_BLOCK;
                                return 0;
                        }
                        return -ENOLCK;
                }
                if (!ours && no_state(o, &err))
                        return 0;
                if (err)
                        return err;
                return which == AM_STATUS ? ASHMEM_IS_PINNED :
                       which == AM_PIN ? ASHMEM_NOT_PURGED : 0;
        }
        return am_pin_ref(&e->ref, o->off, o->len, which, o->fd);
}

static int do_pin_pin(struct am_entry *e, void *a) { return do_pin(e, a, AM_PIN); }
static int do_pin_unpin(struct am_entry *e, void *a) { return do_pin(e, a, AM_UNPIN); }
static int do_pin_status(struct am_entry *e, void *a) { return do_pin(e, a, AM_STATUS); }

static int pin(int fd, const struct stat *st, size_t off, size_t len)
{
        struct op o = { .fd = fd, .st = st, .off = off, .len = len };
        return run(st, do_pin_pin, &o, 1);
}

static int unpin(int fd, const struct stat *st, size_t off, size_t len)
{
        struct op o = { .fd = fd, .st = st, .off = off, .len = len };
        return run(st, do_pin_unpin, &o, 1);
}

static int pin_status(int fd, const struct stat *st, size_t off, size_t len)
{
        struct op o = { .fd = fd, .st = st, .off = off, .len = len };
        return run(st, do_pin_status, &o, 0);
}

/* A purge checks the seals and punches through a duplicate of the
 * descriptor taken first and checked to be the region the entry was found
 * for: another thread's dup2() onto the descriptor's number meanwhile
 * cannot turn the punches onto another region. */
static int purge_same_region(struct am_entry *e, const struct op *o)
{
        struct stat st;
        int d = fcntl(o->fd, F_DUPFD_CLOEXEC, 3), r;

        if (d < 0)
                return -errno;
        if (fstat(d, &st) < 0)
                r = -errno;
        else if (st.st_dev != o->st->st_dev || st.st_ino != o->st->st_ino)
                r = -EBADF;     /* the number now names another file */
        else
                r = amc_purge(&e->ref, d);
        close(d);
        return r;
}

static int do_purge(struct am_entry *e, void *a)
{
        struct op *o = a;
        int r;

        if (!has_block(e)) {
                int err = 0;
                r = e ? 0 : foreign_check(o->fd);
                if (r == 0)
                        r = foreign_writable(o->fd);
                if (r < 0)
                        return r;
                /* nothing of a region with no block is unpinned */
                if (!lazy_ours(e) && no_state(o, &err))
                        return 0;
                return err;
        }
        return purge_same_region(e, o);
}

static int purge(int fd, const struct stat *st)
{
        struct op o = { .fd = fd, .st = st };
        return run(st, do_purge, &o, 0);
}

static int map(int fd, const struct stat *st, int prot, size_t off,
               size_t len, void **ret)
{
        size_t ps = am_page_size(), size = (size_t)st->st_size;
        int mask;
        void *m;

        if (prot & ~PROT_ALL || off % ps || off >= size)
                return -EINVAL;
        if (len == 0)
                len = size - off;
        if (len > size - off)
                return -EINVAL;
        mask = get_prot(fd, st);
        if (mask < 0)
                return mask;
        if (prot & ~mask)
                return -EPERM;
        m = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)off);
        if (m == MAP_FAILED)
                return -errno;
        *ret = m;
        return 0;
}

static int do_stats(struct am_entry *e, void *a)
{
        struct op *o = a;
        ashmem_stats *s = o->buf;
        size_t ps = am_page_size();
        int r;

        memset(s, 0, sizeof(*s));
        if (has_block(e)) {
                amc_stats(&e->ref, s);
                return 0;
        }
        r = e ? 0 : foreign_check(o->fd);
        if (r < 0)
                return r;
        s->size = (size_t)o->st->st_size;
        s->pages = (s->size + ps - 1) / ps;
        s->pinned = s->pages;
        s->writable_state = foreign_writable(o->fd) == 0;
        return 0;
}

static int do_has_control(struct am_entry *e, void *a)
{
        return has_block(e) && (e->ref.writable || !*(const int *)a);
}

static int has_control(const struct stat *st, int writable)
{
        return am_table_with(st, do_has_control, &writable);
}

static int get_stats(int fd, const struct stat *st, ashmem_stats *ret)
{
        struct op o = { .fd = fd, .st = st, .buf = ret };
        return am_table_with(st, do_stats, &o);
}

static int do_page_map(struct am_entry *e, void *a)
{
        struct op *o = a;
        int r;

        if (has_block(e)) {
                amc_page_map(&e->ref, o->buf, o->buflen);
                return 0;
        }
        r = e ? 0 : foreign_check(o->fd);
        if (r == 0 && !lazy_ours(e)) {
                int err = 0;
                if (no_state(o, &err))
                        return 0;
                r = err;
        }
        if (r == 0)
                memset(o->buf, 'P', o->buflen);
        return r;
}

static int get_page_map(int fd, const struct stat *st, char *map, size_t n)
{
        struct op o = { .fd = fd, .st = st, .buf = map, .buflen = n };
        size_t ps = am_page_size();

        if (n > ((size_t)st->st_size + ps - 1) / ps)
                return -EINVAL;
        return run(st, do_page_map, &o, 0);
}

static int do_get_control(struct am_entry *e, void *a)
{
        struct op *o = a;
        int fd;

        if (!has_block(e)) {
                int r = e ? 0 : foreign_check(o->fd), err = 0;
                if (r < 0)
                        return r;
                /* made now, for handing on */
                if (lazy_ours(e) && !o->final) {
                        o->want = WANT_BLOCK;
                        return 0;
                }
                if (!lazy_ours(e) && no_state(o, &err))
                        return 0;
                return -ENOENT;
        }
        /* the block leaves this process's sole keeping: never reused */
        am_entry_escape(e);
        fd = fcntl(e->ctl_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        *(int *)o->buf = fd;
        return 0;
}

static int get_control(int fd, const struct stat *st, int *ret)
{
        struct op o = { .fd = fd, .st = st, .buf = ret };
        return run(st, do_get_control, &o, 1);
}

int am_memfd_attach_control(int fd, const struct stat *st, int control_fd)
{
        struct stat cst;
        struct amc_ref ref;
        int fl, seals, writable, own, r;

        (void)fd;
        if (fstat(control_fd, &cst) < 0)
                return -errno;
        fl = fcntl(control_fd, F_GETFL);
        seals = fcntl(control_fd, F_GET_SEALS);
        if (fl < 0 || !S_ISREG(cst.st_mode) || seals < 0 ||
            !(seals & F_SEAL_SHRINK) || cst.st_size < (off_t)AMC_HEADER_SIZE)
                return -EINVAL;
        writable = (fl & O_ACCMODE) == O_RDWR;
        r = map_control(control_fd, (size_t)cst.st_size, writable, &ref);
        if (r < 0)
                return r;
        if (ref.b->data_dev != (uint64_t)st->st_dev ||
            ref.b->data_ino != (uint64_t)st->st_ino ||
            ref.size != (uint64_t)st->st_size) {
                r = -EINVAL;
                goto fail;
        }
        own = fcntl(control_fd, F_DUPFD_CLOEXEC, 3);
        if (own < 0) {
                r = -errno;
                goto fail;
        }
        /* the entry's own descriptor: purge locks and liveness checks go
         * through it, never through the caller's */
        ref.ctl_fd = own;
        r = am_table_insert(st, own, &ref);
        if (r > 0)
                return 0;
        close(own);
fail:
        munmap(ref.b, ref.map_len);
        return r;
}

static int set_control(int fd, const struct stat *st, int control_fd)
{
        /* a descriptor that is no region says so (ENOTTY, like every other
         * call), whatever control_fd is */
        int r = foreign_check(fd);

        return r < 0 ? r : am_memfd_attach_control(fd, st, control_fd);
}

const struct am_driver am_driver_memfd = {
        .name = "memfd",
        .probe = probe,
        .owns = owns,
        .create = create,
        .get_name = get_name,
        .get_size = get_size,
        .get_prot = get_prot,
        .set_prot = set_prot,
        .pin = pin,
        .unpin = unpin,
        .pin_status = pin_status,
        .purge = purge,
        .map = map,
        .get_stats = get_stats,
        .get_page_map = get_page_map,
        .get_control = get_control,
        .set_control = set_control,
        .hold = am_memfd_hold,
        .release = am_memfd_release,
        .ref_pin = am_memfd_ref_pin,
        .ref_unpin = am_memfd_ref_unpin,
        .ref_pin_status = am_memfd_ref_pin_status,
        .ref_stats = am_memfd_ref_stats,
        .ref_counts = am_memfd_ref_counts,
        .ref_purging = am_memfd_ref_purging,
        .collect = am_table_collect,
        .forget = am_table_forget,
        .has_control = has_control,
        .set_manual = am_table_set_manual,
        .set_lookup = set_lookup,
};
