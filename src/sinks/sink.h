/*
 * sink.h - a sink is a journal reader that delivers somewhere.
 *
 * A sink says how to deliver one batch of journal records (struct
 * sink_ops); one shared runner (sink.c) does the rest for every sink: its
 * thread, its cursor in the journal (named after the sink), batching by
 * count, bytes and interval, commit on success and rewind on failure, the
 * capped backoff with jitter, the failure log at most once a minute, the
 * stop grace and SIGHUP.  Adding a sink is one file plus one line in the
 * table in sink.c; its keys are a struct conf_section declared beside it
 * and named in its ops, so the configuration engine reads, checks and
 * prints its [section] with no edit of conf.c.
 */
#ifndef DEYE_SINK_H
#define DEYE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "pipeline/journal.h"

struct sink_runner;

/* What a sink wants from the runner, filled in by its start. */
struct sink_limits {
	size_t max_events;   /* records in one batch */
	size_t max_bytes;    /* a batch ends once it holds this many... */
	size_t overhead;     /* ...counting each record's length plus this */
	int64_t flush_ms;    /* wait for more after the first, at most */
	int64_t retry_min_ms; /* backoff: from this, doubling... */
	int64_t retry_max_ms; /* ...up to this (jitter: half to all of it) */
};

enum sink_verdict {
	SINK_DELIVERED, /* recs[0..n) are done: committed */
	SINK_RETRY,     /* none is: the same again after the backoff */
	SINK_SPLIT,     /* none is: again at once, at most n at a time */
	SINK_SET_ASIDE, /* recs[n] was kept elsewhere (dead letter): skipped,
			 * the others are delivered again at once */
	SINK_STOPPED    /* the stop grace ran out mid-delivery */
};

struct sink_result {
	enum sink_verdict verdict;
	size_t n;
	int64_t retry_after_ms; /* SINK_RETRY: wait at least this, or -1 */
	bool error;             /* SINK_RETRY: log as an error, not a warning */
	char why[1024];          /* SINK_RETRY: the log line after "name: " */
};

struct sink_ops {
	const char *name; /* the log prefix and the journal cursor's name */
	/* Its [section] of keys, or NULL (conf.h: declared beside it). */
	const struct conf_section *section;
	/* Whether c asks for this sink (it may warn why not). */
	bool (*wanted)(const struct conf *c);
	/* 0 with *state and *lim set, or -1 (logged). */
	int (*start)(const struct conf *c, void **state, struct sink_limits *lim);
	/* On the runner's thread.  The records and their json stay valid
	 * until the call returns; r comes zeroed, retry_after_ms -1. */
	void (*deliver)(void *state, struct sink_runner *run,
	    const struct journal_rec *recs, size_t n, struct sink_result *r);
	/* On the runner's thread, between batches, after SIGHUP; or NULL. */
	void (*reopen)(void *state);
	/* On the runner's thread when it found nothing to deliver (about
	 * twice a second while the journal is idle): keep-alives, timers;
	 * or NULL.  r comes zeroed (SINK_DELIVERED, n 0); SINK_STOPPED when
	 * sink_runner_out_of_time cut it short; SINK_RETRY with
	 * why when the peer cannot be reached: logged and backed off as a
	 * failed delivery, and the next idle that leaves r alone counts as
	 * the recovery. */
	void (*idle)(void *state, struct sink_runner *run,
	    struct sink_result *r);
	/* On the runner's thread when it ends (or after a failed start). */
	void (*stop)(void *state);
};

struct sink_stats {
	uint64_t delivered;   /* records committed */
	uint64_t failures;    /* failed attempts (SINK_RETRY) */
	uint64_t set_aside;   /* records set aside (dead letters) */
	uint64_t batches;     /* successful deliveries */
	int64_t last_ok_ms;   /* wall clock of the last delivery, 0: none */
	bool failing;         /* the last attempt failed */
	struct journal_backlog backlog; /* not committed yet, at the call */
};

/* The sections of the sinks in the table, NULL-terminated: for
 * conf_new(). */
const struct conf_section *const *sinks_sections(void);
/* The sinks in the table that c asks for: start each (a runner thread
 * each); -1 with err naming the one that could not start. */
int sinks_start(const struct conf *c, char *err, size_t errlen);
/* Every sink gets its SIGHUP reopen, soon (within half a second). */
void sinks_reopen(void);
/* Deliver what can be within grace_ms, then stop, all sinks at once;
 * false if a sink's thread was still blocked a second after the grace
 * (left behind: the journal must stay open).  The rest stays in the
 * journal for the next start. */
bool sinks_stop(int64_t grace_ms);
/* The sinks the table holds, at most. */
#define SINKS_MAX 8
/* The i-th running sink (from 0, in the table's order): its name, its
 * counters and its cursor's backlog in the journal; false past the last.
 * From the thread that starts and stops the sinks (or while they run). */
bool sinks_stats(size_t i, const char **name, struct sink_stats *out);

/* One runner, for one sink: what sinks_start does for each. */
struct sink_runner *sink_runner_start(const struct sink_ops *ops,
    const struct conf *c);
/* Ask it to stop; then sink_runner_join.  Split, so that all stop at once. */
void sink_runner_stop(struct sink_runner *run, int64_t grace_ms);
/* Wait for its thread until the grace plus one second; true and freed, or
 * false and left behind (logged). */
bool sink_runner_join(struct sink_runner *run);
void sink_runner_stats(struct sink_runner *run, struct sink_stats *out);
/* For a sink's deliver: the stop grace has run out, give up now. */
bool sink_runner_out_of_time(struct sink_runner *run);

/* The pieces of the runner's policy, pure for the tests. */
/* The next backoff after prev (0: none yet): min, doubling, capped. */
int64_t sink_backoff_next(int64_t prev, int64_t min_ms, int64_t max_ms);
/* A wait between ms/2 and ms, r being a random number. */
int64_t sink_jitter(int64_t ms, uint32_t r);
/* Whether a failure at now_ms is logged, given the last logged one (0:
 * none): at most once a minute. */
bool sink_complaint_due(int64_t last_ms, int64_t now_ms);

#endif
