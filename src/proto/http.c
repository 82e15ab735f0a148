/*
 * http.c - HTTP/1.1 messages out of one direction of a stream (RFC 9112).
 *
 * A state machine over the bytes: the head is gathered whole (it is small
 * and bounded), then the body is framed by Content-Length, by chunks, or
 * by the end of the stream, and kept up to max_body.  Anything that cannot
 * be framed stops the parser for good: after a framing error nobody knows
 * where the next message starts, and the relay does not need us to.
 */
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const error_names[HTTP_ERRORS] = {
	[HTTP_BAD_START] = "bad start line",
	[HTTP_BAD_HEADER] = "bad header line",
	[HTTP_HEAD_TOO_BIG] = "head too big",
	[HTTP_BAD_LENGTH] = "bad Content-Length",
	[HTTP_BAD_CHUNK] = "bad chunk",
	[HTTP_TRUNCATED] = "truncated",
};

const char *
http_error_name(enum http_error e)
{
	return e < HTTP_ERRORS ? error_names[e] : "?";
}

void
http_stream_init(struct http_stream *s, bool response, size_t max_body)
{
	memset(s, 0, sizeof *s);
	s->response = response;
	s->max_body = max_body;
	s->state = HTTP_HEAD;
}

static void
message_reset(struct http_stream *s)
{
	free(s->msg.body);
	free(s->start);
	s->start = NULL;
	memset(&s->msg, 0, sizeof s->msg);
	s->head_len = s->line_start = s->line_len = 0;
	s->trailer_len = 0;
	s->body_cap = 0;
	s->state = HTTP_HEAD;
}

void
http_stream_free(struct http_stream *s)
{
	message_reset(s);
	free(s->head);
	s->head = NULL;
	s->state = HTTP_DONE;
}

/* Stop for good; at is the offset of the offending byte in this step. */
static void
fail(struct http_stream *s, enum http_error why, size_t at,
    const struct http_handler *h)
{
	s->errors[why]++;
	s->error_at = s->offset + at;
	message_reset(s);
	s->state = HTTP_DONE;
	if (h->on_error != NULL)
		h->on_error(h->arg, why);
}

static void
message_done(struct http_stream *s, const struct http_handler *h)
{
	bool tunnel = s->response ? s->msg.status == 101 :
	    strcasecmp(s->msg.method, "CONNECT") == 0;

	s->messages++;
	h->on_message(h->arg, &s->msg);
	message_reset(s);
	if (tunnel)
		s->state = HTTP_DONE; /* what follows is not HTTP */
}

const char *
http_header(const struct http_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nheaders; i++)
		if (strcasecmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool
is_token(const char *p)
{
	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++)
		if (!is_tchar((unsigned char)*p))
			return false;
	return true;
}

/* "HTTP/1.1" */
static bool
is_version(const char *p)
{
	return strncmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
	    p[6] == '.' && p[7] >= '0' && p[7] <= '9' && p[8] == '\0';
}

/*
 * The start line, n bytes at line, checked as soon as it is complete (so
 * that a stream that is not HTTP is named by its first line) and kept in
 * s->start, cut into words.
 */
static bool
parse_start(struct http_stream *s, const char *line, size_t n)
{
	char *sp1, *sp2;

	if ((s->start = strndup(line, n)) == NULL)
		return false;
	sp1 = strchr(s->start, ' ');
	if (sp1 == NULL)
		return false;
	*sp1 = '\0';
	if (s->response) {
		const char *code = sp1 + 1;

		if (!is_version(s->start) || code[0] < '1' || code[0] > '9' ||
		    code[1] < '0' || code[1] > '9' || code[2] < '0' ||
		    code[2] > '9' || (code[3] != '\0' && code[3] != ' '))
			return false;
		s->msg.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 +
		    (code[2] - '0');
		return true;
	}
	if ((sp2 = strchr(sp1 + 1, ' ')) == NULL)
		return false;
	*sp2 = '\0';
	s->msg.method = s->start;
	s->msg.target = sp1 + 1;
	if (!is_token(s->msg.method) || *s->msg.target == '\0' ||
	    !is_version(sp2 + 1))
		return false;
	for (const char *t = s->msg.target; *t != '\0'; t++)
		if ((unsigned char)*t < 0x21 || *t == 0x7f)
			return false;
	return true;
}

