/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the broker's request handling: one message per input, with up to
 * ten descriptors of many kinds, sent on a connected SOCK_SEQPACKET socket
 * and read by the broker's own connection code (conn_read: recvmsg, the
 * descriptor collection, serve, ops_dispatch, the reply). The broker's
 * state lives on from input to input, so creates, shares, slices,
 * attaches, purges and unshares of earlier inputs meet later ones; three
 * peers (root, uid 1000, uid 1001 in group 1000) take turns.
 *
 * After every input:
 *   - the reply is exactly one message, one JSON object with "ok"; a
 *     failure has "errno" and "error" and no descriptor; a region record
 *     has every field of ashmem-protocol(7) and its page counts add up;
 *     a read-only descriptor handed out refuses a writable mapping;
 *   - the broker's own books balance (names sorted and valid, region
 *     references, bytes, transient counts, connections);
 *   - no descriptor leaked: every descriptor open in the process is one
 *     the broker keeps (by its own accounting), one this harness keeps,
 *     one that was there before, or the library's control descriptor of a
 *     region still referred to; all are close-on-exec;
 *   - every few thousand inputs the broker drops everything, and the
 *     process must be back to the descriptors it started with.
 *
 * Input: three header bytes, then the message.
 *   byte 0: bits 0-3: descriptors attached (value % 11: 0..10; the
 *           protocol allows 2, the broker reads 8); bits 4-5: the peer
 *           (0 root, 1 uid 1000, 2 uid 1001 with group 1000, 3 root)
 *   byte 1: the kind of descriptor 0 (low nibble) and 1 (high nibble);
 *           descriptor i >= 2 is of kind (byte 1 + 7 i) % 16 (see make_fd)
 *   byte 2: flags: 1 pad the message with blanks to 65537 bytes (one too
 *           many), 2 pad it to exactly 65536, 4 the peer hangs up before
 *           reading the reply, 8 the peer connects anew first (its
 *           transient names go), 16 unpin all of the region of the last
 *           reply (pool[0]), 32 unpin the first page of the one before
 *           (pool[2]), 64 pin pool[0] again (what purges find)
 */
/* conn.c last: its reply buffer would shadow the operations' parameters
 * of the same name */
/* names in blocks of 4: with a few dozen names, blocks split and empty
 * all the time */
#define NAME_BLOCK 4
/* the reload request would execute this harness again as a broker */
#define RELOAD_DISABLED 1
#include "../../broker/access.c"
#include "../../broker/fields.c"
#include "../../broker/names.c"
#include "../../broker/records.c"
#include "../../broker/regions.c"
#include "../../broker/ops.c"
#include "../../broker/purge.c"
#include "../../broker/closer.c"
#include "../../broker/setup.c"
#include "../../broker/service.c"
#include "../../broker/reload.c"
#include "../../broker/broker.c"
#include "../../broker/conn.c"

#include <assert.h>
#include <dirent.h>
#include <sys/eventfd.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPEERS 3
#define POOL 8
#define RESET_EVERY 4000
#define RESET_NAMES 96
#define MAXFD 65536

static struct broker_config cfg;
static struct broker *B;
static struct {
        struct conn *c;
        int fd;                 /* the peer's end */
} peers[NPEERS];
static int pool[POOL];          /* descriptors of earlier replies */
static unsigned long inputs;

/* ---------------------------------------------------------------- peers */

