/*
 * mqtt.c - the MQTT sink: events to a broker, Home Assistant discovery.
 *
 * libmosquitto, driven by the sink runner's own thread with
 * mosquitto_loop() (no mosquitto_loop_start thread: the runner already is
 * the one thread that owns this connection).  What goes on which topic is
 * mqtt_topics.c's; this file connects, publishes and counts acknowledgements.
 *
 * Delivery: a batch of journal records is published only while connected,
 * at the configured QoS, through a small in-flight window; the batch is
 * committed up to the last record whose every message was acknowledged
 * (PUBACK at QoS 1), and the rest goes again.  libmosquitto's own queue,
 * which has no bound while the broker is away, never holds more than one
 * batch: a lost connection destroys the handle with its queue, and the
 * journal holds the backlog.
 *
 * Connecting: a new handle each time, the will P/status = offline
 * (retained), and on CONNACK: P/status online, each logger's availability
 * and every discovery config, before the backlog.  Failures (refused,
 * down, bad credentials, TLS, no CONNACK or PUBACK within half the
 * keepalive, at most ACK_WAIT_MS: a broker that should have pinged)
 * are SINK_RETRY: the runner backs off 0.5 s doubling to 60 s and logs at
 * most once a minute.
 *
 * Idle (the runner found nothing to deliver, twice a second): connect if
 * need be, so that P/status says online before the first event (a
 * failure is the runner's, logged and backed off like a delivery's); the
 * loop keeps the connection alive, reads Home Assistant's birth message
 * (then every discovery config again) and marks silent loggers offline.
 *
 * TLS: libmosquitto wants a CA file or directory, so without ca_file it
 * gets the system's (OpenSSL's default paths and /etc/ssl/certs); the
 * reason of a failed handshake, which libmosquitto only logs, is kept
 * from its log callback for our one line.
 */
#include "sinks/mqtt.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>
#include <mosquitto.h>

#include "clock.h"
#include "log.h"
#include "sinks/mqtt_topics.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 60000
#define ACK_WAIT_MS 10000   /* CONNACK or the next PUBACK, at most */
#define LOOP_MS 100         /* one mosquitto_loop while waiting */
#define INFLIGHT 32         /* messages sent but not acknowledged */
#define BATCH_EVENTS 256
#define SYSTEM_CA_DIR "/etc/ssl/certs"

struct sent {
	int mid;
	size_t rec;   /* the batch record it belongs to */
	bool acked;
};

struct mqtt {
	struct mosquitto *m;      /* NULL: not connected */
	struct mqtt_topics *topics;
	struct mqtt_out out;
	char *host;
	int port;
	bool tls;
	char *url;                /* for the log: no password */
	const struct mqtt_conf *cf;
	char client_id[300];
	char *username, *password; /* from the keys or the URL */
	int qos;
	int64_t ack_wait_ms;      /* no CONNACK or PUBACK for this long: gone */
	int connack;              /* -1: waiting, else the CONNACK code */
	bool lost;                /* the connection dropped */
	int lost_rc;
	bool ha_birth;            /* Home Assistant said online */
	bool ever;                /* connected once: later ones are debug */
	char liberr[256];         /* libmosquitto's last error line (TLS) */
	struct sent *sent;        /* this batch's messages, in order */
	size_t nsent, capsent;
	size_t unacked;
};

/* ---- libmosquitto callbacks (on the runner's thread, in the loop) ---- */

static void
on_connect(struct mosquitto *m, void *arg, int rc)
{
	struct mqtt *q = arg;

	q->connack = rc;
	if (rc == 0 && mqtt_topics_ha_status(q->topics) != NULL)
		mosquitto_subscribe(m, NULL, mqtt_topics_ha_status(q->topics), 0);
}

static void
on_disconnect(struct mosquitto *m, void *arg, int rc)
{
	struct mqtt *q = arg;

	(void)m;
	q->lost = true;
	q->lost_rc = rc;
}

