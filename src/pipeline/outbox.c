/*
 * outbox.c - the hand-off between pumps and the journal (redis bio.c
 * style: one mutex, one condition, one worker).
 *
 * The queue is a byte ring in a shared mapping of state_dir/outbox
 * (outbox_ring.c), so that an event handed over before a SIGKILL is still
 * there for the next start: a pump puts a frame's event in before it sends
 * the frame on, and the writer frees its place only once the journal has
 * it (in the page cache after writev(), which a SIGKILL does not undo).
 * outbox_start() journals what the last run left in the ring.
 *
 * Producers take the lock only to copy a record in; when the ring is full
 * the event is dropped and counted, so neither the disk nor a sink can
 * ever stall a relay.  The writer reads what is queued outside the lock
 * (producers only write past head), serialises each event, appends it to
 * the journal and then moves the tail.  A pump hands over a protocol's frame
 * as bytes with its id already given (so that an event journaled again
 * after a kill keeps its id) and the number of the builder that makes its
 * event: building the JSON is the writer's work, so the relay pays only
 * for a copy.  The builders are registered by the protocols before the
 * start; the outbox knows none of them.  Slow work (the Envoy's inflate, XML and
 * spool files) is not the writer's: it runs on worker.c's thread and puts
 * its events here like a pump.  The writer also wakes up when the
 * journal's next fsync is due.
 *
 * When the disk refuses an append (full), the writer holds that event and
 * tries again every HOLD_MS, publishing what is in so the sinks can deliver
 * it and the journal can give its space back; meanwhile the ring fills and
 * only what does not fit is dropped, counted.  Stopping while held leaves
 * the rest in the ring for the next start.
 */
#include "pipeline/outbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pipeline/journal.h"
#include "pipeline/outbox_ring.h"

#define WRITER_BATCH 256
#define HOLD_MS 200 /* retry of an append the disk refused */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake, stop_cond;
static struct ring ring;
static uint64_t dropped, dropped_logged, queued, journaled, unbuilt;
static int64_t drop_log_ms; /* the writer's: the last "queue full" line */
static outbox_build_fn *builders[OUTBOX_BUILDERS];
static bool stopping, running;
static pthread_t writer;
static uint8_t scratch[RING_RECORD_MAX]; /* the writer's */

/* Store it, or count it dropped. */
static void
enqueue(const struct ring_rec *rec)
{
	pthread_mutex_lock(&lock);
	if (running && ring_put(&ring, rec)) {
		queued++;
		pthread_cond_signal(&wake);
	} else {
		dropped++;
	}
	pthread_mutex_unlock(&lock);
}

void
outbox_put(json_t *ev, int64_t time_ms)
{
	struct ring_rec rec = {.kind = RING_EVENT, .time_ms = time_ms};
	char *s;

	if (ev == NULL)
		return;
	s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
	json_decref(ev);
	if (s == NULL) {
		pthread_mutex_lock(&lock);
		dropped++;
		pthread_mutex_unlock(&lock);
		return;
	}
	rec.body = (const uint8_t *)s;
	rec.len = strlen(s);
	enqueue(&rec);
	free(s);
}

void
outbox_register(unsigned id, outbox_build_fn *build)
{
	if (id < OUTBOX_BUILDERS)
		builders[id] = build;
}

void
outbox_put_bytes(unsigned builder, const uint8_t *body, size_t len,
    const struct event_meta *m)
{
	struct event_meta id;
	struct ring_rec rec = {.kind = RING_BYTES, .builder = builder,
	    .dir = m->direction, .conn_id = m->conn_id,
	    .time_ms = m->received_ms, .listener = m->listener, .peer = m->peer,
	    .body = body, .len = len};

	/* A flood: drop before paying for an id and a checksum. */
	pthread_mutex_lock(&lock);
	if (!running || ring_room(&ring) < len) {
		dropped++;
		pthread_mutex_unlock(&lock);
		return;
	}
	pthread_mutex_unlock(&lock);
	event_id_new(&id); /* here, once: a copy journaled twice keeps it */
	memcpy(rec.id, id.id, sizeof rec.id);
	enqueue(&rec);
}

/*
 * Append, holding on while the disk refuses.  0 stored, or never storable
 * (the journal counted it); 1 when told to stop first (not stored).
 */
static int
append_held(int64_t time_ms, const char *json, size_t len)
{
	while (journal_append(time_ms, json, len) != 0) {
		bool stop;

		if (errno == EMSGSIZE)
			return 0;
		journal_publish(); /* what is in can be delivered, then freed */
		pthread_mutex_lock(&lock);
		if (!stopping)
			clock_cond_wait(&stop_cond, &lock, HOLD_MS);
		stop = stopping;
		pthread_mutex_unlock(&lock);
		if (stop)
			return 1;
	}
	return 0;
}

