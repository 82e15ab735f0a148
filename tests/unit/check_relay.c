/*
 * check_relay.c - a listener's counters (struct relay_stats): each field
 * read back as itself, and adds from many threads at once all counted; the
 * thread pool's stacks.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "suites.h"
#include "relay/pool.h"
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

static sem_t job_done;

static void *
job(void *arg)
{
	char deep[8192];

	/* Touch a good part of the stack, as a pump's decoding may. */
	memset(deep, (int)(intptr_t)arg, sizeof deep);
	__asm__ volatile("" : : "r"(deep) : "memory");
	sem_post(&job_done);
	return NULL;
}

/*
 * A stack size below the system's least (64-bit ARM's glibc refuses a
 * stack under 128 KiB, x86-64's under 16 KiB) still gives threads: the
 * pool raises it.  Jobs run, and pool_stop() joins every thread.
 */
START_TEST(test_pool_small_stack)
{
	struct timespec until;
	long threads, parked;

	ck_assert_int_eq(sem_init(&job_done, 0, 0), 0);
	pool_init(4096);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pool_run(job, (void *)(intptr_t)(i + 1)), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	for (int i = 0; i < 3; i++) {
		int r;

		while ((r = sem_timedwait(&job_done, &until)) != 0 &&
		    errno == EINTR)
			continue;
		ck_assert_int_eq(r, 0);
	}
	pool_counts(&threads, &parked);
	ck_assert_int_le(threads, 3);
	ck_assert_int_eq(pool_stop(10000), 0);
	pool_counts(&threads, &parked);
	ck_assert_int_eq(threads, 0);
	sem_destroy(&job_done);
}
END_TEST

Suite *
relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("stats");
	TCase *pool = tcase_create("pool");

	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	tcase_add_test(pool, test_pool_small_stack);
	suite_add_tcase(s, pool);
	return s;
}
