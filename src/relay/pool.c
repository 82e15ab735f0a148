/*
 * pool.c - the relay's threads, reused.
 *
 * A connection's controller and its two pumps each run on a thread of
 * their own, as the design wants.  Creating and joining three threads per
 * connection was a good part of a short connection's cost (clone, a stack
 * mapped and its guard page protected, unmapped again with the TLB
 * shootdowns that costs in a threaded process), so a thread whose job is
 * done parks here instead, and the next job goes to the thread parked
 * last, whose stack is still in the cache.  A parked thread holds nothing
 * of a connection: every live connection has its own controller and its
 * own two pumps, only their threads are recycled.
 *
 * Bounded: at most SPARE_MAX threads park, the others end at once; one
 * parked for IDLE_MS is ended by pool_trim() (run by the accept threads
 * every second), so after a burst the thread count and the stacks' memory
 * return to the baseline.
 *
 * Each thread runs on a stack the pool maps itself (with a guard page
 * below it), and an ended thread is joined by pool_trim() or pool_stop(),
 * which then unmap its stack.  With glibc's own stacks they would not go
 * back: glibc keeps the stacks of ended threads for new ones, up to 40 MiB
 * of them, with their top pages resident (5.6 MiB after a burst of 2,000
 * connections, for good).
 */
#include "relay/pool.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"

#define SPARE_MAX 96   /* 32 connections' worth */
#define IDLE_MS 1000
#ifdef DEYE_SANITIZE
/* Sanitizers need far bigger frames, and ThreadSanitizer wants 900 KiB at
 * least of a stack it did not map itself. */
#define STACK_FLOOR (1024 * 1024)
#else
#define STACK_FLOOR (16 * 1024)
#endif

