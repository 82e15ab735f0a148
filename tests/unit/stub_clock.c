/*
 * stub_clock.c - src/clock.c for the unit tests, linked in its place (the
 * Makefile leaves clock.o out of unit-tests), the way mosquitto's unit
 * tests link the real objects plus small stubs: the daemon's code keeps
 * calling clock_now_ms() and clock_wall_ms(), and pays nothing for tests.
 *
 * Real until a test stops the clocks (clock_stub_set); then they move only
 * when the test moves them, so rate limits, backoffs and fsync intervals
 * are checked at chosen times, not by sleeping.  Waits stay real: a
 * stopped clock could never time one out, and a thread waiting to be
 * woken (a journal reader, the outbox writer) must still be woken.  So
 * clock_cond_wait() waits the ms asked on the real monotonic clock,
 * noting them for a thread that asked, and does not move the stopped
 * clocks.  A test that stops the clocks keeps its waits short.
 */
#include "clock.h"
#include "stub_clock.h"

#include <stdatomic.h>
#include <time.h>

#define NOTED_MAX 64

static atomic_bool stopped;
static _Atomic int64_t mono, wall;
static pthread_mutex_t noted_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t noted[NOTED_MAX];
static size_t nnoted;
static _Thread_local bool noting;

static int64_t
real_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_now_ms(void)
{
	return atomic_load(&stopped) ? atomic_load(&mono) :
	    real_ms(CLOCK_MONOTONIC);
}

int64_t
clock_wall_ms(void)
{
	return atomic_load(&stopped) ? atomic_load(&wall) :
	    real_ms(CLOCK_REALTIME);
}

void
clock_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

void
clock_cond_wait(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms)
{
	struct timespec ts;

	if (noting) {
		pthread_mutex_lock(&noted_lock);
		if (nnoted < NOTED_MAX)
			noted[nnoted] = ms;
		nnoted++;
		pthread_mutex_unlock(&noted_lock);
	}
	if (ms < 0) {
		pthread_cond_wait(c, m);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(c, m, &ts);
}

void
clock_stub_set(int64_t mono_ms, int64_t wall_ms)
{
	atomic_store(&mono, mono_ms);
	atomic_store(&wall, wall_ms);
	atomic_store(&stopped, true);
	pthread_mutex_lock(&noted_lock);
	nnoted = 0;
	pthread_mutex_unlock(&noted_lock);
}

void
clock_stub_advance(int64_t ms)
{
	atomic_fetch_add(&mono, ms);
	atomic_fetch_add(&wall, ms);
}

void
clock_stub_off(void)
{
	atomic_store(&stopped, false);
}

void
clock_stub_note_waits(bool on)
{
	noting = on;
}

size_t
clock_stub_waits(int64_t *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&noted_lock);
	n = nnoted;
	for (size_t i = 0; i < n && i < max && i < NOTED_MAX; i++)
		out[i] = noted[i];
	pthread_mutex_unlock(&noted_lock);
	return n;
}
