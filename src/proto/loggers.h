/*
 * loggers.h - when each data logger (a Solarman logger, an Envoy) last
 * sent a valid frame, by serial: the metrics' last-frame gauge.
 */
#ifndef DEYE_LOGGERS_H
#define DEYE_LOGGERS_H

#include <stddef.h>
#include <stdint.h>

#define LOGGERS_MAX 1024   /* loggers kept; past it the longest silent goes */
#define LOGGER_SERIAL_MAX 32 /* longer serials are cut */

/* A valid frame of the logger called serial, received at ms (wall clock).
 * From any thread; a mutex held for a lookup. */
void loggers_heard(const char *serial, int64_t ms);

/* fn for every logger kept, in no order, under the lock (fn must not call
 * loggers_heard); returns how many. */
typedef void loggers_fn(void *arg, const char *serial, int64_t ms);
size_t loggers_each(loggers_fn *fn, void *arg);
/* Loggers dropped since start to make room (LOGGERS_MAX). */
uint64_t loggers_dropped(void);

#endif
