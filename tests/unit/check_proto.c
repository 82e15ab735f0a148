/*
 * check_proto.c - the protocol table: each of conf.c's protocol numbers
 * has ops of the same name, the ones that cannot answer say so, and a
 * listener's protocol counters count what its connections saw, and only
 * its own.
 *
 * The outbox is not running here: the events are dropped and counted.
 */
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "conf.h"
#include "suites.h"
#include "proto/proto.h"
#include "proto/tap.h"

/* The fixture heartbeat (dongle-heartbeat-0x47). */
static const uint8_t heartbeat[] = {
	0xa5, 0x01, 0x00, 0x10, 0x47, 0xf5, 0x85, 0x57, 0x9a, 0xf6, 0xa5,
	0x00, 0x5e, 0x15,
};

START_TEST(test_table_matches_conf)
{
	ck_assert_int_eq(proto_count(), 3);
	for (int i = 0; i < proto_count(); i++)
		ck_assert_str_eq(proto_get(i)->name, conf_proto_name(i));
	/* Out of range: relayed as it is. */
	ck_assert_str_eq(proto_get(-1)->name, "raw");
	ck_assert_str_eq(proto_get(proto_count())->name, "raw");
}
END_TEST

START_TEST(test_only_solarman_answers)
{
	ck_assert_ptr_nonnull(proto_get(PROTO_SOLARMAN)->replies);
	ck_assert_ptr_nonnull(proto_get(PROTO_SOLARMAN)->build);
	ck_assert_ptr_null(proto_get(PROTO_ENVOY)->replies);
	ck_assert_ptr_null(proto_get(PROTO_RAW)->replies);
	ck_assert_ptr_null(proto_get(PROTO_RAW)->open);
}
END_TEST

struct want {
	const char *name;
	uint64_t value;
	int seen;
};

static void
find(void *arg, const char *name, uint64_t value)
{
	struct want *w = arg;

	if (strcmp(name, w->name) == 0) {
		w->value = value;
		w->seen++;
	}
}

static uint64_t
stat_of(const struct tap_counts *tc, const char *name)
{
	struct want w = {name, 0, 0};

	tap_counts_read(tc, find, &w);
	ck_assert_int_le(w.seen, 1);
	return w.value;
}

START_TEST(test_solarman_stats)
{
	static char name[] = "deye", other[] = "other";
	uint8_t bad[sizeof heartbeat];
	struct listener_conf lc, lc2;
	struct tap_counts *tc, *tc2;
	struct tap *t;

	memset(&lc, 0, sizeof lc);
	lc.name = name;
	lc.protocol = PROTO_SOLARMAN;
	lc2 = lc;
	lc2.name = other;
	ck_assert_ptr_nonnull(tc = tap_counts_new(&lc));
	ck_assert_ptr_nonnull(tc2 = tap_counts_new(&lc2));
	ck_assert_uint_eq(stat_of(tc, "frames.heartbeat"), 0);
	ck_assert_ptr_nonnull(t = tap_open(&lc, tc, 1, "127.0.0.1:1", 0));
	tap_feed(t, 0, heartbeat, sizeof heartbeat, true);
	memcpy(bad, heartbeat, sizeof bad);
	bad[sizeof bad - 2] ^= 0xff;
	tap_feed(t, 0, bad, sizeof bad, false);
	tap_close(t);
	ck_assert_uint_eq(stat_of(tc, "frames.heartbeat"), 1);
	/* The reply is a frame too, of type 0x47 - 0x30: a "reply" event. */
	ck_assert_uint_eq(stat_of(tc, "frames.reply"), 1);
	ck_assert_uint_eq(stat_of(tc, "frames.data"), 0);
	ck_assert_uint_eq(stat_of(tc, "replies"), 1);
	ck_assert_uint_eq(stat_of(tc, "rejected.checksum"), 1);
	/* The other listener saw none of it. */
	ck_assert_uint_eq(stat_of(tc2, "frames.heartbeat"), 0);
	ck_assert_uint_eq(stat_of(tc2, "replies"), 0);
	ck_assert_uint_eq(stat_of(tc2, "rejected.checksum"), 0);
	tap_counts_free(tc);
	tap_counts_free(tc2);
}
END_TEST

/* Envoy and raw listeners have counters too (raw: none at all). */
START_TEST(test_envoy_and_raw_stats)
{
	static char name[] = "envoy";
	struct listener_conf lc;
	struct tap_counts *tc;

	memset(&lc, 0, sizeof lc);
	lc.name = name;
	lc.protocol = PROTO_ENVOY;
	ck_assert_ptr_nonnull(tc = tap_counts_new(&lc));
	ck_assert_uint_eq(stat_of(tc, "frames.envoy_reading"), 0);
	ck_assert_uint_eq(stat_of(tc, "messages.requests"), 0);
	tap_counts_free(tc);
	lc.protocol = PROTO_RAW;
	ck_assert_ptr_nonnull(tc = tap_counts_new(&lc));
	ck_assert_uint_eq(stat_of(tc, "frames.data"), 0);
	tap_counts_free(tc);
}
END_TEST

Suite *
proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_table_matches_conf);
	tcase_add_test(tc, test_only_solarman_answers);
	tcase_add_test(tc, test_solarman_stats);
	tcase_add_test(tc, test_envoy_and_raw_stats);
	suite_add_tcase(s, tc);
	return s;
}