/* Journal a record's event; 1 when stopped before the journal took it. */
static int
record_journal(const struct ring_rec *rec)
{
	struct event_meta m;
	int64_t time_ms;
	json_t *ev;
	char *s;
	int r;

	if (rec->kind == RING_EVENT)
		return append_held(rec->time_ms, (const char *)rec->body,
		    rec->len);
	memcpy(m.id, rec->id, sizeof m.id);
	m.listener = rec->listener ? rec->listener : "-";
	m.conn_id = rec->conn_id;
	m.peer = rec->peer ? rec->peer : "-";
	m.direction = rec->dir;
	m.received_ms = rec->time_ms;
	time_ms = rec->time_ms;
	ev = rec->builder < OUTBOX_BUILDERS && builders[rec->builder] ?
	    builders[rec->builder](rec->body, rec->len, &m, &time_ms) : NULL;
	s = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	json_decref(ev);
	if (s == NULL) {
		log_warnx("events: cannot make an event (builder %u)",
		    rec->builder);
		pthread_mutex_lock(&lock);
		unbuilt++;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	r = append_held(time_ms, s, strlen(s));
	free(s);
	return r;
}

static void *
writer_run(void *arg)
{
	int64_t due = -1;

	(void)arg;
	for (;;) {
		uint64_t pos, seq, end, end_seq, lost;
		size_t n;
		bool done, held = false;

		pthread_mutex_lock(&lock);
		if (ring_empty(&ring) && !stopping)
			clock_cond_wait(&wake, &lock, dropped == dropped_logged ||
			    (due >= 0 && due < 1000) ? due : 1000);
		ring_tail(&ring, &pos, &seq);
		ring_head(&ring, &end, &end_seq);
		done = stopping && pos == end;
		/* At most a line a second while a flood lasts, with the count;
		 * the rest at the end. */
		lost = 0;
		if (dropped != dropped_logged &&
		    (done || clock_now_ms() - drop_log_ms >= 1000)) {
			lost = dropped - dropped_logged;
			dropped_logged = dropped;
			drop_log_ms = clock_now_ms();
		}
		if (done)
			running = false; /* later puts are dropped and counted */
		pthread_mutex_unlock(&lock);

		if (lost > 0)
			log_warnx("events: queue full, %llu event(s) dropped "
			    "(%llu since start)", (unsigned long long)lost,
			    (unsigned long long)dropped_logged);
		for (n = 0; pos < end && n < WRITER_BATCH && !held; n++) {
			struct ring_rec rec;
			size_t k = ring_read(&ring, pos, end, seq, &rec, scratch);

			if (k == 0) { /* only a bug could do this: say so, go on */
				log_errorx("outbox: damaged record %llu, %llu byte(s) "
				    "dropped", (unsigned long long)seq,
				    (unsigned long long)(end - pos));
				pos = end;
				seq = end_seq;
				break;
			}
			if (rec.kind != RING_JOB && record_journal(&rec) != 0) {
				held = true; /* stopping: it stays for the next start */
				break;
			}
			pos += k;
			seq++;
		}
		pthread_mutex_lock(&lock);
		ring_commit(&ring, pos, seq);
		journaled += n;
		pthread_mutex_unlock(&lock);
		due = journal_publish();
		if (held) {
			log_warnx("outbox: the journal cannot take events (disk "
			    "full?): %llu byte(s) of them kept for the next start",
			    (unsigned long long)(end - pos));
			return NULL;
		}
		if (done)
			return NULL;
	}
}

/*
 * What the last run left in the ring: its events are journaled first, by
 * the writer like any other (held while the disk is full, so a start never
 * waits on it).  A ring of an older version may hold jobs' places: their
 * messages were in memory and are gone.  A damaged record ends what can be
 * trusted.
 */
static void
recover(void)
{
	uint64_t pos, seq, end, end_seq, events = 0, jobs_lost = 0;

	ring_tail(&ring, &pos, &seq);
	ring_head(&ring, &end, &end_seq);
	while (pos < end) {
		struct ring_rec rec;
		size_t k = ring_read(&ring, pos, end, seq, &rec, scratch);

		if (k == 0) {
			log_warnx("outbox: damaged record at byte %llu: the last "
			    "%llu byte(s) of the last run dropped",
			    (unsigned long long)pos, (unsigned long long)(end - pos));
			ring_cut(&ring, pos, seq);
			break;
		}
		pos += k;
		seq++;
		if (rec.kind == RING_JOB)
			jobs_lost++;
		else
			events++;
	}
	if (events > 0)
		log_info("outbox: recovered %llu event(s) from the last run",
		    (unsigned long long)events);
	if (jobs_lost > 0)
		log_warnx("outbox: %llu HTTP message(s) of the last run were lost "
		    "before they were decoded", (unsigned long long)jobs_lost);
}

int
outbox_start(const char *state_dir)
{
	char path[4096], why[4200];
	int r;

	snprintf(path, sizeof path, "%s/outbox", state_dir);
	if (ring_open(&ring, path, why, sizeof why) != 0) {
		log_errorx("outbox: cannot map memory");
		return -1;
	}
	if (why[0] != '\0')
		log_warnx("outbox %s%s", why, ring.in_memory ? ": events wait in "
		    "memory only, a SIGKILL can lose them" : "");
	if (!ring.locked)
		log_info("outbox: not locked in memory (RLIMIT_MEMLOCK): a pump "
		    "may wait for a page of it to be read back from disk");
	recover();
	clock_cond_init(&wake);
	clock_cond_init(&stop_cond);
	running = true;
	if ((r = pthread_create(&writer, NULL, writer_run, NULL)) != 0) {
		running = false;
		log_errorx("cannot start the events writer thread");
		return -1;
	}
	return 0;
}

void
outbox_stats(struct outbox_stats *st)
{
	pthread_mutex_lock(&lock);
	st->queued = queued;
	st->dropped = dropped;
	st->journaled = journaled;
	st->unbuilt = unbuilt;
	pthread_mutex_unlock(&lock);
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
	pthread_cond_signal(&stop_cond);
	pthread_mutex_unlock(&lock);
	pthread_join(writer, NULL);
	pthread_mutex_lock(&lock);
	running = false;
	pthread_mutex_unlock(&lock);
	ring_close(&ring);
}
