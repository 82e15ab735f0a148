/*
 * worker.h - one thread for work too slow for the outbox writer (the
 * Envoy's inflate, XML and fsynced spool files), so that a slow disk under
 * it delays no other protocol's events.  The work's events go back
 * through outbox_put() like any other.
 */
#ifndef DEYE_WORKER_H
#define DEYE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Start the thread.  state_dir/jobs counts the jobs taken and finished in
 * a shared mapping, so the next start can say how many a SIGKILL lost.
 */
int worker_start(const char *state_dir);
/*
 * Queue job: run(job) does the work and frees job; discard(job) frees it
 * unrun (stopping).  bytes is what job holds, counted against a bound on
 * all queued jobs.  Never waits: false when the queue has no room; the
 * caller then says what it lost and frees job.
 */
bool worker_put(void (*run)(void *job), void (*discard)(void *job), void *job,
    size_t bytes);
/*
 * Run what is queued for at most grace_ms, discard the rest (counted and
 * logged), stop the thread.  False when a job was still running at the
 * deadline: the thread is left to end with the process, and what the jobs
 * use (the configuration) must not be freed.
 */
bool worker_stop(int64_t grace_ms);

#endif
