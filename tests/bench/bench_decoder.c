/*
 * bench_decoder - Solarman V5 and Envoy decoder throughput for `make bench`
 * (tests/bench/bench.py), on one CPU.
 *
 *   bench-decoder [-f FIXTURES] [-s SOLIS] [-c CPU] [-r REPS] [-m MIB]
 *       [-n EVENTS] [-S]
 *       [-E REQUEST -e EVENTS -X REPORT -x EVENTS [-k REPORTS]]
 *
 * Links the daemon's own objects (everything but main.o) and times, in
 * memory, with no I/O (-S leaves the Solarman rows out):
 *
 *   stream     the fixture frames that verify OK (tests/data/
 *              solarman-frames.txt, "# verify-result: OK" and "ALL FRAMES
 *              OK" blocks) concatenated and repeated to MIB MiB (default
 *              64), fed in 64 KiB chunks (the pump's buffer size) to
 *              solarman_stream_feed() with a handler that only counts:
 *              MB/s and frames/s.
 *   garbage    MIB MiB of pseudo-random bytes (xorshift64*, fixed seed), so
 *              a 0xA5 about every 256 bytes, each a candidate to reject.
 *   garbage_no_a5  the same bytes with every 0xA5 replaced by 0xA4: the
 *              memchr path alone.
 *   json_data  EVENTS times what the daemon does per frame: a new id and
 *              time (event_id_new, clock_wall_ms), solarman_event() on the
 *              Deye data frame (block deye-m80g3-data-0x42), json_dumps with
 *              the daemon's flags, free: frames/s.
 *   json_heartbeat  the same for the heartbeat frame (deye-micro-heartbeat-
 *              0x47), the smallest event.
 *   json_solis  the same for a Solis real-time data frame (sensor type
 *              0x0507: block solis-data-rt-663w of SOLIS, by default
 *              tests/data/solis/frames.txt).
 *
 * With -E, the Envoy rows.  REQUEST is a file holding one keep-alive
 * performance_report POST as an Envoy sends it (a deflated form whose
 * field body is the report XML) whose report makes EVENTS events; REPORT a
 * report XML that makes EVENTS (-x) events (the 4.6.0 fixture):
 *
 *   envoy_http     REQUEST repeated to MIB MiB, a keep-alive stream, fed to
 *              http_stream_feed() (requests) in 1460-byte pieces, a
 *              handler that counts: MB/s and POSTs/s.
 *   envoy_report   REPORTS (default 20) times envoy_report_events() on the
 *              report of REQUEST, every event through json_dumps as the
 *              writer does: events/s ("frames").
 *   envoy_report_460  the same, 50 x REPORTS times, on REPORT.
 *   envoy_post     REPORTS times what the writer thread does with the POST's
 *              body but the spool files: envoy_inflate, envoy_form_field,
 *              envoy_report_events, json_dumps: POSTs/s ("frames").
 *
 * Each test runs once to warm up, then REPS times (default 5); the best and
 * the median time are reported.  The counts are checked on every run (frames
 * found == frames fed, no byte skipped in the frame stream, every 0xA5 of
 * the garbage rejected or inside a frame, JSON that says what the frame
 * holds; every POST parsed whole, every report making its EVENTS), so a
 * broken decoder fails (exit 1) instead of looking fast.
 * Prints one JSON object on stdout.  Exit 0 when it ran, 1 on a failed
 * check, 2 on bad usage or an unreadable fixture file.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "event.h"
#include "proto/envoy.h"
#include "proto/http.h"
#include "proto/solarman.h"
#include "proto/solarman_event.h"

#define CHUNK (64 * 1024)
#define MAX_FRAMES 256
#define MAX_REPS 50
#define DATA_ID "deye-m80g3-data-0x42"
#define HEARTBEAT_ID "deye-micro-heartbeat-0x47"
#define SOLIS_ID "solis-data-rt-663w" /* tests/data/solis/frames.txt */
#define WIRE_PIECE 1460 /* an Ethernet MSS: a real Envoy's segments */
#define ENVOY_MAX_BODY (8 << 20) /* the default max_body */
#define ENVOY_TARGET "/emu_reports/performance_report?webcomm_version=4.6.0"

