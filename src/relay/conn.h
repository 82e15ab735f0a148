/*
 * conn.h - one relayed connection, shared by its controller (relay.c) and
 * its two pumps (pump.c).  Not for other modules.
 *
 * Ownership: relay.c creates it, its controller hands it to the done list
 * once both pumps let go of it (pumps_running, under end_lock), and
 * relay_reap() frees it.  Each pump writes only its own direction's
 * counters; fields read across threads are atomics or are behind end_lock;
 * the fds are closed by the controller after both pumps let go, and by
 * nobody else.
 */
#ifndef DEYE_CONN_H
#define DEYE_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "conf.h"
#include "relay/relay.h"

enum dir { DIR_UP, DIR_DOWN }; /* up: logger to cloud */

struct tap;

struct conn {
	uint64_t id;
	const struct listener_conf *lc;
	struct relay_stats *stats; /* the listener's, outlives us */
	struct tap_counts *counts; /* the listener's too, for the tap */
	int fd[2];                /* [DIR_UP] = client, [DIR_DOWN] = upstream */
	struct sockaddr_storage peer_addr; /* for max_connections_per_peer */
	char peer[ADDR_STR_MAX];  /* the logger */
	char upstream[ADDR_STR_MAX];
	int64_t start_ms;         /* monotonic */
	time_t start_wall;
	atomic_int_least64_t last_io_ms;
	atomic_int_least64_t eof_ms; /* first EOF, 0 while none */
	atomic_uint_least64_t bytes[2]; /* relayed (and answered) bytes */
	atomic_bool local;        /* answering the logger ourselves */
	struct tap *tap;

	pthread_mutex_t end_lock;
	char end[96];             /* who closed first and why, set once */
	pthread_cond_t pump_ended; /* under end_lock */
	bool pump_done[2];
	int pumps_running;        /* under end_lock: the controller waits */
	pthread_cond_t pumps_gone; /* under end_lock: pumps_running is 0 */

	struct conn *next;        /* in relay.c's live or done list */
};

/*
 * Record who ended the connection first and why ("client:eof"); after a
 * half-close, the cause that ended the other half is appended once
 * ("client:eof+relay:fin-timeout").  Other later calls are ignored.
 */
void conn_end(struct conn *c, const char *who, const char *why);
/*
 * The upstream failed (why: "reset", "eof"...): with on_upstream_failure =
 * answer, carry on locally and return true; otherwise return false.
 */
bool conn_go_local(struct conn *c, const char *why);
/*
 * This host ran out of something (what: "cannot start a pump thread", and
 * e an errno value, or 0 when what says it all): end the connection as
 * relay:resources, logged at most once a second with a count.  Never blamed
 * on the upstream, never answered locally.
 */
void conn_out_of_resources(struct conn *c, const char *what, int e);
/* Shut both sockets down, waking both pumps. */
void conn_abort(struct conn *c);
/* Whether the daemon is shutting down. */
bool relay_stopping(void);

void *pump_run(void *arg); /* arg: struct pump */

struct pump {
	struct conn *c;
	enum dir dir;
};

#endif
