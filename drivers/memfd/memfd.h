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
#include "control.h"
#include "lib/internal/idtable.h"

struct am_entry {
        struct am_idnode id;       /* (st_dev, st_ino) in the table */
        struct amc_ref ref;
        int ctl_fd;
        unsigned long holds;       /* references from heaps; no GC while > 0 */
        unsigned long cached;      /* threads whose lookup cache holds it */
        struct am_entry *znext;    /* a zombie's next zombie */
};

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

/* Take or drop a hold on the entry for st: a held entry is never collected,
 * so its ref stays valid without the table lock (the heap fast path). */
int am_table_hold(const struct stat *st, struct amc_ref *ret);
void am_table_release(const struct stat *st);

/* Drop entries of regions nothing in this process refers to. */
int am_table_collect(void);

/* Attach a received control descriptor to the data memfd (st). */
int am_memfd_attach_control(int fd, const struct stat *st, int control_fd);

#endif
