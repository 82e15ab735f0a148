/*
 * mqtt_topics.h - what the MQTT sink publishes for each event: topics,
 * payloads, retain flags, per-logger availability and Home Assistant
 * discovery (SPEC.md, [mqtt]).  Pure: no threads, no sockets, no log; the
 * caller passes the time and logs the note it is given.
 */
#ifndef DEYE_MQTT_TOPICS_H
#define DEYE_MQTT_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct mqtt_topics_conf {
	const char *prefix;           /* topic_prefix */
	const char *discovery_prefix; /* NULL: no discovery */
	int64_t expire_after_s;       /* a silent logger goes offline */
	bool dummycloud;              /* also Hypfer's dummycloud topics */
};

struct mqtt_msg {
	char *topic;
	char *payload;
	bool retain;
};

/* The messages to publish, in order, and a line to log ("" if none). */
struct mqtt_out {
	struct mqtt_msg *v;
	size_t n, cap;
	char note[512];
};

struct mqtt_topics;

/* NULL when out of memory.  The strings of c are copied. */
struct mqtt_topics *mqtt_topics_new(const struct mqtt_topics_conf *c);
void mqtt_topics_free(struct mqtt_topics *t);

/* What publishing the event ev (json: its text, the payload when it is
 * sent unchanged) gives, delivered at now_ms (a logger was last heard of
 * at the event's "received" time, if earlier): availability, discovery for a new
 * logger or a new set of values, then the event itself.  0, or -1 when out
 * of memory (out then holds a part). */
int mqtt_topics_event(struct mqtt_topics *t, const json_t *ev,
    const char *json, size_t len, int64_t now_ms, struct mqtt_out *out);
/* After (re)connecting: P/status online, each known logger's
 * availability, every discovery config. */
int mqtt_topics_connected(struct mqtt_topics *t, struct mqtt_out *out);
/* Every discovery config again (Home Assistant said online). */
int mqtt_topics_discovery(struct mqtt_topics *t, struct mqtt_out *out);
/* offline for each logger silent for expire_after at now_ms. */
int mqtt_topics_expire(struct mqtt_topics *t, int64_t now_ms,
    struct mqtt_out *out);
/* The earliest time a logger may expire (INT64_MAX: none online). */
int64_t mqtt_topics_next_expiry(const struct mqtt_topics *t);

/* P/status, the will's topic: a string of t's. */
const char *mqtt_topics_status(const struct mqtt_topics *t);
/* <discovery_prefix>/status, where Home Assistant says online; NULL
 * without discovery. */
const char *mqtt_topics_ha_status(const struct mqtt_topics *t);

/* Empty out for the next use (keeps its array). */
void mqtt_out_clear(struct mqtt_out *out);
void mqtt_out_free(struct mqtt_out *out);

#endif
