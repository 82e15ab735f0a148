/*
 * bench_v5 - Solarman V5 and Envoy traffic for `make bench`
 * (tests/bench/bench.py).
 *
 *   bench_v5 sink
 *       Listens on 127.0.0.1 (any free port), prints "PORT <n>", then reads
 *       and discards everything on every connection (a thread each) and
 *       closes it at the peer's EOF.  Runs until killed.
 *   bench_v5 stream -p PORT -f FIXTURES [-t SECS]
 *       One connection to 127.0.0.1:PORT (a relay in front of a sink):
 *       sends the fixture frames that verify OK, back to back and repeated,
 *       as fast as it can for SECS (default 2), then shutdown(SHUT_WR) and
 *       waits for the EOF that the sink's close sends back through the
 *       relay, so every byte has been through.  Prints bytes, seconds and
 *       MB/s (10^6 bytes) up to that EOF.
 *   bench_v5 heartbeats -p PORT -n N [-c CONNS] [-b BURST]
 *       N heartbeat frames (sequence numbers vary, checksums fixed) over
 *       CONNS connections at once (default 1), BURST frames per send()
 *       (default 64), then shutdown and wait for each EOF.  Prints the
 *       CLOCK_MONOTONIC time of the first send ("t_first", seconds, the
 *       clock Python's time.monotonic() reads) and of the last EOF.
 *   bench_v5 rtt -p PORT [-t SECS] [-w WARMUP] [-i INTERVAL_US] [-l]
 *       One connection to a relay in front of an echo server: send one
 *       heartbeat frame, read it back and check it, again; WARMUP exchanges
 *       first (default 200, not counted), then SECS (default 2).  With
 *       INTERVAL_US the exchanges start on a fixed schedule (an open loop,
 *       so a stall does not lower the load); without, back to back.
 *       Prints the count and percentiles of the round trip in microseconds
 *       and, with -l, every round trip ("lat", sorted).
 *   bench_v5 envoy-upstream -f REQUEST -r ANSWER
 *       Listens like sink and answers like Enphase: on every connection (a
 *       thread each), reads a request of exactly the bytes of file REQUEST
 *       (an Envoy's keep-alive performance_report POST), checks them and
 *       writes the bytes of file ANSWER (its keep-alive answer), again
 *       until the peer's EOF; any other bytes close the connection (with a
 *       line on stderr).
 *   bench_v5 envoy-post -p PORT -f REQUEST -r ANSWER -n N [-c CONNS]
 *       N POSTs over CONNS keep-alive connections at once (default 1) to a
 *       relay in front of envoy-upstream: on each, send REQUEST, read and
 *       check ANSWER, again, as an Envoy does (one exchange at a time),
 *       then shutdown and wait for the EOF.  Prints the count, the
 *       CLOCK_MONOTONIC time of the first send ("t_first") and of the last
 *       answer ("t_last"), POSTs per second between them and percentiles of
 *       one exchange in microseconds.
 *
 * Errors go to stderr with exit status 1; usage errors exit 2.  It dies with
 * its parent (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define IO_TIMEOUT_S 30
#define STREAM_BUF (1 << 20)
#define HB_LEN 14

/* deye-micro-heartbeat-0x47 of tests/data/solarman-frames.txt */
static const uint8_t heartbeat[HB_LEN] = {
	0xa5, 0x01, 0x00, 0x10, 0x47, 0x02, 0xd7, 0xcb, 0xea, 0x91, 0xe6, 0x00,
	0x5d, 0x15,
};

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_v5: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_v5 sink\n"
	    "       bench_v5 stream -p PORT -f FIXTURES [-t SECS]\n"
	    "       bench_v5 heartbeats -p PORT -n N [-c CONNS] [-b BURST]\n"
	    "       bench_v5 rtt -p PORT [-t SECS] [-w WARMUP] [-i INTERVAL_US] "
	    "[-l]\n"
	    "       bench_v5 envoy-upstream -f REQUEST -r ANSWER\n"
	    "       bench_v5 envoy-post -p PORT -f REQUEST -r ANSWER -n N "
	    "[-c CONNS]\n");
	exit(2);
}

