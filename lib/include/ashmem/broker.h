/* SPDX-License-Identifier: MIT */
/*
 * <ashmem/broker.h> - the broker client.
 *
 * The broker is a daemon on a Unix socket that holds regions under names and
 * hands them to other processes (SCM_RIGHTS), with per-region owner and mode
 * access control. The wire protocol is described in ashmem-protocol(7).
 *
 * Convention (as in <ashmem/ashmem.h>): every function returns >= 0 on
 * success or a negative errno value on failure and leaves errno untouched;
 * results come back through out-parameters; a failure reported by the broker
 * comes back as the errno it named (-ENOENT, -EACCES, -EEXIST, ...). The
 * library never starts a broker: ashmemctl does that.
 *
 * A connection is not thread-safe: use one per thread, or lock around it.
 * It belongs to the process that made it: in a child after fork() every
 * request on it fails with -ENOTCONN (parent and child would read each
 * other's replies); the child connects anew (ashmem_broker_close() of the
 * copy is harmless to the parent). An exchange that fails once its request
 * is sent (a timeout, a reset, a reply that is no reply) closes the
 * connection, so that a late reply is never read as the answer to the
 * next request; the next request connects again, unless transient shares
 * lived on it: they ended with it, and every later request answers
 * -ENOTCONN. A request is never sent twice when it may have run.
 * Every descriptor returned is close-on-exec and belongs to the caller.
 */
#ifndef ASHMEM_BROKER_H
#define ASHMEM_BROKER_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <ashmem/cutils.h>
#include <ashmem/heap.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ashmem_broker ashmem_broker;

#define ASHMEM_BROKER_PROTOCOL      1        /* wire protocol version */
#define ASHMEM_BROKER_MSG_MAX       65536    /* bytes per message, at most */
#define ASHMEM_BROKER_SYSTEM_SOCKET "/run/ashmem/broker.sock"
/* For `mode` and `prot` arguments: let the broker choose (mode 0600, prot
 * PROT_READ|PROT_WRITE|PROT_EXEC). */
#define ASHMEM_BROKER_DEFAULT       (-1)

/* Where the broker listens. system 0: $ASHMEM_SOCKET, else
 * $XDG_RUNTIME_DIR/ashmem/broker.sock, else /tmp/ashmem-$UID/broker.sock;
 * system 1: ASHMEM_BROKER_SYSTEM_SOCKET. Writes the path into buf and
 * returns its length; -ENAMETOOLONG if it does not fit buf or a socket
 * address. Creates nothing. */
int ashmem_broker_socket_path(int system, char *buf, size_t len);

/* Connect to the broker at path (NULL: ashmem_broker_socket_path(0)).
 * Whatever the path, the socket's directory must belong to the caller or
 * root and be writable by neither group nor others, and the process that
 * answers must run as the caller or root (SO_PEERCRED): -EPERM otherwise,
 * before anything is sent. For a default path under /tmp the directory
 * must moreover be closed to others. -ENOENT or -ECONNREFUSED when no
 * broker listens there. */
int ashmem_broker_connect(const char *path, ashmem_broker **ret);

/* Close the connection; returns NULL. Accepts NULL. Transient shares made
 * through this connection disappear. */
ashmem_broker *ashmem_broker_close(ashmem_broker *b);

/* Who answers on the connection, as the kernel said when it was made
 * (SO_PEERCRED, never what the broker claims): its process id in *pid and
 * user id in *uid (either may be NULL). -EINVAL for NULL. */
int ashmem_broker_peer(const ashmem_broker *b, pid_t *pid, uid_t *uid);

/* The connection's socket (for poll()); -EINVAL for NULL. */
int ashmem_broker_fd(const ashmem_broker *b);

/* The broker's own words for its refusal of the last request sent on b
 * (the reply's "error": which limit, and the option that sets it; what is
 * wrong with a name), or "" when that request succeeded or got no reply
 * (and for NULL). Valid until the next request on b. The text comes from
 * the broker and may quote a name another user chose: escape it before
 * showing it on a terminal. */
