/* SPDX-License-Identifier: MIT */
/*
 * The process table of control blocks, keyed by data memfd identity.
 *
 * Lookups take a read lock, changes a write lock. An entry stays until a
 * collection finds that nothing in this process refers to its region any
 * more: no descriptor in /proc/self/fd, no mapping in /proc/self/maps, no
 * hold. A collection runs when the table has doubled since the last one, so
 * its cost is amortised over the creations.
 *
 * The pin fast path takes no lock: each thread caches the last entry it
 * found, with a count on the entry (`cached`) that keeps it from being
 * freed, and the table's generation, which every unlinking of an entry
 * bumps. A call on the cached region while the generation is unchanged uses
 * the entry directly. An entry unlinked while some thread still caches it
 * becomes a zombie: out of the table, its descriptor and mapping kept, and
 * freed by a later change of the table once no thread caches it. A thread
 * lets go of its cached entry on its next lookup that misses, at exit, and
 * (the calling thread) at every collection.
 *
 * A control block made by this process whose descriptor never left it
 * (entry->priv) is known to no other process: when its entry is freed, it
 * is kept as a spare (up to SPARE_MAX blocks, SPARE_BYTES in all) instead
 * of being unmapped and closed, and the next region that needs a block of
 * exactly its size takes it, rewritten as new, instead of making one (five
 * system calls and a page fault saved, and the two of its end). A block
 * escapes for good when its descriptor is handed out (ashmem_get_control,
 * which the broker hand-off, the exec hand-off of libashmem-preload.so and
 * every sharing path go through) and when the process forks (every block
 * existing then; a child drops the spares it inherited). A received block
 * is never private. An entry is freed only once no thread's cache and no
 * hold refers to it, so no operation in flight can see its block reused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "memfd.h"

#define NBUCKETS_MIN 64u

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
/* the device of the memfd superblock, learnt at the first insertion */
static dev_t memfd_dev;
static int have_memfd_dev;
static struct am_idtable table = AM_IDTABLE_INIT(NBUCKETS_MIN);
static struct am_entry *zombies;
static size_t gc_at = NBUCKETS_MIN;
static unsigned long generation;   /* bumped when an entry leaves the table */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* set by a process that forgets its regions itself (the broker): no
 * automatic collection, which scans /proc/self/fd and /proc/self/maps */
static int manual;

/* Spare control blocks (see the top of the file): the mapping, its length
 * (the control memfd's sealed size) and the descriptor. Guarded by lock
 * (written). */
#define SPARE_MAX 64u
#define SPARE_BYTES ((size_t)1 << 20)
struct spare { void *map; size_t len; int fd; int old; };
static struct spare spares[SPARE_MAX];
static unsigned nspares;         /* also read without the lock (atomic) */
static size_t spare_bytes;      /* page-rounded */

static void set_nspares(unsigned n)
{
        __atomic_store_n(&nspares, n, __ATOMIC_RELAXED);
}

static size_t spare_cost(size_t len)
{
        size_t ps = am_page_size();
        return (len + ps - 1) / ps * ps;
}

/* Keep a private block as a spare if there is room: 1 kept, 0 not. With
 * the table write-locked. */
static int spare_keep(void *map, size_t len, int fd)
{
        /* (a process that forgets its regions itself, the broker, runs
         * no collection that would age them: it keeps none) */
        if (!map || fd < 0 || nspares == SPARE_MAX ||
            __atomic_load_n(&manual, __ATOMIC_RELAXED) ||
            spare_bytes + spare_cost(len) > SPARE_BYTES)
                return 0;
        spares[nspares] = (struct spare){ map, len, fd, 0 };
        set_nspares(nspares + 1);
        spare_bytes += spare_cost(len);
        return 1;
}

/* Unmap and close every spare. With the table write-locked (or in a fork
 * child), cancellation disabled. */
static void spares_drain(void)
{
        while (nspares) {
                struct spare *sp = &spares[nspares - 1];
                set_nspares(nspares - 1);
                munmap(sp->map, sp->len);
                close(sp->fd);
        }
        spare_bytes = 0;
}