struct frame {
	char id[80];
	uint8_t *p;
	size_t n;
};

struct counts {
	uint64_t frames;
	uint64_t frame_bytes;
	uint64_t inner_a5; /* 0xA5 bytes inside delivered frames, not the first */
	uint64_t rejects;
};

struct blob {
	uint8_t *p;
	size_t n;
};

struct result {
	double secs[MAX_REPS];
	int reps;
};

static struct frame fix[MAX_FRAMES];
static size_t nframes;

static void __attribute__((format(printf, 1, 2), noreturn))
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-decoder: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
best(const struct result *r)
{
	double b = r->secs[0];

	for (int i = 1; i < r->reps; i++)
		if (r->secs[i] < b)
			b = r->secs[i];
	return b;
}

static double
median(const struct result *r)
{
	double s[MAX_REPS];

	memcpy(s, r->secs, sizeof s[0] * (size_t)r->reps);
	qsort(s, (size_t)r->reps, sizeof s[0], cmp_double);
	return r->reps % 2 ? s[r->reps / 2] :
	    (s[r->reps / 2 - 1] + s[r->reps / 2]) / 2;
}

/* ---- the fixture file */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* fr: the frame of block id, from its hex line of len characters. */
static void
hex_frame(const char *path, const char *id, const char *line, size_t len,
    struct frame *fr)
{
	if (len % 2 != 0)
		fail("%s: block %s: bad hex line", path, id);
	if ((fr->p = malloc(len / 2)) == NULL)
		fail("out of memory");
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);

		if (hi < 0 || lo < 0)
			fail("%s: block %s: bad hex", path, id);
		fr->p[i] = (uint8_t)(hi << 4 | lo);
	}
	fr->n = len / 2;
	snprintf(fr->id, sizeof fr->id, "%s", id);
}

/* The blocks whose verify-result is OK (or ALL FRAMES OK): id and bytes. */
static void
load_fixtures(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[8192], id[80] = "";
	bool ok = false;

	if (f == NULL) {
		fprintf(stderr, "bench-decoder: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		line[len] = '\0';
		if (strncmp(line, "# id: ", 6) == 0) {
			snprintf(id, sizeof id, "%.79s", line + 6);
			ok = false;
		} else if (strncmp(line, "# verify-result: ", 17) == 0) {
			ok = strcmp(line + 17, "OK") == 0 ||
			    strcmp(line + 17, "ALL FRAMES OK") == 0;
		} else if (line[0] != '#' && len > 0 && ok) {
			struct frame *fr = &fix[nframes];

			if (nframes == MAX_FRAMES)
				fail("%s: block %s: too many frames", path, id);
			hex_frame(path, id, line, len, fr);
			nframes++;
			ok = false;
		}
	}
	fclose(f);
	if (nframes == 0)
		fail("%s: no block verifies OK", path);
}

/* The frame of block id in a file of '# id:' blocks (tests/data/solis). */
static void
load_block(const char *path, const char *id, struct frame *fr)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	bool in = false;

	if (f == NULL)
		fail("%s: %s", path, strerror(errno));
	fr->p = NULL;
	while (fr->p == NULL && fgets(line, sizeof line, f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		line[len] = '\0';
		if (strncmp(line, "# id: ", 6) == 0) {
			in = strcmp(line + 6, id) == 0;
		} else if (in && line[0] != '#' && len > 0) {
			hex_frame(path, id, line, len, fr);
		}
	}
	fclose(f);
	if (fr->p == NULL)
		fail("%s: no block %s", path, id);
}

static const struct frame *
fixture(const char *id)
{
	for (size_t i = 0; i < nframes; i++)
		if (strcmp(fix[i].id, id) == 0)
			return &fix[i];
	fail("fixture %s not found", id);
}

/* ---- stream decoding */

static void
count_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct counts *c = arg;

	(void)frame;
	c->frames++;
	c->frame_bytes += len;
}

