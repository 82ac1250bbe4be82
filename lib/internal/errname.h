/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/), ashmemctl and the tests. Not installed, not exported from
 * libashmem.so.
 *
 * errno names, as the protocol carries them ("ENOENT").
 */
#ifndef ASHMEM_LIB_ERRNAME_H
#define ASHMEM_LIB_ERRNAME_H

/* The name of errno value e ("EPERM"), or dflt when e is not positive or
 * has no name. */
const char *am_errno_name(int e, const char *dflt);

/* The errno value named name, or 0 when it names none. */
int am_errno_value(const char *name);

#endif
