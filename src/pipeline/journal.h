/*
 * journal.h - the durable event journal in state_dir/journal.
 *
 * One writer (the outbox thread) appends; each sink reads with its own
 * cursor and commits what it delivered.  Segments are deleted once every
 * sink has passed them; past spool_max the oldest are dropped, counted.
 * state_dir is locked against a second instance; damaged records are
 * skipped (the segment copied to state_dir/damaged/); a full disk loses
 * only the events it refused.
 */
#ifndef DEYE_JOURNAL_H
#define DEYE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

struct journal_pos {
	uint64_t seg;
	uint64_t off;
	uint64_t idx; /* records of seg before off (for the backlog count) */
};

struct journal_rec {
	struct journal_pos pos;  /* where it starts */
	struct journal_pos next; /* where the next one starts */
	int64_t time_ms;         /* the event's own time */
	const char *json;        /* the event, valid until the next read */
	size_t len;
};

struct journal_stats {
	uint64_t appended;        /* events written */
	uint64_t dropped;         /* undelivered, dropped past spool_max */
	uint64_t lost;            /* not written: disk full, errors, too large */
	uint64_t torn;            /* torn last records cut off at start */
	uint64_t damaged_records; /* skipped as damaged, by each reader */
	uint64_t damaged_bytes;
	uint64_t bytes;           /* in the segments now */
};

/* Locks state_dir (a second instance fails here, err naming the holder's
 * pid), recovers the last segment and opens it for appending. */
/*
 * Make state_dir if missing (given to owner:group when made, -1 to keep)
 * and lock it for this process, so that a second instance on it stops at
 * once, naming the holder's pid.  Before binding and before privileges are
 * dropped; journal_open() takes the lock itself if it was not taken.
 */
int journal_lock(const char *state_dir, uid_t owner, gid_t group, char *err,
    size_t errlen);
int journal_open(const struct conf *c, char *err, size_t errlen);
void journal_close(void);
void journal_stats(struct journal_stats *out);

/*
 * What the cursor called name has not committed yet: the events and bytes
 * between it and the published end.  No read of the journal: the segment
 * list keeps each segment's record count.  Exact for what this run
 * appended; segments kept from the last run (but its last one, counted
 * when it is recovered) are estimated from the average record size.
 * False when no reader has that name.
 */
struct journal_backlog {
	uint64_t events;
	uint64_t bytes;
};
bool journal_backlog(const char *name, struct journal_backlog *out);

/*
 * Writer thread only.  Returns 0, or -1 with errno: EMSGSIZE for an event
 * that can never be stored (counted lost), else the disk's refusal (full,
 * quota, I/O: logged, rate-limited), after which the caller keeps the event
 * and tries again once the sinks have let space go.
 */
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
