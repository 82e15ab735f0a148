/*
 * render.h - the text of GET /metrics (Prometheus text format 0.0.4) and
 * of GET /healthz, from a snapshot of the modules' stats.  Pure: no I/O,
 * no lock, no clock; metrics.c takes the snapshot and serves the text.
 */
#ifndef DEYE_METRICS_RENDER_H
#define DEYE_METRICS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/journal.h"
#include "pipeline/outbox.h"
#include "proto/loggers.h"
#include "relay/relay.h"
#include "sinks/sink.h"

/* A growing text; oom once an allocation failed (the text is then cut). */
struct metrics_buf {
	char *p;
	size_t n, cap;
	bool oom;
};

void metrics_buf_add(struct metrics_buf *b, const char *s, size_t n);
void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as a label value: backslash, double quote and newline escaped. */
void metrics_buf_label(struct metrics_buf *b, const char *s);

/* One protocol counter of a listener (tap.h: "frames.data", "replies"). */
struct metrics_stat {
	char name[48];
	uint64_t value;
};

struct metrics_listener {
	const char *name;
	struct relay_counts rc;
	struct metrics_stat *stats;
	size_t nstats, cap;
};

struct metrics_logger {
	char serial[LOGGER_SERIAL_MAX + 1];
	int64_t ms;  /* wall clock of its last valid frame */
};

struct metrics_sink {
	const char *name;
	struct sink_stats ss;
};

struct metrics_snapshot {
	const char *version;
	int64_t start_ms, now_ms;   /* wall clock */
	struct metrics_listener *listeners;
	size_t nlisteners;
	struct metrics_logger *loggers;
	size_t nloggers;
	uint64_t loggers_dropped;
	struct journal_stats js;
	struct outbox_stats os;
	struct metrics_sink sinks[SINKS_MAX]; /* the running ones */
	size_t nsinks;
};

/* What the journal lost: lost (never stored, outbox full) plus dropped
 * (past spool_max). */
uint64_t metrics_losses(const struct metrics_snapshot *s);

/* Every family of SPEC's [metrics] table, each with # HELP and # TYPE. */
void metrics_render(const struct metrics_snapshot *s, struct metrics_buf *b);

/*
 * /healthz: true when healthy ("ok\n" into b), else false with one line
 * per reason: a sink with a backlog and no success (since start, if none)
 * for stall_after_ms; the journal losing events, last_loss_ms being when
 * a loss was last seen (0: never) and counting for stall_after_ms.
 */
bool metrics_health(const struct metrics_snapshot *s, int64_t stall_after_ms,
    int64_t last_loss_ms, struct metrics_buf *b);

#endif
