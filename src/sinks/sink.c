/*
 * sink.c - the sink table and the runner every sink shares.
 *
 * A runner is one thread with one journal cursor, named after its sink.  It
 * gathers a batch (up to max_events records, or until their bytes reach
 * max_bytes, waiting at most flush_ms after the first), copies it out of
 * the journal's buffer and hands it to the sink's deliver, then:
 *
 *   delivered   commit the cursor past the records delivered
 *   retry       rewind; wait a capped exponential backoff with jitter, or
 *               the sink's Retry-After if longer; the failure is logged at
 *               most once a minute, with the attempts since the last line,
 *               and "delivering again" follows only a logged failure (a
 *               flapping receiver gets one line a minute, not one each)
 *   split       rewind; again at once, with smaller batches
 *   set aside   the sink kept record k elsewhere (a dead letter): rewind,
 *               deliver the ones before it, then commit past it
 *
 * So nothing leaves the journal undelivered, and after a crash a sink
 * resumes at its last commit (a record may repeat, none is skipped).
 *
 * Stopping: every runner is told at once, delivers what it can within the
 * grace (a sink's deliver asks sink_runner_out_of_time to cut a transfer
 * short), then ends.  A thread stuck in write(2) to a stdout nobody reads
 * is waited for only a second longer and then left behind: the exit must
 * not hang, and what it did not write stays in the journal.
 */
#include "sinks/sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "sinks/hec.h"
#include "sinks/jsonl.h"
#include "sinks/mqtt.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define IDLE_MS 500            /* a SIGHUP is seen within this */
#define COMPLAIN_EVERY_MS 60000
#define NOMEM_WAIT_MS 1000

/* The sinks, in the order they start. */
static const struct sink_ops *const sinks[] = {
	&sink_jsonl_ops,
	&sink_hec_ops,
	&sink_mqtt_ops,
};
_Static_assert(NELEM(sinks) <= SINKS_MAX, "SINKS_MAX is too small");
static struct sink_runner *running[NELEM(sinks)];
static const struct conf_section *sections[NELEM(sinks) + 1];

struct sink_runner {
	const struct sink_ops *ops;
	void *state;
	struct sink_limits lim;
	struct journal_reader *reader;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;                 /* lock */
	struct timespec join_by;       /* CLOCK_REALTIME, for the join */
	atomic_int_least64_t deadline; /* monotonic ms, 0: none */
	atomic_bool reopen;
	struct sink_stats stats;       /* lock */
	struct journal_rec *recs;      /* the batch... */
	char *copy;                    /* ...whose json is copied here */
	size_t copy_n, copy_cap;
};

int64_t
sink_backoff_next(int64_t prev, int64_t min_ms, int64_t max_ms)
{
	if (prev <= 0)
		return min_ms;
	return prev > max_ms / 2 ? max_ms : prev * 2;
}

int64_t
sink_jitter(int64_t ms, uint32_t r)
{
	return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
}

bool
sink_complaint_due(int64_t last_ms, int64_t now_ms)
{
	return last_ms == 0 || now_ms - last_ms >= COMPLAIN_EVERY_MS;
}

static int64_t
jitter(int64_t ms)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)clock_now_ms();
	return sink_jitter(ms, r);
}

static bool
is_stopping(struct sink_runner *run)
{
	bool s;

	pthread_mutex_lock(&run->lock);
	s = run->stopping;
	pthread_mutex_unlock(&run->lock);
	return s;
}

/* Sleep up to ms; false when told to stop meanwhile. */
static bool
nap(struct sink_runner *run, int64_t ms)
{
	bool stop;

	pthread_mutex_lock(&run->lock);
	if (!run->stopping)
		clock_cond_wait(&run->wake, &run->lock, ms);
	stop = run->stopping;
	pthread_mutex_unlock(&run->lock);
	return !stop;
}

bool
sink_runner_out_of_time(struct sink_runner *run)
{
	int64_t deadline = atomic_load(&run->deadline);

	return deadline != 0 && clock_now_ms() >= deadline;
}

/* Copy rec's json out of the journal's buffer, which the next read reuses;
 * recs[].json is pointed at the copies once the batch is complete. */
static bool
keep(struct sink_runner *run, size_t i, const struct journal_rec *rec)
{
	if (run->copy_cap - run->copy_n < rec->len + 1) {
		size_t cap = run->copy_cap ? run->copy_cap : 64 * 1024;
		char *p;

		while (cap - run->copy_n < rec->len + 1)
			cap *= 2;
		if ((p = realloc(run->copy, cap)) == NULL)
			return false;
		run->copy = p;
		run->copy_cap = cap;
	}
	memcpy(run->copy + run->copy_n, rec->json, rec->len);
	run->copy[run->copy_n + rec->len] = '\0';
	run->recs[i] = *rec;
	run->recs[i].json = (const char *)(uintptr_t)run->copy_n; /* offset */
	run->copy_n += rec->len + 1;
	return true;
}

