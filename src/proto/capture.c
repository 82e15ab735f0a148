/*
 * capture.c - raw bytes of each connection, one file per direction:
 * <capture_dir>/<UTC start %Y%m%dT%H%M%SZ>-<listener>-<conn id>-<up|down>.bin
 *
 * A pump only copies its bytes into a queue (one mutex, one condition);
 * one writer thread appends them to the files, each file's queued chunks
 * in one writev(), so a slow capture directory never slows the relay.  The queue holds at most QUEUED_MAX bytes for all
 * connections: a chunk that does not fit stops capturing of its direction
 * (a file with a hole in it would mislead whoever decodes it), and what is
 * relayed after that is counted; both are logged, at most once a second.
 * So a file holds exactly the bytes relayed, or a prefix of them.
 *
 * Files are opened (by the writer) on the first byte of their direction,
 * appended to with O_APPEND, mode 0640.  A write error is logged once and
 * ends capturing for that direction; it never touches the relay.
 * capture_close() queues the closing of the files behind the last bytes,
 * in a chunk set aside when the capture was opened, so it cannot fail.
 */
#include "proto/capture.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "ratelimit.h"

#define QUEUED_MAX (4 << 20)
#define FD_FAILED (-2) /* the writer's: no further write */
#define BATCH 64       /* chunks taken at once (at most IOV_MAX) */

struct capture;

struct chunk {
	struct chunk *next;
	struct capture *cap;
	int dir;             /* -1: close the capture */
	size_t n;
	uint8_t data[];
};

struct capture_file {
	int fd;              /* the writer's: -1 until the first byte */
	atomic_bool stopped; /* by a write error or a full queue */
	uint64_t written;    /* bytes queued; its pump's */
	uint64_t dropped;    /* bytes not captured once stopped; its pump's */
	char path[4096];
};

