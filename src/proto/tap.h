/*
 * tap.h - what a listener does with the bytes its pumps relay: the relay's
 * one door to the protocols (proto.h), capture and the events.
 *
 * The pump of each direction calls tap_feed() with every chunk it is about
 * to forward (so a frame's event is queued before the frame leaves), and
 * tap_sent() once it has.  A tap never blocks the relay on a sink or
 * the journal and never fails it: events are handed to the outbox without
 * waiting, capture errors only stop capture.
 */
#ifndef DEYE_TAP_H
#define DEYE_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"

struct tap;

/*
 * A listener's protocol counters since start, owned by the listener (made
 * before its first connection, freed after its last) and added to by its
 * connections: NULL only when out of memory.  Read by name and value, one
 * call of fn per counter, from any thread (relaxed atomics):
 *   frames.<event type>  frames decoded, by the type of their event
 *   rejected.<reason>    malformed frames or messages, by reason
 *   replies              replies made locally (to an answered logger)
 * and the protocol's own (bytes skipped, undecodable connections...).  A
 * name the protocol does not report counts 0.
 */
struct tap_counts;
typedef void tap_stat_fn(void *arg, const char *name, uint64_t value);
struct tap_counts *tap_counts_new(const struct listener_conf *lc);
void tap_counts_read(const struct tap_counts *tc, tap_stat_fn *fn, void *arg);
void tap_counts_free(struct tap_counts *tc);

/* NULL when the listener has nothing to do with the bytes.  counts is
 * the listener's (tap_counts_new), never NULL. */
struct tap *tap_open(const struct listener_conf *lc, struct tap_counts *counts,
    uint64_t conn_id, const char *peer, time_t start);
/*
 * Only the pump of direction dir calls these for dir (0 up, 1 down).  With
 * answer set (up only: the chunk is not for an upstream), each logger
 * frame in it gets a time reply, as the cloud would send.
 */
void tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n,
    bool answer);
/* The up chunk just fed without answer could not be passed on after all:
 * its logger frames get their time replies now. */
void tap_answer_last(struct tap *t);
/* The chunk, as relayed, for capture_dir. */
void tap_sent(struct tap *t, int dir, const uint8_t *buf, size_t n);
/* The replies made while feeding the up direction, for the up pump to send
 * to the logger; then tap_replies_sent(). */
size_t tap_replies(struct tap *t, const uint8_t **p);
void tap_replies_sent(struct tap *t);
/* Whether the stream turned out not to be the listener's protocol (TLS,
 * say): then it cannot be answered locally. */
bool tap_undecodable(const struct tap *t);
/* After both pumps ended: decode what is still held, log a summary. */
void tap_close(struct tap *t);

/* How a connection went, for its "connection" event (any protocol, and
 * when tap_open() gave NULL too).  The strings are borrowed. */
struct tap_summary {
	const char *listener;
	uint64_t conn_id;
	const char *peer;
	const char *upstream;     /* "-" when none */
	double secs;
	uint64_t bytes[2];        /* up, down */
	const char *end;          /* "client:eof" */
};
void tap_ended(const struct tap_summary *s);

#endif
