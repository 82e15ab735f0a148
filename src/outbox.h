/*
 * outbox.h - where taps hand their events: a bounded queue that never
 * blocks a pump and outlives a SIGKILL, drained by one writer thread into
 * the journal.
 */
#ifndef DEYE_OUTBOX_H
#define DEYE_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "event.h"

/*
 * Map state_dir/outbox, journal what the last run left in it (the journal
 * is open), start the writer.
 */
int outbox_start(const char *state_dir);
/*
 * Hand over ev (ownership passes) with its record time.  Never waits: when
 * the queue is full the event is dropped, counted and logged.
 */
void outbox_put(json_t *ev, int64_t time_ms);
/* The same for a validated Solarman frame: its id is given here, its
 * event built by the writer (frame and meta are copied; meta's id is not
 * used). */
void outbox_put_frame(const uint8_t *frame, size_t len,
    const struct event_meta *m);
/* Write out what is queued, then stop the writer. */
void outbox_stop(void);

#endif
