/*
 * check_http.c - unit tests of the HTTP/1.1 stream parser (http.c).
 *
 * Most tests are rows of one table: an input, the stream it is (request or
 * response), and what must come out, written as a log of one line per
 * message ("> start line (method target) {Name: value} body N "bytes"")
 * and at most one error.  An input that fails is given in two parts: the
 * first offending byte is the first byte of the second part, so error_at
 * is the length of the first, and the rest (often a valid message) shows
 * that nothing after an error is parsed.
 *
 * Every row is run whole, byte by byte, cut at every single point and cut
 * at random points, and must give the same log, counters and error
 * offset each time: the parser's promise is that chunking does not
 * matter.  Each piece is fed from a heap copy of exactly its size, so a
 * read past a piece is a memory error under ASan.  Some runs take the
 * bodies away in on_message (the ownership contract) and free them after
 * the stream: ASan and LSan see a double free or a leak.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "suites.h"
#include "proto/http.h"

#define NELEM(a) (sizeof (a) / sizeof (a)[0])
#define BIG_BODY 65536 /* max_body of a row that does not set one */

/* A string with its length, for inputs with NUL bytes in them. */
struct text {
	const char *p;
	size_t n;
};
#define T(s) {s, sizeof(s) - 1}

struct http_case {
	const char *name;
	bool response;
	size_t max_body;     /* 0: BIG_BODY */
	unsigned heads;      /* on_head returns true for these messages (bits) */
	struct text in;      /* up to the first offending byte, if any */
	struct text rest;    /* from it */
	bool fails;
	enum http_error error;
	const char *expect;  /* the messages, one line each */
};

/* ---- running one input ---- */

struct rec {
	FILE *log;
	char *text;
	size_t len;
	bool response;
	bool take;           /* take the bodies away in on_message */
	unsigned heads;
	size_t nhead, nmsg;
	uint8_t **taken;
	size_t ntaken;
};

/* Bytes as C-like text: a blank in a value or a CR shows. */
static void
log_escaped(FILE *f, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r')
			fputs("\\r", f);
		else if (s[i] == '\n')
			fputs("\\n", f);
		else if (s[i] == '"' || s[i] == '\\')
			fprintf(f, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] >= 0x7f)
			fprintf(f, "\\x%02x", s[i]);
		else
			fputc(s[i], f);
	}
}

static void
log_string(FILE *f, const char *s)
{
	log_escaped(f, s, strlen(s));
}

static bool
rec_on_head(void *arg, const struct http_msg *m)
{
	struct rec *r = arg;
	bool no_body = (r->heads >> r->nhead) & 1;

	ck_assert_ptr_nonnull(m->start_line);
	ck_assert_msg(r->nhead == r->nmsg, "on_head twice for one message");
	r->nhead++;
	return no_body;
}

static void
rec_on_message(void *arg, struct http_msg *m)
{
	struct rec *r = arg;
	FILE *f = r->log;

	ck_assert_msg(r->nhead == r->nmsg + 1, "on_message without on_head");
	r->nmsg++;
	ck_assert(m->response == r->response);
	/* The contract of http.h: a body is kept whole or not at all. */
	if (m->body != NULL)
		ck_assert(!m->body_skipped && m->body_len > 0);
	else if (!m->body_skipped)
		ck_assert_uint_eq(m->body_len, 0);

	fputs(m->response ? "< " : "> ", f);
	log_string(f, m->start_line);
	if (m->response) {
		fprintf(f, " (%d)", m->status);
	} else {
		fputs(" (", f);
		log_string(f, m->method);
		fputc(' ', f);
		log_string(f, m->target);
		fputc(')', f);
	}
	for (size_t i = 0; i < m->nheaders; i++) {
		fputs(" {", f);
		log_string(f, m->headers[i].name);
		fputs(": ", f);
		log_string(f, m->headers[i].value);
		fputc('}', f);
	}
	fprintf(f, " body %llu", (unsigned long long)m->body_len);
	if (m->body_skipped) {
		fputs(" skipped", f);
	} else if (m->body != NULL) {
		fputs(" \"", f);
		log_escaped(f, m->body, (size_t)m->body_len);
		fputc('"', f);
	}
	fputc('\n', f);

	if (r->take && m->body != NULL) {
		uint8_t **t = realloc(r->taken, (r->ntaken + 1) * sizeof *t);

		ck_assert_ptr_nonnull(t);
		r->taken = t;
		r->taken[r->ntaken++] = m->body;
		m->body = NULL;
	}
}

static void
rec_on_error(void *arg, enum http_error why)
{
	struct rec *r = arg;

	fprintf(r->log, "error %s\n", http_error_name(why));
}

/* What a run leaves: the log and the stream's counters. */
struct outcome {
	char *log;
	uint64_t offset, error_at, messages;
	uint64_t errors[HTTP_ERRORS];
};