/* For the garbage: also the 0xA5 inside a frame, which are no candidates. */
static void
count_frame_a5(void *arg, const uint8_t *frame, size_t len)
{
	struct counts *c = arg;

	c->frames++;
	c->frame_bytes += len;
	for (size_t i = 1; i < len; i++)
		c->inner_a5 += frame[i] == SOLARMAN_START;
}

static void
count_reject(void *arg, enum solarman_reject why)
{
	struct counts *c = arg;

	(void)why;
	c->rejects++;
}

/* Decode buf in CHUNK pieces; the seconds taken, the counts and stats. */
static double
decode(const uint8_t *buf, size_t n, bool a5, struct counts *c,
    struct solarman_stats *st)
{
	static struct solarman_stream s;
	struct solarman_handler h = {a5 ? count_frame_a5 : count_frame,
	    count_reject, c};
	double t0;

	memset(c, 0, sizeof *c);
	solarman_stream_init(&s);
	t0 = now_s();
	for (size_t off = 0; off < n; off += CHUNK)
		solarman_stream_feed(&s, buf + off, n - off < CHUNK ? n - off : CHUNK,
		    &h);
	solarman_stream_finish(&s, &h);
	t0 = now_s() - t0;
	*st = s.stats;
	solarman_stream_free(&s);
	return t0;
}

static uint64_t
rejects_of(const struct solarman_stats *st)
{
	uint64_t r = 0;

	for (int k = 0; k < SOLARMAN_REJECT_KINDS; k++)
		r += st->rejects[k];
	return r;
}

static void
check_stream(const char *name, const struct counts *c,
    const struct solarman_stats *st, size_t n, uint64_t want_frames)
{
	if (st->bytes != n)
		fail("%s: decoder counted %" PRIu64 " bytes, fed %zu", name,
		    st->bytes, n);
	if (c->frames != want_frames || st->frames != want_frames)
		fail("%s: %" PRIu64 " frames found (stats %" PRIu64 "), %" PRIu64
		    " fed", name, c->frames, st->frames, want_frames);
	if (c->rejects != rejects_of(st))
		fail("%s: %" PRIu64 " rejects reported, %" PRIu64 " counted", name,
		    c->rejects, rejects_of(st));
	if (st->skipped + c->frame_bytes != n)
		fail("%s: %" PRIu64 " bytes skipped + %" PRIu64 " in frames != %zu",
		    name, st->skipped, c->frame_bytes, n);
}

/* ---- JSON */

static double
to_json(const struct frame *fr, long n, const char *must, size_t *bytes)
{
	struct event_meta m = {.listener = "deye", .conn_id = 1,
	    .peer = "127.0.0.1:40000", .direction = 0};
	double t0 = now_s();

	*bytes = 0;
	for (long i = 0; i < n; i++) {
		int64_t t;
		json_t *ev;
		char *s;

		m.received_ms = clock_wall_ms();
		event_id_new(&m);
		ev = solarman_event(fr->p, fr->n, &m, &t);
		if (ev == NULL)
			fail("%s: solarman_event returned NULL", fr->id);
		s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
		if (s == NULL)
			fail("%s: json_dumps returned NULL", fr->id);
		if (i == 0 && strstr(s, must) == NULL)
			fail("%s: event has no %s: %s", fr->id, must, s);
		*bytes += strlen(s);
		free(s);
		json_decref(ev);
	}
	return now_s() - t0;
}

/* ---- main */

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-decoder [-f FIXTURES] [-s SOLIS] [-c CPU] "
	    "[-r REPS] [-m MIB] [-n EVENTS] [-S]\n"
	    "           [-E REQUEST -e EVENTS -X REPORT -x EVENTS [-k REPORTS]]\n");
	exit(2);
}

static void
print_rate(const char *name, const struct result *r, double bytes,
    double frames)
{
	double b = best(r), m = median(r);

	printf(",\n\"%s\": {\"bytes\": %.0f, \"frames\": %.0f, \"reps\": %d, "
	    "\"best_s\": %.6f, \"median_s\": %.6f, \"mbps_best\": %.1f, "
	    "\"mbps_median\": %.1f, \"fps_best\": %.0f, \"fps_median\": %.0f}",
	    name, bytes, frames, r->reps, b, m, bytes / b / 1e6, bytes / m / 1e6,
	    frames / b, frames / m);
}