static int
dial(long port)
{
	struct sockaddr_in sin;
	struct timeval tv = {IO_TIMEOUT_S, 0};
	int fd, one = 1;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
		die("connect to port %ld: %s", port, strerror(errno));
	return fd;
}

static void
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("send: %s", w < 0 ? strerror(errno) : "nothing sent");
		p += w;
		n -= (size_t)w;
	}
}

/* After shutdown(SHUT_WR): read until the peer's EOF; bytes read. */
static size_t
await_eof(int fd)
{
	uint8_t buf[4096];
	size_t got = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("waiting for EOF: %s", strerror(errno));
		if (n == 0)
			return got;
		got += (size_t)n;
	}
}

/* ---- sink */

static void *
sink_conn(void *arg)
{
	static uint8_t buf[1 << 16]; /* shared: the bytes are thrown away */
	int fd = (int)(intptr_t)arg;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		break;
	}
	close(fd);
	return NULL;
}

/* Listen on 127.0.0.1 (any port), print it, run conn(fd) in a thread for
 * every connection; never returns. */
static int
serve(void *(*conn)(void *))
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	pthread_attr_t attr;
	int lfd, one = 1;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket: %s", strerror(errno));
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(lfd, 1024) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0)
		die("listen: %s", strerror(errno));
	printf("PORT %u\n", (unsigned)ntohs(sin.sin_port));
	if (fflush(stdout) != 0)
		die("stdout: %s", strerror(errno));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		if (pthread_create(&t, &attr, conn, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
}

/* ---- stream */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The frames of the blocks that verify OK, one after the other. */
static size_t
load_fixtures(const char *path, uint8_t *out, size_t cap, int *blocks)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	bool ok = false;
	size_t n = 0;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	*blocks = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		line[len] = '\0';
		if (strncmp(line, "# verify-result: ", 17) == 0) {
			ok = strcmp(line + 17, "OK") == 0 ||
			    strcmp(line + 17, "ALL FRAMES OK") == 0;
		} else if (line[0] != '#' && len > 0 && ok) {
			if (len % 2 != 0 || n + len / 2 > cap)
				die("%s: bad or too many frames", path);
			for (size_t i = 0; i < len; i += 2) {
				int hi = hexval(line[i]), lo = hexval(line[i + 1]);

				if (hi < 0 || lo < 0)
					die("%s: bad hex", path);
				out[n++] = (uint8_t)(hi << 4 | lo);
			}
			(*blocks)++;
			ok = false;
		}
	}
	fclose(f);
	if (n == 0)
		die("%s: no block verifies OK", path);
	return n;
}

