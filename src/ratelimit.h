/*
 * ratelimit.h - "at most one line a second, with a count": for refusals and
 * resource failures that a flood could otherwise repeat for every
 * connection.  Thread-safe; the counts are never lost: what was not logged
 * is reported by the next line, or by ratelimit_flush() once the second is
 * over, even when nothing else happens.
 */
#ifndef DEYE_RATELIMIT_H
#define DEYE_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	pthread_mutex_t lock;
	int64_t last_ms;     /* of the last line, 0 before the first */
	unsigned suppressed; /* not logged since */
};

#define RATELIMIT_INITIALIZER {PTHREAD_MUTEX_INITIALIZER, 0, 0}

/*
 * One more occurrence: true when it is to be logged now, with *skipped set
 * to how many were not logged since the last line.
 */
bool ratelimit_pass(struct ratelimit *r, unsigned *skipped);
/*
 * True when occurrences were held back and a second has passed since the
 * last line: log their count (*skipped) now.
 */
bool ratelimit_flush(struct ratelimit *r, unsigned *skipped);
/* Milliseconds until ratelimit_flush() may have something, or -1. */
int64_t ratelimit_due_ms(struct ratelimit *r);

#endif
