/*
 * check_sink.c - the sink runner, driving a stub sink over a real journal
 * in a temporary state_dir: batches by count and bytes, commit on success
 * (a new cursor of the same name finds nothing left), rewind and the same
 * records again after a failure, smaller batches, a record set aside, the
 * failure log at most once a minute, and a stop that never hangs.  The
 * backoff schedule, its jitter and the once-a-minute rule are pure
 * functions, checked with chosen times instead of a clock; and as the
 * runner applies them, with the stub clock (stub_clock.c): the stub sink
 * moves the stopped clock at each call, and the runner's waits are noted.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "logcap.h"
#include "stub_clock.h"
#include "rmtree.h"
#include "suites.h"
#include "pipeline/journal.h"
#include "sinks/sink.h"

#define NREC 10
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAXCALLS 256

static char dir[64];

/* What the stub does, call by call, and what it saw. */
static struct {
	pthread_mutex_t lock;
	struct sink_limits lim;
	enum sink_verdict script[MAXCALLS]; /* call i's verdict (0: deliver) */
	size_t script_n[MAXCALLS];
	int64_t script_ms[MAXCALLS];    /* call i moves the clock on by this */
	int64_t script_after[MAXCALLS]; /* call i's Retry-After, 0: none */
	int64_t block_ms;      /* deliver waits this long, or until out of time */
	int calls;
	size_t batch[MAXCALLS];  /* records in call i */
	int first[MAXCALLS];     /* the first record's number in call i */
	int delivered[NREC * 4]; /* record numbers committed, in order */
	int ndelivered;
	bool stopped;
} stub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int
recno(const struct journal_rec *r)
{
	int n = -1;

	ck_assert_int_eq(sscanf(r->json, "{\"n\":%d", &n), 1);
	return n;
}

static bool
stub_wanted(const struct conf *c)
{
	(void)c;
	return true;
}

static int
stub_start(const struct conf *c, void **state, struct sink_limits *lim)
{
	(void)c;
	*state = &stub;
	*lim = stub.lim;
	return 0;
}

static void
stub_deliver(void *state, struct sink_runner *run,
    const struct journal_rec *recs, size_t n, struct sink_result *r)
{
	int call;
	int64_t until = clock_now_ms() + stub.block_ms;

	(void)state;
	while (stub.block_ms > 0 && clock_now_ms() < until) {
		if (sink_runner_out_of_time(run)) {
			r->verdict = SINK_STOPPED;
			return;
		}
		usleep(10000);
	}
	pthread_mutex_lock(&stub.lock);
	call = stub.calls < MAXCALLS ? stub.calls++ : MAXCALLS - 1;
	stub.batch[call] = n;
	stub.first[call] = recno(&recs[0]);
	r->verdict = stub.script[call];
	r->n = stub.script_n[call];
	if (stub.script_ms[call] != 0)
		clock_stub_advance(stub.script_ms[call]);
	if (stub.script_after[call] != 0)
		r->retry_after_ms = stub.script_after[call];
	/* The runner's waits after a failure are its backoff. */
	clock_stub_note_waits(r->verdict == SINK_RETRY);
	if (r->verdict == SINK_DELIVERED) {
		r->n = n;
		for (size_t i = 0; i < n; i++)
			stub.delivered[stub.ndelivered++] = recno(&recs[i]);
	} else if (r->verdict == SINK_RETRY) {
		snprintf(r->why, sizeof r->why, "boom");
	}
	pthread_mutex_unlock(&stub.lock);
}

static void
stub_stop(void *state)
{
	(void)state;
	stub.stopped = true;
}

static const struct sink_ops stub_ops = {
	.name = "stub",
	.wanted = stub_wanted,
	.start = stub_start,
	.deliver = stub_deliver,
	.reopen = NULL,
	.stop = stub_stop,
};