static void peer_open(int i)
{
        static const uid_t uids[NPEERS] = { 0, 1000, 1001 };
        static const gid_t gids[NPEERS] = { 0, 1000, 1001 };
        struct conn *c = calloc(1, sizeof(*c));
        int sv[2];

        assert(c);
        assert(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        assert(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
        c->fd = sv[0];
        c->uid = uids[i];
        c->gid = gids[i];
        c->pid = 1000 + i;
        if (i == 2) {
                c->groups = malloc(sizeof(gid_t));
                assert(c->groups);
                c->groups[0] = 1000;
                c->ngroups = 1;
        }
        c->last_ms = am_mono_ms();
        assert(epoll_set(B, EPOLL_CTL_ADD, c->fd, EPOLLIN | EPOLLRDHUP, c) == 0);
        c->reading = 1;
        c->next = B->conns;
        if (B->conns)
                B->conns->prev = c;
        B->conns = c;
        B->nconns++;
        B->n.connections_total++;
        peers[i].c = c;
        peers[i].fd = sv[1];
}

static void peer_close(int i)
{
        conn_close(B, peers[i].c, "fuzz");
        conns_reap(B);
        if (peers[i].fd >= 0)
                close(peers[i].fd);
        peers[i].c = NULL;
        peers[i].fd = -1;
}

static void pool_clear(void)
{
        for (int i = 0; i < POOL; i++) {
                if (pool[i] >= 0)
                        close(pool[i]);
                pool[i] = -1;
        }
}

static void pool_push(int a, int b)
{
        if (pool[POOL - 2] >= 0)
                close(pool[POOL - 2]);
        if (pool[POOL - 1] >= 0)
                close(pool[POOL - 1]);
        memmove(pool + 2, pool, (POOL - 2) * sizeof(pool[0]));
        pool[0] = a;
        pool[1] = b;
}

/* ---------------------------------------------------------------- descriptors */

struct fdset {
        unsigned char *open;    /* [MAXFD] */
        int n;
};

static void fdset_scan(struct fdset *s)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int self;

        assert(d);
        self = dirfd(d);
        memset(s->open, 0, MAXFD);
        s->n = 0;
        while ((de = readdir(d))) {
                int fd;
                if (de->d_name[0] == '.')
                        continue;
                fd = atoi(de->d_name);
                if (fd == self)
                        continue;
                assert(fd >= 0 && fd < MAXFD);
                s->open[fd] = 1;
                s->n++;
        }
        closedir(d);
}

static void mark(unsigned char *set, int fd)
{
        if (fd >= 0) {
                assert(fd < MAXFD);
                set[fd] = 1;
        }
}

/* What the broker keeps (its own accounting) and what this harness keeps. */
static void expected(unsigned char *set)
{
        memset(set, 0, MAXFD);
        mark(set, B->epfd);
        mark(set, B->jobfd);
        for (size_t i = 0; i < B->regions.nbuckets; i++)
                for (struct am_idnode *n = B->regions.buckets[i]; n; n = n->next) {
                        struct held_region *r = am_id_record(n, struct held_region, id);
                        mark(set, r->fd);
                        mark(set, r->ctl);
                        mark(set, r->ro_fd);
                        mark(set, r->ro_ctl);
                }
        for (struct conn *c = B->conns; c; c = c->next) {
                mark(set, c->fd);
                for (int i = 0; i < c->noutfds; i++)
                        mark(set, c->outfds[i]);
        }
        for (int i = 0; i < NPEERS; i++)
                mark(set, peers[i].fd);
        for (int i = 0; i < POOL; i++)
                mark(set, pool[i]);
}

static int is_memfd(int fd, const char *name)
{
        char path[64], link[300];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return 0;
        link[n] = 0;
        if (strncmp(link, "/memfd:", 7) != 0)
                return 0;
        return !name || strncmp(link + 7, name, strlen(name)) == 0;
}

/* The library's control descriptor: a memfd "ashmem-control" sealed for
 * good (a region's data memfd can be sealed, never with F_SEAL_SEAL). */
static int is_control(int fd)
{
        int seals = fcntl(fd, F_GET_SEALS);
        return seals >= 0 && (seals & F_SEAL_SEAL) && is_memfd(fd, "ashmem-control");
}

/* The descriptor the library's table keeps in reserve (/dev/null) for a
 * collection when the process runs out of descriptors. */
static int is_reserve(int fd)
{
        struct stat st, nul;
        return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
               stat("/dev/null", &nul) == 0 && st.st_rdev == nul.st_rdev;
}

/* Regions this process refers to through a descriptor it keeps and for
 * which the library has a control block: each may have one control
 * descriptor of the library's. */
static int library_regions(const unsigned char *exp)
{
        static ino_t seen[MAXFD];
        int n = 0;

        for (int fd = 0; fd < MAXFD; fd++) {
                struct stat st;
                int ctl, dup = 0;
                if (!exp[fd] || !is_memfd(fd, NULL) || is_control(fd) || fstat(fd, &st) < 0)
                        continue;
                for (int k = 0; k < n && !dup; k++)
                        dup = seen[k] == st.st_ino;
                if (dup || ashmem_get_control(fd, &ctl) < 0)
                        continue;
                close(ctl);
                seen[n++] = st.st_ino;
        }
        return n;
}

/* Every descriptor open now is accounted for. outside: what was open
 * before and is none of ours (libFuzzer's, stdio). */
static void check_fds(const unsigned char *outside)
{
        static unsigned char exp[MAXFD], openset[MAXFD];
        static ino_t ctl_ino[MAXFD];
        struct fdset now = { openset, 0 };
        int nctl = 0;

        (void)ashmem_collect();
        expected(exp);
        fdset_scan(&now);
        for (int fd = 0; fd < MAXFD; fd++) {
                struct stat st;
                if (!now.open[fd] || outside[fd])
                        continue;
                assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
                if (exp[fd] || is_reserve(fd))
                        continue;
                /* not the broker's, not ours: the library's control block */
                assert(is_control(fd));
                assert(fstat(fd, &st) == 0);
                for (int k = 0; k < nctl; k++)
                        assert(ctl_ino[k] != st.st_ino);        /* a leaked duplicate */
                ctl_ino[nctl++] = st.st_ino;
        }
        for (int fd = 0; fd < MAXFD; fd++)
                if (exp[fd])
                        assert(now.open[fd]);
        /* one per region still referred to, and one the purge thread's
         * lookup cache may keep alive a little longer */
        assert(nctl <= library_regions(exp) + 1);
}

/* What was open before this input and is none of ours. */
static void outside_fds(unsigned char *outside)
{
        static unsigned char exp[MAXFD];
        struct fdset now = { outside, 0 };

        expected(exp);
        fdset_scan(&now);
        for (int fd = 0; fd < MAXFD; fd++)
                if (outside[fd] && (exp[fd] || is_control(fd)))
                        outside[fd] = 0;
}

/* ---------------------------------------------------------------- the broker's books */

static int live_conn(const struct conn *x)
{
        for (struct conn *c = B->conns; c; c = c->next)
                if (c == x)
                        return !c->dead;
        return 0;
}

static void check_broker(void)
{
        size_t nregions = 0, nnames = 0;
        unsigned long long bytes = 0;
        unsigned nconns = 0;
        const struct entry *e, *prev = NULL;
        struct name_pos p = { 0, 0 };

        for (size_t k = 0; k < B->nnblocks; k++)
                assert(B->nblocks[k]->n > 0 && B->nblocks[k]->n <= NAME_BLOCK);
        while ((e = name_next(B, &p))) {
                assert(e->r);
                assert(!bad_name(e->name));
                assert(name_find(B, e->name) == e);
                {
                        struct name_pos at;
                        const struct entry *o = e->r->names;
                        assert(name_lookup(B, e->name, &at) == e);
                        assert(at.b == p.b && at.i + 1 == p.i);
                        /* on its region's list of names, linked both ways */
                        while (o && o != e)
                                o = o->rnext;
                        assert(o == e);
                        assert(e->rprev ? e->rprev->rnext == e : e->r->names == e);
                        assert(!e->rnext || e->rnext->rprev == e);
                        for (o = e->r->names; o; o = o->rnext)
                                assert(o->r == e->r);
                }
                if (prev)
                        assert(strcmp(prev->name, e->name) < 0);
                prev = e;
                nnames++;
                assert(e->mode <= 0777);
                if (e->ranged)
                        assert(e->length > 0 && e->offset <= e->r->size &&
                               e->length <= e->r->size - e->offset);
                if (e->of)
                        assert(e->ranged);
                if (e->owner)
                        assert(live_conn(e->owner));
        }
        assert(nnames == B->nnames);
        /* the slices' books: a slice lives only while the name it is a
         * slice of does (on the same region), and every name's list holds
         * its slices exactly (a removal walks that list) */
        p = (struct name_pos){ 0, 0 };
        while ((e = name_next(B, &p))) {
                struct name_pos q = { 0, 0 };
                const struct entry *s;
                unsigned n = 0;
                if (e->of)
                        assert(slice_base(B, e));
                /* the name it was cut from, and its list of slices */
                assert(e->base == slice_base(B, e));
                while ((s = name_next(B, &q)))
                        n += slice_base(B, s) == e;
                for (s = e->slist; s; s = s->snext, n--) {
                        assert(s->base == e);
                        assert(s->sprev ? s->sprev->snext == s : e->slist == s);
                        assert(!s->snext || s->snext->sprev == s);
                }
                assert(n == 0);
        }
        /* the limits' books: names and bytes per user */
        for (size_t u = 0; u < B->nuses; u++) {
                size_t n = 0;
                unsigned long long held = 0;
                p = (struct name_pos){ 0, 0 };
                while ((e = name_next(B, &p)))
                        if (e->uid == B->uses[u].uid) {
                                n++;
                                held += e->of ? 0 : e->r->size;
                        }
                assert(n == B->uses[u].names && held == B->uses[u].bytes);
                /* and its list of them, linked both ways */
                n = 0;
                for (const struct entry *o = B->uses[u].owned; o; o = o->unext, n++) {
                        assert(o->uid == B->uses[u].uid);
                        assert(o->uprev ? o->uprev->unext == o : B->uses[u].owned == o);
                        assert(!o->unext || o->unext->uprev == o);
                }
                assert(n == B->uses[u].names);
        }
        for (size_t h = 0; h < B->regions.nbuckets; h++)
                for (struct am_idnode *n = B->regions.buckets[h]; n; n = n->next) {
                        struct held_region *r = am_id_record(n, struct held_region, id);
                        unsigned refs = 0;
                        assert((am_id_hash(r->id.dev, r->id.ino, r->id.key) &
                                (B->regions.nbuckets - 1)) == h);
                        p = (struct name_pos){ 0, 0 };
                        while ((e = name_next(B, &p)))
                                refs += e->r == r;
                        assert(refs > 0 && refs == r->refs);
                        assert(fcntl(r->fd, F_GETFD) >= 0);
                        nregions++;
                        bytes += r->size;
                }
        assert(nregions == B->regions.n);
        assert(bytes == B->bytes);
        for (struct conn *c = B->conns; c; c = c->next) {
                unsigned t = 0;
                nconns++;
                assert(!c->dead && !c->out && !c->job && c->noutfds == 0);
                p = (struct name_pos){ 0, 0 };
                while ((e = name_next(B, &p)))
                        t += e->owner == c;
                assert(t == c->transients);
                /* and its list of them, linked both ways */
                t = 0;
                for (const struct entry *o = c->owned; o; o = o->cnext, t++) {
                        assert(o->owner == c);
                        assert(o->cprev ? o->cprev->cnext == o : c->owned == o);
                        assert(!o->cnext || o->cnext->cprev == o);
                }
                assert(t == c->transients);
        }
        assert(nconns == B->nconns);
        assert(B->jpending == 0);
}

/* ---------------------------------------------------------------- replies */

static int has_num(const cJSON *o, const char *k)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(v) && v->valuedouble >= 0;
}

