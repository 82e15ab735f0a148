/*
 * sink_jsonl.c - the local JSON-lines sink.
 *
 * Its thread reads the journal from its own cursor ("events") and writes
 * each event as one line; it commits after the lines are flushed, so after
 * a crash it resumes where it was (a line may repeat, none is skipped).  A
 * write error is logged once per streak; the lines are retried.  On
 * SIGHUP the file is opened again by name (after logrotate moved it).
 */
#include "sink_jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define COMMIT_EVERY 256

static FILE *out;
static const char *path;   /* NULL for stdout */
static struct journal_reader *reader;
static pthread_t thread;
static atomic_bool stopping, reopen;

/* Flush and commit; on failure rewind so the lines are written again. */
static bool
flush_commit(struct journal_pos pos, bool *failing)
{
	if (fflush(out) != 0 || ferror(out)) {
		if (!*failing)
			log_warn("events: write failed, will retry");
		*failing = true;
		clearerr(out);
		journal_rewind(reader);
		return false;
	}
	*failing = false;
	journal_commit(reader, pos);
	return true;
}

static FILE *
open_events(const char *where)
{
	int fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	FILE *f;

	if (fd < 0 || (f = fdopen(fd, "a")) == NULL) {
		log_warn("events %s", where);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return f;
}

/* After the lines so far are flushed: the file by its name again.  When
 * that fails, the old file is kept. */
static void
reopen_events(void)
{
	FILE *f;

	if (path == NULL || (f = open_events(path)) == NULL)
		return;
	fclose(out);
	out = f;
	log_info("events: %s opened again", path);
}

static void *
run(void *arg)
{
	struct journal_rec rec;
	struct journal_pos pos = {0, 0};
	bool pending = false, failing = false;
	unsigned since = 0;

	(void)arg;
	for (;;) {
		int r = journal_next(reader, &rec, failing ? 1000 : 500);

		if (r == 1) {
			fwrite(rec.json, 1, rec.len, out);
			fputc('\n', out);
			pos = rec.next;
			pending = true;
			if (++since < COMMIT_EVERY)
				continue;
		} else if (atomic_load(&stopping) && !pending) {
			return NULL;
		}
		if (pending && flush_commit(pos, &failing)) {
			pending = false;
			since = 0;
			if (atomic_exchange(&reopen, false))
				reopen_events();
		} else if (!pending && atomic_exchange(&reopen, false)) {
			reopen_events();
		} else if (pending) {
			pending = false; /* rewound: it comes again */
			since = 0;
			if (atomic_load(&stopping))
				return NULL;
			sleep(1);
		}
	}
}

int
sink_jsonl_start(const char *where)
{
	int r;

	if (strcmp(where, "stdout") == 0) {
		out = stdout;
	} else if ((out = open_events(where)) == NULL) {
		return -1;
	} else {
		path = where;
	}
	if ((reader = journal_reader_open("events")) == NULL) {
		log_errorx("events: out of memory");
		return -1;
	}
	if ((r = pthread_create(&thread, NULL, run, NULL)) != 0) {
		log_errorx("events: cannot start its thread");
		return -1;
	}
	return 0;
}

void
sink_jsonl_reopen(void)
{
	atomic_store(&reopen, true); /* seen within half a second */
}

bool
sink_jsonl_stop(int64_t grace_ms)
{
	struct timespec ts;

	if (reader == NULL)
		return true;
	atomic_store(&stopping, true);
	journal_wake();
	/* A reader of stdout that stopped reading must not hang the exit:
	 * what is not written stays in the journal. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += grace_ms / 1000 + 1;
	if (pthread_timedjoin_np(thread, NULL, &ts) != 0) {
		log_warnx("events: output blocked, not flushed; the rest stays "
		    "in the journal");
		return false;
	}
	journal_reader_close(reader);
	reader = NULL;
	if (path != NULL)
		fclose(out);
	else
		fflush(out);
	out = NULL;
	return true;
}
