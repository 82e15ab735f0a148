/*
 * fuzz_envoy.c - libFuzzer target for the Envoy tap's decoders: the HTTP
 * parser, zlib inflate, the form field and the report and answer XML.  The
 * same file links into tests/fuzz/replay.c for `make check`.
 *
 * Input: byte 0 is the plan (as in fuzz_solarman.c: low three bits the
 * largest chunk, high five a PRNG seed; also the limits below), the rest is
 * the data, used five ways:
 *
 *  - as a stream of requests, then of responses: fed in random chunks and
 *    whole, the parser must report the same messages and errors, byte for
 *    byte, and keep no body over max_body;
 *  - to envoy_inflate, against zlib run in one go into max + 1 bytes: the
 *    same result, the same *over, the same bytes; and deflated by zlib,
 *    it must come back whole;
 *  - to envoy_form_field, against a plain decoder written from docs/envoy.md;
 *  - as a perf_report: the count returned is the events emitted, the first
 *    is the report and its counts add up, each serialises; nothing is
 *    emitted on failure, and failure says why;
 *  - as a perf_report_response: the ids never overrun the buffer.
 *
 * Every broken invariant is an abort(), which the fuzzer reports.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "event.h"
#include "fuzz.h"
#include "proto/envoy.h"
#include "proto/http.h"

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_envoy: invariant broken: %s\n", what);
	abort();
}

#define require(cond) do { if (!(cond)) fail(#cond); } while (0)

/* ---- HTTP: what a pass reported, as text ---- */

struct record {
	struct http_stream *s;
	char *buf;
	size_t len, cap;
	bool take; /* take the bodies, as the tap does */
};

static void
put(struct record *r, const void *p, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		size_t cap = (r->len + n + 1) * 2;
		char *b = realloc(r->buf, cap);

		require(b != NULL);
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = '\0';
}