/* A journal in a new state_dir holding records 0..n-1, each 40 bytes. */
static void
setup_journal(int n)
{
	struct conf *c = conf_new(sinks_sections());
	char opt[128], err[256], json[64];

	snprintf(dir, sizeof dir, "/tmp/deye-check-sink-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
	for (int i = 0; i < n; i++) {
		int len = snprintf(json, sizeof json, "{\"n\":%d,\"pad\":\"%0*d\"}",
		    i, i < 10 ? 24 : 23, 0);

		ck_assert_int_eq(len, 40);
		ck_assert_int_eq(journal_append(1000 + i, json, (size_t)len), 0);
	}
	journal_publish();
	stub.lim = (struct sink_limits){
		.max_events = 100,
		.max_bytes = 1 << 20,
		.overhead = 1,
		.flush_ms = 0,
		.retry_min_ms = 10,
		.retry_max_ms = 40,
	};
}

static void
teardown_journal(void)
{
	journal_close();
	rm_tree(dir);
}

static bool
wait_delivered(int n)
{
	for (int i = 0; i < 500; i++) {
		int got;

		pthread_mutex_lock(&stub.lock);
		got = stub.ndelivered;
		pthread_mutex_unlock(&stub.lock);
		if (got >= n)
			return true;
		usleep(10000);
	}
	return false;
}

/* The runner's own count, which it moves after deliver() returns. */
static void
wait_stats(struct sink_runner *run, uint64_t delivered, struct sink_stats *st)
{
	for (int i = 0; i < 500; i++) {
		sink_runner_stats(run, st);
		if (st->delivered >= delivered)
			return;
		usleep(10000);
	}
}

static int
calls(void)
{
	int n;

	pthread_mutex_lock(&stub.lock);
	n = stub.calls;
	pthread_mutex_unlock(&stub.lock);
	return n;
}

/* Records a fresh cursor of the stub's name would still get. */
static int
left_in_journal(void)
{
	struct journal_reader *r = journal_reader_open("stub");
	struct journal_rec rec;
	int n = 0;

	ck_assert_ptr_nonnull(r);
	while (journal_next(r, &rec, 0) == 1)
		n++;
	journal_reader_close(r);
	return n;
}

static struct sink_runner *
start_stub(void)
{
	struct sink_runner *run = sink_runner_start(&stub_ops, NULL);

	ck_assert_ptr_nonnull(run);
	return run;
}

static void
stop_stub(struct sink_runner *run)
{
	sink_runner_stop(run, 1000);
	ck_assert(sink_runner_join(run));
	ck_assert(stub.stopped);
}

START_TEST(test_commit_on_success)
{
	struct sink_runner *run;
	struct sink_stats st;

	setup_journal(NREC);
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	wait_stats(run, NREC, &st);
	ck_assert_uint_eq(st.delivered, NREC);
	ck_assert_uint_eq(st.failures, 0);
	ck_assert_int_gt(st.last_ok_ms, 0);
	stop_stub(run);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(left_in_journal(), 0);
	teardown_journal();
}
END_TEST

START_TEST(test_rewind_and_retry)
{
	struct sink_runner *run;
	struct sink_stats st;

	setup_journal(NREC);
	stub.script[0] = stub.script[1] = SINK_RETRY;
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	wait_stats(run, NREC, &st);
	stop_stub(run);
	ck_assert_int_eq(stub.calls, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(stub.batch[i], NREC); /* the same again */
		ck_assert_int_eq(stub.first[i], 0);
	}
	for (int i = 0; i < NREC; i++)
		ck_assert_int_eq(stub.delivered[i], i);
	ck_assert_uint_eq(st.failures, 2);
	ck_assert_uint_eq(st.delivered, NREC);
	ck_assert(!st.failing);
	ck_assert_int_eq(left_in_journal(), 0);
	teardown_journal();
}
END_TEST

/* Nothing delivered is nothing committed: a stop in the middle of the
 * failures leaves every record for the next start. */
START_TEST(test_failure_commits_nothing)
{
	struct sink_runner *run;

	setup_journal(NREC);
	for (int i = 0; i < MAXCALLS; i++)
		stub.script[i] = SINK_RETRY;
	run = start_stub();
	for (int i = 0; i < 500 && calls() < 3; i++)
		usleep(10000);
	ck_assert_int_ge(calls(), 3);
	stop_stub(run);
	ck_assert_int_eq(stub.ndelivered, 0);
	ck_assert_int_eq(left_in_journal(), NREC);
	teardown_journal();
}
END_TEST

START_TEST(test_batch_by_count)
{
	struct sink_runner *run;

	setup_journal(NREC);
	stub.lim.max_events = 3;
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	stop_stub(run);
	ck_assert_int_eq(stub.calls, 4);
	ck_assert_uint_eq(stub.batch[0], 3);
	ck_assert_uint_eq(stub.batch[1], 3);
	ck_assert_uint_eq(stub.batch[2], 3);
	ck_assert_uint_eq(stub.batch[3], 1);
	teardown_journal();
}
END_TEST

/* A batch ends with the record that reaches max_bytes, each counting its
 * length plus the overhead. */
START_TEST(test_batch_by_bytes)
{
	struct sink_runner *run;

	setup_journal(NREC);
	stub.lim.overhead = 10;
	stub.lim.max_bytes = 2 * 50 + 1; /* reached by the third */
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	stop_stub(run);
	ck_assert_int_eq(stub.calls, 4);
	ck_assert_uint_eq(stub.batch[0], 3);
	ck_assert_uint_eq(stub.batch[3], 1);
	teardown_journal();
}
END_TEST

START_TEST(test_split)
{
	struct sink_runner *run;

	setup_journal(NREC);
	stub.lim.max_events = 4;
	stub.script[0] = SINK_SPLIT;
	stub.script_n[0] = 1;
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	stop_stub(run);
	/* 4 refused; 1 alone; then full batches again: 4, 4, 1. */
	ck_assert_int_eq(stub.calls, 5);
	ck_assert_uint_eq(stub.batch[0], 4);
	ck_assert_uint_eq(stub.batch[1], 1);
	ck_assert_uint_eq(stub.batch[2], 4);
	ck_assert_uint_eq(stub.batch[3], 4);
	ck_assert_uint_eq(stub.batch[4], 1);
	for (int i = 0; i < NREC; i++)
		ck_assert_int_eq(stub.delivered[i], i);
	teardown_journal();
}
END_TEST

START_TEST(test_set_aside)
{
	struct sink_runner *run;
	struct sink_stats st;
	const int want[] = {0, 1, 3, 4, 5, 6, 7, 8, 9};

	setup_journal(NREC);
	stub.script[0] = SINK_SET_ASIDE;
	stub.script_n[0] = 2;
	run = start_stub();
	ck_assert(wait_delivered(NREC - 1));
	wait_stats(run, NREC - 1, &st);
	stop_stub(run);
	ck_assert_int_eq(stub.ndelivered, NREC - 1);
	for (int i = 0; i < NREC - 1; i++)
		ck_assert_int_eq(stub.delivered[i], want[i]);
	ck_assert_uint_eq(st.set_aside, 1);
	ck_assert_uint_eq(st.failures, 0);
	ck_assert_int_eq(left_in_journal(), 0);
	teardown_journal();
}
END_TEST

/* Twenty failures in a row make one line; the success after them one
 * more. */
START_TEST(test_failure_logged_once_a_minute)
{
	struct sink_runner *run;
	char path[128], log[8192];
	const char *line;
	int fd, saved, n;

	setup_journal(NREC);
	for (int i = 0; i < 20; i++)
		stub.script[i] = SINK_RETRY;
	stub.lim.retry_min_ms = stub.lim.retry_max_ms = 2;
	snprintf(path, sizeof path, "%s/stderr", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	stop_stub(run);
	dup2(saved, STDERR_FILENO);
	n = (int)pread(fd, log, sizeof log - 1, 0);
	ck_assert_int_gt(n, 0);
	log[n] = '\0';
	close(fd);
	close(saved);
	ck_assert_int_eq(stub.calls, 21);
	ck_assert_ptr_nonnull((line = strstr(log, "stub: boom\n")));
	ck_assert_ptr_null(strstr(line + strlen("stub: boom"), "boom"));
	ck_assert_ptr_nonnull(strstr(log,
	    "stub: delivering again after 20 failed attempt(s)\n"));
	teardown_journal();
}
END_TEST

/* A deliver that watches the grace ends at it; one that does not (stuck in
 * write(2)) is left behind a second later, and the stop returns. */
START_TEST(test_stop_never_hangs)
{
	struct sink_runner *run;
	int64_t t0;

	setup_journal(NREC);
	stub.block_ms = 60000;
	run = start_stub();
	usleep(50000);
	t0 = clock_now_ms();
	sink_runner_stop(run, 200);
	ck_assert(sink_runner_join(run));
	ck_assert_int_lt(clock_now_ms() - t0, 1000);
	ck_assert_int_eq(left_in_journal(), NREC);
	teardown_journal();
}
END_TEST

static void
stuck_deliver(void *state, struct sink_runner *run,
    const struct journal_rec *recs, size_t n, struct sink_result *r)
{
	(void)state, (void)run, (void)recs, (void)n, (void)r;
	pause(); /* a write(2) to a pipe nobody reads */
}

START_TEST(test_stop_leaves_a_stuck_sink_behind)
{
	struct sink_ops ops = stub_ops;
	struct sink_runner *run;
	int64_t t0;

	setup_journal(NREC);
	ops.deliver = stuck_deliver;
	run = sink_runner_start(&ops, NULL);
	ck_assert_ptr_nonnull(run);
	usleep(50000);
	t0 = clock_now_ms();
	sink_runner_stop(run, 100);
	ck_assert(!sink_runner_join(run));
	ck_assert_int_lt(clock_now_ms() - t0, 2000);
	ck_assert_int_ge(clock_now_ms() - t0, 1000);
	/* The journal stays open for it: the process ends here. */
	rm_tree(dir);
}
END_TEST

START_TEST(test_backoff_schedule)
{
	const int64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 32000,
	    60000, 60000, 60000};
	int64_t b = 0;

	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		b = sink_backoff_next(b, 500, 60000);
		ck_assert_int_eq(b, want[i]);
	}
	/* The events file: every second. */
	ck_assert_int_eq(sink_backoff_next(0, 1000, 1000), 1000);
	ck_assert_int_eq(sink_backoff_next(1000, 1000, 1000), 1000);
}
END_TEST

