/*
 * tap.h - what a listener does with the bytes its pumps relay.
 *
 * The pump of each direction calls tap_feed() with every chunk it has just
 * forwarded.  A tap never blocks the relay and never fails it: events are
 * handed to the outbox without waiting, capture errors only stop capture.
 */
#ifndef DEYE_TAP_H
#define DEYE_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"

struct tap;

/* NULL when the listener has nothing to do with the bytes. */
struct tap *tap_open(const struct listener_conf *lc, uint64_t conn_id,
    const char *peer, time_t start);
/*
 * Only the pump of direction dir calls this for dir (0 up, 1 down).  With
 * answer set (up only: the chunk was not passed to an upstream), each
 * logger frame in it gets a time reply, as the cloud would send.
 */
void tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n,
    bool answer);
/* The replies made while feeding the up direction, for the up pump to send
 * to the logger; then tap_replies_sent(). */
size_t tap_replies(struct tap *t, const uint8_t **p);
void tap_replies_sent(struct tap *t);
/* Whether the stream turned out not to be Solarman V5 (TLS, say). */
bool tap_undecodable(const struct tap *t);
/* After both pumps ended: decode what is still held, log a summary. */
void tap_close(struct tap *t);

#endif
