/*
 * relay.c - connection controllers and the registry of live connections.
 *
 * relay_start() registers the connection and starts its controller thread.
 * The controller resolves and connects upstream (a fresh lookup for every
 * connection, refusing our own listening addresses), starts one pump per
 * direction, waits until both let go of the connection, closes both
 * sockets, logs one line saying how the connection went, and moves itself
 * to the done list, where relay_reap() (run by the accept threads) frees
 * it.  The threads come from pool.c: parked between connections, never
 * shared by two live ones.
 *
 * The registry lock guards the lists and each connection's upstream fd
 * assignment, so relay_shutdown() can shut every live socket down without
 * racing a close: a controller leaves the live list before closing.
 *
 * Limits are checked at the door: max_connections in all, and
 * max_connections_per_peer from one address (counted over the live list,
 * IPv4-mapped peers folded to IPv4), so that one host holding connections
 * open cannot lock every logger out.  Running out of threads, fds or memory
 * is this host's fault: such a connection ends as relay:resources, is never
 * answered locally (the logger would believe the cloud had its data), and
 * is logged at most once a second with a count.
 *
 * The relay knows no decoder, journal or sink: the bytes go to the tap
 * (tap.h), and so does the summary of an ended connection, which becomes
 * its "connection" event there.  Whether an upstream address is our own
 * listener is asked of the callback given to relay_init().
 *
 * After a burst of connections the heap is left in pieces the allocator
 * does not give back by itself; relay_reap() trims it once the burst is
 * over, outside every relay thread.
 */
#include "relay/relay.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "ratelimit.h"
#include "proto/tap.h"
#include "relay/conn.h"
#include "relay/net.h"
#include "relay/pool.h"

#define THREAD_STACK (64 * 1024) /* pool.c raises it where it must */
#define SHED_AFTER_MS 100 /* a controller waiting longer sheds its stack */

/* A burst is over when at least this many ended and no more are left. */
#define TRIM_AFTER 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended;
static struct conn *live, *done;
static long nlive, max_live = 1, max_peer = 1;
static long ended_since_trim; /* under lock */
static int64_t last_trim_ms;   /* under lock */
static atomic_int_least64_t last_pool_trim_ms;
static atomic_bool stopping;
static atomic_uint_fast64_t next_id = 1;
static struct ratelimit rl_resources = RATELIMIT_INITIALIZER;
static bool (*listener_is_self)(const struct sockaddr *);
/* Set by refuse_self() on the controller that asks. */
static _Thread_local bool refused_self;

void
relay_init(long max_connections, long max_per_peer,
    bool (*is_self)(const struct sockaddr *sa))
{
	max_live = max_connections;
	max_peer = max_per_peer;
	listener_is_self = is_self;
	clock_cond_init(&ended);
	pool_init(THREAD_STACK);
}

void
relay_stats_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

const char *
relay_refusal_label(enum relay_refusal why)
{
	static const char *const label[RELAY_REFUSALS] = {
		[RELAY_REFUSED_ALLOW] = "allow",
		[RELAY_REFUSED_LIMIT] = "limit",
		[RELAY_REFUSED_PEER_LIMIT] = "limit",
		[RELAY_REFUSED_RESOURCES] = "resources",
		[RELAY_REFUSED_LOOP] = "loop",
	};

	return (unsigned)why < RELAY_REFUSALS ? label[why] : "unknown";
}

void
relay_stats_read(const struct relay_stats *s, struct relay_counts *out)
{
	out->accepted = atomic_load(&s->accepted);
	for (int i = 0; i < RELAY_REFUSALS; i++)
		out->refused[i] = atomic_load(&s->refused[i]);
	out->active = atomic_load(&s->active);
	out->connect_failed = atomic_load(&s->connect_failed);
	out->bytes[0] = atomic_load(&s->bytes[0]);
	out->bytes[1] = atomic_load(&s->bytes[1]);
}

/* net_connect()'s refusal of our own listeners, noted for the counts. */
static bool
refuse_self(const struct sockaddr *sa)
{
	if (listener_is_self == NULL || !listener_is_self(sa))
		return false;
	refused_self = true;
	return true;
}

bool
relay_stopping(void)
{
	return atomic_load(&stopping);
}

