/*
 * capture.c - raw bytes of each connection, one file per direction:
 * <capture_dir>/<UTC start %Y%m%dT%H%M%SZ>-<listener>-<conn id>-<up|down>.bin
 *
 * Files are opened on the first byte of their direction, appended to with
 * O_APPEND, mode 0640.  A write error is logged once and ends capturing for
 * that direction; it never touches the relay.  Each direction is written by
 * its own pump only, so there is no lock.
 */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct capture_file {
	int fd;      /* -1 until the first byte */
	bool failed;
	char path[4096];
};

struct capture {
	struct capture_file f[2];
};

struct capture *
capture_open(const char *dir, const char *listener, uint64_t conn_id,
    time_t start)
{
	static const char *const dname[2] = {"up", "down"};
	struct capture *cap = calloc(1, sizeof *cap);
	char stamp[32];
	struct tm tm;

	if (cap == NULL)
		return NULL;
	gmtime_r(&start, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int d = 0; d < 2; d++) {
		int r = snprintf(cap->f[d].path, sizeof cap->f[d].path,
		    "%s/%s-%s-%" PRIu64 "-%s.bin", dir, stamp, listener, conn_id,
		    dname[d]);
		cap->f[d].fd = -1;
		cap->f[d].failed = r < 0 || (size_t)r >= sizeof cap->f[d].path;
	}
	return cap;
}

void
capture_write(struct capture *cap, int dir, const uint8_t *buf, size_t n)
{
	struct capture_file *f = &cap->f[dir];

	if (f->failed)
		return;
	if (f->fd < 0) {
		f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (f->fd < 0) {
			log_warn("capture %s", f->path);
			f->failed = true;
			return;
		}
	}
	while (n > 0) {
		ssize_t w = write(f->fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("capture %s: stopped", f->path);
			f->failed = true;
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

void
capture_close(struct capture *cap)
{
	if (cap == NULL)
		return;
	for (int d = 0; d < 2; d++)
		if (cap->f[d].fd >= 0)
			close(cap->f[d].fd);
	free(cap);
}
