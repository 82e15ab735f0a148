/*
 * net.h - socket helpers in the style of redis' anet.c: they return an fd or
 * -1 and fill an error buffer; they never log.
 */
#ifndef DEYE_NET_H
#define DEYE_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NET_ERR_MAX 256

/* A non-blocking listening socket; *bound receives the real address. */
int net_listen(const struct sockaddr *sa, socklen_t len,
    struct sockaddr_storage *bound, char *err, size_t errlen);

/* Addresses the caller must not connect to (our own listeners). */
typedef bool (*net_refuse_fn)(const struct sockaddr *sa);

/* Why net_connect() failed: whose fault it was. */
enum net_fault {
	NET_FAULT_UPSTREAM, /* refused, unreachable, not resolved, a loop */
	NET_FAULT_TIMEOUT,  /* no answer within the connect timeout */
	NET_FAULT_LOCAL     /* this host ran out of fds, buffers or memory */
};

/*
 * Resolve host now (never cached: a changed cloud address is picked up) and
 * connect to the first address that answers within timeout_ms each.  Gives
 * up early when *stop becomes true.  *peer receives the connected address.
 * Returns a blocking fd, or -1 with err and *fault set.
 */
int net_connect(const char *host, uint16_t port, int64_t timeout_ms,
    const atomic_bool *stop, net_refuse_fn refuse,
    struct sockaddr_storage *peer, enum net_fault *fault, char *err,
    size_t errlen);

/* SO_RCVTIMEO and SO_SNDTIMEO (at least 1 ms).  TCP_NODELAY is set by
 * net_listen() (the accepted sockets inherit it) and net_connect(). */
int net_tune(int fd, int64_t timeout_ms);

#endif
