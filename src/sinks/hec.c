/*
 * hec.c - the Splunk HEC poster.
 *
 * One libcurl easy handle (kept alive between requests, no signals), used
 * by the sink runner's thread (sink.c), which reads the journal from the
 * cursor "hec" and batches by batch_max_events, batch_max_bytes and
 * flush_interval.  Each batch is posted as concatenated envelopes, and the
 * cursor is committed only after a 2xx, so nothing leaves the journal
 * undelivered:
 *
 *   2xx                      commit the batch
 *   400/413 + invalid-event-number N
 *                            N goes to state_dir/dead/ with the reply and is
 *                            skipped from then on; all the others are sent
 *                            again (Splunk may or may not have indexed those
 *                            before N: a duplicate has the same id, a loss
 *                            would be for ever)
 *   400/413 without a number smaller batches (400: single events, 413:
 *                            halves) until the culprit is alone; a 400 that
 *                            blames the setup, not the data (a wrong index),
 *                            is retried like a bad token
 *   401/403                  bad token: logged at most once a minute, the
 *                            events stay, retried with backoff
 *   anything else            (connection error, timeout, 408, 429, 5xx...)
 *                            the same batch again after a capped exponential
 *                            backoff with jitter, or Retry-After if longer
 *
 * The token is only ever put in the Authorization header.  A password in
 * the URL's userinfo is a secret too: libcurl gets the URL as it is, and
 * every log line shows it with the password as ***.
 */
#include "sinks/hec.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 60000
#define RETRY_AFTER_MAX_S 600
#define REPLY_MAX (64 * 1024)
/* The bytes of an envelope besides the event and the prefix: what a
 * batch's size counts per event, to end it at batch_max_bytes. */
#define ENVELOPE_BYTES (sizeof "{\"time\":1700000000.000}" - 1)

struct buf {
	char *p;
	size_t n, cap;
};

struct hec {
	CURL *h;
	struct curl_slist *hdrs;
	struct buf body, reply;
	long retry_after;           /* seconds, -1: none */
	char errbuf[CURL_ERROR_SIZE];
	char *post_url;             /* for libcurl only */
	char *url;                  /* for the log: no password */
	char *prefix;               /* envelope up to "event": */
	char dead_dir[4096];
};

static int
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;

	if (b->n < REPLY_MAX)
		buf_add(b, data, n < REPLY_MAX - b->n ? n : REPLY_MAX - b->n);
	return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	long *retry_after = arg;
	size_t n = size * nmemb;

	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char *end;
		long v = strtol(data + 12, &end, 10);
		if (end != data + 12 && v >= 0)
			*retry_after = v > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : v;
	}
	return n;
}

/* Abort a transfer once the shutdown grace has run out. */
static int
on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return sink_runner_out_of_time(arg);
}

/* The envelope fields before the event, built once with jansson so the
 * configured strings are escaped correctly. */
static char *
make_prefix(const struct hec_conf *h)
{
	json_t *o = json_object();
	char *s, *p = NULL;
	size_t n;

	json_object_set_new(o, "host", json_string(h->host));
	json_object_set_new(o, "source", json_string(h->source));
	json_object_set_new(o, "sourcetype", json_string(h->sourcetype));
	if (h->index != NULL)
		json_object_set_new(o, "index", json_string(h->index));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return NULL;
	/* {"host":...} -> ,"host":...,"event": */
	n = strlen(s);
	if ((p = malloc(n + 16)) != NULL)
		snprintf(p, n + 16, ",%.*s,\"event\":", (int)(n - 2), s + 1);
	free(s);
	return p;
}

static char *
make_url(const char *base)
{
	CURLU *u = curl_url();
	char *path = NULL, *out = NULL, *res = NULL;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
		goto done;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    strcmp(path, "/") == 0 || path[0] == '\0')
		curl_url_set(u, CURLUPART_PATH, "/services/collector/event", 0);
	if (curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
		res = strdup(out);
done:
	curl_free(path);
	curl_free(out);
	curl_url_cleanup(u);
	return res;
}