START_TEST(test_jitter_bounds)
{
	const uint32_t rs[] = {0, 1, 2, 250, 251, 30000, 30001, 0x7fffffff,
	    0xffffffff, 12345678};
	const int64_t ms[] = {500, 1000, 60000, 1};

	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		for (size_t j = 0; j < sizeof rs / sizeof rs[0]; j++) {
			int64_t w = sink_jitter(ms[i], rs[j]);

			ck_assert_int_ge(w, ms[i] / 2);
			ck_assert_int_le(w, ms[i]);
		}
	}
	ck_assert_int_eq(sink_jitter(60000, 0), 30000);
	ck_assert_int_eq(sink_jitter(60000, 30000), 60000);
}
END_TEST

START_TEST(test_complaint_due)
{
	ck_assert(sink_complaint_due(0, 5));
	ck_assert(!sink_complaint_due(1000, 1000));
	ck_assert(!sink_complaint_due(1000, 60999));
	ck_assert(sink_complaint_due(1000, 61000));
}
END_TEST

/*
 * The backoff as the runner applies it, on a stopped clock that the stub
 * moves at each call: min, doubling, capped, each wait jittered to half to
 * all of it, a longer Retry-After obeyed, and min again after a delivery;
 * the failure logged at the first attempt and again only once a minute
 * has passed, with the attempts since; "delivering again" only after a
 * logged failure.
 */