/* At each collection: unmap and close the spares no region took since
 * the last one (a spare lives two collection periods at most unless it
 * is used), and mark the others. With the table write-locked. */
static void spares_age(void)
{
        unsigned j = 0;

        for (unsigned i = 0; i < nspares; i++) {
                if (spares[i].old) {
                        munmap(spares[i].map, spares[i].len);
                        close(spares[i].fd);
                        spare_bytes -= spare_cost(spares[i].len);
                } else {
                        spares[i].old = 1;
                        spares[j++] = spares[i];
                }
        }
        set_nspares(j);
}

/* This thread's lookup cache. */
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS struct am_entry *tc_entry;
static TLS dev_t tc_dev;
static TLS ino_t tc_ino;
static TLS unsigned long tc_gen;
static TLS int tc_registered;
static pthread_key_t tc_key;
static int tc_key_ok;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

/* Drop this thread's cached entry. With the table locked (read or write). */
static void tc_drop(void)
{
        if (tc_entry) {
                __atomic_sub_fetch(&tc_entry->cached, 1, __ATOMIC_RELAXED);
                tc_entry = NULL;
        }
}

/* At thread exit. */
static void tc_exit(void *unused)
{
        (void)unused;
        pthread_rwlock_rdlock(&lock);
        tc_drop();
        pthread_rwlock_unlock(&lock);
}

static void tc_make_key(void)
{
        tc_key_ok = pthread_key_create(&tc_key, tc_exit) == 0;
}

/* A library unloaded (dlclose) must not leave its destructor to threads
 * that exit later. */
__attribute__((destructor)) static void tc_unload(void)
{
        if (tc_key_ok)
                pthread_key_delete(tc_key);
}

/* The table is write-locked across fork() so that the child gets a
 * consistent copy. The parent unlocks it; the child cannot: glibc tells a
 * writer's unlock from a reader's by the thread id that took the lock, and
 * the child's one thread has another id, so its unlock would be taken for a
 * reader's and leave the lock held for ever. The child has no other thread,
 * so it starts with a fresh lock instead. */
static void before_fork(void) { pthread_rwlock_wrlock(&lock); }

/* After fork() both processes hold every region: a lazy entry left (its
 * block could not be made before the fork, or it was created meanwhile)
 * may no longer get a block from this process alone, or parent and child
 * could each make one. With the table write-locked (or the child's). */
static void lazy_handed_out(void)
{
        for (size_t i = 0; i < table.nbuckets; i++)
                for (struct am_idnode *n = table.buckets[i]; n; n = n->next) {
                        struct am_entry *e = am_id_record(n, struct am_entry, id);
                        if (e->lazy)
                                __atomic_store_n(&e->may_make, 0, __ATOMIC_RELAXED);
                }
}

/* Held by fork_make() from before its scan until after fork(), and by a
 * thread that adds a lazy entry while it does: no region is created
 * between the scan and the fork, so none leaves fork() lazy without a
 * reason (one created there would be no process's to make the block of). */
static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

/* After fork() every control block of the table (and of the zombies) is
 * held by two processes: none may be reused for another region, in the
 * parent or the child. With the table write-locked (or the child's). */
static void blocks_escaped(void)
{
        for (size_t i = 0; i < table.nbuckets; i++)
                for (struct am_idnode *n = table.buckets[i]; n; n = n->next)
                        am_entry_escape(am_id_record(n, struct am_entry, id));
        for (struct am_entry *e = zombies; e; e = e->znext)
                am_entry_escape(e);
}

static void after_fork_parent(void)
{
        lazy_handed_out();
        /* the spares stay: the child closes its copies before fork()
         * returns to it */
        blocks_escaped();
        pthread_rwlock_unlock(&lock);
        pthread_mutex_unlock(&lazy_lock);
}

