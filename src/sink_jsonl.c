/*
 * sink_jsonl.c - the local JSON-lines sink.
 *
 * Its thread reads the journal from its own cursor ("events"), gathers
 * whole lines in a buffer and writes them with write(2) (not stdio, whose
 * flushes stop wherever its 4 KiB buffer ends); it commits after they are
 * written, so after a crash it resumes where it was (a line may repeat,
 * none is skipped).
 *
 * The file only ever holds whole lines.  A write that fails part-way (a
 * full disk) is cut back to the size the file had before it.  A partial
 * last line left by a crash (SIGKILL in the middle of a write) is cut off
 * when the file is opened: its event was not committed, so it is written
 * again.  Where the output cannot be cut (stdout, a pipe), the next line
 * starts on a new line instead.  A write error is logged once per streak;
 * the lines are retried.  On SIGHUP the file is opened again by name (after
 * logrotate moved it).
 */
#include "sink_jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define COMMIT_EVERY 256
#define FLUSH_BYTES (64 * 1024)
/* An event is at most the journal's 1 MiB record: a partial line is
 * looked for no further back than that. */
#define CUT_MAX ((1 << 20) + 1)

static int fd = -1;
static const char *path;   /* NULL for stdout */
static bool midline;       /* the output ends in a cut line */
static struct journal_reader *reader;
static pthread_t thread;
static atomic_bool stopping, reopen;

/* The lines gathered since the last write. */
static struct {
	char *p;
	size_t n, cap;
	unsigned count;
} out;

static bool
out_add(const char *json, size_t len)
{
	if (out.cap - out.n < len + 1) {
		size_t cap = out.cap ? out.cap : FLUSH_BYTES;
		char *p;

		while (cap - out.n < len + 1)
			cap *= 2;
		if ((p = realloc(out.p, cap)) == NULL)
			return false;
		out.p = p;
		out.cap = cap;
	}
	memcpy(out.p + out.n, json, len);
	out.p[out.n + len] = '\n';
	out.n += len + 1;
	out.count++;
	return true;
}

/* How much of p[n] went out before an error (errno says which). */
static size_t
write_all(const char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			break;
		}
		done += (size_t)w;
	}
	return done;
}

/* A write failed after `written` bytes of out: take them back, so the file
 * ends on a whole line again; where the output cannot be cut (not a
 * regular file), the next line starts on a new line. */
static void
take_back(off_t before, size_t written)
{
	struct stat st;
	int saved = errno;

	if (written == 0)
		return;
	if (before >= 0 && fstat(fd, &st) == 0 && st.st_size > before &&
	    ftruncate(fd, before) == 0) {
		errno = saved;
		return;
	}
	midline = out.p[written - 1] != '\n';
	errno = saved;
}

/* Write the lines gathered and commit; on failure rewind, so they are
 * written again. */
static bool
flush_commit(struct journal_pos pos, bool *failing)
{
	struct stat st;
	off_t before = -1;
	size_t w;

	if (midline) {
		if (write_all("\n", 1) != 1)
			goto fail;
		midline = false;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		before = st.st_size;
	if ((w = write_all(out.p, out.n)) < out.n) {
		take_back(before, w);
		goto fail;
	}
	out.n = out.count = 0;
	*failing = false;
	journal_commit(reader, pos);
	return true;

fail:
	if (!*failing)
		log_warn("events: write failed, will retry");
	*failing = true;
	out.n = out.count = 0;
	journal_rewind(reader);
	return false;
}

/* Where the file's last line starts if it does not end in '\n' (left by a
 * crash); -1 if it does, or is empty, or is not a regular file, or cannot
 * be read (stdout opened write-only).  When that start is out of reach,
 * the file's size: nothing there to cut. */
static off_t
partial_line(void)
{
	char b[64 * 1024];
	struct stat st;
	off_t end, off;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return -1;
	end = off = st.st_size;
	while (off > 0 && end - off < CUT_MAX) {
		size_t n = off < (off_t)sizeof b ? (size_t)off : sizeof b;

		off -= (off_t)n;
		if (pread(fd, b, n, off) != (ssize_t)n)
			return -1;
		if (off + (off_t)n == end && b[n - 1] == '\n')
			return -1;
		for (size_t i = n; i > 0; i--)
			if (b[i - 1] == '\n')
				return off + (off_t)i;
	}
	return off == 0 ? 0 : end;
}

/* Make the output end on a whole line before anything is appended. */
static void
repair(const char *name)
{
	off_t start = partial_line();
	char c = 0;

	midline = false;
	if (start < 0)
		return;
	/* Cut only what looks like one of our events, cut short. */
	if (path != NULL && pread(fd, &c, 1, start) == 1 && c == '{' &&
	    ftruncate(fd, start) == 0) {
		log_warnx("events %s: partial last line cut off (left by a "
		    "crash); its event is written again", name);
		return;
	}
	midline = true;
	log_warnx("events %s: does not end in a whole line; the next line "
	    "starts on a new line", name);
}

static int
open_events(const char *where)
{
	/* Read too: a partial last line is looked for at open. */
	int f = open(where, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (f < 0)
		log_warn("events %s", where);
	return f;
}

/* After the lines so far are written: the file by its name again.  When
 * that fails, the old file is kept. */
static void
reopen_events(void)
{
	int f;

	if (path == NULL || (f = open_events(path)) < 0)
		return;
	close(fd);
	fd = f;
	repair(path);
	log_info("events: %s opened again", path);
}

static void *
run(void *arg)
{
	struct journal_rec rec;
	struct journal_pos pos = {0, 0};
	bool failing = false;

	(void)arg;
	for (;;) {
		/* Lines gathered are written as soon as the journal has no
		 * more at hand. */
		int r = journal_next(reader, &rec, out.n > 0 ? 0 : 500);

		if (r == 1) {
			if (!out_add(rec.json, rec.len)) {
				/* Nothing was written since the commit: all of
				 * it comes again. */
				log_errorx("events: out of memory, will retry");
				out.n = out.count = 0;
				journal_rewind(reader);
				sleep(1);
				continue;
			}
			pos = rec.next;
			if (out.count < COMMIT_EVERY && out.n < FLUSH_BYTES)
				continue;
		} else if (atomic_load(&stopping) && out.n == 0) {
			return NULL;
		}
		if (out.n > 0 && !flush_commit(pos, &failing)) {
			if (atomic_load(&stopping))
				return NULL;
			sleep(1);
			continue;
		}
		if (atomic_exchange(&reopen, false))
			reopen_events();
	}
}

int
sink_jsonl_start(const char *where)
{
	int r;

	if (strcmp(where, "stdout") == 0) {
		fd = STDOUT_FILENO;
	} else if ((fd = open_events(where)) < 0) {
		return -1;
	} else {
		path = where;
	}
	repair(where);
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
		close(fd);
	fd = -1;
	free(out.p);
	out.p = NULL;
	out.n = out.cap = out.count = 0;
	return true;
}