static void putf(struct record *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(struct record *r, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	require(w >= 0);
	put(r, line, (size_t)w < sizeof line ? (size_t)w : sizeof line - 1);
}

static void
put_str(struct record *r, const char *s)
{
	require(s != NULL);
	put(r, s, strlen(s) + 1);
}

/* A response with an odd status is taken as the answer to a HEAD. */
static bool
on_head(void *arg, const struct http_msg *m)
{
	struct record *r = arg;

	putf(r, "head %zu\n", m->nheaders);
	return m->response && m->status % 2 == 1;
}

static void
on_message(void *arg, struct http_msg *m)
{
	struct record *r = arg;

	require(m->response == r->s->response);
	require(m->nheaders <= HTTP_HEADERS_MAX);
	put_str(r, m->start_line);
	if (m->response) {
		require(m->status >= 100 && m->status <= 999);
		putf(r, "status %d\n", m->status);
	} else {
		put_str(r, m->method);
		put_str(r, m->target);
	}
	for (size_t i = 0; i < m->nheaders; i++) {
		put_str(r, m->headers[i].name);
		put_str(r, m->headers[i].value);
		require(strchr(m->headers[i].name, ':') == NULL);
	}
	putf(r, "body %llu %d\n", (unsigned long long)m->body_len,
	    m->body_skipped);
	if (m->body_skipped) {
		require(m->body == NULL && m->body_len > r->s->max_body);
	} else {
		require(m->body_len <= r->s->max_body);
		require((m->body == NULL) == (m->body_len == 0));
		if (m->body != NULL)
			put(r, m->body, (size_t)m->body_len);
	}
	if (r->take && m->body != NULL) {
		free(m->body);
		m->body = NULL;
	}
}

static void
on_error(void *arg, enum http_error why)
{
	struct record *r = arg;

	require((unsigned)why < HTTP_ERRORS);
	require(http_error_name(why)[0] != '?');
	putf(r, "error %d at %llu\n", (int)why,
	    (unsigned long long)r->s->error_at);
}

struct rng {
	uint32_t x;
};

static uint32_t
rng_next(struct rng *g)
{
	g->x ^= g->x << 13;
	g->x ^= g->x >> 17;
	g->x ^= g->x << 5;
	return g->x;
}

/* One pass over in[0..n); chunk_max 0: whole. */
static void
http_pass(const uint8_t *in, size_t n, bool response, size_t max_body,
    uint8_t plan, size_t chunk_max, struct record *r)
{
	struct http_stream s;
	struct http_handler h = {on_head, on_message, on_error, r};
	struct rng g = {0x9e3779b9u ^ (uint32_t)(plan >> 3)};
	uint64_t errors = 0;

	http_stream_init(&s, response, max_body);
	r->s = &s;
	for (size_t off = 0; off < n;) {
		size_t c = chunk_max ? 1 + rng_next(&g) % chunk_max : n;

		if (c > n - off)
			c = n - off;
		http_stream_feed(&s, in + off, c, &h);
		off += c;
		require(s.offset == off);
	}
	http_stream_finish(&s, &h);
	for (int k = 0; k < HTTP_ERRORS; k++)
		errors += s.errors[k];
	require(errors <= 1); /* the first error ends the parse */
	require(s.error_at <= n);
	putf(r, "end %llu %llu\n", (unsigned long long)s.messages,
	    (unsigned long long)errors);
	http_stream_free(&s);
	r->s = NULL;
}

static void
check_http(const uint8_t *in, size_t n, bool response, uint8_t plan)
{
	static const size_t chunk_max[8] = {1, 2, 7, 64, 300, 1460, 5000, 70000};
	size_t max_body = 1 + (size_t)plan * 61;
	struct record whole = {0}, cut = {.take = true};

	http_pass(in, n, response, max_body, plan, 0, &whole);
	http_pass(in, n, response, max_body, plan, chunk_max[plan & 7], &cut);
	require(whole.len == cut.len);
	require(memcmp(whole.buf, cut.buf, whole.len) == 0);
	free(whole.buf);
	free(cut.buf);
}

/* ---- inflate ---- */

/* zlib in one go into max + 1 bytes: what envoy_inflate must agree with. */
static int
ref_inflate(const uint8_t *in, size_t n, size_t max, uint8_t *out,
    size_t *len, bool *over)
{
	z_stream z;
	int r;

	memset(&z, 0, sizeof z);
	require(inflateInit(&z) == Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)(max + 1);
	r = inflate(&z, Z_FINISH);
	*len = max + 1 - z.avail_out;
	inflateEnd(&z);
	*over = *len > max;
	return r == Z_STREAM_END && !*over ? 0 : -1;
}

static void
check_inflate(const uint8_t *in, size_t n, uint8_t plan)
{
	size_t max = 1 + (size_t)plan * 37, len, rlen;
	uLongf zn;
	uint8_t *out, *ref = malloc(max + 1), *z;
	bool over, rover;
	int r = envoy_inflate(in, n, max, &out, &len, &over);

	require(ref != NULL);
	require(r == ref_inflate(in, n, max, ref, &rlen, &rover));
	require(over == rover);
	if (r == 0) {
		require(len == rlen && len <= max && out[len] == '\0');
		require(memcmp(out, ref, len) == 0);
		free(out);
	} else {
		require(out == NULL && len == 0);
	}
	free(ref);

	/* Deflated by zlib, it comes back whole; one byte less is over. */
	zn = compressBound((uLong)n);
	z = malloc(zn);
	require(z != NULL);
	require(compress2(z, &zn, in, (uLong)n, plan % 10) == Z_OK);
	require(envoy_inflate(z, zn, n, &out, &len, &over) == 0);
	require(!over && len == n && memcmp(out, in, n) == 0);
	free(out);
	if (n > 0) {
		require(envoy_inflate(z, zn, n - 1, &out, &len, &over) == -1);
		require(over && out == NULL);
	}
	free(z);
}

/* ---- the form field ---- */

static int
hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* docs/envoy.md, section 3: the first field named body; "+" is a space,
 * "%XX" a byte. */
static bool
ref_form_field(const uint8_t *p, size_t n, uint8_t *out, size_t *len)
{
	size_t i = 0;

	for (;;) {
		const uint8_t *amp = memchr(p + i, '&', n - i);
		size_t end = amp ? (size_t)(amp - p) : n;

		if (end - i >= 5 && memcmp(p + i, "body=", 5) == 0) {
			size_t o = 0;

			for (size_t k = i + 5; k < end; k++) {
				if (p[k] == '+') {
					out[o++] = ' ';
				} else if (p[k] == '%' && end - k > 2 &&
				    hex(p[k + 1]) >= 0 && hex(p[k + 2]) >= 0) {
					out[o++] = (uint8_t)(hex(p[k + 1]) << 4 |
					    hex(p[k + 2]));
					k += 2;
				} else {
					out[o++] = p[k];
				}
			}
			*len = o;
			return true;
		}
		if (amp == NULL)
			return false;
		i = end + 1;
	}
}

static void
check_form(const uint8_t *in, size_t n)
{
	uint8_t *out, *ref = malloc(n + 1);
	size_t len, rlen;
	int r = envoy_form_field(in, n, "body", &out, &len);

	require(ref != NULL);
	require((r == 0) == ref_form_field(in, n, ref, &rlen));
	if (r == 0) {
		require(len == rlen && out[len] == '\0');
		require(memcmp(out, ref, len) == 0);
		free(out);
	}
	free(ref);
}

/* ---- the XML ---- */

struct emitted {
	int n;
	json_int_t counted; /* the report's counts, added up */
};

static void
emit(void *arg, json_t *ev, int64_t time_ms)
{
	struct emitted *e = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));
	char *s;

	(void)time_ms;
	require(json_is_object(ev) && type != NULL);
	require((e->n == 0) == (strcmp(type, "envoy_report") == 0));
	if (e->n == 0) {
		static const char *const keys[] = {"count.devices",
		    "count.intervals", "count.readings", "count.events"};

		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			e->counted += json_integer_value(json_object_get(ev,
			    keys[i]));
	} else {
		require(strncmp(type, "envoy_", 6) == 0);
	}
	s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
	require(s != NULL && s[0] == '{');
	free(s);
	json_decref(ev);
	e->n++;
}