static int
run_stream(long port, const char *path, double secs)
{
	static uint8_t unit[64 * 1024];
	uint8_t *buf = malloc(STREAM_BUF);
	size_t unit_len, len = 0;
	uint64_t sent = 0;
	double t0, deadline, t1;
	int blocks, fd;

	if (buf == NULL)
		die("out of memory");
	unit_len = load_fixtures(path, unit, sizeof unit, &blocks);
	while (len + unit_len <= STREAM_BUF) {
		memcpy(buf + len, unit, unit_len);
		len += unit_len;
	}
	fd = dial(port);
	t0 = mono();
	deadline = t0 + secs;
	while (mono() < deadline) {
		send_all(fd, buf, len);
		sent += len;
	}
	if (shutdown(fd, SHUT_WR) != 0)
		die("shutdown: %s", strerror(errno));
	if (await_eof(fd) != 0)
		die("stream: bytes came back from a sink");
	t1 = mono();
	close(fd);
	printf("{\"bytes\": %" PRIu64 ", \"secs\": %.6f, \"mbps\": %.1f, "
	    "\"fixture_blocks\": %d, \"unit_bytes\": %zu}\n", sent, t1 - t0,
	    (double)sent / (t1 - t0) / 1e6, blocks, unit_len);
	free(buf);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- heartbeats */

struct hb_job {
	long port;
	long n, burst;
	uint64_t seq0;
	double t_first, t_done;
	pthread_barrier_t *start;
};

static void
heartbeat_frame(uint8_t *p, uint64_t seq)
{
	unsigned sum = 0;

	memcpy(p, heartbeat, HB_LEN);
	p[5] = (uint8_t)(seq >> 8);
	p[6] = (uint8_t)seq;
	for (int i = 1; i < HB_LEN - 2; i++)
		sum += p[i];
	p[HB_LEN - 2] = (uint8_t)sum;
}

static void *
hb_run(void *arg)
{
	struct hb_job *j = arg;
	uint8_t *buf = malloc((size_t)j->burst * HB_LEN);
	int fd = dial(j->port);

	if (buf == NULL)
		die("out of memory");
	pthread_barrier_wait(j->start);
	j->t_first = mono();
	for (long i = 0; i < j->n; i += j->burst) {
		long k = j->n - i < j->burst ? j->n - i : j->burst;

		for (long m = 0; m < k; m++)
			heartbeat_frame(buf + m * HB_LEN, j->seq0 + (uint64_t)(i + m));
		send_all(fd, buf, (size_t)k * HB_LEN);
	}
	if (shutdown(fd, SHUT_WR) != 0)
		die("shutdown: %s", strerror(errno));
	(void)await_eof(fd);
	j->t_done = mono();
	close(fd);
	free(buf);
	return NULL;
}

static int
run_heartbeats(long port, long n, long conns, long burst)
{
	struct hb_job *jobs = calloc((size_t)conns, sizeof *jobs);
	pthread_t *t = calloc((size_t)conns, sizeof *t);
	pthread_barrier_t start;
	double first = 0, done = 0;

	if (jobs == NULL || t == NULL)
		die("out of memory");
	pthread_barrier_init(&start, NULL, (unsigned)conns);
	for (long i = 0; i < conns; i++) {
		jobs[i] = (struct hb_job){port, n / conns + (i < n % conns),
		    burst, (uint64_t)i << 16, 0, 0, &start};
		if (pthread_create(&t[i], NULL, hb_run, &jobs[i]) != 0)
			die("pthread_create");
	}
	for (long i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		if (i == 0 || jobs[i].t_first < first)
			first = jobs[i].t_first;
		if (jobs[i].t_done > done)
			done = jobs[i].t_done;
	}
	printf("{\"frames\": %ld, \"conns\": %ld, \"burst\": %ld, "
	    "\"t_first\": %.6f, \"t_done\": %.6f, \"send_secs\": %.6f}\n", n, conns,
	    burst, first, done, done - first);
	free(jobs);
	free(t);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- rtt */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static uint32_t
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	return v[(i < 1 ? 1 : i > n ? n : i) - 1];
}

static void
sleep_until(double t)
{
	double left = t - mono();

	if (left > 0) {
		struct timespec ts = {(time_t)left,
		    (long)((left - (double)(time_t)left) * 1e9)};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

static int
run_rtt(long port, double secs, long warmup, long interval_us, bool all)
{
	size_t cap = 1 << 16, n = 0;
	uint32_t *lat = malloc(cap * sizeof *lat);
	uint8_t msg[HB_LEN], back[HB_LEN];
	double t0, next, end, start = 0, sum = 0;
	uint64_t seq = 0;
	int fd = dial(port);

	if (lat == NULL)
		die("out of memory");
	next = mono();
	end = -1;
	for (long i = 0;; i++) {
		double s, e;
		size_t got = 0;

		if (i == warmup) {
			start = mono();
			end = start + secs;
			next = start;
		}
		if (end > 0 && mono() >= end)
			break;
		if (interval_us > 0 && i >= warmup) {
			sleep_until(next);
			next += (double)interval_us / 1e6;
		}
		heartbeat_frame(msg, seq++);
		/* Open loop: the latency counts from when it was due. */
		t0 = mono();
		s = interval_us > 0 && i >= warmup ?
		    next - (double)interval_us / 1e6 : t0;
		if (s > t0)
			s = t0;
		send_all(fd, msg, HB_LEN);
		while (got < HB_LEN) {
			ssize_t r = recv(fd, back + got, HB_LEN - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("rtt: recv: %s", r < 0 ? strerror(errno) :
				    "EOF before the echo");
			got += (size_t)r;
		}
		e = mono();
		if (memcmp(msg, back, HB_LEN) != 0)
			die("rtt: the echo differs from what was sent");
		if (i < warmup)
			continue;
		if (n == cap) {
			uint32_t *nl = realloc(lat, (cap *= 2) * sizeof *lat);
			if (nl == NULL)
				die("out of memory");
			lat = nl;
		}
		lat[n] = (uint32_t)((e - s) * 1e6);
		sum += (e - s) * 1e6;
		n++;
	}
	end = mono();
	if (shutdown(fd, SHUT_WR) != 0)
		die("shutdown: %s", strerror(errno));
	(void)await_eof(fd);
	close(fd);
	qsort(lat, n, sizeof *lat, cmp_u32);
	printf("{\"n\": %zu, \"warmup\": %ld, \"secs\": %.6f, \"rate\": %.1f, "
	    "\"interval_us\": %ld, \"mean\": %.1f, \"p50\": %" PRIu32
	    ", \"p90\": %" PRIu32 ", \"p99\": %" PRIu32 ", \"p999\": %" PRIu32
	    ", \"max\": %" PRIu32, n, warmup, end - start,
	    (double)n / (end - start), interval_us, n ? sum / (double)n : 0.0,
	    pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99), pct(lat, n, 99.9),
	    n ? lat[n - 1] : 0);
	if (all) {
		printf(", \"lat\": [");
		for (size_t i = 0; i < n; i++)
			printf("%s%" PRIu32, i ? "," : "", lat[i]);
		printf("]");
	}
	printf("}\n");
	free(lat);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- Envoy */

struct blob {
	uint8_t *p;
	size_t n;
};

static struct blob post_req, post_ans; /* the files' bytes */

static struct blob
load_file(const char *path)
{
	struct blob b = {NULL, 0};
	size_t cap = 0;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	for (;;) {
		size_t k;

		if (b.n == cap && (b.p = realloc(b.p, cap = cap * 2 + 65536)) == NULL)
			die("out of memory");
		if ((k = fread(b.p + b.n, 1, cap - b.n, f)) == 0)
			break;
		b.n += k;
	}
	if (ferror(f) || b.n == 0)
		die("%s: unreadable or empty", path);
	fclose(f);
	return b;
}

/* Read exactly n bytes into buf: n, 0 at an EOF before the first byte, or
 * -1 (errno, or EPIPE for an EOF inside). */
static ssize_t
recv_exact(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && got == 0)
			return 0;
		if (r <= 0) {
			if (r == 0)
				errno = EPIPE;
			return -1;
		}
		got += (size_t)r;
	}
	return (ssize_t)n;
}

static void *
upstream_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t *buf = malloc(post_req.n);
	ssize_t r = 0;

	while (buf != NULL && (r = recv_exact(fd, buf, post_req.n)) > 0) {
		if (memcmp(buf, post_req.p, post_req.n) != 0) {
			fprintf(stderr, "bench_v5: envoy-upstream: a request "
			    "differs from the one expected\n");
			break;
		}
		send_all(fd, post_ans.p, post_ans.n);
	}
	if (buf != NULL && r < 0)
		fprintf(stderr, "bench_v5: envoy-upstream: %s\n", strerror(errno));
	free(buf);
	close(fd);
	return NULL;
}

static int
run_envoy_upstream(const char *req, const char *ans)
{
	post_req = load_file(req);
	post_ans = load_file(ans);
	return serve(upstream_conn);
}

struct post_job {
	long port, n;
	pthread_barrier_t *start;
	double t_first, t_last;
	uint32_t *lat;
};

static void *
post_run(void *arg)
{
	struct post_job *j = arg;
	uint8_t *buf = malloc(post_ans.n);
	int fd = dial(j->port);

	if (buf == NULL)
		die("out of memory");
	pthread_barrier_wait(j->start);
	j->t_first = j->t_last = mono();
	for (long i = 0; i < j->n; i++) {
		double t0 = mono();
		ssize_t r;

		send_all(fd, post_req.p, post_req.n);
		if ((r = recv_exact(fd, buf, post_ans.n)) <= 0)
			die("envoy-post: POST %ld of %ld: %s", i + 1, j->n,
			    r == 0 ? "EOF before the answer" : strerror(errno));
		if (memcmp(buf, post_ans.p, post_ans.n) != 0)
			die("envoy-post: an answer differs from the one expected");
		j->t_last = mono();
		j->lat[i] = (uint32_t)((j->t_last - t0) * 1e6);
	}
	if (shutdown(fd, SHUT_WR) != 0)
		die("shutdown: %s", strerror(errno));
	if (await_eof(fd) != 0)
		die("envoy-post: bytes after the last answer");
	close(fd);
	free(buf);
	return NULL;
}

static int
run_envoy_post(long port, const char *req, const char *ans, long n,
    long conns)
{
	struct post_job *jobs = calloc((size_t)conns, sizeof *jobs);
	pthread_t *t = calloc((size_t)conns, sizeof *t);
	uint32_t *lat = malloc((size_t)n * sizeof *lat);
	pthread_barrier_t start;
	double first = 0, last = 0;
	long off = 0;

	post_req = load_file(req);
	post_ans = load_file(ans);
	if (jobs == NULL || t == NULL || lat == NULL)
		die("out of memory");
	pthread_barrier_init(&start, NULL, (unsigned)conns);
	for (long i = 0; i < conns; i++) {
		jobs[i] = (struct post_job){port, n / conns + (i < n % conns),
		    &start, 0, 0, lat + off};
		off += jobs[i].n;
		if (pthread_create(&t[i], NULL, post_run, &jobs[i]) != 0)
			die("pthread_create");
	}
	for (long i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		if (i == 0 || jobs[i].t_first < first)
			first = jobs[i].t_first;
		if (jobs[i].t_last > last)
			last = jobs[i].t_last;
	}
	qsort(lat, (size_t)n, sizeof *lat, cmp_u32);
	printf("{\"posts\": %ld, \"conns\": %ld, \"request_bytes\": %zu, "
	    "\"answer_bytes\": %zu, \"t_first\": %.6f, \"t_last\": %.6f, "
	    "\"secs\": %.6f, \"rate\": %.1f, \"p50\": %" PRIu32 ", \"p99\": %"
	    PRIu32 ", \"max\": %" PRIu32 "}\n", n, conns, post_req.n, post_ans.n,
	    first, last, last - first, (double)n / (last - first),
	    pct(lat, (size_t)n, 50), pct(lat, (size_t)n, 99), lat[n - 1]);
	free(jobs);
	free(t);
	free(lat);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *mode, *fixtures = NULL, *answer = NULL;
	long port = -1, n = -1, conns = 1, burst = 64, warmup = 200, interval = 0;
	double secs = 2.0;
	bool all = false;
	int ch;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "p:f:r:t:n:c:b:w:i:l")) != -1) {
		switch (ch) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'f': fixtures = optarg; break;
		case 'r': answer = optarg; break;
		case 't': secs = strtod(optarg, NULL); break;
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'c': conns = strtol(optarg, NULL, 10); break;
		case 'b': burst = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		case 'i': interval = strtol(optarg, NULL, 10); break;
		case 'l': all = true; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (strcmp(mode, "sink") == 0)
		return serve(sink_conn);
	if (strcmp(mode, "envoy-upstream") == 0 && fixtures != NULL &&
	    answer != NULL)
		return run_envoy_upstream(fixtures, answer);
	if (port <= 0 || port > 65535 || secs <= 0)
		usage();
	if (strcmp(mode, "stream") == 0 && fixtures != NULL)
		return run_stream(port, fixtures, secs);
	if (strcmp(mode, "heartbeats") == 0 && n > 0 && conns >= 1 &&
	    conns <= 1000 && burst >= 1 && burst <= 100000)
		return run_heartbeats(port, n, conns, burst);
	if (strcmp(mode, "rtt") == 0 && warmup >= 0 && interval >= 0)
		return run_rtt(port, secs, warmup, interval, all);
	if (strcmp(mode, "envoy-post") == 0 && fixtures != NULL &&
	    answer != NULL && n > 0 && conns >= 1 && conns <= 1000)
		return run_envoy_post(port, fixtures, answer, n, conns);
	usage();
}