static void after_fork_child(void)
{
        pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
        pthread_mutex_t fresh_lazy = PTHREAD_MUTEX_INITIALIZER;

        lock = fresh;
        lazy_lock = fresh_lazy;
        lazy_handed_out();
        blocks_escaped();
        /* the parent's spares are the parent's: a block is private to
         * one process or to none */
        spares_drain();
        /* the caches of the threads that did not come along are gone */
        for (size_t i = 0; i < table.nbuckets; i++)
                for (struct am_idnode *n = table.buckets[i]; n; n = n->next)
                        am_id_record(n, struct am_entry, id)->cached = 0;
        for (struct am_entry *e = zombies; e; e = e->znext)
                e->cached = 0;
        if (tc_entry)
                tc_entry->cached = 1;
}

/* The driver's maker of control blocks, for fork_make(). */
static int (*fork_maker)(const struct stat *st);

void am_table_set_fork_maker(int (*fn)(const struct stat *st))
{
        __atomic_store_n(&fork_maker, fn, __ATOMIC_RELEASE);
}

/* Before fork(), other threads still running: make the control block of
 * every region this process may still make one for, so that parent and
 * child share it. The identities are copied under the read lock and the
 * blocks made without it (making one takes the write lock). */
static void fork_make(void)
{
        int (*fn)(const struct stat *) = __atomic_load_n(&fork_maker, __ATOMIC_ACQUIRE);
        struct stat *v = NULL;
        size_t n = 0, cap = 0;
        int cs;

        /* kept until after fork() (after_fork_parent, after_fork_child) */
        pthread_mutex_lock(&lazy_lock);
        if (!fn)
                return;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_rdlock(&lock);
        for (size_t i = 0; i < table.nbuckets; i++)
                for (struct am_idnode *p = table.buckets[i]; p; p = p->next) {
                        struct am_entry *e = am_id_record(p, struct am_entry, id);
                        if (!e->lazy || !__atomic_load_n(&e->may_make, __ATOMIC_RELAXED))
                                continue;
                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 16;
                                struct stat *nv = realloc(v, nc * sizeof(*v));
                                if (!nv)
                                        goto out;       /* the rest stay lazy */
                                v = nv;
                                cap = nc;
                        }
                        memset(&v[n], 0, sizeof(v[n]));
                        v[n].st_dev = (dev_t)e->id.dev;
                        v[n].st_ino = (ino_t)e->id.ino;
                        v[n].st_size = (off_t)e->ref.size;
                        n++;
                }
out:
        pthread_rwlock_unlock(&lock);
        for (size_t i = 0; i < n; i++)
                (void)fn(&v[i]);
        free(v);
        pthread_setcancelstate(cs, NULL);
}

static void register_atfork(void)
{
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
        /* registered later, so it runs before before_fork() */
        pthread_atfork(fork_make, NULL, NULL);
}

static struct am_entry *find(dev_t dev, ino_t ino)
{
        struct am_idnode *n = am_idtable_find(&table, dev, ino, 0);
        return n ? am_id_record(n, struct am_entry, id) : NULL;
}

static __attribute__((noinline)) int with_locked(const struct stat *st,
                       int (*op)(struct am_entry *e, void *arg), void *arg)
{
        struct am_entry *e;

        pthread_rwlock_rdlock(&lock);
        if (tc_entry && tc_gen != __atomic_load_n(&generation, __ATOMIC_RELAXED))
                tc_drop();
        e = find(st->st_dev, st->st_ino);
        if (e && e != tc_entry) {
                if (!tc_registered) {
                        /* a destructor lets go of the cache at thread exit */
                        pthread_once(&tc_once, tc_make_key);
                        tc_registered = tc_key_ok &&
                                        pthread_setspecific(tc_key, &tc_registered) == 0;
                }
                tc_drop();
                __atomic_add_fetch(&e->cached, 1, __ATOMIC_RELAXED);
                tc_entry = e;
                tc_dev = st->st_dev;
                tc_ino = st->st_ino;
                tc_gen = __atomic_load_n(&generation, __ATOMIC_RELAXED);
        }
        pthread_rwlock_unlock(&lock);
        /* The entry is this thread's cached one now: it cannot be freed
         * until this thread lets go of it, so op runs without the table
         * lock (op may wait, bounded, on another process's purge). */
        return op(e && e->ref.size == (uint64_t)st->st_size ? e : NULL, arg);
}

