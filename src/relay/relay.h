/*
 * relay.h - the connections: one controller thread each, which connects
 * upstream, runs the two pumps and logs how the connection ended.
 */
#ifndef DEYE_RELAY_H
#define DEYE_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"

/*
 * is_self: whether an upstream address would reach one of our own
 * listeners (accept.c's listener_is_self); such an upstream is refused.
 */
void relay_init(long max_connections, long max_per_peer,
    bool (*is_self)(const struct sockaddr *sa));

/* Why a connection was closed without being relayed. */
enum relay_refusal {
	RELAY_REFUSED_ALLOW,      /* its peer is not in allow */
	RELAY_REFUSED_LIMIT,      /* max_connections */
	RELAY_REFUSED_PEER_LIMIT, /* max_connections_per_peer */
	RELAY_REFUSED_RESOURCES,  /* no thread or memory for it */
	RELAY_REFUSED_LOOP,       /* its upstream is one of our listeners */
	RELAY_REFUSALS
};
/* The reason label of deye_mitm_connections_refused_total: "allow",
 * "limit" (both limits), "resources", "loop". */
const char *relay_refusal_label(enum relay_refusal why);

/*
 * One listener's counters since start, kept by its owner (accept.c) and
 * added to by the relay's threads: relaxed atomics, read with
 * relay_stats_read().  bytes are added when a connection ends.
 *
 * Every connection accept() returned counts once: in refused[] when it
 * was closed at the door (by accept.c before relay_start(); by the
 * controller for the loop, and for no fd or memory to connect upstream),
 * otherwise in accepted once the controller has its upstream or knows
 * there is none (a failed connect counts in accepted and connect_failed).
 * A loop refusal answered locally (on_upstream_failure = answer) counts
 * only as refused.  active counts from relay_start() to the end.
 */
struct relay_stats {
	atomic_uint_fast64_t accepted;   /* relayed or answered */
	atomic_uint_fast64_t refused[RELAY_REFUSALS];
	atomic_uint_fast64_t active;
	atomic_uint_fast64_t connect_failed; /* upstream refused, timed out */
	atomic_uint_fast64_t bytes[2];   /* up, down */
};

struct relay_counts {
	uint64_t accepted, refused[RELAY_REFUSALS], active, connect_failed;
	uint64_t bytes[2];
};
void relay_stats_read(const struct relay_stats *s, struct relay_counts *out);
void relay_stats_add(atomic_uint_fast64_t *c, uint64_t n);

/* What became of an accepted connection. */
enum relay_start {
	RELAY_STARTED,
	RELAY_FULL,      /* max_connections live */
	RELAY_PEER_FULL, /* max_connections_per_peer live from this address */
	RELAY_NO_RESOURCES /* no thread or memory for it; errno says why */
};

struct tap_counts;

/*
 * Relay an accepted connection; fd is the relay's from now on, closed at
 * once unless RELAY_STARTED.  The connection's counts go to st, its
 * protocol's to counts (both the listener's, outliving it), refusals at
 * the door excepted: they are the caller's to count.
 */
enum relay_start relay_start(const struct listener_conf *lc, int fd,
    const struct sockaddr *peer, struct relay_stats *st,
    struct tap_counts *counts);
/*
 * Free the ended connections, end the relay threads parked for over a
 * second (pool.c); log the count of resource
 * failures held back by the rate limit; give memory back to the system
 * once no connection is left.  Returns the milliseconds until such a count
 * is due, or -1 when none waits.
 */
int64_t relay_reap(void);
/* Close every connection and wait for their threads, and for the parked
 * ones to end; gives up after timeout_ms.  Returns how many connections did
 * not end in time. */
unsigned relay_shutdown(int64_t timeout_ms);

#endif
