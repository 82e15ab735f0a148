/*
 * log.c - the daemon's only output channel besides the events sink.
 *
 * Each line is formatted whole in the caller's thread.  Until log_start()
 * it is written at once with a single write(2) (start-up, -n, --decode,
 * unit tests).  From log_start() on, lines are appended to a bounded queue
 * and one log thread writes them out, several whole lines per write(2), so
 * lines never interleave and keep their order.  Only that thread ever
 * blocks on stderr: when stderr cannot take a line (a stalled journald, a
 * paused terminal, a pipe nobody reads) the queue fills, the callers' lines
 * are dropped and counted, and once the writer gets through again it says
 * how many were lost.  A relay, controller or sink thread never waits.  At
 * exit the queue gets up to a second to drain; the exit never waits longer.
 *
 * Under systemd (stderr connected to the journal, JOURNAL_STREAM set) lines
 * carry a "<N>" syslog priority prefix and no timestamp, because journald
 * adds its own; on a terminal or a file they start with an ISO 8601 UTC
 * timestamp.
 */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 2048
#define QUEUE_SIZE (64 * 1024)  /* lines waiting, as much as a pipe holds */
#define STOP_WAIT_S 1

static atomic_int level = LOG_INFO;
static int to_journal;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {3, 4, 6, 7};

/* The queue: callers fill one buffer while the log thread writes the
 * other.  All under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t filled = PTHREAD_COND_INITIALIZER;
static char bufs[2][QUEUE_SIZE];
static char *queue = bufs[0];
static size_t queued;
static uint64_t dropped;        /* since the writer last got through */
static bool running, stopping;
static pthread_t writer;

void
log_init(void)
{
	to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(int l)
{
	if (l < LOG_ERROR)
		l = LOG_ERROR;
	if (l > LOG_DEBUG)
		l = LOG_DEBUG;
	atomic_store(&level, l);
}

/* One whole line, '\n' included, into line[LINE_MAX_LEN]; its length. */
static size_t
format(char *line, int l, int errnum, const char *fmt, va_list ap)
{
	size_t n = 0;
	int r;

	if (to_journal) {
		r = snprintf(line, LINE_MAX_LEN, "<%d>", syslog_prio[l]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, LINE_MAX_LEN,
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[l]);
	}
	n = r > 0 ? (size_t)r : 0;
	r = vsnprintf(line + n, LINE_MAX_LEN - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > LINE_MAX_LEN - 2)
		n = LINE_MAX_LEN - 2;
	if (errnum != 0) {
		char eb[128];
		const char *es = strerror_r(errnum, eb, sizeof eb);
		r = snprintf(line + n, LINE_MAX_LEN - n, ": %s", es);
		if (r > 0)
			n += (size_t)r;
		if (n > LINE_MAX_LEN - 2)
			n = LINE_MAX_LEN - 2;
	}
	line[n++] = '\n';
	return n;
}

static size_t
format_line(char *line, int l, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = format(line, l, 0, fmt, ap);
	va_end(ap);
	return n;
}

/* All of p, or as much as stderr took before it failed for good.  A
 * failed log write has nowhere to be reported. */
static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EAGAIN) {
			/* stderr shared with a non-blocking open: wait as if it
			 * were ours. */
			struct pollfd pfd = {STDERR_FILENO, POLLOUT, 0};
			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *
run(void *arg)
{
	static uint64_t total;
	char line[LINE_MAX_LEN], *out;
	size_t n;
	uint64_t lost;

	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		/* A line is dropped only when the queue is full, so an
		 * empty queue has no count to tell. */
		while (queued == 0 && !stopping)
			pthread_cond_wait(&filled, &mu);
		if (queued == 0) {
			running = false; /* stopping: later lines go out directly */
			break;
		}
		out = queue;
		n = queued;
		lost = dropped;
		queue = queue == bufs[0] ? bufs[1] : bufs[0];
		queued = 0;
		dropped = 0;
		pthread_mutex_unlock(&mu);
		/* The lines queued before the drops, then the count, then
		 * what came after: the order stays true. */
		write_all(out, n);
		if (lost > 0) {
			total += lost;
			write_all(line, format_line(line, LOG_WARN, "%" PRIu64
			    " log line(s) dropped: stderr was not taking them (%"
			    PRIu64 " since start)", lost, total));
		}
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Give the queue a bounded time to drain; the exit never waits longer. */
static void
log_stop(void)
{
	struct timespec ts;

	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_signal(&filled);
	pthread_mutex_unlock(&mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STOP_WAIT_S;
	(void)pthread_timedjoin_np(writer, NULL, &ts);
}

void
log_start(void)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_mutex_lock(&mu);
	r = pthread_create(&writer, &attr, run, NULL);
	running = r == 0;
	pthread_mutex_unlock(&mu);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		errno = r;
		log_warn("log: cannot start its thread; stderr is written "
		    "directly");
		return;
	}
	atexit(log_stop);
}

static void
vlog(int l, int errnum, const char *fmt, va_list ap)
{
	char line[LINE_MAX_LEN];
	size_t n;

	if (l > atomic_load(&level))
		return;
	n = format(line, l, errnum, fmt, ap);
	pthread_mutex_lock(&mu);
	if (!running) {
		pthread_mutex_unlock(&mu);
		write_all(line, n);
		return;
	}
	if (queued + n > QUEUE_SIZE) {
		dropped++;
	} else {
		if (queued == 0)
			pthread_cond_signal(&filled);
		memcpy(queue + queued, line, n);
		queued += n;
	}
	pthread_mutex_unlock(&mu);
}

#define LOG_FN(name, lvl, with_errno)                   \
	void name(const char *fmt, ...)                 \
	{                                               \
		int saved = errno;                      \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		vlog(lvl, with_errno ? saved : 0, fmt, ap); \
		va_end(ap);                             \
		errno = saved;                          \
	}

LOG_FN(log_error, LOG_ERROR, 1)
LOG_FN(log_errorx, LOG_ERROR, 0)
LOG_FN(log_warn, LOG_WARN, 1)
LOG_FN(log_warnx, LOG_WARN, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_debug, LOG_DEBUG, 0)

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(status);
}
