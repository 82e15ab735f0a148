/*
 * bench_connrate - sequential connection-rate and latency client for
 * `make bench` (tests/bench/bench.py).
 *
 *   bench_connrate -p PORT [-t SECONDS] [-n MAX] [-s SIZE] [-w WARMUP]
 *
 * One connection at a time to 127.0.0.1:PORT, which must echo:
 *
 *   socket, connect, send SIZE bytes (default 100), receive them back and
 *   check them, shutdown(SHUT_WR), read until the peer's EOF, close.
 *
 * Waiting for the EOF makes every exchange complete end to end (the relay
 * has passed the close upstream and back) before the next one starts, so
 * the relay never has more than about one connection in flight.  WARMUP
 * exchanges (default 0) run first and are not counted.  It then runs for
 * SECONDS (default 2) or MAX exchanges, whichever ends first, and prints one
 * JSON object: the count, the rate, failures, and percentiles of two
 * per-connection latencies in microseconds: "echo" from socket() until the
 * echo is back, "total" until the close.  A failed exchange is counted in
 * "errors" ("warmup_errors" during the warm-up; the first reason in "error")
 * and leaves out its latency.  Exit
 * status 0 when it ran, even with errors; 2 on usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define MAX_SIZE 65536
#define MAX_ERRORS 1000
#define IO_TIMEOUT_S 5

struct lat {
	uint32_t *v;
	size_t n, cap;
};

static char first_error[160];

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
lat_add(struct lat *l, int64_t ns)
{
	int64_t us = ns / 1000;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint32_t *v = realloc(l->v, cap * sizeof *v);

		if (v == NULL) {
			fprintf(stderr, "bench_connrate: out of memory\n");
			exit(1);
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted list; 0 when empty. */
static uint32_t
pct(const struct lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)l->n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > l->n)
		i = l->n;
	return l->v[i - 1];
}

static void
print_lat(const char *name, struct lat *l)
{
	double sum = 0;

	qsort(l->v, l->n, sizeof *l->v, cmp_u32);
	for (size_t i = 0; i < l->n; i++)
		sum += l->v[i];
	printf("\"%s\": {\"mean\": %.1f, \"min\": %" PRIu32 ", \"p50\": %" PRIu32
	    ", \"p90\": %" PRIu32 ", \"p99\": %" PRIu32 ", \"p999\": %" PRIu32
	    ", \"max\": %" PRIu32 "}", name, l->n ? sum / (double)l->n : 0.0,
	    pct(l, 0.0001), pct(l, 50), pct(l, 90), pct(l, 99), pct(l, 99.9),
	    l->n ? l->v[l->n - 1] : 0);
}

static int
fail(const char *what, int err)
{
	if (first_error[0] == '\0')
		snprintf(first_error, sizeof first_error, "%s: %s", what,
		    err ? strerror(err) : "unexpected");
	return -1;
}

/* One exchange; 0 and the two latencies, or -1. */
static int
exchange(const struct sockaddr_in *sin, const unsigned char *msg, size_t size,
    int64_t *echo_ns, int64_t *total_ns)
{
	static unsigned char buf[MAX_SIZE];
	struct timeval tv = {IO_TIMEOUT_S, 0};
	int64_t t0 = now_ns();
	size_t got = 0;
	int fd, r = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket", errno);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (const struct sockaddr *)sin, sizeof *sin) != 0) {
		fail("connect", errno);
		goto out;
	}
	for (size_t off = 0; off < size;) {
		ssize_t w = send(fd, msg + off, size - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fail("send", errno);
			goto out;
		}
		off += (size_t)w;
	}
	while (got < size) {
		ssize_t n = recv(fd, buf + got, size - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(n == 0 ? "recv: EOF before the echo" : "recv",
			    n == 0 ? 0 : errno);
			goto out;
		}
		got += (size_t)n;
	}
	*echo_ns = now_ns() - t0;
	if (memcmp(buf, msg, size) != 0) {
		fail("echo differs from what was sent", 0);
		goto out;
	}
	if (shutdown(fd, SHUT_WR) != 0) {
		fail("shutdown", errno);
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		fail(n > 0 ? "recv: bytes after the echo" : "recv: waiting for EOF",
		    n > 0 ? 0 : errno);
		goto out;
	}
	r = 0;
out:
	close(fd);
	*total_ns = now_ns() - t0;
	return r;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_connrate -p PORT [-t SECONDS] [-n MAX] "
	    "[-s SIZE] [-w WARMUP]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static unsigned char msg[MAX_SIZE];
	struct sockaddr_in sin;
	struct lat echo = {0}, total = {0};
	double secs = 2.0;
	long port = -1, max = 0, size = 100, warmup = 0, errors = 0, ok = 0;
	long warmup_errors = 0;
	int64_t start, deadline, end, e_ns, t_ns;
	int ch;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "p:t:n:s:w:")) != -1) {
		switch (ch) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 't': secs = strtod(optarg, NULL); break;
		case 'n': max = strtol(optarg, NULL, 10); break;
		case 's': size = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind != argc || port <= 0 || port > 65535 || secs <= 0 ||
	    max < 0 || size < 1 || size > MAX_SIZE || warmup < 0)
		usage();
	for (long i = 0; i < size; i++)
		msg[i] = (unsigned char)('A' + i % 26);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	for (long i = 0; i < warmup; i++)
		if (exchange(&sin, msg, (size_t)size, &e_ns, &t_ns) != 0 &&
		    ++warmup_errors >= MAX_ERRORS)
			break;
	start = now_ns();
	deadline = start + (int64_t)(secs * 1e9);
	while ((max == 0 || ok + errors < max) && errors < MAX_ERRORS) {
		if (exchange(&sin, msg, (size_t)size, &e_ns, &t_ns) == 0) {
			ok++;
			lat_add(&echo, e_ns);
			lat_add(&total, t_ns);
		} else {
			errors++;
		}
		if (now_ns() >= deadline)
			break;
	}
	end = now_ns();

	printf("{\"n\": %ld, \"errors\": %ld, \"warmup_errors\": %ld, "
	    "\"error\": \"%s\", \"secs\": %.6f, \"rate\": %.1f, "
	    "\"size\": %ld, ", ok, errors, warmup_errors, first_error,
	    (double)(end - start) / 1e9,
	    (double)ok / ((double)(end - start) / 1e9), size);
	print_lat("echo", &echo);
	printf(", ");
	print_lat("total", &total);
	printf("}\n");
	free(echo.v);
	free(total.v);
	return fflush(stdout) == 0 ? 0 : 1;
}
