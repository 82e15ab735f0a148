/*
 * fuzz_solarman.c - libFuzzer target for the Solarman V5 stream decoder and
 * the frame -> event builder.  The same file links into tests/fuzz/replay.c,
 * which replays the corpus in `make check` without a fuzzer.
 *
 * Input: byte 0 is the chunking plan, the rest is the stream.  The plan's
 * low three bits pick the largest chunk (1 .. 4096+ bytes), the high five
 * bits seed a small PRNG that draws each chunk's size and, now and then, an
 * empty feed.  Chunks are fed to one solarman_stream, then
 * solarman_stream_finish.  The same bytes are then fed whole to a second
 * stream: both must deliver the same frames and rejects (TCP cuts the stream
 * anywhere; the decoder must not care where), and the same as a plain
 * model of the rule of docs/solarman-v5.md run over the whole input
 * (model() below).
 *
 * Every delivered frame must be a whole valid frame (start, end, length,
 * checksum, size bound) and is turned into an event and serialised the way
 * the sink does it.  Every broken invariant is an abort(), i.e. a crash the
 * fuzzer reports.  Untrusted bytes also go straight to solarman_event (it
 * parses only the header, so the fuzzer reaches every payload decoder
 * without having to forge checksums) and to solarman_undecodable_event.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "fuzz.h"
#include "proto/solarman.h"
#include "proto/solarman_event.h"

#define UNDECODABLE_HEAD 64 /* as in solarman_tap.c */

/* What one pass over the stream delivered, in order. */
struct record {
	uint8_t *bytes;     /* delivered frames, back to back */
	size_t used, cap;
	size_t *lens;       /* length of each delivered frame */
	size_t nframes, maxframes;
	uint64_t rejects[SOLARMAN_REJECT_KINDS];
	uint64_t nrejects;
};

static const struct event_meta meta = {
	.id = "0123456789abcdef-1",
	.listener = "fuzz",
	.conn_id = 42,
	.peer = "127.0.0.1:40000",
	.direction = 0,
	.received_ms = 1712596443512,
};

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_solarman: invariant broken: %s\n", what);
	abort();
}

#define require(cond) do { if (!(cond)) fail(#cond); } while (0)

/* Serialise an event as the JSON-lines sink does; it must not be NULL. */
static void
dump_event(json_t *ev)
{
	char *s;

	require(ev != NULL);
	s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
	require(s != NULL);
	require(s[0] == '{');
	free(s);
	json_decref(ev);
}

/* solarman_event on bytes that may be no frame: NULL exactly when the
 * header does not parse. */
static void
raw_event(const uint8_t *p, size_t n)
{
	struct solarman_frame f;
	int64_t time_ms = 0;
	json_t *ev = solarman_event(p, n, &meta, &time_ms);

	if (solarman_frame_parse(p, n, &f) == 0)
		dump_event(ev);
	else
		require(ev == NULL && time_ms == meta.received_ms);
}

/*
 * A data frame's payload decoded as each sensor type of the table in
 * solarman_event.c, real-time and historic: the fuzzer then reaches every
 * layout without having to guess a type (the checksum is not checked).
 */
static void
raw_event_as_sensors(const uint8_t *p, size_t n)
{
	static const uint16_t types[] = {0x5408, 0x0507, 0x2701};
	static const uint8_t kinds[] = {0x01, 0x81};
	uint8_t *c;

	if (n < 14 || p[4] != 0x42 || (c = malloc(n)) == NULL)
		return;
	memcpy(c, p, n);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		for (size_t k = 0; k < sizeof kinds; k++) {
			c[11] = kinds[k];
			c[12] = (uint8_t)(types[i] & 0xff);
			c[13] = (uint8_t)(types[i] >> 8);
			raw_event(c, n);
		}
	}
	free(c);
}

static void
on_frame(void *ctx, const uint8_t *frame, size_t len)
{
	struct record *r = ctx;
	struct solarman_frame f;
	int64_t time_ms;

	require(len >= SOLARMAN_OVERHEAD);
	require(len <= SOLARMAN_FRAME_MAX);
	require(frame[0] == SOLARMAN_START);
	require(frame[len - 1] == SOLARMAN_END);
	require(len == (size_t)(frame[1] | frame[2] << 8) + SOLARMAN_OVERHEAD);
	require(solarman_checksum(frame, len) == frame[len - 2]);
	require(solarman_frame_parse(frame, len, &f) == 0);
	require(f.payload.n == len - SOLARMAN_OVERHEAD);
	require(f.payload.p == frame + 11);

	/* Frames are disjoint pieces of the input, so they fit. */
	require(r->nframes < r->maxframes);
	require(len <= r->cap - r->used);
	memcpy(r->bytes + r->used, frame, len);
	r->used += len;
	r->lens[r->nframes++] = len;

	dump_event(solarman_event(frame, len, &meta, &time_ms));
}

static void
on_reject(void *ctx, enum solarman_reject why)
{
	struct record *r = ctx;

	require((unsigned)why < SOLARMAN_REJECT_KINDS);
	require(solarman_reject_name(why)[0] != '?');
	r->rejects[why]++;
	r->nrejects++;
}

static bool
record_init(struct record *r, size_t n)
{
	memset(r, 0, sizeof *r);
	r->cap = n;
	r->maxframes = n / SOLARMAN_OVERHEAD + 1;
	r->bytes = malloc(n > 0 ? n : 1);
	r->lens = malloc(r->maxframes * sizeof *r->lens);
	return r->bytes != NULL && r->lens != NULL;
}

