/*
 * clock.h - time for deadlines and time for events.
 *
 * Deadlines use the monotonic clock, condition variables included: a
 * Raspberry Pi has no real-time clock and its wall clock jumps when NTP
 * first answers, which must not stretch or cut any wait.
 *
 * Deadlines, rate limits and event times read time here, so that the unit
 * tests can stop and move it: they link tests/unit/stub_clock.c in place
 * of clock.c (the mosquitto way: real objects plus small stubs), which
 * costs the daemon nothing.  There, waits stay real while the clocks stand
 * still: a stopped clock could never time a wait out, and a waiting
 * thread must still be woken by another.  (Log timestamps, names of files
 * and pthread_timedjoin_np's CLOCK_REALTIME deadlines read the system.)
 */
#ifndef DEYE_CLOCK_H
#define DEYE_CLOCK_H

#include <pthread.h>
#include <stdint.h>

/* Monotonic milliseconds, for deadlines. */
int64_t clock_now_ms(void);
/* Unix time in milliseconds, for what users read. */
int64_t clock_wall_ms(void);
/* A condition variable whose timed waits use the monotonic clock. */
void clock_cond_init(pthread_cond_t *c);
/* Wait on c (m held) at most ms milliseconds; ms < 0: no limit. */
void clock_cond_wait(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms);

#endif
