/*
 * sink_hec.c - the Splunk HEC poster.
 *
 * One thread, one libcurl easy handle (kept alive between requests, no
 * signals).  It reads the journal from its own cursor ("hec"), posts
 * batches of concatenated envelopes, and commits the cursor only after a
 * 2xx, so nothing leaves the journal undelivered:
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
#include "sink_hec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "clock.h"
#include "journal.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 60000
#define RETRY_AFTER_MAX_S 600
#define REPLY_MAX (64 * 1024)
#define COMPLAIN_EVERY_MS 60000

struct buf {
	char *p;
	size_t n, cap;
};

static const struct conf *cf;
static struct journal_reader *reader;
static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond;
static bool stopping;
static atomic_int_least64_t stop_deadline; /* monotonic ms, 0: none */
static char *post_url;                   /* for libcurl only */
static char *url;                        /* for the log: no password */
static char *prefix;                     /* envelope up to "event": */
static char dead_dir[4096];

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
	int64_t deadline = atomic_load(&stop_deadline);

	(void)arg, (void)a, (void)b, (void)c, (void)d;
	return deadline != 0 && clock_now_ms() >= deadline;
}

/* Sleep up to ms; false when told to stop meanwhile. */
static bool
nap(int64_t ms)
{
	bool stop;

	pthread_mutex_lock(&lock);
	if (!stopping)
		clock_cond_wait(&stop_cond, &lock, ms);
	stop = stopping;
	pthread_mutex_unlock(&lock);
	return !stop;
}

static bool
is_stopping(void)
{
	bool s;

	pthread_mutex_lock(&lock);
	s = stopping;
	pthread_mutex_unlock(&lock);
	return s;
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
add_envelope(struct buf *body, const struct journal_rec *r)
{
	char t[48];

	snprintf(t, sizeof t, "{\"time\":%" PRId64 ".%03d", r->time_ms / 1000,
	    (int)(r->time_ms % 1000));
	buf_add(body, t, strlen(t));
	buf_add(body, prefix, strlen(prefix));
	buf_add(body, r->json, r->len);
	buf_add(body, "}", 1);
}

/* Keep a rejected event, with HEC's reply, in state_dir/dead/; 0 once it
 * is safely on disk, -1 if it could not be kept (then it stays queued). */
static int
dead_letter(const struct journal_rec *r, long status, const char *reply)
{
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

static int64_t
jitter(int64_t ms)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)clock_now_ms();
	return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
}

