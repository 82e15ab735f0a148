/*
 * pump.c - one direction of a relayed connection.
 *
 * recv() from one socket, send() the whole chunk to the other, then hand the
 * chunk to the tap: the relay never waits for a decoder.  Sockets carry a
 * receive/send timeout (the connection's tick) so that a pump blocked on a
 * silent peer wakes up to check the idle and half-close deadlines and the
 * daemon's shutdown.
 *
 * Ends: EOF is passed on as shutdown(SHUT_WR) to the other side and the
 * other direction keeps flowing; an error or reset, or a deadline, shuts
 * both sockets down, which wakes the other pump in recv() or send().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "tap.h"

#define PUMP_BUF (64 * 1024)

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

/* Whether a deadline has passed; sets the end reason when one has. */
static bool
deadline_passed(struct conn *c)
{
	int64_t now = net_now_ms();
	int64_t last = atomic_load(&c->last_io_ms);
	int64_t eof = atomic_load(&c->eof_ms);

	if (relay_stopping()) {
		conn_end(c, "relay", "shutdown");
		return true;
	}
	if (now - last >= c->lc->idle_timeout_ms) {
		conn_end(c, "relay", "idle-timeout");
		return true;
	}
	if (eof != 0 && now - (last > eof ? last : eof) >= c->lc->fin_timeout_ms) {
		conn_end(c, "relay", "fin-timeout");
		return true;
	}
	return false;
}

/* Write all of buf; false when the destination failed or a deadline hit. */
static bool
send_all(struct conn *c, int to, const uint8_t *buf, size_t n, enum dir dir)
{
	while (n > 0) {
		ssize_t w = send(to, buf, n, MSG_NOSIGNAL);

		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			atomic_store(&c->last_io_ms, net_now_ms());
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (deadline_passed(c))
				return false;
			continue;
		}
		/* The receiving side is gone. */
		conn_end(c, side_name[!dir], errno_word(errno));
		return false;
	}
	return true;
}

void *
pump_run(void *arg)
{
	struct pump *p = arg;
	struct conn *c = p->c;
	int from = c->fd[p->dir], to = c->fd[!p->dir];
	uint8_t *buf = malloc(PUMP_BUF);

	if (buf == NULL) {
		log_errorx("conn %" PRIu64 ": out of memory", c->id);
		conn_end(c, "relay", "out-of-memory");
		conn_abort(c);
		return NULL;
	}
	for (;;) {
		ssize_t n = recv(from, buf, PUMP_BUF, 0);

		if (n > 0) {
			atomic_store(&c->last_io_ms, net_now_ms());
			if (to >= 0 && !send_all(c, to, buf, (size_t)n, p->dir)) {
				conn_abort(c);
				break;
			}
			c->bytes[p->dir] += (uint64_t)n;
			tap_feed(c->tap, p->dir, buf, (size_t)n);
			continue;
		}
		if (n == 0) {
			int64_t zero = 0;

			conn_end(c, side_name[p->dir], "eof");
			atomic_compare_exchange_strong(&c->eof_ms, &zero, net_now_ms());
			if (to >= 0)
				(void)shutdown(to, SHUT_WR);
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (deadline_passed(c)) {
				conn_abort(c);
				break;
			}
			continue;
		}
		conn_end(c, side_name[p->dir], errno_word(errno));
		conn_abort(c);
		break;
	}
	free(buf);
	return NULL;
}
