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
 * Builds the event of bytes handed over by outbox_put_bytes(), on the
 * writer (perhaps at the next start, after a SIGKILL): m as handed over,
 * with its id; *time_ms receives the record's time.  NULL: no event.
 */
typedef json_t *outbox_build_fn(const uint8_t *body, size_t len,
    const struct event_meta *m, int64_t *time_ms);

/*
 * Before outbox_start: builder id (below OUTBOX_BUILDERS, the same in
 * every run: records outlive the process) makes the events of the bytes
 * handed over under id.
 */
#define OUTBOX_BUILDERS 16
void outbox_register(unsigned id, outbox_build_fn *build);
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
/* The same for bytes whose event builder id makes (a protocol's frame):
 * the event's id is given here, the event built by the writer, so the
 * caller pays only for a copy (body and meta are copied; meta's id is not
 * used). */
void outbox_put_bytes(unsigned builder, const uint8_t *body, size_t len,
    const struct event_meta *m);

/* Totals since start. */
struct outbox_stats {
	uint64_t queued;   /* records taken into the ring */
	uint64_t dropped;   /* records that did not fit */
	uint64_t journaled; /* records the writer has dealt with */
	uint64_t unbuilt;   /* of those, bytes whose builder made no event */
};
void outbox_stats(struct outbox_stats *s);
/* Write out what is queued, then stop the writer. */
void outbox_stop(void);

#endif