int am_table_with(const struct stat *st,
                  int (*op)(struct am_entry *e, void *arg), void *arg)
{
        struct am_entry *e = tc_entry;

        /* The cached entry cannot be freed while this thread holds it; an
         * unchanged generation says it is still the table's entry. */
        if (e && tc_ino == st->st_ino && tc_dev == st->st_dev &&
            tc_gen == __atomic_load_n(&generation, __ATOMIC_ACQUIRE))
                /* an entry is used only for a descriptor whose size agrees
                 * with its block's geometry (a reused identity does not) */
                return op(e->ref.size == (uint64_t)st->st_size ? e : NULL, arg);
        return with_locked(st, op, arg);
}

/* Free an entry no cache or hold refers to any more (write-locked): its
 * block kept as a spare if it is private and there is room, else unmapped
 * and closed. */
static void entry_free(struct am_entry *e)
{
        if (__atomic_load_n(&e->priv, __ATOMIC_ACQUIRE) && e->ref.writable &&
            spare_keep(e->ref.b, e->ref.map_len, e->ctl_fd)) {
                free(e);
                return;
        }
        if (e->ref.b)
                munmap(e->ref.b, e->ref.map_len);
        if (e->ctl_fd >= 0)
                close(e->ctl_fd);
        free(e);
}

