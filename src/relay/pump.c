/*
 * pump.c - one direction of a relayed connection.
 *
 * recv() from one socket, hand the chunk to the tap's decoders, send() it
 * whole to the other socket, then to capture.  Decoding first puts a
 * frame's event in the outbox (a file mapping that outlives a SIGKILL)
 * before the frame leaves; it is done in memory and never waits on a sink
 * or the journal.
 *
 * Deadlines without polling: each socket's receive and send timeouts are
 * the time left until the idle deadline (no byte either way for
 * idle_timeout), so an idle connection costs no wake-ups until it is due.
 * When one side sends EOF, its pump passes it on with shutdown(SHUT_WR) and
 * then waits on a condition for the other pump, at most until the other
 * direction has been silent for fin_timeout.  An error, a reset or a
 * deadline shuts both sockets down, which wakes the other pump in recv()
 * or send(); so does the daemon's shutdown.
 *
 * A pump reads into a small buffer on its own stack first (a logger's
 * frames are a few hundred bytes, and the stack page it lies in is touched
 * anyway: an idle logger holds no more), and takes a 64 KiB one once a read
 * fills the small one: bulk traffic.
 * That buffer is mapped, not malloc()ed: thousands of 64 KiB buffers freed
 * in a different order than they were taken leave the heap in pieces that
 * the allocator keeps (RSS ratcheted by 150 MB over a dozen bursts); a
 * mapping goes back to the system when the pump ends.  The last few are
 * kept for the next pumps (at most SPARE_BUFS, 1 MiB): a map and an unmap
 * per pump, with the TLB shootdowns an unmap costs in a threaded process,
 * were a good part of a short connection's cost.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "proto/tap.h"
#include "relay/conn.h"
#include "relay/net.h"

#define PUMP_SMALL 1024
#define PUMP_BUF (64 * 1024)
#define SPARE_BUFS 16

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *spare[SPARE_BUFS];
static size_t nspare;

static uint8_t *
buf_get(void)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&spare_lock);
	if (nspare > 0)
		b = spare[--nspare];
	pthread_mutex_unlock(&spare_lock);
	if (b != NULL)
		return b;
	b = mmap(NULL, PUMP_BUF, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return b == MAP_FAILED ? NULL : b;
}

static void
buf_put(uint8_t *b)
{
	pthread_mutex_lock(&spare_lock);
	if (nspare < SPARE_BUFS) {
		spare[nspare++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&spare_lock);
	if (b != NULL)
		(void)munmap(b, PUMP_BUF);
}

static const char *const side_name[2] = {"client", "upstream"};

static const char *
errno_word(int e)
{
	switch (e) {
	case ECONNRESET: return "reset";
	case EPIPE: return "reset";
	case ETIMEDOUT: return "timeout";
	case EHOSTUNREACH: return "host-unreachable";
	case ENETUNREACH: return "net-unreachable";
	default: return "error";
	}
}

/*
 * A socket timeout fired.  Returns true when the connection is idle (the
 * reason is set); otherwise re-arms the timeouts of fd for the time left.
 */
static bool
idle_expired(struct conn *c, int fd)
{
	int64_t left = atomic_load(&c->last_io_ms) + c->lc->idle_timeout_ms -
	    clock_now_ms();

	if (left <= 0) {
		conn_end(c, "relay", "idle-timeout");
		return true;
	}
	(void)net_tune(fd, left);
	return false;
}

/* Write all of buf; false when the destination failed or went idle. */
static bool
send_all(struct conn *c, int to, const uint8_t *buf, size_t n, enum dir dir)
{
	while (n > 0) {
		ssize_t w = send(to, buf, n, MSG_NOSIGNAL);

		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			atomic_store(&c->last_io_ms, clock_now_ms());
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (idle_expired(c, to))
				return false;
			continue;
		}
		/* The receiving side is gone. */
		conn_end(c, side_name[!dir], errno_word(errno));
		return false;
	}
	return true;
}

/*
 * One chunk read from dir: feed it to the tap, pass it on and, when we
 * answer the logger ourselves, send it the replies.  False when the
 * connection must end (the reason is set).
 */
