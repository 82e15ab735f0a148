/*
 * check_outbox.c - the outbox full, on a real ring and journal in a
 * temporary state_dir.  The test's builder runs on the writer thread, so
 * the writer is held at a record of the test's choosing while the test
 * fills the ring: what does not fit is dropped and counted, what fits is
 * journaled in order with its id, and "queue full" is logged at most once
 * a second with the count, checked on the stub clock (stub_clock.c).
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "logcap.h"
#include "stub_clock.h"
#include "rmtree.h"
#include "suites.h"
#include "pipeline/journal.h"
#include "pipeline/outbox.h"
#include "pipeline/outbox_ring.h"
#include "sinks/sink.h"

#define BUILDER 3
#define UNREGISTERED 5
#define BODY (60 * 1024) /* about 70 fill the ring */
#define MAXREC 512

static char dir[64];
static uint8_t body[BODY];

/* The writer stops in the builder at record number gate_at until opened. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int gate_at;
	bool entered, open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, false,
    false};

/* {"id":..,"n":..}, n being the number the test wrote first in the body. */
static json_t *
build(const uint8_t *b, size_t len, const struct event_meta *m,
    int64_t *time_ms)
{
	int n;

	ck_assert_uint_ge(len, 8);
	n = (int)strtol((const char *)b, NULL, 10); /* NUL after the digits */
	pthread_mutex_lock(&gate.lock);
	if (n == gate.gate_at) {
		gate.entered = true;
		pthread_cond_broadcast(&gate.cond);
		while (!gate.open)
			pthread_cond_wait(&gate.cond, &gate.lock);
	}
	pthread_mutex_unlock(&gate.lock);
	*time_ms = 1000 + n;
	return json_pack("{s:s,s:i}", "id", m->id, "n", n);
}

static void
gate_close(int at)
{
	pthread_mutex_lock(&gate.lock);
	gate.gate_at = at;
	gate.entered = gate.open = false;
	pthread_mutex_unlock(&gate.lock);
}

