/*
 * envoy_tap.h - the Envoy protocol on a relayed connection: HTTP messages
 * out of both directions, paired, spooled and decoded off the relay path.
 */
#ifndef DEYE_ENVOY_TAP_H
#define DEYE_ENVOY_TAP_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct envoy_tap;

struct envoy_tap *envoy_tap_open(const struct listener_conf *lc,
    uint64_t conn_id, const char *peer);
/* Only the pump of direction dir (0 up, 1 down) calls this for dir. */
void envoy_tap_feed(struct envoy_tap *e, int dir, const uint8_t *buf,
    size_t n);
/* After both pumps ended. */
void envoy_tap_close(struct envoy_tap *e);

#endif
