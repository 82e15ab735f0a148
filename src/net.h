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

/*
 * Resolve host now (never cached: a changed cloud address is picked up) and
 * connect to the first address that answers within timeout_ms each.  Gives
 * up early when *stop becomes true.  *peer receives the connected address.
 * Returns a blocking fd, or -1 with err set and *timed_out telling a connect
 * timeout from a refusal.
 */
int net_connect(const char *host, uint16_t port, int64_t timeout_ms,
    const atomic_bool *stop, net_refuse_fn refuse,
    struct sockaddr_storage *peer, bool *timed_out, char *err, size_t errlen);

/* SO_RCVTIMEO and SO_SNDTIMEO (at least 1 ms), TCP_NODELAY. */
int net_tune(int fd, int64_t timeout_ms);

#endif
