/*
 * outbox.c - the hand-off between pumps and the journal (redis bio.c
 * style: one mutex, one condition, one worker).
 *
 * Producers take the lock only to store a pointer in a fixed ring; when the
 * ring is full the event is dropped and counted, so neither the disk nor a
 * sink can ever stall a relay.  The writer thread takes everything queued at
 * once and, outside the lock, serialises each event and appends it to the
 * journal, which the sinks read at their own pace.  It also wakes up when
 * the journal's next fsync is due.
 */
#include "outbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "journal.h"

#define OUTBOX_CAP 4096

struct item {
	json_t *ev;
	int64_t time_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct item ring[OUTBOX_CAP];
static size_t head, count;
static uint64_t dropped, dropped_logged;
static bool stopping, running;
static pthread_t writer;

void
outbox_put(json_t *ev, int64_t time_ms)
{
	bool full;

	if (ev == NULL)
		return;
	pthread_mutex_lock(&lock);
	full = count == OUTBOX_CAP || !running;
	if (!full) {
		ring[(head + count) % OUTBOX_CAP] = (struct item){ev, time_ms};
		count++;
		pthread_cond_signal(&wake);
	} else {
		dropped++;
	}
	pthread_mutex_unlock(&lock);
	if (full)
		json_decref(ev);
}

static void *
writer_run(void *arg)
{
	static struct item batch[OUTBOX_CAP];
	int64_t due = -1;

	(void)arg;
	for (;;) {
		size_t n = 0;
		uint64_t lost;
		bool done;

		pthread_mutex_lock(&lock);
		if (count == 0 && !stopping)
			clock_cond_wait(&wake, &lock, due);
		while (count > 0) {
			batch[n++] = ring[head];
			head = (head + 1) % OUTBOX_CAP;
			count--;
		}
		lost = dropped - dropped_logged;
		dropped_logged = dropped;
		done = stopping && n == 0;
		if (done)
			running = false; /* later puts are dropped and counted */
		pthread_mutex_unlock(&lock);

		if (lost > 0)
			log_warnx("events: queue full, %llu event(s) dropped "
			    "(%llu since start)", (unsigned long long)lost,
			    (unsigned long long)dropped_logged);
		for (size_t i = 0; i < n; i++) {
			char *s = json_dumps(batch[i].ev,
			    JSON_COMPACT | JSON_REAL_PRECISION(12));

			if (s != NULL)
				journal_append(batch[i].time_ms, s, strlen(s));
			else
				log_warnx("events: cannot serialise an event");
			free(s);
			json_decref(batch[i].ev);
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