static void
check_xml(const uint8_t *in, size_t n, uint8_t plan)
{
	/* The version first, after another parameter, or not there. */
	static const char *const targets[3] = {
		"/emu_reports/performance_report?webcomm_version=4.6.0",
		"/emu_reports/performance_report?a=1&webcomm_version=3.0&b",
		"/emu_reports/performance_report?a=1",
	};
	struct envoy_report_ctx ctx = {
		.meta = {.listener = "fuzz", .conn_id = 42,
		    .peer = "127.0.0.1:40000", .received_ms = 1712596443512},
		.target = targets[plan % 3],
		.spool_name = "2024-04-08T17:14:03-0123abcd",
	};
	struct emitted e = {0, 0};
	char err[160] = "", ids[80];
	size_t idlen = 5 + plan % (sizeof ids - 4);
	int r = envoy_report_events((const char *)in, n, &ctx, emit, &e, err,
	    sizeof err);

	if (r < 0) {
		require(r == -1 && e.n == 0 && err[0] != '\0');
	} else {
		require(r == e.n && r >= 1 && e.counted == r - 1);
	}
	memset(ids, 'z', sizeof ids);
	r = envoy_response_ids((const char *)in, n, ids, idlen);
	require(r >= -1);
	if (r >= 0) {
		require(strlen(ids) < idlen);
		require(r > 0 || ids[0] == '\0');
	}
	for (size_t i = idlen; i < sizeof ids; i++)
		require(ids[i] == 'z');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t plan;
	const uint8_t *in;
	size_t n;

	if (size == 0)
		return 0;
	plan = data[0];
	in = data + 1;
	n = size - 1;
	check_http(in, n, false, plan);
	check_http(in, n, true, plan);
	check_inflate(in, n, plan);
	check_form(in, n);
	check_xml(in, n, plan);
	return 0;
}
