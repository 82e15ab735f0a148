/*
 * net.c - listening, resolving and connecting with deadlines.
 *
 * The connect is non-blocking and polled in short slices so that a shutdown
 * of the daemon is noticed within 200 ms even during a 5 s connect timeout.
 *
 * Every connection resolves its upstream afresh, on purpose: the cloud's
 * address may change while the daemon runs for months.  A numeric address
 * is parsed where it is.  A name is looked up by getaddrinfo() on the
 * resolver thread, not on the controller's: the lookup (NSS, the DNS
 * client) touches tens of KiB of stack, which a controller's small stack
 * would keep resident for as long as its thread lives.  Controllers that
 * ask for the same host:port while a lookup for it is still queued share
 * that lookup; one queued is never older than the asking, so every
 * connection gets an answer looked up after it came.  The resolver
 * thread is started by the first name asked for, and lives on.
 *
 * A failure is told apart by whose fault it is: a socket() that fails for
 * want of fds, buffers or memory is this host's shortage, not the
 * upstream's, and the caller must not treat it as an unreachable cloud.
 */
#include "relay/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"

int
net_listen(const struct sockaddr *sa, socklen_t len,
    struct sockaddr_storage *bound, char *err, size_t errlen)
{
	int fd, one = 1, zero = 0;
	socklen_t bl = sizeof *bound;
	char a[ADDR_STR_MAX];

	addr_format(sa, a, sizeof a);
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket for %s: %s", a, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* The sender already chose its segment sizes: no delay.  Inherited
	 * by the accepted sockets, one call less for each. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* [::] also takes IPv4 peers, whatever the system default says. */
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, sa, len) != 0) {
		snprintf(err, errlen, "bind %s: %s", a, strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "listen %s: %s", a, strerror(errno));
		goto fail;
	}
	if (getsockname(fd, (struct sockaddr *)bound, &bl) != 0) {
		snprintf(err, errlen, "getsockname %s: %s", a, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

#ifdef DEYE_SANITIZE
#define RESOLVER_STACK (2048 * 1024)
#else
#define RESOLVER_STACK (256 * 1024)
#endif

/* A lookup of one host:port, queued or done; freed by its last user. */
struct lookup {
	char host[256], port[8];
	bool done;
	int rc, err;            /* getaddrinfo's, and errno for EAI_SYSTEM */
	struct addrinfo *res;
	int refs;               /* the resolver's while queued, each waiter's */
	struct lookup *next;    /* queued */
};

static pthread_mutex_t rlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rwork = PTHREAD_COND_INITIALIZER; /* queued */
static pthread_cond_t rdone;   /* a lookup is done; monotonic */
static pthread_once_t ronce = PTHREAD_ONCE_INIT;
static struct lookup *qhead, *qtail;
static bool resolver_started;

static void
rdone_init(void)
{
	clock_cond_init(&rdone);
}

/* Under rlock. */
static void
lookup_unref(struct lookup *l)
{
	if (--l->refs > 0)
		return;
	if (l->res != NULL)
		freeaddrinfo(l->res);
	free(l);
}

static void *
resolver_run(void *arg)
{
	struct addrinfo hints;

	(void)arg;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	pthread_mutex_lock(&rlock);
	for (;;) {
		struct lookup *l;
		struct addrinfo *res = NULL;
		int rc, err;

		while (qhead == NULL)
			pthread_cond_wait(&rwork, &rlock);
		l = qhead;
		if ((qhead = l->next) == NULL)
			qtail = NULL;
		pthread_mutex_unlock(&rlock);
		rc = getaddrinfo(l->host, l->port, &hints, &res);
		err = errno;
		pthread_mutex_lock(&rlock);
		l->rc = rc;
		l->err = err;
		l->res = res;
		l->done = true;
		pthread_cond_broadcast(&rdone);
		lookup_unref(l);
	}
	return NULL;
}

/*
 * host:port looked up on the resolver thread, after now.  0 with *out
 * (to lookup_release()), or an EAI_ value (EAI_SYSTEM with errno set);
 * EAI_AGAIN with errno ECANCELED when *stop became true.
 */
static int
lookup_name(const char *host, const char *port, const atomic_bool *stop,
    struct lookup **out)
{
	struct lookup *l;
	int rc;

	pthread_once(&ronce, rdone_init);
	pthread_mutex_lock(&rlock);
	if (!resolver_started) {
		pthread_attr_t attr;
		pthread_t t;
		int r;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, RESOLVER_STACK);
		r = pthread_create(&t, &attr, resolver_run, NULL);
		pthread_attr_destroy(&attr);
		if (r != 0) {
			pthread_mutex_unlock(&rlock);
			errno = r;
			return EAI_SYSTEM;
		}
		resolver_started = true;
	}
	for (l = qhead; l != NULL; l = l->next)
		if (strcmp(l->host, host) == 0 && strcmp(l->port, port) == 0)
			break;
	if (l == NULL) {
		if ((l = calloc(1, sizeof *l)) == NULL) {
			pthread_mutex_unlock(&rlock);
			return EAI_MEMORY;
		}
		snprintf(l->host, sizeof l->host, "%s", host);
		snprintf(l->port, sizeof l->port, "%s", port);
		l->refs = 1;
		if (qtail != NULL)
			qtail->next = l;
		else
			qhead = l;
		qtail = l;
		pthread_cond_signal(&rwork);
	}
	l->refs++;
	while (!l->done && !(stop != NULL && atomic_load(stop)))
		clock_cond_wait(&rdone, &rlock, 200);
	if (!l->done) {
		lookup_unref(l);
		pthread_mutex_unlock(&rlock);
		errno = ECANCELED;
		return EAI_AGAIN;
	}
	if ((rc = l->rc) != 0) {
		errno = l->err;
		lookup_unref(l);
	} else {
		*out = l;
	}
	pthread_mutex_unlock(&rlock);
	return rc;
}

static void
lookup_release(struct lookup *l)
{
	pthread_mutex_lock(&rlock);
	lookup_unref(l);
	pthread_mutex_unlock(&rlock);
}

/* A numeric address as a one-entry list in *ai and *ss; false if a name. */
static bool
numeric(const char *host, uint16_t port, struct addrinfo *ai,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ai, 0, sizeof *ai);
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		ai->ai_addrlen = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		ai->ai_addrlen = sizeof *s6;
	} else {
		return false;
	}
	ai->ai_family = ss->ss_family;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_protocol = IPPROTO_TCP;
	ai->ai_addr = (struct sockaddr *)ss;
	return true;
}