static const uint8_t after_end[] = "GET /after HTTP/1.1\r\n\r\n";

/*
 * Feed in[0..n) cut at cuts[0..ncuts) (increasing, inside the input),
 * each piece from a heap copy of its size, then finish; then feed a valid
 * message, which must be ignored.
 */
static struct outcome
run_cuts(const struct http_case *c, const uint8_t *in, size_t n,
    const size_t *cuts, size_t ncuts, bool take)
{
	struct rec r = {.response = c->response, .take = take,
	    .heads = c->heads};
	struct http_handler h = {rec_on_head, rec_on_message, rec_on_error, &r};
	struct http_stream s;
	struct outcome o;
	size_t from = 0, loglen;

	r.log = open_memstream(&r.text, &r.len);
	ck_assert_ptr_nonnull(r.log);
	http_stream_init(&s, c->response, c->max_body ? c->max_body : BIG_BODY);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		uint8_t *piece = malloc(to - from + 1);

		ck_assert_ptr_nonnull(piece);
		if (to > from)
			memcpy(piece, in + from, to - from);
		http_stream_feed(&s, piece, to - from, &h);
		free(piece);
		from = to;
	}
	http_stream_finish(&s, &h);
	fflush(r.log);
	loglen = r.len;
	http_stream_feed(&s, after_end, sizeof after_end - 1, &h);
	http_stream_finish(&s, &h);
	fflush(r.log);
	ck_assert_msg(r.len == loglen, "%s: parsed after its end", c->name);
	ck_assert_uint_eq(s.offset, n + sizeof after_end - 1);

	o.offset = s.offset - (sizeof after_end - 1);
	o.error_at = s.error_at;
	o.messages = s.messages;
	memcpy(o.errors, s.errors, sizeof o.errors);
	http_stream_free(&s);
	fclose(r.log);
	o.log = r.text;
	for (size_t i = 0; i < r.ntaken; i++)
		free(r.taken[i]);
	free(r.taken);
	return o;
}

static size_t
count_lines(const char *s, const char *prefix)
{
	size_t k = 0;

	for (const char *line = s; *line != '\0'; ) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, prefix, strlen(prefix)) == 0)
			k++;
		line = nl ? nl + 1 : line + strlen(line);
	}
	return k;
}

/* The row's input, whole, into a new buffer. */
static uint8_t *
case_input(const struct http_case *c, size_t *n)
{
	uint8_t *in = malloc(c->in.n + c->rest.n + 1);

	ck_assert_ptr_nonnull(in);
	memcpy(in, c->in.p, c->in.n);
	if (c->rest.n > 0)
		memcpy(in + c->in.n, c->rest.p, c->rest.n);
	*n = c->in.n + c->rest.n;
	return in;
}

/* The log the row expects: its messages, then its error. */
static char *
case_expect(const struct http_case *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	fputs(c->expect ? c->expect : "", f);
	if (c->fails)
		fprintf(f, "error %s\n", http_error_name(c->error));
	fclose(f);
	return text;
}

/* A run must give what the row says, whatever its cuts. */
static void
check_outcome(const struct http_case *c, const char *expect, size_t n,
    const struct outcome *o, const char *how)
{
	uint64_t nerrors = 0;

	ck_assert_msg(strcmp(o->log, expect) == 0,
	    "%s, %s:\n got: %s\nwant: %s", c->name, how, o->log, expect);
	ck_assert_msg(o->messages == count_lines(expect, "<") +
	    count_lines(expect, ">"), "%s, %s: messages", c->name, how);
	ck_assert_uint_eq(o->offset, n);
	for (int e = 0; e < HTTP_ERRORS; e++)
		nerrors += o->errors[e];
	ck_assert_msg(nerrors == (c->fails ? 1 : 0), "%s, %s: %llu errors",
	    c->name, how, (unsigned long long)nerrors);
	if (c->fails) {
		ck_assert_uint_eq(o->errors[c->error], 1);
		ck_assert_msg(o->error_at == c->in.n, "%s, %s: error_at %llu, "
		    "want %zu", c->name, how, (unsigned long long)o->error_at,
		    c->in.n);
	}
}