static void
record_free(struct record *r)
{
	free(r->bytes);
	free(r->lens);
}

/* The stream's own books must agree with what the callbacks saw. */
static void
check_stats(const struct solarman_stream *s, const struct record *r,
    size_t fed)
{
	require(s->len == 0); /* finish leaves nothing held */
	require(s->stats.bytes == fed);
	require(s->stats.frames == r->nframes);
	require(r->used + s->stats.skipped == s->stats.bytes);
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		require(s->stats.rejects[k] == r->rejects[k]);
}

/*
 * The rule of docs/solarman-v5.md (section 2), written as plainly as
 * possible over the whole input:
 * at each 0xA5, take the frame it claims if it is complete and valid, else
 * drop that one byte.  The stream decoder must find exactly these frames,
 * for the same reasons rejected.
 */
static void
model(const uint8_t *p, size_t n, struct record *r)
{
	size_t i = 0;

	while (i < n) {
		size_t len;

		if (p[i] != SOLARMAN_START) {
			i++;
			continue;
		}
		if (n - i < 3) {
			r->rejects[SOLARMAN_TRUNCATED]++;
			i++;
			continue;
		}
		len = (size_t)(p[i + 1] | p[i + 2] << 8) + SOLARMAN_OVERHEAD;
		if (len > SOLARMAN_FRAME_MAX)
			r->rejects[SOLARMAN_BAD_LENGTH]++;
		else if (len > n - i)
			r->rejects[SOLARMAN_TRUNCATED]++;
		else if (p[i + len - 1] != SOLARMAN_END)
			r->rejects[SOLARMAN_BAD_END]++;
		else if (solarman_checksum(p + i, len) != p[i + len - 2])
			r->rejects[SOLARMAN_BAD_CHECKSUM]++;
		else {
			require(r->nframes < r->maxframes);
			memcpy(r->bytes + r->used, p + i, len);
			r->used += len;
			r->lens[r->nframes++] = len;
			i += len;
			continue;
		}
		i++;
	}
}

/* Two records hold the same frames, and rejects of the same kinds. */
static void
same_record(const struct record *a, const struct record *b)
{
	require(a->nframes == b->nframes);
	require(a->used == b->used);
	require(memcmp(a->lens, b->lens, a->nframes * sizeof *a->lens) == 0);
	require(a->used == 0 || memcmp(a->bytes, b->bytes, a->used) == 0);
	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		require(a->rejects[k] == b->rejects[k]);
}

static uint32_t
rng_next(uint32_t *x)
{
	/* xorshift32: small, and the same on every platform */
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static const size_t chunk_max[8] = {1, 2, 3, 5, 13, 64, 512, 5000};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct solarman_stream chunked, whole;
	struct solarman_handler h;
	struct record rc, rw, rm;
	const uint8_t *in;
	size_t n, off, first = 0;
	uint32_t x;
	uint8_t plan;

	if (size < 1)
		return 0;
	plan = data[0];
	in = data + 1;
	n = size - 1;
	if (!record_init(&rc, n) || !record_init(&rw, n) ||
	    !record_init(&rm, n)) {
		record_free(&rc);
		record_free(&rw);
		record_free(&rm);
		return 0;
	}

	/* Chunked, as the plan says. */
	x = 0x9e3779b9u ^ (uint32_t)plan * 0x01000193u;
	h = (struct solarman_handler){on_frame, on_reject, &rc};
	solarman_stream_init(&chunked);
	for (off = 0; off < n;) {
		uint32_t v = rng_next(&x);
		size_t c = 1 + v % chunk_max[plan & 7];

		if ((v >> 24 & 15) == 0)
			solarman_stream_feed(&chunked, in + off, 0, &h);
		if (c > n - off)
			c = n - off;
		if (first == 0)
			first = c;
		solarman_stream_feed(&chunked, in + off, c, &h);
		off += c;
	}
	solarman_stream_finish(&chunked, &h);
	check_stats(&chunked, &rc, n);
	/* A second finish has nothing left to do. */
	solarman_stream_finish(&chunked, &h);
	check_stats(&chunked, &rc, n);

	/* Whole, in one chunk. */
	h.ctx = &rw;
	solarman_stream_init(&whole);
	solarman_stream_feed(&whole, in, n, &h);
	solarman_stream_finish(&whole, &h);
	check_stats(&whole, &rw, n);

	/* Chunking invariance, and the rule itself. */
	same_record(&rc, &rw);
	require(rc.nrejects == rw.nrejects);
	require(chunked.stats.skipped == whole.stats.skipped);
	model(in, n, &rm);
	same_record(&rw, &rm);

	/* The tap reports a TLS stream from the head of its first read. */
	if (first > 0)
		dump_event(solarman_undecodable_event(in,
		    first < UNDECODABLE_HEAD ? first : UNDECODABLE_HEAD, &meta));

	/* The event builder on raw bytes, checksum unchecked: the header's
	 * length picks the frame, so every payload decoder is in reach; it
	 * must read nothing past the frame it is given. */
	if (n >= 3 && in[0] == SOLARMAN_START) {
		size_t len = (size_t)(in[1] | in[2] << 8) + SOLARMAN_OVERHEAD;

		if (len <= n) {
			raw_event(in, len);
			raw_event_as_sensors(in, len);
		}
	}
	raw_event(in, n);

	solarman_stream_free(&chunked);
	solarman_stream_free(&whole);
	record_free(&rc);
	record_free(&rw);
	record_free(&rm);
	return 0;
}
