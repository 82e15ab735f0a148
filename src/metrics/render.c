/*
 * render.c - the Prometheus text format 0.0.4 and the /healthz text.
 *
 * Each family is written whole, # HELP and # TYPE first, its samples
 * after, so that no sample comes without its TYPE and no series twice
 * (the two connection limits share the label "limit": summed here).
 * Counters end in _total; label values are escaped as the format says
 * (\\, \", \n), the only characters it escapes.  Times are the wall
 * clock in seconds with milliseconds, written from the integer so that
 * no rounding shows.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/render.h"

/* ---- the buffer ---- */

static bool
buf_room(struct metrics_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->n + n + 1 <= b->cap)
		return true;
	for (cap = b->cap ? b->cap : 4096; cap < b->n + n + 1; cap *= 2)
		;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void
metrics_buf_add(struct metrics_buf *b, const char *s, size_t n)
{
	if (!buf_room(b, n))
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

void
metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_room(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

void
metrics_buf_label(struct metrics_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		size_t run = strcspn(s, "\\\"\n");

		metrics_buf_add(b, s, run);
		s += run;
		if (*s == '\0')
			break;
		metrics_buf_add(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
		    "\\n", 2);
	}
}

/* ---- families and samples ---- */

static void
family(struct metrics_buf *b, const char *name, const char *type,
    const char *help)
{
	metrics_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* name{k1="v1",k2="v2"} value; k1, k2 NULL for fewer labels. */
static void
sample(struct metrics_buf *b, const char *name, const char *k1,
    const char *v1, const char *k2, const char *v2, const char *value)
{
	metrics_buf_add(b, name, strlen(name));
	if (k1 != NULL) {
		metrics_buf_printf(b, "{%s=\"", k1);
		metrics_buf_label(b, v1);
		if (k2 != NULL) {
			metrics_buf_printf(b, "\",%s=\"", k2);
			metrics_buf_label(b, v2);
		}
		metrics_buf_add(b, "\"}", 2);
	}
	metrics_buf_printf(b, " %s\n", value);
}

static const char *
u64(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

/* Milliseconds as seconds, exactly: 1700000000123 -> 1700000000.123. */
static const char *
seconds(char *buf, size_t len, int64_t ms)
{
	if (ms <= 0)
		snprintf(buf, len, "0");
	else
		snprintf(buf, len, "%" PRId64 ".%03" PRId64, ms / 1000,
		    ms % 1000);
	return buf;
}

uint64_t
metrics_losses(const struct metrics_snapshot *s)
{
	return s->js.lost + s->os.dropped + s->js.dropped;
}

/* The listeners' protocol counters whose name starts with prefix, as
 * name{listener,label}; local replies (no prefix) by themselves. */
static void
proto_family(const struct metrics_snapshot *s, struct metrics_buf *b,
    const char *name, const char *prefix, const char *label)
{
	size_t plen = strlen(prefix);
	char v[32];

	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct metrics_listener *l = &s->listeners[i];

		for (size_t k = 0; k < l->nstats; k++)
			if (strncmp(l->stats[k].name, prefix, plen) == 0)
				sample(b, name, "listener", l->name, label,
				    l->stats[k].name + plen,
				    u64(v, sizeof v, l->stats[k].value));
	}
}

/* A family of one sample per listener: the relay count at off. */
static void
per_listener(const struct metrics_snapshot *s, struct metrics_buf *b,
    const char *name, const char *type, const char *help, size_t off)
{
	char v[32];

	family(b, name, type, help);
	for (size_t i = 0; i < s->nlisteners; i++)
		sample(b, name, "listener", s->listeners[i].name, NULL, NULL,
		    u64(v, sizeof v, *(const uint64_t *)(const void *)
		    ((const char *)&s->listeners[i].rc + off)));
}

static void
render_listeners(const struct metrics_snapshot *s, struct metrics_buf *b)
{
	static const char *const dir[2] = {"up", "down"};
	char v[32];

	per_listener(s, b, "deye_mitm_connections_accepted_total", "counter",
	    "Connections relayed or answered, by listener.",
	    offsetof(struct relay_counts, accepted));

	family(b, "deye_mitm_connections_refused_total", "counter",
	    "Connections closed at the door, by listener and reason.");
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct relay_counts *rc = &s->listeners[i].rc;

		/* Each label once, with the sum of the reasons it names. */
		for (int k = 0; k < RELAY_REFUSALS; k++) {
			const char *label = relay_refusal_label(k);
			uint64_t sum = 0;
			int first = k;

			for (int j = 0; j < RELAY_REFUSALS; j++) {
				if (strcmp(relay_refusal_label(j), label) != 0)
					continue;
				if (j < first)
					first = j;
				sum += rc->refused[j];
			}
			if (first == k)
				sample(b, "deye_mitm_connections_refused_total",
				    "listener", s->listeners[i].name, "reason",
				    label, u64(v, sizeof v, sum));
		}
	}

	per_listener(s, b, "deye_mitm_connections_active", "gauge",
	    "Connections open now, by listener.",
	    offsetof(struct relay_counts, active));
	per_listener(s, b, "deye_mitm_upstream_connect_failures_total",
	    "counter", "Upstream connects refused or timed out, by listener.",
	    offsetof(struct relay_counts, connect_failed));

	family(b, "deye_mitm_relayed_bytes_total", "counter",
	    "Bytes relayed by ended connections, by listener and direction.");
	for (size_t i = 0; i < s->nlisteners; i++)
		for (int d = 0; d < 2; d++)
			sample(b, "deye_mitm_relayed_bytes_total", "listener",
			    s->listeners[i].name, "direction", dir[d],
			    u64(v, sizeof v, s->listeners[i].rc.bytes[d]));

	family(b, "deye_mitm_frames_total", "counter",
	    "Valid frames or messages decoded, by listener and event type.");
	proto_family(s, b, "deye_mitm_frames_total", "frames.", "type");

	family(b, "deye_mitm_frames_rejected_total", "counter",
	    "Malformed frames or messages, by listener and reason.");
	proto_family(s, b, "deye_mitm_frames_rejected_total", "rejected.",
	    "reason");

	family(b, "deye_mitm_local_replies_total", "counter",
	    "Replies made locally to a logger, by listener.");
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct metrics_listener *l = &s->listeners[i];
		uint64_t n = 0; /* a protocol that reports none made none */

		for (size_t k = 0; k < l->nstats; k++)
			if (strcmp(l->stats[k].name, "replies") == 0)
				n = l->stats[k].value;
		sample(b, "deye_mitm_local_replies_total", "listener", l->name,
		    NULL, NULL, u64(v, sizeof v, n));
	}
}