/* A little LCG: the same "random" cuts on every run. */
static uint32_t
next_rand(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/*
 * Run the row whole, byte by byte, at every single cut (or, for a long
 * input, at cuts near its ends and every few hundred bytes), and at
 * random cuts.
 */
static void
check_case(const struct http_case *c)
{
	size_t n, *cuts, ncuts;
	uint8_t *in = case_input(c, &n);
	char *expect = case_expect(c), how[64];
	struct outcome o;
	uint32_t seed = 1;

	cuts = calloc(n + 1, sizeof *cuts);
	ck_assert_ptr_nonnull(cuts);

	o = run_cuts(c, in, n, NULL, 0, true);
	check_outcome(c, expect, n, &o, "whole");
	free(o.log);

	for (ncuts = 0; ncuts + 1 < n; ncuts++)
		cuts[ncuts] = ncuts + 1;
	o = run_cuts(c, in, n, cuts, ncuts, false);
	check_outcome(c, expect, n, &o, "byte by byte");
	free(o.log);

	for (size_t at = 1; at < n; at++) {
		bool near_error = at + 8 >= c->in.n && at <= c->in.n + 8;

		if (n > 4096 && at > 64 && n - at > 64 && at % 499 != 0 &&
		    !near_error)
			continue;
		snprintf(how, sizeof how, "cut at %zu", at);
		o = run_cuts(c, in, n, &at, 1, at % 2 == 0);
		check_outcome(c, expect, n, &o, how);
		free(o.log);
	}

	for (int k = 0; k < 16 && n > 2; k++) {
		ncuts = 0;
		for (size_t at = 1 + next_rand(&seed) % 7; at < n;
		    at += 1 + next_rand(&seed) % (k < 8 ? 7 : 97))
			cuts[ncuts++] = at;
		snprintf(how, sizeof how, "random cuts %d", k);
		o = run_cuts(c, in, n, cuts, ncuts, k % 2 == 0);
		check_outcome(c, expect, n, &o, how);
		free(o.log);
	}
	free(cuts);
	free(expect);
	free(in);
}

/* ---- the table ---- */

#define A4 "aaaa"
#define A16 A4 A4 A4 A4
#define A64 A16 A16 A16 A16
/* "5;" and these, then CRLF: a chunk-size line of 128 bytes, the most. */
#define EXT124 A64 A16 A16 A16 A4 A4 A4
#define CHUNKED_POST "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CHUNKED_SEEN "> POST /up HTTP/1.1 (POST /up) " \
	"{Transfer-Encoding: chunked}"
#define NEXT_GET "GET /next HTTP/1.1\r\n\r\n"
#define NEXT_SEEN "> GET /next HTTP/1.1 (GET /next) body 0\n"
#define NEXT_OK "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define NEXT_OK_SEEN "< HTTP/1.1 200 OK (200) {Content-Length: 2} body 2 \"ok\"\n"

static const struct http_case cases[] = {
	/* Every kind of message. */
	{.name = "request with Content-Length",
	 .in = T("POST /emu_reports/performance_report?webcomm_version=3.0 "
	     "HTTP/1.1\r\nHost: reports.enphaseenergy.com:443\r\n"
	     "Content-Type: application/x-deflate\r\nContent-Length: 5\r\n"
	     "Connection: close\r\n\r\nhello"),
	 .expect = "> POST /emu_reports/performance_report?webcomm_version=3.0 "
	     "HTTP/1.1 (POST /emu_reports/performance_report?webcomm_version="
	     "3.0) {Host: reports.enphaseenergy.com:443} {Content-Type: "
	     "application/x-deflate} {Content-Length: 5} {Connection: close} "
	     "body 5 \"hello\"\n"},
	{.name = "request without a body",
	 .in = T("GET /status HTTP/1.1\r\nHost: a\r\n\r\n"),
	 .expect = "> GET /status HTTP/1.1 (GET /status) {Host: a} body 0\n"},
	{.name = "chunked with extensions and trailers",
	 .in = T(CHUNKED_POST "5;name=val\r\nhello\r\n6 ; x\r\n world\r\n"
	     "A\r\n0123456789\r\n0;last\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n"
	     NEXT_GET),
	 .expect = CHUNKED_SEEN " body 21 \"hello world0123456789\"\n"
	     NEXT_SEEN},
	{.name = "chunk sizes in any case, with zeros, LF alone after data",
	 .in = T("POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	     "000a\r\n0123456789\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	     "0\r\n\r\n"),
	 .expect = "> POST /c HTTP/1.1 (POST /c) {Transfer-Encoding: gzip, "
	     "chunked} body 36 \"0123456789abcdefghijklmnopqrstuvwxyz\"\n"},
	{.name = "a chunk-size line of 128 bytes",
	 .in = T(CHUNKED_POST "5;" EXT124 "\r\nhello\r\n0\r\n\r\n"),
	 .expect = CHUNKED_SEEN " body 5 \"hello\"\n"},
	{.name = "an empty chunked body",
	 .in = T(CHUNKED_POST "0\r\n\r\n" NEXT_GET),
	 .expect = CHUNKED_SEEN " body 0\n" NEXT_SEEN},
	{.name = "three requests on one connection",
	 .in = T("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	     "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
	     "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "2\r\nok\r\n0\r\n\r\n"),
	 .expect = "> GET /a HTTP/1.1 (GET /a) {Host: h} body 0\n"
	     "> POST /b HTTP/1.1 (POST /b) {Content-Length: 3} body 3 \"xyz\"\n"
	     "> PUT /c HTTP/1.1 (PUT /c) {Transfer-Encoding: chunked} "
	     "body 2 \"ok\"\n"},
	{.name = "Expect: 100-continue, the request",
	 .in = T("POST /r HTTP/1.1\r\nExpect: 100-continue\r\n"
	     "Content-Length: 4\r\n\r\ndata"),
	 .expect = "> POST /r HTTP/1.1 (POST /r) {Expect: 100-continue} "
	     "{Content-Length: 4} body 4 \"data\"\n"},
	{.name = "Expect: 100-continue, the answers", .response = true,
	 .in = T("HTTP/1.1 100 Continue\r\n\r\n" NEXT_OK),
	 .expect = "< HTTP/1.1 100 Continue (100) body 0\n" NEXT_OK_SEEN},
	{.name = "204 and 304 have no body whatever they say", .response = true,
	 .in = T("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
	     "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
	     NEXT_OK),
	 .expect = "< HTTP/1.1 204 No Content (204) {Content-Length: 10} body 0\n"
	     "< HTTP/1.1 304 Not Modified (304) {Transfer-Encoding: chunked} "
	     "body 0\n" NEXT_OK_SEEN},
	{.name = "a response body to the end of the stream", .response = true,
	 .in = T("HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n"
	     "<a>all of it</a>\r\n"),
	 .expect = "< HTTP/1.0 200 OK (200) {Content-Type: text/xml} body 18 "
	     "\"<a>all of it</a>\\r\\n\"\n"},
	{.name = "an empty response body to the end", .response = true,
	 .in = T("HTTP/1.1 200\r\n\r\n"),
	 .expect = "< HTTP/1.1 200 (200) body 0\n"},
	{.name = "a response not chunked last: to the end", .response = true,
	 .in = T("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz"),
	 .expect = "< HTTP/1.1 200 OK (200) {Transfer-Encoding: gzip} "
	     "body 3 \"zzz\"\n"},
	{.name = "Content-Length: 0", .response = true,
	 .in = T("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" NEXT_OK),
	 .expect = "< HTTP/1.1 200 OK (200) {Content-Length: 0} body 0\n"
	     NEXT_OK_SEEN},
	{.name = "the answer to a HEAD", .response = true, .heads = 1,
	 .in = T("HTTP/1.1 200 OK\r\nContent-Length: 545\r\n\r\n" NEXT_OK),
	 .expect = "< HTTP/1.1 200 OK (200) {Content-Length: 545} body 0\n"
	     NEXT_OK_SEEN},
	{.name = "on_head does not end a request", .heads = 1,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
	 .expect = "> POST / HTTP/1.1 (POST /) {Content-Length: 2} "
	     "body 2 \"hi\"\n"},
	{.name = "101: what follows is not HTTP", .response = true,
	 .in = T("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	     "Connection: Upgrade\r\n\r\n\x81\x05hello\x00garbage\r\n\r\n"
	     NEXT_OK),
	 .expect = "< HTTP/1.1 101 Switching Protocols (101) {Upgrade: "
	     "websocket} {Connection: Upgrade} body 0\n"},
	{.name = "CONNECT: what follows is not HTTP",
	 .in = T("CONNECT reports.enphaseenergy.com:443 HTTP/1.1\r\n"
	     "Host: reports.enphaseenergy.com:443\r\n\r\n"
	     "\x16\x03\x01\x02\x00\x01\x00\r\n\r\n" NEXT_GET),
	 .expect = "> CONNECT reports.enphaseenergy.com:443 HTTP/1.1 (CONNECT "
	     "reports.enphaseenergy.com:443) {Host: "
	     "reports.enphaseenergy.com:443} body 0\n"},
	{.name = "header names in any case, values trimmed",
	 .in = T("POST /t HTTP/1.1\r\ncontent-LENGTH:3\r\nX-Blank:   \t \r\n"
	     "X-Trim: \t a \t b \t\r\nX-Empty:\r\n\r\nabc"),
	 .expect = "> POST /t HTTP/1.1 (POST /t) {content-LENGTH: 3} "
	     "{X-Blank: } {X-Trim: a \\x09 b} {X-Empty: } body 3 \"abc\"\n"},
	{.name = "Transfer-Encoding in any case",
	 .in = T("POST /u HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\n\r\n"
	     "1\r\nz\r\n0\r\n\r\n"),
	 .expect = "> POST /u HTTP/1.1 (POST /u) {transfer-encoding: CHUNKED} "
	     "body 1 \"z\"\n"},
	{.name = "bare LF line ends and empty lines before a request",
	 .in = T("\r\n\nGET /lf HTTP/1.1\nHost: x\n\n\r\n" NEXT_GET),
	 .expect = "> GET /lf HTTP/1.1 (GET /lf) {Host: x} body 0\n"
	     NEXT_SEEN},
	{.name = "chunked wins over Content-Length",
	 .in = T("POST /both HTTP/1.1\r\nContent-Length: 100\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
	 .expect = "> POST /both HTTP/1.1 (POST /both) {Content-Length: 100} "
	     "{Transfer-Encoding: chunked} body 3 \"abc\"\n"},
	{.name = "Content-Length twice, the same",
	 .in = T("POST /cl HTTP/1.1\r\nContent-Length: 3\r\n"
	     "Content-Length: 3 , 3\r\n\r\nabc" NEXT_GET),
	 .expect = "> POST /cl HTTP/1.1 (POST /cl) {Content-Length: 3} "
	     "{Content-Length: 3 , 3} body 3 \"abc\"\n" NEXT_SEEN},

	/* max_body */
	{.name = "Content-Length over max_body, then the next",
	 .max_body = 4,
	 .in = T("POST /big HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
	     "POST /ok HTTP/1.1\r\nContent-Length: 4\r\n\r\nfour"),
	 .expect = "> POST /big HTTP/1.1 (POST /big) {Content-Length: 5} "
	     "body 5 skipped\n> POST /ok HTTP/1.1 (POST /ok) "
	     "{Content-Length: 4} body 4 \"four\"\n"},
	{.name = "chunks over max_body, then the next", .max_body = 4,
	 .in = T(CHUNKED_POST "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n" NEXT_GET),
	 .expect = CHUNKED_SEEN " body 6 skipped\n" NEXT_SEEN},
	{.name = "a body to the end over max_body", .response = true,
	 .max_body = 4,
	 .in = T("HTTP/1.1 200 OK\r\n\r\n0123456789"),
	 .expect = "< HTTP/1.1 200 OK (200) body 10 skipped\n"},

	/* Errors: .in ends just before the first offending byte. */
	{.name = "not a request line", .fails = true, .error = HTTP_BAD_START,
	 .in = T("HELLO WORLD\r"), .rest = T("\n" NEXT_GET)},
	{.name = "a status code of two digits", .response = true, .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("HTTP/1.1 20 OK\r"), .rest = T("\n" NEXT_OK)},
	{.name = "a status code of four digits", .response = true,
	 .fails = true, .error = HTTP_BAD_START,
	 .in = T("HTTP/1.1 2000\r"), .rest = T("\n" NEXT_OK)},
	{.name = "a bad version", .response = true, .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("HTTP/1.x 200 OK\r"), .rest = T("\n" NEXT_OK)},
	{.name = "a control character in the target", .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("GET /a\x01" "b HTTP/1.1\r"), .rest = T("\n" NEXT_GET)},
	{.name = "an empty target", .fails = true, .error = HTTP_BAD_START,
	 .in = T("GET  / HTTP/1.1\r"), .rest = T("\n" NEXT_GET)},
	{.name = "a word after the version", .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("GET / HTTP/1.1 x\r"), .rest = T("\n" NEXT_GET)},
	{.name = "a TLS ClientHello: its NUL", .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("\x16\x03\x01\x02"), .rest = T("\x00\x01\x00\x01\xfc\x03\x03\n"
	     NEXT_GET)},
	{.name = "NUL in the start line", .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T("GET / HT"), .rest = T("\0TP/1.1\r\n\r\n" NEXT_GET)},
	{.name = "NUL in a header", .fails = true, .error = HTTP_BAD_HEADER,
	 .in = T("GET / HTTP/1.1\r\nHost: a"), .rest = T("\0b\r\n\r\n" NEXT_GET)},
	{.name = "a header without a colon: at its line end",
	 .fails = true, .error = HTTP_BAD_HEADER,
	 .in = T("GET / HTTP/1.1\r\nNoColonHere\r"),
	 .rest = T("\nHost: a\r\n\r\n" NEXT_GET)},
	{.name = "a blank before the colon", .fails = true,
	 .error = HTTP_BAD_HEADER,
	 .in = T("GET / HTTP/1.1\r\nHost : a\r"), .rest = T("\n\r\n" NEXT_GET)},
	{.name = "obsolete line folding", .fails = true,
	 .error = HTTP_BAD_HEADER,
	 .in = T("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r"),
	 .rest = T("\n\r\n" NEXT_GET)},
	{.name = "an empty header name", .response = true, .fails = true,
	 .error = HTTP_BAD_HEADER,
	 .in = T("HTTP/1.1 200 OK\r\n: x\r"), .rest = T("\n\r\n" NEXT_OK)},
	{.name = "Content-Length not a number", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r"),
	 .rest = T("\nhello" NEXT_GET)},
	{.name = "Content-Length negative", .response = true, .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r"),
	 .rest = T("\n" NEXT_OK)},
	{.name = "Content-Length empty", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length:\r\n\r"),
	 .rest = T("\n" NEXT_GET)},
	{.name = "Content-Length over 64 bits", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n"
	     "\r"), .rest = T("\n" NEXT_GET)},
	{.name = "two Content-Lengths that differ", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
	     "\r"), .rest = T("\nhello!" NEXT_GET)},
	{.name = "a Content-Length list that differs", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r"),
	 .rest = T("\nhello!" NEXT_GET)},
	{.name = "a Content-Length list ending in a comma", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r"),
	 .rest = T("\nhello" NEXT_GET)},
	{.name = "a request not chunked last", .fails = true,
	 .error = HTTP_BAD_LENGTH,
	 .in = T("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r"),
	 .rest = T("\n" NEXT_GET)},
	{.name = "a chunk size not hex", .fails = true, .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "zz\r"), .rest = T("\nhello\r\n0\r\n\r\n")},
	{.name = "a chunk size 0x5", .fails = true, .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "0x5\r"), .rest = T("\nhello\r\n0\r\n\r\n")},
	{.name = "an empty chunk-size line", .fails = true,
	 .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "3\r\nabc\r\n\r"), .rest = T("\n0\r\n\r\n")},
	{.name = "a chunk size over 64 bits", .fails = true,
	 .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "10000000000000000\r"),
	 .rest = T("\nhello\r\n0\r\n\r\n")},
	{.name = "a chunk-size line of 129 bytes", .fails = true,
	 .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "5;" EXT124 "aa"),
	 .rest = T("a\r\nhello\r\n0\r\n\r\n" NEXT_GET)},
	{.name = "no CRLF after chunk data", .fails = true,
	 .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "5\r\nhello"), .rest = T("X\r\n0\r\n\r\n")},
	{.name = "CR but no LF after chunk data", .fails = true,
	 .error = HTTP_BAD_CHUNK,
	 .in = T(CHUNKED_POST "5\r\nhello\r"), .rest = T("\r\n0\r\n\r\n")},
	{.name = "an error after a good message", .fails = true,
	 .error = HTTP_BAD_START,
	 .in = T(NEXT_GET "\x80\x81\r"), .rest = T("\n" NEXT_GET),
	 .expect = NEXT_SEEN},

	/* The stream ends inside a message: error_at is its length. */
	{.name = "truncated in the start line", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T("GET / HT")},
	{.name = "truncated in the head", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T("GET / HTTP/1.1\r\nHost: a\r\n")},
	{.name = "truncated in a body", .fails = true, .error = HTTP_TRUNCATED,
	 .in = T("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel")},
	{.name = "truncated in a response body", .response = true,
	 .fails = true, .error = HTTP_TRUNCATED,
	 .in = T(NEXT_OK "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n1234"),
	 .expect = NEXT_OK_SEEN},
	{.name = "truncated in a chunk-size line", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T(CHUNKED_POST "5")},
	{.name = "truncated in chunk data", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T(CHUNKED_POST "5\r\nhel")},
	{.name = "truncated before the CRLF after chunk data", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T(CHUNKED_POST "5\r\nhello\r")},
	{.name = "truncated in the trailer", .fails = true,
	 .error = HTTP_TRUNCATED,
	 .in = T(CHUNKED_POST "0\r\nTrailer-A: 1\r\n")},
	{.name = "truncated after a good message", .fails = true,
	 .error = HTTP_TRUNCATED, .in = T(NEXT_GET "GET"),
	 .expect = NEXT_SEEN},
};

