/*
 * outbox.c - the hand-off between pumps and the journal (redis bio.c
 * style: one mutex, one condition, one worker).
 *
 * Producers take the lock only to store a pointer in a fixed ring; when the
 * ring is full the event is dropped and counted, so neither the disk nor a
 * sink can ever stall a relay.  The writer thread takes everything queued at
 * once and, outside the lock, serialises each event and appends it to the
 * journal, which the sinks read at their own pace.  A pump hands over a
 * Solarman frame as bytes: building its JSON is the writer's work, so the
 * relay pays only for a copy; an Envoy message comes as a job that the
 * writer runs (inflate, parse, spool files), in at most half the ring and
 * bounded in bytes until it has run, so jobs never crowd the events out.
 * The writer also wakes up when the journal's next fsync is due.
 */
#include "outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "clock.h"
#include "log.h"
#include "journal.h"
#include "solarman_event.h"

#define OUTBOX_CAP 4096
#define WRITER_BATCH 256
#define JOBS_MAX (OUTBOX_CAP / 2) /* queued jobs: events keep the rest */
/* What jobs queued or running may hold, unless there is only one. */
#define JOB_BYTES_MAX (64 * 1024 * 1024)

/* An event, a Solarman frame whose event the writer builds, or a job. */
struct item {
	json_t *ev;
	int64_t time_ms;
	uint8_t *frame;
	size_t len;
	struct event_meta meta;
	char peer[ADDR_STR_MAX];
	void (*run)(void *job);
	void *job;
	size_t job_bytes;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct item ring[OUTBOX_CAP];
static size_t head, count, jobs, job_bytes;
static uint64_t dropped, dropped_logged;
static bool stopping, running;
static pthread_t writer;

/* Store it, or count it dropped; true if stored. */
static bool
enqueue(const struct item *it)
{
	bool stored;

	pthread_mutex_lock(&lock);
	stored = count < OUTBOX_CAP && running && (it->run == NULL ||
	    (jobs < JOBS_MAX && (job_bytes == 0 ||
	    job_bytes + it->job_bytes <= JOB_BYTES_MAX)));
	if (stored) {
		ring[(head + count) % OUTBOX_CAP] = *it;
		count++;
		jobs += it->run != NULL;
		job_bytes += it->job_bytes;
		pthread_cond_signal(&wake);
	} else if (it->run == NULL) {
		dropped++; /* a job's caller says what it lost */
	}
	pthread_mutex_unlock(&lock);
	return stored;
}

void
outbox_put(json_t *ev, int64_t time_ms)
{
	struct item it = {.ev = ev, .time_ms = time_ms};

	if (ev != NULL && !enqueue(&it))
		json_decref(ev);
}

void
outbox_put_frame(const uint8_t *frame, size_t len, const struct event_meta *m)
{
	struct item it = {.len = len, .meta = *m};
	bool full;

	/* A flood: drop before paying for the copy. */
	pthread_mutex_lock(&lock);
	full = count == OUTBOX_CAP || !running;
	if (full)
		dropped++;
	pthread_mutex_unlock(&lock);
	if (full)
		return;
	if ((it.frame = malloc(len)) == NULL) {
		pthread_mutex_lock(&lock);
		dropped++;
		pthread_mutex_unlock(&lock);
		return;
	}
	memcpy(it.frame, frame, len);
	snprintf(it.peer, sizeof it.peer, "%s", m->peer);
	if (!enqueue(&it))
		free(it.frame);
}

bool
outbox_put_job(void (*run)(void *job), void *job, size_t bytes)
{
	struct item it = {.run = run, .job = job, .job_bytes = bytes};

	return enqueue(&it);
}

void
outbox_emit(json_t *ev, int64_t time_ms)
{
	char *s = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12)) :
	    NULL;

	if (s != NULL)
		journal_append(time_ms, s, strlen(s));
	else
		log_warnx("events: cannot make an event");
	free(s);
	json_decref(ev);
}

/* The item's event, built here for a frame. */
static json_t *
item_event(struct item *it)
{
	json_t *ev;

	if (it->frame == NULL)
		return it->ev;
	it->meta.peer = it->peer;
	event_id_new(&it->meta); /* once, here: the journal keeps it */
	ev = solarman_event(it->frame, it->len, &it->meta, &it->time_ms);
	free(it->frame);
	return ev;
}

static void *
writer_run(void *arg)
{
	static struct item batch[WRITER_BATCH];
	int64_t due = -1;

	(void)arg;
	for (;;) {
		size_t n = 0, ran_bytes = 0;
		uint64_t lost;
		bool done;

		pthread_mutex_lock(&lock);
		if (count == 0 && !stopping)
			clock_cond_wait(&wake, &lock, due);
		while (count > 0 && n < WRITER_BATCH) {
			batch[n] = ring[head];
			jobs -= batch[n++].run != NULL;
			head = (head + 1) % OUTBOX_CAP;
			count--;
		}
		lost = dropped - dropped_logged;
		dropped_logged = dropped;
		done = stopping && n == 0 && count == 0;
		if (done)
			running = false; /* later puts are dropped and counted */
		pthread_mutex_unlock(&lock);

		if (lost > 0)
			log_warnx("events: queue full, %llu event(s) dropped "
			    "(%llu since start)", (unsigned long long)lost,
			    (unsigned long long)dropped_logged);
		for (size_t i = 0; i < n; i++) {
			json_t *ev;

			if (batch[i].run != NULL) {
				batch[i].run(batch[i].job);
				ran_bytes += batch[i].job_bytes;
				continue;
			}
			ev = item_event(&batch[i]); /* sets the record time */
			outbox_emit(ev, batch[i].time_ms);
		}
		if (ran_bytes > 0) { /* counted until they are freed */
			pthread_mutex_lock(&lock);
			job_bytes -= ran_bytes;
			pthread_mutex_unlock(&lock);
		}
		due = journal_publish();
		if (done)
			return NULL;
	}
}

int
outbox_start(void)
{
	int r;

	clock_cond_init(&wake);
	running = true;
	if ((r = pthread_create(&writer, NULL, writer_run, NULL)) != 0) {
		running = false;
		log_errorx("cannot start the events writer thread");
		return -1;
	}
	return 0;
}

void
outbox_stop(void)
{
	pthread_mutex_lock(&lock);
	if (!running) {
		pthread_mutex_unlock(&lock);
		return;
	}
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(writer, NULL);
	pthread_mutex_lock(&lock);
	running = false;
	pthread_mutex_unlock(&lock);
}
