/*
 * check_relay.c - a listener's counters (struct relay_stats): each field
 * read back as itself, and adds from many threads at once all counted.
 */
#include <check.h>
#include <pthread.h>
#include <string.h>

#include "suites.h"
#include "relay/relay.h"

#define THREADS 4
#define ADDS 10000

static struct relay_stats shared;

/* Distinct amounts per field, so that a field read as another shows. */
static void
add_all(struct relay_stats *s)
{
	relay_stats_add(&s->accepted, 1);
	for (int i = 0; i < RELAY_REFUSALS; i++)
		relay_stats_add(&s->refused[i], 10 + (uint64_t)i);
	relay_stats_add(&s->active, 100);
	relay_stats_add(&s->connect_failed, 1000);
	relay_stats_add(&s->bytes[0], 10000);
	relay_stats_add(&s->bytes[1], 100000);
}

static void
assert_counts(const struct relay_counts *c, uint64_t times)
{
	ck_assert_uint_eq(c->accepted, times);
	for (int i = 0; i < RELAY_REFUSALS; i++)
		ck_assert_uint_eq(c->refused[i], (10 + (uint64_t)i) * times);
	ck_assert_uint_eq(c->active, 100 * times);
	ck_assert_uint_eq(c->connect_failed, 1000 * times);
	ck_assert_uint_eq(c->bytes[0], 10000 * times);
	ck_assert_uint_eq(c->bytes[1], 100000 * times);
}

START_TEST(test_fields)
{
	struct relay_stats s;
	struct relay_counts c;

	memset(&s, 0, sizeof s);
	memset(&c, 0xff, sizeof c);
	relay_stats_read(&s, &c);
	assert_counts(&c, 0);
	add_all(&s);
	relay_stats_read(&s, &c);
	assert_counts(&c, 1);
	add_all(&s);
	add_all(&s);
	relay_stats_read(&s, &c);
	assert_counts(&c, 3);
	/* Big byte counts do not wrap at 32 bits. */
	relay_stats_add(&s.bytes[0], (uint64_t)5 << 32);
	relay_stats_read(&s, &c);
	ck_assert_uint_eq(c.bytes[0], ((uint64_t)5 << 32) + 30000);
}
END_TEST

static void *
adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < ADDS; i++)
		add_all(&shared);
	return NULL;
}

/* The relay's threads add while the owner reads: nothing is lost. */
START_TEST(test_threads)
{
	pthread_t t[THREADS];
	struct relay_counts c;

	memset(&shared, 0, sizeof shared);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, adder, NULL), 0);
	for (int i = 0; i < 100; i++) {
		relay_stats_read(&shared, &c);
		ck_assert_uint_le(c.accepted, THREADS * ADDS);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	relay_stats_read(&shared, &c);
	assert_counts(&c, THREADS * ADDS);
}
END_TEST

Suite *
relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("stats");

	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}
