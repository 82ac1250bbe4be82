/* SPDX-License-Identifier: MIT */
/*
 * Inside the broker daemon: the objects its files share (the event loop
 * in broker.c, connections in conn.c, setup.c, the regions, names, access
 * control, request fields and records in the files of those names, the
 * operations in ops.c, the purger in purge.c). Everything here belongs to
 * the main thread except the purge jobs, which the purge thread works
 * through (see struct job).
 */
#ifndef ASHMEM_BROKER_INTERNAL_H
#define ASHMEM_BROKER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "broker.h"
/* libashmem's internal helpers */
#include "lib/internal/clock.h"         /* monotonic clock */
#include "lib/internal/errname.h"       /* errno names */
#include "lib/internal/hold.h"          /* holds on pin state */
#include "lib/internal/idtable.h"       /* tables by file identity */
#include "lib/internal/json.h"          /* allocation-free JSON scanner */
#include "lib/internal/page.h"          /* page size */
#include "lib/internal/scm.h"           /* SCM_RIGHTS send and receive */
#include "lib/internal/sockdir.h"       /* socket directory rules */

#define MSG_MAX        65536
#define FDS_MAX        AM_SCM_MAX
#define LIST_PAGE      32
#define LIST_COUNTED   (1u << 20)      /* pages whose pin state a list
                                           page counts, past its first record */
#define REGION_BUCKETS 256      /* the table of regions starts with as many */

/* A region the broker holds: one data memfd, whatever names refer to it.
 * fd, size and id never change while it lives, so the purge thread
 * may use fd while it holds a reference; ctl and hold are set once (a
 * block made or received later), hold atomically, as the purge thread
 * reads it. */
struct held_region {
        unsigned refs;                  /* names + jobs */
        int fd;                         /* read-write data */
        int ctl;                        /* read-write control, -1: none */
        int made;                       /* made by "create": the broker
                                           makes its block (lookup) */
        int ctl_lost;                   /* its block did not check at a
                                           reload (a holder wrote over its
                                           header): none handed out, none
                                           made again */
        int seals;                      /* main thread: its data memfd's
                                           seals, read in */
        unsigned long long seals_turn;  /* this turn (records_new_turn) */
        size_t size;
        struct am_hold *hold;           /* its pin state, read without a
                                           system call; NULL: none */
        int ro_fd, ro_ctl;              /* read-only reopenings, on demand */
        struct am_idnode id;            /* (st_dev, st_ino) in b->regions */
        uid_t fd_uid;                   /* whose descriptor limit it counts */
        int fd_charged;                 /* against (REGION_FDS) */
        unsigned long long seen;        /* main thread: the last walk over
                                           the names that met it */
        char tail[88];                  /* main thread: the short attach
                                           reply's fields for the whole
                                           region, written on first use */
        unsigned char tail_len;         /* 0: none yet */
        unsigned char tail_ctl;         /* it was written with a control */
        struct entry *names;            /* the names of it (entry.rnext):
                                           lookup walks these, not all */
};
/* ,"size":N,"dev":D,"ino":I with 20-digit numbers, and its NUL */
_Static_assert(sizeof(((struct held_region *)0)->tail) >= 8 + 7 + 7 + 3 * 20 + 1,
               "the short attach reply's tail fits");

struct conn;

/* A name. */
struct entry {
        /* what every request that meets the name reads (its record, the
         * access check), in one cache line: a walk of many names (list)
         * misses once a name */
        char *name;
        struct held_region *r;
        char *rec;                      /* the record's fields that never
                                           change, as JSON, made on first use */
        size_t reclen;
        unsigned long long attaches;
        uid_t uid;
        gid_t gid;
        unsigned mode;
        int ranged;                     /* a view: offset, length */
        struct conn *owner;             /* transient: the connection */
        /* a view's, and the lists */
        size_t offset, length;
        char *of;                       /* made by "slice": of what */
        struct entry *base;             /* a slice: the name it was cut
                                           from (on its slist) */
        struct entry *slist;            /* the slices of this name (they
                                           go when it goes) */
        struct entry *sprev, *snext;    /* the other slices of base */
        struct entry *rprev, *rnext;    /* the other names of r */
        struct entry *cprev, *cnext;    /* the other names of owner */
        struct entry *uprev, *unext;    /* the other names of uid */
        /* read when the record is first made */
        time_t created;
        char user[64], group[64];
};

