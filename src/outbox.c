/*
 * outbox.c - the hand-off between pumps and sinks (redis bio.c style: one
 * mutex, one condition, one worker).
 *
 * Producers take the lock only to store a pointer in a fixed ring; when the
 * ring is full the event is dropped and counted, so a stalled sink can
 * never stall a relay.  The writer thread takes everything queued at once
 * and, outside the lock, serialises each event and writes it to the sink.
 */
#include "outbox.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "sink_jsonl.h"

#define OUTBOX_CAP 4096

struct item {
	json_t *ev;
	int64_t time_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
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

	(void)arg;
	for (;;) {
		size_t n = 0;
		uint64_t lost;

		pthread_mutex_lock(&lock);
		while (count == 0 && !stopping)
			pthread_cond_wait(&wake, &lock);
		while (count > 0) {
			batch[n++] = ring[head];
			head = (head + 1) % OUTBOX_CAP;
			count--;
		}
		lost = dropped - dropped_logged;
		dropped_logged = dropped;
		bool done = stopping && n == 0;
		pthread_mutex_unlock(&lock);

		if (lost > 0)
			log_warnx("events: queue full, %llu event(s) dropped "
			    "(%llu since start)", (unsigned long long)lost,
			    (unsigned long long)dropped_logged);
		if (done)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			sink_jsonl_write(batch[i].ev);
			json_decref(batch[i].ev);
		}
		sink_jsonl_flush();
	}
}

int
outbox_start(const struct conf *c)
{
	int r;

	if (sink_jsonl_open(c->events) != 0)
		return -1;
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
	sink_jsonl_close();
}