/* Whether errno value e means this host is short of a resource. */
static bool
errno_local(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* One address: 0 connected, -1 failed (errno-style reason in err). */
static int
connect_one(const struct addrinfo *ai, int64_t timeout_ms,
    const atomic_bool *stop, enum net_fault *fault, char *err, size_t errlen)
{
	int fd, soerr = 0, one = 1;
	socklen_t sl = sizeof soerr;
	int64_t deadline = clock_now_ms() + timeout_ms;
	char a[ADDR_STR_MAX];

	addr_format(ai->ai_addr, a, sizeof a);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) /* the sender already chose its segment sizes */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (fd < 0) {
		if (errno_local(errno))
			*fault = NET_FAULT_LOCAL;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			/* EAGAIN: no local port left (ip_local_port_range). */
			if (errno == EAGAIN || errno_local(errno))
				*fault = NET_FAULT_LOCAL;
			snprintf(err, errlen, "%s: %s", a, strerror(errno));
			goto fail;
		}
		for (;;) {
			struct pollfd p = {fd, POLLOUT, 0};
			int64_t left = deadline - clock_now_ms();
			int r;

			if (stop != NULL && atomic_load(stop)) {
				snprintf(err, errlen, "%s: shutting down", a);
				goto fail;
			}
			if (left <= 0) {
				*fault = NET_FAULT_TIMEOUT;
				snprintf(err, errlen, "%s: connect timed out", a);
				goto fail;
			}
			r = poll(&p, 1, (int)(left < 200 ? left : 200));
			if (r < 0 && errno != EINTR) {
				snprintf(err, errlen, "poll: %s", strerror(errno));
				goto fail;
			}
			if (r > 0)
				break;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr != 0) {
			snprintf(err, errlen, "%s: %s", a, strerror(soerr));
			goto fail;
		}
	}
	/* Made O_RDWR | O_NONBLOCK above: no need to ask. */
	if (fcntl(fd, F_SETFL, O_RDWR) != 0) {
		*fault = NET_FAULT_LOCAL;
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int
net_connect(const char *host, uint16_t port, int64_t timeout_ms,
    const atomic_bool *stop, net_refuse_fn refuse,
    struct sockaddr_storage *peer, enum net_fault *fault, char *err,
    size_t errlen)
{
	struct addrinfo one, *res;
	struct sockaddr_storage one_addr;
	struct lookup *l = NULL;
	char portstr[8];
	int r = 0, fd = -1;

	*fault = NET_FAULT_UPSTREAM;
	snprintf(portstr, sizeof portstr, "%u", port);
	if (numeric(host, port, &one, &one_addr))
		res = &one;
	else if ((r = lookup_name(host, portstr, stop, &l)) == 0)
		res = l->res;
	if (r != 0) {
		/* The resolver opens files and sockets too. */
		if (r == EAI_MEMORY || (r == EAI_SYSTEM && errno_local(errno)))
			*fault = NET_FAULT_LOCAL;
		snprintf(err, errlen, "resolve %s: %s", host,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	snprintf(err, errlen, "%s: no address", host);
	for (struct addrinfo *ai = res; ai != NULL && fd < 0 &&
	    *fault != NET_FAULT_LOCAL; ai = ai->ai_next) {
		if (refuse != NULL && refuse(ai->ai_addr)) {
			char a[ADDR_STR_MAX];
			addr_format(ai->ai_addr, a, sizeof a);
			snprintf(err, errlen,
			    "%s is one of our own listeners: refusing to loop", a);
			continue;
		}
		fd = connect_one(ai, timeout_ms, stop, fault, err, errlen);
		if (fd >= 0) {
			memset(peer, 0, sizeof *peer);
			memcpy(peer, ai->ai_addr, ai->ai_addrlen);
		}
	}
	if (l != NULL)
		lookup_release(l);
	return fd;
}

int
net_tune(int fd, int64_t timeout_ms)
{
	struct timeval tv;

	if (timeout_ms < 1)
		timeout_ms = 1; /* 0 would mean no timeout at all */
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
		return -1;
	return 0;
}
