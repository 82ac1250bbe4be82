/* SPDX-License-Identifier: MIT */
/*
 * top: the regions the broker holds, refreshed every few seconds, sorted
 * by a column, for people watching shared-memory use (pinned, unpinned,
 * purged pages, attach requests). On a terminal it takes the screen (the
 * alternate screen, as top and less do) and gives it back as it found it
 * on q, Ctrl-C, SIGTERM, SIGHUP and a fatal error; Ctrl-Z hands the
 * terminal back while stopped; a resize (SIGWINCH) redraws at the new
 * size. Plain ANSI sequences and termios: no curses library to load.
 *
 * Without a terminal (or with --json) it prints one snapshot per refresh
 * for scripts: with --json one JSON document a line,
 * {"time":"...","interval":S,"regions":[records]}; else the table and a
 * blank line. --count stops after that many.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <cjson/cJSON.h>

#include "cmd.h"
#include "lib/internal/json.h"
#include "output.h"
#include "parse.h"
#include "region.h"

static const struct cmd_opt top_opts[] = {
        { "sort", 's', "COL", "topcolumn", "sort by this column (default SIZE; keys < > r while running)" },
        { "interval", 'd', "SECONDS", NULL, "seconds between refreshes (default 2; 0.1 to 86400)" },
        { "count", 'n', "K", NULL, "stop after K refreshes" },
        { "output", 'o', "COLS", "topcolumn", "columns to show (NAME,SIZE,...; +COLS adds to the default)" },
        { "bytes", 'b', NULL, NULL, "sizes in bytes, not human-readable" },
        { "reverse", 0, NULL, NULL, "reverse the order (names A-Z and numbers largest first by default)" },
        { 0 }
};

/* The columns top shows without -o. */
static const char top_default[] = "NAME,SIZE,RES,PAGES,PINNED,UNPINNED,PURGED,ATTACHES,OWNER";

/* Signals seen, handled by the loop (a handler only sets its flag). */
static volatile sig_atomic_t got_quit, got_winch, got_tstp, got_cont;

static void on_signal(int sig)
{
        switch (sig) {
        case SIGWINCH: got_winch = 1; break;
        case SIGTSTP: got_tstp = 1; break;
        case SIGCONT: got_cont = 1; break;
        default: got_quit = sig; break;
        }
}

/*
 * Resident pages. The broker's records do not say how much of a region is
 * in memory, so top asks the kernel itself: it attaches each region once,
 * read-only, keeps that descriptor while the name stands for the same
 * region (so its attach request counts once in ATTACHES, not at every
 * refresh), and at each refresh maps the view without access and counts
 * with mincore(2) the pages in memory. A descriptor of a name that went
 * away, or now stands for another region, is closed at the next refresh.
 */
struct held {
        char name[ASHMEM_NAME_LEN];
        uid_t uid;              /* the record it was attached for */
        time_t created;
        size_t size, offset, length;
        int is_slice;
        int fd;                 /* -1: could not be attached */
};

struct top {
        struct cmd_ctx *ctx;
        struct held *held;      /* sorted by name */
        size_t nheld;
        int want_res;           /* a column, the sort or JSON needs it */
        int cols[OUT_MAX_COLS];
        int ncols;
        int sort;               /* index into out_cols[] */
        int reverse;
        unsigned flags;         /* OUT_* for the table */
        int interval_ms;
        long count;             /* refreshes left; -1 for no end */
        int tty;                /* drawing on a terminal */
        struct termios saved;   /* the terminal as it was */
        int raw;                /* the terminal is ours now */
        char status[PATH_MAX + 128];    /* the last error, shown on the screen */
};

/* ---------------------------------------------------------------- sort */

static const struct top *sort_top;     /* qsort has no argument */

static int is_numeric(const struct out_col *c)
{
        return c->kind == OUT_NUM || c->kind == OUT_BYTES || c->kind == OUT_BOOL;
}

static double num_of(const cJSON *v)
{
        if (cJSON_IsNumber(v))
                return v->valuedouble;
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v);
        return -1;      /* absent (a slice field of a region) sorts first */
}

