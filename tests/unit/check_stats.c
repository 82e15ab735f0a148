/*
 * check_stats.c - the counters the metrics read: each module's stats hook
 * (journal backlog per cursor, a listener's connection and protocol counts,
 * the loggers' last frame times) against what was done to it.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "rmtree.h"
#include "suites.h"
#include "pipeline/journal.h"
#include "pipeline/worker.h"
#include "proto/loggers.h"
#include "proto/tap.h"
#include "relay/accept.h"
#include "sinks/sink.h"

static char dir[64];

static void
journal_start(void)
{
	struct conf *c = conf_new(sinks_sections());
	char opt[128], err[256];

	ck_assert_ptr_nonnull(c);
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	/* 16 KiB segments: the records below fill several. */
	ck_assert_int_eq(conf_set_option(c, "spool_max=64K", err, sizeof err),
	    0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
}

#define NREC 20
#define PAD 1000

/* Records of one size, so the estimate of a last run's segments is exact
 * too; each is 16 + this long. */
static size_t
append_one(int i)
{
	char json[PAD + 64];
	int n = snprintf(json, sizeof json, "{\"n\":%02d,\"pad\":\"%0*d\"}", i,
	    PAD, 0);

	ck_assert_int_eq(journal_append(1000 + i, json, (size_t)n), 0);
	journal_publish();
	return (size_t)n;
}

static void
assert_backlog(const char *name, uint64_t events, uint64_t bytes)
{
	struct journal_backlog b;

	ck_assert(journal_backlog(name, &b));
	ck_assert_uint_eq(b.events, events);
	ck_assert_uint_eq(b.bytes, bytes);
}

/* Read n records and commit after the last. */
static void
deliver(struct journal_reader *r, int n)
{
	struct journal_rec rec;

	for (int i = 0; i < n; i++)
		ck_assert_int_eq(journal_next(r, &rec, 0), 1);
	journal_commit(r, rec.next);
}