START_TEST(test_backoff_as_applied)
{
	/* Calls 0-4 fail the first batch, 5 delivers it; 6 fails the
	 * second, 7 delivers it. */
	static const struct {
		enum sink_verdict v;
		int64_t ms, after;
		int64_t lo, hi;      /* the wait after it */
	} call[] = {
		{SINK_RETRY, 0, 0, 4, 8},         /* T: logged */
		{SINK_RETRY, 1000, 0, 8, 16},     /* T+1 s */
		{SINK_RETRY, 58999, 0, 16, 32},   /* T+59.999 s */
		{SINK_RETRY, 1, 0, 25, 50},       /* T+60 s: logged, 3 since */
		{SINK_RETRY, 1, 70, 70, 70},      /* Retry-After beats 50 */
		{SINK_DELIVERED, 1, 0, 0, 0},     /* "delivering again" */
		{SINK_RETRY, 1, 0, 4, 8},         /* min again; not logged */
		{SINK_DELIVERED, 1, 0, 0, 0},
	};
	const int64_t t0 = 1000000, w0 = 1700000000000;
	int64_t waits[16];
	struct sink_runner *run;
	struct sink_stats st;
	char path[128];
	size_t nw, k = 0;

	setup_journal(NREC);
	stub.lim.max_events = NREC / 2;
	stub.lim.retry_min_ms = 8;
	stub.lim.retry_max_ms = 50;
	for (size_t i = 0; i < NELEM(call); i++) {
		stub.script[i] = call[i].v;
		stub.script_ms[i] = call[i].ms;
		stub.script_after[i] = call[i].after;
	}
	snprintf(path, sizeof path, "%s/stderr", dir);
	logcap_start(path);
	clock_stub_set(t0, w0);
	run = start_stub();
	ck_assert(wait_delivered(NREC));
	wait_stats(run, NREC, &st);
	stop_stub(run);
	clock_stub_off();

	ck_assert_int_eq(stub.calls, NELEM(call));
	nw = clock_stub_waits(waits, NELEM(waits));
	for (size_t i = 0; i < NELEM(call); i++) {
		if (call[i].v != SINK_RETRY)
			continue;
		ck_assert_uint_lt(k, nw);
		ck_assert_msg(waits[k] >= call[i].lo && waits[k] <= call[i].hi,
		    "call %zu: waited %lld ms, not %lld-%lld", i,
		    (long long)waits[k], (long long)call[i].lo,
		    (long long)call[i].hi);
		k++;
	}
	ck_assert_uint_eq(nw, k);
	ck_assert_uint_eq(st.failures, 6);
	ck_assert_uint_eq(st.batches, 2);
	ck_assert(!st.failing);
	ck_assert_int_eq(st.last_ok_ms, w0 + 60004); /* the wall clock's */
	ck_assert_int_eq(logcap_count("boom"), 2);
	ck_assert_int_eq(logcap_count("stub: boom\n"), 1);
	ck_assert_int_eq(logcap_count("stub: boom (3 failed attempt(s) "
	    "since the last such line)\n"), 1);
	ck_assert_int_eq(logcap_count("delivering again"), 1);
	ck_assert_int_eq(logcap_count("stub: delivering again after 5 "
	    "failed attempt(s)\n"), 1);
	logcap_stop();
	teardown_journal();
}
END_TEST