static void
add_envelope(struct hec *hc, const struct journal_rec *r)
{
	struct buf *body = &hc->body;
	char t[48];

	snprintf(t, sizeof t, "{\"time\":%" PRId64 ".%03d", r->time_ms / 1000,
	    (int)(r->time_ms % 1000));
	buf_add(body, t, strlen(t));
	buf_add(body, hc->prefix, strlen(hc->prefix));
	buf_add(body, r->json, r->len);
	buf_add(body, "}", 1);
}

/* Keep a rejected event, with HEC's reply, in state_dir/dead/; 0 once it
 * is safely on disk, -1 if it could not be kept (then it stays queued). */
static int
dead_letter(struct hec *hc, const struct journal_rec *r, long status,
    const char *reply)
{
	const char *dead_dir = hc->dead_dir;
	json_error_t je;
	json_t *ev = json_loadb(r->json, r->len, 0, &je);
	json_t *o = json_object();
	const char *id = json_string_value(json_object_get(ev, "id"));
	char path[4200], tmp[4300];
	int rc = -1, fd;

	json_object_set_new(o, "status", json_integer(status));
	json_object_set_new(o, "reply", json_string(reply ? reply : ""));
	json_object_set_new(o, "event", ev ? ev : json_stringn(r->json, r->len));
	snprintf(path, sizeof path, "%s/%s.json", dead_dir,
	    id ? id : "unknown");
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (mkdir(dead_dir, 0750) != 0 && errno != EEXIST)
		log_warn("hec: dead letters %s", dead_dir);
	if (json_dump_file(o, tmp, JSON_COMPACT) == 0 &&
	    (fd = open(tmp, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) == 0 && rename(tmp, path) == 0)
			rc = 0;
		close(fd);
	}
	if (rc != 0)
		log_warn("hec: cannot keep the rejected event in %s; it stays "
		    "queued", path);
	else
		log_errorx("hec: event %s rejected (%ld): moved to %s", id ? id : "?",
		    status, path);
	json_decref(o);
	return rc;
}

/*
 * Read a 400's reply: whether it blames the events (bad data) rather than
 * the setup (an index the token may not use, a missing channel...), for
 * only then does an event go to dead/; and which event, or -1.
 */
static bool
blames_event(const char *reply, long *bad)
{
	json_error_t je;
	json_t *o = json_loads(reply ? reply : "", 0, &je);
	json_t *n = json_object_get(o, "invalid-event-number");
	json_int_t code = json_integer_value(json_object_get(o, "code"));
	/* 7 incorrect index, 10/11 data channel, 14 ack disabled: even with
	 * an invalid-event-number, every event would fail the same way. */
	bool setup = code == 7 || code == 10 || code == 11 || code == 14;
	bool event = !setup && (n != NULL || code == 6 || code == 12 ||
	    code == 13 || code == 15);

	*bad = json_is_integer(n) ? (long)json_integer_value(n) : -1;
	json_decref(o);
	return event;
}


static void
deliver(void *state, struct sink_runner *run, const struct journal_rec *recs,
    size_t n, struct sink_result *r)
{
	struct hec *hc = state;
	const char *reply;
	long status = 0;
	CURLcode rc;

	hc->body.n = 0;
	for (size_t i = 0; i < n; i++)
		add_envelope(hc, &recs[i]);
	hc->reply.n = 0;
	if (hc->reply.p != NULL)
		hc->reply.p[0] = '\0'; /* no stale text from the last reply */
	hc->retry_after = -1;
	hc->errbuf[0] = '\0';
	curl_easy_setopt(hc->h, CURLOPT_POSTFIELDS, hc->body.p);
	curl_easy_setopt(hc->h, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)hc->body.n);
	curl_easy_setopt(hc->h, CURLOPT_XFERINFODATA, run);
	rc = curl_easy_perform(hc->h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(hc->h, CURLINFO_RESPONSE_CODE, &status);
	reply = hc->reply.p ? hc->reply.p : "";

	if (rc == CURLE_OK && status >= 200 && status < 300) {
		r->verdict = SINK_DELIVERED;
		r->n = n;
		return;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		r->verdict = SINK_STOPPED; /* the shutdown grace ran out */
		return;
	}
	if (rc == CURLE_OK && (status == 400 || status == 413)) {
		long bad;
		bool blamed = blames_event(hc->reply.p, &bad);

		if (status == 413 || blamed) {
			if ((bad >= 0 && (size_t)bad < n) || n == 1) {
				bad = bad >= 0 && (size_t)bad < n ? bad : 0;
				if (dead_letter(hc, &recs[bad], status,
				    hc->reply.p) == 0) {
					r->verdict = SINK_SET_ASIDE;
					r->n = (size_t)bad;
					return;
				}
			} else {
				/* Smaller batches until the culprit is alone. */
				r->verdict = SINK_SPLIT;
				r->n = status == 413 ? (n + 1) / 2 : 1;
				return;
			}
		}
	}

	r->verdict = SINK_RETRY;
	if (hc->retry_after >= 0)
		r->retry_after_ms = (int64_t)hc->retry_after * 1000;
	if (rc == CURLE_OK && (status == 401 || status == 403)) {
		r->error = true;
		snprintf(r->why, sizeof r->why, "%s rejected the token (%ld %s); "
		    "events are kept and retried", hc->url, status, reply);
	} else if (rc != CURLE_OK) {
		snprintf(r->why, sizeof r->why, "%s: %s; events are kept and "
		    "retried", hc->url, hc->errbuf[0] ? hc->errbuf :
		    curl_easy_strerror(rc));
	} else {
		snprintf(r->why, sizeof r->why, "%s answered %ld %.200s; events "
		    "are kept and retried", hc->url, status, reply);
	}
}

