/*
 * decode_cli.c - offline decoding for captures and tests.
 *
 * The input is hex when its first 4 KiB are printable text made of hex
 * digits, blanks and '#' comments (the fixture file's format); otherwise it
 * is raw bytes, as capture_dir writes them.  Either way all of it goes
 * through one stream decoder, so a frame may span lines or reads, and
 * rejected candidates are reported on stderr.
 */
#include "decode_cli.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "proto/solarman.h"
#include "proto/solarman_event.h"

/* Where the bytes of the last lines begin in the stream, so that a reject
 * names the line its candidate starts on, not the line being fed when the
 * decoder gave up.  A candidate starts at most SOLARMAN_FRAME_MAX bytes
 * back, and every line kept holds at least one byte. */
#define LINES_KEPT (SOLARMAN_FRAME_MAX + 1)

struct decode_ctx {
	FILE *out;
	const char *name;
	struct event_meta meta;
	unsigned long line;
	int status;
	const struct solarman_stream *st;
	struct {
		uint64_t at;
		unsigned long line;
	} starts[LINES_KEPT];
	size_t nstarts; /* ever recorded; the ring holds the last LINES_KEPT */
};

/* The line of the hex input holding stream offset at. */
static unsigned long
line_of(const struct decode_ctx *d, uint64_t at)
{
	size_t n = d->nstarts < LINES_KEPT ? d->nstarts : LINES_KEPT;

	for (size_t k = 1; k <= n; k++) {
		size_t i = (d->nstarts - k) % LINES_KEPT;
		if (d->starts[i].at <= at)
			return d->starts[i].line;
	}
	return d->line;
}

static void
on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct decode_ctx *d = arg;
	int64_t t;
	json_t *ev;
	char *s;

	/* Replies come down from the cloud; all else goes up. */
	d->meta.direction = len > 4 && solarman_is_reply(frame[4]) ? 1 : 0;
	d->meta.received_ms = clock_wall_ms();
	event_id_new(&d->meta);
	ev = solarman_event(frame, len, &d->meta, &t);
	s = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	if (s == NULL || fprintf(d->out, "%s\n", s) < 0)
		d->status = 1;
	free(s);
	json_decref(ev);
}

static void
on_reject(void *arg, enum solarman_reject why)
{
	struct decode_ctx *d = arg;

	if (d->nstarts > 0) /* hex lines */
		log_warnx("%s:%lu: frame rejected: %s", d->name,
		    line_of(d, d->st->reject_at), solarman_reject_name(why));
	else
		log_warnx("%s: frame rejected: %s", d->name,
		    solarman_reject_name(why));
}

/* Text is hex input, typos included: a bad line then gets its file:line
 * warning instead of the whole file silently becoming "binary".  A capture
 * starts with 0xA5 (or TLS's 0x16), never with text. */
static bool
looks_like_hex(const uint8_t *p, size_t n)
{
	bool comment = false;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			comment = false;
		else if (p[i] == '#')
			comment = true;
		else if (!comment && (p[i] < 0x20 || p[i] > 0x7e) && !isspace(p[i]))
			return false;
		else if (comment && p[i] < 0x20 && p[i] != '\t' && p[i] != '\r')
			return false;
	}
	return true;
}

static int
hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Hex text, in chunks cut anywhere; a line's bytes go to the decoder at
 * its end. */
struct hex_state {
	bool comment, bad, started; /* started: some of the line was fed */
	int hi;            /* pending high nibble, or -1 */
	size_t n;
	uint8_t bytes[SOLARMAN_FRAME_MAX];
};

/* Feed bytes of the current line (d->line + 1), noting where it starts. */
static void
hex_pass(struct hex_state *x, struct decode_ctx *d,
    struct solarman_stream *st, const struct solarman_handler *h)
{
	if (x->n == 0)
		return;
	if (!x->started) {
		size_t i = d->nstarts++ % LINES_KEPT;
		d->starts[i].at = st->stats.bytes;
		d->starts[i].line = d->line + 1;
		x->started = true;
	}
	solarman_stream_feed(st, x->bytes, x->n, h);
	x->n = 0;
}

static void
hex_line_end(struct hex_state *x, struct decode_ctx *d,
    struct solarman_stream *st, const struct solarman_handler *h)
{
	if (x->bad || x->hi >= 0) {
		log_warnx("%s:%lu: not a line of hex bytes", d->name, d->line + 1);
		d->status = 1;
	} else {
		hex_pass(x, d, st, h);
	}
	d->line++;
	x->comment = x->bad = x->started = false;
	x->hi = -1;
	x->n = 0;
}

static void
hex_feed(struct hex_state *x, const uint8_t *p, size_t n, struct decode_ctx *d,
    struct solarman_stream *st, const struct solarman_handler *h)
{
	for (size_t i = 0; i < n; i++) {
		int c = p[i];

		if (c == '\n') {
			hex_line_end(x, d, st, h);
		} else if (x->comment || isspace(c)) {
			continue;
		} else if (c == '#') {
			x->comment = true;
		} else if (!isxdigit(c)) {
			x->bad = true;
		} else if (x->hi < 0) {
			x->hi = hexval(c);
		} else {
			if (x->n == sizeof x->bytes) /* a long line: pass it on */
				hex_pass(x, d, st, h);
			x->bytes[x->n++] = (uint8_t)(x->hi << 4 | hexval(c));
			x->hi = -1;
		}
	}
}

int
decode_run(FILE *in, const char *name, FILE *out)
{
	static struct solarman_stream st;
	static struct hex_state x;
	static uint8_t buf[1 << 16];
	static struct decode_ctx d;
	struct solarman_handler h = {on_frame, on_reject, &d};
	size_t n = fread(buf, 1, 4096, in);
	bool hex = looks_like_hex(buf, n);

	memset(&d, 0, sizeof d);
	d.out = out;
	d.name = name;
	d.meta.listener = "decode";
	d.meta.peer = "-";
	d.st = &st;
	event_ids_init();
	solarman_stream_init(&st);
	x.hi = -1;
	do {
		if (hex)
			hex_feed(&x, buf, n, &d, &st, &h);
		else
			solarman_stream_feed(&st, buf, n, &h);
	} while ((n = fread(buf, 1, sizeof buf, in)) > 0);
	if (hex && (x.n > 0 || x.hi >= 0 || x.bad))
		hex_line_end(&x, &d, &st, &h); /* a last line without '\n' */
	if (ferror(in)) {
		log_error("%s", name);
		d.status = 1;
	}
	solarman_stream_finish(&st, &h);
	if (fflush(out) != 0)
		d.status = 1;
	log_info("%s: %llu frames, %llu bytes skipped", name,
	    (unsigned long long)st.stats.frames,
	    (unsigned long long)st.stats.skipped);
	solarman_stream_free(&st);
	return d.status;
}
