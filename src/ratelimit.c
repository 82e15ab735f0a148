/*
 * ratelimit.c - one line a second per limiter, with the count of the ones
 * held back (see ratelimit.h).
 */
#include "ratelimit.h"

#include "clock.h"

#define RATELIMIT_MS 1000

bool
ratelimit_pass(struct ratelimit *r, unsigned *skipped)
{
	int64_t now = clock_now_ms();
	bool pass = false;

	pthread_mutex_lock(&r->lock);
	if (r->last_ms != 0 && now - r->last_ms < RATELIMIT_MS) {
		r->suppressed++;
	} else {
		*skipped = r->suppressed;
		r->suppressed = 0;
		r->last_ms = now;
		pass = true;
	}
	pthread_mutex_unlock(&r->lock);
	return pass;
}

bool
ratelimit_flush(struct ratelimit *r, unsigned *skipped)
{
	int64_t now = clock_now_ms();
	bool due;

	pthread_mutex_lock(&r->lock);
	due = r->suppressed > 0 && now - r->last_ms >= RATELIMIT_MS;
	if (due) {
		*skipped = r->suppressed;
		r->suppressed = 0;
		r->last_ms = now; /* the count's line is a line too */
	}
	pthread_mutex_unlock(&r->lock);
	return due;
}

int64_t
ratelimit_due_ms(struct ratelimit *r)
{
	int64_t left = -1;

	pthread_mutex_lock(&r->lock);
	if (r->suppressed > 0) {
		left = r->last_ms + RATELIMIT_MS - clock_now_ms();
		if (left < 0)
			left = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return left;
}
