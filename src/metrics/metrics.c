/*
 * metrics.c - the [metrics] endpoint: GET /metrics and GET /healthz.
 *
 * The HTTP server is GNU libmicrohttpd on one internal thread of its own
 * (epoll), not the project's HTTP parser: that one reads the Envoy's
 * messages off a relayed stream, and a server needs more around it (keep-
 * alive, timeouts, a connection table, partial writes) than it is worth
 * rewriting.  libmicrohttpd brings those, bounded here: at most
 * CLIENTS_MAX clients (CLIENTS_PER_IP from one address), REQUEST_MAX
 * bytes of request line and headers, TIMEOUT_S seconds without a byte
 * from a client (a slow or idle one is cut off), strict parsing.  The
 * global allow list is applied as each connection is accepted.
 *
 * Each request takes a snapshot of the modules' stats (docs/README.md,
 * "Counters": no count is kept here) and renders it (render.c).  Every
 * stats call takes at most a short lock that no one holds across I/O, so
 * a scrape never waits on the relay, a sink or a disk, and they never
 * wait on it.  The only state of our own is when the journal was last
 * seen losing events, for /healthz.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "clock.h"
#include "log.h"
#include "metrics/metrics.h"
#include "metrics/render.h"
#include "ratelimit.h"
#include "relay/accept.h"
#include "relay/net.h"

#define CLIENTS_MAX 16
#define CLIENTS_PER_IP 8
#define REQUEST_MAX (16 * 1024) /* its memory pool: request line, headers */
#define TIMEOUT_S 5
#define STACK_SIZE (256 * 1024)

static int listen_fd = -1;
static struct MHD_Daemon *mhd;
static const struct conf *conf;
static const struct metrics_conf *mc;
static int64_t start_ms;
static struct ratelimit refusals = RATELIMIT_INITIALIZER;

/* The journal's losses as last seen, and when they last grew. */
static pthread_mutex_t loss_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t loss_seen;
static int64_t loss_ms;


/* ---- the [metrics] section ---- */

#define M(f) offsetof(struct metrics_conf, f)

static const struct conf_key keys[] = {
	{.name = "listen", .type = CONF_LISTEN, .off = M(listen)},
	{.name = "stall_after", .type = CONF_DURATION, .off = M(stall_after_ms),
	    .def = "5m", .min = CONF_SEC(1), .max = CONF_SEC(7 * 86400)},
};

const struct conf_section metrics_section = {
	.name = "metrics",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(struct metrics_conf),
	.finish = NULL,
};

/* ---- the snapshot ---- */

static void
stat_add(void *arg, const char *name, uint64_t value)
{
	struct metrics_listener *l = arg;

	if (l->nstats == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct metrics_stat *p = reallocarray(l->stats, cap, sizeof *p);

		if (p == NULL)
			return; /* left out; the text says nothing false */
		l->stats = p;
		l->cap = cap;
	}
	snprintf(l->stats[l->nstats].name, sizeof l->stats[0].name, "%s", name);
	l->stats[l->nstats++].value = value;
}

static void
logger_add(void *arg, const char *serial, int64_t ms)
{
	struct metrics_snapshot *s = arg;

	if (s->nloggers == LOGGERS_MAX)
		return;
	snprintf(s->loggers[s->nloggers].serial, sizeof s->loggers[0].serial,
	    "%s", serial);
	s->loggers[s->nloggers++].ms = ms;
}

static void
snapshot_free(struct metrics_snapshot *s)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		free(s->listeners[i].stats);
	free(s->listeners);
	free(s->loggers);
}

/* 0, or -1 out of memory (s freed). */
static int
snapshot_take(struct metrics_snapshot *s)
{
	const char *name;
	struct relay_counts rc;
	size_t n = 0;

	memset(s, 0, sizeof *s);
	s->version = DEYE_VERSION;
	s->start_ms = start_ms;
	s->now_ms = clock_wall_ms();
	while (listener_stats(n, &name, &rc))
		n++;
	if ((s->listeners = calloc(n ? n : 1, sizeof *s->listeners)) == NULL ||
	    (s->loggers = calloc(LOGGERS_MAX, sizeof *s->loggers)) == NULL)
		goto fail;
	for (; s->nlisteners < n; s->nlisteners++) {
		struct metrics_listener *l = &s->listeners[s->nlisteners];

		if (!listener_stats(s->nlisteners, &l->name, &l->rc))
			break;
		(void)listener_proto_stats(s->nlisteners, stat_add, l);
	}
	(void)loggers_each(logger_add, s);
	s->loggers_dropped = loggers_dropped();
	journal_stats(&s->js);
	outbox_stats(&s->os);
	/* The running sinks: one not running has no series. */
	while (s->nsinks < SINKS_MAX && sinks_stats(s->nsinks,
	    &s->sinks[s->nsinks].name, &s->sinks[s->nsinks].ss))
		s->nsinks++;
	return 0;

fail:
	snapshot_free(s);
	return -1;
}

/*
 * When the journal was last seen losing events: a request that finds its
 * losses grown since the one before notes the time (the first request
 * finding any does too), so every scraper sees a loss for stall_after.
 */