START_TEST(test_case)
{
	check_case(&cases[_i]);
}
END_TEST

/* ---- the limits, in inputs built here ---- */

enum { GEN_HEAD_EXACT, GEN_HEAD_OVER, GEN_HEAD_EXACT_AFTER_BLANK,
	GEN_HEAD_OVER_AFTER_BLANK, GEN_HEADERS_MAX, GEN_HEADERS_OVER,
	GEN_TRAILER_EXACT, GEN_TRAILER_OVER, GEN_CASES };

static void
put_fill(FILE *f, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fputc(c, f);
}

/*
 * Inputs around HTTP_HEAD_MAX (the head, from its start line to its empty
 * line; and a trailer) and HTTP_HEADERS_MAX.
 */
START_TEST(test_limits)
{
	struct http_case c = {.name = "limits"};
	char *in = NULL, *expect = NULL, name[64];
	size_t n = 0, elen = 0, bad = SIZE_MAX;
	FILE *f = open_memstream(&in, &n), *e = open_memstream(&expect, &elen);
	/* "GET / HTTP/1.1\r\nX: " + value + "\r\n\r\n" */
	size_t value = HTTP_HEAD_MAX - 16 - 3 - 4;

	ck_assert(f != NULL && e != NULL);
	switch (_i) {
	case GEN_HEAD_EXACT_AFTER_BLANK:
	case GEN_HEAD_OVER_AFTER_BLANK:
		fputs("\r\n\r\n", f);
		/* FALLTHROUGH */
	case GEN_HEAD_EXACT:
	case GEN_HEAD_OVER: {
		bool over = _i == GEN_HEAD_OVER || _i == GEN_HEAD_OVER_AFTER_BLANK;

		fflush(f);
		if (over)
			bad = n + HTTP_HEAD_MAX; /* the head's last LF */
		fputs("GET / HTTP/1.1\r\nX: ", f);
		put_fill(f, 'v', value + over);
		fputs("\r\n\r\n" NEXT_GET, f);
		fputs("> GET / HTTP/1.1 (GET /) {X: ", e);
		put_fill(e, 'v', value);
		fputs("} body 0\n" NEXT_SEEN, e);
		c.error = HTTP_HEAD_TOO_BIG;
		break;
	}
	case GEN_HEADERS_MAX:
	case GEN_HEADERS_OVER: {
		int k = HTTP_HEADERS_MAX + (_i == GEN_HEADERS_OVER);

		fputs("GET / HTTP/1.1\r\n", f);
		fputs("> GET / HTTP/1.1 (GET /)", e);
		for (int i = 0; i < k; i++) {
			fprintf(f, "H%d: %d\r", i, i);
			fflush(f);
			if (i == HTTP_HEADERS_MAX)
				bad = n; /* the LF of the line too many */
			fputs("\n", f);
			fprintf(e, " {H%d: %d}", i, i);
		}
		fputs("\r\n" NEXT_GET, f);
		fputs(" body 0\n" NEXT_SEEN, e);
		c.error = HTTP_HEAD_TOO_BIG;
		break;
	}
	case GEN_TRAILER_EXACT:
	case GEN_TRAILER_OVER: {
		bool over = _i == GEN_TRAILER_OVER;
		/* "T: " + value + "\r\n\r\n" */
		size_t tv = HTTP_HEAD_MAX - 3 - 4;

		fputs(CHUNKED_POST "2\r\nhi\r\n0\r\n", f);
		fflush(f);
		if (over)
			bad = n + HTTP_HEAD_MAX; /* the trailer's last LF */
		fputs("T: ", f);
		put_fill(f, 't', tv + over);
		fputs("\r\n\r\n" NEXT_GET, f);
		fputs(CHUNKED_SEEN " body 2 \"hi\"\n" NEXT_SEEN, e);
		c.error = HTTP_HEAD_TOO_BIG;
		break;
	}
	}
	fclose(f);
	fclose(e);
	snprintf(name, sizeof name, "limits %d", _i);
	c.name = name;
	c.fails = bad != SIZE_MAX;
	c.in.p = in;
	c.in.n = c.fails ? bad : n;
	c.rest.p = in + c.in.n;
	c.rest.n = n - c.in.n;
	c.expect = c.fails ? "" : expect;
	check_case(&c);
	free(in);
	free(expect);
}
END_TEST