static int cmp_records(const void *a, const void *b)
{
        const cJSON *ra = *(const cJSON *const *)a, *rb = *(const cJSON *const *)b;
        const struct out_col *c = &out_cols[sort_top->sort];
        const cJSON *va = cJSON_GetObjectItemCaseSensitive(ra, c->key);
        const cJSON *vb = cJSON_GetObjectItemCaseSensitive(rb, c->key);
        int r;

        if (is_numeric(c)) {
                double x = num_of(va), y = num_of(vb);
                /* numbers: largest first */
                r = x < y ? 1 : x > y ? -1 : 0;
        } else {
                const char *x = cJSON_IsString(va) ? va->valuestring : "";
                const char *y = cJSON_IsString(vb) ? vb->valuestring : "";
                r = strcmp(x, y);
        }
        if (r == 0) {
                /* ties by name, so the order holds still between refreshes */
                const cJSON *na = cJSON_GetObjectItemCaseSensitive(ra, "name");
                const cJSON *nb = cJSON_GetObjectItemCaseSensitive(rb, "name");
                r = strcmp(cJSON_IsString(na) ? na->valuestring : "",
                           cJSON_IsString(nb) ? nb->valuestring : "");
        }
        return sort_top->reverse ? -r : r;
}

/* ---------------------------------------------------------------- resident */

static int held_cmp(const void *a, const void *b)
{
        return strcmp(((const struct held *)a)->name, ((const struct held *)b)->name);
}

static int same_region(const struct held *h, const ashmem_region_info *r)
{
        return h->uid == r->uid && h->created == r->created && h->size == r->size &&
               h->is_slice == r->is_slice && h->offset == r->offset && h->length == r->length;
}

/* A read-only descriptor of name as the broker has it for owner, or -1.
 * Through a bare request: the pin state that comes with it is closed at
 * once (top never pins), so the library keeps nothing of it. */
static int attach_ro(ashmem_broker *b, const ashmem_region_info *r)
{
        char buf[ASHMEM_NAME_LEN * 6 + 128], *reply = NULL;
        struct am_jw w;
        int rfds[2], nr = 0, fd = -1, ret;

        am_jw_begin(&w, buf, sizeof(buf), "attach");
        am_jw_str(&w, "name", r->name);
        am_jw_str(&w, "access", "r");
        am_jw_u64(&w, "owner", r->uid);
        if (am_jw_end(&w) < 0)
                return -1;
        ret = ashmem_broker_call(b, buf, NULL, 0, &reply, rfds, &nr);
        free(reply);
        if (ret == 0 && nr >= 1)
                fd = rfds[0];
        for (int i = fd >= 0 ? 1 : 0; i < nr; i++)
                close(rfds[i]);
        return fd;
}

/* The largest view top counts: mincore(2) looks up every page of a file
 * mapping that is not mapped yet, about a millisecond for 20000 pages. */
#define RESIDENT_MAX_PAGES ((size_t)1 << 20)

/* Pages of [off, off+len) of fd in memory: >= 0, or -1 when the kernel
 * would not say. mincore(2) tells the truth about a file's page cache
 * only to its owner, root and who may write it (a region's file is the
 * broker's, mode 0600); to others it says every page is in: no answer. */
static long long resident_pages(int fd, size_t off, size_t len)
{
        size_t ps = am_page_size(), first = off / ps * ps, end, n;
        unsigned char vec[4096];
        long long pages = 0;
        struct stat st;
        void *p;

        if (fstat(fd, &st) < 0 || st.st_size < 0)
                return -1;
        if (st.st_uid != geteuid() && geteuid() != 0)
                return -1;
        /* a region that shrank since it was listed: what is left of it */
        end = off + len;
        if (end > (size_t)st.st_size)
                end = (size_t)st.st_size;
        if (end <= first)
                return 0;
        end = (end + ps - 1) / ps * ps;
        n = end - first;
        if (n / ps > RESIDENT_MAX_PAGES)
                return -1;
        /* no access: the mapping only names the pages to ask about */
        p = mmap(NULL, n, PROT_NONE, MAP_SHARED, fd, (off_t)first);
        if (p == MAP_FAILED)
                return -1;
        for (size_t at = 0; at < n; at += sizeof(vec) * ps) {
                size_t k = n - at < sizeof(vec) * ps ? n - at : sizeof(vec) * ps;
                if (mincore((char *)p + at, k, vec) < 0) {
                        pages = -1;
                        break;
                }
                for (size_t i = 0; i < k / ps; i++)
                        pages += vec[i] & 1;
        }
        munmap(p, n);
        return pages;
}

