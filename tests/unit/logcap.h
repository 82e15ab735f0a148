/*
 * logcap.h - the log lines a unit test provokes.  No unit test calls
 * log_start(), so log.c writes each line to stderr at once with one
 * write(2): stderr is pointed at a file for the test.
 */
#ifndef DEYE_TEST_LOGCAP_H
#define DEYE_TEST_LOGCAP_H

#include <stddef.h>

/* stderr goes to path (made anew) until logcap_stop(). */
void logcap_start(const char *path);
void logcap_stop(void);
/* What was written so far, NUL-terminated (at most len - 1 bytes). */
const char *logcap_read(char *buf, size_t len);
/* How many times s occurs in what was written so far. */
int logcap_count(const char *s);

#endif