/* ---- the rest of the API ---- */

START_TEST(test_error_names)
{
	static const struct {
		enum http_error e;
		const char *name;
	} names[] = {
		{HTTP_BAD_START, "bad start line"},
		{HTTP_BAD_HEADER, "bad header line"},
		{HTTP_HEAD_TOO_BIG, "head too big"},
		{HTTP_BAD_LENGTH, "bad Content-Length"},
		{HTTP_BAD_CHUNK, "bad chunk"},
		{HTTP_TRUNCATED, "truncated"},
		{HTTP_ERRORS, "?"},
		{(enum http_error)1000, "?"},
	};

	ck_assert_int_eq(HTTP_ERRORS, 6); /* a new error needs a row here */
	for (size_t i = 0; i < NELEM(names); i++)
		ck_assert_str_eq(http_error_name(names[i].e), names[i].name);
}
END_TEST

struct lookup {
	char *found[6];
	int calls;
};

static void
lookup_on_message(void *arg, struct http_msg *m)
{
	static const char *const asked[] = {
		"host", "HOST", "x-dup", "Content-Length", "Missing", "Hos"
	};
	struct lookup *l = arg;

	l->calls++;
	for (size_t i = 0; i < NELEM(asked); i++) {
		const char *v = http_header(m, asked[i]);

		l->found[i] = v != NULL ? strdup(v) : NULL;
	}
}