/* Bring the held descriptors in line with the regions listed (sorted by
 * name, as the broker lists them or not) and add "resident" (pages) and
 * "resident_bytes" to each record: null when unknown. */
static int resident_update(struct top *t, ashmem_broker *b, const ashmem_region_info *regions,
                           size_t n, cJSON **recs)
{
        struct held *now = calloc(n ? n : 1, sizeof(*now));

        if (!now)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const ashmem_region_info *r = &regions[i];
                struct held key, *old;
                long long pages = -1;

                snprintf(key.name, sizeof(key.name), "%s", r->name);
                old = t->nheld ? bsearch(&key, t->held, t->nheld, sizeof(*t->held), held_cmp) : NULL;
                if (old && same_region(old, r)) {
                        /* the same region: its descriptor, or no second
                         * try at one it could not have */
                        now[i] = *old;
                        old->fd = -1;   /* moved */
                } else {
                        memcpy(now[i].name, key.name, sizeof(key.name));
                        now[i].uid = r->uid;
                        now[i].created = r->created;
                        now[i].size = r->size;
                        now[i].is_slice = r->is_slice;
                        now[i].offset = r->offset;
                        now[i].length = r->length;
                        now[i].fd = attach_ro(b, r);
                }
                if (now[i].fd >= 0)
                        pages = resident_pages(now[i].fd, r->is_slice ? r->offset : 0,
                                               r->is_slice ? r->length : r->size);
                if (pages >= 0) {
                        cJSON_AddNumberToObject(recs[i], "resident", (double)pages);
                        cJSON_AddNumberToObject(recs[i], "resident_bytes",
                                                (double)pages * (double)am_page_size());
                } else {
                        cJSON_AddNullToObject(recs[i], "resident");
                        cJSON_AddNullToObject(recs[i], "resident_bytes");
                }
        }
        /* names gone, or taken by another region: let go */
        for (size_t i = 0; i < t->nheld; i++)
                if (t->held[i].fd >= 0)
                        close(t->held[i].fd);
        free(t->held);
        qsort(now, n, sizeof(*now), held_cmp);
        t->held = now;
        t->nheld = n;
        return 0;
}

static void resident_drop(struct top *t)
{
        for (size_t i = 0; i < t->nheld; i++)
                if (t->held[i].fd >= 0)
                        close(t->held[i].fd);
        free(t->held);
        t->held = NULL;
        t->nheld = 0;
}

/* The broker's regions as records sorted, in a new array; NULL with the
 * error in t->status (and *err, a positive errno). */
static cJSON *snapshot(struct top *t, int *err)
{
        ashmem_region_info *regions = NULL;
        ashmem_broker *b;
        cJSON **recs, *arr;
        size_t n = 0;
        int r;

        r = cmd_broker(t->ctx, &b);
        if (r == 0)
                r = ashmem_broker_list(b, &regions, &n);
        if (r < 0) {
                /* the broker went away: connect again next time */
                cmd_broker_close(t->ctx);
                *err = -r;
                {
                        char path[PATH_MAX];
                        cmd_socket_path(t->ctx, path, sizeof(path));
                        if (r == -ENOENT || r == -ECONNREFUSED)
                                snprintf(t->status, sizeof(t->status),
                                         "no broker is running on %s", path);
                        else
                                snprintf(t->status, sizeof(t->status), "cannot list the regions of %s: %s",
                                         path, strerror(-r));
                }
                return NULL;
        }
        recs = calloc(n ? n : 1, sizeof(*recs));
        arr = cJSON_CreateArray();
        for (size_t i = 0; recs && arr && i < n; i++)
                if (!(recs[i] = out_region_record(&regions[i])))
                        goto oom;
        if (recs && arr && t->want_res && resident_update(t, b, regions, n, recs) < 0)
                goto oom;
        free(regions);
        regions = NULL;
        if (!recs || !arr)
                goto oom;
        sort_top = t;
        qsort(recs, n, sizeof(*recs), cmp_records);
        for (size_t i = 0; i < n; i++) {
                cJSON_AddItemToArray(arr, recs[i]);
                recs[i] = NULL;
        }
        free(recs);
        t->status[0] = 0;
        return arr;
oom:
        for (size_t i = 0; recs && i < n; i++)
                cJSON_Delete(recs[i]);
        free(recs);
        free(regions);
        cJSON_Delete(arr);
        *err = ENOMEM;
        snprintf(t->status, sizeof(t->status), "out of memory");
        return NULL;
}

