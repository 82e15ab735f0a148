/*
 * metrics.h - the [metrics] section: GET /metrics (Prometheus) and
 * GET /healthz over HTTP, read from the stats of the modules that own the
 * counts (docs/README.md, "Counters").
 */
#ifndef DEYE_METRICS_H
#define DEYE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* The [metrics] section (deye-mitm.conf(5), METRICS KEYS). */
struct metrics_conf {
	struct conf_listen listen; /* len 0: off */
	int64_t stall_after_ms;
};

extern const struct conf_section metrics_section;

/* Bind listen, if set (before privileges are dropped); -1 with err. */
int metrics_open(const struct conf *c, char *err, size_t errlen);
/* Serve on its own thread, once the listeners and sinks run; -1 (logged).
 * start_ms: when the process started (wall clock). */
int metrics_start(const struct conf *c, int64_t start_ms);
/* Before the listeners and the sinks stop: they are read until then. */
void metrics_stop(void);

#endif