/* http_header: any case, the first of two, NULL when missing. */
START_TEST(test_header_lookup)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost:  a.example \r\n"
	    "X-Dup: first\r\nx-DUP: second\r\ncontent-length: 0\r\n\r\n";
	static const char *const want[] = {
		"a.example", "a.example", "first", "0", NULL, NULL
	};
	struct lookup l = {.calls = 0};
	struct http_handler h = {.on_message = lookup_on_message, .arg = &l};
	struct http_stream s;

	http_stream_init(&s, false, 1024);
	http_stream_feed(&s, (const uint8_t *)in, sizeof in - 1, &h);
	http_stream_finish(&s, &h);
	http_stream_free(&s);
	ck_assert_int_eq(l.calls, 1);
	for (size_t i = 0; i < NELEM(want); i++) {
		if (want[i] == NULL)
			ck_assert_ptr_null(l.found[i]);
		else
			ck_assert_str_eq(l.found[i], want[i]);
		free(l.found[i]);
	}
}
END_TEST

struct keeper {
	uint8_t *bodies[4];
	uint64_t lens[4];
	int n;
};

/* Takes every other body, as a tap that queues it would. */
static void
keeper_on_message(void *arg, struct http_msg *m)
{
	struct keeper *k = arg;

	ck_assert_int_lt(k->n, 4);
	k->lens[k->n] = m->body_len;
	if (k->n % 2 == 0) {
		k->bodies[k->n] = m->body;
		m->body = NULL;
	}
	k->n++;
}

