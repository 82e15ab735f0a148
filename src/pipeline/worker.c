/*
 * worker.c - the job thread (redis bio.c style: one mutex, one condition,
 * one worker).  The Envoy's messages are decoded here, not by the outbox
 * writer, so an SD card that takes seconds to fsync a spool file delays
 * only the Envoy: the events a job makes go back through outbox_put() and
 * into the durable ring like any other, and the writer never waits for a
 * job.
 *
 * Jobs live in memory only, up to JOBS_MAX of them and JOB_BYTES_MAX of
 * bytes (unless there is only one), so a SIGKILL loses those not yet run.
 * To say how many at the next start, state_dir/jobs holds two counters in
 * a shared mapping, which the kernel keeps when the process dies: jobs
 * taken and jobs finished (run or discarded).  A job killed while running
 * counts as lost although some of its events may be in the outbox.
 *
 * Stopping runs what is queued until the grace is over, then discards the
 * rest, counted and logged; a job stuck on the disk past the grace is left
 * to end with the process.
 */
#include "pipeline/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define JOBS_MAX 2048
/* What jobs queued or running may hold, unless there is only one. */
#define JOB_BYTES_MAX (64 * 1024 * 1024)
#define COUNTS_MAGIC 0x31736a6f62796564ULL /* "deyjobs1" */
#define COUNTS_LEN 4096

struct job {
	void (*run)(void *job);
	void (*discard)(void *job);
	void *job;
	size_t bytes;
};

struct counts {
	uint64_t magic;
	uint64_t taken, done;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake, ended_cond;
static struct job jobs[JOBS_MAX];
static size_t jobs_head, njobs, job_bytes; /* job_bytes: running one too */
static bool running, stopping, ended;
static int64_t deadline;
static pthread_t thread;
static struct counts mem_counts, *counts = &mem_counts;

static void *
worker_run(void *arg)
{
	uint64_t discarded = 0;

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct job j;
		bool late;

		while (njobs == 0 && !stopping)
			pthread_cond_wait(&wake, &lock);
		if (njobs == 0)
			break;
		j = jobs[jobs_head];
		jobs_head = (jobs_head + 1) % JOBS_MAX;
		njobs--;
		late = stopping && clock_now_ms() >= deadline;
		pthread_mutex_unlock(&lock);
		if (late) {
			j.discard(j.job);
			discarded++;
		} else {
			j.run(j.job);
		}
		pthread_mutex_lock(&lock);
		job_bytes -= j.bytes; /* counted until it is freed */
		counts->done++;
	}
	ended = true;
	pthread_cond_signal(&ended_cond);
	pthread_mutex_unlock(&lock);
	if (discarded > 0)
		log_warnx("worker: stopping: %llu HTTP message(s) not decoded in "
		    "time, their events and spool files lost",
		    (unsigned long long)discarded);
	return NULL;
}

/* The counters of state_dir/jobs, and what the last run lost; in memory
 * when the file cannot be had (then a SIGKILL's losses go unsaid). */
static void
counts_open(const char *state_dir)
{
	char path[4096];
	struct counts *c;
	struct stat st;
	int fd, e;

	snprintf(path, sizeof path, "%s/jobs", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) != 0)
		goto fail;
	/* Blocks allocated now: a store through the mapping never faults. */
	if (st.st_size < COUNTS_LEN &&
	    (e = posix_fallocate(fd, 0, COUNTS_LEN)) != 0) {
		errno = e;
		goto fail;
	}
	c = mmap(NULL, COUNTS_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED)
		goto fail;
	close(fd);
	if (c->magic == COUNTS_MAGIC && c->taken > c->done)
		log_warnx("worker: %llu HTTP message(s) of the last run were lost "
		    "before they were decoded",
		    (unsigned long long)(c->taken - c->done));
	c->taken = c->done = 0;
	c->magic = COUNTS_MAGIC;
	counts = c;
	return;
fail:
	log_warn("worker: %s: a SIGKILL's lost HTTP messages will not be "
	    "counted", path);
	if (fd >= 0)
		close(fd);
}

int
worker_start(const char *state_dir)
{
	counts_open(state_dir);
	clock_cond_init(&wake);
	clock_cond_init(&ended_cond);
	running = true;
	if (pthread_create(&thread, NULL, worker_run, NULL) != 0) {
		running = false;
		log_errorx("cannot start the job thread");
		return -1;
	}
	return 0;
}

bool
worker_put(void (*run)(void *job), void (*discard)(void *job), void *job,
    size_t bytes)
{
	bool stored;

	pthread_mutex_lock(&lock);
	stored = running && !stopping && njobs < JOBS_MAX &&
	    (job_bytes == 0 || job_bytes + bytes <= JOB_BYTES_MAX);
	if (stored) {
		jobs[(jobs_head + njobs++) % JOBS_MAX] =
		    (struct job){run, discard, job, bytes};
		job_bytes += bytes;
		counts->taken++;
		pthread_cond_signal(&wake);
	}
	pthread_mutex_unlock(&lock);
	return stored;
}

bool
worker_stop(int64_t grace_ms)
{
	int64_t left;
	bool done;

	pthread_mutex_lock(&lock);
	if (!running) {
		pthread_mutex_unlock(&lock);
		return true;
	}
	stopping = true;
	deadline = clock_now_ms() + grace_ms;
	pthread_cond_signal(&wake);
	while (!ended && (left = deadline - clock_now_ms()) > 0)
		clock_cond_wait(&ended_cond, &lock, left);
	done = ended;
	pthread_mutex_unlock(&lock);
	if (!done) {
		log_warnx("worker: an HTTP message is still being decoded (slow "
		    "disk?): not waiting for it");
		pthread_detach(thread); /* it ends with the process */
		return false;
	}
	pthread_join(thread, NULL);
	pthread_mutex_lock(&lock);
	running = false;
	pthread_mutex_unlock(&lock);
	return true;
}