/* A header line that check_header passed, cut into name and value. */
static void
parse_header(struct http_msg *m, char *line)
{
	char *colon = strchr(line, ':'), *v, *end;

	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v + strlen(v); end > v && (end[-1] == ' ' ||
	    end[-1] == '\t'); end--)
		;
	*end = '\0';
	m->headers[m->nheaders].name = line;
	m->headers[m->nheaders].value = v;
	m->nheaders++;
}

/*
 * A header line, len bytes at line, checked as soon as it is complete (so
 * that error_at names the line, not the end of the head), and counted in
 * m->nheaders until head_done parses the head.
 */
static bool
check_header(struct http_msg *m, const char *line, size_t len,
    enum http_error *why)
{
	const char *colon = memchr(line, ':', len);

	*why = m->nheaders == HTTP_HEADERS_MAX ? HTTP_HEAD_TOO_BIG :
	    HTTP_BAD_HEADER;
	if (colon == NULL || colon == line || m->nheaders == HTTP_HEADERS_MAX)
		return false;
	for (const char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p)) /* obsolete folding too */
			return false;
	m->nheaders++;
	return true;
}

/* Whether the last coding of the Transfer-Encoding list is chunked. */
static bool
last_coding_chunked(const char *te)
{
	const char *last = strrchr(te, ',');
	size_t n;

	last = last ? last + 1 : te;
	while (*last == ' ' || *last == '\t')
		last++;
	n = strlen(last);
	while (n > 0 && (last[n - 1] == ' ' || last[n - 1] == '\t'))
		n--;
	return n == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/*
 * The Content-Length of m: every field and list member must be the same
 * number.  1 with *len, 0 when there is none, -1 when it is bad.
 */
static int
content_length(const struct http_msg *m, uint64_t *len)
{
	int found = 0;

	for (size_t i = 0; i < m->nheaders; i++) {
		const char *p = m->headers[i].value;

		if (strcasecmp(m->headers[i].name, "Content-Length") != 0)
			continue;
		for (;;) {
			uint64_t v = 0;
			bool digits = false;

			while (*p == ' ' || *p == '\t')
				p++;
			for (; *p >= '0' && *p <= '9'; p++, digits = true) {
				if (v > (UINT64_MAX - 9) / 10)
					return -1;
				v = v * 10 + (uint64_t)(*p - '0');
			}
			while (*p == ' ' || *p == '\t')
				p++;
			if (!digits || (*p != ',' && *p != '\0') ||
			    (found && v != *len))
				return -1;
			*len = v;
			found = 1;
			if (*p == '\0')
				break;
			p++;
		}
	}
	return found;
}

/* Keep k more body bytes, unless the body is (or just got) too big. */
static void
body_append(struct http_stream *s, const uint8_t *p, size_t k)
{
	struct http_msg *m = &s->msg;

	m->body_len += k;
	if (m->body_skipped)
		return;
	if (m->body_len > s->max_body) {
		free(m->body);
		m->body = NULL;
		m->body_skipped = true;
		return;
	}
	if (m->body_len > s->body_cap) {
		size_t cap = s->body_cap ? s->body_cap : 4096;
		uint8_t *nb;

		while (cap < m->body_len)
			cap *= 2;
		if (cap > s->max_body)
			cap = s->max_body;
		if ((nb = realloc(m->body, cap)) == NULL) {
			free(m->body);
			m->body = NULL;
			m->body_skipped = true; /* out of memory: not kept */
			return;
		}
		m->body = nb;
		s->body_cap = cap;
	}
	memcpy(m->body + m->body_len - k, p, k);
}

/* The head is in head[0..head_len): parse it and decide the framing. */
static void
head_done(struct http_stream *s, size_t at, const struct http_handler *h)
{
	struct http_msg *m = &s->msg;
	char *line = s->head, *end = s->head + s->head_len;
	bool first = true, no_body;
	const char *te;
	uint64_t len = 0;
	int cl;

	m->response = s->response;
	m->nheaders = 0; /* counted by check_header, now parsed for good */
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));

		*nl = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		if (*line == '\0')
			break; /* the empty line that ends the head */
		if (first) {
			m->start_line = line; /* checked by feed_head */
			first = false;
		} else {
			parse_header(m, line);
		}
		line = nl + 1;
	}

	te = http_header(m, "Transfer-Encoding");
	cl = te == NULL ? content_length(m, &len) : 0;
	if (cl < 0 || (te != NULL && !s->response && !last_coding_chunked(te))) {
		fail(s, HTTP_BAD_LENGTH, at, h);
		return;
	}
	no_body = s->response && (m->status < 200 || m->status == 204 ||
	    m->status == 304);
	if (h->on_head != NULL && h->on_head(h->arg, m) && s->response)
		no_body = true;

	if (no_body || (!s->response && te == NULL && cl == 0) ||
	    (cl == 1 && len == 0)) {
		message_done(s, h);
	} else if (te != NULL && last_coding_chunked(te)) {
		s->state = HTTP_CHUNK_SIZE;
	} else if (cl == 1) {
		s->left = len;
		s->state = HTTP_BODY;
		if (len > s->max_body)
			m->body_skipped = true;
	} else {
		s->state = HTTP_BODY_TO_EOF;
	}
}

