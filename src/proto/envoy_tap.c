/*
 * envoy_tap.c - the Envoy tap of one connection.
 *
 * Each pump feeds its own HTTP parser (requests up, responses down), so
 * the parsers need no lock.  The n-th response answers the n-th request
 * (HTTP/1.1 answers in order), and both get the n-th exchange's spool
 * name.  Whichever side comes first makes the name: the pumps feed the
 * tap after relaying, so the answer can be parsed before its request.
 * The list of exchanges, the one thing both pumps touch, has a lock.
 *
 * A whole message becomes a job for the worker thread (worker.c), which
 * inflates it, writes the spool files and puts the events in the outbox:
 * neither the relay nor the other protocols' events wait for zlib, expat
 * or the disk.
 *
 * Bodies being read are bounded in total, not only each by max_body: all
 * connections of all Envoy listeners share a budget of BUDGET_BODIES times
 * the listener's max_body (64 MiB with the default 8M).  Before each chunk
 * is parsed, its direction reserves what the parser may allocate for it
 * (the parser doubles a body's buffer as bytes arrive, so that is at most
 * twice the bytes kept so far and the chunk); after it, the reservation
 * shrinks to the buffer actually held.  When the budget cannot cover a
 * chunk, the stream's max_body is lowered to what it already holds, so the
 * body in progress, or the next one, is skipped by the parser: relayed,
 * not captured, counted and logged at most once a second.
 *
 * The counters for the stats hook are the listener's (struct
 * envoy_counts, handed to open): the HTTP ones added when a connection
 * closes, the events by type as the worker makes them.  A report's Envoy
 * serial tells loggers.c when that Envoy was last heard.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <resolv.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "clock.h"
#include "event.h"
#include "log.h"
#include "ratelimit.h"
#include "pipeline/outbox.h"
#include "pipeline/worker.h"
#include "proto/envoy.h"
#include "proto/envoy_spool.h"
#include "proto/http.h"
#include "proto/loggers.h"
#include "proto/proto.h"

struct exchange {
	uint64_t n;
	char name[SPOOL_NAME_MAX];
	bool head;  /* a HEAD request: its answer has no body */
	int sides;  /* that have taken the name */
	struct exchange *next;
};

struct envoy_tap;

#define FIRST_BYTES 64
#define EXCHANGES_MAX 64 /* names kept for the side that is behind */
#define BUDGET_BODIES 8  /* full-size bodies in flight, all connections */
#define BODY_MIN_CAP 4096 /* the parser's first body buffer */

/* Bytes of body buffers reserved by every Envoy stream. */
static atomic_size_t budget_used;
/* The event types a report makes, counted as frames. */
static const char *const frame_types[] = {"envoy_report", "envoy_device",
    "envoy_interval", "envoy_reading", "envoy_event"};
#define FRAME_TYPES (sizeof frame_types / sizeof frame_types[0])

/* One listener's totals: of its closed connections, by direction (0
 * requests, 1 responses); of the worker's events. */
struct envoy_counts {
	atomic_uint_fast64_t messages[2];
	atomic_uint_fast64_t malformed[HTTP_ERRORS];
	atomic_uint_fast64_t skipped[2], over_budget[2], lost[2];
	atomic_uint_fast64_t frames[FRAME_TYPES];
	atomic_uint_fast64_t bad_reports;  /* reports that made no readings */
};
static struct ratelimit rl_budget = RATELIMIT_INITIALIZER;

struct envoy_dir {
	struct envoy_tap *e;
	int dir;
	struct http_stream s;
	size_t reserved;  /* of budget_used, for s's body buffer */
	bool refused;     /* the budget could not cover a chunk */
	uint8_t first[FIRST_BYTES]; /* for the undecodable event */
	size_t nfirst;
};

struct envoy_tap {
	const struct listener_conf *lc;
	struct envoy_counts *counts; /* the listener's */
	uint64_t conn_id;
	char peer[ADDR_STR_MAX];
	struct envoy_dir d[2];
	char name[SPOOL_NAME_MAX]; /* of the request being read (up only) */
	uint64_t count[2];         /* requests, final responses begun */
	pthread_mutex_t lock;      /* for the list */
	struct exchange *exchanges; /* newest first */
	size_t nexchanges;
	uint64_t taken[2];         /* exchanges each side has passed */
	uint64_t skipped[2];       /* messages over max_body */
	uint64_t over_budget[2];   /* messages the budget had no room for */
	uint64_t lost[2];          /* messages the queue had no room for */
};

