/*
 * relay.h - the connections: one controller thread each, which connects
 * upstream, runs the two pumps and logs how the connection ended.
 */
#ifndef DEYE_RELAY_H
#define DEYE_RELAY_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"

void relay_init(long max_connections);
/*
 * Relay an accepted connection; fd is the relay's from now on.  Returns 0,
 * or -1 when max_connections are already live (fd closed at once).
 */
int relay_start(const struct listener_conf *lc, int fd,
    const struct sockaddr *peer);
/* Join the controllers of ended connections. */
void relay_reap(void);
/* Close every connection and join their threads; gives up after
 * timeout_ms.  Returns how many did not end in time. */
unsigned relay_shutdown(int64_t timeout_ms);

#endif
