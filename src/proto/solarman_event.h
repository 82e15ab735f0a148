/*
 * solarman_event.h - one JSON event per validated Solarman V5 frame, with
 * the keys of docs/events.md.  Pure: no I/O, no logging.
 */
#ifndef DEYE_SOLARMAN_EVENT_H
#define DEYE_SOLARMAN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "event.h"

/*
 * The event for frame (as delivered by solarman_stream_feed).  *time_ms
 * receives the record's own time (logger time: total working time + offset,
 * or the server time of a reply) or, without one, m->received_ms.
 */
json_t *solarman_event(const uint8_t *frame, size_t len,
    const struct event_meta *m, int64_t *time_ms);

/* For the tests: every field of the table of sensor types lies inside
 * the smallest payload its type is decoded from. */
bool solarman_sensors_fit(void);

/* The type of the event of a frame of type (byte 4): "data"... */
const char *solarman_event_type(uint8_t type);
/* Every such type, NULL-terminated. */
const char *const *solarman_event_types(void);

/* Whether a frame type is a server's answer (request type - 0x30). */
bool solarman_is_reply(uint8_t type);

/* The event for a stream that starts a TLS record (16 03, or a first
 * read of 16 alone): nothing more of it is decoded.  head: its first
 * bytes. */
json_t *solarman_undecodable_event(const uint8_t *head, size_t n,
    const struct event_meta *m);

#endif
