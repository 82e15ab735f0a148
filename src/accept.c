/*
 * accept.c - listeners and their master threads.
 *
 * Each master polls its listening socket (waking once a second to join the
 * controllers of ended connections), accepts, and refuses at once a peer
 * outside the allow list or a connection beyond max_connections.  Refusals
 * are logged at most once a second per listener and reason, with a count of
 * the ones not logged, so a flood cannot flood the log.
 */
#include "accept.h"

#include <errno.h>
#include <ifaddrs.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "relay.h"

struct ratelimit {
	int64_t last_ms;
	unsigned suppressed;
};

struct listener {
	const struct listener_conf *lc;
	int fd;
	struct sockaddr_storage bound;
	pthread_t thread;
	bool started;
	struct ratelimit rl_allow, rl_full, rl_error;
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

/* Whether to log now; *skipped: how many were not logged since last time. */
static bool
ratelimit_pass(struct ratelimit *r, unsigned *skipped)
{
	int64_t now = clock_now_ms();

	if (r->last_ms != 0 && now - r->last_ms < 1000) {
		r->suppressed++;
		return false;
	}
	*skipped = r->suppressed;
	r->suppressed = 0;
	r->last_ms = now;
	return true;
}

static void
accept_one(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char a[ADDR_STR_MAX];
	unsigned skipped;
	int fd;

	fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		if (ratelimit_pass(&l->rl_error, &skipped))
			log_warn("[%s] accept (%u more not logged)", l->lc->name,
			    skipped);
		/* Out of fds: let connections end before trying again. */
		if (errno == EMFILE || errno == ENFILE)
			usleep(100 * 1000);
		return;
	}
	if (!allow_match(allow, (struct sockaddr *)&ss)) {
		close(fd);
		addr_format((struct sockaddr *)&ss, a, sizeof a);
		if (ratelimit_pass(&l->rl_allow, &skipped))
			log_warnx("[%s] refused %s: not in allow (%u more not logged)",
			    l->lc->name, a, skipped);
		return;
	}
	if (relay_start(l->lc, fd, (struct sockaddr *)&ss) != 0) {
		addr_format((struct sockaddr *)&ss, a, sizeof a);
		if (ratelimit_pass(&l->rl_full, &skipped))
			log_warnx("[%s] refused %s: max_connections reached "
			    "(%u more not logged)", l->lc->name, a, skipped);
	}
}

static void *
master_run(void *arg)
{
	struct listener *l = arg;

	while (!atomic_load(&stop)) {
		struct pollfd p = {l->fd, POLLIN, 0};
		int r = poll(&p, 1, 1000);

		relay_reap();
		if (r > 0 && !atomic_load(&stop))
			accept_one(l);
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

void
listeners_free(void)
{
	free(ls);
	ls = NULL;
	nls = 0;
}