static int has_str(const cJSON *o, const char *k)
{
        return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, k));
}

static double num(const cJSON *o, const char *k)
{
        return cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}

/* A region record (ashmem-protocol(7)). */
static void check_record(const cJSON *o)
{
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
        const cJSON *prot = cJSON_GetObjectItemCaseSensitive(o, "prot");

        assert(has_str(o, "name") && has_num(o, "size") && has_num(o, "uid") &&
               has_num(o, "gid") && has_str(o, "user") && has_str(o, "group") &&
               has_str(o, "created") && has_num(o, "prot_mask") && has_num(o, "pages") &&
               has_num(o, "pinned") && has_num(o, "unpinned") && has_num(o, "purged") &&
               has_num(o, "attaches"));
        assert(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "transient")));
        assert(cJSON_IsString(mode) && strlen(mode->valuestring) == 4 &&
               strspn(mode->valuestring, "01234567") == 4);
        assert(cJSON_IsString(prot) && strlen(prot->valuestring) == 3);
        assert(num(o, "prot_mask") <= 7);
        assert(num(o, "pinned") + num(o, "unpinned") + num(o, "purged") == num(o, "pages"));
        if (cJSON_GetObjectItemCaseSensitive(o, "offset") ||
            cJSON_GetObjectItemCaseSensitive(o, "length"))
                assert(has_num(o, "offset") && has_num(o, "length") &&
                       num(o, "length") == num(o, "size"));
}