const char *ashmem_broker_error(const ashmem_broker *b);

/* Give up on a reply after timeout_ms milliseconds (-ETIMEDOUT); 0 waits
 * for ever (the default). */
int ashmem_broker_set_timeout(ashmem_broker *b, int timeout_ms);

/* A region as the broker describes it (the "region record"). */
typedef struct ashmem_region_info {
        char name[ASHMEM_NAME_LEN];
        size_t size;            /* bytes (of the view, for a slice) */
        int prot;               /* PROT_READ|PROT_WRITE|PROT_EXEC mask */
        unsigned int mode;      /* permission bits, like a file's: 0600 */
        uid_t uid;              /* owner: who created or shared it */
        gid_t gid;
        char user[64];          /* owner's names ("" if unknown) */
        char group[64];
        size_t pages;           /* pages of the region (or under the slice) */
        size_t pinned;
        size_t unpinned;        /* unpinned, not purged */
        size_t purged;
        unsigned long long attaches;  /* attach requests served */
        time_t created;         /* when it was created or shared */
        int transient;          /* goes away with the sharing connection */
        int is_slice;           /* a view: offset and length are set */
        char of[ASHMEM_NAME_LEN]; /* slice: the region it was cut from ("" for
                                     a range shared directly) */
        size_t offset;          /* slice: bytes into the region */
        size_t length;          /* slice: bytes; 0 offset and size otherwise */
} ashmem_region_info;

/* The broker's answer to "hello". */
typedef struct ashmem_broker_server {
        int version;            /* protocol version */
        pid_t pid;              /* the broker's process id */
        char driver[32];        /* the driver it creates regions with */
} ashmem_broker_server;

/* Broker-wide counters ("stats"). */
typedef struct ashmem_broker_counters {
        unsigned long long connections;   /* open now */
        unsigned long long regions;       /* names held now (slices included) */
        unsigned long long bytes;         /* bytes held now (regions, not slices) */
        unsigned long long requests;      /* served since start */
        unsigned long long errors;        /* of which failed */
        unsigned long long attaches;
        unsigned long long purges;        /* purge passes that reclaimed pages */
        unsigned long long pages_purged;
        unsigned long long dropped;       /* connections dropped for misbehaving */
        unsigned long long uptime;        /* seconds */
} ashmem_broker_counters;

int ashmem_broker_hello(ashmem_broker *b, ashmem_broker_server *ret);

/* Create a region held by the broker under name (size bytes; prot a
 * PROT_* mask or ASHMEM_BROKER_DEFAULT; mode like 0640 or
 * ASHMEM_BROKER_DEFAULT). Returns its read-write descriptor in *ret_fd with
 * the shared pin state attached. info may be NULL. */
int ashmem_broker_create(ashmem_broker *b, const char *name, size_t size,
                         int prot, int mode, int *ret_fd,
                         ashmem_region_info *info);

/* Register the caller's region fd under name. Its control block goes along
 * when this process has one (ashmem_get_control), so every holder shares the
 * pin state. transient: the name goes away when this connection closes.
 * The descriptor must be read-write (-EACCES). info may be NULL. */
int ashmem_broker_share(ashmem_broker *b, int fd, const char *name, int mode,
                        int transient, ashmem_region_info *info);

/* The same for the window [offset, offset+length) of fd: attach() then
 * gives the whole region's descriptor with that offset and length. */
int ashmem_broker_share_range(ashmem_broker *b, int fd, size_t offset,
                              size_t length, const char *name, int mode,
                              int transient, ashmem_region_info *info);

/* Name the view [offset, offset+length) of the shared region `of`. Only the
 * owner of `of` (or root) may. info may be NULL. */
int ashmem_broker_slice(ashmem_broker *b, const char *name, const char *of,
                        size_t offset, size_t length, int mode,
                        ashmem_region_info *info);

