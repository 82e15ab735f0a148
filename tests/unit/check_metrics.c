/*
 * check_metrics.c - the text of /metrics and /healthz (metrics/render.c):
 * label escaping, exact sample lines from a made-up snapshot, the shape
 * of the whole text (a TYPE before every sample, counters in _total, no
 * series twice), and the health rules.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "metrics/render.h"
#include "suites.h"

static const struct {
	const char *in, *out;
} labels[] = {
	{"plain", "plain"},
	{"", ""},
	{"a\\b", "a\\\\b"},
	{"say \"hi\"", "say \\\"hi\\\""},
	{"two\nlines", "two\\nlines"},
	{"\\\"\n", "\\\\\\\"\\n"},
	{"tab\tand UTF-8 \xc3\xa9", "tab\tand UTF-8 \xc3\xa9"},
};

START_TEST(test_label_escaping)
{
	struct metrics_buf b = {0};

	metrics_buf_add(&b, "", 0); /* the empty label writes nothing */
	metrics_buf_label(&b, labels[_i].in);
	ck_assert_ptr_nonnull(b.p);
	ck_assert_str_eq(b.p, labels[_i].out);
	free(b.p);
}
END_TEST

/* A snapshot with two listeners (one that reports no protocol counts),
 * two loggers and two sinks. */
static struct metrics_stat deye_stats[] = {
	{"frames.data", 7}, {"frames.heartbeat", 2}, {"rejected.checksum", 1},
	{"skipped_bytes", 40}, {"replies", 3},
};

static void
snapshot(struct metrics_snapshot *s, struct metrics_listener *ls,
    struct metrics_logger *lg)
{
	memset(s, 0, sizeof *s);
	memset(ls, 0, 2 * sizeof *ls);
	memset(lg, 0, 2 * sizeof *lg);
	s->version = "1.2.3";
	s->start_ms = 1700000000123;
	s->now_ms = 1700000100000;
	ls[0].name = "deye";
	ls[0].rc.accepted = 4;
	ls[0].rc.refused[RELAY_REFUSED_ALLOW] = 1;
	ls[0].rc.refused[RELAY_REFUSED_LIMIT] = 2;
	ls[0].rc.refused[RELAY_REFUSED_PEER_LIMIT] = 3;
	ls[0].rc.active = 1;
	ls[0].rc.connect_failed = 1;
	ls[0].rc.bytes[0] = 1000;
	ls[0].rc.bytes[1] = 200;
	ls[0].stats = deye_stats;
	ls[0].nstats = sizeof deye_stats / sizeof deye_stats[0];
	ls[1].name = "raw \"x\"";
	s->listeners = ls;
	s->nlisteners = 2;
	snprintf(lg[0].serial, sizeof lg[0].serial, "3939932716");
	lg[0].ms = 1700000050005;
	snprintf(lg[1].serial, sizeof lg[1].serial, "odd\"serial\\\n");
	lg[1].ms = 1700000060000;
	s->loggers = lg;
	s->nloggers = 2;
	s->loggers_dropped = 9;
	s->js.appended = 50;
	s->js.dropped = 4;
	s->js.lost = 1;
	s->os.dropped = 2;
	s->js.bytes = 4096;
	s->sinks[0].name = "events";
	s->sinks[0].ss.delivered = 50;
	s->sinks[0].ss.last_ok_ms = 1700000099000;
	s->sinks[1].name = "hec";
	s->sinks[1].ss.failures = 6;
	s->sinks[1].ss.set_aside = 1;
	s->sinks[1].ss.backlog.events = 12;
	s->sinks[1].ss.backlog.bytes = 3000;
	s->nsinks = 2;
}

static const char *const lines[] = {
	"# TYPE deye_mitm_build_info gauge",
	"deye_mitm_build_info{version=\"1.2.3\"} 1",
	"deye_mitm_start_time_seconds 1700000000.123",
	"deye_mitm_connections_accepted_total{listener=\"deye\"} 4",
	"deye_mitm_connections_refused_total{listener=\"deye\",reason=\"allow\"} 1",
	/* max_connections and max_connections_per_peer: one series */
	"deye_mitm_connections_refused_total{listener=\"deye\",reason=\"limit\"} 5",
	"deye_mitm_connections_refused_total{listener=\"deye\",reason=\"loop\"} 0",
	"deye_mitm_connections_refused_total{listener=\"raw \\\"x\\\"\",reason=\"resources\"} 0",
	"deye_mitm_connections_active{listener=\"deye\"} 1",
	"deye_mitm_upstream_connect_failures_total{listener=\"deye\"} 1",
	"deye_mitm_relayed_bytes_total{listener=\"deye\",direction=\"up\"} 1000",
	"deye_mitm_relayed_bytes_total{listener=\"deye\",direction=\"down\"} 200",
	"deye_mitm_frames_total{listener=\"deye\",type=\"data\"} 7",
	"deye_mitm_frames_total{listener=\"deye\",type=\"heartbeat\"} 2",
	"deye_mitm_frames_rejected_total{listener=\"deye\",reason=\"checksum\"} 1",
	"deye_mitm_local_replies_total{listener=\"deye\"} 3",
	"deye_mitm_local_replies_total{listener=\"raw \\\"x\\\"\"} 0",
	"deye_mitm_logger_last_frame_timestamp_seconds{serial=\"3939932716\"} 1700000050.005",
	"deye_mitm_logger_last_frame_timestamp_seconds{serial=\"odd\\\"serial\\\\\\n\"} 1700000060.000",
	"deye_mitm_loggers_dropped_total 9",
	"deye_mitm_journal_events_appended_total 50",
	"deye_mitm_journal_events_dropped_total 4",
	"deye_mitm_journal_events_lost_total 3",
	"deye_mitm_journal_bytes 4096",
	"deye_mitm_sink_delivered_events_total{sink=\"events\"} 50",
	"deye_mitm_sink_retries_total{sink=\"hec\"} 6",
	"deye_mitm_sink_dead_letters_total{sink=\"hec\"} 1",
	"deye_mitm_sink_backlog_events{sink=\"hec\"} 12",
	"deye_mitm_sink_backlog_bytes{sink=\"hec\"} 3000",
	"deye_mitm_sink_last_success_timestamp_seconds{sink=\"events\"} 1700000099.000",
	"deye_mitm_sink_last_success_timestamp_seconds{sink=\"hec\"} 0",
};

