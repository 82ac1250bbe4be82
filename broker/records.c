/* SPDX-License-Identifier: MIT */
/*
 * Region records (ashmem-protocol(7)): the fields of a name that never
 * change, written once and kept with it, then the protection and the page
 * counts of now, read from the region's pin state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "ashmem/ashmem.h"
#include "internal.h"

/* What the data memfd's seals leave of a protection: a holder that
 * sealed it against writing itself is seen (seals < 0: unknown, none). */
static int seals_prot(int seals)
{
        return seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) ?
               PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE | PROT_EXEC;
}

/* The seals of a data memfd are read once per turn of the event loop: the
 * requests served in a turn were all waiting when epoll_wait returned
 * (records_new_turn() starts a new turn before any other), so whatever a
 * client did before sending one, sealing included, happened before the
 * turn's read. Reading later could only see a seal added after the
 * request, which a reply may or may not show anyway. */
static unsigned long long seals_turn = 1;

void records_new_turn(void)
{
        seals_turn++;
}

static int region_seals(struct held_region *r)
{
        if (r->seals_turn != seals_turn) {
                r->seals = fcntl(r->fd, F_GET_SEALS);
                r->seals_turn = seals_turn;
        }
        return r->seals;
}

/* The region's protection and page counts (of the pages a view touches).
 * At most one system call (the seals), and none for a block: a region with
 * no block has every page pinned (the library's answer for a region held
 * without pin state, which only a block can change) and the protection its
 * seals leave; the data memfd was checked when the broker took it, and its
 * size is sealed. */
static void counts(const struct entry *e, int *prot, size_t *pages, size_t *pinned,
                   size_t *unpinned, size_t *purged)
{
        ashmem_stats st;
        struct held_region *r = e->r;
        size_t ps = am_page_size();
        int seals = region_seals(r), view = e->ranged && e->length;
        /* the pages it covers: [first, end) */
        size_t first = view ? e->offset / ps : 0;
        size_t end = view ? (e->offset + e->length - 1) / ps + 1 : (r->size + ps - 1) / ps;

        *pages = *pinned = *unpinned = *purged = 0;
        if (r->ctl < 0) {
                *prot = seals_prot(seals);
                *pages = *pinned = end - first;
                return;
        }
        if (r->hold && view) {
                /* the view's pages, counted a word of pin state at a time:
                 * the cost is the view's, not the region's */
                size_t c[3];
                *prot = am_hold_counts(r->hold, first, end - first, c) & seals_prot(seals);
                *pages = end - first;
                *pinned = c[0];
                *unpinned = c[1];
                *purged = c[2];
                return;
        }
        if (r->hold) {
                am_hold_stats(r->hold, &st, prot);
                *prot &= seals_prot(seals);
        } else {
                /* a block the broker could not map: the library's way */
                *prot = ashmem_get_prot(r->fd);
                if (*prot < 0)
                        *prot = 0;
                if (ashmem_get_stats(r->fd, &st) < 0)
                        return;
        }
        if (view) {
                char *map;
                if (end <= (1u << 20) && (map = calloc(end, 1))) {
                        if (ashmem_get_page_map(r->fd, map, end) == 0) {
                                for (size_t i = first; i < end; i++) {
                                        ++*pages;
                                        if (map[i] == 'P')
                                                ++*pinned;
                                        else if (map[i] == 'u')
                                                ++*unpinned;
                                        else
                                                ++*purged;
                                }
                                free(map);
                                return;
                        }
                        free(map);
                }
        }
        *pages = st.pages;
        *pinned = st.pinned;
        *unpinned = st.unpinned;
        *purged = st.purged;
}

/* The record's fields that never change, made once per name. */
static int static_record(struct entry *e)
{
        struct am_jw s = { 0 };
        char when[32];
        struct tm tm;

        gmtime_r(&e->created, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        am_jw_puts(&s, "\"name\":");
        am_jw_string(&s, e->name);
        am_jw_printf(&s, ",\"size\":%zu,\"mode\":\"%04o\",\"uid\":%u,\"gid\":%u",
                  e->ranged ? e->length : e->r->size, e->mode, (unsigned)e->uid,
                  (unsigned)e->gid);
        am_jw_key(&s, "user");
        am_jw_string(&s, e->user);
        am_jw_key(&s, "group");
        am_jw_string(&s, e->group);
        am_jw_printf(&s, ",\"created\":\"%s\",\"transient\":%s", when,
                  e->owner ? "true" : "false");
        if (s.overflow) {
                am_jw_free(&s);
                return -ENOMEM;
        }
        /* kept for the name's life: give back the buffer's spare room (a
         * record of 200 bytes would otherwise hold 1 KiB per name) */
        e->rec = realloc(s.buf, s.len + 1);
        if (!e->rec)
                e->rec = s.buf;
        e->reclen = s.len;
        return 0;
}

/* The region record's fields (no braces, no leading comma): what never
 * changes, then the protection and the page counts of now. */
void write_record(struct am_jw *s, struct entry *e, const struct conn *c)
{
        static const char *const pstr[8] = {
                "---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx"
        };
        size_t pages, pinned, unpinned, purged;
        int prot;

        if (!e->rec && static_record(e) < 0) {
                s->overflow = 1;
                return;
        }
        counts(e, &prot, &pages, &pinned, &unpinned, &purged);
        am_jw_raw(s, e->rec, e->reclen);
        if (e->ranged) {
                /* the name it was cut from, to a caller who may see that
                 * name (a slice may be visible to more) */
                if (e->of && e->base && access_visible(c, e->base)) {
                        am_jw_key(s, "of");
                        am_jw_string(s, e->of);
                }
                am_jw_puts(s, ",\"offset\":");
                am_jw_uint(s, e->offset);
                am_jw_puts(s, ",\"length\":");
                am_jw_uint(s, e->length);
        }
        am_jw_puts(s, ",\"prot\":\"");
        am_jw_raw(s, pstr[prot & 7], 3);
        am_jw_puts(s, "\",\"prot_mask\":");
        am_jw_uint(s, (unsigned)prot & 7);
        am_jw_puts(s, ",\"pages\":");
        am_jw_uint(s, pages);
        am_jw_puts(s, ",\"pinned\":");
        am_jw_uint(s, pinned);
        am_jw_puts(s, ",\"unpinned\":");
        am_jw_uint(s, unpinned);
        am_jw_puts(s, ",\"purged\":");
        am_jw_uint(s, purged);
        am_jw_puts(s, ",\"attaches\":");
        am_jw_uint(s, e->attaches);
}

void reply_record(struct reply *rep, struct entry *e, const struct conn *c)
{
        am_jw_puts(&rep->sb, ",");
        write_record(&rep->sb, e, c);
}