static bool
forward(struct conn *c, enum dir dir, int to, const uint8_t *buf, size_t n)
{
	const uint8_t *replies;
	/* Read once: a chunk passed to the cloud is the cloud's to answer. */
	bool local = atomic_load(&c->local);
	size_t k;

	tap_feed(c->tap, dir, buf, n, dir == DIR_UP && local);
	if (to >= 0 && !local && !send_all(c, to, buf, n, dir)) {
		if (!(dir == DIR_UP && conn_go_local(c, "gone")))
			return false;
		local = true;
		tap_answer_last(c->tap);
	}
	tap_sent(c->tap, dir, buf, n);
	atomic_fetch_add(&c->bytes[dir], n);
	if (dir != DIR_UP || !local)
		return true;
	if (tap_undecodable(c->tap)) {
		conn_end(c, "relay", "cannot-answer");
		return false;
	}
	if ((k = tap_replies(c->tap, &replies)) > 0) {
		bool ok = send_all(c, c->fd[DIR_UP], replies, k, DIR_DOWN);
		tap_replies_sent(c->tap);
		if (!ok)
			return false;
		atomic_fetch_add(&c->bytes[DIR_DOWN], k);
	}
	return true;
}

/*
 * The cloud hung up or failed in the middle: carry on locally, as
 * conn_go_local() decides.  A stream we cannot answer (TLS...) ends now:
 * its logger waits for the cloud's answer to what it sent before it says
 * more, so waiting for its next bytes would hold it until idle_timeout.
 */
static bool
down_gone(struct conn *c, const char *why)
{
	if (!conn_go_local(c, why))
		return false;
	if (tap_undecodable(c->tap)) {
		conn_end(c, "relay", "cannot-answer");
		conn_abort(c);
	}
	return true;
}

/*
 * The pump's end, in one hold of end_lock: say so to the other pump; after
 * our side's EOF, give the other direction until it has been silent for
 * fin_timeout; then let go of c, which the controller may free once we
 * unlock.
 */
static void
pump_end(struct conn *c, enum dir dir, bool eof)
{
	pthread_mutex_lock(&c->end_lock);
	c->pump_done[dir] = true;
	pthread_cond_broadcast(&c->pump_ended);
	while (eof && !c->pump_done[!dir]) {
		int64_t last = atomic_load(&c->last_io_ms);
		int64_t first = atomic_load(&c->eof_ms);
		int64_t left = (last > first ? last : first) +
		    c->lc->fin_timeout_ms - clock_now_ms();

		if (left <= 0) {
			pthread_mutex_unlock(&c->end_lock);
			conn_end(c, "relay", "fin-timeout");
			conn_abort(c);
			pthread_mutex_lock(&c->end_lock);
			break;
		}
		clock_cond_wait(&c->pump_ended, &c->end_lock, left);
	}
	if (--c->pumps_running == 0)
		pthread_cond_signal(&c->pumps_gone);
	pthread_mutex_unlock(&c->end_lock);
}

void *
pump_run(void *arg)
{
	struct pump *p = arg;
	struct conn *c = p->c;
	int from = c->fd[p->dir], to = c->fd[!p->dir];
	uint8_t small[PUMP_SMALL], *buf = small, *big = NULL;
	size_t size = PUMP_SMALL;
	bool eof = false;

	for (;;) {
		ssize_t n = recv(from, buf, size, 0);

		if (n > 0) {
			atomic_store(&c->last_io_ms, clock_now_ms());
			if (!forward(c, p->dir, to, buf, (size_t)n)) {
				conn_abort(c);
				break;
			}
			/* The small buffer filled: bulk traffic, take a big one
			 * (without, go on with the small one). */
			if (big == NULL && (size_t)n == size &&
			    (big = buf_get()) != NULL) {
				buf = big;
				size = PUMP_BUF;
			}
			continue;
		}
		if (n == 0 && p->dir == DIR_DOWN && down_gone(c, "eof"))
			break; /* the cloud hung up: the logger goes on with us */
		if (n == 0) {
			int64_t zero = 0;

			conn_end(c, side_name[p->dir], "eof");
			atomic_compare_exchange_strong(&c->eof_ms, &zero, clock_now_ms());
			if (to >= 0)
				(void)shutdown(to, SHUT_WR);
			eof = to >= 0;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (idle_expired(c, from)) {
				conn_abort(c);
				break;
			}
			continue;
		}
		if (p->dir == DIR_DOWN && down_gone(c, errno_word(errno)))
			break;
		conn_end(c, side_name[p->dir], errno_word(errno));
		conn_abort(c);
		break;
	}
	if (big != NULL)
		buf_put(big);
	pump_end(c, p->dir, eof);
	return NULL;
}