static void
complain(struct sink_runner *run, const struct sink_result *r,
    unsigned unlogged)
{
	char since[64] = "";

	if (unlogged > 1)
		snprintf(since, sizeof since, " (%u failed attempt(s) since the "
		    "last such line)", unlogged);
	if (r->error)
		log_errorx("%s: %s%s", run->ops->name, r->why, since);
	else
		log_warnx("%s: %s%s", run->ops->name, r->why, since);
}

static void *
run_sink(void *arg)
{
	struct sink_runner *run = arg;
	const struct sink_ops *ops = run->ops;
	const struct sink_limits *lim = &run->lim;
	size_t limit = lim->max_events;
	int64_t backoff = 0, last_complaint = 0;
	struct journal_pos skip = {0};
	bool skipping = false, complained = false;
	/* Failed attempts in a row, and since the last line about them. */
	unsigned failures = 0, unlogged = 0;

	for (;;) {
		struct journal_rec rec;
		struct sink_result r;
		size_t n = 0, bytes = 0;
		int64_t first_ms = 0;
		bool nomem = false;

		if (atomic_exchange(&run->reopen, false) && ops->reopen != NULL)
			ops->reopen(run->state);
		if (sink_runner_out_of_time(run))
			break;
		run->copy_n = 0;
		while (n < limit) {
			int64_t wait = n == 0 ? IDLE_MS :
			    first_ms + lim->flush_ms - clock_now_ms();

			if (journal_next(run->reader, &rec, wait > 0 ? wait : 0) != 1)
				break;
			if (skipping && rec.pos.seg == skip.seg &&
			    rec.pos.off == skip.off) {
				/* The one set aside: the records before it go
				 * first; met again at the head of a batch, it is
				 * committed past. */
				if (n > 0)
					break;
				journal_commit(run->reader, rec.next);
				skipping = false;
				continue;
			}
			if (!keep(run, n, &rec)) {
				nomem = true; /* what is kept goes, the rest again */
				break;
			}
			if (n++ == 0)
				first_ms = clock_now_ms();
			bytes += rec.len + lim->overhead;
			if (bytes >= lim->max_bytes)
				break;
		}
		if (n == 0 && nomem) {
			log_errorx("%s: out of memory, will retry", ops->name);
			journal_rewind(run->reader);
			if (!nap(run, NOMEM_WAIT_MS))
				break;
			continue;
		}
		memset(&r, 0, sizeof r);
		r.retry_after_ms = -1;
		if (n > 0) {
			for (size_t i = 0; i < n; i++)
				run->recs[i].json = run->copy +
				    (uintptr_t)run->recs[i].json;
			ops->deliver(run->state, run, run->recs, n, &r);
		} else if (is_stopping(run))
			break;
		else if (ops->idle != NULL)
			/* Its failure (the peer cannot be reached) is one like
			 * any other: logged once a minute, backed off. */
			ops->idle(run->state, run, &r);
		else
			continue;
		if (r.verdict == SINK_DELIVERED && (r.n > 0 || n == 0)) {
			size_t k = r.n < n ? r.n : n; /* 0: an idle that went well */

			if (k > 0) {
				journal_commit(run->reader, run->recs[k - 1].next);
				journal_rewind(run->reader); /* read but not sent */
			}
			pthread_mutex_lock(&run->lock);
			if (k > 0) {
				run->stats.delivered += k;
				run->stats.batches++;
				run->stats.last_ok_ms = clock_wall_ms();
			}
			run->stats.failing = false;
			pthread_mutex_unlock(&run->lock);
			if (complained)
				log_info("%s: delivering again after %u failed "
				    "attempt(s)", ops->name, failures);
			complained = false;
			failures = 0;
			backoff = 0;
			limit = lim->max_events;
			continue;
		}
		journal_rewind(run->reader);
		if (r.verdict == SINK_SPLIT) {
			limit = r.n == 0 ? 1 : r.n < limit ? r.n : limit;
			continue;
		}
		if (r.verdict == SINK_SET_ASIDE && r.n < n) {
			skip = run->recs[r.n].pos;
			skipping = true;
			pthread_mutex_lock(&run->lock);
			run->stats.set_aside++;
			pthread_mutex_unlock(&run->lock);
			continue;
		}
		if (r.verdict == SINK_STOPPED)
			break;

		failures++;
		unlogged++;
		pthread_mutex_lock(&run->lock);
		run->stats.failures++;
		run->stats.failing = true;
		pthread_mutex_unlock(&run->lock);
		if (sink_complaint_due(last_complaint, clock_now_ms())) {
			complain(run, &r, unlogged);
			last_complaint = clock_now_ms();
			unlogged = 0;
			complained = true;
		}
		backoff = sink_backoff_next(backoff, lim->retry_min_ms,
		    lim->retry_max_ms);
		int64_t wait = jitter(backoff);
		if (r.retry_after_ms > wait)
			wait = r.retry_after_ms;
		if (!nap(run, wait))
			break;
	}
	ops->stop(run->state);
	run->state = NULL;
	return NULL;
}

