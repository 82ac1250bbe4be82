/* SPDX-License-Identifier: MIT */
/*
 * Internals of the memfd driver shared with the rest of the library (the
 * heap fast path): the per-process table from a data memfd's identity
 * (st_dev, st_ino) to the control block this process has mapped for it.
 *
 * memfd inode numbers come from a 64-bit per-superblock counter, so an
 * identity is never reused while the system runs: a table entry can outlive
 * its region but can never be mistaken for another region's.
 */
#ifndef ASHMEM_MEMFD_H
#define ASHMEM_MEMFD_H

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "control.h"
#include "lib/internal/idtable.h"
#include "lib/internal/page.h"

struct am_entry {
        struct am_idnode id;       /* (st_dev, st_ino) in the table */
        struct amc_ref ref;
        int ctl_fd;
        unsigned long holds;       /* references from heaps; no GC while > 0 */
        unsigned long cached;      /* threads whose lookup cache holds it */
        struct am_entry *znext;    /* a zombie's next zombie */
        /* A region this process created and has not given a control block
         * yet: no block (ref.b NULL, ctl_fd -1; ref.size is the region's
         * size), every page pinned. may_make (atomic): this process may
         * still create the block itself, as nobody else can have one. */
        int lazy;
        int may_make;
        /* (atomic) 1 while the control block is known to this process
         * alone: made here (am_table_install), and its descriptor never
         * handed out (ashmem_get_control) nor inherited by a fork child.
         * Such a block is kept for reuse when its entry goes (the spare
         * blocks, am_table_spare_take); any other is unmapped and closed. */
        int priv;
};

/* fstat(), as the system call of that name where the kernel's struct stat
 * is the C library's: glibc's fstat() is fstatat(fd, "", AT_EMPTY_PATH),
 * whose empty path the kernel reads and checks. */
static inline int am_fd_stat(int fd, struct stat *st)
{
#if defined(__x86_64__) && !defined(__ILP32__) && defined(SYS_fstat)
        return (int)syscall(SYS_fstat, fd, st);
#else
        return fstat(fd, st);
#endif
}

/* The mark of a data memfd libashmem made: the sticky bit on its inode
 * (mode 01600 at creation) and seals against growing and shrinking. A
 * memfd with the mark that this process holds without pin state is one
 * whose pin state lives elsewhere (ENOLCK), never "always pinned". */
#define AM_MARK_MODE S_ISVTX

/* Run op with the entry for st (or NULL). The entry is valid only inside
 * op. A thread's last entry found is cached (and held): a call on the same
 * region again takes no lock at all while the table has not dropped or
 * replaced an entry since; else the lookup runs with the table read-locked. */
int am_table_with(const struct stat *st,
                  int (*op)(struct am_entry *e, void *arg), void *arg);

/* Insert an entry for the data memfd (st) with control descriptor ctl_fd
 * (taken over on success) mapped at map. If an entry exists already, a
 * read-write one is kept; a read-only one without holds is replaced by a
 * read-write newcomer. Returns 1 if inserted, 0 if the existing entry was
 * kept (ctl_fd and map then still belong to the caller), or -errno. */
int am_table_insert(const struct stat *st, int ctl_fd, const struct amc_ref *ref);

/* Record a region this process just created, with no control block yet
 * (a lazy entry). 1, or -errno. */
int am_table_insert_lazy(const struct stat *st);

/* Install a control block for the lazy entry of st, made by this process:
 * 1 if installed (ctl_fd and ref taken over), 0 if the region has a block
 * already (the caller's are still its own: drop them), -ENOLCK if this
 * process may not make the block itself (no lazy entry, or one that lost
 * may_make). */
int am_table_install(const struct stat *st, int ctl_fd, const struct amc_ref *ref);

/* The control block of e leaves this process's sole keeping (its
 * descriptor is about to be handed out): never reused for another region. */
static inline void am_entry_escape(struct am_entry *e)
{
        __atomic_store_n(&e->priv, 0, __ATOMIC_RELEASE);
}

/* A spare control block of exactly len bytes (the mapping and the sealed
 * control memfd of a region gone, known to this process alone), taken off
 * the spare list: 1 and *map, *ctl_fd (the caller's now: it must rewrite
 * the whole block before use), or 0 if there is none of that size. */