/* The Solarman rows (see the header). */
static void
solarman_rows(const char *path, const char *solis_path, long reps, long mib,
    long nev)
{
	struct result rs = {0}, rg = {0}, rn = {0}, rjd = {0}, rjh = {0},
	    rjs = {0};
	struct frame solis;
	size_t js_bytes = 0;
	struct counts c;
	struct solarman_stats st;
	uint8_t *unit, *stream, *garbage, *clean;
	size_t unit_len = 0, total, n, jd_bytes = 0, jh_bytes = 0;
	uint64_t unit_frames, want, a5 = 0, seed = 0x5eed5eed2024ULL;

	load_fixtures(path);
	load_block(solis_path, SOLIS_ID, &solis);

	/* (a) the real frames, one after the other, repeated. */
	for (size_t i = 0; i < nframes; i++)
		unit_len += fix[i].n;
	if ((unit = malloc(unit_len)) == NULL)
		fail("out of memory");
	n = 0;
	for (size_t i = 0; i < nframes; i++) {
		memcpy(unit + n, fix[i].p, fix[i].n);
		n += fix[i].n;
	}
	/* How many frames one copy holds (a block may hold several). */
	decode(unit, unit_len, false, &c, &st);
	unit_frames = c.frames;
	if (unit_frames < nframes || st.skipped != 0 || c.rejects != 0)
		fail("the fixture frames that verify OK do not decode cleanly: %"
		    PRIu64 " frames from %zu blocks, %" PRIu64 " bytes skipped, %"
		    PRIu64 " rejects", unit_frames, nframes, st.skipped, c.rejects);
	total = (size_t)mib << 20;
	total -= total % unit_len;
	want = unit_frames * (total / unit_len);
	if ((stream = malloc(total)) == NULL || (garbage = malloc(total)) == NULL ||
	    (clean = malloc(total)) == NULL)
		fail("out of memory");
	for (size_t off = 0; off < total; off += unit_len)
		memcpy(stream + off, unit, unit_len);

	/* (b) pseudo-random bytes; (b') the same without 0xA5. */
	for (size_t off = 0; off < total; off += 8) {
		uint64_t r = xorshift(&seed);
		memcpy(garbage + off, &r, total - off < 8 ? total - off : 8);
	}
	for (size_t i = 0; i < total; i++) {
		a5 += garbage[i] == SOLARMAN_START;
		clean[i] = garbage[i] == SOLARMAN_START ? 0xa4 : garbage[i];
	}

	for (long r = -1; r < reps; r++) {
		double t;

		t = decode(stream, total, false, &c, &st);
		check_stream("stream", &c, &st, total, want);
		if (st.skipped != 0 || c.rejects != 0)
			fail("stream: %" PRIu64 " bytes skipped, %" PRIu64 " rejects",
			    st.skipped, c.rejects);
		if (r >= 0)
			rs.secs[rs.reps++] = t;

		t = decode(garbage, total, true, &c, &st);
		/* Every 0xA5 gets one verdict: a frame, a reject, or it is
		 * inside a frame. */
		check_stream("garbage", &c, &st, total, c.frames);
		if (c.frames + c.rejects + c.inner_a5 != a5)
			fail("garbage: %" PRIu64 " frames + %" PRIu64 " rejects + %"
			    PRIu64 " 0xA5 inside frames != %" PRIu64 " 0xA5 bytes",
			    c.frames, c.rejects, c.inner_a5, a5);
		if (r >= 0)
			rg.secs[rg.reps++] = t;

		t = decode(clean, total, false, &c, &st);
		check_stream("garbage without 0xA5", &c, &st, total, 0);
		if (c.rejects != 0)
			fail("garbage without 0xA5: %" PRIu64 " rejects", c.rejects);
		if (r >= 0)
			rn.secs[rn.reps++] = t;
	}
	/* The last garbage run's counts, for the report. */
	decode(garbage, total, true, &c, &st);

	/* (c) frames to JSON, the daemon's way. */
	for (long r = -1; r < reps; r++) {
		double t = to_json(fixture(DATA_ID), r < 0 ? nev / 10 : nev,
		    "\"grid.v\":232.0", &jd_bytes);
		if (r >= 0)
			rjd.secs[rjd.reps++] = t;
		t = to_json(fixture(HEARTBEAT_ID), r < 0 ? nev / 10 : nev,
		    "\"type\":\"heartbeat\"", &jh_bytes);
		if (r >= 0)
			rjh.secs[rjh.reps++] = t;
		t = to_json(&solis, r < 0 ? nev / 10 : nev, "\"grid.v\":235.8",
		    &js_bytes);
		if (r >= 0)
			rjs.secs[rjs.reps++] = t;
	}

	printf(", \"chunk\": %d, \"fixture_frames\": %" PRIu64
	    ", \"fixture_bytes\": %zu, \"garbage_a5\": %" PRIu64
	    ", \"garbage_rejects\": %" PRIu64 ", \"garbage_frames\": %" PRIu64,
	    CHUNK, unit_frames, unit_len, a5, c.rejects, c.frames);
	print_rate("stream", &rs, (double)total, (double)want);
	print_rate("garbage", &rg, (double)total, 0);
	print_rate("garbage_no_a5", &rn, (double)total, 0);
	print_rate("json_data", &rjd, (double)jd_bytes, (double)nev);
	print_rate("json_heartbeat", &rjh, (double)jh_bytes, (double)nev);
	print_rate("json_solis", &rjs, (double)js_bytes, (double)nev);
	free(solis.p);
	for (size_t i = 0; i < nframes; i++)
		free(fix[i].p);
	free(unit);
	free(stream);
	free(garbage);
	free(clean);
}

