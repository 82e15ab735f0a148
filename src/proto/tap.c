/*
 * tap.c - what a listener does with the bytes its pumps relay: hand them
 * to the listener's protocol (proto.h, looked up in proto.c's table) and,
 * when capture_dir is set, to capture, whatever the protocol.
 *
 * The relay knows only this file: the protocols, the outbox and the event
 * format are behind it, including the "connection" event every protocol's
 * connections end with.  A listener's protocol counters are a block the
 * listener owns (struct tap_counts), laid out by its protocol and handed
 * to each of its connections, so the counts are per listener with no
 * table of our own.
 */
#include "proto/tap.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "pipeline/outbox.h"
#include "proto/capture.h"
#include "proto/proto.h"

/* A connection's summary as handed to the outbox: these, then the
 * upstream and the end, each with its NUL. */
struct packed_summary {
	double secs;
	uint64_t bytes[2];
};

struct tap_counts {
	const struct proto_ops *ops;
	max_align_t block[]; /* ops->counts_size bytes */
};

struct tap_counts *
tap_counts_new(const struct listener_conf *lc)
{
	const struct proto_ops *ops = proto_get(lc->protocol);
	struct tap_counts *tc = calloc(1, sizeof *tc + ops->counts_size);

	if (tc != NULL)
		tc->ops = ops;
	return tc;
}

void
tap_counts_read(const struct tap_counts *tc, tap_stat_fn *fn, void *arg)
{
	if (tc->ops->stats != NULL)
		tc->ops->stats(tc->block, fn, arg);
}

void
tap_counts_free(struct tap_counts *tc)
{
	free(tc);
}

struct tap {
	const struct proto_ops *ops;
	void *p;                /* the protocol's state, or NULL */
	struct capture *capture;
};

struct tap *
tap_open(const struct listener_conf *lc, struct tap_counts *counts,
    uint64_t conn_id, const char *peer, time_t start)
{
	const struct proto_ops *ops = proto_get(lc->protocol);
	struct proto_conn pc = {lc, counts->block, conn_id, peer, start};
	struct tap *t;

	if (ops->open == NULL && lc->capture_dir == NULL)
		return NULL;
	if ((t = malloc(sizeof *t)) == NULL)
		return NULL;
	t->ops = ops;
	t->p = ops->open != NULL ? ops->open(&pc) : NULL;
	t->capture = NULL;
	if (lc->capture_dir != NULL)
		t->capture = capture_open(lc->capture_dir, lc->name, conn_id, start);
	return t;
}

void
tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n, bool answer)
{
	if (t != NULL && n > 0 && t->p != NULL)
		t->ops->feed(t->p, dir, buf, n, answer);
}

void
tap_answer_last(struct tap *t)
{
	if (t != NULL && t->p != NULL && t->ops->answer_last != NULL)
		t->ops->answer_last(t->p);
}

void
tap_sent(struct tap *t, int dir, const uint8_t *buf, size_t n)
{
	if (t != NULL && n > 0 && t->capture != NULL)
		capture_write(t->capture, dir, buf, n);
}

size_t
tap_replies(struct tap *t, const uint8_t **p)
{
	if (t == NULL || t->p == NULL || t->ops->replies == NULL)
		return 0;
	return t->ops->replies(t->p, p);
}

void
tap_replies_sent(struct tap *t)
{
	if (t != NULL && t->p != NULL && t->ops->replies_sent != NULL)
		t->ops->replies_sent(t->p);
}

bool
tap_undecodable(const struct tap *t)
{
	return t != NULL && t->p != NULL && t->ops->undecodable != NULL &&
	    t->ops->undecodable(t->p);
}

void
tap_close(struct tap *t)
{
	if (t == NULL)
		return;
	if (t->p != NULL)
		t->ops->close(t->p);
	capture_close(t->capture);
	free(t);
}

void
tap_ended(const struct tap_summary *s)
{
	struct event_meta m = {.listener = s->listener, .conn_id = s->conn_id,
	    .peer = s->peer, .direction = 0, .received_ms = clock_wall_ms()};
	uint8_t b[sizeof(struct packed_summary) + 2 * 128];
	struct packed_summary ps = {s->secs, {s->bytes[0], s->bytes[1]}};
	size_t nu = strnlen(s->upstream, 127), ne = strnlen(s->end, 127);

	/* Packed; its JSON is the writer's work, off the controller. */
	memcpy(b, &ps, sizeof ps);
	memcpy(b + sizeof ps, s->upstream, nu);
	b[sizeof ps + nu] = '\0';
	memcpy(b + sizeof ps + nu + 1, s->end, ne);
	b[sizeof ps + nu + 1 + ne] = '\0';
	outbox_put_bytes(PROTO_BUILDER_CONNECTION, b, sizeof ps + nu + ne + 2,
	    &m);
}

json_t *
tap_connection_build(const uint8_t *body, size_t len,
    const struct event_meta *m, int64_t *time_ms)
{
	struct packed_summary ps;
	const char *up, *end;
	json_t *ev;

	/* Two strings, each with its NUL, after the numbers. */
	if (len < sizeof ps + 2 || body[len - 1] != '\0' ||
	    memchr(body + sizeof ps, '\0', len - sizeof ps - 1) == NULL)
		return NULL;
	memcpy(&ps, body, sizeof ps);
	up = (const char *)body + sizeof ps;
	end = up + strlen(up) + 1;
	*time_ms = m->received_ms;
	if ((ev = event_new("connection", m)) == NULL)
		return NULL;
	json_object_set_new(ev, "conn.upstream", json_string(up));
	json_object_set_new(ev, "conn.duration_s", json_real(ps.secs));
	json_object_set_new(ev, "conn.bytes_up",
	    json_integer((json_int_t)ps.bytes[0]));
	json_object_set_new(ev, "conn.bytes_down",
	    json_integer((json_int_t)ps.bytes[1]));
	json_object_set_new(ev, "conn.end", json_string(end));
	return ev;
}
