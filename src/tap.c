/*
 * tap.c - the listener's protocol tap: capture (any protocol, when
 * capture_dir is set), the Solarman V5 decoder, or the Envoy's HTTP
 * (envoy_tap.c).
 *
 * Each direction has its own decoder state, touched only by that
 * direction's pump, so there is no lock.  The cross-direction flags are
 * atomics: "this connection is not V5", decided by the first bytes of the
 * connection whichever direction they come from.  Replies are made while
 * the up pump feeds the decoder a chunk it will not pass to an upstream,
 * and sent by that same pump.  A chunk is fed before it is sent, so when
 * the upstream fails under it and the logger is answered locally
 * (on_upstream_failure = answer), that chunk's logger frames are kept
 * until the send has succeeded, to be answered after all.
 */
#include "tap.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "clock.h"
#include "envoy_tap.h"
#include "event.h"
#include "log.h"
#include "outbox.h"
#include "solarman.h"
#include "solarman_event.h"

#define UNDECODABLE_HEAD 64

struct tap;

struct tap_dir {
	struct tap *t;
	int dir;
	bool logged_reject;
	struct solarman_stream stream;
};

struct tap {
	const struct listener_conf *lc;
	uint64_t conn_id;
	char peer[ADDR_STR_MAX];
	struct capture *capture;
	struct envoy_tap *envoy;
	bool solarman;
	atomic_int first_dir;   /* -1 until a direction saw its first byte */
	atomic_bool undecodable;
	bool answer;            /* this chunk gets replies; up pump only */
	bool hold;              /* keep this chunk's frames; up pump only */
	uint8_t *replies;       /* up pump only */
	size_t nreplies, cap;
	uint8_t *held;          /* the last up chunk's frames: size_t, bytes */
	size_t nheld, held_cap;
	struct tap_dir d[2];
};

static const char *const dir_name[2] = {"up", "down"};

/* Who, where and when; the id is given by whoever builds the event. */
static void
meta_init(struct tap *t, int dir, struct event_meta *m)
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

/* Queue the time reply to a logger frame, and its event. */
static void
answer(struct tap *t, const uint8_t *frame, size_t len)
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
	meta_init(t, 1, &m);
	outbox_put_frame(r, sizeof r, &m);
}

/* Keep a logger frame that may have to be answered after all. */
static void
hold(struct tap *t, const uint8_t *frame, size_t len)
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
	struct tap_dir *d = arg;
	struct event_meta m;

	meta_init(d->t, d->dir, &m);
	outbox_put_frame(frame, len, &m);
	if (d->dir == 0 && d->t->answer)
		answer(d->t, frame, len);
	else if (d->dir == 0 && d->t->hold)
		hold(d->t, frame, len);
}

static void
on_reject(void *arg, enum solarman_reject why)
{
	struct tap_dir *d = arg;

	/* One line per direction; the summary at close has the counts. */
	if (d->logged_reject)
		return;
	d->logged_reject = true;
	log_warnx("conn %" PRIu64 " [%s] %s: malformed frame (%s) at byte %"
	    PRIu64 ", bytes relayed as they are", d->t->conn_id,
	    d->t->lc->name, dir_name[d->dir], solarman_reject_name(why),
	    d->stream.reject_at);
}

struct tap *
tap_open(const struct listener_conf *lc, uint64_t conn_id, const char *peer,
    time_t start)
{
	bool solarman = lc->protocol == PROTO_SOLARMAN;
	bool envoy = lc->protocol == PROTO_ENVOY;
	struct tap *t;

	if (!solarman && !envoy && lc->capture_dir == NULL)
		return NULL;
	/* malloc, not calloc: the decoders' buffers stay untouched (and out
	 * of the resident set) until a frame is cut by a chunk boundary. */
	if ((t = malloc(sizeof *t)) == NULL)
		return NULL;
	t->capture = NULL;
	t->envoy = envoy ? envoy_tap_open(lc, conn_id, peer) : NULL;
	t->replies = NULL;
	t->nreplies = t->cap = 0;
	t->held = NULL;
	t->nheld = t->held_cap = 0;
	t->hold = false;
	atomic_init(&t->undecodable, false);
	t->answer = false;
	t->lc = lc;
	t->conn_id = conn_id;
	snprintf(t->peer, sizeof t->peer, "%s", peer);
	t->solarman = solarman;
	atomic_init(&t->first_dir, -1);
	for (int i = 0; i < 2; i++) {
		t->d[i].t = t;
		t->d[i].dir = i;
		t->d[i].logged_reject = false;
		solarman_stream_init(&t->d[i].stream);
	}
	if (lc->capture_dir != NULL)
		t->capture = capture_open(lc->capture_dir, lc->name, conn_id, start);
	return t;
}

