/*
 * event.c - the keys every event carries, and ids that stay unique across
 * restarts without coordination: a 64-bit random prefix drawn at start-up
 * plus a sequence number.  An id is assigned once, when the event is made;
 * the journal keeps it, so a retry or a replay after restart sends the same.
 */
#include "event.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t run_prefix;
static atomic_uint_fast64_t seq;

void
event_ids_init(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
		    (uint64_t)getpid() << 32;
	}
	run_prefix = r;
}

void
event_id_new(struct event_meta *m)
{
	uint64_t n = atomic_fetch_add(&seq, 1) + 1;

	snprintf(m->id, sizeof m->id, "%016" PRIx64 "-%" PRIu64, run_prefix, n);
}

void
event_format_time(int64_t ms, bool with_ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	if (with_ms)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
}

json_t *
event_new(const char *type, const struct event_meta *m)
{
	char t[32];
	json_t *ev = json_object();

	if (ev == NULL)
		return NULL;
	event_format_time(m->received_ms, true, t, sizeof t);
	json_object_set_new(ev, "id", json_string(m->id));
	json_object_set_new(ev, "type", json_string(type));
	json_object_set_new(ev, "received", json_string(t));
	json_object_set_new(ev, "listener", json_string(m->listener));
	json_object_set_new(ev, "conn.id", json_integer((json_int_t)m->conn_id));
	json_object_set_new(ev, "conn.peer", json_string(m->peer));
	json_object_set_new(ev, "direction",
	    json_string(m->direction == 0 ? "up" : "down"));
	return ev;
}

void
event_set_hex(json_t *ev, const char *key, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(n * 2 + 1);

	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * n] = '\0';
	json_object_set_new(ev, key, json_stringn(s, 2 * n));
	free(s);
}
