/*
 * log.c - the daemon's only output channel besides the events sink.
 *
 * Each line is formatted into one buffer and written with a single write(2),
 * so lines from concurrent threads never interleave.  Under systemd (stderr
 * connected to the journal, JOURNAL_STREAM set) lines carry a "<N>" syslog
 * priority prefix and no timestamp, because journald adds its own; on a
 * terminal or a file they start with an ISO 8601 UTC timestamp.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int level = LOG_INFO;
static int to_journal;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {3, 4, 6, 7};

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

static void
vlog(int l, int errnum, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n = 0;
	int r;

	if (l > atomic_load(&level))
		return;
	if (to_journal) {
		r = snprintf(line, sizeof line, "<%d>", syslog_prio[l]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof line,
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[l]);
	}
	n = r > 0 ? (size_t)r : 0;
	r = vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	if (errnum != 0) {
		char eb[128];
		const char *es = strerror_r(errnum, eb, sizeof eb);
		r = snprintf(line + n, sizeof line - n, ": %s", es);
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof line - 2)
			n = sizeof line - 2;
	}
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
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