void
conn_end(struct conn *c, const char *who, const char *why)
{
	size_t n;

	pthread_mutex_lock(&c->end_lock);
	n = strlen(c->end);
	if (n == 0) {
		snprintf(c->end, sizeof c->end, "%s:%s", who, why);
	} else if (strcmp(why, "eof") != 0 && strchr(c->end, '+') == NULL &&
	    n > 4 && strcmp(c->end + n - 4, ":eof") == 0) {
		/* After a half-close, also say what ended the other half. */
		snprintf(c->end + n, sizeof c->end - n, "+%s:%s", who, why);
	}
	pthread_mutex_unlock(&c->end_lock);
}

bool
conn_go_local(struct conn *c, const char *why)
{
	/* Not when stopping, nor when the logger itself already said EOF. */
	if (c->lc->on_upstream_failure != ON_FAILURE_ANSWER || relay_stopping() ||
	    atomic_load(&c->eof_ms) != 0)
		return false;
	if (!atomic_exchange(&c->local, true)) {
		log_info("conn %" PRIu64 " [%s]: upstream %s (%s), carrying on "
		    "locally", c->id, c->lc->name, c->upstream, why);
		(void)shutdown(c->fd[DIR_DOWN], SHUT_RDWR);
	}
	return true;
}

void
conn_out_of_resources(struct conn *c, const char *what, int e)
{
	unsigned skipped;
	char more[48] = "";

	conn_end(c, "relay", "resources");
	if (!ratelimit_pass(&rl_resources, &skipped))
		return;
	if (skipped > 0)
		snprintf(more, sizeof more, " (%u more not logged)", skipped);
	log_warnx("conn %" PRIu64 " [%s]: %s%s%s, closed as relay:resources%s",
	    c->id, c->lc->name, what, e ? ": " : "", e ? strerror(e) : "", more);
}

void
conn_abort(struct conn *c)
{
	for (int d = 0; d < 2; d++)
		if (c->fd[d] >= 0)
			(void)shutdown(c->fd[d], SHUT_RDWR);
}

/* False when this host, not the upstream, was short of something. */
static bool
connect_upstream(struct conn *c)
{
	const struct listener_conf *lc = c->lc;
	struct sockaddr_storage peer;
	char err[NET_ERR_MAX];
	enum net_fault fault;
	int fd;

	refused_self = false;
	fd = net_connect(lc->upstream.host, lc->upstream.port,
	    lc->connect_timeout_ms, &stopping, refuse_self, &peer,
	    &fault, err, sizeof err);
	if (fd < 0) {
		if (relay_stopping()) {
			conn_end(c, "relay", "shutdown");
		} else if (fault == NET_FAULT_LOCAL) {
			conn_out_of_resources(c, err, 0);
			return false;
		} else {
			if (!refused_self)
				relay_stats_add(&c->stats->connect_failed, 1);
			conn_end(c, "upstream", fault == NET_FAULT_TIMEOUT ?
			    "connect-timeout" : "connect-failed");
			log_warnx("conn %" PRIu64 " [%s]: upstream %s:%u: %s", c->id,
			    lc->name, lc->upstream.host, lc->upstream.port, err);
		}
		return true;
	}
	addr_format((struct sockaddr *)&peer, c->upstream, sizeof c->upstream);
	pthread_mutex_lock(&lock);
	if (relay_stopping()) {
		close(fd);
		conn_end(c, "relay", "shutdown");
	} else {
		c->fd[DIR_DOWN] = fd;
	}
	pthread_mutex_unlock(&lock);
	return true;
}

static void
run_pumps(struct conn *c)
{
	struct pump p[2] = {{c, DIR_UP}, {c, DIR_DOWN}};
	int started = 0, r = 0, npumps = c->fd[DIR_DOWN] >= 0 ? 2 : 1;

	for (int d = 0; d < 2; d++) {
		if (c->fd[d] >= 0 && net_tune(c->fd[d], c->lc->idle_timeout_ms) != 0) {
			log_warn("conn %" PRIu64 ": socket options", c->id);
			conn_end(c, "relay", "setsockopt");
			return;
		}
	}
	atomic_store(&c->last_io_ms, clock_now_ms());
	c->tap = tap_open(c->lc, c->counts, c->id, c->peer, c->start_wall);
	if (c->fd[DIR_DOWN] < 0)
		atomic_store(&c->local, true);
	/* Without an upstream only the logger's side is read.  Counted
	 * before the first starts: no pump has c yet. */
	c->pumps_running = npumps;
	for (; started < npumps; started++) {
		if ((r = pool_run(pump_run, &p[started])) != 0)
			break;
	}
	if (r != 0) {
		pthread_mutex_lock(&c->end_lock);
		c->pumps_running -= npumps - started;
		pthread_mutex_unlock(&c->end_lock);
		conn_out_of_resources(c, "cannot start a pump thread", r);
		conn_abort(c);
	}
	/*
	 * Until both pumps let go of c (and of p, on this stack).  When that
	 * takes a while (a logger's connection, not a short one), the stack
	 * that connecting and opening the tap took is given back first.
	 */
	pthread_mutex_lock(&c->end_lock);
	if (c->pumps_running > 0)
		clock_cond_wait(&c->pumps_gone, &c->end_lock, SHED_AFTER_MS);
	if (c->pumps_running > 0) {
		pthread_mutex_unlock(&c->end_lock);
		pool_shed_stack();
		pthread_mutex_lock(&c->end_lock);
	}
	while (c->pumps_running > 0)
		pthread_cond_wait(&c->pumps_gone, &c->end_lock);
	pthread_mutex_unlock(&c->end_lock);
}

