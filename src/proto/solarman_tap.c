/*
 * solarman_tap.c - the Solarman V5 protocol on a relayed connection: the
 * frames of both directions handed to the outbox (their events are built
 * by the outbox writer, with solarman_event()), and the time replies a
 * cloud would send when the logger is answered locally.
 *
 * Each direction has its own decoder state, touched only by that
 * direction's pump, so there is no lock.  The cross-direction flags are
 * atomics: "this connection is TLS", decided by the first bytes of the
 * connection whichever direction they come from.  Replies are made while
 * the up pump feeds the decoder a chunk it will not pass to an upstream,
 * and sent by that same pump.  A chunk is fed before it is sent, so when
 * the upstream fails under it and the logger is answered locally
 * (on_upstream_failure = answer), that chunk's logger frames are kept
 * until the send has succeeded, to be answered after all.
 *
 * The counters for the stats hook are the listener's (struct sm_counts,
 * handed to open), relaxed atomics shared by its connections: one add per
 * frame, next to the outbox's lock per frame.  A logger frame also tells
 * loggers.c when its logger was last heard, at most once a second per
 * connection.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "pipeline/outbox.h"
#include "proto/loggers.h"
#include "proto/proto.h"
#include "proto/solarman.h"
#include "proto/solarman_event.h"

#define UNDECODABLE_HEAD 64

struct sm;

struct sm_dir {
	struct sm *t;
	int dir;
	bool logged_reject;
	uint64_t counted[SOLARMAN_REJECT_KINDS]; /* in the listener's counts */
	struct solarman_stream stream;
};

struct sm {
	const struct listener_conf *lc;
	struct sm_counts *counts; /* the listener's */
	int64_t heard_s;        /* the logger last heard (s): up pump only */
	uint64_t conn_id;
	char peer[ADDR_STR_MAX];
	atomic_int first_dir;   /* -1 until a direction saw its first byte */
	atomic_bool undecodable;
	bool answer;            /* this chunk gets replies; up pump only */
	bool hold;              /* keep this chunk's frames; up pump only */
	uint8_t *replies;       /* up pump only */
	size_t nreplies, cap;
	uint8_t *held;          /* the last up chunk's frames: size_t, bytes */
	size_t nheld, held_cap;
	struct sm_dir d[2];
};

/* One listener's totals since start. */
struct sm_counts {
	atomic_uint_fast64_t frames[256];       /* by type (byte 4) */
	atomic_uint_fast64_t rejected[SOLARMAN_REJECT_KINDS];
	atomic_uint_fast64_t skipped;           /* bytes, added at close */
	atomic_uint_fast64_t replies;           /* made locally */
	atomic_uint_fast64_t undecodable;       /* connections */
};

static const char *const dir_name[2] = {"up", "down"};

static void
count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Who, where and when; the id is given by whoever builds the event. */
static void
meta_init(struct sm *t, int dir, struct event_meta *m)
{
	m->listener = t->lc->name;
	m->conn_id = t->conn_id;
	m->peer = t->peer;
	m->direction = dir;
	m->received_ms = clock_wall_ms();
	m->id[0] = '\0';
}

/* Minutes east of UTC now: fixed, or this host's zone (summer time too). */
static int32_t
tz_minutes(const struct conf_tz *tz, time_t now)
{
	struct tm tm;

	if (!tz->is_auto)
		return tz->minutes;
	localtime_r(&now, &tm);
	return (int32_t)(tm.tm_gmtoff / 60);
}

/* A frame, to the outbox: its event is built by the writer. */
static void
put_frame(struct sm *t, const uint8_t *frame, size_t len,
    const struct event_meta *m)
{
	count(&t->counts->frames[frame[4]], 1);
	outbox_put_bytes(PROTO_SOLARMAN, frame, len, m);
}

/*
 * A valid frame from the logger: when it was last heard.  At most once a
 * second per connection, whatever its serial: a connection is one
 * logger's, and a stream of frames (a logger's backlog, a flood) must not
 * pay a string and the table's lock for each.
 */
static void
heard(struct sm *t, const uint8_t *frame, size_t len, int64_t ms)
{
	struct solarman_frame f;
	char s[16];

	if (ms / 1000 == t->heard_s || solarman_frame_parse(frame, len, &f) != 0)
		return;
	t->heard_s = ms / 1000;
	snprintf(s, sizeof s, "%" PRIu32, f.serial);
	loggers_heard(s, ms);
}

