/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files, the broker daemon
 * (broker/), ashmemctl and the tests. Not installed, not exported from
 * libashmem.so.
 *
 * Code points that look like something else or like nothing when shown.
 */
#ifndef ASHMEM_LIB_UNICODE_H
#define ASHMEM_LIB_UNICODE_H

/* 1 if cp is invisible or looks like a blank when shown, else 0: the
 * default-ignorable code points (the soft hyphen, the combining grapheme
 * joiner, bidirectional marks, overrides, embeddings and isolates,
 * zero-width spaces and joiners, the word joiner and invisible operators,
 * Hangul fillers, Khmer and Mongolian invisible vowels and selectors,
 * variation selectors, the byte order mark, musical formatting controls,
 * shorthand format controls, tags and the reserved rest of their plane);
 * interlinear annotations; and blanks that look like a space or nothing
 * (Unicode spaces but the ASCII one, line and paragraph separators, the
 * braille blank). The broker refuses them in names; ashmemctl shows them
 * escaped. */
int am_look_alike(unsigned cp);

#endif
