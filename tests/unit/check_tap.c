/*
 * check_tap.c - the Solarman tap's time replies when a chunk is decoded
 * before it is sent: replies only for a chunk that is not for the cloud,
 * or (on_upstream_failure = answer) one whose send failed after all.
 *
 * The outbox is not running here: the tap's events are dropped and
 * counted, which is all a tap may expect of it anyway.
 */
#include <string.h>

#include <check.h>

#include "conf.h"
#include "suites.h"
#include "proto/solarman.h"
#include "proto/tap.h"

/* The fixture heartbeat (dongle-heartbeat-0x47), twice in one chunk. */
static const uint8_t heartbeat[] = {
	0xa5, 0x01, 0x00, 0x10, 0x47, 0xf5, 0x85, 0x57, 0x9a, 0xf6, 0xa5,
	0x00, 0x5e, 0x15,
};

static char name[] = "deye";

static struct listener_conf
listener(int on_failure)
{
	struct listener_conf lc;

	memset(&lc, 0, sizeof lc);
	lc.name = name;
	lc.protocol = PROTO_SOLARMAN;
	lc.on_upstream_failure = on_failure;
	lc.tz_offset.minutes = 60;
	return lc;
}

/* Feed two heartbeats as going to the cloud; then, if failed, say the send
 * failed.  The number of replies the up pump is given. */
static size_t
replies_after(int on_failure, bool answer, bool failed)
{
	struct listener_conf lc = listener(on_failure);
	struct tap_counts *tc = tap_counts_new(&lc);
	struct tap *t = tap_open(&lc, tc, 1, "127.0.0.1:1", 0);
	uint8_t chunk[2 * sizeof heartbeat];
	const uint8_t *p;
	size_t n;

	ck_assert_ptr_nonnull(t);
	memcpy(chunk, heartbeat, sizeof heartbeat);
	memcpy(chunk + sizeof heartbeat, heartbeat, sizeof heartbeat);
	tap_feed(t, 0, chunk, sizeof chunk, answer);
	if (failed)
		tap_answer_last(t);
	n = tap_replies(t, &p);
	for (size_t i = 0; i < n; i += SOLARMAN_REPLY_LEN) {
		ck_assert_uint_eq(p[i + 4], 0x47 - 0x30);
		ck_assert_uint_eq(p[i + 5], 0xf6);
	}
	tap_replies_sent(t);
	/* The next chunk goes to the cloud: nothing of the last one is
	 * answered any more. */
	tap_feed(t, 0, heartbeat, sizeof heartbeat, false);
	tap_answer_last(t);
	ck_assert_uint_eq(tap_replies(t, &p), SOLARMAN_REPLY_LEN *
	    (on_failure == ON_FAILURE_ANSWER));
	tap_close(t);
	tap_counts_free(tc);
	return n / SOLARMAN_REPLY_LEN;
}

START_TEST(test_sent_to_the_cloud_is_not_answered)
{
	ck_assert_uint_eq(replies_after(ON_FAILURE_ANSWER, false, false), 0);
}
END_TEST

START_TEST(test_local_chunk_is_answered)
{
	ck_assert_uint_eq(replies_after(ON_FAILURE_ANSWER, true, false), 2);
}
END_TEST

START_TEST(test_failed_send_is_answered_after_all)
{
	ck_assert_uint_eq(replies_after(ON_FAILURE_ANSWER, false, true), 2);
}
END_TEST

START_TEST(test_failed_send_without_answer_mode)
{
	ck_assert_uint_eq(replies_after(ON_FAILURE_CLOSE, false, true), 0);
}
END_TEST

Suite *
tap_suite(void)
{
	Suite *s = suite_create("tap");
	TCase *tc = tcase_create("replies");

	tcase_add_test(tc, test_sent_to_the_cloud_is_not_answered);
	tcase_add_test(tc, test_local_chunk_is_answered);
	tcase_add_test(tc, test_failed_send_is_answered_after_all);
	tcase_add_test(tc, test_failed_send_without_answer_mode);
	suite_add_tcase(s, tc);
	return s;
}