/* Queue the time reply to a logger frame, and its event. */
static void
answer(struct sm *t, const uint8_t *frame, size_t len)
{
	time_t now = time(NULL);
	uint8_t r[SOLARMAN_REPLY_LEN];
	struct event_meta m;

	if (solarman_time_reply(frame, len, (uint32_t)now,
	    tz_minutes(&t->lc->tz_offset, now), r) == 0)
		return;
	if (t->nreplies + sizeof r > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8 * sizeof r;
		uint8_t *p = realloc(t->replies, cap);
		if (p == NULL) {
			log_warnx("conn %" PRIu64 ": out of memory, frame not "
			    "answered", t->conn_id);
			return;
		}
		t->replies = p;
		t->cap = cap;
	}
	memcpy(t->replies + t->nreplies, r, sizeof r);
	t->nreplies += sizeof r;
	count(&t->counts->replies, 1);
	meta_init(t, 1, &m);
	put_frame(t, r, sizeof r, &m);
}

/* Keep a logger frame that may have to be answered after all. */
static void
hold(struct sm *t, const uint8_t *frame, size_t len)
{
	if (t->nheld + sizeof len + len > t->held_cap) {
		size_t cap = t->held_cap ? t->held_cap : 1024;
		uint8_t *p;

		while (cap < t->nheld + sizeof len + len)
			cap *= 2;
		if ((p = realloc(t->held, cap)) == NULL) {
			log_warnx("conn %" PRIu64 ": out of memory, a frame would "
			    "not be answered", t->conn_id);
			return;
		}
		t->held = p;
		t->held_cap = cap;
	}
	memcpy(t->held + t->nheld, &len, sizeof len);
	memcpy(t->held + t->nheld + sizeof len, frame, len);
	t->nheld += sizeof len + len;
}

static void
on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct sm_dir *d = arg;
	struct event_meta m;

	meta_init(d->t, d->dir, &m);
	put_frame(d->t, frame, len, &m);
	if (d->dir == 0)
		heard(d->t, frame, len, m.received_ms);
	if (d->dir == 0 && d->t->answer)
		answer(d->t, frame, len);
	else if (d->dir == 0 && d->t->hold)
		hold(d->t, frame, len);
}

/*
 * The stream's rejects since the last call, to the listener's counts: once
 * a chunk, not once a reject (garbage has a false start every 256 bytes).
 */
static void
count_rejects(struct sm_dir *d)
{
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++) {
		uint64_t n = d->stream.stats.rejects[k];

		if (n != d->counted[k]) {
			count(&d->t->counts->rejected[k], n - d->counted[k]);
			d->counted[k] = n;
		}
	}
}

static void
on_reject(void *arg, enum solarman_reject why)
{
	struct sm_dir *d = arg;

	/* One line per direction; the summary at close has the counts. */
	if (d->logged_reject)
		return;
	d->logged_reject = true;
	log_warnx("conn %" PRIu64 " [%s] %s: malformed frame (%s) at byte %"
	    PRIu64 ", bytes relayed as they are", d->t->conn_id,
	    d->t->lc->name, dir_name[d->dir], solarman_reject_name(why),
	    d->stream.reject_at);
}

static void *
sm_open(const struct proto_conn *pc)
{
	struct sm *t;

	if ((t = calloc(1, sizeof *t)) == NULL)
		return NULL;
	atomic_init(&t->undecodable, false);
	t->lc = pc->lc;
	t->counts = pc->counts;
	t->heard_s = -1;
	t->conn_id = pc->conn_id;
	snprintf(t->peer, sizeof t->peer, "%s", pc->peer);
	atomic_init(&t->first_dir, -1);
	for (int i = 0; i < 2; i++) {
		t->d[i].t = t;
		t->d[i].dir = i;
		solarman_stream_init(&t->d[i].stream);
	}
	return t;
}

/*
 * Whether the connection is still worth decoding: not when its very first
 * bytes, whichever direction they come from, start a TLS record (16 03),
 * decided once.  Anything else goes to the resynchronising stream decoder,
 * which skips leading garbage (counted as skipped bytes) and finds the
 * frames after it; when answering, only those frames get replies.
 */
static bool
still_decodable(struct sm *t, int dir, const uint8_t *buf, size_t n)
{
	int none = -1;

	if (atomic_load_explicit(&t->first_dir, memory_order_relaxed) != -1)
		return !atomic_load(&t->undecodable);
	if (atomic_compare_exchange_strong(&t->first_dir, &none, dir) &&
	    buf[0] == 0x16 && (n < 2 || buf[1] == 0x03)) {
		struct event_meta m;

		atomic_store(&t->undecodable, true);
		count(&t->counts->undecodable, 1);
		meta_init(t, dir, &m);
		event_id_new(&m);
		outbox_put(solarman_undecodable_event(buf,
		    n < UNDECODABLE_HEAD ? n : UNDECODABLE_HEAD, &m), m.received_ms);
		log_warnx("conn %" PRIu64 " [%s]: not Solarman V5 (TLS), %s",
		    t->conn_id, t->lc->name, dir == 0 && t->answer ?
		    "cannot answer it: closing" : "relayed without decoding");
	}
	return !atomic_load(&t->undecodable);
}

