/*
 * check_outbox_ring.c - the outbox ring as the next start finds it: what
 * was put and not committed comes back whole and in order (across the
 * wrap of the data area too), a damaged record stops the walk, a file that
 * is not a ring is made anew, and a full ring refuses.
 *
 * A "crash" is ring_close() without ring_commit(): all a SIGKILL leaves is
 * the file, as here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "suites.h"
#include "pipeline/outbox_ring.h"

static char dir[64], path[128];
static uint8_t scratch[RING_RECORD_MAX];

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/deye-ring-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/outbox", dir);
}

static void
teardown(void)
{
	(void)unlink(path);
	(void)rmdir(dir);
}

static void
open_ring(struct ring *r, const char *want_why)
{
	char why[512];

	ck_assert_int_eq(ring_open(r, path, why, sizeof why), 0);
	ck_assert(!r->in_memory);
	if (want_why == NULL)
		ck_assert_str_eq(why, "");
	else
		ck_assert_ptr_nonnull(strstr(why, want_why));
}

/* Record i: a frame, an event or a job, its body filled from i. */
static void
make_rec(struct ring_rec *rec, uint8_t *body, size_t len, unsigned i)
{
	memset(rec, 0, sizeof *rec);
	rec->kind = (enum ring_kind)(RING_EVENT + i % 3);
	rec->dir = (int)(i & 1);
	rec->conn_id = 1000 + i;
	rec->time_ms = 1700000000000LL + i;
	for (size_t k = 0; k < len; k++)
		body[k] = (uint8_t)(i + k);
	if (rec->kind == RING_BYTES) {
		rec->builder = i % 5;
		snprintf(rec->id, sizeof rec->id, "0123456789abcdef-%u", i);
		rec->listener = "deye";
		rec->peer = "127.0.0.1:4242";
	}
	if (rec->kind != RING_JOB) {
		rec->body = body;
		rec->len = len;
	}
}

static void
check_rec(const struct ring_rec *got, unsigned i, size_t len)
{
	static uint8_t body[RING_RECORD_MAX];
	struct ring_rec want;

	make_rec(&want, body, len, i);
	ck_assert_int_eq(got->kind, want.kind);
	ck_assert_uint_eq(got->builder, want.builder);
	ck_assert_int_eq(got->dir, want.dir);
	ck_assert_uint_eq(got->conn_id, want.conn_id);
	ck_assert_int_eq(got->time_ms, want.time_ms);
	ck_assert_str_eq(got->id, want.id);
	ck_assert_uint_eq(got->len, want.len);
	ck_assert(want.len == 0 || memcmp(got->body, want.body, want.len) == 0);
	if (want.listener == NULL) {
		ck_assert_ptr_null(got->listener);
	} else {
		ck_assert_str_eq(got->listener, want.listener);
		ck_assert_str_eq(got->peer, want.peer);
	}
}

/* Read back records first.. from the tail to the head; how many. */
static unsigned
walk(struct ring *r, unsigned first, size_t len)
{
	uint64_t pos, seq, end, end_seq;
	unsigned n = 0;

	ring_tail(r, &pos, &seq);
	ring_head(r, &end, &end_seq);
	while (pos < end) {
		struct ring_rec rec;
		size_t k = ring_read(r, pos, end, seq, &rec, scratch);

		if (k == 0)
			break;
		check_rec(&rec, first + n, len);
		pos += k;
		seq++;
		n++;
	}
	return n;
}

START_TEST(test_uncommitted_records_survive)
{
	static uint8_t body[400];
	struct ring r;
	struct ring_rec rec;
	uint64_t pos, seq;

	open_ring(&r, NULL);
	for (unsigned i = 0; i < 30; i++) {
		make_rec(&rec, body, sizeof body, i);
		ck_assert(ring_put(&r, &rec));
	}
	/* The writer dealt with the first 10 and then the process died. */
	ring_tail(&r, &pos, &seq);
	for (unsigned i = 0; i < 10; i++) {
		uint64_t end, end_seq;

		ring_head(&r, &end, &end_seq);
		pos += ring_read(&r, pos, end, seq++, &rec, scratch);
	}
	ring_commit(&r, pos, seq);
	ring_close(&r);

	open_ring(&r, NULL);
	ck_assert_uint_eq(walk(&r, 10, sizeof body), 20);
	ring_close(&r);
}
END_TEST

