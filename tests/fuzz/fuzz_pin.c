/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the pin state: random sequences of pin, unpin, status, purge and
 * writes on a small region, every result checked against a model that
 * knows, page by page, the state and what the page must contain.
 *
 * Input: byte 0 sets the region size (1..24 pages, with a partial last page
 * when bit 7 is set); then 3 bytes per operation: op, offset, length.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ashmem/ashmem.h"

enum { PINNED, UNPINNED, PURGED };

struct model {
        size_t pages, size, ps;
        int state[24];
        unsigned char fill[24];    /* byte every pinned page holds; 0 after purge */
};

/* Decode a range: mostly page-aligned, sometimes not, sometimes huge. */
static void range(const struct model *m, uint8_t o, uint8_t l, size_t *off, size_t *len)
{
        *off = (size_t)(o % 32) * m->ps;
        *len = (size_t)(l % 32) * m->ps;
        if (o & 0x80)
                *off += 1 + (o >> 5);          /* unaligned */
        if (l & 0x80)
                *len = SIZE_MAX - (l & 0x7f);  /* overflow */
        else if (l & 0x40)
                *len += l & 0x3f;              /* unaligned */
}

static int model_range(const struct model *m, size_t off, size_t len, size_t *first, size_t *n)
{
        size_t end = m->pages * m->ps;
        if (off % m->ps || len % m->ps || off > end)
                return -EINVAL;
        if (len == 0)
                len = end - off;
        if (len > end - off)
                return -EINVAL;
        *first = off / m->ps;
        *n = len / m->ps;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct model m = { .ps = (size_t)sysconf(_SC_PAGESIZE) };
        unsigned char *p;
        int fd;

        if (size < 1)
                return 0;
        m.pages = (size_t)(data[0] % 24) + 1;
        m.size = m.pages * m.ps - ((data[0] & 0x80) ? m.ps / 2 : 0);
        fd = ashmem_create_region("fuzz", m.size);
        assert(fd >= 0);
        p = mmap(NULL, m.pages * m.ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert(p != MAP_FAILED);

        for (size_t i = 1; i + 3 <= size; i += 3) {
                uint8_t op = data[i] % 6;
                size_t off, len, first = 0, n = 0;
                int want, got;

                range(&m, data[i + 1], data[i + 2], &off, &len);
                want = model_range(&m, off, len, &first, &n);
                switch (op) {
                case 0: /* pin */
                        got = ashmem_pin_region(fd, off, len);
                        if (want == 0) {
                                want = ASHMEM_NOT_PURGED;
                                for (size_t k = first; k < first + n; k++) {
                                        if (m.state[k] == PURGED)
                                                want = ASHMEM_WAS_PURGED;
                                        m.state[k] = PINNED;
                                }
                                assert(got == want);
                        } else {
                                assert(got == -1 && errno == -want);
                        }
                        break;
                case 1: /* unpin */
                        got = ashmem_unpin_region(fd, off, len);
                        if (want == 0) {
                                assert(got == 0);
                                for (size_t k = first; k < first + n; k++)
                                        if (m.state[k] == PINNED)
                                                m.state[k] = UNPINNED;
                        } else {
                                assert(got == -1 && errno == -want);
                        }
                        break;
                case 2: /* status */
                        got = ashmem_pin_status(fd, off, len);
                        if (want == 0) {
                                want = ASHMEM_IS_PINNED;
                                for (size_t k = first; k < first + n; k++)
                                        if (m.state[k] != PINNED)
                                                want = ASHMEM_IS_UNPINNED;
                        }
                        assert(got == want);
                        break;
                case 3: { /* purge */
                        int purged = 0;
                        for (size_t k = 0; k < m.pages; k++)
                                if (m.state[k] == UNPINNED) {
                                        m.state[k] = PURGED;
                                        m.fill[k] = 0;
                                        purged++;
                                }
                        assert(ashmem_purge(fd) == purged);
                        break;
                }
                default: { /* write a pinned page, check every pinned page */
                        size_t k = data[i + 1] % m.pages;
                        size_t bytes = k == m.pages - 1 ? m.size - k * m.ps : m.ps;
                        if (m.state[k] == PINNED) {
                                m.fill[k] = data[i + 2] | 1;
                                memset(p + k * m.ps, m.fill[k], bytes);
                        }
                        for (k = 0; k < m.pages; k++) {
                                if (m.state[k] != PINNED)
                                        continue;
                                bytes = k == m.pages - 1 ? m.size - k * m.ps : m.ps;
                                for (size_t b = 0; b < bytes; b += 509)
                                        assert(p[k * m.ps + b] == m.fill[k]);
                        }
                        break;
                }
                }
        }
        {
                ashmem_stats st;
                char map[24];
                size_t pinned = 0, unpinned = 0, purged = 0;
                assert(ashmem_get_stats(fd, &st) == 0);
                assert(ashmem_get_page_map(fd, map, m.pages) == 0);
                for (size_t k = 0; k < m.pages; k++) {
                        pinned += m.state[k] == PINNED;
                        unpinned += m.state[k] == UNPINNED;
                        purged += m.state[k] == PURGED;
                        assert(map[k] == "Pux"[m.state[k]]);
                }
                assert(st.pinned == pinned && st.unpinned == unpinned && st.purged == purged);
                assert((st.unpinned_since_ns != 0) == (unpinned + purged != 0));
        }
        munmap(p, m.pages * m.ps);
        close(fd);
        ashmem_collect();
        return 0;
}
