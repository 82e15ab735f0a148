/*
 * tap.c - the listener's protocol tap.  Protocol decoders plug in here; the
 * raw tap, which every listener has, captures bytes when capture_dir is set.
 */
#include "tap.h"

#include <stdlib.h>

#include "capture.h"

struct tap {
	struct capture *capture;
};

struct tap *
tap_open(const struct listener_conf *lc, uint64_t conn_id, time_t start)
{
	struct tap *t;

	if (lc->capture_dir == NULL)
		return NULL;
	if ((t = calloc(1, sizeof *t)) == NULL)
		return NULL;
	t->capture = capture_open(lc->capture_dir, lc->name, conn_id, start);
	return t;
}

void
tap_feed(struct tap *t, int dir, const uint8_t *buf, size_t n)
{
	if (t == NULL)
		return;
	if (t->capture != NULL)
		capture_write(t->capture, dir, buf, n);
}

void
tap_close(struct tap *t)
{
	if (t == NULL)
		return;
	capture_close(t->capture);
	free(t);
}