/*
 * The ownership contract: a body taken in on_message is the handler's to
 * free, after the stream is gone; one left is the parser's.  ASan and
 * LSan say if either is freed twice or not at all, also for a body being
 * read when the stream is freed.
 */
START_TEST(test_body_ownership)
{
	static const char in[] = "POST /1 HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
	    "first" "POST /2 HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecond"
	    CHUNKED_POST "5\r\nthird\r\n0\r\n\r\n"
	    "POST /4 HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf";
	struct keeper k = {.n = 0};
	struct http_handler h = {.on_message = keeper_on_message, .arg = &k};
	struct http_stream s;

	http_stream_init(&s, false, 1024);
	http_stream_feed(&s, (const uint8_t *)in, sizeof in - 1, &h);
	ck_assert_int_eq(k.n, 3);
	http_stream_free(&s);
	ck_assert_uint_eq(s.errors[HTTP_TRUNCATED], 0);
	ck_assert_uint_eq(k.lens[0], 5);
	ck_assert_uint_eq(k.lens[1], 6);
	ck_assert_uint_eq(k.lens[2], 5);
	ck_assert_ptr_nonnull(k.bodies[0]);
	ck_assert_ptr_nonnull(k.bodies[2]);
	ck_assert(memcmp(k.bodies[0], "first", 5) == 0);
	ck_assert(memcmp(k.bodies[2], "third", 5) == 0);
	free(k.bodies[0]);
	free(k.bodies[2]);
}
END_TEST