/* ---- Envoy */

struct envoy_counts {
	uint64_t messages, bad, body_bytes;
	uint64_t want_body;   /* every message's body length */
	uint8_t *body;        /* the first message's body, taken */
};

static void
count_message(void *arg, struct http_msg *m)
{
	struct envoy_counts *c = arg;

	c->messages++;
	c->body_bytes += m->body_len;
	if (m->response || strcmp(m->method, "POST") != 0 ||
	    (c->want_body != 0 && m->body_len != c->want_body))
		c->bad++;
	if (c->body == NULL && m->body != NULL) {
		c->body = m->body;
		m->body = NULL;
	}
}

static void
count_http_error(void *arg, enum http_error why)
{
	struct envoy_counts *c = arg;

	(void)why;
	c->bad++;
}

/* Parse buf as a stream of requests fed in WIRE_PIECE pieces. */
static double
parse_http(const uint8_t *buf, size_t n, struct envoy_counts *c)
{
	struct http_stream s;
	struct http_handler h = {NULL, count_message, count_http_error, c};
	double t0;

	http_stream_init(&s, false, ENVOY_MAX_BODY);
	t0 = now_s();
	for (size_t off = 0; off < n; off += WIRE_PIECE)
		http_stream_feed(&s, buf + off,
		    n - off < WIRE_PIECE ? n - off : WIRE_PIECE, &h);
	http_stream_finish(&s, &h);
	t0 = now_s() - t0;
	http_stream_free(&s);
	return t0;
}

/* What outbox_emit() does with an event, but the journal. */
static void
dump_event(void *arg, json_t *ev, int64_t time_ms)
{
	size_t *bytes = arg;
	char *s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));

	(void)time_ms;
	if (s == NULL)
		fail("envoy: json_dumps returned NULL");
	*bytes += strlen(s);
	free(s);
	json_decref(ev);
}

static void
report_events(const char *name, const char *xml, size_t n, int want,
    size_t *bytes)
{
	struct envoy_report_ctx ctx = {.meta = {.listener = "envoy",
	    .conn_id = 1, .peer = "127.0.0.1:40000", .direction = 0,
	    .received_ms = clock_wall_ms()},
	    .target = ENVOY_TARGET, .spool_name = "2024-04-08T17:14:03-0badcafe"};
	char err[160];
	int k = envoy_report_events(xml, n, &ctx, dump_event, bytes, err,
	    sizeof err);

	if (k != want)
		fail("%s: %d events, want %d%s%s", name, k, want, k < 0 ? ": " : "",
		    k < 0 ? err : "");
}