static void
sm_feed(void *p, int dir, const uint8_t *buf, size_t n, bool answer_it)
{
	struct sm *t = p;

	if (dir == 0) {
		t->answer = answer_it;
		t->hold = !answer_it &&
		    t->lc->on_upstream_failure == ON_FAILURE_ANSWER;
		t->nheld = 0;
	}
	if (still_decodable(t, dir, buf, n)) {
		struct solarman_handler h = {on_frame, on_reject, &t->d[dir]};
		solarman_stream_feed(&t->d[dir].stream, buf, n, &h);
		count_rejects(&t->d[dir]);
	}
}

static void
sm_answer_last(void *p)
{
	struct sm *t = p;
	size_t off, len;

	for (off = 0; off < t->nheld; off += sizeof len + len) {
		memcpy(&len, t->held + off, sizeof len);
		answer(t, t->held + off + sizeof len, len);
	}
	t->nheld = 0;
}

static size_t
sm_replies(void *p, const uint8_t **out)
{
	struct sm *t = p;

	*out = t->replies;
	return t->nreplies;
}

static void
sm_replies_sent(void *p)
{
	((struct sm *)p)->nreplies = 0;
}

static bool
sm_undecodable(const void *p)
{
	return atomic_load(&((const struct sm *)p)->undecodable);
}

static void
sm_close(void *p)
{
	struct sm *t = p;

	/* Frames found by the final rescan get no reply: nobody would get it. */
	t->answer = t->hold = false;
	for (int i = 0; i < 2; i++) {
		struct solarman_stream *s = &t->d[i].stream;
		struct solarman_handler h = {on_frame, on_reject, &t->d[i]};
		uint64_t rejects = 0;

		if (atomic_load(&t->undecodable))
			break;
		solarman_stream_finish(s, &h);
		count_rejects(&t->d[i]);
		count(&t->counts->skipped, s->stats.skipped);
		for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
			rejects += s->stats.rejects[k];
		if (rejects > 0 || s->stats.skipped > 0)
			log_info("conn %" PRIu64 " [%s] %s: %" PRIu64 " frames, %"
			    PRIu64 " rejected (length %" PRIu64 ", checksum %" PRIu64
			    ", end %" PRIu64 ", truncated %" PRIu64 "), %" PRIu64
			    " bytes skipped", t->conn_id, t->lc->name, dir_name[i],
			    s->stats.frames, rejects,
			    s->stats.rejects[SOLARMAN_BAD_LENGTH],
			    s->stats.rejects[SOLARMAN_BAD_CHECKSUM],
			    s->stats.rejects[SOLARMAN_BAD_END],
			    s->stats.rejects[SOLARMAN_TRUNCATED], s->stats.skipped);
	}
	for (int i = 0; i < 2; i++)
		solarman_stream_free(&t->d[i].stream);
	free(t->replies);
	free(t->held);
	free(t);
}

static void
sm_stats(const void *counts, proto_stat_fn *fn, void *arg)
{
	const struct sm_counts *c = counts;
	const char *const *types = solarman_event_types();
	char name[32];

	/* By the type of their event: several frame types make one. */
	for (size_t k = 0; types[k] != NULL; k++) {
		uint64_t v = 0;

		for (int i = 0; i < 256; i++)
			if (strcmp(solarman_event_type((uint8_t)i), types[k]) == 0)
				v += atomic_load_explicit(&c->frames[i],
				    memory_order_relaxed);
		snprintf(name, sizeof name, "frames.%s", types[k]);
		fn(arg, name, v);
	}
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++) {
		snprintf(name, sizeof name, "rejected.%s",
		    solarman_reject_name((enum solarman_reject)k));
		fn(arg, name, atomic_load(&c->rejected[k]));
	}
	fn(arg, "skipped_bytes", atomic_load(&c->skipped));
	fn(arg, "replies", atomic_load(&c->replies));
	fn(arg, "undecodable", atomic_load(&c->undecodable));
}

const struct proto_ops proto_solarman = {
	.name = "solarman",
	.open = sm_open,
	.feed = sm_feed,
	.answer_last = sm_answer_last,
	.replies = sm_replies,
	.replies_sent = sm_replies_sent,
	.undecodable = sm_undecodable,
	.close = sm_close,
	.counts_size = sizeof(struct sm_counts),
	.stats = sm_stats,
	.build = solarman_event, /* the outbox writer's half */
};
