/*
 * proto.h - the one interface between the relay's pumps and a protocol,
 * and the table of protocols (proto.c).
 *
 * A protocol is opened per connection and fed every chunk each direction
 * relays, by that direction's pump only, before the chunk is sent on.  It
 * never blocks the relay: its events go to the outbox without waiting, and
 * work too slow for a pump goes to the outbox writer (an event builder,
 * run off the relay path and again after a SIGKILL) or to worker.c.
 * Capture is not a protocol's business: tap.c does it for all of them.
 *
 * Adding a protocol: one file defining a struct proto_ops, one line in
 * proto.c's table (and its name and keys in conf.c).
 */
#ifndef DEYE_PROTO_H
#define DEYE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"
#include "pipeline/outbox.h"

/* Who a protocol is opened for.  peer is borrowed: copy what is kept. */
struct proto_conn {
	const struct listener_conf *lc;
	void *counts;   /* the listener's counters (counts_size bytes) */
	uint64_t conn_id;
	const char *peer;
	time_t start;
};

/* One counter, by name ("frames.data", "rejected.checksum", "replies"):
 * the names of tap.h's tap_counts_read(), whose fn this is. */
typedef void proto_stat_fn(void *arg, const char *name, uint64_t value);

struct proto_ops {
	const char *name;             /* as in conf.c: "solarman", "envoy" */
	/* The connection's state, or NULL when there is nothing to decode
	 * (or no memory: the bytes are relayed all the same). */
	void *(*open)(const struct proto_conn *pc);
	/*
	 * A chunk of direction dir (0 up, 1 down), about to be sent.  With
	 * answer set (up only: the chunk is not for an upstream) the
	 * protocol makes the replies the upstream would have sent.
	 */
	void (*feed)(void *p, int dir, const uint8_t *buf, size_t n,
	    bool answer);
	/* Local answering; all NULL when the protocol cannot answer.  The
	 * up chunk just fed without answer could not be sent after all:
	 * answer it now. */
	void (*answer_last)(void *p);
	/* The replies made while feeding up, for the up pump to send; then
	 * replies_sent(). */
	size_t (*replies)(void *p, const uint8_t **out);
	void (*replies_sent)(void *p);
	/* Whether the stream turned out not to be this protocol; NULL: never
	 * (then it cannot be answered either). */
	bool (*undecodable)(const void *p);
	/* After both pumps ended: decode what is still held, free. */
	void (*close)(void *p);
	/* Each listener's counters: a block of counts_size bytes, zeroed
	 * (atomics), owned by the listener and handed to open (0: none). */
	size_t counts_size;
	/* A listener's totals since start (its block), one call of fn per
	 * counter; callable from any thread. */
	void (*stats)(const void *counts, proto_stat_fn *fn, void *arg);
	/* Builds the event of bytes the protocol handed to
	 * outbox_put_bytes(): on the outbox writer, maybe at the next
	 * start.  NULL when it hands over none. */
	outbox_build_fn *build;
};

/* The ops of conf.c's protocol number (enum proto); never NULL. */
const struct proto_ops *proto_get(int protocol);
/* How many protocols there are: numbers 0 to proto_count() - 1. */
int proto_count(void);
/* Register every protocol's event builder with the outbox, under its
 * number (before outbox_start: the ring outlives the process, so the
 * numbers of conf.c's enum proto must never change). */
void proto_register_builders(void);
/* The "connection" event's builder (tap.c), registered with them under
 * this number, past every protocol's. */
#define PROTO_BUILDER_CONNECTION (OUTBOX_BUILDERS - 1)
outbox_build_fn tap_connection_build;

#endif