/* ---------------------------------------------------------------- terminal */

static void put(const char *s)
{
        size_t n = strlen(s);

        while (n) {
                ssize_t k = write(STDOUT_FILENO, s, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;         /* the terminal is gone: nothing to draw on */
                s += k;
                n -= (size_t)k;
        }
}

/* Give the terminal back: normal screen, cursor, modes as they were. */
static void term_restore(struct top *t)
{
        if (!t->raw)
                return;
        put("\033[?25h\033[?1049l");
        while (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved) < 0 && errno == EINTR)
                ;
        t->raw = 0;
}

/* Take it: keys one at a time without echo (signals keep working, so
 * Ctrl-C is SIGINT), the alternate screen, no cursor. */
static int term_take(struct top *t)
{
        struct termios tio = t->saved;

        tio.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        tio.c_cc[VMIN] = 1;
        tio.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0)
                return -errno;
        t->raw = 1;
        put("\033[?1049h\033[?25l");
        return 0;
}

static void term_size(int *rows, int *cols)
{
        struct winsize ws;

        *rows = 24;
        *cols = 80;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
                *rows = ws.ws_row;
                *cols = ws.ws_col;
        }
}

/* The summary line: when, how many, what they hold. */
static void summary(const struct top *t, const cJSON *recs, char *buf, size_t len)
{
        unsigned long long pages = 0, pinned = 0, unpinned = 0, purged = 0, bytes = 0, res = 0;
        char when[64], total[32], rtotal[40] = "";
        int known = 0;
        const cJSON *r;
        int n = 0;

        cJSON_ArrayForEach(r, recs) {
                n++;
                if (cJSON_GetObjectItemCaseSensitive(r, "of"))
                        continue;       /* a slice: its pages are its region's */
                bytes += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "size"));
                pages += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "pages"));
                pinned += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "pinned"));
                unpinned += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "unpinned"));
                purged += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "purged"));
                if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "resident_bytes"))) {
                        res += (unsigned long long)num_of(cJSON_GetObjectItemCaseSensitive(r, "resident_bytes"));
                        known = 1;
                }
        }
        if (known) {
                size_t l;
                snprintf(rtotal, sizeof(rtotal), ", ");
                l = strlen(rtotal);
                if (t->flags & OUT_BYTES_EXACT)
                        snprintf(rtotal + l, sizeof(rtotal) - l, "%llu", res);
                else
                        format_size(res, rtotal + l, sizeof(rtotal) - l);
                l = strlen(rtotal);
                snprintf(rtotal + l, sizeof(rtotal) - l, " resident");
        }
        out_time_text(time(NULL), OUT_TIME_ISO, when, sizeof(when));
        if (t->flags & OUT_BYTES_EXACT)
                snprintf(total, sizeof(total), "%llu", bytes);
        else
                format_size(bytes, total, sizeof(total));
        snprintf(buf, len,
                 "%s  %d region%s, %s%s  pages %llu: %llu pinned, %llu unpinned, %llu purged",
                 when, n, n == 1 ? "" : "s", total, rtotal, pages, pinned, unpinned, purged);
}

/* How many bytes of s fit in cols display columns (a wide character that
 * would straddle the edge is left out). */
static size_t fit(const char *s, int cols)
{
        mbstate_t st;
        size_t at = 0, len = strlen(s);
        int used = 0;

        memset(&st, 0, sizeof(st));
        while (at < len) {
                wchar_t wc;
                size_t k = mbrtowc(&wc, s + at, len - at, &st);
                int w;
                if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
                        /* not a character here: a byte a column */
                        memset(&st, 0, sizeof(st));
                        k = 1;
                        w = 1;
                } else {
                        w = wcwidth(wc);
                        if (w < 0)
                                w = 1;
                }
                if (used + w > cols)
                        break;
                used += w;
                at += k;
        }
        return at;
}

/* One line cut to cols display columns, then the rest of it cleared;
 * last: no new line after it (the bottom line would scroll). */