/* k times envoy_report_events() on the report. */
static double
envoy_reports(const char *name, const struct blob *xml, long k, int want,
    size_t *bytes)
{
	double t0 = now_s();

	*bytes = 0;
	for (long i = 0; i < k; i++)
		report_events(name, (const char *)xml->p, xml->n, want, bytes);
	return now_s() - t0;
}

/* k times what the writer does with a report POST's body, spool files
 * aside: inflate, the form field body, the events. */
static double
envoy_posts(const struct blob *body, long k, int want, size_t *xml_bytes)
{
	double t0 = now_s();

	*xml_bytes = 0;
	for (long i = 0; i < k; i++) {
		uint8_t *form, *xml;
		size_t form_len, xml_len, ev_bytes = 0;
		bool over;

		if (envoy_inflate(body->p, body->n, ENVOY_MAX_BODY, &form,
		    &form_len, &over) != 0)
			fail("envoy: the POST's body does not inflate");
		if (envoy_form_field(form, form_len, "body", &xml, &xml_len) != 0)
			fail("envoy: the POST's form has no body field");
		report_events("envoy POST", (const char *)xml, xml_len, want,
		    &ev_bytes);
		*xml_bytes += xml_len;
		free(xml);
		free(form);
	}
	return now_s() - t0;
}

static struct blob
read_all(const char *path)
{
	struct blob b = {NULL, 0};
	size_t cap = 0, k;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		fprintf(stderr, "bench-decoder: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	do {
		if (b.n == cap && (b.p = realloc(b.p, (cap = cap * 2 + 65536) + 1)) ==
		    NULL)
			fail("out of memory");
		b.n += (k = fread(b.p + b.n, 1, cap - b.n, f));
	} while (k > 0);
	if (ferror(f) || b.n == 0)
		fail("%s: unreadable or empty", path);
	fclose(f);
	b.p[b.n] = '\0';
	return b;
}

/* The Envoy rows (see the header): the POST in file req makes want events,
 * the report in file fixture want_fix. */