int am_table_spare_take(size_t len, void **map, int *ctl_fd)
{
        int r = 0, cs;

        if (!__atomic_load_n(&nspares, __ATOMIC_RELAXED))
                return 0;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        /* the most recent first: its lines are the likeliest in cache */
        for (unsigned i = nspares; i-- > 0;) {
                if (spares[i].len != len)
                        continue;
                *map = spares[i].map;
                *ctl_fd = spares[i].fd;
                spare_bytes -= spare_cost(len);
                spares[i] = spares[nspares - 1];
                set_nspares(nspares - 1);
                r = 1;
                break;
        }
        pthread_rwlock_unlock(&lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}

void am_table_spare_put(void *map, size_t len, int ctl_fd)
{
        int kept, cs;

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        kept = spare_keep(map, len, ctl_fd);
        pthread_rwlock_unlock(&lock);
        if (!kept) {
                munmap(map, len);
                close(ctl_fd);
        }
        pthread_setcancelstate(cs, NULL);
}

/* An entry out of the table (write-locked): freed, or a zombie while some
 * thread's cache holds it. */
static void entry_unlinked(struct am_entry *e)
{
        __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
        if (__atomic_load_n(&e->cached, __ATOMIC_RELAXED) == 0) {
                entry_free(e);
        } else {
                e->znext = zombies;
                zombies = e;
        }
}

/* Free the zombies no cache holds any more (write-locked). */
static void free_zombies(void)
{
        struct am_entry **pp = &zombies;

        while (*pp) {
                struct am_entry *e = *pp;
                if (__atomic_load_n(&e->cached, __ATOMIC_RELAXED) == 0) {
                        *pp = e->znext;
                        entry_free(e);
                } else {
                        pp = &e->znext;
                }
        }
}

/* Identities this process still refers to: a sorted array of inode numbers
 * of files on dev, from open descriptors and mappings. */
struct inoset { ino_t *v; size_t n, cap; };

static int inoset_add(struct inoset *s, ino_t ino)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                ino_t *v = realloc(s->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = ino;
        return 0;
}

static int cmp_ino(const void *a, const void *b)
{
        ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
        return x < y ? -1 : x > y;
}

/* The descriptors the table itself keeps (control blocks of entries and
 * zombies, spares): no region is behind them, so a scan does not fstat()
 * them. None is closed while the table is write-locked (the reserve
 * descriptor is, and is not in the set). A sorted array, built with the
 * table write-locked. */
struct fdset { int *v; size_t n, cap; };

static int fdset_add(struct fdset *s, int fd)
{
        if (fd < 0)
                return 0;
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                int *v = realloc(s->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = fd;
        return 0;
}

static int cmp_int(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;
        return x < y ? -1 : x > y;
}

/* (a set that could not be built is empty: every descriptor is looked at) */
static void own_fds(struct fdset *s)
{
        int r = 0;

        for (size_t i = 0; r == 0 && i < table.nbuckets; i++)
                for (struct am_idnode *p = table.buckets[i]; r == 0 && p; p = p->next)
                        r = fdset_add(s, am_id_record(p, struct am_entry, id)->ctl_fd);
        for (struct am_entry *e = zombies; r == 0 && e; e = e->znext)
                r = fdset_add(s, e->ctl_fd);
        for (unsigned i = 0; r == 0 && i < nspares; i++)
                r = fdset_add(s, spares[i].fd);
        if (r < 0)
                s->n = 0;
        else if (s->n)
                qsort(s->v, s->n, sizeof(*s->v), cmp_int);
}

static int own_fd(const struct fdset *own, int fd)
{
        return own->n && bsearch(&fd, own->v, own->n, sizeof(*own->v), cmp_int) != NULL;
}

/* Parse an unsigned number in base 16 or 10 at *p, up to the character
 * stop: 0 and *p past stop, or -1. */
static int parse_num(const char **p, unsigned base, char stop, uint64_t *v)
{
        const char *q = *p;
        uint64_t x = 0;

        for (; *q != stop; q++) {
                unsigned d;
                if (*q >= '0' && *q <= '9')
                        d = (unsigned)(*q - '0');
                else if (base == 16 && *q >= 'a' && *q <= 'f')
                        d = (unsigned)(*q - 'a' + 10);
                else
                        return -1;
                if (x > (UINT64_MAX - d) / base)
                        return -1;
                x = x * base + d;
        }
        if (q == *p)
                return -1;
        *v = x;
        *p = q + 1;
        return 0;
}

/* The device and inode of a /proc/self/maps line
 * ("start-end perms offset major:minor inode path"): 0, or -1. */
static int maps_line(const char *line, dev_t *dev, uint64_t *ino)
{
        uint64_t maj, min;

        /* skip the address range, the permissions and the offset */
        for (int f = 0; f < 3; f++) {
                line = strchr(line, ' ');
                if (!line)
                        return -1;
                line++;
        }
        if (parse_num(&line, 16, ':', &maj) < 0 || parse_num(&line, 16, ' ', &min) < 0)
                return -1;
        if (parse_num(&line, 10, *line && strchr(line, ' ') ? ' ' : '\n', ino) < 0 ||
            maj > UINT32_MAX || min > UINT32_MAX)
                return -1;
        *dev = makedev((unsigned)maj, (unsigned)min);
        return 0;
}

static void inoset_sort(struct inoset *s)
{
        /* (no memfd at all: an empty set, which qsort may not be given) */
        if (s->n)
                qsort(s->v, s->n, sizeof(*s->v), cmp_ino);
}

/* Add the inode numbers on dev of the descriptors listed in
 * /proc/self/fd, but the table's own. -EAGAIN if one listed is
 * closed by the time it is looked at: it may have moved to a number the
 * listing had passed (dup2, then close), and the scan proves nothing. */
static int scan_fds(struct inoset *s, dev_t dev, const struct fdset *own)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)) && r == 0) {
                struct stat st;
                char *end;
                long fd;

                /* fstat() of the descriptor itself: a lookup through
                 * /proc/self/fd/N costs twice as much per descriptor */
                fd = strtol(de->d_name, &end, 10);
                if (end == de->d_name || *end || fd < 0 || fd > INT_MAX)
                        continue;
                if (own_fd(own, (int)fd))
                        continue;
                if (am_fd_stat((int)fd, &st) == 0) {
                        if (st.st_dev == dev)
                                r = inoset_add(s, st.st_ino);
                } else if (errno == EBADF && fd != dirfd(d)) {
                        r = -EAGAIN;
                }
        }
        closedir(d);
        return r;
}

