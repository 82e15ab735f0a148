/*
 * tap.h - what a listener does with the bytes its pumps relay.
 *
 * The pump of each direction calls tap_feed() with every chunk it has just
 * forwarded.  A tap never blocks the relay and never fails it: events are
 * handed to the outbox without waiting, capture errors only stop capture.
 */
#ifndef DEYE_TAP_H
#define DEYE_TAP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"

struct tap;

/* NULL when the listener has nothing to do with the bytes. */
struct tap *tap_open(const struct listener_conf *lc, uint64_t conn_id,
    const char *peer, time_t start);
/* Only the pump of direction dir calls this for dir (0 up, 1 down). */
void tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n);
/* After both pumps ended: decode what is still held, log a summary. */
void tap_close(struct tap *t);

#endif