/* Whether the connection's very first bytes are V5; decided once. */
static bool
still_decodable(struct tap *t, int dir, const uint8_t *buf, size_t n)
{
	int none = -1;

	if (atomic_compare_exchange_strong(&t->first_dir, &none, dir) &&
	    buf[0] != SOLARMAN_START) {
		struct event_meta m;

		atomic_store(&t->undecodable, true);
		meta_init(t, dir, &m);
		event_id_new(&m);
		outbox_put(solarman_undecodable_event(buf,
		    n < UNDECODABLE_HEAD ? n : UNDECODABLE_HEAD, &m), m.received_ms);
		log_warnx("conn %" PRIu64 " [%s]: not Solarman V5 (%s), %s",
		    t->conn_id, t->lc->name,
		    n >= 2 && buf[0] == 0x16 && buf[1] == 0x03 ? "TLS" :
		    "unknown start", dir == 0 && t->answer ?
		    "cannot answer it: closing" : "relayed without decoding");
	}
	return !atomic_load(&t->undecodable);
}

void
tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n, bool answer)
{
	if (t == NULL || n == 0)
		return;
	if (dir == 0) {
		t->answer = answer;
		t->hold = !answer &&
		    t->lc->on_upstream_failure == ON_FAILURE_ANSWER;
		t->nheld = 0;
	}
	if (t->envoy != NULL)
		envoy_tap_feed(t->envoy, dir, buf, n);
	if (t->solarman && still_decodable(t, dir, buf, n)) {
		struct solarman_handler h = {on_frame, on_reject, &t->d[dir]};
		solarman_stream_feed(&t->d[dir].stream, buf, n, &h);
	}
}

void
tap_answer_last(struct tap *t)
{
	size_t off, len;

	if (t == NULL)
		return;
	for (off = 0; off < t->nheld; off += sizeof len + len) {
		memcpy(&len, t->held + off, sizeof len);
		answer(t, t->held + off + sizeof len, len);
	}
	t->nheld = 0;
}

void
tap_capture(struct tap *t, int dir, const uint8_t *buf, size_t n)
{
	if (t != NULL && n > 0 && t->capture != NULL)
		capture_write(t->capture, dir, buf, n);
}

size_t
tap_replies(struct tap *t, const uint8_t **p)
{
	if (t == NULL)
		return 0;
	*p = t->replies;
	return t->nreplies;
}

void
tap_replies_sent(struct tap *t)
{
	if (t != NULL)
		t->nreplies = 0;
}

bool
tap_undecodable(const struct tap *t)
{
	return t != NULL && atomic_load(&t->undecodable);
}

void
tap_close(struct tap *t)
{
	if (t == NULL)
		return;
	/* Frames found by the final rescan get no reply: nobody would get it. */
	t->answer = t->hold = false;
	for (int i = 0; t->solarman && i < 2; i++) {
		struct solarman_stream *s = &t->d[i].stream;
		struct solarman_handler h = {on_frame, on_reject, &t->d[i]};
		uint64_t rejects = 0;

		if (atomic_load(&t->undecodable))
			break;
		solarman_stream_finish(s, &h);
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
	envoy_tap_close(t->envoy);
	capture_close(t->capture);
	free(t->replies);
	free(t->held);
	free(t);
}