/* Add the inode numbers on dev of the files mapped. */
static int scan_maps(struct inoset *s, dev_t dev)
{
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512], *buf;
        int r = 0;

        if (!f)
                return -errno;
        /* a few reads of the whole list rather than one per 4 KiB */
        buf = malloc(64 * 1024);
        if (buf)
                setvbuf(f, buf, _IOFBF, 64 * 1024);
        while (r == 0 && fgets(line, sizeof(line), f)) {
                dev_t mdev;
                uint64_t ino;
                if (maps_line(line, &mdev, &ino) == 0 && mdev == dev)
                        r = inoset_add(s, (ino_t)ino);
                /* skip the rest of an over-long line */
                while (!strchr(line, '\n') && fgets(line, sizeof(line), f))
                        ;
        }
        fclose(f);
        free(buf);
        return r;
}

/* scan_fds() of /proc/self/fd, again while descriptors vanish under it (a
 * few times; then -EAGAIN, and nothing is dropped). */
static int listing_stable(struct inoset *s, dev_t dev, const struct fdset *own)
{
        int r = -EAGAIN;

        for (int i = 0; i < 8 && r == -EAGAIN; i++) {
                s->n = 0;
                r = scan_fds(s, dev, own);
        }
        return r;
}

/* 1 if this process has one thread: the C library says so, or the kernel
 * does (/proc/self/task has 2 + threads links), as in the child of a fork
 * by a process of several threads, of which the C library keeps no count.
 * Nothing can renumber a descriptor under the collector then but a signal
 * handler, and one listing is exact. */
static int one_thread(void)
{
        struct stat st;

        if (__libc_single_threaded)
                return 1;
        return stat("/proc/self/task", &st) == 0 && st.st_nlink == 3;
}

/* Drop entries nothing refers to. Called with the write lock held.
 * Returns the number dropped or -errno. */
static int in_set(const struct inoset *s, ino_t ino)
{
        return s->n && bsearch(&ino, s->v, s->n, sizeof(*s->v), cmp_ino) != NULL;
}

/* An entry nothing referred to in scan s: held entries and entries of other
 * devices are always referred to. */
static int unreferenced(const struct am_entry *e, const struct inoset *s, dev_t dev)
{
        return e->holds == 0 && e->id.dev == dev && !in_set(s, e->id.ino);
}

static int collect(dev_t dev)
{
        struct inoset s = { 0 }, s2 = { 0 };
        struct fdset own = { 0 };
        int r = 0, n = 0, any = 0, exact;

        spares_age();
        own_fds(&own);
        /* The descriptors first, then the mappings: a region whose last
         * descriptor is closed after its mapping was made is seen in one
         * or the other. In a process of one thread nothing renumbers a
         * descriptor under the listing; in one of several, what the first
         * listing missed must be missed by a second one too (below). The
         * listings look at the process's own table: a copy of it (from
         * unshare(CLONE_FILES)) would have to be closed, and every close
         * of a descriptor calls its file's flush (a FUSE server's answer,
         * an NFS write-back). */
        exact = one_thread();
        r = listing_stable(&s, dev, &own);
        if (r == 0)
                r = scan_maps(&s, dev);
        inoset_sort(&s);

        tc_drop();
        for (size_t i = 0; r == 0 && i < table.nbuckets && !any; i++)
                for (struct am_idnode *p = table.buckets[i]; p && !any; p = p->next)
                        any = unreferenced(am_id_record(p, struct am_entry, id), &s, dev);
        /* an inexact listing: an entry goes only if a second one, when the
         * first found anything to drop, missed it too */
        if (r == 0 && any && !exact) {
                r = listing_stable(&s2, dev, &own);
                inoset_sort(&s2);
        }
        if (r == 0 && any) {
                for (size_t i = 0; i < table.nbuckets; i++) {
                        struct am_idnode **pp = &table.buckets[i];
                        while (*pp) {
                                struct am_entry *e = am_id_record(*pp, struct am_entry, id);
                                if (unreferenced(e, &s, dev) &&
                                    (exact || !in_set(&s2, e->id.ino))) {
                                        am_idtable_unlink_at(&table, pp);
                                        entry_unlinked(e);
                                        n++;
                                } else {
                                        pp = &(*pp)->next;
                                }
                        }
                }
        }
        free(s.v);
        free(s2.v);
        free(own.v);
        free_zombies();
        gc_at = table.n * 2 > NBUCKETS_MIN ? table.n * 2 : NBUCKETS_MIN;
        return r == -EAGAIN ? 0 : r < 0 ? r : n;
}