/* A whole message, for the worker thread. */
struct job {
	const struct listener_conf *lc;
	struct envoy_counts *counts; /* the listener's, outlives the worker */
	struct event_meta meta;
	char peer[ADDR_STR_MAX];
	bool response;
	bool report;               /* a POST to .../performance_report */
	char name[SPOOL_NAME_MAX];
	char *head;                /* start line and "Name = value" lines */
	size_t head_len;
	char *content_type;        /* or NULL */
	char *target;              /* requests */
	uint8_t *body;
	size_t body_len;
};

static const char *const dir_name[2] = {"up", "down"};

static size_t
budget_max(const struct listener_conf *lc)
{
	return (size_t)lc->max_body * BUDGET_BODIES;
}

/*
 * Reserve what d's parser may allocate for the next n bytes; when the
 * budget cannot cover it, lower the stream's max_body so the parser keeps
 * no more than it already has.
 */
static void
budget_reserve(struct envoy_dir *d, size_t n)
{
	struct http_stream *s = &d->s;
	size_t max = (size_t)d->e->lc->max_body, limit = budget_max(d->e->lc);
	size_t kept = s->msg.body_skipped ? 0 : (size_t)s->msg.body_len;
	size_t want = 2 * (kept + n), more, used;

	if (s->state == HTTP_DONE)
		return;
	if (want < BODY_MIN_CAP)
		want = BODY_MIN_CAP;
	if (want < s->body_cap)
		want = s->body_cap;
	if (want > max)
		want = max;
	if (want <= d->reserved) {
		s->max_body = max;
		return;
	}
	more = want - d->reserved;
	used = atomic_load(&budget_used);
	do {
		if (used > limit || more > limit - used) {
			/* Keep what is held, allocate nothing new. */
			s->max_body = s->msg.body != NULL ? s->body_cap : 0;
			d->refused = true;
			return;
		}
	} while (!atomic_compare_exchange_weak(&budget_used, &used,
	    used + more));
	d->reserved = want;
	s->max_body = max;
}

/* After a chunk: keep reserved only the body buffer d's parser holds. */
static void
budget_settle(struct envoy_dir *d)
{
	size_t held = d->s.msg.body != NULL ? d->s.body_cap : 0;

	if (held < d->reserved) {
		atomic_fetch_sub(&budget_used, d->reserved - held);
		d->reserved = held;
	}
}

static void
job_free(void *arg)
{
	struct job *j = arg;

	free(j->head);
	free(j->content_type);
	free(j->target);
	free(j->body);
	free(j);
}

static void
count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* An event of a report (arg: its job): counted, and its Envoy heard. */
static void
emit(void *arg, json_t *ev, int64_t time_ms)
{
	const struct job *j = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *serial = json_string_value(json_object_get(ev,
	    "envoy.serial"));

	for (size_t i = 0; type != NULL && i < FRAME_TYPES; i++)
		if (strcmp(type, frame_types[i]) == 0)
			count(&j->counts->frames[i], 1);
	if (serial != NULL && type != NULL && strcmp(type, "envoy_report") == 0)
		loggers_heard(serial, j->meta.received_ms);
	outbox_put(ev, time_ms);
}

/* Whether a body of this type is written as it is. */
static bool
is_text(const char *ct)
{
	return ct == NULL || strncasecmp(ct, "text/", 5) == 0 ||
	    strcasestr(ct, "xml") != NULL ||
	    strcasestr(ct, "x-www-form-urlencoded") != NULL;
}