static void
on_publish(struct mosquitto *m, void *arg, int mid)
{
	struct mqtt *q = arg;

	(void)m;
	/* Newest first: acknowledgements come nearly in order. */
	for (size_t i = q->nsent; i-- > 0;) {
		if (q->sent[i].mid == mid && !q->sent[i].acked) {
			q->sent[i].acked = true;
			q->unacked--;
			return;
		}
	}
}

static void
on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
	struct mqtt *q = arg;
	const char *ha = mqtt_topics_ha_status(q->topics);

	(void)m;
	if (ha != NULL && strcmp(msg->topic, ha) == 0 && msg->payloadlen == 6 &&
	    memcmp(msg->payload, "online", 6) == 0)
		q->ha_birth = true;
}

static void
on_log(struct mosquitto *m, void *arg, int level, const char *str)
{
	struct mqtt *q = arg;

	(void)m;
	/* The why of a failed TLS handshake ("certificate verify failed")
	 * is only said here. */
	if (level == MOSQ_LOG_ERR)
		snprintf(q->liberr, sizeof q->liberr, "%s", str);
}

/* ---- connection ---- */

/* One mosquitto_loop while acknowledgements are due.  A broker with
 * Nagle on (mosquitto's default) holds each PUBACK until the one before
 * it is ACKed, and our kernel delays that ACK up to 40 ms: a batch's last
 * acknowledgements would each wait that long.  TCP_QUICKACK (which the
 * kernel turns off again by itself) makes it ACK at once. */
static int
loop_acks(struct mqtt *q)
{
	int fd = mosquitto_socket(q->m), one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one,
		    sizeof one);
	return mosquitto_loop(q->m, LOOP_MS, 1);
}

static void
drop(struct mqtt *q)
{
	if (q->m != NULL) {
		mosquitto_disconnect(q->m);
		mosquitto_destroy(q->m);
	}
	q->m = NULL;
	q->nsent = 0;
	q->unacked = 0;
}

static const char *
strerr(int rc)
{
	return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

/* Publish out's messages, not tied to a record (rec SIZE_MAX); false and
 * why when the connection is gone. */
static bool
publish_out(struct mqtt *q, size_t rec, char *why, size_t whylen)
{
	for (size_t i = 0; i < q->out.n; i++) {
		const struct mqtt_msg *msg = &q->out.v[i];
		int mid = 0, rc;

		if (q->nsent == q->capsent) {
			size_t cap = q->capsent ? q->capsent * 2 : 256;
			struct sent *v = realloc(q->sent, cap * sizeof *v);

			if (v == NULL) {
				snprintf(why, whylen, "out of memory");
				return false;
			}
			q->sent = v;
			q->capsent = cap;
		}
		rc = mosquitto_publish(q->m, &mid, msg->topic,
		    (int)strlen(msg->payload), msg->payload, q->qos, msg->retain);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(why, whylen, "publishing to %s failed: %s; "
			    "events are kept and retried", q->url, strerr(rc));
			return false;
		}
		q->sent[q->nsent++] = (struct sent){mid, rec, false};
		q->unacked++;
	}
	mqtt_out_clear(&q->out);
	return true;
}

/* Run the loop until every message sent is acknowledged; false with why
 * when the connection is lost or the broker stays silent for ack_wait_ms
 * (then what was acknowledged so far still counts). */
static bool
wait_acks(struct mqtt *q, struct sink_runner *run, char *why, size_t whylen)
{
	int64_t last = clock_now_ms();
	size_t before = q->unacked;

	while (q->unacked > 0) {
		int rc = loop_acks(q);

		if (q->lost || rc != MOSQ_ERR_SUCCESS) {
			snprintf(why, whylen, "connection to %s lost (%s) with %zu "
			    "message(s) unacknowledged; events are kept and "
			    "retried", q->url, strerr(q->lost ? q->lost_rc : rc),
			    q->unacked);
			return false;
		}
		if (q->unacked < before) {
			before = q->unacked;
			last = clock_now_ms();
		} else if (clock_now_ms() - last >= q->ack_wait_ms) {
			snprintf(why, whylen, "%s acknowledged nothing for %g s "
			    "(%zu message(s) waiting); events are kept and "
			    "retried", q->url, q->ack_wait_ms / 1000.0,
			    q->unacked);
			return false;
		}
		if (sink_runner_out_of_time(run)) {
			snprintf(why, whylen, "stopping");
			return false;
		}
	}
	return true;
}