/* One reply: text, and the descriptors that came with it. */
static void check_reply(const char *text, size_t len, const int *fds, int nfds,
                        size_t msglen, int nsent)
{
        const char *end = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        const cJSON *ok, *regions;

        assert(len <= MSG_MAX);
        assert(o && cJSON_IsObject(o));
        assert(end == text + len);
        ok = cJSON_GetObjectItemCaseSensitive(o, "ok");
        assert(cJSON_IsBool(ok));
        if (cJSON_IsFalse(ok)) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "errno");
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "error");
                assert(cJSON_IsString(e) && e->valuestring[0] == 'E');
                assert(cJSON_IsString(m) && m->valuestring[0]);
                assert(nfds == 0);
                if (msglen > MSG_MAX)
                        assert(strcmp(e->valuestring, "EMSGSIZE") == 0);
                else if (nsent > FDS_MAX)
                        assert(strcmp(e->valuestring, "EINVAL") == 0);
                else if (msglen == 0)
                        assert(strcmp(e->valuestring, "EPROTO") == 0);
        } else {
                /* a message too long, or with too many descriptors, never
                 * gets a success */
                assert(msglen <= MSG_MAX && msglen > 0 && nsent <= FDS_MAX);
                if (cJSON_GetObjectItemCaseSensitive(o, "name"))
                        check_record(o);
                regions = cJSON_GetObjectItemCaseSensitive(o, "regions");
                if (regions && !cJSON_IsArray(regions)) {
                        /* stats: a count */
                        assert(cJSON_IsNumber(regions) && has_num(o, "requests"));
                } else if (regions) {
                        const cJSON *r;
                        assert(cJSON_GetArraySize(regions) <= LIST_PAGE);
                        cJSON_ArrayForEach(r, regions)
                                check_record(r);
                }
                if (nfds && !cJSON_GetObjectItemCaseSensitive(o, "name")) {
                        /* attach's short reply: the size, and the data
                         * descriptor's identity when its control comes too */
                        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(o, "dev");
                        const cJSON *ino = cJSON_GetObjectItemCaseSensitive(o, "ino");
                        struct stat st;
                        assert(has_num(o, "size"));
                        assert(!dev == !ino && (!dev || nfds == 2));
                        /* a whole region's with its control names it */
                        assert(!!dev == (nfds == 2 &&
                                         !cJSON_GetObjectItemCaseSensitive(o, "offset")));
                        if (dev) {
                                assert(fstat(fds[0], &st) == 0);
                                assert(cJSON_IsNumber(dev) && cJSON_IsNumber(ino));
                                assert((double)st.st_dev == dev->valuedouble &&
                                       (double)st.st_ino == ino->valuedouble);
                        }
                }
        }
        cJSON_Delete(o);

        for (int i = 0; i < nfds; i++) {
                int fl = fcntl(fds[i], F_GETFL);
                assert(fl >= 0);
                assert(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
                assert(is_memfd(fds[i], NULL));
                if ((fl & O_ACCMODE) == O_RDONLY) {
                        /* read-only in the kernel, not just by the tool */
                        void *p = mmap(NULL, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
                        assert(p == MAP_FAILED && errno == EACCES);
                } else {
                        assert((fl & O_ACCMODE) == O_RDWR);
                }
        }
        if (nfds == 2)
                assert(is_control(fds[1]));
}

/* ---------------------------------------------------------------- setup */

static void broker_init(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max < MAXFD ? rl.rlim_max : MAXFD;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        signal(SIGPIPE, SIG_IGN);
        /* this process answers lookups; it must never ask another broker */
        ashmem_broker_auto_lookup(0);
        broker_config_init(&cfg);
        cfg.verbose = -1;               /* no log */
        cfg.psi = 0;
        cfg.max_regions = 40;           /* names per uid */
        cfg.max_bytes = 1ull << 30;     /* bytes per uid */
        B = calloc(1, sizeof(*B));
        assert(B);
        B->cfg = &cfg;
        B->lfd = B->sigfd = B->tickfd = B->psifd = B->jobfd = B->lockfd = -1;
        B->below = -1;
        B->started = time(NULL);
        B->epfd = epoll_create1(EPOLL_CLOEXEC);
        assert(B->epfd >= 0);
        assert(purge_start(B) == 0);
        for (int i = 0; i < POOL; i++)
                pool[i] = -1;
        for (int i = 0; i < NPEERS; i++)
                peer_open(i);
}

/* Drop everything; the process must be back to where it started, but for
 * the broker's own descriptors. */
static void broker_reset(const unsigned char *outside)
{
        static unsigned char openset[MAXFD];
        struct fdset now = { openset, 0 };
        int extra = 0;

        for (int i = 0; i < NPEERS; i++)
                peer_close(i);
        ops_free_all(B);
        pool_clear();
        assert(B->regions.n == 0 && B->bytes == 0 && B->nconns == 0);
        (void)ashmem_collect();
        fdset_scan(&now);
        for (int fd = 0; fd < MAXFD; fd++) {
                if (!now.open[fd] || outside[fd] || fd == B->epfd || fd == B->jobfd)
                        continue;
                assert(is_control(fd));
                extra++;
        }
        assert(extra <= 1);     /* the purge thread's cached lookup */
        for (int i = 0; i < NPEERS; i++)
                peer_open(i);
}

/* ---------------------------------------------------------------- one input */

struct made {
        int fds[64];
        int n;                  /* ours to close after sending */
        int cur, cur_ctl;       /* the region of kinds 0, 2, 13: for 1, 3 */
};

static int keep(struct made *m, int fd)
{
        assert(fd >= 0 && m->n < (int)(sizeof(m->fds) / sizeof(m->fds[0])));
        m->fds[m->n++] = fd;
        return fd;
}

static int reopen(int fd, int flags)
{
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, flags | O_CLOEXEC);
        assert(r >= 0);
        return r;
}

