/*
 * net.c - listening, resolving and connecting with deadlines.
 *
 * The connect is non-blocking and polled in short slices so that a shutdown
 * of the daemon is noticed within 200 ms even during a 5 s connect timeout.
 * Name resolution uses getaddrinfo() for every connection, on purpose: the
 * cloud's address may change while the daemon runs for months.
 *
 * A failure is told apart by whose fault it is: a socket() that fails for
 * want of fds, buffers or memory is this host's shortage, not the
 * upstream's, and the caller must not treat it as an unreachable cloud.
 */
#include "relay/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
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
	int fd, soerr = 0, flags;
	socklen_t sl = sizeof soerr;
	int64_t deadline = clock_now_ms() + timeout_ms;
	char a[ADDR_STR_MAX];

	addr_format(ai->ai_addr, a, sizeof a);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
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
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int r, fd = -1;

	*fault = NET_FAULT_UPSTREAM;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(portstr, sizeof portstr, "%u", port);
	r = getaddrinfo(host, portstr, &hints, &res);
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
	freeaddrinfo(res);
	return fd;
}

int
net_tune(int fd, int64_t timeout_ms)
{
	struct timeval tv;
	int one = 1;

	if (timeout_ms < 1)
		timeout_ms = 1; /* 0 would mean no timeout at all */
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
		return -1;
	/* The sender already chose its segment sizes; do not delay them. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}