/* Get the descriptor of the region named name: read-write if writable and
 * allowed, else read-only (reopened O_RDONLY: writable mappings fail in the
 * kernel, and pin, unpin and purge fail with -EPERM). The pin state is
 * attached. For a slice, *ret_offset and *ret_length give the view (0 and
 * the size otherwise); either may be NULL. */
int ashmem_broker_attach(ashmem_broker *b, const char *name, int writable,
                         int *ret_fd, size_t *ret_offset, size_t *ret_length);

/* The same, for a name that must belong to owner ((uid_t)-1: to anyone):
 * a name of another owner is refused (-EPERM) before any descriptor is
 * handed out, so a name squatted by another user is never used. info (may
 * be NULL) receives the name's record: its owner (uid, user), and for a
 * slice its offset and length. */
int ashmem_broker_attach_owned(ashmem_broker *b, const char *name, int writable,
                               uid_t owner, int *ret_fd, ashmem_region_info *info);

/* Ask the broker for the pin state of a region descriptor this process got
 * without it, and attach it (read-only if fd is read-only). -ENOENT if the
 * broker does not hold that region. */
int ashmem_broker_lookup(ashmem_broker *b, int fd);

int ashmem_broker_info(ashmem_broker *b, const char *name,
                       ashmem_region_info *ret);

/* Every region the caller may see, in name order, in one array the caller
 * frees with free(). */
int ashmem_broker_list(ashmem_broker *b, ashmem_region_info **ret, size_t *n);

/* Remove a name (the owner or root only). Holders keep their descriptors. */
int ashmem_broker_unshare(ashmem_broker *b, const char *name);

/* Purge the unpinned pages of one region (name) or of every region the
 * caller owns (NULL; root: every region). pages may be NULL. */
int ashmem_broker_purge(ashmem_broker *b, const char *name,
                        unsigned long long *pages);

int ashmem_broker_stats(ashmem_broker *b, ashmem_broker_counters *ret);

/*
 * Heaps and slices through the broker (<ashmem/heap.h>): the server side
 * of Android's MemoryHeapBase / MemoryBase handoff.
 */

/* Share a heap's region, or a slice (its heap's region, with the slice's
 * offset and length as the view), under name. As ashmem_broker_share(). */
int ashmem_broker_share_heap(ashmem_broker *b, ashmem_heap *heap,
                             const char *name, int mode, int transient,
                             ashmem_region_info *info);
int ashmem_broker_share_slice(ashmem_broker *b, ashmem_slice *slice,
                              const char *name, int mode, int transient,
                              ashmem_region_info *info);

/* Attach name as a heap of this process (through the heap cache: every
 * heap of one region shares one mapping), read-only unless writable. For a
 * slice record the heap is the whole region's. */
int ashmem_broker_attach_heap(ashmem_broker *b, const char *name, int writable,
                              ashmem_heap **ret);

/* Attach name as a slice: the view of a slice record, the whole region
 * otherwise. The slice holds its heap. */
int ashmem_broker_attach_slice(ashmem_broker *b, const char *name, int writable,
                               ashmem_slice **ret);

/*
 * A raw request: request_json is one JSON object ("v" is added when
 * missing), fds are 0-2 descriptors to pass (they stay the caller's). On a
 * reply, *reply_json is the reply text (free() it) and rfds[0..*nrfds-1] the
 * descriptors received (rfds must hold 2); the result is 0 if the reply
 * says ok, else the negative errno it names. Without a reply (transport
 * failure) *reply_json is NULL and *nrfds 0.
 */
int ashmem_broker_call(ashmem_broker *b, const char *request_json,
                       const int *fds, int nfds, char **reply_json,
                       int *rfds, int *nrfds);

/* When a pin, unpin, status, purge or page-map call meets a region fd with no
 * pin state in this process, the library asks a running broker (lookup)
 * before treating it as a plain memfd. enable 0 turns that off for this
 * process (the broker itself does); returns the previous setting. */
int ashmem_broker_auto_lookup(int enable);

#ifdef __cplusplus
}
#endif

#endif /* ASHMEM_BROKER_H */