static void put_line(const char *s, int cols, int last)
{
        size_t n = fit(s, cols);
        char *c = strndup(s, n);

        put(c ? c : "");
        free(c);
        put(last ? "\033[K" : "\033[K\r\n");
}

static void draw(struct top *t, const cJSON *recs)
{
        int rows, cols, line = 0;
        char head[512], help[256], *table = NULL;

        term_size(&rows, &cols);
        put("\033[H");
        summary(t, recs, head, sizeof(head));
        put_line(head, cols, 0);
        snprintf(help, sizeof(help), "sort: %s%s (< > to change, r to reverse), every %d.%ds; q to quit",
                 out_cols[t->sort].name, t->reverse ? " reversed" : "",
                 t->interval_ms / 1000, t->interval_ms % 1000 / 100);
        put_line(t->status[0] ? t->status : help, cols, 0);
        line = 2;
        if (recs && out_table_string(recs, t->cols, t->ncols, t->flags, (size_t)cols, &table) == 0) {
                /* each line is at most cols wide (libsmartcols shortens the
                 * name column to fit) */
                for (char *p = table, *nl; p && *p && line < rows; p = nl ? nl + 1 : NULL, line++) {
                        nl = strchr(p, '\n');
                        if (nl)
                                *nl = 0;
                        put_line(p, cols, line + 1 >= rows);
                }
        }
        free(table);
        put("\033[J");
}

/* ---------------------------------------------------------------- keys */

/* A key pressed: 1 to redraw, 0 nothing, -1 to quit. */
static int key(struct top *t, char c)
{
        int pos = -1;

        for (int i = 0; i < t->ncols; i++)
                if (t->cols[i] == t->sort)
                        pos = i;
        switch (c) {
        case 'q':
        case 'Q':
                return -1;
        case '<':
                pos = pos <= 0 ? t->ncols - 1 : pos - 1;
                t->sort = t->cols[pos];
                return 1;
        case '>':
                pos = pos < 0 || pos + 1 >= t->ncols ? 0 : pos + 1;
                t->sort = t->cols[pos];
                return 1;
        case 'r':
        case 'R':
                t->reverse = !t->reverse;
                return 1;
        case ' ':
        case '\f':
                return 1;
        }
        return 0;
}

/* ---------------------------------------------------------------- loops */

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the next refresh is due, a key comes, or a signal: what the
 * caller must do next (0 refresh, 1 redraw, -1 quit). */
static int wait_tick(struct top *t, long long due)
{
        for (;;) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                long long left = due - now_ms();
                int r;

                if (got_quit)
                        return -1;
                if (got_winch) {
                        got_winch = 0;
                        return 1;
                }
                if (got_cont) {
                        /* continued after a stop from elsewhere: the shell
                         * may have reset the terminal */
                        got_cont = 0;
                        if (t->raw) {
                                t->raw = 0;
                                if (term_take(t) < 0)
                                        return -1;
                        }
                        return 1;
                }
                if (got_tstp) {
                        /* Ctrl-Z: give the terminal back while stopped */
                        got_tstp = 0;
                        term_restore(t);
                        signal(SIGTSTP, SIG_DFL);
                        raise(SIGTSTP);
                        /* continued */
                        signal(SIGTSTP, on_signal);
                        if (term_take(t) < 0)
                                return -1;
                        return 1;
                }
                if (left <= 0)
                        return 0;
                r = poll(&p, t->tty ? 1 : 0, (int)(left > 60000 ? 60000 : left));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p.revents & POLLIN))
                        return -1;      /* the terminal hung up */
                if (r > 0) {
                        char c;
                        ssize_t k = read(STDIN_FILENO, &c, 1);
                        if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (k <= 0)
                                return -1;
                        switch (key(t, c)) {
                        case -1: return -1;
                        case 1: return 1;
                        }
                }
        }
}

