/*
 * event.h - what every event carries (docs/events.md, section 1), and event
 * ids.
 */
#ifndef DEYE_EVENT_H
#define DEYE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EVENT_ID_MAX 40

struct event_meta {
	char id[EVENT_ID_MAX];
	const char *listener;
	uint64_t conn_id;
	const char *peer;
	int direction;     /* 0 up (logger to cloud), 1 down */
	int64_t received_ms; /* Unix time in milliseconds */
};

/* Once, before threads: a random prefix makes ids unique across runs. */
void event_ids_init(void);
/* Fill m->id with a new id: "<16 hex of this run>-<sequence>". */
void event_id_new(struct event_meta *m);

/* A new event with the keys every event carries, type first after id. */
json_t *event_new(const char *type, const struct event_meta *m);
/* "2024-04-08T17:14:03.512Z", or without ".512" unless with_ms. */
void event_format_time(int64_t unix_ms, bool with_ms, char *buf, size_t len);
/* Lower-case hex of n bytes as a string value. */
void event_set_hex(json_t *ev, const char *key, const uint8_t *p, size_t n);

#endif