static void
runner_free(struct sink_runner *run)
{
	if (run == NULL)
		return;
	journal_reader_close(run->reader);
	pthread_cond_destroy(&run->wake);
	pthread_mutex_destroy(&run->lock);
	free(run->recs);
	free(run->copy);
	free(run);
}

struct sink_runner *
sink_runner_start(const struct sink_ops *ops, const struct conf *c)
{
	struct sink_runner *run = calloc(1, sizeof *run);

	if (run == NULL) {
		log_errorx("%s: out of memory", ops->name);
		return NULL;
	}
	run->ops = ops;
	pthread_mutex_init(&run->lock, NULL);
	clock_cond_init(&run->wake);
	if (ops->start(c, &run->state, &run->lim) != 0) {
		runner_free(run);
		return NULL;
	}
	if (run->lim.max_events == 0)
		run->lim.max_events = 1;
	if ((run->recs = calloc(run->lim.max_events, sizeof *run->recs)) ==
	    NULL || (run->reader = journal_reader_open(ops->name)) == NULL) {
		log_errorx("%s: out of memory", ops->name);
		goto fail;
	}
	if (pthread_create(&run->thread, NULL, run_sink, run) != 0) {
		log_errorx("%s: cannot start its thread", ops->name);
		goto fail;
	}
	return run;

fail:
	ops->stop(run->state);
	runner_free(run);
	return NULL;
}

static void
sink_runner_reopen(struct sink_runner *run)
{
	atomic_store(&run->reopen, true);
}

void
sink_runner_stop(struct sink_runner *run, int64_t grace_ms)
{
	clock_gettime(CLOCK_REALTIME, &run->join_by);
	run->join_by.tv_sec += grace_ms / 1000 + 1;
	run->join_by.tv_nsec += (long)(grace_ms % 1000) * 1000000;
	if (run->join_by.tv_nsec >= 1000000000) {
		run->join_by.tv_sec++;
		run->join_by.tv_nsec -= 1000000000;
	}
	atomic_store(&run->deadline, clock_now_ms() + grace_ms);
	pthread_mutex_lock(&run->lock);
	run->stopping = true;
	pthread_cond_broadcast(&run->wake);
	pthread_mutex_unlock(&run->lock);
	journal_wake();
}

bool
sink_runner_join(struct sink_runner *run)
{
	if (pthread_timedjoin_np(run->thread, NULL, &run->join_by) != 0) {
		log_warnx("%s: output blocked, not flushed; the rest stays in "
		    "the journal", run->ops->name);
		return false;
	}
	runner_free(run);
	return true;
}

void
sink_runner_stats(struct sink_runner *run, struct sink_stats *out)
{
	pthread_mutex_lock(&run->lock);
	*out = run->stats;
	pthread_mutex_unlock(&run->lock);
	(void)journal_backlog(run->ops->name, &out->backlog);
}

const struct conf_section *const *
sinks_sections(void)
{
	size_t n = 0;

	for (size_t i = 0; i < NELEM(sinks); i++)
		if (sinks[i]->section != NULL)
			sections[n++] = sinks[i]->section;
	sections[n] = NULL;
	return sections;
}

int
sinks_start(const struct conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < NELEM(sinks); i++) {
		if (!sinks[i]->wanted(c))
			continue;
		if ((running[i] = sink_runner_start(sinks[i], c)) == NULL) {
			snprintf(err, errlen, "%s sink could not start",
			    sinks[i]->name);
			return -1;
		}
	}
	return 0;
}

void
sinks_reopen(void)
{
	for (size_t i = 0; i < NELEM(sinks); i++)
		if (running[i] != NULL)
			sink_runner_reopen(running[i]);
}

bool
sinks_stop(int64_t grace_ms)
{
	bool all = true;

	for (size_t i = 0; i < NELEM(sinks); i++)
		if (running[i] != NULL)
			sink_runner_stop(running[i], grace_ms);
	for (size_t i = 0; i < NELEM(sinks); i++) {
		if (running[i] != NULL && !sink_runner_join(running[i]))
			all = false;
		running[i] = NULL;
	}
	return all;
}

bool
sinks_stats(size_t i, const char **name, struct sink_stats *out)
{
	for (size_t k = 0; k < NELEM(sinks); k++) {
		if (running[k] != NULL && i-- == 0) {
			*name = sinks[k]->name;
			sink_runner_stats(running[k], out);
			return true;
		}
	}
	return false;
}