static int run_screen(struct top *t)
{
        cJSON *recs = NULL;
        long long due = 0;
        int r, err = 0;

        if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
                return cmd_error(t->ctx, errno, "reading the terminal's settings");
        if ((r = term_take(t)) < 0)
                return cmd_error(t->ctx, -r, "setting up the terminal");
        for (;;) {
                if (now_ms() >= due) {
                        cJSON_Delete(recs);
                        recs = snapshot(t, &err);
                        due = now_ms() + t->interval_ms;
                        if (t->count > 0)
                                t->count--;
                } else if (recs) {
                        /* a new order or size: sort what is there again */
                        int n = cJSON_GetArraySize(recs);
                        cJSON **v = calloc((size_t)(n ? n : 1), sizeof(*v));
                        if (v) {
                                for (int i = n - 1; i >= 0; i--)
                                        v[i] = cJSON_DetachItemFromArray(recs, i);
                                sort_top = t;
                                qsort(v, (size_t)n, sizeof(*v), cmp_records);
                                for (int i = 0; i < n; i++)
                                        cJSON_AddItemToArray(recs, v[i]);
                                free(v);
                        }
                }
                draw(t, recs);
                if (t->count == 0)
                        break;
                if (wait_tick(t, due) < 0)
                        break;
        }
        term_restore(t);
        if (t->count == 0) {
                /* --count ran out: the last refresh stays on the screen,
                 * as the table top prints without a terminal */
                if (!recs) {
                        cJSON_Delete(recs);
                        return cli_error(t->ctx, err, "%s", t->status);
                }
                r = out_table(stdout, recs, t->cols, t->ncols, t->flags);
                cJSON_Delete(recs);
                if (r < 0)
                        return cmd_error(t->ctx, -r, "printing the regions");
                if (fflush(stdout) == EOF)
                        return cmd_error(t->ctx, errno, "writing output");
                return 0;
        }
        cJSON_Delete(recs);
        return 0;
}

/* For scripts: a snapshot per refresh, as a JSON line or a table. */
static int run_stream(struct top *t)
{
        for (long long due;;) {
                int err = 0;
                cJSON *recs = snapshot(t, &err);
                char when[64];
                time_t now = time(NULL);

                if (!recs)
                        return cli_error(t->ctx, err, "%s", t->status);
                due = now_ms() + t->interval_ms;
                if (t->ctx->json) {
                        cJSON *doc = cJSON_CreateObject();
                        if (!doc || !format_utc(now, when, sizeof(when)) ||
                            !cJSON_AddStringToObject(doc, "time", when) ||
                            !cJSON_AddNumberToObject(doc, "interval", t->interval_ms / 1000.0) ||
                            !cJSON_AddItemToObject(doc, "regions", recs)) {
                                if (!doc || !cJSON_GetObjectItemCaseSensitive(doc, "regions"))
                                        cJSON_Delete(recs);
                                cJSON_Delete(doc);
                                return cmd_error(t->ctx, ENOMEM, "building JSON output");
                        }
                        if (out_json(t->ctx, doc))
                                return 1;
                } else {
                        int r = out_table(stdout, recs, t->cols, t->ncols, t->flags);
                        cJSON_Delete(recs);
                        if (r < 0)
                                return cmd_error(t->ctx, -r, "printing the regions");
                        putchar('\n');
                }
                if (fflush(stdout) == EOF)
                        return cmd_error(t->ctx, errno, "writing output");
                if (t->count > 0 && --t->count == 0)
                        return 0;
                if (wait_tick(t, due) < 0)
                        return got_quit ? 0 : 1;
        }
}

/* SECONDS: digits with up to three decimals, 0.1 to 86400, as ms. */
static int parse_interval(const char *s, int *ms, char *err)
{
        long long v = 0, frac = 0;
        int nf = 0;
        const char *p = s;

        for (; *p >= '0' && *p <= '9' && v <= 86400; p++)
                v = v * 10 + (*p - '0');
        if (p == s)
                goto bad;
        if (*p == '.') {
                for (p++; *p >= '0' && *p <= '9'; p++, nf++)
                        if (nf < 3)
                                frac = frac * 10 + (*p - '0');
                if (nf == 0)
                        goto bad;
                for (int i = nf; i < 3; i++)
                        frac *= 10;
        }
        if (*p)
                goto bad;
        if (v > 86400 || v * 1000 + frac > 86400000 || v * 1000 + frac < 100) {
                snprintf(err, PARSE_ERR_LEN, "invalid interval '%s': use 0.1 to 86400 seconds", s);
                return -1;
        }
        *ms = (int)(v * 1000 + frac);
        return 0;
bad:
        snprintf(err, PARSE_ERR_LEN, "invalid interval '%s': not a number of seconds", s);
        return -1;
}