static int collect_all(void);

/* A descriptor kept in reserve for a collection that runs because the
 * process is out of descriptors (the scan needs one): opened when the
 * first control block is installed, given up for the scan, taken back. */
static int reserve_fd = -1;
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;

static void reserve_take(void)
{
        int cs;

        if (__atomic_load_n(&reserve_fd, __ATOMIC_RELAXED) >= 0 ||
            __atomic_load_n(&manual, __ATOMIC_RELAXED))
                return;
        /* open() is a cancellation point: not with the lock held */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_mutex_lock(&reserve_lock);
        if (reserve_fd < 0)
                __atomic_store_n(&reserve_fd, open("/dev/null", O_RDONLY | O_CLOEXEC),
                                 __ATOMIC_RELAXED);
        pthread_mutex_unlock(&reserve_lock);
        pthread_setcancelstate(cs, NULL);
}

int am_table_collect_out_of_fds(void)
{
        int r, cs;

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_mutex_lock(&reserve_lock);
        if (reserve_fd >= 0) {
                close(reserve_fd);
                __atomic_store_n(&reserve_fd, -1, __ATOMIC_RELAXED);
        }
        r = collect_all();
        __atomic_store_n(&reserve_fd, open("/dev/null", O_RDONLY | O_CLOEXEC),
                         __ATOMIC_RELAXED);
        pthread_mutex_unlock(&reserve_lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}

static int collect_all(void)
{
        int r;

        /* Every memfd lives on one internal superblock, whose device the
         * first insertion recorded; with none, there is nothing to collect.
         * No descriptor is needed but the ones the scan opens one at a
         * time, so a process out of descriptors can still collect. */
        int cs;

        /* the scan's stdio and directory calls are cancellation points: a
         * thread cancelled inside would leave the table locked for ever */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        r = have_memfd_dev && (table.n || zombies) ? collect(memfd_dev) : 0;
        /* a collection asked for gives back the spare blocks too */
        spares_drain();
        pthread_rwlock_unlock(&lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}

int am_table_collect(void)
{
        int r = collect_all(), empty;

        /* an empty table needs no descriptor in reserve */
        pthread_rwlock_rdlock(&lock);
        empty = table.n == 0 && !zombies;
        pthread_rwlock_unlock(&lock);
        if (empty && __atomic_load_n(&reserve_fd, __ATOMIC_RELAXED) >= 0) {
                int cs;
                /* close() is a cancellation point: not with the lock held */
                pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
                pthread_mutex_lock(&reserve_lock);
                if (reserve_fd >= 0)
                        close(reserve_fd);
                __atomic_store_n(&reserve_fd, -1, __ATOMIC_RELAXED);
                pthread_mutex_unlock(&reserve_lock);
                pthread_setcancelstate(cs, NULL);
        }
        return r;
}

static int table_insert(const struct stat *st, int ctl_fd, const struct amc_ref *ref,
                        int lazy)
{
        struct am_entry *e, *ne;
        int r = 1, cs;

        pthread_once(&atfork_once, register_atfork);
        ne = calloc(1, sizeof(*ne));
        if (ne && !__atomic_load_n(&have_memfd_dev, __ATOMIC_ACQUIRE)) {
                pthread_rwlock_wrlock(&lock);
                memfd_dev = st->st_dev;
                __atomic_store_n(&have_memfd_dev, 1, __ATOMIC_RELEASE);
                pthread_rwlock_unlock(&lock);
        }
        if (!ne)
                return -ENOMEM;
        ne->id.dev = st->st_dev;
        ne->id.ino = st->st_ino;
        ne->ref = *ref;
        ne->ctl_fd = ctl_fd;
        ne->lazy = ne->may_make = lazy;

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        if (table.n >= gc_at && !__atomic_load_n(&manual, __ATOMIC_RELAXED))
                (void)collect(st->st_dev);
        e = find(st->st_dev, st->st_ino);
        if (e) {
                if (!lazy && (e->lazy || (!e->ref.writable && ref->writable)) &&
                    e->holds == 0) {
                        /* the newcomer takes the old entry's place (never
                         * changed in place: a cache may be reading it) */
                        am_idtable_replace(&table, &e->id, &ne->id);
                        entry_unlinked(e);
                        free_zombies();
                        goto out;
                }
                r = 0;
                free(ne);
                goto out;
        }
        r = am_idtable_insert(&table, &ne->id);
        if (r < 0) {
                free(ne);
                goto out;
        }
        r = 1;
out:
        pthread_rwlock_unlock(&lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}

int am_table_insert(const struct stat *st, int ctl_fd, const struct amc_ref *ref)
{
        return table_insert(st, ctl_fd, ref, 0);
}

void am_table_set_manual(int on)
{
        __atomic_store_n(&manual, on, __ATOMIC_RELAXED);
}

int am_table_manual(void)
{
        return __atomic_load_n(&manual, __ATOMIC_RELAXED);
}

int am_table_forget(const struct stat *st)
{
        struct am_entry *e;
        int r = 0, cs;

        /* freeing closes descriptors, a cancellation point: not with the
         * table locked */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        if (!st) {
                /* this thread lets go of its cached entry: an entry
                 * forgotten by another thread while this one cached it
                 * (a zombie) goes now, with its control descriptor,
                 * not at some later change of the table */
                tc_drop();
                free_zombies();
                pthread_rwlock_unlock(&lock);
                pthread_setcancelstate(cs, NULL);
                return 0;
        }
        e = find(st->st_dev, st->st_ino);
        if (e && e->holds == 0) {
                am_idtable_unlink(&table, &e->id);
                if (tc_entry == e)
                        tc_drop();
                entry_unlinked(e);
                r = 1;
        }
        free_zombies();
        pthread_rwlock_unlock(&lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}

int am_table_hold(const struct stat *st, struct amc_ref *ret)
{
        struct am_entry *e;
        int r = -ENOENT;

        pthread_rwlock_wrlock(&lock);
        e = find(st->st_dev, st->st_ino);
        if (e && !e->lazy) {
                e->holds++;
                *ret = e->ref;
                r = 0;
        }
        pthread_rwlock_unlock(&lock);
        return r;
}

void am_table_release(const struct stat *st)
{
        struct am_entry *e;

        pthread_rwlock_wrlock(&lock);
        e = find(st->st_dev, st->st_ino);
        if (e && e->holds)
                e->holds--;
        pthread_rwlock_unlock(&lock);
}

int am_table_insert_lazy(const struct stat *st)
{
        struct amc_ref ref;
        int r, cs;

        memset(&ref, 0, sizeof(ref));
        ref.size = (uint64_t)st->st_size;
        ref.ctl_fd = -1;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_mutex_lock(&lazy_lock);
        r = table_insert(st, -1, &ref, 1);
        pthread_mutex_unlock(&lazy_lock);
        pthread_setcancelstate(cs, NULL);
        return r == 0 ? -EEXIST : r;
}

int am_table_install(const struct stat *st, int ctl_fd, const struct amc_ref *ref)
{
        struct am_entry *e, *ne = calloc(1, sizeof(*ne));
        int r, cs;

        if (!ne)
                return -ENOMEM;
        ne->id.dev = st->st_dev;
        ne->id.ino = st->st_ino;
        ne->ref = *ref;
        ne->ctl_fd = ctl_fd;
        /* made by this process, its descriptor not handed out yet */
        ne->priv = 1;
        reserve_take();
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        pthread_rwlock_wrlock(&lock);
        e = find(st->st_dev, st->st_ino);
        if (e && e->lazy && __atomic_load_n(&e->may_make, __ATOMIC_RELAXED) &&
            e->ref.size == ref->size) {
                am_idtable_replace(&table, &e->id, &ne->id);
                entry_unlinked(e);
                free_zombies();
                r = 1;
        } else {
                r = e && !e->lazy ? 0 : -ENOLCK;
                free(ne);
        }
        pthread_rwlock_unlock(&lock);
        pthread_setcancelstate(cs, NULL);
        return r;
}