static int64_t
loss_last_ms(const struct metrics_snapshot *s)
{
	uint64_t n = metrics_losses(s);
	int64_t ms;

	pthread_mutex_lock(&loss_lock);
	if (n > loss_seen) {
		loss_seen = n;
		loss_ms = s->now_ms;
	}
	ms = loss_ms;
	pthread_mutex_unlock(&loss_lock);
	return ms;
}

/* ---- HTTP ---- */

static enum MHD_Result
on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	char a[ADDR_STR_MAX], more[48] = "";
	unsigned skipped;

	(void)cls;
	(void)len;
	if (allow_match(&conf->allow, sa))
		return MHD_YES;
	if (ratelimit_pass(&refusals, &skipped)) {
		addr_format(sa, a, sizeof a);
		if (skipped > 0)
			snprintf(more, sizeof more, " (%u more not logged)",
			    skipped);
		log_warnx("[metrics] refused %s: not in allow%s", a, more);
	}
	return MHD_NO;
}

static bool
has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);

	return (cl != NULL && strcmp(cl, "0") != 0) ||
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **req)
{
	static const char oom[] = "out of memory\n";
	static int seen;
	const char *type = "text/plain; charset=utf-8";
	struct metrics_buf b = {0};
	struct metrics_snapshot s;
	struct MHD_Response *resp;
	unsigned status = MHD_HTTP_OK;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_size;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		/* At once, its body unread: the connection closes after. */
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		metrics_buf_add(&b, "only GET\n", 9);
	} else if (has_body(conn)) {
		/* Refused before it is read (the connection closes). */
		status = MHD_HTTP_CONTENT_TOO_LARGE;
		metrics_buf_add(&b, "a GET has no body\n", 18);
	} else if (*req == NULL) {
		/* Answered on the next call, once the request is whole: a
		 * response queued before closes the connection. */
		*req = &seen;
		return MHD_YES;
	} else if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		metrics_buf_add(&b, "not found: /metrics, /healthz\n", 30);
	} else if (snapshot_take(&s) != 0) {
		b.oom = true;
	} else {
		int64_t last_loss = loss_last_ms(&s);

		if (strcmp(url, "/metrics") == 0) {
			type = "text/plain; version=0.0.4; charset=utf-8";
			metrics_render(&s, &b);
		} else if (!metrics_health(&s, mc->stall_after_ms, last_loss,
		    &b)) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		}
		snapshot_free(&s);
	}
	if (b.oom) {
		free(b.p);
		resp = MHD_create_response_from_buffer(sizeof oom - 1,
		    (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	} else {
		resp = MHD_create_response_from_buffer(b.n, b.p,
		    MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			free(b.p);
	}
	if (resp == NULL)
		return MHD_NO; /* closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* libmicrohttpd's own messages (a client's bad request, a reset). */
__attribute__((format(printf, 2, 0)))
static void
on_log(void *cls, const char *fmt, va_list ap)
{
	char m[256];
	size_t n;

	(void)cls;
	vsnprintf(m, sizeof m, fmt, ap);
	n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '\r'))
		m[--n] = '\0';
	log_debug("[metrics] %s", m);
}

/* ---- the module ---- */

int
metrics_open(const struct conf *c, char *err, size_t errlen)
{
	const struct metrics_conf *m = conf_section_get(c, &metrics_section);
	struct sockaddr_storage bound;
	char e[NET_ERR_MAX], a[ADDR_STR_MAX];

	if (m == NULL || m->listen.len == 0)
		return 0;
	listen_fd = net_listen((const struct sockaddr *)&m->listen.ss,
	    m->listen.len, &bound, e, sizeof e);
	if (listen_fd < 0) {
		addr_format((const struct sockaddr *)&m->listen.ss, a, sizeof a);
		snprintf(err, errlen, "[metrics] listen %s: %s", a, e);
		return -1;
	}
	addr_format((const struct sockaddr *)&bound, a, sizeof a);
	log_info("[metrics] listening on %s: /metrics, /healthz", a);
	return 0;
}

int
metrics_start(const struct conf *c, int64_t started)
{
	if (listen_fd < 0)
		return 0;
	conf = c;
	mc = conf_section_get(c, &metrics_section);
	start_ms = started;
	mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
	    0, on_accept, NULL, on_request, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, listen_fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CLIENTS_MAX,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CLIENTS_PER_IP,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REQUEST_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TIMEOUT_S,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
	    MHD_OPTION_THREAD_STACK_SIZE, (size_t)STACK_SIZE,
	    MHD_OPTION_END);
	if (mhd == NULL) {
		log_warnx("[metrics] cannot start the HTTP server");
		close(listen_fd);
		listen_fd = -1;
		return -1;
	}
	return 0;
}

void
metrics_stop(void)
{
	if (mhd != NULL)
		MHD_stop_daemon(mhd); /* closes listen_fd and every client */
	else if (listen_fd >= 0)
		close(listen_fd);
	mhd = NULL;
	listen_fd = -1;
}