START_TEST(test_records_across_the_wrap)
{
	static uint8_t body[10000];
	struct ring r;
	struct ring_rec rec;
	unsigned i = 0, first;
	uint64_t pos, seq, end, end_seq;

	open_ring(&r, NULL);
	/* Fill and free until the head has passed the end of the data area. */
	for (;;) {
		make_rec(&rec, body, sizeof body, i);
		ck_assert(ring_put(&r, &rec));
		i++;
		ring_tail(&r, &pos, &seq);
		ring_head(&r, &end, &end_seq);
		if (end > r.size + 5 * sizeof body)
			break;
		if (end - pos > r.size / 2) {
			pos += ring_read(&r, pos, end, seq, &rec, scratch);
			ring_commit(&r, pos, seq + 1);
		}
	}
	ring_tail(&r, &pos, &seq);
	first = (unsigned)seq;
	ring_close(&r);

	open_ring(&r, NULL);
	ck_assert_uint_eq(walk(&r, first, sizeof body), i - first);
	ring_close(&r);
}
END_TEST

START_TEST(test_damaged_record_stops_the_walk)
{
	static uint8_t body[300];
	struct ring r;
	struct ring_rec rec;
	uint64_t pos, seq;

	open_ring(&r, NULL);
	for (unsigned i = 0; i < 8; i++) {
		if (i == 4)
			ring_head(&r, &pos, &seq);
		make_rec(&rec, body, sizeof body, i);
		ck_assert(ring_put(&r, &rec));
	}
	r.data[(pos + 150) % r.size] ^= 0x40; /* inside record 4, a frame */
	ring_close(&r);

	open_ring(&r, NULL);
	ck_assert_uint_eq(walk(&r, 0, sizeof body), 4);
	ring_close(&r);
}
END_TEST

START_TEST(test_not_a_ring_is_made_anew)
{
	struct ring r;
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs("not an outbox\n", f);
	fclose(f);
	open_ring(&r, "made anew");
	ck_assert(ring_empty(&r));
	ck_assert_uint_eq(r.size, RING_SIZE);
	ring_close(&r);
	open_ring(&r, NULL); /* and it is one now */
	ring_close(&r);
}
END_TEST

START_TEST(test_full_ring_refuses)
{
	static uint8_t body[RING_RECORD_MAX - 200];
	struct ring r;
	struct ring_rec rec;
	uint64_t pos, seq;
	unsigned n = 0;

	open_ring(&r, NULL);
	make_rec(&rec, body, sizeof body, 0);
	while (ring_put(&r, &rec))
		n++;
	ck_assert_uint_eq(n, RING_SIZE / (RING_RECORD_MAX - 200 + 80));
	ring_head(&r, &pos, &seq); /* all dealt with: empty */
	ring_commit(&r, pos, seq);
	ck_assert(ring_put(&r, &rec));
	rec.len = RING_RECORD_MAX; /* over the limit, however empty */
	ck_assert(!ring_put(&r, &rec));
	ring_close(&r);
}
END_TEST

Suite *
outbox_ring_suite(void)
{
	Suite *s = suite_create("outbox_ring");
	TCase *tc = tcase_create("recovery");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_uncommitted_records_survive);
	tcase_add_test(tc, test_records_across_the_wrap);
	tcase_add_test(tc, test_damaged_record_stops_the_walk);
	tcase_add_test(tc, test_not_a_ring_is_made_anew);
	tcase_add_test(tc, test_full_ring_refuses);
	suite_add_tcase(s, tc);
	return s;
}