static int top_exec(struct cmd_ctx *ctx, struct cmd_args *a)
{
        const char *spec = cmd_opt(a, "output"), *sort = cmd_opt(a, "sort");
        const char *iv = cmd_opt(a, "interval"), *cs = cmd_opt(a, "count");
        struct sigaction sa, old[6];
        sigset_t mask, oldmask;
        char err[PARSE_ERR_LEN], buf[512];
        struct top t;
        uint64_t count;
        int r, sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT };

        out_locale();   /* the display width of names */
        memset(&t, 0, sizeof(t));
        t.ctx = ctx;
        t.count = -1;
        t.interval_ms = 2000;
        t.reverse = cmd_flag(a, "reverse");
        t.flags = ctx->out_flags | (cmd_flag(a, "bytes") ? OUT_BYTES_EXACT : 0);
        if (!spec)
                spec = top_default;
        else if (*spec == '+') {
                snprintf(buf, sizeof(buf), "%s,%s", top_default, spec + 1);
                spec = buf;
        }
        t.ncols = out_cols_select(spec, OUT_COL_TOP, t.cols, err);
        if (t.ncols < 0)
                return cmd_usage(ctx, "%s", err);
        if (out_cols_select(sort ? sort : "SIZE", OUT_COL_TOP, &t.sort, err) != 1) {
                if (sort && !strchr(sort, ','))
                        return cmd_usage(ctx, "%s", err);
                return cmd_usage(ctx, "invalid sort column '%s': give one column (see 'list --list-columns')",
                                 sort ? sort : "");
        }
        if (iv && parse_interval(iv, &t.interval_ms, err) < 0)
                return cmd_usage(ctx, "%s", err);
        if (cs) {
                if (parse_uint(cs, "count", 1000000000, &count, err) < 0)
                        return cmd_usage(ctx, "%s", err);
                if (count == 0)
                        return cmd_usage(ctx, "invalid count '0': give at least 1");
                t.count = (long)count;
        }
        t.tty = !ctx->json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
        /* resident pages only when shown: the JSON records carry every
         * field; in a table, a column or the sort may ask for them (keys
         * move the sort along the columns shown) */
        t.want_res = ctx->json || (out_cols[t.sort].flags & OUT_COL_TOP);
        for (int i = 0; i < t.ncols; i++)
                if (out_cols[t.cols[i]].flags & OUT_COL_TOP)
                        t.want_res = 1;
        if (t.want_res) {
                /* a descriptor a region: as many as the system lets a
                 * process hold */
                struct rlimit rl;
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        /* the first connection reports its own errors, as every command's */
        {
                ashmem_broker *b;
                if (cli_broker(ctx, &b))
                        return 1;
        }
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&mask);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        got_quit = got_winch = got_tstp = got_cont = 0;
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
                if (!t.tty && (sigs[i] == SIGWINCH || sigs[i] == SIGTSTP || sigs[i] == SIGCONT))
                        continue;
                if (sigaction(sigs[i], &sa, &old[i]) < 0) {
                        r = cmd_error(ctx, errno, "setting up signals");
                        goto restore;
                }
                sigaddset(&mask, sigs[i]);
        }
        /* a parent may have left them blocked: they must reach us */
        if (sigprocmask(SIG_UNBLOCK, &mask, &oldmask) < 0) {
                r = cmd_error(ctx, errno, "setting up signals");
                goto restore;
        }
        r = t.tty ? run_screen(&t) : run_stream(&t);
        sigprocmask(SIG_SETMASK, &oldmask, NULL);
        resident_drop(&t);
restore:
        /* the handlers as they were (the shell's, inside the shell) */
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                if (sigismember(&mask, sigs[i]))
                        sigaction(sigs[i], &old[i], NULL);
        if (got_quit) {
                /* interrupted or killed, the terminal back: in the shell
                 * the command ends as interrupted; else die of the
                 * signal, as the sender expects */
                fflush(stdout);
                if (ctx->shell)
                        return 128 + got_quit;
                signal(got_quit, SIG_DFL);
                raise(got_quit);
        }
        return r;
}

const struct cmd_entry cmd_top_entry = {
        .name = "top", .flags = CMD_BROKER, .exec = top_exec,
        .summary = "a live view of the regions, refreshed and sorted",
        .opts = top_opts, .max_args = 0,
};
