/*
 * sink_jsonl.c - the local JSON-lines sink.  Used by one thread only.
 * A write error is logged once per error streak and the events are lost to
 * this sink only (the relay and other sinks go on).
 */
#include "sink_jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static FILE *out;
static bool own, failing;

int
sink_jsonl_open(const char *where)
{
	int fd;

	if (strcmp(where, "none") == 0)
		return 0;
	if (strcmp(where, "stdout") == 0) {
		out = stdout;
		return 0;
	}
	fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0 || (out = fdopen(fd, "a")) == NULL) {
		log_error("events %s", where);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	own = true;
	return 0;
}

void
sink_jsonl_write(json_t *ev)
{
	if (out == NULL)
		return;
	if (json_dumpf(ev, out, JSON_COMPACT | JSON_REAL_PRECISION(12)) != 0 ||
	    fputc('\n', out) == EOF) {
		if (!failing)
			log_warn("events: write failed");
		failing = true;
		clearerr(out);
	}
}

void
sink_jsonl_flush(void)
{
	if (out == NULL)
		return;
	if (fflush(out) != 0) {
		if (!failing)
			log_warn("events: write failed");
		failing = true;
		clearerr(out);
	} else {
		failing = false;
	}
}

void
sink_jsonl_close(void)
{
	if (out != NULL && own)
		fclose(out);
	else if (out != NULL)
		fflush(out);
	out = NULL;
	own = false;
}