START_TEST(test_journal_backlog)
{
	struct journal_reader *a, *b;
	struct journal_backlog bl;
	uint64_t rec = 0;

	snprintf(dir, sizeof dir, "/tmp/deye-check-stats-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	journal_start();
	ck_assert_ptr_nonnull(a = journal_reader_open("a"));
	ck_assert_ptr_nonnull(b = journal_reader_open("b"));
	journal_start_deleting();
	assert_backlog("a", 0, 0);
	ck_assert(!journal_backlog("nobody", &bl));
	ck_assert_uint_eq(bl.events, 0);
	for (int i = 0; i < NREC; i++)
		rec = 16 + append_one(i);
	assert_backlog("a", NREC, NREC * rec);
	/* Across segment ends: a commit anywhere counts exactly. */
	deliver(a, 7);
	assert_backlog("a", NREC - 7, (NREC - 7) * rec);
	assert_backlog("b", NREC, NREC * rec);
	deliver(a, 6);
	assert_backlog("a", NREC - 13, (NREC - 13) * rec);
	/* A rewind reads again, but the backlog is what is committed. */
	journal_rewind(a);
	assert_backlog("a", NREC - 13, (NREC - 13) * rec);
	deliver(a, NREC - 13);
	assert_backlog("a", 0, 0);
	deliver(b, 3);
	journal_close();

	/* After a restart: b's cursor is read back, in the middle of a
	 * segment; the last segment is counted, the others estimated. */
	journal_start();
	ck_assert_ptr_nonnull(a = journal_reader_open("a"));
	ck_assert_ptr_nonnull(b = journal_reader_open("b"));
	journal_start_deleting();
	assert_backlog("a", 0, 0);
	assert_backlog("b", NREC - 3, (NREC - 3) * rec);
	append_one(NREC);
	assert_backlog("a", 1, rec);
	assert_backlog("b", NREC - 2, (NREC - 2) * rec);
	deliver(b, NREC - 2);
	assert_backlog("b", 0, 0);
	journal_close();
	rm_tree(dir);
}
END_TEST

struct seen {
	const char *serial;
	int64_t ms;
	int found;
};

static void
seen_one(void *arg, const char *serial, int64_t ms)
{
	struct seen *w = arg;

	if (strcmp(serial, w->serial) == 0) {
		w->ms = ms;
		w->found++;
	}
}

static int64_t
heard_at(const char *serial)
{
	struct seen w = {serial, -1, 0};

	loggers_each(seen_one, &w);
	ck_assert_int_le(w.found, 1);
	return w.ms;
}

/* The last time wins, an older one does not go back; past LOGGERS_MAX the
 * one silent longest goes, counted. */
START_TEST(test_loggers)
{
	char s[32];
	uint64_t dropped = loggers_dropped();
	size_t n;

	loggers_heard("2712345678", 5000);
	loggers_heard("2712345678", 7000);
	loggers_heard("2712345678", 6000);
	ck_assert_int_eq(heard_at("2712345678"), 7000);
	loggers_heard("122001234567", 6500); /* an Envoy */
	ck_assert_int_eq(heard_at("122001234567"), 6500);
	ck_assert_int_eq(heard_at("nobody"), -1);
	loggers_heard("", 1); /* no serial: not kept */
	ck_assert_int_eq(heard_at(""), -1);
	/* Fill it: the two above are newer than all of these but three. */
	for (int i = 0; i < LOGGERS_MAX + 2; i++) {
		snprintf(s, sizeof s, "fill-%d", i);
		loggers_heard(s, i < 3 ? 100 + i : 10000 + i);
	}
	n = loggers_each(seen_one, &(struct seen){"x", 0, 0});
	ck_assert_uint_eq(n, LOGGERS_MAX);
	ck_assert_uint_ge(loggers_dropped(), dropped + 4);
	ck_assert_int_eq(heard_at("fill-0"), -1);
	ck_assert_int_eq(heard_at("fill-2"), -1);
	ck_assert_int_eq(heard_at("fill-3"), 10003);
	ck_assert_int_eq(heard_at("fill-1025"), 10000 + 1025);
	/* Every one kept is still found after the moves of the removals. */
	for (int i = 3; i < LOGGERS_MAX + 2; i++) {
		snprintf(s, sizeof s, "fill-%d", i);
		if (heard_at(s) == -1)
			ck_assert_int_lt(i, 10); /* the oldest went first */
	}
}
END_TEST

/* A free port on 127.0.0.1 (nobody listens on it once this returns). */
static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int
dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

/* key=value, with :port appended when port > 0. */
static void
option(struct conf *c, const char *key, const char *value, int port)
{
	char kv[128], err[256];

	if (port > 0)
		snprintf(kv, sizeof kv, "%s=%s:%d", key, value, port);
	else
		snprintf(kv, sizeof kv, "%s=%s", key, value);
	ck_assert_msg(conf_set_option(c, kv, err, sizeof err) == 0, "%s", err);
}

/* Until listener i has counted n connections, accepted or refused. */
static struct relay_counts
counted(size_t i, uint64_t n)
{
	int64_t until = clock_now_ms() + 5000;
	struct relay_counts rc;
	const char *name;

	for (;;) {
		uint64_t all;

		ck_assert(listener_stats(i, &name, &rc));
		all = rc.accepted;
		for (int k = 0; k < RELAY_REFUSALS; k++)
			all += rc.refused[k];
		if (all >= n || clock_now_ms() > until)
			return rc;
		usleep(10 * 1000);
	}
}

/*
 * A connection counts once: a listener whose upstream is itself refuses
 * it as a loop (not accepted too); one whose upstream takes it accepts
 * it; one outside allow is refused as such.
 */
START_TEST(test_relay_counts)
{
	struct conf *c = conf_new(sinks_sections());
	int loop = free_port(), good = free_port(), up, fd[2];
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	struct relay_counts rc;
	const char *name;
	char err[256];

	/* The upstream of "good": a socket that listens, never accepts. */
	up = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(up, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(up, 8), 0);
	ck_assert_int_eq(getsockname(up, (struct sockaddr *)&a, &len), 0);

	ck_assert_ptr_nonnull(c);
	option(c, "loop.listen", "127.0.0.1", loop);
	option(c, "loop.upstream", "127.0.0.1", loop);
	option(c, "loop.protocol", "raw", 0);
	option(c, "good.listen", "127.0.0.1", good);
	option(c, "good.upstream", "127.0.0.1", ntohs(a.sin_port));
	option(c, "good.protocol", "raw", 0);
	ck_assert_msg(conf_finish(c, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(listeners_open(c, err, sizeof err) == 0, "%s", err);
	relay_init(c->max_connections, c->max_connections_per_peer,
	    listener_is_self);
	ck_assert_int_eq(listeners_start(), 0);

	fd[0] = dial(loop);
	fd[1] = dial(good);
	rc = counted(0, 1);
	ck_assert(listener_stats(0, &name, &rc));
	ck_assert_str_eq(name, "loop");
	ck_assert_uint_eq(rc.refused[RELAY_REFUSED_LOOP], 1);
	ck_assert_uint_eq(rc.accepted, 0);
	ck_assert_uint_eq(rc.connect_failed, 0);
	rc = counted(1, 1);
	ck_assert_uint_eq(rc.accepted, 1);
	for (int k = 0; k < RELAY_REFUSALS; k++)
		ck_assert_uint_eq(rc.refused[k], 0);
	ck_assert(!listener_stats(2, &name, &rc));
	ck_assert_str_eq(relay_refusal_label(RELAY_REFUSED_LOOP), "loop");
	ck_assert_str_eq(relay_refusal_label(RELAY_REFUSED_PEER_LIMIT),
	    "limit");

	listeners_stop();
	ck_assert_uint_eq(relay_shutdown(5000), 0);
	listeners_free();
	for (int i = 0; i < 2; i++)
		close(fd[i]);
	close(up);
	conf_free(c);
}
END_TEST

struct want {
	const char *name;
	uint64_t value;
};

static void
find(void *arg, const char *name, uint64_t value)
{
	struct want *w = arg;

	if (strcmp(name, w->name) == 0)
		w->value = value;
}

static uint64_t
stat_of(const struct tap_counts *tc, const char *name)
{
	struct want w = {name, 0};

	tap_counts_read(tc, find, &w);
	return w.value;
}

/*
 * An Envoy listener's frames are the events its reports make, counted by
 * the worker into that listener's block; the report's Envoy is heard.
 * (The outbox is not running: the events themselves are dropped.)
 */
START_TEST(test_envoy_counts)
{
	static char name[] = "envoy";
	char spool[80], buf[4096];
	struct listener_conf lc;
	struct tap_counts *tc;
	struct tap *t;
	FILE *f;
	size_t n;

	snprintf(dir, sizeof dir, "/tmp/deye-check-stats-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(spool, sizeof spool, "%s/spool", dir);
	ck_assert_int_eq(mkdir(spool, 0700), 0);
	ck_assert_int_eq(worker_start(dir), 0);
	memset(&lc, 0, sizeof lc);
	lc.name = name;
	lc.protocol = PROTO_ENVOY;
	lc.spool_dir = spool;
	lc.max_body = 1 << 20;
	ck_assert_ptr_nonnull(tc = tap_counts_new(&lc));
	ck_assert_ptr_nonnull(f = fopen(
	    "data/envoy/SYNTHETIC_request_performance_report.http.bin", "rb"));
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	ck_assert_uint_gt(n, 545);
	ck_assert_ptr_nonnull(t = tap_open(&lc, tc, 1, "127.0.0.1:1", 0));
	tap_feed(t, 0, (const uint8_t *)buf, n, false);
	tap_close(t);
	ck_assert(worker_stop(5000));
	ck_assert_uint_eq(stat_of(tc, "messages.requests"), 1);
	ck_assert_uint_eq(stat_of(tc, "frames.envoy_report"), 1);
	ck_assert_uint_eq(stat_of(tc, "frames.envoy_reading"), 1);
	ck_assert_uint_eq(stat_of(tc, "frames.envoy_event"), 4);
	ck_assert_uint_eq(stat_of(tc, "rejected.bad_report"), 0);
	ck_assert_int_gt(heard_at("999999000001"), 0);
	tap_counts_free(tc);
	rm_tree(dir);
}
END_TEST

Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("hooks");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_journal_backlog);
	tcase_add_test(tc, test_loggers);
	tcase_add_test(tc, test_relay_counts);
	tcase_add_test(tc, test_envoy_counts);
	suite_add_tcase(s, tc);
	return s;
}
