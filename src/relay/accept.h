/* accept.h - the listeners: one master thread each, accepting connections. */
#ifndef DEYE_ACCEPT_H
#define DEYE_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conf.h"
#include "proto/tap.h"
#include "relay/relay.h"

/* Bind every listener of c (before privileges are dropped). */
int listeners_open(const struct conf *c, char *err, size_t errlen);
int listeners_start(void);
/* Stop accepting, join the master threads, close the sockets. */
void listeners_stop(void);
/* After the last connection ended: listener_is_self() is used by them. */
void listeners_free(void);
/* Listener i's name and counts since start; false past the last. */
bool listener_stats(size_t i, const char **name, struct relay_counts *out);
/* Listener i's protocol counters (tap.h's tap_counts_read: frames by
 * event type, rejected by reason, replies); false past the last. */
bool listener_proto_stats(size_t i, tap_stat_fn *fn, void *arg);
/* Whether connecting to sa would reach one of our own listeners. */
bool listener_is_self(const struct sockaddr *sa);

#endif