static void *
run(void *arg)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct buf body = {0}, reply = {0}, auth = {0};
	struct journal_rec *recs;
	char **copies;
	size_t max_events = (size_t)cf->hec.batch_max_events, limit = max_events;
	int64_t backoff = 0, last_complaint = 0;
	struct journal_pos skip = {0, 0};
	bool skipping = false, complained = false;
	/* Failed attempts in a row, and since the last line about them:
	 * failures are logged at most once a minute (a flapping receiver
	 * too), and "delivering again" only follows a logged failure. */
	unsigned failures = 0, unlogged = 0;
	char since[64];
	long retry_after;
	char errbuf[CURL_ERROR_SIZE];

	(void)arg;
	recs = calloc(max_events, sizeof *recs);
	copies = calloc(max_events, sizeof *copies);
	if (h == NULL || recs == NULL || copies == NULL) {
		log_errorx("hec: out of memory; not delivering");
		goto out;
	}
	buf_add(&auth, "Authorization: Splunk ", 22);
	buf_add(&auth, cf->hec.token, strlen(cf->hec.token));
	hdrs = curl_slist_append(hdrs, auth.p);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	/* The token was copied into the header list; do not keep it around. */
	memset(auth.p, 0, auth.n);
	curl_easy_setopt(h, CURLOPT_URL, post_url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cf->hec.timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cf->hec.timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &retry_after);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (cf->hec.ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, cf->hec.ca_file);
	if (cf->hec.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}

	for (;;) {
		size_t n = 0;
		int64_t first_ms = 0;
		long status = 0;
		CURLcode rc;

		/* Fill a batch: up to limit events or batch_max_bytes, waiting at
		 * most flush_interval after the first. */
		body.n = 0;
		while (n < limit) {
			int64_t wait = n == 0 ? 1000 :
			    first_ms + cf->hec.flush_interval_ms - clock_now_ms();
			int r = journal_next(reader, &recs[n], wait > 0 ? wait : 0);

			if (r != 1)
				break;
			if (skipping && recs[n].pos.seg == skip.seg &&
			    recs[n].pos.off == skip.off) {
				/* The dead-lettered one: the events before it go
				 * first; met again at the head of a batch, it is
				 * committed past. */
				if (n > 0)
					break;
				journal_commit(reader, recs[0].next);
				skipping = false;
				continue;
			}
			free(copies[n]);
			copies[n] = malloc(recs[n].len + 1);
			if (copies[n] == NULL)
				break;
			memcpy(copies[n], recs[n].json, recs[n].len + 1);
			recs[n].json = copies[n];
			if (n == 0)
				first_ms = clock_now_ms();
			add_envelope(&body, &recs[n]);
			n++;
			if (body.n >= (size_t)cf->hec.batch_max_bytes)
				break;
		}
		if (n == 0) {
			if (is_stopping())
				break;
			continue;
		}

		reply.n = 0;
		if (reply.p != NULL)
			reply.p[0] = '\0'; /* no stale text from the last reply */
		retry_after = -1;
		errbuf[0] = '\0';
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.n);
		rc = curl_easy_perform(h);
		if (rc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);

		if (rc == CURLE_OK && status >= 200 && status < 300) {
			journal_commit(reader, recs[n - 1].next);
			journal_rewind(reader); /* anything read but not sent */
			if (complained)
				log_info("hec: delivering again after %u failed attempt(s)",
				    failures);
			complained = false;
			failures = 0;
			backoff = 0;
			limit = max_events;
			continue;
		}
		journal_rewind(reader);
		if (rc == CURLE_OK && (status == 400 || status == 413)) {
			long bad;
			bool blamed = blames_event(reply.p, &bad);

			if (status == 413 || blamed) {
				if ((bad >= 0 && (size_t)bad < n) || n == 1) {
					bad = bad >= 0 && (size_t)bad < n ? bad : 0;
					if (dead_letter(&recs[bad], status, reply.p) == 0) {
						skip = recs[bad].pos;
						skipping = true;
						continue;
					}
				} else {
					/* Smaller batches until the culprit is alone. */
					limit = status == 413 ? (n + 1) / 2 : 1;
					continue;
				}
			}
		}

		failures++;
		unlogged++;
		if (rc == CURLE_ABORTED_BY_CALLBACK)
			break; /* the shutdown grace ran out */
		if (last_complaint == 0 ||
		    clock_now_ms() - last_complaint >= COMPLAIN_EVERY_MS) {
			since[0] = '\0';
			if (unlogged > 1)
				snprintf(since, sizeof since, " (%u failed attempt(s) "
				    "since the last such line)", unlogged);
			if (rc == CURLE_OK && (status == 401 || status == 403))
				log_errorx("hec: %s rejected the token (%ld %s); events are "
				    "kept and retried%s", url, status,
				    reply.p ? reply.p : "", since);
			else if (rc != CURLE_OK)
				log_warnx("hec: %s: %s; events are kept and retried%s",
				    url, errbuf[0] ? errbuf : curl_easy_strerror(rc),
				    since);
			else
				log_warnx("hec: %s answered %ld %.200s; events are kept "
				    "and retried%s", url, status, reply.p ? reply.p : "",
				    since);
			last_complaint = clock_now_ms();
			unlogged = 0;
			complained = true;
		}
		backoff = backoff == 0 ? BACKOFF_MIN_MS :
		    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		int64_t wait = jitter(backoff);
		if (retry_after >= 0 && retry_after * 1000 > wait)
			wait = retry_after * 1000;
		if (!nap(wait))
			break;
	}
out:
	for (size_t i = 0; copies != NULL && i < max_events; i++)
		free(copies[i]);
	free(copies);
	free(recs);
	free(body.p);
	free(reply.p);
	free(auth.p);
	curl_slist_free_all(hdrs);
	if (h != NULL)
		curl_easy_cleanup(h);
	return NULL;
}

int
sink_hec_start(const struct conf *c)
{
	cf = c;
	clock_cond_init(&stop_cond);
	if ((post_url = make_url(c->hec.url)) == NULL ||
	    (url = conf_url_redact(post_url)) == NULL ||
	    (prefix = make_prefix(&c->hec)) == NULL) {
		log_errorx("hec: out of memory");
		return -1;
	}
	snprintf(dead_dir, sizeof dead_dir, "%s/dead", c->state_dir);
	if (c->hec.insecure)
		log_warnx("hec: insecure = yes: the TLS certificate of %s is NOT "
		    "verified", url);
	if ((reader = journal_reader_open("hec")) == NULL)
		return -1;
	if (pthread_create(&thread, NULL, run, NULL) != 0) {
		log_errorx("hec: cannot start the poster thread");
		return -1;
	}
	log_info("hec: delivering to %s", url);
	return 0;
}

void
sink_hec_stop(int64_t grace_ms)
{
	if (reader == NULL)
		return;
	atomic_store(&stop_deadline, clock_now_ms() + grace_ms);
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&stop_cond);
	pthread_mutex_unlock(&lock);
	journal_wake();
	pthread_join(thread, NULL);
	journal_reader_close(reader);
	reader = NULL;
	free(post_url);
	free(url);
	free(prefix);
	post_url = url = prefix = NULL;
}
