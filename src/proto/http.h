/*
 * http.h - an HTTP/1.1 message parser for one direction of a relayed
 * stream: bytes in, whole messages out.  Pure: no I/O, no threads, no
 * logging; fed any chunking, it gives the same messages.
 *
 * It reads what a tap needs and no more: the start line, the headers, and
 * a body framed by Content-Length, by chunked transfer coding or, for a
 * response with neither, by the end of the stream.  Memory is bounded: the
 * head by HTTP_HEAD_MAX, a body by the max_body given at init (a larger
 * body is skipped, not kept, and the message says so).  Anything it cannot
 * frame is an error, after which the rest of the stream is ignored: the
 * relay goes on regardless.
 */
#ifndef DEYE_HTTP_H
#define DEYE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX (32 * 1024) /* start line and headers */
#define HTTP_HEADERS_MAX 100

enum http_error {
	HTTP_BAD_START,   /* not a request or status line */
	HTTP_BAD_HEADER,  /* a header line without a name and colon */
	HTTP_HEAD_TOO_BIG,
	HTTP_BAD_LENGTH,  /* Content-Length not a number, or two that differ */
	HTTP_BAD_CHUNK,   /* chunk size or chunk end */
	HTTP_TRUNCATED,   /* the stream ended inside a message */
	HTTP_ERRORS
};

struct http_header {
	const char *name;  /* as received */
	const char *value; /* without surrounding blanks */
};

struct http_msg {
	bool response;
	const char *start_line;       /* without its CRLF */
	const char *method, *target;  /* requests */
	int status;                   /* responses */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t nheaders;
	/*
	 * The body, de-chunked, or NULL when it was empty or over max_body
	 * (then body_skipped).  The message handler may take it: set body to
	 * NULL and free() it later.
	 */
	uint8_t *body;
	uint64_t body_len;     /* of the body, kept or not */
	bool body_skipped;
};

struct http_handler {
	/*
	 * The head is complete.  For a response, return true when it has no
	 * body whatever its headers say (the answer to a HEAD).  Optional.
	 */
	bool (*on_head)(void *arg, const struct http_msg *m);
	/* A whole message; interim (1xx) responses included. */
	void (*on_message)(void *arg, struct http_msg *m);
	void (*on_error)(void *arg, enum http_error why);
	void *arg;
};

enum http_state {
	HTTP_HEAD, HTTP_BODY, HTTP_CHUNK_SIZE, HTTP_CHUNK_DATA, HTTP_CHUNK_END,
	HTTP_TRAILER, HTTP_BODY_TO_EOF, HTTP_DONE /* error, or a tunnel */
};

struct http_stream {
	bool response;
	size_t max_body;
	enum http_state state;
	char *head;            /* HTTP_HEAD_MAX + 1 bytes, allocated on use */
	size_t head_len;
	size_t line_start;     /* of the line being read in head[] */
	char *start;           /* a copy of the start line, cut into words */
	char line[128];        /* a chunk-size line */
	size_t line_len;       /* of line[], or of a trailer line */
	uint64_t trailer_len;
	uint64_t left;         /* of the body or the chunk */
	struct http_msg msg;
	size_t body_cap;
	uint64_t offset;       /* bytes fed so far */
	uint64_t error_at;     /* stream offset of the last error */
	uint64_t messages;
	uint64_t errors[HTTP_ERRORS];
};

void http_stream_init(struct http_stream *s, bool response, size_t max_body);
void http_stream_feed(struct http_stream *s, const uint8_t *p, size_t n,
    const struct http_handler *h);
/* The stream ended: a body read to the end is complete; any other
 * unfinished message is HTTP_TRUNCATED. */
void http_stream_finish(struct http_stream *s, const struct http_handler *h);
void http_stream_free(struct http_stream *s);

/* The value of header name (case-insensitive), or NULL. */
const char *http_header(const struct http_msg *m, const char *name);
const char *http_error_name(enum http_error e);

#endif