static void
render_sinks(const struct metrics_snapshot *s, struct metrics_buf *b)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{"deye_mitm_sink_delivered_events_total", "counter",
		    "Events delivered and committed, by sink."},
		{"deye_mitm_sink_retries_total", "counter",
		    "Failed delivery attempts, each retried, by sink."},
		{"deye_mitm_sink_dead_letters_total", "counter",
		    "Events set aside in state_dir/dead, by sink."},
		{"deye_mitm_sink_backlog_events", "gauge",
		    "Events in the journal not yet delivered, by sink."},
		{"deye_mitm_sink_backlog_bytes", "gauge",
		    "Journal bytes not yet delivered, by sink."},
		{"deye_mitm_sink_last_success_timestamp_seconds", "gauge",
		    "When the sink last delivered (0: not yet)."},
	};
	char v[32];

	for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
		family(b, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < s->nsinks; i++) {
			const struct sink_stats *ss = &s->sinks[i].ss;
			const char *val =
			    f == 0 ? u64(v, sizeof v, ss->delivered) :
			    f == 1 ? u64(v, sizeof v, ss->failures) :
			    f == 2 ? u64(v, sizeof v, ss->set_aside) :
			    f == 3 ? u64(v, sizeof v, ss->backlog.events) :
			    f == 4 ? u64(v, sizeof v, ss->backlog.bytes) :
			    seconds(v, sizeof v, ss->last_ok_ms);

			sample(b, fam[f].name, "sink", s->sinks[i].name, NULL,
			    NULL, val);
		}
	}
}

