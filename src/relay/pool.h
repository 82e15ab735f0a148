/*
 * pool.h - the relay's threads, parked between jobs and reused: one job
 * per thread at a time (a connection's controller, or one of its pumps).
 */
#ifndef DEYE_POOL_H
#define DEYE_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Threads of stack bytes each (at least what the system needs); before
 * the first pool_run(). */
void pool_init(size_t stack);
/*
 * Run fn(arg) on a thread of its own: a parked one, or a new one.  0, or
 * an errno value when no thread could be had (EAGAIN: the system's limit
 * on threads, ENOMEM).  Nobody joins the job: one that must wait for
 * another waits on a condition of its own, signalled by the other's last
 * touch of what they share.
 */
int pool_run(void *(*fn)(void *), void *arg);
/* End the threads parked for longer than a second, and give back the
 * stacks of the threads that ended (the accept threads call this on their
 * ticks); how many were parked. */
long pool_trim(void);
/*
 * Give back the pages of this pool thread's stack below the caller's
 * frame: a thread about to wait long (a controller, while its pumps run)
 * keeps only what its waiting touches resident.
 */
void pool_shed_stack(void);
/* Threads alive (busy or parked) and parked, for the tests' counts. */
void pool_counts(long *threads, long *parked);
/* No more jobs: end the parked threads and wait until every thread has
 * ended, at most timeout_ms, giving back their stacks; how many are still
 * running. */
long pool_stop(int64_t timeout_ms);

#endif