static void
reset_stub(void)
{
	memset(stub.script, 0, sizeof stub.script);
	memset(stub.script_n, 0, sizeof stub.script_n);
	memset(stub.script_ms, 0, sizeof stub.script_ms);
	memset(stub.script_after, 0, sizeof stub.script_after);
	stub.block_ms = 0;
	stub.calls = stub.ndelivered = 0;
	stub.stopped = false;
}

/* The optional idle op: called when a wait found nothing to deliver,
 * never before what was there is delivered. */
static struct {
	pthread_mutex_t lock;
	int calls;
	int delivered_then; /* records delivered at the first call */
} idle_seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
stub_idle(void *state, struct sink_runner *run, struct sink_result *r)
{
	(void)state;
	(void)run;
	(void)r;
	pthread_mutex_lock(&idle_seen.lock);
	if (idle_seen.calls++ == 0) {
		pthread_mutex_lock(&stub.lock);
		idle_seen.delivered_then = stub.ndelivered;
		pthread_mutex_unlock(&stub.lock);
	}
	pthread_mutex_unlock(&idle_seen.lock);
}

START_TEST(test_idle_called_when_nothing_to_deliver)
{
	struct sink_ops ops = stub_ops;
	struct sink_runner *run;
	int n = 0;

	ops.idle = stub_idle;
	setup_journal(5);
	run = sink_runner_start(&ops, NULL);
	ck_assert_ptr_nonnull(run);
	ck_assert(wait_delivered(5));
	for (int i = 0; i < 300 && n < 2; i++) {
		pthread_mutex_lock(&idle_seen.lock);
		n = idle_seen.calls;
		pthread_mutex_unlock(&idle_seen.lock);
		usleep(10000);
	}
	stop_stub(run);
	ck_assert_int_ge(n, 2);
	ck_assert_int_eq(idle_seen.delivered_then, 5);
	teardown_journal();
}
END_TEST

Suite *
sink_suite(void)
{
	Suite *s = suite_create("sink");
	TCase *tc = tcase_create("runner");

	tcase_add_checked_fixture(tc, reset_stub, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_commit_on_success);
	tcase_add_test(tc, test_rewind_and_retry);
	tcase_add_test(tc, test_failure_commits_nothing);
	tcase_add_test(tc, test_batch_by_count);
	tcase_add_test(tc, test_batch_by_bytes);
	tcase_add_test(tc, test_split);
	tcase_add_test(tc, test_set_aside);
	tcase_add_test(tc, test_failure_logged_once_a_minute);
	tcase_add_test(tc, test_backoff_as_applied);
	tcase_add_test(tc, test_stop_never_hangs);
	tcase_add_test(tc, test_stop_leaves_a_stuck_sink_behind);
	tcase_add_test(tc, test_idle_called_when_nothing_to_deliver);
	suite_add_tcase(s, tc);
	tc = tcase_create("policy");
	tcase_add_test(tc, test_backoff_schedule);
	tcase_add_test(tc, test_jitter_bounds);
	tcase_add_test(tc, test_complaint_due);
	suite_add_tcase(s, tc);
	return s;
}
