/* SPDX-License-Identifier: MIT */
/*
 * For a process that must never scan /proc/self/fd or /proc/self/maps on
 * its own (the broker's event loop): it tells the library which regions it
 * let go of, and the library forgets their pin state at once. And for the
 * broker client: does the table already keep a region's pin state?
 */
#ifndef ASHMEM_LIB_FORGET_H
#define ASHMEM_LIB_FORGET_H

#include <sys/stat.h>

/* Region st (its data memfd's fstat()) is gone from this process: every
 * descriptor of it closed, every mapping unmapped. Forget its pin state
 * (a control descriptor and mapping) now. The number of entries dropped. */
int am_forget_region(const struct stat *st);

/* The calling thread lets go of the pin state it keeps cached for its
 * last region: a region another thread forgot meanwhile is freed now (its
 * control descriptor closed), not at a later change of the table. For a
 * thread that works on regions another thread forgets (the broker's
 * purger, before it hands a job back). */
void am_forget_thread(void);

/* 1 if this process keeps region st's pin state with a control block
 * (writable when asked), named by the identity the broker's attach reply
 * gives (st_dev, st_ino, st_size: nothing else of st is read); 0 if not
 * (or not known without a system call). */
int am_has_control(const struct stat *st, int writable);

/* on: the library never collects on its own (no scan when its table has
 * doubled, none when a creation runs out of descriptors); the process
 * calls am_forget_region() instead. ashmem_collect() still scans. */
void am_manual_forget(int on);

#endif