struct capture {
	struct capture_file f[2];
	struct chunk *closer;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake, drained;
static struct chunk *head, **tailp = &head;
static size_t queued;        /* data bytes in the queue or being written */
static bool started, stopping, ended;
static pthread_t writer;
static struct ratelimit rl_full = RATELIMIT_INITIALIZER;
static struct ratelimit rl_lost = RATELIMIT_INITIALIZER;

/* Append iov[0..k) to f, opening it first; an error stops f for good. */
static void
file_write(struct capture_file *f, struct iovec *iov, int k)
{
	if (f->fd == FD_FAILED)
		return;
	if (f->fd < 0) {
		f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (f->fd < 0) {
			log_warn("capture %s", f->path);
			atomic_store(&f->stopped, true);
			f->fd = FD_FAILED;
			return;
		}
	}
	while (k > 0) {
		ssize_t w = writev(f->fd, iov, k);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("capture %s: stopped", f->path);
			atomic_store(&f->stopped, true);
			close(f->fd);
			f->fd = FD_FAILED;
			return;
		}
		for (; k > 0 && (size_t)w >= iov->iov_len; iov++, k--)
			w -= (ssize_t)iov->iov_len;
		if (k > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
}

/*
 * Write a batch taken off the queue: each file's chunks in one writev(),
 * in their order, so that a slow disk costs a call per file, not per
 * chunk.  A capture's closer comes after all its chunks.
 */
static void
batch_write(struct chunk **b, int n)
{
	struct iovec iov[BATCH];

	for (int i = 0; i < n; i++) {
		struct chunk *c = b[i];
		int k = 0;

		if (c == NULL)
			continue;
		if (c->dir < 0) {
			for (int d = 0; d < 2; d++)
				if (c->cap->f[d].fd >= 0)
					close(c->cap->f[d].fd);
			free(c->cap);
			free(c);
			continue;
		}
		for (int j = i; j < n; j++) {
			if (b[j] == NULL || b[j]->cap != c->cap || b[j]->dir != c->dir)
				continue;
			iov[k].iov_base = b[j]->data;
			iov[k++].iov_len = b[j]->n;
		}
		file_write(&c->cap->f[c->dir], iov, k);
		for (int j = n - 1; j >= i; j--) {
			if (b[j] == NULL || b[j]->cap != c->cap || b[j]->dir != c->dir)
				continue;
			free(b[j]);
			b[j] = NULL;
		}
	}
}

static void *
writer_run(void *arg)
{
	struct chunk *b[BATCH];

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		size_t bytes = 0;
		int n = 0;

		while (head == NULL && !stopping)
			pthread_cond_wait(&wake, &lock);
		if (head == NULL)
			break;
		for (; head != NULL && n < BATCH; n++) {
			b[n] = head;
			bytes += head->n;
			head = head->next;
		}
		if (head == NULL)
			tailp = &head;
		pthread_mutex_unlock(&lock);
		batch_write(b, n);
		pthread_mutex_lock(&lock);
		queued -= bytes;
		if (head == NULL)
			pthread_cond_broadcast(&drained);
	}
	ended = true;
	pthread_cond_broadcast(&drained);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Start the writer on the first capture; false when it cannot start. */
static bool
writer_start(void)
{
	bool ok;

	pthread_mutex_lock(&lock);
	if (!started && !stopping) {
		clock_cond_init(&wake);
		clock_cond_init(&drained);
		if (pthread_create(&writer, NULL, writer_run, NULL) == 0)
			started = true;
		else
			log_errorx("capture: cannot start the writer thread");
	}
	ok = started && !stopping;
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Under the lock. */
static void
push(struct chunk *c)
{
	c->next = NULL;
	*tailp = c;
	tailp = &c->next;
	queued += c->n;
	pthread_cond_signal(&wake);
}

struct capture *
capture_open(const char *dir, const char *listener, uint64_t conn_id,
    time_t start)
{
	static const char *const dname[2] = {"up", "down"};
	struct capture *cap;
	char stamp[32];
	struct tm tm;

	if (!writer_start() || (cap = calloc(1, sizeof *cap)) == NULL)
		return NULL;
	if ((cap->closer = calloc(1, sizeof *cap->closer)) == NULL) {
		free(cap);
		return NULL;
	}
	cap->closer->cap = cap;
	cap->closer->dir = -1;
	gmtime_r(&start, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int d = 0; d < 2; d++) {
		int r = snprintf(cap->f[d].path, sizeof cap->f[d].path,
		    "%s/%s-%s-%" PRIu64 "-%s.bin", dir, stamp, listener, conn_id,
		    dname[d]);
		cap->f[d].fd = -1;
		atomic_init(&cap->f[d].stopped,
		    r < 0 || (size_t)r >= sizeof cap->f[d].path);
	}
	return cap;
}

void
capture_write(struct capture *cap, int dir, const uint8_t *buf, size_t n)
{
	struct capture_file *f = &cap->f[dir];
	struct chunk *c;
	unsigned skipped;
	char more[48] = "";
	bool fits;

	if (atomic_load(&f->stopped)) {
		f->dropped += n;
		return;
	}
	if ((c = malloc(sizeof *c + n)) == NULL) {
		atomic_store(&f->stopped, true);
		f->dropped += n;
		log_warnx("capture %s: out of memory, stopped", f->path);
		return;
	}
	c->cap = cap;
	c->dir = dir;
	c->n = n;
	memcpy(c->data, buf, n);
	pthread_mutex_lock(&lock);
	if ((fits = queued + n <= QUEUED_MAX))
		push(c);
	pthread_mutex_unlock(&lock);
	if (fits) {
		f->written += n;
		return;
	}
	free(c);
	atomic_store(&f->stopped, true);
	f->dropped += n;
	if (!ratelimit_pass(&rl_full, &skipped))
		return;
	if (skipped > 0)
		snprintf(more, sizeof more, " (%u more not logged)", skipped);
	log_warnx("capture %s: stopped after %" PRIu64 " bytes: the capture "
	    "writer is %d KiB behind (slow disk?)%s", f->path, f->written,
	    QUEUED_MAX >> 10, more);
}

void
capture_close(struct capture *cap)
{
	unsigned skipped;

	if (cap == NULL)
		return;
	for (int d = 0; d < 2; d++)
		if (cap->f[d].dropped > 0 && ratelimit_pass(&rl_lost, &skipped))
			log_info("capture %s: the last %" PRIu64 " byte(s) relayed "
			    "are not in it (%u more such files not logged)",
			    cap->f[d].path, cap->f[d].dropped, skipped);
	pthread_mutex_lock(&lock);
	push(cap->closer);
	pthread_mutex_unlock(&lock);
}

void
capture_stop(int64_t grace_ms)
{
	int64_t deadline = clock_now_ms() + grace_ms, left;
	bool done;

	pthread_mutex_lock(&lock);
	stopping = true;
	if (!started) {
		pthread_mutex_unlock(&lock);
		return;
	}
	pthread_cond_signal(&wake);
	while (!ended && (left = deadline - clock_now_ms()) > 0)
		clock_cond_wait(&drained, &lock, left);
	done = ended;
	pthread_mutex_unlock(&lock);
	if (done) {
		pthread_join(writer, NULL);
		return;
	}
	log_warnx("capture: the writer is still behind (slow disk?): what it "
	    "has not written is lost");
	pthread_detach(writer); /* it ends with the process */
}