/* Base64 in lines of 76, as the original tool wrote it. */
static char *
base64_lines(const uint8_t *p, size_t n, size_t *len)
{
	size_t lines = (n + 56) / 57, cap = lines * 78 + 1, o = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 57) {
		size_t k = n - i < 57 ? n - i : 57;
		int w = b64_ntop(p + i, k, out + o, cap - o);

		if (w < 0) {
			free(out);
			return NULL;
		}
		o += (size_t)w;
		out[o++] = '\n';
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* Whether the request target's path ends in /performance_report. */
static bool
is_report(const char *target)
{
	size_t n = strcspn(target, "?"), k = strlen("/performance_report");

	return n >= k && strncmp(target + n - k, "/performance_report", k) == 0;
}

static void
spool(const struct job *j, const char *suffix, const void *p, size_t n)
{
	if (envoy_spool_write(j->lc->spool_dir, j->name, suffix, p, n) != 0)
		log_warn("[%s] spool %s/%s.%s", j->lc->name, j->lc->spool_dir,
		    j->name, suffix);
}

/* An undecodable event of the Envoy tap, with a new id in m; or NULL. */
static json_t *
undecodable(struct event_meta *m, const char *reason)
{
	json_t *ev;

	event_id_new(m);
	if ((ev = event_new("undecodable", m)) != NULL) {
		json_object_set_new(ev, "protocol", json_string("envoy"));
		json_object_set_new(ev, "reason", json_string(reason));
	}
	return ev;
}

/* A report that makes no readings: a warning and an undecodable event. */
static void
bad_report(const struct job *j, const char *err)
{
	struct event_meta meta = j->meta;
	json_t *ev;

	count(&j->counts->bad_reports, 1);
	log_warnx("conn %" PRIu64 " [%s]: report %s not decoded (%s)",
	    j->meta.conn_id, j->lc->name, j->name, err);
	if ((ev = undecodable(&meta, "bad-report")) != NULL) {
		json_object_set_new(ev, "error", json_string(err));
		json_object_set_new(ev, "spool.name", json_string(j->name));
		outbox_put(ev, meta.received_ms);
	}
}

/* A performance_report's form data: its .xml file and its events. */
static void
report(struct job *j, const uint8_t *form, size_t n)
{
	struct envoy_report_ctx ctx = {.meta = j->meta, .target = j->target,
	    .spool_name = j->name};
	uint8_t *xml;
	size_t len;
	char err[160];
	int k;

	if (envoy_form_field(form, n, "body", &xml, &len) != 0) {
		bad_report(j, "no body field");
		return;
	}
	spool(j, "xml", xml, len);
	k = envoy_report_events((const char *)xml, len, &ctx, emit, j, err,
	    sizeof err);
	if (k < 0)
		bad_report(j, err);
	else
		log_info("conn %" PRIu64 " [%s]: report %s: %d event(s)",
		    j->meta.conn_id, j->lc->name, j->name, k);
	free(xml);
}

/* The acknowledged event ids of Enphase's answer, logged. */
static void
acknowledged(const struct job *j, const uint8_t *xml, size_t n)
{
	char ids[512];
	int k = envoy_response_ids((const char *)xml, n, ids, sizeof ids);

	if (k >= 0)
		log_info("conn %" PRIu64 " [%s]: Enphase acknowledged %d event(s)%s%s",
		    j->meta.conn_id, j->lc->name, k, k > 0 ? ": " : "", ids);
}

/* The worker thread's part: spool files, events, log lines. */
static void
job_run(void *arg)
{
	struct job *j = arg;
	uint8_t *inflated = NULL, *text = NULL;
	size_t text_len = 0, out_len;
	char *b64 = NULL, *out;
	const char *why = NULL; /* the body is spooled in base64 because */
	bool over = false;

	if (j->body_len > 0 && j->content_type != NULL &&
	    strcasestr(j->content_type, "deflate") != NULL) {
		if (envoy_inflate(j->body, j->body_len, (size_t)j->lc->max_body,
		    &inflated, &text_len, &over) == 0)
			text = inflated;
		else
			why = over ? "body inflates to more than max_body" :
			    "body does not inflate";
		if (why != NULL && !j->report)
			log_warnx("conn %" PRIu64 " [%s] %s: %s %s: %s; spooled "
			    "as base64", j->meta.conn_id, j->lc->name,
			    dir_name[j->response], j->response ? "response" :
			    "request", j->name, why);
	} else if (j->body_len > 0 && is_text(j->content_type)) {
		text = j->body;
		text_len = j->body_len;
	} else if (j->body_len > 0) {
		why = "body is neither deflate nor text";
	}
	if (text == NULL && j->body_len > 0 &&
	    (b64 = base64_lines(j->body, j->body_len, &text_len)) == NULL)
		text_len = 0;
	out_len = j->head_len + 1 + text_len;
	if ((out = malloc(out_len)) != NULL) {
		memcpy(out, j->head, j->head_len);
		out[j->head_len] = '\n';
		if (text_len > 0)
			memcpy(out + j->head_len + 1, text ? (const void *)text :
			    (const void *)b64, text_len);
		spool(j, j->response ? "response" : "request", out, out_len);
		free(out);
	}
	if (j->report && text != NULL)
		report(j, text, text_len);
	else if (j->report)
		bad_report(j, why != NULL ? why : "no body");
	else if (text != NULL && j->response)
		acknowledged(j, text, text_len);
	free(inflated);
	free(b64);
	job_free(j);
}

/* The message as a job, taking its body; NULL when out of memory. */
static struct job *
job_new(struct envoy_tap *e, int dir, struct http_msg *m, const char *name)
{
	struct job *j = calloc(1, sizeof *j);
	const char *ct = http_header(m, "Content-Type");
	size_t cap = strlen(m->start_line) + 2;
	FILE *f;

	if (j == NULL)
		return NULL;
	for (size_t i = 0; i < m->nheaders; i++)
		cap += strlen(m->headers[i].name) + strlen(m->headers[i].value) + 4;
	j->lc = e->lc;
	j->counts = e->counts;
	j->response = dir == 1;
	snprintf(j->name, sizeof j->name, "%s", name);
	snprintf(j->peer, sizeof j->peer, "%s", e->peer);
	j->meta.listener = e->lc->name;
	j->meta.conn_id = e->conn_id;
	j->meta.peer = j->peer;
	j->meta.direction = dir;
	j->meta.received_ms = clock_wall_ms();
	if ((j->head = malloc(cap + 1)) == NULL ||
	    (f = fmemopen(j->head, cap + 1, "w")) == NULL)
		goto fail;
	fprintf(f, "%s\n", m->start_line);
	for (size_t i = 0; i < m->nheaders; i++)
		fprintf(f, "%s = %s\n", m->headers[i].name, m->headers[i].value);
	j->head_len = (size_t)ftell(f);
	fclose(f);
	if ((ct != NULL && (j->content_type = strdup(ct)) == NULL) ||
	    (!j->response && (j->target = strdup(m->target)) == NULL))
		goto fail;
	j->report = !j->response && strcmp(m->method, "POST") == 0 &&
	    is_report(m->target);
	j->body = m->body;
	j->body_len = (size_t)m->body_len;
	m->body = NULL;
	return j;
fail:
	job_free(j);
	return NULL;
}

/* Hand a whole message to the worker, or say why it is not captured. */
static void
to_worker(struct envoy_tap *e, int dir, struct http_msg *m, const char *name)
{
	struct job *j;

	if (m->body_skipped && m->body_len <= (uint64_t)e->lc->max_body) {
		bool budget = e->d[dir].refused;
		unsigned skipped;
		char more[48] = "";

		e->over_budget[dir] += budget;
		e->d[dir].refused = false;
		if (!budget)
			log_warnx("conn %" PRIu64 " [%s] %s: out of memory, %s of "
			    "%" PRIu64 " bytes not captured", e->conn_id,
			    e->lc->name, dir_name[dir], name, m->body_len);
		if (!budget || !ratelimit_pass(&rl_budget, &skipped))
			return;
		if (skipped > 0)
			snprintf(more, sizeof more, " (%u more not logged)",
			    skipped);
		log_warnx("conn %" PRIu64 " [%s] %s: %s with a body of %" PRIu64
		    " bytes, relayed, not captured: the Envoy bodies in flight "
		    "are at their budget of %zu KiB%s", e->conn_id, e->lc->name,
		    dir_name[dir], dir ? "response" : "request", m->body_len,
		    budget_max(e->lc) >> 10, more);
		return;
	}
	e->d[dir].refused = false;
	if (m->body_skipped) {
		e->skipped[dir]++;
		log_warnx("conn %" PRIu64 " [%s] %s: %s with a body of %" PRIu64
		    " bytes, over max_body: relayed, not captured", e->conn_id,
		    e->lc->name, dir_name[dir], dir ? "response" : "request",
		    m->body_len);
		return;
	}
	if ((j = job_new(e, dir, m, name)) == NULL) {
		log_warnx("conn %" PRIu64 " [%s]: out of memory, %s not captured",
		    e->conn_id, e->lc->name, name);
		return;
	}
	if (!worker_put(job_run, job_free, j, j->body_len + j->head_len)) {
		if (e->lost[dir]++ == 0)
			log_warnx("conn %" PRIu64 " [%s] %s: job queue full, "
			    "%s not captured (the next ones are counted)",
			    e->conn_id, e->lc->name, dir_name[dir], name);
		job_free(j);
	}
}

/*
 * The n-th exchange, or NULL; under the lock.  With make, one is made when
 * missing, unless the other side has passed n (its name was not kept) or
 * EXCHANGES_MAX already wait (a peer that never answers, or whose HTTP
 * stopped parsing): that side then names its message on its own.
 */
static struct exchange *
exchange_get(struct envoy_tap *e, int side, uint64_t n, bool make)
{
	struct exchange *x;

	for (x = e->exchanges; x != NULL; x = x->next)
		if (x->n == n)
			return x;
	if (!make || n < e->taken[!side] || e->nexchanges == EXCHANGES_MAX ||
	    (x = calloc(1, sizeof *x)) == NULL)
		return NULL;
	x->n = n;
	envoy_spool_name(x->name, sizeof x->name, time(NULL));
	x->next = e->exchanges;
	e->exchanges = x;
	e->nexchanges++;
	return x;
}

/* A side takes the n-th exchange's name; the second one frees it. */
static void
exchange_take(struct envoy_tap *e, int side, uint64_t n, char *name,
    bool head)
{
	struct exchange *x, **pp;

	pthread_mutex_lock(&e->lock);
	e->taken[side] = n + 1;
	if ((x = exchange_get(e, side, n, true)) == NULL) {
		pthread_mutex_unlock(&e->lock);
		envoy_spool_name(name, SPOOL_NAME_MAX, time(NULL));
		return;
	}
	memcpy(name, x->name, SPOOL_NAME_MAX);
	x->head = x->head || head;
	if (++x->sides == 2) {
		for (pp = &e->exchanges; *pp != x; pp = &(*pp)->next)
			;
		*pp = x->next;
		free(x);
		e->nexchanges--;
	}
	pthread_mutex_unlock(&e->lock);
}

static bool
on_head(void *arg, const struct http_msg *m)
{
	struct envoy_dir *d = arg;
	struct envoy_tap *e = d->e;
	struct exchange *x;
	bool head;

	if (d->dir == 0) {
		exchange_take(e, 0, e->count[0]++, e->name,
		    strcasecmp(m->method, "HEAD") == 0);
		return false;
	}
	if (m->status < 200)
		return false;
	pthread_mutex_lock(&e->lock);
	x = exchange_get(e, 1, e->count[1], false);
	head = x != NULL && x->head;
	pthread_mutex_unlock(&e->lock);
	return head;
}

static void
on_message(void *arg, struct http_msg *m)
{
	struct envoy_dir *d = arg;
	struct envoy_tap *e = d->e;
	char name[SPOOL_NAME_MAX];

	if (d->dir == 0) {
		to_worker(e, 0, m, e->name);
		return;
	}
	if (m->status < 200)
		return; /* 100 Continue: the answer is still to come */
	exchange_take(e, 1, e->count[1]++, name, false);
	to_worker(e, 1, m, name);
}

static void
on_error(void *arg, enum http_error why)
{
	struct envoy_dir *d = arg;
	struct envoy_tap *e = d->e;
	bool tls = d->nfirst >= 2 && d->first[0] == 0x16 && d->first[1] == 0x03;
	struct event_meta m = {.listener = e->lc->name, .conn_id = e->conn_id,
	    .peer = e->peer, .direction = d->dir, .received_ms = clock_wall_ms()};
	json_t *ev;

	if ((ev = undecodable(&m, tls ? "tls" : "malformed-http")) != NULL) {
		json_object_set_new(ev, "http.error", json_string(
		    http_error_name(why)));
		json_object_set_new(ev, "error.at",
		    json_integer((json_int_t)d->s.error_at));
		event_set_hex(ev, "head.hex", d->first, d->nfirst);
		outbox_put(ev, m.received_ms);
	}
	log_warnx("conn %" PRIu64 " [%s] %s: %s (%s) at byte %" PRIu64
	    ", relayed without decoding", e->conn_id, e->lc->name,
	    dir_name[d->dir], tls ? "TLS, not HTTP (see the stunnel set-up)" :
	    "malformed HTTP",
	    http_error_name(why), d->s.error_at);
}

static void *
envoy_open(const struct proto_conn *pc)
{
	const struct listener_conf *lc = pc->lc;
	struct envoy_tap *e = calloc(1, sizeof *e);

	if (e == NULL)
		return NULL;
	e->lc = lc;
	e->counts = pc->counts;
	e->conn_id = pc->conn_id;
	snprintf(e->peer, sizeof e->peer, "%s", pc->peer);
	pthread_mutex_init(&e->lock, NULL);
	for (int i = 0; i < 2; i++) {
		e->d[i].e = e;
		e->d[i].dir = i;
		http_stream_init(&e->d[i].s, i == 1, (size_t)lc->max_body);
	}
	return e;
}

/* The Envoy is never answered locally: answer is of no use here. */
static void
envoy_feed(void *p, int dir, const uint8_t *buf, size_t n, bool answer)
{
	struct envoy_tap *e = p;
	struct envoy_dir *d = &e->d[dir];
	struct http_handler h = {on_head, on_message, on_error, d};

	(void)answer;
	if (d->nfirst < FIRST_BYTES && d->s.state != HTTP_DONE) {
		size_t k = FIRST_BYTES - d->nfirst < n ? FIRST_BYTES - d->nfirst : n;
		memcpy(d->first + d->nfirst, buf, k);
		d->nfirst += k;
	}
	budget_reserve(d, n);
	http_stream_feed(&d->s, buf, n, &h);
	budget_settle(d);
}

static void
envoy_close(void *p)
{
	struct envoy_tap *e = p;

	for (int i = 0; i < 2; i++) {
		struct http_handler h = {on_head, on_message, on_error, &e->d[i]};
		uint64_t errors = 0;

		http_stream_finish(&e->d[i].s, &h);
		for (int k = 0; k < HTTP_ERRORS; k++) {
			errors += e->d[i].s.errors[k];
			count(&e->counts->malformed[k], e->d[i].s.errors[k]);
		}
		count(&e->counts->messages[i], e->d[i].s.messages);
		count(&e->counts->skipped[i], e->skipped[i]);
		count(&e->counts->over_budget[i], e->over_budget[i]);
		count(&e->counts->lost[i], e->lost[i]);
		if (errors > 0 || e->skipped[i] > 0 || e->lost[i] > 0 ||
		    e->over_budget[i] > 0)
			log_info("conn %" PRIu64 " [%s] %s: %" PRIu64 " HTTP "
			    "message(s), %" PRIu64 " malformed, %" PRIu64 " over "
			    "max_body, %" PRIu64 " over the budget, %" PRIu64
			    " not captured (queue full)", e->conn_id, e->lc->name,
			    dir_name[i], e->d[i].s.messages, errors,
			    e->skipped[i], e->over_budget[i], e->lost[i]);
		http_stream_free(&e->d[i].s);
		budget_settle(&e->d[i]);
	}
	while (e->exchanges != NULL) {
		struct exchange *x = e->exchanges;
		e->exchanges = x->next;
		free(x);
	}
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static void
envoy_stats(const void *counts, proto_stat_fn *fn, void *arg)
{
	static const char *const side[2] = {"requests", "responses"};
	const struct envoy_counts *c = counts;
	char name[48];

	for (size_t i = 0; i < FRAME_TYPES; i++) {
		snprintf(name, sizeof name, "frames.%s", frame_types[i]);
		fn(arg, name, atomic_load(&c->frames[i]));
	}
	fn(arg, "rejected.bad_report", atomic_load(&c->bad_reports));
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof name, "messages.%s", side[i]);
		fn(arg, name, atomic_load(&c->messages[i]));
		snprintf(name, sizeof name, "over_max_body.%s", side[i]);
		fn(arg, name, atomic_load(&c->skipped[i]));
		snprintf(name, sizeof name, "over_budget.%s", side[i]);
		fn(arg, name, atomic_load(&c->over_budget[i]));
		snprintf(name, sizeof name, "lost.%s", side[i]);
		fn(arg, name, atomic_load(&c->lost[i]));
	}
	for (int k = 0; k < HTTP_ERRORS; k++) {
		snprintf(name, sizeof name, "rejected.%s",
		    http_error_name((enum http_error)k));
		fn(arg, name, atomic_load(&c->malformed[k]));
	}
}

const struct proto_ops proto_envoy = {
	.name = "envoy",
	.open = envoy_open,
	.feed = envoy_feed,
	.close = envoy_close,
	.counts_size = sizeof(struct envoy_counts),
	.stats = envoy_stats,
};
