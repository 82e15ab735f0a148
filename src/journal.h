/*
 * journal.h - the durable event journal in state_dir/journal.
 *
 * One writer (the outbox thread) appends; each sink reads with its own
 * cursor and commits what it delivered.  Segments are deleted once every
 * sink has passed them; past spool_max the oldest are dropped, counted.
 */
#ifndef DEYE_JOURNAL_H
#define DEYE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct journal_pos {
	uint64_t seg;
	uint64_t off;
};

struct journal_rec {
	struct journal_pos pos;  /* where it starts */
	struct journal_pos next; /* where the next one starts */
	int64_t time_ms;         /* the event's own time */
	const char *json;        /* the event, valid until the next read */
	size_t len;
};

int journal_open(const struct conf *c, char *err, size_t errlen);
void journal_close(void);

/* Writer thread only.  Returns 0, or -1 if the event could not be stored
 * (disk full: logged and counted, the relay goes on). */
int journal_append(int64_t time_ms, const char *json, size_t len);
/* After a batch of appends: let readers see them; fsync when due.
 * Returns how long until an fsync is due (ms), or -1 if nothing waits. */
int64_t journal_publish(void);

struct journal_reader;

struct journal_reader *journal_reader_open(const char *name);
/* The next record: 1, or 0 when none arrived within wait_ms. */
int journal_next(struct journal_reader *r, struct journal_rec *rec,
    int64_t wait_ms);
/* Read again from the last committed position (a failed delivery). */
void journal_rewind(struct journal_reader *r);
/* Everything before next was delivered: persist the cursor. */
void journal_commit(struct journal_reader *r, struct journal_pos next);
/* Every sink has opened its reader: from now on delete what all have
 * passed (cursors of sinks not configured this time hold theirs). */
void journal_start_deleting(void);
/* Wake readers waiting in journal_next (shutdown). */
void journal_wake(void);
void journal_reader_close(struct journal_reader *r);


#endif