/* A failed handshake: OpenSSL's reason, which libmosquitto only logs;
 * none when its own host name check failed. */
static void
tls_why(const struct mqtt *q, char *why, size_t whylen)
{
	const char *e = q->liberr, *colon;

	/* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate
	 * verify failed": the reason is after the last colon. */
	if ((colon = strrchr(e, ':')) != NULL && colon[1] != '\0')
		e = colon + 1;
	if (e[0] != '\0')
		snprintf(why, whylen, "cannot connect to %s: TLS handshake "
		    "failed: %s (a certificate not signed by a CA of %s, or "
		    "not for %s?); events are kept and retried", q->url, e,
		    q->cf->ca_file != NULL ? q->cf->ca_file : "the system store",
		    q->host);
	else
		snprintf(why, whylen, "cannot connect to %s: TLS handshake "
		    "failed: the broker's certificate is not for %s; events "
		    "are kept and retried", q->url, q->host);
}

static const char *
connack_text(int rc)
{
	switch (rc) {
	case 1: return "unacceptable protocol version";
	case 2: return "client id rejected";
	case 3: return "broker unavailable";
	case 4: return "bad user name or password";
	case 5: return "not authorised";
	default: return "refused";
	}
}

/* Connect, then status, availability and discovery, acknowledged; 0, or
 * -1 with why. */
