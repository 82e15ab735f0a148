/*
 * jsonl.c - the local JSON-lines sink.
 *
 * The sink runner (sink.c) hands it batches of up to 256 events or 64 KiB
 * from its cursor ("events"), as soon as the journal has no more at hand;
 * it writes them as whole lines with write(2) (not stdio, whose flushes
 * stop wherever its 4 KiB buffer ends), and the runner commits after they
 * are written, so after a crash it resumes where it was (a line may repeat,
 * none is skipped).
 *
 * The file only ever holds whole lines.  A write that fails part-way (a
 * full disk) is cut back to the size the file had before it, and the
 * lines are written again after a second.  A partial last line left by a
 * crash (SIGKILL in the middle of a write) is cut off when the file is
 * opened: its event was not committed, so it is written again.  Where the
 * output cannot be cut (stdout, a pipe), the next line starts on a new line
 * instead.  On SIGHUP the file is opened again by name (after logrotate
 * moved it).
 */
#include "sinks/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define COMMIT_EVERY 256
#define FLUSH_BYTES (64 * 1024)
#define RETRY_MS 1000
/* An event is at most the journal's 1 MiB record: a partial line is
 * looked for no further back than that. */
#define CUT_MAX ((1 << 20) + 1)

struct jsonl {
	int fd;
	const char *path; /* NULL for stdout */
	bool midline;     /* the output ends in a cut line */
	char *p;          /* the lines of one batch */
	size_t n, cap;
};

static bool
out_add(struct jsonl *j, const char *json, size_t len)
{
	if (j->cap - j->n < len + 1) {
		size_t cap = j->cap ? j->cap : FLUSH_BYTES;
		char *p;

		while (cap - j->n < len + 1)
			cap *= 2;
		if ((p = realloc(j->p, cap)) == NULL)
			return false;
		j->p = p;
		j->cap = cap;
	}
	memcpy(j->p + j->n, json, len);
	j->p[j->n + len] = '\n';
	j->n += len + 1;
	return true;
}

/* How much of p[n] went out before an error (errno says which). */
static size_t
write_all(int fd, const char *p, size_t n)
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

/* A write failed after `written` bytes of the batch: take them back, so the
 * file ends on a whole line again; where the output cannot be cut (not a
 * regular file), the next line starts on a new line. */
static void
take_back(struct jsonl *j, off_t before, size_t written)
{
	struct stat st;
	int saved = errno;

	if (written == 0)
		return;
	if (before >= 0 && fstat(j->fd, &st) == 0 && st.st_size > before &&
	    ftruncate(j->fd, before) == 0) {
		errno = saved;
		return;
	}
	j->midline = j->p[written - 1] != '\n';
	errno = saved;
}

static void
deliver(void *state, struct sink_runner *run, const struct journal_rec *recs,
    size_t n, struct sink_result *r)
{
	struct jsonl *j = state;
	struct stat st;
	off_t before = -1;
	size_t w;

	(void)run;
	j->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!out_add(j, recs[i].json, recs[i].len)) {
			r->verdict = SINK_RETRY;
			r->error = true;
			snprintf(r->why, sizeof r->why, "out of memory, will retry");
			return;
		}
	}
	if (j->midline) {
		if (write_all(j->fd, "\n", 1) != 1)
			goto fail;
		j->midline = false;
	}
	if (fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode))
		before = st.st_size;
	if ((w = write_all(j->fd, j->p, j->n)) < j->n) {
		take_back(j, before, w);
		goto fail;
	}
	r->verdict = SINK_DELIVERED;
	r->n = n;
	return;

fail:
	r->verdict = SINK_RETRY;
	snprintf(r->why, sizeof r->why, "write failed, will retry: %s",
	    strerror(errno));
}

/* Where the file's last line starts if it does not end in '\n' (left by a
 * crash); -1 if it does, or is empty, or is not a regular file, or cannot
 * be read (stdout opened write-only).  When that start is out of reach,
 * the file's size: nothing there to cut. */
static off_t
partial_line(int fd)
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
repair(struct jsonl *j, const char *name)
{
	off_t start = partial_line(j->fd);
	char c = 0;

	j->midline = false;
	if (start < 0)
		return;
	/* Cut only what looks like one of our events, cut short. */
	if (j->path != NULL && pread(j->fd, &c, 1, start) == 1 && c == '{' &&
	    ftruncate(j->fd, start) == 0) {
		log_warnx("events %s: partial last line cut off (left by a "
		    "crash); its event is written again", name);
		return;
	}
	j->midline = true;
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

/* Between batches: the file by its name again.  When that fails, the old
 * file is kept. */
static void
reopen(void *state)
{
	struct jsonl *j = state;
	int f;

	if (j->path == NULL || (f = open_events(j->path)) < 0)
		return;
	close(j->fd);
	j->fd = f;
	repair(j, j->path);
	log_info("events: %s opened again", j->path);
}

static bool
wanted(const struct conf *c)
{
	return strcmp(c->events, "none") != 0;
}

static void
stop(void *state)
{
	struct jsonl *j = state;

	if (j == NULL)
		return;
	if (j->path != NULL && j->fd >= 0)
		close(j->fd);
	free(j->p);
	free(j);
}

static int
start(const struct conf *c, void **state, struct sink_limits *lim)
{
	const char *where = c->events;
	struct jsonl *j = calloc(1, sizeof *j);

	if (j == NULL) {
		log_errorx("events: out of memory");
		return -1;
	}
	if (strcmp(where, "stdout") == 0) {
		j->fd = STDOUT_FILENO;
	} else if ((j->fd = open_events(where)) < 0) {
		free(j);
		return -1;
	} else {
		j->path = where;
	}
	repair(j, where);
	*state = j;
	/* Lines gathered are written as soon as the journal has no more at
	 * hand; a failed write is tried again every second. */
	*lim = (struct sink_limits){
		.max_events = COMMIT_EVERY,
		.max_bytes = FLUSH_BYTES,
		.overhead = 1,
		.flush_ms = 0,
		.retry_min_ms = RETRY_MS,
		.retry_max_ms = RETRY_MS,
	};
	return 0;
}

const struct sink_ops sink_jsonl_ops = {
	.name = "events",
	.wanted = wanted,
	.start = start,
	.deliver = deliver,
	.reopen = reopen,
	.stop = stop,
};