int am_table_spare_take(size_t len, void **map, int *ctl_fd);

/* Give back a block of len bytes known to this process alone that no
 * region uses (one made or taken and then not installed): kept as a spare
 * if the list has room, else unmapped and closed. */
void am_table_spare_put(void *map, size_t len, int ctl_fd);

/* Called before fork() with no lock held: give a control block to every
 * lazy entry this process may still make one for (the memfd driver's
 * function, which the table calls; fn(st) per entry). */
void am_table_set_fork_maker(int (*fn)(const struct stat *st));

/* Take or drop a hold on the entry for st: a held entry is never collected,
 * so its ref stays valid without the table lock (the heap fast path). */
int am_table_hold(const struct stat *st, struct amc_ref *ret);
void am_table_release(const struct stat *st);

/* Drop entries of regions nothing in this process refers to. */
int am_table_collect(void);

/* The same, for a process out of descriptors: the scan gets the one the
 * table keeps in reserve (taken when the first block was installed). */
int am_table_collect_out_of_fds(void);

/* Forget the entry of region st now (its holder closed every descriptor
 * of it and unmapped it): 1 if dropped, 0 if there was none or it is held.
 * NULL: the calling thread lets go of its cached entry, and entries
 * forgotten while a thread cached them are freed if no thread still does. */
int am_table_forget(const struct stat *st);

/* on: this process forgets its regions itself (am_table_forget); the
 * table never scans /proc on its own then. */
void am_table_set_manual(int on);
int am_table_manual(void);

/* Attach a received control descriptor to the data memfd (st). */
int am_memfd_attach_control(int fd, const struct stat *st, int control_fd);

/* Make the memfd fd, unsealed, the region name of size bytes in place: its
 * contents cleared, resized, sealed against growing and shrinking, marked,
 * and recorded in this process's table as one it created (its control
 * block is made when first needed). Every process holding fd then holds
 * the region (libashmem-preload.so's first mmap). 0 or -errno. */
int am_memfd_make_in_place(int fd, const char *name, size_t size);

/* Record the region fd (marked, sealed, with no control block anywhere) as
 * one this process created, so that it may make the block when first
 * needed: the broker's new image takes over the regions its former image
 * made (broker/reload.c). 0, -EINVAL if fd is not such a region, -EEXIST
 * if the table has it already, or -errno. */
int am_memfd_adopt_made(int fd);

enum am_pin_op { AM_PIN, AM_UNPIN, AM_STATUS };

/* Pin, unpin or pin status of [off, off + len) of a region's control
 * block; data_fd is the region's data memfd, or -1 (see amc_pin()). Inlined where `which` is a constant (the pin fast paths). */
static inline __attribute__((always_inline))
int am_pin_ref(const struct amc_ref *r, size_t off, size_t len, enum am_pin_op which,
               int data_fd)
{
        uint64_t first, count;
        /* amc_range() inline: a pin pair is a few dozen nanoseconds, a call
         * a fair share of that */
        int e = am_page_range(off, len, r->pages << r->page_shift, r->page_shift,
                              &first, &count);

        if (e < 0)
                return e;
        switch (which) {
        case AM_PIN:
                return amc_pin(r, first, count, data_fd);
        case AM_UNPIN:
                return amc_unpin(r, first, count);
        default:
                return amc_status(r, first, count);
        }
}

/* A hold on a region's pin state: a held table entry's control block. */
struct am_pinref {
        struct amc_ref ref;
};

/* The hold operations of the driver (drivers/driver.h), in hold.c. */
int am_memfd_hold(const struct stat *st, struct am_pinref **ret);
void am_memfd_release(const struct stat *st, struct am_pinref *p);
int am_memfd_ref_pin(const struct am_pinref *p, size_t off, size_t len, int data_fd);
int am_memfd_ref_unpin(const struct am_pinref *p, size_t off, size_t len);
int am_memfd_ref_pin_status(const struct am_pinref *p, size_t off, size_t len);
void am_memfd_ref_stats(const struct am_pinref *p, struct ashmem_stats *st, int *prot);
size_t am_memfd_ref_purging(const struct am_pinref *p);
int am_memfd_ref_counts(const struct am_pinref *p, size_t first, size_t n, size_t c[3]);

#endif