/* on_head and on_error are optional; the counters still count. */
START_TEST(test_optional_callbacks)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
	    "ok" "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
	struct keeper k = {.n = 0};
	struct http_handler h = {.on_message = keeper_on_message, .arg = &k};
	struct http_stream s;

	http_stream_init(&s, true, 1024);
	http_stream_feed(&s, (const uint8_t *)in, sizeof in - 1, &h);
	http_stream_finish(&s, &h);
	ck_assert_int_eq(k.n, 1);
	ck_assert_uint_eq(s.messages, 1);
	ck_assert_uint_eq(s.errors[HTTP_TRUNCATED], 1);
	ck_assert_uint_eq(s.error_at, sizeof in - 1);
	http_stream_free(&s);
	free(k.bodies[0]);
}
END_TEST

/* Nothing fed, or only empty lines: no message, and no error at the end. */
START_TEST(test_empty_stream)
{
	struct keeper k = {.n = 0};
	struct http_handler h = {.on_message = keeper_on_message, .arg = &k};
	struct http_stream s;

	for (int blank = 0; blank < 2; blank++) {
		http_stream_init(&s, blank == 1, 1024);
		if (blank)
			http_stream_feed(&s, (const uint8_t *)"\r\n\n", 3, &h);
		http_stream_finish(&s, &h);
		ck_assert_int_eq(k.n, 0);
		for (int e = 0; e < HTTP_ERRORS; e++)
			ck_assert_uint_eq(s.errors[e], 0);
		ck_assert_uint_eq(s.offset, blank ? 3 : 0);
		http_stream_free(&s);
	}
}
END_TEST

Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("messages");

	/* Every cut of every row, under a sanitizer on a shared machine. */
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_case, 0, NELEM(cases));
	tcase_add_loop_test(tc, test_limits, 0, GEN_CASES);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_error_names);
	tcase_add_test(tc, test_header_lookup);
	tcase_add_test(tc, test_body_ownership);
	tcase_add_test(tc, test_optional_callbacks);
	tcase_add_test(tc, test_empty_stream);
	suite_add_tcase(s, tc);
	return s;
}