/* A name's lists besides the order (its region's, its user's, its
 * connection's): in at head, out from anywhere, by the fields' prefix
 * (r, u, c: rprev and rnext...). */
#define NAME_LIST_IN(head, e, x) do {                                   \
                (e)->x##prev = NULL;                                    \
                (e)->x##next = (head);                                  \
                if (head)                                               \
                        (head)->x##prev = (e);                          \
                (head) = (e);                                           \
        } while (0)
#define NAME_LIST_OUT(head, e, x) do {                                  \
                if ((e)->x##prev)                                       \
                        (e)->x##prev->x##next = (e)->x##next;           \
                else                                                    \
                        (head) = (e)->x##next;                          \
                if ((e)->x##next)                                       \
                        (e)->x##next->x##prev = (e)->x##prev;           \
                (e)->x##prev = (e)->x##next = NULL;                     \
        } while (0)

/* The names, in order, in blocks of at most NAME_BLOCK: an insert or a
 * removal moves the pointers of one block only (and the list of blocks
 * when a block splits or empties), so it stays cheap with 100,000 names.
 * Every block holds at least one name. */
#ifndef NAME_BLOCK
#define NAME_BLOCK 256                  /* at least 2 */
#endif

struct name_block {
        size_t n;
        struct entry *e[NAME_BLOCK];
};

/* A place among the names: block b, index i in it. */
struct name_pos {
        size_t b, i;
};

struct job;

/* What one user holds: names (slices included) and bytes (the sizes of
 * the regions behind names that are not slices). */
struct uid_use {
        uid_t uid;
        size_t names;
        struct entry *owned;            /* those names (entry.unext) */
        unsigned long long bytes;
        unsigned conns;                 /* connections open */
        unsigned long long fds;         /* broker descriptors charged:
                                           REGION_FDS per region it brought,
                                           one per connection, one per
                                           descriptor the closer holds */
        unsigned long long closing;     /* of which the closer holds */
        unsigned long long parked;      /* refused connections parked
                                           (closer.c), not in fds */
        long long refused_log_ms;       /* its last refusal logged */
        unsigned long long refused_quiet; /* refusals not logged since */
        unsigned long long held;        /* closer.c: queued in its lane */
        unsigned long long waits;       /* closer.c: deferred, may wait */
        unsigned long long loop_turn;   /* closer.c: closes on the loop */
        unsigned loop_closes;           /*   in that turn of the loop */
};

/* What a region may cost the broker in descriptors: data, control, the
 * library's copy of the control, and the two read-only reopenings. */
#define REGION_FDS 5

/* A client connection. */
struct conn {
        int fd;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t *groups;                  /* supplementary (SO_PEERGROUPS) */
        int ngroups;
        long long last_ms;              /* last request */
        unsigned transients;            /* entries that go with it */
        struct entry *owned;            /* which (entry.cnext) */
        struct job *job;                /* a purge it waits for */
        int reading;                    /* EPOLLIN wanted */
        int pipelined;                  /* sends requests before replies
                                           come: read on after one */
        unsigned turns;
        int dead;
        /* a reply that did not fit in the socket yet */
        char *out;
        size_t outlen;
        int outfds[FDS_MAX], noutfds;
        struct conn *prev, *next;
};

/* A purge the purge thread works through. The main thread fills it, the
 * purge thread sets pages and each region's result, the main thread picks
 * it up when done (through the eventfd). */
struct job {
        struct conn *c;                 /* who waits for the reply, or NULL */
        struct held_region **regions;
        char **names;                   /* for the log */
        size_t n;
        int below;                      /* stop when MemAvailable >= below% */
        unsigned long long step;        /* stop after this many bytes */
        const char *why;                /* "request", "pressure", ... */
        unsigned long long pages;       /* result */
        unsigned long long nregions;    /* regions that gave pages */
        unsigned long long skipped;     /* regions it could not take at once */
        struct job *next;
};

struct counters {
        unsigned long long requests, errors, attaches, purges, pages_purged,
                           dropped, connections_total, purge_skipped;
};

struct broker {
        const struct broker_config *cfg;
        char path[108];
        ino_t sock_ino;
        dev_t sock_dev;
        int epfd, lfd, sigfd, tickfd, psifd, jobfd, lockfd;
        int accept_paused;
        int stopping;
        unsigned long long accepts;     /* connections accepted */
        long long busy_ms;              /* last held something or served
                                           someone (--idle-exit) */
        const char *quit;               /* why the loop ends, or NULL */
        time_t started;
        long long page_size;
        unsigned long long mem_total;   /* bytes */
        unsigned long long max_bytes;   /* resolved */
        unsigned max_uid_conns;         /* resolved */
        unsigned long long max_uid_fds; /* resolved */
        unsigned long long max_closing; /* the closer, all users: resolved */
        unsigned long long max_parked;  /* parked connections, all users */
        int park_bytes;                 /* a park's send buffer */
        int below;                      /* active MemAvailable threshold, -1 */
        int pressure_job;               /* one pressure purge at a time */
        long long last_pressure_ms;     /* the last PSI event */
        int pressure_again;             /* sustained: purge all when the
                                           running job is done */
        /* names, sorted, in blocks; nnames in all */
        struct name_block **nblocks;
        size_t nnblocks, capnblocks;
        size_t nnames;
        unsigned long long walks;       /* for struct held_region's seen */
        /* what each user holds, for the limits (kept with the names) */
        struct uid_use *uses;
        size_t nuses, capuses;
        /* uses by uid: open addressing, index + 1 (0 empty), at most half
         * full, hashed with a secret seed: a user who connects from many
         * subordinate uids makes no lookup of another's longer */
        uint32_t *uidx;
        size_t capuidx;
        uint64_t uid_seed;
        size_t nquiet;                  /* uses with refusals not logged */
        /* regions by identity; regions.n of them */
        struct am_idtable regions;
        unsigned long long bytes;       /* sizes of the regions held */
        /* connections */
        struct conn *conns;
        unsigned nconns;
        unsigned ndead;                 /* closed, not yet freed: the loop
                                           walks the list only when some are */
        struct counters n;
        /* the purge thread */
        pthread_t worker;
        int worker_started;
        int worker_failed;              /* its last start failed (said once) */
        int worker_stuck;               /* left behind in a region's lock */
        pthread_mutex_t jlock;
        pthread_cond_t jcond;
        struct job *jqueue, *jdone;
        int jstop;
        unsigned jpending;
        char in[MSG_MAX + 1];
};

/* A reply being written: JSON text (growing) and the descriptors to pass. */
struct reply {
        struct am_jw sb;
        int fds[FDS_MAX];               /* borrowed: the broker keeps them */
        int nfds;
        char err[160];                  /* message for a failure, or "" */
};

/* A request: its fields located, strings decoded on demand into arena. */
struct req {
        struct am_jobj o;
        char arena[4096];
        size_t used;
};

/* broker.c: the log (level 0 warnings, 1 info, 2 requests); the epoll
 * tags of the broker's own descriptors */
void blog_line(const struct broker *b, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* the level looked at before the arguments are: a request's line costs
 * nothing below -vv */
#define blog(b, level, ...)                                                 \
        do {                                                                \
                if ((level) <= (b)->cfg->verbose)                           \
                        blog_line((b), (level), __VA_ARGS__);               \
        } while (0)
extern char tag_listen, tag_signal, tag_tick, tag_psi, tag_job;

/* conn.c: watch a descriptor; the events a connection waits for now;
 * closing one (reaped after the turn); the reaping; sending what a
 * connection still owes; accepting connections; a connection's events;
 * freeing the reply buffer at the end */
int epoll_set(struct broker *b, int op, int fd, unsigned events, void *tag);
void conn_want(struct broker *b, struct conn *c);
void conn_close(struct broker *b, struct conn *c, const char *why);
void conns_reap(struct broker *b);
void conn_flush(struct broker *b, struct conn *c);
void conn_accept(struct broker *b);
void conn_event(struct broker *b, struct conn *c, unsigned ev);
void conn_replies_free(void);

/* setup.c: everything broker_run() needs before its loop (0 or -errno,
 * logged); the socket's removal (if still ours); the shutdown; telling
 * broker_spawn() that the broker listens */
int broker_setup(struct broker *b);
void remove_socket(struct broker *b);
void shutdown_broker(struct broker *b, const char *why);
/* --idle-exit: stop listening when it is safe (1: the loop ends), or go
 * on (0: someone came just then, or a broker is being started). */
int idle_exit(struct broker *b);
void tell_ready(void);

/* An error reply: the message (printf) into rep, and -e to return. */
#define FAIL(rep, e, ...) \
        (snprintf((rep)->err, sizeof((rep)->err), __VA_ARGS__), -(e))

/* regions.c: the region of a data memfd, or NULL; a new one over fd and
 * ctl (taken over on success); a read-only reopening made on demand (0 or
 * -errno). region_unref() is below. */
struct held_region *region_find(struct broker *b, const struct stat *st);
int region_new(struct broker *b, int fd, int ctl, const struct stat *st,
               struct held_region **ret);
int region_ro(struct held_region *r);

/* names.c: the place of the first name >= key (> key with after); the
 * name at a place; a name by its text, or NULL; removing the name at a
 * place (its region unreferenced); adding a name owned by peer c over
 * region r (of: what a slice is made of, taken over), 0 or -ENOMEM;
 * whether peer c's uid may hold one more name and add more bytes: 0, or
 * -errno with the message in rep. */
struct name_pos name_bound(const struct broker *b, const char *key, int after);
struct entry *name_at(const struct broker *b, struct name_pos p);
struct entry *name_find(const struct broker *b, const char *name);
/* e is a slice of base: on its list. */
void slice_link(struct entry *e, struct entry *base);
/* The names uid owns (entry.unext), how many in *n; or NULL. */
struct entry *uid_names(struct broker *b, uid_t uid, size_t *n);
/* e goes with connection c (a transient name). */
void entry_set_owner(struct entry *e, struct conn *c);
/* The name called name and its place in *p, or NULL. */
struct entry *name_lookup(const struct broker *b, const char *name, struct name_pos *p);
void entry_remove(struct broker *b, struct name_pos p);
/* entry_remove() takes the slices made of the name with it (and theirs):
 * a slice never outlives its name to point at what takes the name next.
 * entry_drop() removes only the name at p (for removals of many names,
 * whose slices are among them). */
void entry_drop(struct broker *b, struct name_pos p);
int entry_add(struct broker *b, struct conn *c, const char *name,
              struct held_region *r, unsigned mode, char *of, struct entry **ret);
int uid_quota(struct broker *b, const struct conn *c, unsigned long long add,
              struct reply *rep);
/* The per-uid limits on connections and descriptors (root has none): may
 * uid open one more connection (0, or -EMFILE with the message in msg);
 * the connection opened, closed; may peer c bring one more region (0, or
 * -EMFILE with the message in rep); charge region r to c's uid, or take
 * its charge back; the per-uid use, for stats. */
int uid_conn_open(struct broker *b, uid_t uid, char *msg, size_t len);
void uid_conn_close(struct broker *b, uid_t uid);
int uid_fd_quota(struct broker *b, const struct conn *c, struct reply *rep);
void uid_fd_charge(struct broker *b, const struct conn *c, struct held_region *r);
void uid_fd_uncharge(struct broker *b, struct held_region *r);
void uid_stats(struct broker *b, const struct conn *c, struct am_jw *s);
/* n (1 or -1) descriptors of uid in the closer thread (closer.c); whether
 * uid may send more descriptors: 0, or -EMFILE with the message in msg
 * when the closer still holds some of its own and it is at its limit. */
void uid_fd_add(struct broker *b, uid_t uid, int n);
/* How many of uid's descriptors the closer holds. */
unsigned long long uid_closing(struct broker *b, uid_t uid);
/* n (1 or -1) refused connections of uid parked by the closer. */
void uid_park_add(struct broker *b, uid_t uid, int n);
/* uid's use (made if new) for the closer's per-uid shares; NULL when out
 * of memory. Not to be kept: the next call may move it. */
struct uid_use *uid_closer_use(struct broker *b, uid_t uid);
int uid_fd_closing(struct broker *b, uid_t uid, char *msg, size_t len);

/* The log of refused connections, at most one line per uid a second:
 * whether to log one of uid's now (*quiet: how many went unlogged before
 * it); at the tick, a line for each uid whose refusals went unlogged for
 * a second. */
int uid_log_refusal(struct broker *b, uid_t uid, unsigned long long *quiet);
void uid_log_flush(struct broker *b);

/* closer.c: descriptors a client gave that the broker does not keep.
 * closer_put() closes a memfd at once and hands anything else to uid's
 * lane of the closer threads (a socket after setting SO_LINGER {1, 0}),
 * charged to uid until closed; closer_refused() does it for a refused
 * connection's socket; closer_put_all() does it for fds[0..n-1] (set to
 * -1); closer_reap() uncharges what the threads closed. */
int closer_start(void);
void closer_stop(void);
void closer_put(struct broker *b, uid_t uid, int fd);
void closer_refused(struct broker *b, uid_t uid, int fd);
void closer_put_all(struct broker *b, uid_t uid, int *fds, int n);
/* A connection's own socket once the connection is over: closed at once
 * when its queue holds no descriptor, else closer_put(). */
void closer_conn(struct broker *b, uid_t uid, int fd);
/* The closer's last resort keeps what it could not defuse at once on a
 * deferred list: closer_defer_run() takes it up again for a while (1: it
 * made progress, more may follow at once); closer_accept_ok() says
 * whether new connections may be accepted (0: the list is too long). */
int closer_defer_run(struct broker *b);
int closer_accept_ok(struct broker *b);
void closer_reap(struct broker *b);
/* The closer's numbers for `stats` (a "closer" object). */
void closer_stats(struct broker *b, struct am_jw *s);
/* The defaults of the closer's global limits, from the broker's
 * descriptor limit (setup.c): a quarter of it for what the closer holds,
 * and as many parked connections, at most PARKED_MAX (below the 2,024
 * sockets a user may have in flight before each further send of one
 * waits for the kernel's collector of Unix sockets); a park's send
 * buffer, PARK_BYTES (SO_SNDBUFFORCE; the kernel doubles it): 768 bytes
 * a parked connection, and kernel memory is spent only as used. */
#define PARKED_MAX 1000
#define PARK_BYTES (256 << 20)

/* access.c: may peer c have access want (ACC_R, ACC_W) to the name e; is
 * it e's owner (or root); may it see e at all (list, info). */
#define ACC_R 4u
#define ACC_W 2u
#define DEFAULT_MODE 0600u
int access_allowed(const struct conn *c, const struct entry *e, unsigned want);
int access_owns(const struct conn *c, const struct entry *e);
int access_visible(const struct conn *c, const struct entry *e);

/* fields.c: a request's fields, decoded (strings into its arena); each
 * returns 1, 0 (absent, and not required), or -errno with the message in
 * rep. */
int field_str(struct req *q, const char *k, int required,
              const char **out, struct reply *rep);
int field_uint(struct req *q, const char *k, int required,
               unsigned long long max, unsigned long long *out,
               struct reply *rep);
int field_bool(struct req *q, const char *k, int *out, struct reply *rep);
int field_mode(struct req *req, unsigned *out, struct reply *rep);
int field_prot(struct req *req, int *out, struct reply *rep);
int field_name(struct req *req, const char *k, int required,
               const char **out, struct reply *rep);

/* records.c: the record of name e (ashmem-protocol(7)) as fields with no
 * braces and no leading comma, as peer c may see it (a slice names what it
 * was cut from only to a peer who may see that); the same as a reply's
 * fields. */
void write_record(struct am_jw *s, struct entry *e, const struct conn *c);
/* A request read now may follow a change of seals that the records have
 * not read yet: called when epoll_wait returns, and before each request
 * that was not waiting when it returned. */
void records_new_turn(void);
void reply_record(struct reply *rep, struct entry *e, const struct conn *c);

/* ops.c: run one request; the reply is in rep (ok:true fields, or
 * an error). fds: what came with it; the operation takes those it keeps
 * (setting them to -1). Returns 0, -errno, or 1 when the reply will come
 * later (a purge: the connection waits for its job). */
/* ops.c: an attach written exactly as the library writes it, read
 * (ops_quick_parse) and served (ops_quick: the message's text is then
 * spent) without the JSON scanner; QUICK_NO for any other message
 * (ops_dispatch serves it after the scanner). */
struct quick_attach {
        const char *name;               /* not NUL-terminated */
        size_t len;
        int writable, record;
};
#define QUICK_NO 2
int ops_quick_parse(const char *text, size_t n, struct quick_attach *q);
int ops_quick(struct broker *b, struct conn *c, char *text, size_t n, struct reply *rep);
int ops_dispatch(struct broker *b, struct conn *c, struct req *req,
                 int *fds, int nfds, struct reply *rep);
void ops_conn_closed(struct broker *b, struct conn *c);
void ops_free_all(struct broker *b);
/* A descriptor was freed: resume a paused accept() (broker.c). */
void broker_fds_freed(struct broker *b);
void region_unref(struct broker *b, struct held_region *r);
/* The name at *p, and *p moved past it; NULL after the last. Every name in
 * order: for (struct name_pos p = { 0, 0 }; (e = name_next(b, &p));) */
struct entry *name_next(const struct broker *b, struct name_pos *p);
/* A new walk over the names: a region whose seen is the number returned
 * has been met in this walk. */
unsigned long long names_walk(struct broker *b);

/* purge.c */
int purge_start(struct broker *b);              /* the thread, PSI trigger */
void purge_stop(struct broker *b, int wait_ms);
int purge_submit(struct broker *b, struct job *j);
void purge_completed(struct broker *b);         /* jobfd readable */
/* Take in finished purges until none is pending or deadline (am_mono_ms)
 * passes; returns how many are still pending. */
int purge_drain(struct broker *b, long long deadline);
void purge_pressure(struct broker *b, const char *why);  /* PSI event */
void purge_tick(struct broker *b);              /* MemAvailable poll */
int meminfo(unsigned long long *total, unsigned long long *avail);
struct job *job_new(size_t n);
/* Name e's region into job j (room for it made by job_new), once a walk
 * (names_walk()): under the first of its names met. */
void job_add(struct job *j, struct entry *e, unsigned long long walk);
void job_free(struct broker *b, struct job *j);
/* Send the reply of a finished request job. */
void ops_job_done(struct broker *b, struct job *j);

/* service.c: the service manager (sd-daemon). service_listen: the socket
 * passed by socket activation, 1 (b->lfd, b->path set), 0 (none) or
 * -errno (logged); service_managed: run by a service manager (never exit
 * for being idle); sd_notify's READY=1 with the status, the status again
 * when it changed (at the tick), STOPPING=1, RELOADING=1; whether stderr
 * is the journal, and the priority prefix of a log line there. */
int service_listen(struct broker *b);
int service_managed(void);
void service_ready(struct broker *b);
void service_tick(struct broker *b);
void service_stopping(struct broker *b);
void service_reloading(struct broker *b);
void service_main_pid(struct broker *b, pid_t pid);
int service_journal(void);
const char *service_prefix(int level);
int service_managed_socket(void);
void service_set_managed_socket(void);

/* reload.c: re-executing the binary with everything handed over
 * (docs/reload.md). reload_run: the old image's side (SIGHUP, or the
 * "reload" request of owed); returns only if this image goes on serving,
 * with -errno and the reason in why. op_reload: that request. The new
 * image's side, from broker_setup: reload_adopt (is there a state: 0 or
 * 1), reload_adopt_socket (its socket and lock), reload_finish (the rest,
 * and the handshake); then reload_reply (the request's reply). A state
 * refused or a handshake failed ends the process there (_exit). */
int reload_run(struct broker *b, struct conn *owed, char *why, size_t whylen);
int op_reload(struct broker *b, struct conn *c, struct req *req,
              int *fds, int nfds, struct reply *rep);
int reload_adopt(struct broker *b);
int reload_adopt_socket(struct broker *b);
void reload_finish(struct broker *b);
void reload_reply(struct broker *b);

#endif
