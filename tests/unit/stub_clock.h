/*
 * stub_clock.h - the clock of the unit tests (stub_clock.c), linked in
 * place of src/clock.c: the real clocks until a test stops them.
 */
#ifndef DEYE_TEST_STUB_CLOCK_H
#define DEYE_TEST_STUB_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stop clock_now_ms() at mono_ms and clock_wall_ms() at wall_ms (neither
 * 0: callers read 0 as "never"); the noted waits are forgotten. */
void clock_stub_set(int64_t mono_ms, int64_t wall_ms);
/* Move both stopped clocks on by ms. */
void clock_stub_advance(int64_t ms);
/* The real clocks again (CK_FORK=no runs every test in one process). */
void clock_stub_off(void);
/* Note the calling thread's clock_cond_wait() times from now on, or not. */
void clock_stub_note_waits(bool on);
/* The waits noted so far, oldest first: how many (at most max copied). */
size_t clock_stub_waits(int64_t *out, size_t max);

#endif