void
metrics_render(const struct metrics_snapshot *s, struct metrics_buf *b)
{
	char v[32];

	family(b, "deye_mitm_build_info", "gauge",
	    "Always 1; the version of this deye-mitm.");
	sample(b, "deye_mitm_build_info", "version", s->version, NULL, NULL,
	    "1");
	family(b, "deye_mitm_start_time_seconds", "gauge",
	    "When this process started, in seconds since the epoch.");
	sample(b, "deye_mitm_start_time_seconds", NULL, NULL, NULL, NULL,
	    seconds(v, sizeof v, s->start_ms));

	render_listeners(s, b);

	family(b, "deye_mitm_logger_last_frame_timestamp_seconds", "gauge",
	    "When each logger (by serial) last sent a valid frame.");
	for (size_t i = 0; i < s->nloggers; i++)
		sample(b, "deye_mitm_logger_last_frame_timestamp_seconds",
		    "serial", s->loggers[i].serial, NULL, NULL,
		    seconds(v, sizeof v, s->loggers[i].ms));
	family(b, "deye_mitm_loggers_dropped_total", "counter",
	    "Loggers no longer shown, to keep the list bounded.");
	sample(b, "deye_mitm_loggers_dropped_total", NULL, NULL, NULL, NULL,
	    u64(v, sizeof v, s->loggers_dropped));

	family(b, "deye_mitm_journal_events_appended_total", "counter",
	    "Events written to the journal.");
	sample(b, "deye_mitm_journal_events_appended_total", NULL, NULL, NULL,
	    NULL, u64(v, sizeof v, s->js.appended));
	family(b, "deye_mitm_journal_events_dropped_total", "counter",
	    "Undelivered events dropped past spool_max.");
	sample(b, "deye_mitm_journal_events_dropped_total", NULL, NULL, NULL,
	    NULL, u64(v, sizeof v, s->js.dropped));
	family(b, "deye_mitm_journal_events_lost_total", "counter",
	    "Events never stored: queue full, too large.");
	sample(b, "deye_mitm_journal_events_lost_total", NULL, NULL, NULL,
	    NULL, u64(v, sizeof v, s->js.lost + s->os.dropped));
	family(b, "deye_mitm_journal_bytes", "gauge",
	    "Bytes in the journal's segments.");
	sample(b, "deye_mitm_journal_bytes", NULL, NULL, NULL, NULL,
	    u64(v, sizeof v, s->js.bytes));

	render_sinks(s, b);
}

bool
metrics_health(const struct metrics_snapshot *s, int64_t stall_after_ms,
    int64_t last_loss_ms, struct metrics_buf *b)
{
	bool ok = true;

	for (size_t i = 0; i < s->nsinks; i++) {
		const struct sink_stats *ss = &s->sinks[i].ss;
		int64_t since = ss->last_ok_ms > 0 ? ss->last_ok_ms : s->start_ms;

		if (ss->backlog.events == 0 || s->now_ms - since < stall_after_ms)
			continue;
		metrics_buf_printf(b, "sink %s: %" PRIu64 " events undelivered, "
		    "no delivery for %" PRId64 "s%s\n", s->sinks[i].name,
		    ss->backlog.events, (s->now_ms - since) / 1000,
		    ss->last_ok_ms > 0 ? "" : " (none since start)");
		ok = false;
	}
	if (last_loss_ms > 0 && s->now_ms - last_loss_ms < stall_after_ms) {
		metrics_buf_printf(b, "journal: losing events (%" PRIu64 " lost, "
		    "%" PRIu64 " dropped past spool_max since start; the last "
		    "seen %" PRId64 "s ago)\n", s->js.lost + s->os.dropped,
		    s->js.dropped, (s->now_ms - last_loss_ms) / 1000);
		ok = false;
	}
	if (ok)
		metrics_buf_add(b, "ok\n", 3);
	return ok;
}