static int
connect_broker(struct mqtt *q, struct sink_runner *run, char *why,
    size_t whylen)
{
	const struct mqtt_conf *cf = q->cf;
	const char *status = mqtt_topics_status(q->topics);
	int64_t t0;
	int rc;

	if ((q->m = mosquitto_new(q->client_id, true, q)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	mosquitto_int_option(q->m, MOSQ_OPT_PROTOCOL_VERSION,
	    MQTT_PROTOCOL_V311);
	mosquitto_max_inflight_messages_set(q->m, INFLIGHT);
	/* Small messages, each waited for: no Nagle delay. */
	mosquitto_int_option(q->m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(q->m, on_connect);
	mosquitto_disconnect_callback_set(q->m, on_disconnect);
	mosquitto_publish_callback_set(q->m, on_publish);
	mosquitto_message_callback_set(q->m, on_message);
	mosquitto_log_callback_set(q->m, on_log);
	q->liberr[0] = '\0';
	if (mosquitto_will_set(q->m, status, 7, "offline", q->qos, true) !=
	    MOSQ_ERR_SUCCESS ||
	    (q->username != NULL && mosquitto_username_pw_set(q->m,
	    q->username, q->password) != MOSQ_ERR_SUCCESS)) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (q->tls) {
		/* libmosquitto wants a CA file or directory: without
		 * ca_file, the system store (both OpenSSL's defaults and
		 * Debian's directory). */
		if (cf->ca_file == NULL)
			mosquitto_int_option(q->m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
		rc = mosquitto_tls_set(q->m, cf->ca_file, cf->ca_file == NULL ?
		    SYSTEM_CA_DIR : NULL, cf->cert_file, cf->key_file, NULL);
		if (rc == MOSQ_ERR_SUCCESS && cf->insecure) {
			mosquitto_tls_opts_set(q->m, 0, NULL, NULL);
			mosquitto_tls_insecure_set(q->m, true);
		}
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(why, whylen, "TLS setup for %s failed: %s", q->url,
			    strerr(rc));
			goto fail;
		}
	}
	q->connack = -1;
	q->lost = false;
	rc = mosquitto_connect_async(q->m, q->host, q->port,
	    (int)(cf->keepalive_ms / 1000));
	if (rc == MOSQ_ERR_TLS) {
		tls_why(q, why, whylen);
		goto fail;
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(why, whylen, "cannot connect to %s: %s; events are kept "
		    "and retried", q->url, strerr(rc));
		goto fail;
	}
	t0 = clock_now_ms();
	while (q->connack < 0) {
		rc = mosquitto_loop(q->m, LOOP_MS, 1);
		if (q->connack > 0)
			break; /* refused: said below */
		if (q->lost || rc != MOSQ_ERR_SUCCESS) {
			if (q->lost)
				rc = q->lost_rc;
			/* A refused handshake is MOSQ_ERR_TLS, or, when the
			 * broker's alert is read first, a protocol error or a
			 * lost connection: OpenSSL's line tells. */
			if (rc == MOSQ_ERR_TLS || (q->tls && q->liberr[0] != '\0'))
				tls_why(q, why, whylen);
			else
				snprintf(why, whylen, "cannot connect to %s: %s; "
				    "events are kept and retried", q->url,
				    strerr(rc));
			goto fail;
		}
		if (clock_now_ms() - t0 >= q->ack_wait_ms) {
			snprintf(why, whylen, "no answer (CONNACK) from %s in %g s; "
			    "events are kept and retried", q->url,
			    q->ack_wait_ms / 1000.0);
			goto fail;
		}
		if (sink_runner_out_of_time(run)) {
			snprintf(why, whylen, "stopping");
			goto fail;
		}
	}
	if (q->connack != 0) {
		snprintf(why, whylen, "%s refused the connection: %s; events are "
		    "kept and retried", q->url, connack_text(q->connack));
		goto fail;
	}
	if (q->ever)
		log_debug("mqtt: connected to %s", q->url);
	else
		log_info("mqtt: connected to %s", q->url);
	q->ever = true;
	q->ha_birth = false;
	mqtt_out_clear(&q->out);
	mqtt_topics_expire(q->topics, clock_wall_ms(), &q->out);
	if (mqtt_topics_connected(q->topics, &q->out) != 0) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (!publish_out(q, SIZE_MAX, why, whylen) ||
	    !wait_acks(q, run, why, whylen))
		goto fail;
	q->nsent = 0;
	return 0;
fail:
	mqtt_out_clear(&q->out);
	drop(q);
	return -1;
}

/* ---- the sink ---- */

static void
deliver(void *state, struct sink_runner *run, const struct journal_rec *recs,
    size_t n, struct sink_result *r)
{
	struct mqtt *q = state;
	size_t done, published = 0;
	bool ok = true;

	if (q->m == NULL &&
	    connect_broker(q, run, r->why, sizeof r->why) != 0) {
		r->verdict = SINK_RETRY;
		return;
	}
	q->nsent = 0;
	q->unacked = 0;
	for (size_t i = 0; i < n && ok; i++) {
		json_error_t je;
		json_t *ev = json_loadb(recs[i].json, recs[i].len, 0, &je);

		if (ev == NULL) {
			/* Not ours to judge: it goes nowhere, and on. */
			log_warnx("mqtt: a journal record is not JSON (%s), "
			    "skipped", je.text);
			published = i + 1;
			continue;
		}
		if (mqtt_topics_event(q->topics, ev, recs[i].json, recs[i].len,
		    clock_wall_ms(), &q->out) != 0) {
			snprintf(r->why, sizeof r->why, "out of memory");
			ok = false;
		}
		json_decref(ev);
		if (q->out.note[0] != '\0')
			log_warnx("mqtt: %s", q->out.note);
		if (ok && (ok = publish_out(q, i, r->why, sizeof r->why)))
			published = i + 1;
		/* Keep the window full, no more: the library queues the rest
		 * in memory. */
		while (ok && q->unacked >= INFLIGHT) {
			size_t before = q->unacked;
			int64_t t0 = clock_now_ms();

			while (ok && q->unacked == before) {
				int rc = loop_acks(q);

				if (q->lost || rc != MOSQ_ERR_SUCCESS) {
					snprintf(r->why, sizeof r->why,
					    "connection to %s lost (%s); events "
					    "are kept and retried", q->url,
					    strerr(q->lost ? q->lost_rc : rc));
					ok = false;
				} else if (clock_now_ms() - t0 >= q->ack_wait_ms) {
					snprintf(r->why, sizeof r->why, "%s "
					    "acknowledged nothing for %g s; events "
					    "are kept and retried", q->url,
					    q->ack_wait_ms / 1000.0);
					ok = false;
				}
			}
		}
	}
	if (ok)
		ok = wait_acks(q, run, r->why, sizeof r->why);
	/* The records published whole and acknowledged, from the first. */
	done = published;
	for (size_t i = 0; i < q->nsent; i++)
		if (!q->sent[i].acked && q->sent[i].rec < done)
			done = q->sent[i].rec;
	if (!ok) {
		mqtt_out_clear(&q->out);
		drop(q);
	}
	q->nsent = 0;
	if (done > 0) {
		r->verdict = SINK_DELIVERED;
		r->n = done;
		return;
	}
	r->verdict = strcmp(r->why, "stopping") == 0 ? SINK_STOPPED :
	    SINK_RETRY;
}

static void
idle(void *state, struct sink_runner *run, struct sink_result *r)
{
	struct mqtt *q = state;
	char why[1024];
	int rc;

	if (q->m == NULL) {
		/* Say online (and publish discovery) with no event to deliver
		 * yet; a failure is the runner's to log and back off. */
		if (connect_broker(q, run, r->why, sizeof r->why) != 0)
			r->verdict = strcmp(r->why, "stopping") == 0 ?
			    SINK_STOPPED : SINK_RETRY;
		return;
	}
	rc = mosquitto_loop(q->m, 0, 1);
	if (q->lost || rc != MOSQ_ERR_SUCCESS) {
		/* The next idle connects again, and says why if it cannot. */
		log_debug("mqtt: connection to %s lost while idle", q->url);
		drop(q);
		return;
	}
	mqtt_out_clear(&q->out);
	if (q->ha_birth) {
		q->ha_birth = false;
		log_info("mqtt: Home Assistant is online: discovery published "
		    "again");
		mqtt_topics_discovery(q->topics, &q->out);
	}
	mqtt_topics_expire(q->topics, clock_wall_ms(), &q->out);
	if (q->out.n == 0)
		return;
	q->nsent = 0;
	q->unacked = 0;
	if (!publish_out(q, SIZE_MAX, why, sizeof why) ||
	    !wait_acks(q, run, why, sizeof why)) {
		log_debug("mqtt: %s", why);
		drop(q);
	}
	q->nsent = 0;
}

static void
stop(void *state)
{
	struct mqtt *q = state;

	if (q == NULL)
		return;
	if (q->m != NULL) {
		/* A clean goodbye: the will is not sent, so say offline. */
		int mid;

		mosquitto_publish(q->m, &mid, mqtt_topics_status(q->topics), 7,
		    "offline", q->qos, true);
		mosquitto_loop(q->m, LOOP_MS, 1);
	}
	drop(q);
	mqtt_out_free(&q->out);
	mqtt_topics_free(q->topics);
	free(q->sent);
	free(q->host);
	free(q->url);
	free(q->username);
	if (q->password != NULL)
		explicit_bzero(q->password, strlen(q->password));
	free(q->password);
	free(q);
}

/* host, port, TLS and the userinfo of an mqtt:// or mqtts:// URL. */
static int
parse_url(struct mqtt *q, const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *user = NULL, *pw = NULL, *scheme = NULL;
	int rc = -1;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url,
	    CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	q->tls = strcmp(scheme, "mqtts") == 0;
	q->port = q->tls ? 8883 : 1883;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		q->port = (int)strtol(port, NULL, 10);
	/* [::1] -> ::1 */
	if (host[0] == '[') {
		size_t n = strlen(host);
		q->host = strndup(host + 1, n > 2 ? n - 2 : 0);
	} else
		q->host = strdup(host);
	if (q->host == NULL)
		goto out;
	if (q->username == NULL &&
	    curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) == CURLUE_OK &&
	    (q->username = strdup(user)) == NULL)
		goto out;
	if (q->password == NULL && curl_url_get(u, CURLUPART_PASSWORD, &pw,
	    CURLU_URLDECODE) == CURLUE_OK && (q->password = strdup(pw)) == NULL)
		goto out;
	rc = 0;
out:
	if (pw != NULL)
		explicit_bzero(pw, strlen(pw));
	curl_free(pw);
	curl_free(user);
	curl_free(port);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static int
start(const struct conf *c, void **state, struct sink_limits *lim)
{
	const struct mqtt_conf *cf = conf_section_get(c, &sink_mqtt_section);
	struct mqtt *q = calloc(1, sizeof *q);
	struct mqtt_topics_conf tc;

	if (q == NULL)
		goto nomem;
	q->cf = cf;
	if (cf->client_id != NULL)
		snprintf(q->client_id, sizeof q->client_id, "%s", cf->client_id);
	else {
		char name[256];

		/* Not in finish: -n shows the default as unset, the same on
		 * every host. */
		conf_host_name(name, sizeof name);
		snprintf(q->client_id, sizeof q->client_id, "deye-mitm-%s", name);
	}
	q->qos = (int)cf->qos;
	q->ack_wait_ms = cf->keepalive_ms / 2 < ACK_WAIT_MS ?
	    cf->keepalive_ms / 2 : ACK_WAIT_MS;
	tc = (struct mqtt_topics_conf){
		.prefix = cf->topic_prefix,
		.discovery_prefix = cf->discovery ? cf->discovery_prefix : NULL,
		.expire_after_s = cf->expire_after_ms / 1000,
		.dummycloud = cf->dummycloud_topics,
	};
	if ((cf->username != NULL && (q->username = strdup(cf->username)) ==
	    NULL) || (cf->password != NULL &&
	    (q->password = strdup(cf->password)) == NULL) ||
	    parse_url(q, cf->url) != 0 ||
	    (q->url = conf_url_redact(cf->url)) == NULL ||
	    (q->topics = mqtt_topics_new(&tc)) == NULL)
		goto nomem;
	if (q->tls && cf->insecure)
		log_warnx("mqtt: insecure = yes: the TLS certificate of %s is NOT "
		    "verified", q->url);
	*lim = (struct sink_limits){
		.max_events = BATCH_EVENTS,
		.max_bytes = 1024 * 1024,
		.overhead = 0,
		.flush_ms = 0,
		.retry_min_ms = BACKOFF_MIN_MS,
		.retry_max_ms = BACKOFF_MAX_MS,
	};
	*state = q;
	log_info("mqtt: delivering to %s as %s", q->url, q->client_id);
	return 0;
nomem:
	log_errorx("mqtt: out of memory, or a URL it cannot read");
	stop(q);
	return -1;
}

static bool
wanted(const struct conf *c)
{
	const struct mqtt_conf *cf = conf_section_get(c, &sink_mqtt_section);

	return cf != NULL && cf->url != NULL;
}

/* ---- the [mqtt] section ---- */

#define M(f) offsetof(struct mqtt_conf, f)

static int
check_url(const char *s, char *err, size_t errlen)
{
	static const char *const schemes[] = {"mqtt", "mqtts", NULL};
	char path[4096], *shown;

	if (conf_url_check(s, schemes, "mqtt://host:1883", path, sizeof path,
	    err, errlen) != 0)
		return -1;
	if (path[0] == '\0')
		return 0;
	shown = conf_url_redact(s);
	snprintf(err, errlen, "'%s': an MQTT URL has no path",
	    shown != NULL ? shown : "");
	free(shown);
	return -1;
}

/* A topic level of ours: no wildcard, no empty level, valid UTF-8. */
static int
check_prefix(const char *name, const char *v, char *err, size_t errlen)
{
	if (v[0] == '\0' || strpbrk(v, "+#") != NULL || v[0] == '/' ||
	    v[strlen(v) - 1] == '/' || strstr(v, "//") != NULL ||
	    !conf_utf8_valid(v) || conf_has_control(v)) {
		snprintf(err, errlen, "mqtt.%s '%s': not a topic prefix (no +, #, "
		    "empty level or control character)", name, v);
		return -1;
	}
	return 0;
}

static int
finish(void *sec, struct conf *c, char *err, size_t errlen)
{
	struct mqtt_conf *m = sec;

	(void)c;
	if (check_prefix("topic_prefix", m->topic_prefix, err, errlen) != 0 ||
	    check_prefix("discovery_prefix", m->discovery_prefix, err,
	    errlen) != 0)
		return -1;
	if ((m->cert_file == NULL) != (m->key_file == NULL)) {
		snprintf(err, errlen, "mqtt: cert_file and key_file go together");
		return -1;
	}
	if (m->username != NULL && conf_has_control(m->username)) {
		snprintf(err, errlen, "mqtt.username has a control character");
		return -1;
	}
	return 0;
}

static const struct conf_key keys[] = {
	{.name = "url", .type = CONF_URL, .off = M(url), .check = check_url,
	    .env = "DEYE_MQTT_URL"},
	{.name = "username", .type = CONF_STR, .off = M(username),
	    .env = "DEYE_MQTT_USERNAME"},
	{.name = "password", .type = CONF_SECRET, .off = M(password),
	    .env = "DEYE_MQTT_PASSWORD"},
	{.name = "password_file", .type = CONF_SECRETFILE,
	    .off = M(password_file), .fills = M(password)},
	{.name = "client_id", .type = CONF_TEXT, .off = M(client_id)},
	{.name = "ca_file", .type = CONF_STR, .off = M(ca_file)},
	{.name = "cert_file", .type = CONF_STR, .off = M(cert_file)},
	{.name = "key_file", .type = CONF_STR, .off = M(key_file)},
	{.name = "insecure", .type = CONF_BOOL, .off = M(insecure), .def = "no"},
	{.name = "topic_prefix", .type = CONF_NONEMPTY_TEXT,
	    .off = M(topic_prefix), .def = "deye-mitm"},
	{.name = "qos", .type = CONF_LONG, .off = M(qos), .def = "1", .min = 0,
	    .max = 1},
	{.name = "keepalive", .type = CONF_DURATION, .off = M(keepalive_ms),
	    .def = "60s", .min = CONF_SEC(5), .max = CONF_SEC(65535)},
	{.name = "discovery", .type = CONF_BOOL, .off = M(discovery),
	    .def = "yes"},
	{.name = "discovery_prefix", .type = CONF_NONEMPTY_TEXT,
	    .off = M(discovery_prefix), .def = "homeassistant"},
	{.name = "expire_after", .type = CONF_DURATION,
	    .off = M(expire_after_ms), .def = "10m", .min = CONF_SEC(1),
	    .max = CONF_SEC(86400)},
	{.name = "dummycloud_topics", .type = CONF_BOOL,
	    .off = M(dummycloud_topics), .def = "no"},
};

const struct conf_section sink_mqtt_section = {
	.name = "mqtt",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(struct mqtt_conf),
	.finish = finish,
};

const struct sink_ops sink_mqtt_ops = {
	.name = "mqtt",
	.section = &sink_mqtt_section,
	.wanted = wanted,
	.start = start,
	.deliver = deliver,
	.reopen = NULL,
	.idle = idle,
	.stop = stop,
};