/* Gather the head up to its empty line; returns the bytes used. */
static size_t
feed_head(struct http_stream *s, const uint8_t *p, size_t n,
    const struct http_handler *h)
{
	const uint8_t *nl = memchr(p, '\n', n), *nul;
	size_t take = nl ? (size_t)(nl - p) + 1 : n, len, nul_at, over_at;
	enum http_error why;

	if (s->head == NULL && (s->head = malloc(HTTP_HEAD_MAX + 1)) == NULL) {
		s->state = HTTP_DONE; /* out of memory: the relay goes on */
		return n;
	}
	/* The first offending byte names the error, however the stream
	 * was cut into chunks. */
	nul = memchr(p, '\0', take);
	nul_at = nul != NULL ? (size_t)(nul - p) : SIZE_MAX;
	over_at = s->head_len + take > HTTP_HEAD_MAX ?
	    HTTP_HEAD_MAX - s->head_len : SIZE_MAX;
	if (nul_at < over_at) {
		fail(s, s->line_start == 0 ? HTTP_BAD_START : HTTP_BAD_HEADER,
		    nul_at, h);
		return n;
	}
	if (over_at != SIZE_MAX) {
		fail(s, HTTP_HEAD_TOO_BIG, over_at, h);
		return n;
	}
	memcpy(s->head + s->head_len, p, take);
	s->head_len += take;
	if (nl == NULL)
		return take;
	len = s->head_len - s->line_start - 1;
	if (len > 0 && s->head[s->head_len - 2] == '\r')
		len--;
	if (len > 0 && s->line_start == 0 && !parse_start(s, s->head, len)) {
		fail(s, HTTP_BAD_START, take - 1, h);
		return take;
	}
	if (len > 0 && s->line_start > 0 &&
	    !check_header(&s->msg, s->head + s->line_start, len, &why)) {
		fail(s, why, take - 1, h);
		return take;
	}
	if (len > 0)
		s->line_start = s->head_len;
	else if (s->line_start == 0)
		s->head_len = 0; /* an empty line before a message: ignored */
	else
		head_done(s, take - 1, h);
	return take;
}