/* ---- the [hec] section ---- */

#define H(f) offsetof(struct hec_conf, f)

static int
check_url(const char *s, char *err, size_t errlen)
{
	static const char *const schemes[] = {"https", "http", NULL};
	char path[4096], *shown;

	if (conf_url_check(s, schemes, "https://host:8088", path, sizeof path,
	    err, errlen) != 0)
		return -1;
	if (path[0] == '\0' || strncmp(path, "/services/collector", 19) == 0)
		return 0;
	shown = conf_url_redact(s);
	snprintf(err, errlen, "'%s': the path must be empty or "
	    "/services/collector...", shown != NULL ? shown : "");
	free(shown);
	return -1;
}

static int
finish(void *sec, struct conf *c, char *err, size_t errlen)
{
	struct hec_conf *h = sec;

	if (c->spool_max != 0 && h->spool_max != 0) {
		snprintf(err, errlen, "spool_max is set both as a global key and "
		    "in [hec] (its old place): keep the global one");
		return -1;
	}
	if (c->spool_max == 0)
		c->spool_max = h->spool_max;
	if (h->host == NULL) {
		char name[256];

		conf_host_name(name, sizeof name);
		if (!conf_utf8_valid(name)) {
			snprintf(err, errlen,
			    "this host's name is not valid UTF-8: set hec.host");
			return -1;
		}
		if (conf_replace_str(&h->host, name, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static const struct conf_key keys[] = {
	{.name = "url", .type = CONF_URL, .off = H(url), .check = check_url,
	    .env = "DEYE_SPLUNK_HEC_URL"},
	{.name = "token", .type = CONF_SECRET, .off = H(token),
	    .env = "DEYE_SPLUNK_HEC_TOKEN"},
	{.name = "token_file", .type = CONF_SECRETFILE, .off = H(token_file),
	    .fills = H(token)},
	{.name = "index", .type = CONF_TEXT, .off = H(index),
	    .env = "DEYE_SPLUNK_HEC_INDEX"},
	{.name = "sourcetype", .type = CONF_NONEMPTY_TEXT, .off = H(sourcetype),
	    .def = "_json", .env = "DEYE_SPLUNK_HEC_SOURCETYPE"},
	{.name = "source", .type = CONF_NONEMPTY_TEXT, .off = H(source),
	    .def = "deye-mitm"},
	{.name = "host", .type = CONF_TEXT, .off = H(host)},
	{.name = "ca_file", .type = CONF_STR, .off = H(ca_file),
	    .env = "DEYE_SPLUNK_HEC_CA_FILE"},
	{.name = "insecure", .type = CONF_BOOL, .off = H(insecure), .def = "no",
	    .env = "DEYE_SPLUNK_HEC_INSECURE"},
	{.name = "batch_max_events", .type = CONF_LONG,
	    .off = H(batch_max_events), .def = "100", .min = 1, .max = 100000},
	{.name = "batch_max_bytes", .type = CONF_SIZE, .off = H(batch_max_bytes),
	    .def = "512K", .min = CONF_KI(1), .max = CONF_MI(512)},
	{.name = "flush_interval", .type = CONF_DURATION,
	    .off = H(flush_interval_ms), .def = "1s", .min = 10,
	    .max = CONF_SEC(3600)},
	{.name = "timeout", .type = CONF_DURATION, .off = H(timeout_ms),
	    .def = "10s", .min = 100, .max = CONF_SEC(600)},
	{.name = "spool_max", .type = CONF_SIZE, .off = H(spool_max),
	    .min = CONF_KI(64), .max = CONF_GI(1024), .hidden = true},
};

const struct conf_section sink_hec_section = {
	.name = "hec",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(struct hec_conf),
	.finish = finish,
};

/* ---- the sink ---- */

static bool
wanted(const struct conf *c)
{
	const struct hec_conf *h = conf_section_get(c, &sink_hec_section);

	if (h == NULL)
		return false;
	if (h->url != NULL && h->token != NULL)
		return true;
	if (h->url != NULL)
		log_warnx("hec: url is set but no token: not delivering to HEC");
	else if (h->token != NULL)
		log_warnx("hec: a token is set but no url: not delivering to HEC");
	return false;
}

static void
stop(void *state)
{
	struct hec *hc = state;

	if (hc == NULL)
		return;
	curl_slist_free_all(hc->hdrs);
	if (hc->h != NULL)
		curl_easy_cleanup(hc->h);
	free(hc->body.p);
	free(hc->reply.p);
	free(hc->post_url);
	free(hc->url);
	free(hc->prefix);
	free(hc);
}

static int
start(const struct conf *c, void **state, struct sink_limits *lim)
{
	const struct hec_conf *hf = conf_section_get(c, &sink_hec_section);
	struct hec *hc = calloc(1, sizeof *hc);
	struct buf auth = {0};
	CURL *h;

	if (hc == NULL || (hc->h = h = curl_easy_init()) == NULL ||
	    (hc->post_url = make_url(hf->url)) == NULL ||
	    (hc->url = conf_url_redact(hc->post_url)) == NULL ||
	    (hc->prefix = make_prefix(hf)) == NULL ||
	    buf_add(&auth, "Authorization: Splunk ", 22) != 0 ||
	    buf_add(&auth, hf->token, strlen(hf->token)) != 0) {
		log_errorx("hec: out of memory");
		goto fail;
	}
	snprintf(hc->dead_dir, sizeof hc->dead_dir, "%s/dead", c->state_dir);
	if (hf->insecure)
		log_warnx("hec: insecure = yes: the TLS certificate of %s is NOT "
		    "verified", hc->url);
	hc->hdrs = curl_slist_append(hc->hdrs, auth.p);
	hc->hdrs = curl_slist_append(hc->hdrs, "Content-Type: application/json");
	/* The token was copied into the header list; do not keep it around. */
	memset(auth.p, 0, auth.n);
	free(auth.p);
	curl_easy_setopt(h, CURLOPT_URL, hc->post_url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hc->hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)hf->timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)hf->timeout_ms);
	/* Never follow the URL into another scheme (file:, ...).  The string
	 * form is libcurl 7.85's; the bit mask it replaced is deprecated
	 * there but is all that Debian 11 and Ubuntu 22.04 have. */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &hc->reply);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hc->retry_after);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, hc->errbuf);
	if (hf->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, hf->ca_file);
	if (hf->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	*lim = (struct sink_limits){
		.max_events = (size_t)hf->batch_max_events,
		.max_bytes = (size_t)hf->batch_max_bytes,
		.overhead = strlen(hc->prefix) + ENVELOPE_BYTES,
		.flush_ms = hf->flush_interval_ms,
		.retry_min_ms = BACKOFF_MIN_MS,
		.retry_max_ms = BACKOFF_MAX_MS,
	};
	*state = hc;
	log_info("hec: delivering to %s", hc->url);
	return 0;

fail:
	if (auth.p != NULL)
		memset(auth.p, 0, auth.n);
	free(auth.p);
	stop(hc);
	return -1;
}

const struct sink_ops sink_hec_ops = {
	.name = "hec",
	.section = &sink_hec_section,
	.wanted = wanted,
	.start = start,
	.deliver = deliver,
	.reopen = NULL,
	.stop = stop,
};
