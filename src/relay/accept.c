/*
 * accept.c - listeners and their master threads.
 *
 * Each master polls its listening socket (waking at least once a second to
 * free ended connections and end the relay threads parked too long),
 * accepts, and refuses at once
 * a peer outside the allow list, a connection beyond max_connections or
 * beyond max_connections_per_peer from its address, and one this host has
 * no thread or memory for.  Refusals are logged at most once a second per
 * listener and reason, with a count of the ones not logged; a count still
 * held when the second is over is logged by the master's next tick, so no
 * burst goes unreported, however short.
 */
#include "relay/accept.h"

#include <errno.h>
#include <ifaddrs.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"
#include "proto/tap.h"
#include "relay/net.h"
#include "relay/relay.h"

/* The reasons a connection is refused at accept, each rate-limited. */
#define REFUSALS RELAY_REFUSED_LOOP /* the relay's own, after these */

static const char *const refusal_text[REFUSALS] = {
	[RELAY_REFUSED_ALLOW] = "not in allow",
	[RELAY_REFUSED_LIMIT] = "max_connections reached",
	[RELAY_REFUSED_PEER_LIMIT] = "max_connections_per_peer reached",
	[RELAY_REFUSED_RESOURCES] = "out of resources",
};

struct listener {
	const struct listener_conf *lc;
	int fd;
	struct sockaddr_storage bound;
	pthread_t thread;
	bool started;
	struct ratelimit rl[REFUSALS], rl_error;
	struct relay_stats stats;
	struct tap_counts *counts; /* its protocol's */
};

static struct listener *ls;
static size_t nls;
static const struct allow_list *allow;
static atomic_bool stop;