static void
gate_wait_entered(void)
{
	pthread_mutex_lock(&gate.lock);
	while (!gate.entered)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

static struct outbox_stats
stats(void)
{
	struct outbox_stats st;

	outbox_stats(&st);
	return st;
}

/* Put record n (len bytes of body); whether it was taken. */
static bool
put(unsigned builder, int n, size_t len)
{
	struct event_meta m = {.listener = "l", .peer = "p", .conn_id = 1,
	    .received_ms = 1000};
	uint64_t before = stats().dropped;

	snprintf((char *)body, 9, "%d", n);
	outbox_put_bytes(builder, body, len, &m);
	return stats().dropped == before;
}

/* Bounded: the writer has dealt with everything taken. */
static void
wait_journaled(void)
{
	struct outbox_stats st;

	for (int i = 0; i < 1000; i++) {
		st = stats();
		if (st.journaled == st.queued)
			return;
		usleep(5000);
	}
	ck_abort_msg("writer stuck: %" PRIu64 " of %" PRIu64 " journaled",
	    st.journaled, st.queued);
}

/* Put BODY-sized records from *n on until `drops` of them did not fit;
 * the taken ones' numbers go to taken[]. */
static void
fill(int *n, int drops, int *taken, int *ntaken)
{
	int dropped = 0;

	while (dropped < drops) {
		ck_assert_int_lt(*n, MAXREC);
		if (put(BUILDER, *n, BODY))
			taken[(*ntaken)++] = *n;
		else
			dropped++;
		(*n)++;
	}
}

START_TEST(test_full)
{
	const int64_t t0 = 1000000;
	struct journal_reader *r;
	struct journal_rec rec;
	struct outbox_stats st;
	struct conf *c = conf_new(sinks_sections());
	char opt[128], err[256];
	int taken[MAXREC], ntaken = 0, n = 0, got = 0;
	uint64_t prev_seq = 0;

	snprintf(dir, sizeof dir, "/tmp/deye-check-outbox-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(opt, sizeof opt, "%s/stderr", dir);
	logcap_start(opt);
	clock_stub_set(t0, 1700000000000);
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
	r = journal_reader_open("t");
	ck_assert_ptr_nonnull(r);
	event_ids_init();
	outbox_register(BUILDER, build);
	ck_assert_int_eq(outbox_start(dir), 0);

	/* Round 1: the writer held at record 0, the ring fills; 3 dropped. */
	gate_close(n);
	ck_assert(put(BUILDER, n, 8));
	taken[ntaken++] = n++;
	gate_wait_entered();
	fill(&n, 3, taken, &ntaken);
	ck_assert_int_gt(ntaken, 1 + (RING_SIZE / BODY) * 9 / 10);
	st = stats();
	ck_assert_uint_eq(st.dropped, 3);
	ck_assert_uint_eq(st.queued, (uint64_t)ntaken);
	ck_assert_uint_eq(logcap_count("queue full"), 0); /* the writer's */
	gate_open();
	wait_journaled();
	ck_assert_int_eq(logcap_count("queue full"), 1);
	ck_assert_int_eq(logcap_count("events: queue full, 3 event(s) dropped "
	    "(3 since start)\n"), 1);

	/* Round 2 within the same second: 2 dropped, no line yet. */
	gate_close(n);
	ck_assert(put(BUILDER, n, 8));
	taken[ntaken++] = n++;
	gate_wait_entered();
	fill(&n, 2, taken, &ntaken);
	gate_open();
	wait_journaled();
	clock_stub_advance(999);
	ck_assert(put(BUILDER, n, 8)); /* its round saw the clock at 999 */
	taken[ntaken++] = n++;
	wait_journaled();
	ck_assert_int_eq(logcap_count("queue full"), 1);
	/* A second after the first line, the second, with its count. */
	clock_stub_advance(1);
	ck_assert(put(BUILDER, n, 8));
	taken[ntaken++] = n++;
	wait_journaled();
	ck_assert_int_eq(logcap_count("queue full"), 2);
	ck_assert_int_eq(logcap_count("events: queue full, 2 event(s) dropped "
	    "(5 since start)\n"), 1);

	/* Bytes no builder makes an event of: dealt with, not journaled. */
	ck_assert(put(UNREGISTERED, n++, 8));
	wait_journaled();
	ck_assert_int_eq(logcap_count("events: cannot make an event "
	    "(builder 5)\n"), 1);
	outbox_stop();
	st = stats();
	ck_assert_uint_eq(st.dropped, 5);
	ck_assert_uint_eq(st.queued, (uint64_t)ntaken + 1);
	ck_assert_uint_eq(st.journaled, st.queued);
	ck_assert_uint_eq(st.unbuilt, 1);
	ck_assert_int_eq(logcap_count("queue full"), 2);

	/* Every record taken is in the journal, in order, ids rising. */
	while (journal_next(r, &rec, 0) == 1) {
		json_t *ev = json_loads(rec.json, 0, NULL);
		const char *id;
		uint64_t seq;

		ck_assert_ptr_nonnull(ev);
		ck_assert_int_lt(got, ntaken);
		ck_assert_int_eq(json_integer_value(json_object_get(ev, "n")),
		    taken[got]);
		ck_assert_int_eq(rec.time_ms, 1000 + taken[got]);
		id = json_string_value(json_object_get(ev, "id"));
		ck_assert_ptr_nonnull(id);
		ck_assert_ptr_nonnull(strchr(id, '-'));
		seq = strtoull(strchr(id, '-') + 1, NULL, 10);
		ck_assert_uint_gt(seq, prev_seq);
		prev_seq = seq;
		json_decref(ev);
		got++;
	}
	ck_assert_int_eq(got, ntaken);
	clock_stub_off();
	logcap_stop();
	journal_close();
	rm_tree(dir);
}
END_TEST

Suite *
outbox_suite(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("full");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full);
	suite_add_tcase(s, tc);
	return s;
}
