/* SPDX-License-Identifier: MIT */
/*
 * Internal to libashmem: for the library's own files (the broker client,
 * lib/broker-*.c) and the tests. Not installed, not exported from
 * libashmem.so.
 *
 * The broker client's connection, shared by its transport
 * (lib/broker-transport.c: the socket, one request and its reply, with
 * their descriptors and the timeout), the reading of region records
 * (lib/broker-records.c) and the operations (lib/broker-ops.c).
 */
#ifndef ASHMEM_LIB_CLIENT_H
#define ASHMEM_LIB_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "ashmem/ashmem.h"
#include "json.h"
#include "scm.h"

/* What the connection's last attach on the fast path left behind: b->out
 * still holds its request (req_len bytes; 0 once another request is put
 * there), and its short reply with what it said (the same text is the
 * same answer). A program attaching one name again and again sends the
 * bytes it sent before and reads nothing twice. */
struct am_attach_memo {
        size_t req_len;
        size_t name_len;
        int writable;
        size_t reply_len;          /* 0: none */
        char reply[80];
        size_t size;
        dev_t dev;
        ino_t ino;                 /* 0: the reply brought no identity */
};

struct ashmem_broker {
        int fd;
        unsigned long forks;       /* am_forks when connected: a child's copy
                                      is not its connection */
        int timeout_ms;
        unsigned transients;       /* transient shares made: never reconnect */
        pid_t peer_pid;            /* the broker, as the kernel says (SO_PEERCRED) */
        uid_t peer_uid;
        unsigned long remembered;  /* am_lookup_remember()'s last answer */
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        struct am_attach_memo memo;
        char why[256];             /* the broker's words for the last refusal */
        char out[ASHMEM_BROKER_MSG_MAX + 1];   /* the request being sent */
        char buf[ASHMEM_BROKER_MSG_MAX + 1];   /* the reply received */
};

/* ---------------------------------------------------------------- transport */

/* One request/reply exchange of raw text (req, len bytes, with fds): the
 * reply's length, its text in b->buf (NUL-terminated), its descriptors in
 * rfds (*nrfds of them, at most AM_SCM_MAX), or -errno. A connection the
 * broker closed is opened again once, unless transient shares live on it. */
int am_client_exchange(ashmem_broker *b, const char *req, size_t len,
                       const int *fds, int nfds, int *rfds, int *nrfds);

/* Check a reply of n bytes: 0 if it says ok, else the negative errno it
 * names (-EPROTO for one that is no reply); its fields are located in o.
 * The text of a refusal's "error" goes to why (whylen bytes; "" if it has
 * none; why may be NULL). */
int am_client_parse_reply(const char *text, size_t n, struct am_jobj *o, char *why,
                          size_t whylen);

/* Send the request w has written and get the reply: its length (text in
 * b->buf) and its descriptors, or -errno; am_client_exchange() of w. */
int am_client_send(ashmem_broker *b, struct am_jw *w, const int *fds, int nfds,
                   int *rfds, int *nrfds);

/* Check the reply of n bytes in b->buf (am_client_parse_reply()); on
 * failure its descriptors are closed (*nrfds 0). */
int am_client_reply(ashmem_broker *b, int n, struct am_jobj *o, int *rfds, int *nrfds);

/* Send the request w has written, get the reply (fields in o, text in
 * b->buf) and its descriptors: am_client_send() and am_client_reply().
 * On failure no descriptor is left open. */
int am_client_call(ashmem_broker *b, struct am_jw *w, const int *fds, int nfds,
                   struct am_jobj *o, int *rfds, int *nrfds);

/* A call whose reply brings no descriptor (any that comes is closed). */
int am_client_call0(ashmem_broker *b, struct am_jw *w, struct am_jobj *o);

/* Start a request for op in the connection's own buffer; returns w. */
struct am_jw *am_client_request(ashmem_broker *b, struct am_jw *w, const char *op);

/* ---------------------------------------------------------------- records */

/* Optional fields of a reply: 0 absent, 1 read, -EPROTO bad. A number no
 * larger than max; a size; an unsigned long long. */
int am_field_num(const struct am_jobj *o, const char *k, uint64_t max, uint64_t *v);
int am_field_size(const struct am_jobj *o, const char *k, size_t *v);
int am_field_ull(const struct am_jobj *o, const char *k, unsigned long long *v);
/* An optional string field into buf ("" if it is bad; untouched if absent). */
void am_field_str(const struct am_jobj *o, const char *k, char *buf, size_t len);

/* A region record (ashmem-protocol(7)) into *ri: 0 or -EPROTO. */
int am_record_parse(const struct am_jobj *o, ashmem_region_info *ri);
/* The same into info, unless info is NULL. */
int am_record_out(const struct am_jobj *o, ashmem_region_info *info);

#endif
