/*
 * relay.h - the connections: one controller thread each, which connects
 * upstream, runs the two pumps and logs how the connection ended.
 */
#ifndef DEYE_RELAY_H
#define DEYE_RELAY_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"

void relay_init(long max_connections, long max_per_peer);

/* What became of an accepted connection. */
enum relay_start {
	RELAY_STARTED,
	RELAY_FULL,      /* max_connections live */
	RELAY_PEER_FULL, /* max_connections_per_peer live from this address */
	RELAY_NO_RESOURCES /* no thread or memory for it; errno says why */
};

/*
 * Relay an accepted connection; fd is the relay's from now on, closed at
 * once unless RELAY_STARTED.
 */
enum relay_start relay_start(const struct listener_conf *lc, int fd,
    const struct sockaddr *peer);
/*
 * Join the controllers of ended connections; log the count of resource
 * failures held back by the rate limit; give memory back to the system
 * once no connection is left.  Returns the milliseconds until such a count
 * is due, or -1 when none waits.
 */
int64_t relay_reap(void);
/* Close every connection and join their threads; gives up after
 * timeout_ms.  Returns how many did not end in time. */
unsigned relay_shutdown(int64_t timeout_ms);

#endif