static int new_region(struct made *m, int prot)
{
        static unsigned k;
        size_t ps = (size_t)sysconf(_SC_PAGESIZE);
        int fd;

        k++;
        fd = ashmem_create_region("fuzz-region", ps * (1 + k % 3) - (k % 2 ? 100 : 0));

        assert(fd >= 0);
        if (prot >= 0)
                assert(ashmem_set_prot_region(fd, prot) == 0);
        m->cur = keep(m, fd);
        assert(ashmem_get_control(fd, &m->cur_ctl) == 0);
        keep(m, m->cur_ctl);
        return fd;
}

static int make_fd(struct made *m, unsigned kind)
{
        int p[2], fd;

        switch (kind & 15) {
        case 0:         /* a region, read-write */
                return new_region(m, -1);
        case 1:         /* the control of the region before */
                if (m->cur < 0)
                        new_region(m, -1);
                return m->cur_ctl;
        case 2:         /* a region, read-only */
                return keep(m, reopen(new_region(m, -1), O_RDONLY));
        case 3:         /* the control of the region before, read-only */
                if (m->cur < 0)
                        new_region(m, -1);
                return keep(m, reopen(m->cur_ctl, O_RDONLY));
        case 4:         /* a memfd that is no region of the library's */
                fd = keep(m, memfd_create("fuzz-plain", MFD_CLOEXEC));
                assert(ftruncate(fd, 4096) == 0);
                return fd;
        case 5:         /* an empty one */
                return keep(m, memfd_create("fuzz-empty", MFD_CLOEXEC));
        case 6:
                assert(pipe2(p, O_CLOEXEC) == 0);
                keep(m, p[1]);
                return keep(m, p[0]);
        case 7:
                return keep(m, open("/dev/null", O_RDWR | O_CLOEXEC));
        case 8: case 9: case 10: case 11:       /* from earlier replies */
                fd = pool[(kind & 15) - 8];
                return fd >= 0 ? fd : keep(m, open("/dev/null", O_RDONLY | O_CLOEXEC));
        case 12:
                assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0);
                keep(m, p[1]);
                return keep(m, p[0]);
        case 13:        /* a region whose protection dropped write */
                return new_region(m, PROT_READ);
        case 14: {      /* the control of some other region */
                int other, ctl;
                other = keep(m, ashmem_create_region("fuzz-other", 4096));
                assert(ashmem_get_control(other, &ctl) == 0);
                return keep(m, ctl);
        }
        default:
                return keep(m, open("/", O_PATH | O_CLOEXEC));
        }
}