struct worker {
	void *(*fn)(void *);    /* the job, set before wake is posted */
	void *arg;
	bool quit;              /* trimmed or stopped while parked: the same */
	int64_t parked_ms;
	sem_t wake;             /* posted once per job, or to quit */
	uint8_t *map;           /* the guard page, then the stack */
	pthread_t thread;       /* set by the thread as it ends */
	struct worker *prev, *next; /* in the parked list, last parked first;
	                         * next: in the ended list too */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone;     /* a thread ended; under lock */
static size_t stack_size, guard_size;
static struct worker *head, *tail; /* parked: head the warmest */
static struct worker *ended;    /* under lock: to join, unmap and free */
static long nthreads, nparked;  /* under lock */
static long nquitting;          /* told to end, not yet at their end */
static bool stopping;           /* under lock */
static _Thread_local uintptr_t stack_lo; /* this pool thread's, or 0 */

void
pool_init(size_t stack)
{
	/* glibc refuses a stack below the system's least: 16 KiB on x86-64,
	 * 128 KiB on 64-bit ARM. */
	long least = sysconf(_SC_THREAD_STACK_MIN);

	if (least > 0 && stack < (size_t)least)
		stack = (size_t)least;
	if (stack < STACK_FLOOR)
		stack = STACK_FLOOR;
	guard_size = (size_t)sysconf(_SC_PAGESIZE);
	stack_size = (stack + guard_size - 1) / guard_size * guard_size;
	clock_cond_init(&gone);
}

static void
unlink_worker(struct worker *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		tail = w->prev;
	w->prev = w->next = NULL;
	nparked--;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	stack_lo = (uintptr_t)(w->map + guard_size);
	for (;;) {
		w->fn(w->arg);
		pthread_mutex_lock(&lock);
		if (stopping || nparked >= SPARE_MAX)
			break;
		w->prev = NULL;
		w->next = head;
		if (head != NULL)
			head->prev = w;
		else
			tail = w;
		head = w;
		nparked++;
		w->parked_ms = clock_now_ms();
		pthread_mutex_unlock(&lock);
		/* No lock to take on waking: the waker does not wait for us. */
		while (sem_wait(&w->wake) != 0)
			continue; /* EINTR */
		if (w->quit) {
			pthread_mutex_lock(&lock);
			nquitting--; /* unlinked by whoever set quit */
			break;
		}
	}
	nthreads--;
	w->thread = pthread_self();
	w->next = ended;
	ended = w;
	pthread_cond_broadcast(&gone);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Join the threads that ended and give back their stacks. */
static void
reap(void)
{
	struct worker *list;

	pthread_mutex_lock(&lock);
	list = ended;
	ended = NULL;
	pthread_mutex_unlock(&lock);
	while (list != NULL) {
		struct worker *w = list;

		list = w->next;
		(void)pthread_join(w->thread, NULL);
		sem_destroy(&w->wake);
		(void)munmap(w->map, guard_size + stack_size);
		free(w);
	}
}

/* A new thread for w's job, on a stack of its own; 0 or an errno value. */
static int
start_thread(struct worker *w)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	w->map = mmap(NULL, guard_size + stack_size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (w->map == MAP_FAILED)
		return errno;
	if (mprotect(w->map, guard_size, PROT_NONE) != 0) {
		r = errno;
		(void)munmap(w->map, guard_size + stack_size);
		return r;
	}
	sem_init(&w->wake, 0, 0);
	if ((r = pthread_attr_init(&attr)) == 0) {
		r = pthread_attr_setstack(&attr, w->map + guard_size, stack_size);
		if (r == 0)
			r = pthread_create(&t, &attr, worker_main, w);
		pthread_attr_destroy(&attr);
	}
	if (r != 0) {
		sem_destroy(&w->wake);
		(void)munmap(w->map, guard_size + stack_size);
	}
	return r;
}

int
pool_run(void *(*fn)(void *), void *arg)
{
	struct worker *w;
	int r;

	pthread_mutex_lock(&lock);
	if ((w = head) != NULL) {
		unlink_worker(w);
		w->fn = fn;
		w->arg = arg;
		pthread_mutex_unlock(&lock);
		/* Unlinked: nobody else can post or quit it meanwhile. */
		sem_post(&w->wake);
		return 0;
	}
	nthreads++;
	pthread_mutex_unlock(&lock);

	if ((w = calloc(1, sizeof *w)) == NULL) {
		r = ENOMEM;
		goto fail;
	}
	w->fn = fn;
	w->arg = arg;
	if ((r = start_thread(w)) == 0)
		return 0;
	free(w);
fail:
	pthread_mutex_lock(&lock);
	nthreads--;
	pthread_cond_broadcast(&gone);
	pthread_mutex_unlock(&lock);
	return r;
}

/* Tell w to end; under lock. */
static void
quit(struct worker *w)
{
	unlink_worker(w);
	nquitting++;
	w->quit = true;
	sem_post(&w->wake);
}

long
pool_trim(void)
{
	int64_t now = clock_now_ms();
	long n = 0;

	pthread_mutex_lock(&lock);
	for (; tail != NULL && now - tail->parked_ms >= IDLE_MS; n++)
		quit(tail);
	/* Until they are gone but for their return: the counts are true. */
	while (nquitting > 0 && clock_now_ms() - now < 1000)
		clock_cond_wait(&gone, &lock, 100);
	pthread_mutex_unlock(&lock);
	/* And those that ended on their own (more than SPARE_MAX parked). */
	reap();
	return n;
}

void
pool_shed_stack(void)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t hi = (sp - 512) & ~(uintptr_t)(page - 1);

	if (stack_lo != 0 && hi > stack_lo)
		(void)madvise((void *)stack_lo, hi - stack_lo, MADV_DONTNEED);
}

void
pool_counts(long *threads, long *parked)
{
	pthread_mutex_lock(&lock);
	*threads = nthreads;
	*parked = nparked;
	pthread_mutex_unlock(&lock);
}

long
pool_stop(int64_t timeout_ms)
{
	int64_t deadline = clock_now_ms() + timeout_ms;
	long left;

	pthread_mutex_lock(&lock);
	stopping = true;
	while (head != NULL)
		quit(head);
	while (nthreads > 0) {
		int64_t ms = deadline - clock_now_ms();

		if (ms <= 0)
			break;
		clock_cond_wait(&gone, &lock, ms);
	}
	left = nthreads;
	pthread_mutex_unlock(&lock);
	reap();
	return left;
}