static void
envoy_rows(const char *req, int want, const char *fixture_path, int want_fix,
    long reps, long mib, long k)
{
	struct blob wire = read_all(req), fix460 = read_all(fixture_path);
	struct blob body, xml;
	struct result rh = {0}, rr = {0}, rf = {0}, rp = {0};
	struct envoy_counts c = {0};
	size_t copies, total, r_bytes = 0, f_bytes = 0, p_bytes = 0;
	uint8_t *stream, *form;
	bool over;

	/* The POST once: its body, and the report in it. */
	parse_http(wire.p, wire.n, &c);
	if (c.messages != 1 || c.bad != 0 || c.body == NULL)
		fail("%s: not one POST with a body (%" PRIu64 " messages, %" PRIu64
		    " errors)", req, c.messages, c.bad);
	body = (struct blob){c.body, (size_t)c.body_bytes};
	if (envoy_inflate(body.p, body.n, ENVOY_MAX_BODY, &form, &xml.n,
	    &over) != 0 || envoy_form_field(form, xml.n, "body", &xml.p,
	    &xml.n) != 0)
		fail("%s: no deflated form with a body field", req);
	free(form);

	/* The keep-alive stream: the POST repeated to MIB MiB. */
	copies = ((size_t)mib << 20) / wire.n;
	if (copies == 0)
		copies = 1;
	total = copies * wire.n;
	if ((stream = malloc(total)) == NULL)
		fail("out of memory");
	for (size_t i = 0; i < copies; i++)
		memcpy(stream + i * wire.n, wire.p, wire.n);

	for (long r = -1; r < reps; r++) {
		double t;

		c = (struct envoy_counts){.want_body = body.n};
		t = parse_http(stream, total, &c);
		free(c.body);
		if (c.messages != copies || c.bad != 0 ||
		    c.body_bytes != copies * body.n)
			fail("envoy stream: %" PRIu64 " messages of %zu, %" PRIu64
			    " bad, %" PRIu64 " body bytes", c.messages, copies, c.bad,
			    c.body_bytes);
		if (r >= 0)
			rh.secs[rh.reps++] = t;
		t = envoy_reports("generated report", &xml, r < 0 ? 1 : k, want,
		    &r_bytes);
		if (r >= 0)
			rr.secs[rr.reps++] = t;
		t = envoy_reports("4.6.0 fixture", &fix460, r < 0 ? 1 : 50 * k,
		    want_fix, &f_bytes);
		if (r >= 0)
			rf.secs[rf.reps++] = t;
		t = envoy_posts(&body, r < 0 ? 1 : k, want, &p_bytes);
		if (r >= 0)
			rp.secs[rp.reps++] = t;
	}
	printf(", \"envoy_piece\": %d, \"envoy_post_bytes\": %zu, "
	    "\"envoy_body_bytes\": %zu, \"envoy_report_bytes\": %zu, "
	    "\"envoy_report_events\": %d, \"envoy_fixture_events\": %d, "
	    "\"envoy_reports\": %ld", WIRE_PIECE, wire.n, body.n, xml.n, want,
	    want_fix, k);
	print_rate("envoy_http", &rh, (double)total, (double)copies);
	/* bytes: of the events' JSON; frames: events. */
	print_rate("envoy_report", &rr, (double)r_bytes,
	    (double)want * (double)k);
	print_rate("envoy_report_460", &rf, (double)f_bytes,
	    (double)want_fix * 50.0 * (double)k);
	/* bytes: of the POST bodies; frames: POSTs. */
	print_rate("envoy_post", &rp, (double)body.n * (double)k, (double)k);
	free(stream);
	free(body.p);
	free(xml.p);
	free(wire.p);
	free(fix460.p);
}

int
main(int argc, char **argv)
{
	const char *path = "tests/data/solarman-frames.txt",
	    *solis = "tests/data/solis/frames.txt", *req = NULL,
	    *fix460 = NULL;
	long cpu = -1, reps = 5, mib = 64, nev = 100000, k = 20, want = -1,
	    want_fix = -1;
	bool solarman = true;
	cpu_set_t set;
	int ch;

	while ((ch = getopt(argc, argv, "f:s:c:r:m:n:SE:e:X:x:k:")) != -1) {
		switch (ch) {
		case 'f': path = optarg; break;
		case 's': solis = optarg; break;
		case 'c': cpu = strtol(optarg, NULL, 10); break;
		case 'r': reps = strtol(optarg, NULL, 10); break;
		case 'm': mib = strtol(optarg, NULL, 10); break;
		case 'n': nev = strtol(optarg, NULL, 10); break;
		case 'S': solarman = false; break;
		case 'E': req = optarg; break;
		case 'e': want = strtol(optarg, NULL, 10); break;
		case 'X': fix460 = optarg; break;
		case 'x': want_fix = strtol(optarg, NULL, 10); break;
		case 'k': k = strtol(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind != argc || reps < 1 || reps > MAX_REPS || mib < 1 ||
	    mib > 4096 || nev < 1 || k < 1 || (req == NULL) != (fix460 == NULL) ||
	    (req != NULL && (want < 1 || want > INT32_MAX || want_fix < 1 ||
	    want_fix > INT32_MAX)))
		usage();

	/* One CPU: the last one allowed, unless told. */
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		fail("sched_getaffinity: %s", strerror(errno));
	if (cpu < 0)
		for (int i = CPU_SETSIZE - 1; i >= 0 && cpu < 0; i--)
			if (CPU_ISSET(i, &set))
				cpu = i;
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fail("sched_setaffinity to CPU %ld: %s", cpu, strerror(errno));

	event_ids_init();
	printf("{\"cpu\": %ld", cpu);
	if (solarman)
		solarman_rows(path, solis, reps, mib, nev);
	if (req != NULL)
		envoy_rows(req, (int)want, fix460, (int)want_fix, reps, mib, k);
	printf("\n}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