static void send_msg(int fd, const char *text, size_t len, const int *fds, int nfds)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 16)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = (void *)text, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds) {
                struct cmsghdr *cm;
                memset(&u, 0, sizeof(u));
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
        }
        while ((n = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
                ;
        assert(n == (ssize_t)len);
}

/* Receive without waiting: the length, or -1 with errno EAGAIN. */
static ssize_t recv_msg(int fd, char *buf, size_t cap, int *fds, int *nfds, int *flags)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n;

        *nfds = 0;
        while ((n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
                ;
        if (n < 0)
                return n;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                size_t k;
                assert(cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS);
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++)
                        memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        }
        *flags = mh.msg_flags;
        return n;
}

/* An attach the broker reads without the JSON scanner is one the scanner
 * reads the same: v 1, op attach, the same name and access, record false
 * exactly when the quick reader saw it, and no other field. */
static void check_quick(const char *text, size_t n)
{
        struct quick_attach q;
        struct am_jobj o;
        const struct am_jfield *f;
        char s[ASHMEM_NAME_LEN + 8];
        uint64_t v;
        int rec;

        if (!ops_quick_parse(text, n, &q))
                return;
        assert(am_json_object(text, n, &o) == 0);
        assert(o.n == (q.record ? 4 : 5));
        assert((f = am_json_get(&o, "v")) && am_json_u64(f, UINT64_MAX, &v) == 0 && v == 1);
        assert((f = am_json_get(&o, "op")) && am_json_str(f, s, sizeof(s)) == 6 &&
               strcmp(s, "attach") == 0);
        assert((f = am_json_get(&o, "name")) && am_json_str(f, s, sizeof(s)) == (int)q.len &&
               memcmp(s, q.name, q.len) == 0);
        assert((f = am_json_get(&o, "access")) && am_json_str(f, s, sizeof(s)) >= 0 &&
               strcmp(s, q.writable ? "rw" : "r") == 0);
        f = am_json_get(&o, "record");
        assert(q.record ? !f : f && am_json_bool(f, &rec) == 0 && rec == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static unsigned char outside[MAXFD];
        static char msg[MSG_MAX + 2], reply[MSG_MAX + 2];
        struct made m = { .n = 0, .cur = -1, .cur_ctl = -1 };
        int fds[16], nfds, who, flags, rfds[8], nrfds = 0, rflags = 0;
        size_t len;
        ssize_t n;
        struct conn *c;

        if (size < 3)
                return 0;
        if (!B)
                broker_init();
        outside_fds(outside);
        if (++inputs % RESET_EVERY == 0 || B->nnames >= RESET_NAMES)
                broker_reset(outside);

        nfds = (data[0] & 15) % 11;
        who = (data[0] >> 4) & 3;
        if (who == 3)
                who = 0;
        flags = data[2];
        len = size - 3;
        memcpy(msg, data + 3, len);
        if (flags & 3) {
                size_t want = flags & 1 ? MSG_MAX + 1 : MSG_MAX;
                if (len < want) {
                        memset(msg + len, ' ', want - len);
                        len = want;
                }
        }
        if (flags & 8) {
                peer_close(who);
                peer_open(who);
        }
        /* pin state for purges to find (on whatever the pool holds: a
         * read-only descriptor, a control block or a plain memfd refuse) */
        if ((flags & 16) && pool[0] >= 0)
                (void)ashmem_unpin_region(pool[0], 0, 0);
        if ((flags & 32) && pool[2] >= 0)
                (void)ashmem_unpin_region(pool[2], 0, (size_t)sysconf(_SC_PAGESIZE));
        if ((flags & 64) && pool[0] >= 0)
                (void)ashmem_pin_region(pool[0], 0, 0);
        for (int i = 0; i < nfds; i++)
                fds[i] = make_fd(&m, i == 0 ? data[1] : i == 1 ? data[1] >> 4 :
                                 (unsigned)data[1] + 7u * (unsigned)i);

        check_quick(msg, len);
        c = peers[who].c;
        send_msg(peers[who].fd, msg, len, fds, nfds);
        for (int i = 0; i < m.n; i++)
                close(m.fds[i]);
        if (flags & 4) {
                close(peers[who].fd);
                peers[who].fd = -1;
        }

        conn_read(B, c);
        while (!c->dead && c->job) {    /* a purge: its reply comes later */
                struct pollfd p = { .fd = B->jobfd, .events = POLLIN };
                assert(poll(&p, 1, 10000) == 1);
                purge_completed(B);
        }

        if (flags & 4) {
                /* nobody reads: the broker drops the connection and with it
                 * the peer's transient names */
                assert(c->dead);
                conns_reap(B);
                peers[who].c = NULL;
                peer_open(who);
        } else {
                assert(!c->dead);
                n = recv_msg(peers[who].fd, reply, sizeof(reply), rfds, &nrfds, &rflags);
                assert(n > 0);
                assert(!(rflags & (MSG_TRUNC | MSG_CTRUNC)));
                assert(nrfds <= FDS_MAX);
                check_reply(reply, (size_t)n, rfds, nrfds, len, nfds);
                /* one reply per request */
                {
                        int x[8], nx = 0, xf = 0;
                        assert(recv_msg(peers[who].fd, reply, sizeof(reply), x, &nx, &xf) < 0 &&
                               errno == EAGAIN);
                }
                if (nrfds)
                        pool_push(rfds[0], nrfds > 1 ? rfds[1] : -1);
        }

        check_broker();
        check_fds(outside);
        return 0;
}