/* How the connection went, for the tap's "connection" event and the
 * listener's counts. */
static void
connection_ended(const struct conn *c, double secs)
{
	struct tap_summary s = {.listener = c->lc->name, .conn_id = c->id,
	    .peer = c->peer, .upstream = c->upstream[0] ? c->upstream : "-",
	    .secs = secs, .bytes = {atomic_load(&c->bytes[DIR_UP]),
	    atomic_load(&c->bytes[DIR_DOWN])},
	    .end = c->end[0] ? c->end : "relay:unknown"};

	relay_stats_add(&c->stats->bytes[DIR_UP], s.bytes[DIR_UP]);
	relay_stats_add(&c->stats->bytes[DIR_DOWN], s.bytes[DIR_DOWN]);
	tap_ended(&s);
}

static void *
controller_run(void *arg)
{
	struct conn *c = arg;
	const struct listener_conf *lc = c->lc;
	double secs;

	bool local = lc->upstream.none, short_of = false;

	/* Our own shortage is not the cloud's: never answer it locally. */
	if (!local && !(short_of = !connect_upstream(c))) {
		if (c->fd[DIR_DOWN] < 0 && !relay_stopping() &&
		    lc->on_upstream_failure == ON_FAILURE_ANSWER) {
			log_info("conn %" PRIu64 " [%s]: upstream unreachable, "
			    "carrying on locally", c->id, lc->name);
			local = true;
		}
	}
	/* Each connection counts once: accepted, or refused at this door. */
	relay_stats_add(short_of ? &c->stats->refused[RELAY_REFUSED_RESOURCES] :
	    refused_self ? &c->stats->refused[RELAY_REFUSED_LOOP] :
	    &c->stats->accepted, 1);
	if (c->fd[DIR_DOWN] >= 0 || local)
		run_pumps(c);

	pthread_mutex_lock(&lock);
	for (struct conn **pp = &live; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&lock);

	for (int d = 0; d < 2; d++)
		if (c->fd[d] >= 0)
			close(c->fd[d]);
	tap_close(c->tap);
	secs = (double)(clock_now_ms() - c->start_ms) / 1000.0;
	log_info("closed conn=%" PRIu64 " listener=%s peer=%s upstream=%s "
	    "duration=%.3fs up=%" PRIu64 " down=%" PRIu64 " end=%s%s",
	    c->id, lc->name, c->peer, c->upstream[0] ? c->upstream : "-", secs,
	    atomic_load(&c->bytes[DIR_UP]), atomic_load(&c->bytes[DIR_DOWN]),
	    c->end[0] ? c->end : "relay:unknown",
	    atomic_load(&c->local) ? " answered=locally" : "");

	connection_ended(c, secs);

	pthread_mutex_lock(&lock);
	atomic_fetch_sub_explicit(&c->stats->active, 1, memory_order_relaxed);
	/* Counted live until here, so shutdown waits for the log line too. */
	c->next = done;
	done = c;
	nlive--;
	ended_since_trim++;
	pthread_cond_broadcast(&ended);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Live connections from the address of peer; under lock. */
static long
peer_count(const struct sockaddr *peer)
{
	long n = 0;

	for (struct conn *c = live; c != NULL; c = c->next)
		if (addr_equal((const struct sockaddr *)&c->peer_addr, peer, false))
			n++;
	return n;
}

enum relay_start
relay_start(const struct listener_conf *lc, int fd, const struct sockaddr *peer,
    struct relay_stats *st, struct tap_counts *counts)
{
	enum relay_start res = RELAY_STARTED;
	struct conn *c;
	int e = 0;

	if ((c = calloc(1, sizeof *c)) == NULL) {
		e = errno;
		close(fd);
		errno = e;
		return RELAY_NO_RESOURCES;
	}
	c->lc = lc;
	c->stats = st;
	c->counts = counts;
	c->fd[DIR_UP] = fd;
	c->fd[DIR_DOWN] = -1;
	c->start_ms = clock_now_ms();
	c->start_wall = time(NULL);
	memcpy(&c->peer_addr, peer, peer->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	addr_format(peer, c->peer, sizeof c->peer);
	pthread_mutex_init(&c->end_lock, NULL);
	clock_cond_init(&c->pump_ended);
	clock_cond_init(&c->pumps_gone);

	/* Checked and registered in one go: every master calls this. */
	pthread_mutex_lock(&lock);
	if (nlive >= max_live) {
		res = RELAY_FULL;
	} else if (peer_count(peer) >= max_peer) {
		res = RELAY_PEER_FULL;
	} else {
		c->id = atomic_fetch_add(&next_id, 1);
		c->next = live;
		live = c;
		nlive++;
		/* Before the controller runs, whose first line may follow. */
		log_debug("open conn=%" PRIu64 " listener=%s peer=%s", c->id,
		    lc->name, c->peer);
		if ((e = pool_run(controller_run, c)) != 0) {
			live = c->next;
			nlive--;
			res = RELAY_NO_RESOURCES;
		} else {
			relay_stats_add(&st->active, 1);
		}
	}
	pthread_mutex_unlock(&lock);
	if (res == RELAY_STARTED)
		return res;
	pthread_mutex_destroy(&c->end_lock);
	pthread_cond_destroy(&c->pump_ended);
	pthread_cond_destroy(&c->pumps_gone);
	free(c);
	close(fd);
	errno = e;
	return res;
}

int64_t
relay_reap(void)
{
	struct conn *list;
	unsigned skipped;
	bool trim;
	int64_t now;
	long n;

	pthread_mutex_lock(&lock);
	list = done;
	done = NULL;
	/*
	 * A burst ended: at least TRIM_AFTER ended and as many as are left,
	 * or all of them (then not within a second of the last trim).
	 * malloc_trim walks the whole heap: after every connection of a
	 * steady trickle it would add a good part of a connection's cost.
	 */
	now = clock_now_ms();
	trim = (ended_since_trim >= TRIM_AFTER && ended_since_trim >= nlive) ||
	    (nlive == 0 && ended_since_trim > 0 && now - last_trim_ms >= 1000);
	if (trim) {
		ended_since_trim = 0;
		last_trim_ms = now;
	}
	pthread_mutex_unlock(&lock);
	while (list != NULL) {
		struct conn *next = list->next;

		pthread_mutex_destroy(&list->end_lock);
		pthread_cond_destroy(&list->pump_ended);
		pthread_cond_destroy(&list->pumps_gone);
		free(list);
		list = next;
	}
	/* Not on every accept: its lock is the one finished threads park
	 * under. */
	if (now - atomic_load(&last_pool_trim_ms) >= 250) {
		atomic_store(&last_pool_trim_ms, now);
		if ((n = pool_trim()) > 0) {
			long threads, parked;

			pool_counts(&threads, &parked);
			log_debug("%ld idle relay thread(s) ended, %ld left "
			    "(%ld parked)", n, threads, parked);
		}
	}
	if (trim)
		(void)malloc_trim(0);
	if (ratelimit_flush(&rl_resources, &skipped))
		log_warnx("%u more connection(s) closed as relay:resources "
		    "(out of threads, fds or memory)", skipped);
	return ratelimit_due_ms(&rl_resources);
}

unsigned
relay_shutdown(int64_t timeout_ms)
{
	int64_t deadline = clock_now_ms() + timeout_ms;
	unsigned left;

	pthread_mutex_lock(&lock);
	atomic_store(&stopping, true);
	for (struct conn *c = live; c != NULL; c = c->next) {
		conn_end(c, "relay", "shutdown");
		conn_abort(c);
	}
	while (nlive > 0) {
		int64_t ms = deadline - clock_now_ms();

		if (ms <= 0)
			break;
		clock_cond_wait(&ended, &lock, ms);
	}
	left = (unsigned)nlive;
	pthread_mutex_unlock(&lock);
	relay_reap();
	/* The parked threads, and those of the ended connections. */
	if (left == 0)
		(void)pool_stop(deadline - clock_now_ms());
	return left;
}