int
listeners_open(const struct conf *c, char *err, size_t errlen)
{
	ls = calloc(c->nlisteners, sizeof *ls);
	if (ls == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	allow = &c->allow;
	for (nls = 0; nls < c->nlisteners; nls++) {
		const struct listener_conf *lc = &c->listeners[nls];
		struct listener *l = &ls[nls];
		char e[NET_ERR_MAX], a[ADDR_STR_MAX];

		l->lc = lc;
		if ((l->counts = tap_counts_new(lc)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (int i = 0; i < REFUSALS; i++)
			pthread_mutex_init(&l->rl[i].lock, NULL);
		pthread_mutex_init(&l->rl_error.lock, NULL);
		l->fd = net_listen((const struct sockaddr *)&lc->listen.ss,
		    lc->listen.len, &l->bound, e, sizeof e);
		if (l->fd < 0) {
			snprintf(err, errlen, "[%s]: %s", lc->name, e);
			return -1;
		}
		addr_format((struct sockaddr *)&l->bound, a, sizeof a);
		if (lc->upstream.none)
			log_info("[%s] listening on %s, protocol %s, no upstream",
			    lc->name, a, conf_proto_name(lc->protocol));
		else
			log_info("[%s] listening on %s, protocol %s, upstream %s:%u",
			    lc->name, a, conf_proto_name(lc->protocol),
			    lc->upstream.host, lc->upstream.port);
	}
	return 0;
}

static bool
is_local_interface(const struct sockaddr *sa)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa) != 0)
		return false;
	for (i = ifa; i != NULL && !found; i = i->ifa_next)
		if (i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			found = addr_equal(i->ifa_addr, sa, false);
	freeifaddrs(ifa);
	return found;
}

bool
listener_is_self(const struct sockaddr *sa)
{
	for (size_t i = 0; i < nls; i++) {
		const struct sockaddr *b = (const struct sockaddr *)&ls[i].bound;

		if (addr_port(b) != addr_port(sa))
			continue;
		if (addr_equal(b, sa, false))
			return true;
		if (addr_is_wildcard(b) &&
		    (addr_is_loopback(sa) || addr_is_wildcard(sa) ||
		    is_local_interface(sa)))
			return true;
	}
	return false;
}

/* Log a refusal of peer ss, or count it when one was logged this second. */
static void
refused(struct listener *l, enum relay_refusal why, const struct sockaddr *ss,
    int e)
{
	char a[ADDR_STR_MAX], more[48] = "";
	unsigned skipped;

	relay_stats_add(&l->stats.refused[why], 1);
	if (!ratelimit_pass(&l->rl[why], &skipped))
		return;
	addr_format(ss, a, sizeof a);
	if (skipped > 0)
		snprintf(more, sizeof more, " (%u more not logged)", skipped);
	log_warnx("[%s] refused %s: %s%s%s%s", l->lc->name, a, refusal_text[why],
	    e ? ": " : "", e ? strerror(e) : "", more);
}

/* The counts held back by the rate limits, once their second is over;
 * returns the milliseconds until the next one is due, or -1. */
static int64_t
refusals_flush(struct listener *l)
{
	int64_t due = -1;
	unsigned n;

	for (int i = 0; i < REFUSALS; i++) {
		int64_t d;

		if (ratelimit_flush(&l->rl[i], &n))
			log_warnx("[%s] refused %u more connection(s): %s",
			    l->lc->name, n, refusal_text[i]);
		if ((d = ratelimit_due_ms(&l->rl[i])) >= 0 && (due < 0 || d < due))
			due = d;
	}
	if (ratelimit_flush(&l->rl_error, &n))
		log_warnx("[%s] accept failed %u more time(s)", l->lc->name, n);
	return due;
}

static void
accept_one(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	unsigned skipped;
	int fd;

	fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		if (ratelimit_pass(&l->rl_error, &skipped)) {
			if (skipped > 0)
				log_warn("[%s] accept (%u more not logged)",
				    l->lc->name, skipped);
			else
				log_warn("[%s] accept", l->lc->name);
		}
		/* Out of fds: let connections end before trying again. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM)
			usleep(100 * 1000);
		return;
	}
	if (!allow_match(allow, (struct sockaddr *)&ss)) {
		close(fd);
		refused(l, RELAY_REFUSED_ALLOW, (struct sockaddr *)&ss, 0);
		return;
	}
	switch (relay_start(l->lc, fd, (struct sockaddr *)&ss, &l->stats,
	    l->counts)) {
	case RELAY_STARTED:
		break;
	case RELAY_FULL:
		refused(l, RELAY_REFUSED_LIMIT, (struct sockaddr *)&ss, 0);
		break;
	case RELAY_PEER_FULL:
		refused(l, RELAY_REFUSED_PEER_LIMIT, (struct sockaddr *)&ss, 0);
		break;
	case RELAY_NO_RESOURCES:
		refused(l, RELAY_REFUSED_RESOURCES, (struct sockaddr *)&ss, errno);
		break;
	}
}

static void *
master_run(void *arg)
{
	struct listener *l = arg;
	int64_t due = 1000;

	while (!atomic_load(&stop)) {
		struct pollfd p = {l->fd, POLLIN, 0};
		int r = poll(&p, 1, (int)due), d;

		due = 1000;
		if ((d = (int)relay_reap()) >= 0 && d < due)
			due = d;
		if (r > 0 && !atomic_load(&stop))
			accept_one(l);
		if ((d = (int)refusals_flush(l)) >= 0 && d < due)
			due = d;
	}
	return NULL;
}

int
listeners_start(void)
{
	for (size_t i = 0; i < nls; i++) {
		pthread_attr_t attr;
		int r;

		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		r = pthread_create(&ls[i].thread, &attr, master_run, &ls[i]);
		pthread_attr_destroy(&attr);
		if (r != 0) {
			errno = r;
			log_error("[%s] cannot start its thread", ls[i].lc->name);
			return -1;
		}
		ls[i].started = true;
	}
	return 0;
}

void
listeners_stop(void)
{
	atomic_store(&stop, true);
	for (size_t i = 0; i < nls; i++)
		if (ls[i].fd >= 0)
			(void)shutdown(ls[i].fd, SHUT_RDWR);
	for (size_t i = 0; i < nls; i++) {
		if (ls[i].started)
			pthread_join(ls[i].thread, NULL);
		if (ls[i].fd >= 0)
			close(ls[i].fd);
		ls[i].fd = -1;
	}
}

bool
listener_stats(size_t i, const char **name, struct relay_counts *out)
{
	if (i >= nls)
		return false;
	*name = ls[i].lc->name;
	relay_stats_read(&ls[i].stats, out);
	return true;
}

bool
listener_proto_stats(size_t i, tap_stat_fn *fn, void *arg)
{
	if (i >= nls)
		return false;
	tap_counts_read(ls[i].counts, fn, arg);
	return true;
}

void
listeners_free(void)
{
	for (size_t i = 0; i < nls; i++)
		tap_counts_free(ls[i].counts);
	free(ls);
	ls = NULL;
	nls = 0;
}