static char *
render(void)
{
	struct metrics_snapshot s;
	struct metrics_listener ls[2];
	struct metrics_logger lg[2];
	struct metrics_buf b = {0};

	snapshot(&s, ls, lg);
	metrics_render(&s, &b);
	ck_assert(!b.oom);
	ck_assert_ptr_nonnull(b.p);
	return b.p;
}

START_TEST(test_render_lines)
{
	char *text = render(), want[256];

	snprintf(want, sizeof want, "\n%s\n", lines[_i]);
	ck_assert_msg(strstr(text, want) != NULL, "no line '%s' in:\n%s",
	    lines[_i], text);
	free(text);
}
END_TEST

/* Every sample after its family's # TYPE, counters named _total and the
 * others not, no series twice, and the protocol's own counters
 * (skipped_bytes) not passed off as frames. */
START_TEST(test_render_shape)
{
	char *text = render(), *save = NULL, *line;
	char family[128] = "", type[16] = "";
	char *seen[256];
	size_t nseen = 0, samples = 0;

	ck_assert_ptr_null(strstr(text, "skipped"));
	ck_assert(text[strlen(text) - 1] == '\n');
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		size_t n;

		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			ck_assert_int_eq(sscanf(line + 7, "%127s %15s", family,
			    type), 2);
			n = strlen(family);
			ck_assert_msg((strcmp(type, "counter") == 0) ==
			    (n > 6 && strcmp(family + n - 6, "_total") == 0),
			    "%s", line);
			continue;
		}
		n = strcspn(line, "{ ");
		ck_assert_msg(family[0] != '\0' && strlen(family) == n &&
		    strncmp(line, family, n) == 0, "no TYPE before '%s'", line);
		/* The series: all but the value. */
		*strrchr(line, ' ') = '\0';
		for (size_t i = 0; i < nseen; i++)
			ck_assert_msg(strcmp(seen[i], line) != 0, "twice: %s",
			    line);
		ck_assert_uint_lt(nseen, 256);
		seen[nseen++] = line;
		samples++;
	}
	ck_assert_uint_gt(samples, 30);
	free(text);
}
END_TEST

static const struct {
	int64_t hec_last_ok_ms;    /* 0: none */
	uint64_t hec_backlog;
	int64_t last_loss_ms;
	bool ok;
	const char *line;          /* in the text */
} health[] = {
	/* backlog, no success since start (100 s ago): stalled */
	{0, 12, 0, false, "sink hec: 12 events undelivered, no delivery for "
	    "99s (none since start)\n"},
	/* backlog, a success 30 s ago: within stall_after */
	{1700000070000, 12, 0, true, "ok\n"},
	/* backlog, last success 61 s ago */
	{1700000039000, 12, 0, false, "sink hec: 12 events undelivered, no "
	    "delivery for 61s\n"},
	/* no backlog: idle, however long ago */
	{1, 0, 0, true, "ok\n"},
	/* a loss seen 10 s ago, and 60 s ago (just out of the window) */
	{1700000099000, 0, 1700000090000, false, "journal: losing events "
	    "(3 lost, 4 dropped past spool_max since start; the last seen "
	    "10s ago)\n"},
	{1700000099000, 0, 1700000040000, true, "ok\n"},
};

START_TEST(test_health)
{
	struct metrics_snapshot s;
	struct metrics_listener ls[2];
	struct metrics_logger lg[2];
	struct metrics_buf b = {0};

	snapshot(&s, ls, lg);
	s.sinks[1].ss.last_ok_ms = health[_i].hec_last_ok_ms;
	s.sinks[1].ss.backlog.events = health[_i].hec_backlog;
	ck_assert(metrics_health(&s, 60000, health[_i].last_loss_ms, &b) ==
	    health[_i].ok);
	ck_assert_ptr_nonnull(b.p);
	ck_assert_msg(strstr(b.p, health[_i].line) != NULL, "%s", b.p);
	ck_assert(health[_i].ok == (strcmp(b.p, "ok\n") == 0));
	free(b.p);
}
END_TEST

START_TEST(test_losses)
{
	struct metrics_snapshot s;
	struct metrics_listener ls[2];
	struct metrics_logger lg[2];

	snapshot(&s, ls, lg);
	/* lost 1 + the outbox's 2 + dropped 4 */
	ck_assert_uint_eq(metrics_losses(&s), 7);
}
END_TEST

Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_loop_test(tc, test_label_escaping, 0,
	    sizeof labels / sizeof labels[0]);
	tcase_add_loop_test(tc, test_render_lines, 0,
	    sizeof lines / sizeof lines[0]);
	tcase_add_test(tc, test_render_shape);
	tcase_add_loop_test(tc, test_health, 0,
	    sizeof health / sizeof health[0]);
	tcase_add_test(tc, test_losses);
	suite_add_tcase(s, tc);
	return s;
}