/* A chunk-size line: hex digits, then extensions we ignore. */
static size_t
feed_chunk_size(struct http_stream *s, const uint8_t *p, size_t n,
    const struct http_handler *h)
{
	const uint8_t *nl = memchr(p, '\n', n);
	size_t take = nl ? (size_t)(nl - p) + 1 : n;
	uint64_t v = 0;
	size_t i = 0, len;

	if (s->line_len + take > sizeof s->line) {
		fail(s, HTTP_BAD_CHUNK, sizeof s->line - s->line_len, h);
		return n;
	}
	memcpy(s->line + s->line_len, p, take);
	s->line_len += take;
	if (nl == NULL)
		return take;
	len = s->line_len - 1;
	if (len > 0 && s->line[len - 1] == '\r')
		len--;
	for (; i < len; i++) {
		char c = s->line[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
		    c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			break;
		if (v >> 60)
			break; /* too big: i < len below makes it an error */
		v = v * 16 + (uint64_t)d;
	}
	if (i == 0 || (i < len && s->line[i] != ';' && s->line[i] != ' ' &&
	    s->line[i] != '\t')) {
		fail(s, HTTP_BAD_CHUNK, take - 1, h);
		return n;
	}
	s->line_len = 0;
	s->left = v;
	s->state = v == 0 ? HTTP_TRAILER : HTTP_CHUNK_DATA;
	return take;
}

/* The CRLF after a chunk's data. */
static size_t
feed_chunk_end(struct http_stream *s, const uint8_t *p,
    const struct http_handler *h)
{
	if (p[0] == '\r' && s->line_len == 0) {
		s->line_len = 1;
		return 1;
	}
	if (p[0] != '\n') {
		fail(s, HTTP_BAD_CHUNK, 0, h);
		return 1;
	}
	s->line_len = 0;
	s->state = HTTP_CHUNK_SIZE;
	return 1;
}

/* Trailer fields, skipped up to the empty line. */
static size_t
feed_trailer(struct http_stream *s, const uint8_t *p, size_t n,
    const struct http_handler *h)
{
	for (size_t i = 0; i < n; i++) {
		if (++s->trailer_len > HTTP_HEAD_MAX) {
			fail(s, HTTP_HEAD_TOO_BIG, i, h);
			return n;
		}
		if (p[i] == '\n') {
			if (s->line_len == 0) {
				message_done(s, h);
				return i + 1;
			}
			s->line_len = 0;
		} else if (p[i] != '\r' || s->line_len > 0) {
			s->line_len++;
		}
	}
	return n;
}

void
http_stream_feed(struct http_stream *s, const uint8_t *p, size_t n,
    const struct http_handler *h)
{
	while (n > 0 && s->state != HTTP_DONE) {
		size_t used;

		switch (s->state) {
		case HTTP_HEAD:
			used = feed_head(s, p, n, h);
			break;
		case HTTP_BODY:
		case HTTP_CHUNK_DATA:
			used = n < s->left ? n : (size_t)s->left;
			body_append(s, p, used);
			s->left -= used;
			if (s->left == 0 && s->state == HTTP_CHUNK_DATA)
				s->state = HTTP_CHUNK_END;
			else if (s->left == 0)
				message_done(s, h);
			break;
		case HTTP_CHUNK_SIZE:
			used = feed_chunk_size(s, p, n, h);
			break;
		case HTTP_CHUNK_END:
			used = feed_chunk_end(s, p, h);
			break;
		case HTTP_TRAILER:
			used = feed_trailer(s, p, n, h);
			break;
		case HTTP_BODY_TO_EOF:
			body_append(s, p, n);
			used = n;
			break;
		default:
			used = n;
			break;
		}
		s->offset += used;
		p += used;
		n -= used;
	}
	s->offset += n;
}

void
http_stream_finish(struct http_stream *s, const struct http_handler *h)
{
	if (s->state == HTTP_BODY_TO_EOF)
		message_done(s, h);
	else if (s->state != HTTP_DONE && (s->state != HTTP_HEAD ||
	    s->head_len > 0))
		fail(s, HTTP_TRUNCATED, 0, h);
	s->state = HTTP_DONE;
}
