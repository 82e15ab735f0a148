/*
 * bench_hec - a minimal Splunk HEC endpoint for `make bench`
 * (tests/bench/bench.py): it counts envelopes and answers 200, nothing else.
 *
 *   bench_hec [-k TOKEN]
 *
 * Listens on 127.0.0.1 (any free port) and prints "PORT <n>".  Each
 * connection gets a thread that reads HTTP/1.1 requests (Content-Length
 * bodies, "Expect: 100-continue" answered), checks "Authorization: Splunk
 * TOKEN" (default test-token; 403 otherwise), counts the envelopes of a
 * POST body (top-level JSON objects, each of which must start with
 * {"time": as deye-mitm writes them; 400 otherwise) and answers
 * 200 {"text":"Success","code":0} in one write, with TCP_NODELAY, on a
 * kept-alive connection.  It exists because tests/blackbox/hec_receiver.py
 * (a Python http.server) stalls about 40 ms on every kept-alive request (its
 * reply goes out in two writes: Nagle against delayed ACKs) and parses
 * every envelope, which caps it far below what the benchmark must measure.
 *
 * Commands on stdin, one per line, each answered with one line on stdout:
 *   count      "COUNT <envelopes> <requests> <time of the last counted
 *              envelope, CLOCK_MONOTONIC seconds> <largest batch>"
 *   hang 1     from now on, read each request and answer nothing until
 *              "hang 0"; then close those connections without an answer
 *              (the HEC test receiver's hang_all); envelopes of a hung
 *              request are not counted.  Answers "OK".
 *   hang 0     see above.  Answers "OK".
 *   send PORT N CONNS WINDOW BURST
 *              send N heartbeat frames (the fixture deye-micro-heartbeat-0x47,
 *              sequence numbers varied, checksums fixed) to 127.0.0.1:PORT
 *              (deye-mitm) over CONNS connections at once, BURST frames per
 *              send(), never more than WINDOW frames ahead of the envelopes
 *              counted here (so deye-mitm's event queue cannot overflow when
 *              WINDOW is below its capacity), then shut each connection down
 *              and wait for its EOF.  Answers, when done, "SENT <time of the
 *              first send> <time of the last EOF> <frames sent> <stalled>"
 *              (CLOCK_MONOTONIC seconds, the clock of Python's
 *              time.monotonic()); stalled is 1 when no envelope arrived for
 *              10 s while the window was full, and the rest was not sent.
 *              It resets the largest batch that count reports.
 * EOF on stdin ends it; so does its parent's death (PR_SET_PDEATHSIG).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define HEAD_MAX (16 * 1024)
#define BODY_MAX (64 << 20)
#define HB_LEN 14
#define STALL_S 10
#define IO_TIMEOUT_S 30

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t unhang = PTHREAD_COND_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static bool hanging;
static uint64_t envelopes, requests, max_batch;
static double last_t;
static const char *token = "test-token";

/* The sender's state, under lock. */
static uint64_t sent, window, base; /* base: envelopes before */
static bool stalled;
static double first_send, last_eof;

/* deye-micro-heartbeat-0x47 of tests/data/solarman-frames.txt */
static const uint8_t heartbeat[HB_LEN] = {
	0xa5, 0x01, 0x00, 0x10, 0x47, 0x02, 0xd7, 0xcb, 0xea, 0x91, 0xe6, 0x00,
	0x5d, 0x15,
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool
send_str(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

static bool
reply(int fd, int status, const char *text, const char *body)
{
	char buf[512];

	snprintf(buf, sizeof buf, "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json; charset=UTF-8\r\nContent-Length: %zu\r\n\r\n%s",
	    status, text, strlen(body), body);
	return send_str(fd, buf);
}

/* The number of envelopes in body, or -1 if it is not what deye-mitm
 * sends: top-level objects back to back, each starting {"time":. */
static long
count_envelopes(const char *p, size_t n)
{
	static const char start[] = "{\"time\":";
	long count = 0;
	int depth = 0;
	bool str = false, esc = false;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"') {
			str = true;
		} else if (c == '{' || c == '[') {
			if (depth == 0) {
				if (c != '{' || n - i < sizeof start - 1 ||
				    memcmp(p + i, start, sizeof start - 1) != 0)
					return -1;
				count++;
			}
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth < 0)
				return -1;
		} else if (depth == 0 && !isspace((unsigned char)c)) {
			return -1;
		}
	}
	return depth == 0 && !str ? count : -1;
}

/* The value of header name in head (NUL-terminated), or NULL. */
static const char *
header(const char *head, const char *name, char *val, size_t len)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l != NULL;
	    l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2, *e;

		if (strncasecmp(h, name, nl) != 0 || h[nl] != ':')
			continue;
		h += nl + 1;
		while (*h == ' ' || *h == '\t')
			h++;
		e = strstr(h, "\r\n");
		if (e == NULL)
			e = h + strlen(h);
		snprintf(val, len, "%.*s", (int)(e - h), h);
		return val;
	}
	return NULL;
}

static void *
conn_run(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(HEAD_MAX + 1);
	char *body = NULL;
	size_t have = 0, body_cap = 0;

	if (buf == NULL)
		goto out;
	for (;;) {
		char *end, val[256], want[300];
		size_t head_len, clen;
		long n;

		/* The head. */
		while ((end = have >= 4 ? memmem(buf, have, "\r\n\r\n", 4) : NULL)
		    == NULL) {
			ssize_t r;

			if (have == HEAD_MAX)
				goto out;
			r = recv(fd, buf + have, HEAD_MAX - have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			have += (size_t)r;
		}
		head_len = (size_t)(end - buf) + 4;
		end[2] = '\0';
		clen = header(buf, "Content-Length", val, sizeof val) ?
		    strtoul(val, NULL, 10) : 0;
		if (header(buf, "Transfer-Encoding", val, sizeof val) ||
		    clen > BODY_MAX) {
			reply(fd, 400, "Bad Request", "{\"text\":\"Bad Request\","
			    "\"code\":6}");
			goto out;
		}
		snprintf(want, sizeof want, "Splunk %s", token);
		bool auth = header(buf, "Authorization", val, sizeof val) &&
		    strcmp(val, want) == 0;
		bool post = strncmp(buf, "POST ", 5) == 0;
		if (header(buf, "Expect", val, sizeof val) &&
		    strcasecmp(val, "100-continue") == 0 &&
		    !send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"))
			goto out;

		/* The body: what came with the head, then the rest. */
		if (body_cap < clen + 1) {
			char *nb = realloc(body, clen + 1);
			if (nb == NULL)
				goto out;
			body = nb;
			body_cap = clen + 1;
		}
		size_t got = have - head_len < clen ? have - head_len : clen;
		memcpy(body, buf + head_len, got);
		memmove(buf, buf + head_len + got, have - head_len - got);
		have -= head_len + got;
		while (got < clen) {
			ssize_t r = recv(fd, body + got, clen - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			got += (size_t)r;
		}

		pthread_mutex_lock(&lock);
		if (hanging) {
			while (hanging)
				pthread_cond_wait(&unhang, &lock);
			pthread_mutex_unlock(&lock);
			goto out; /* no answer: the connection just closes */
		}
		pthread_mutex_unlock(&lock);

		if (!post) {
			if (!reply(fd, 404, "Not Found", "{\"text\":\"The requested "
			    "URL was not found on this server.\",\"code\":404}"))
				goto out;
			continue;
		}
		if (!auth) {
			if (!reply(fd, 403, "Forbidden", "{\"text\":\"Invalid token\","
			    "\"code\":4}"))
				goto out;
			continue;
		}
		n = count_envelopes(body, clen);
		if (n <= 0) {
			fprintf(stderr, "bench_hec: a body that is not envelopes: "
			    "%.200s\n", body);
			if (!reply(fd, 400, "Bad Request", "{\"text\":\"Invalid data "
			    "format\",\"code\":6,\"invalid-event-number\":0}"))
				goto out;
			continue;
		}
		pthread_mutex_lock(&lock);
		envelopes += (uint64_t)n;
		requests++;
		if ((uint64_t)n > max_batch)
			max_batch = (uint64_t)n;
		last_t = mono();
		pthread_cond_broadcast(&progress);
		pthread_mutex_unlock(&lock);
		if (!reply(fd, 200, "OK", "{\"text\":\"Success\",\"code\":0}"))
			goto out;
	}
out:
	close(fd);
	free(buf);
	free(body);
	return NULL;
}

static void *
accept_run(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		pthread_t t;
		int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "bench_hec: accept: %s\n", strerror(errno));
			exit(1);
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (pthread_create(&t, &attr, conn_run, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
	return NULL;
}

/* ---- the sender */

struct job {
	long port, n, burst;
	uint64_t seq0;
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
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Take k frames of the window; false when it stalled. */
static bool
window_take(long k)
{
	bool ok = true;

	pthread_mutex_lock(&lock);
	while (!stalled && sent + (uint64_t)k > envelopes - base + window) {
		uint64_t before = envelopes;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += STALL_S;
		if (pthread_cond_timedwait(&progress, &lock, &ts) == ETIMEDOUT &&
		    envelopes == before)
			stalled = true;
	}
	if (stalled)
		ok = false;
	else
		sent += (uint64_t)k;
	if (first_send == 0)
		first_send = mono();
	pthread_mutex_unlock(&lock);
	return ok;
}

static void *
job_run(void *arg)
{
	struct job *j = arg;
	uint8_t *buf = malloc((size_t)j->burst * HB_LEN), tmp[512];
	int fd = dial(j->port);

	pthread_barrier_wait(j->start);
	if (fd < 0 || buf == NULL) {
		fprintf(stderr, "bench_hec: send: connect: %s\n", strerror(errno));
		pthread_mutex_lock(&lock);
		stalled = true;
		pthread_mutex_unlock(&lock);
		goto out;
	}
	for (long i = 0; i < j->n; i += j->burst) {
		long k = j->n - i < j->burst ? j->n - i : j->burst;
		size_t len = (size_t)k * HB_LEN, off = 0;

		if (!window_take(k))
			break;
		for (long m = 0; m < k; m++)
			heartbeat_frame(buf + m * HB_LEN, j->seq0 + (uint64_t)(i + m));
		while (off < len) {
			ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "bench_hec: send: %s\n", strerror(errno));
				goto out;
			}
			off += (size_t)w;
		}
	}
	(void)shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t r = recv(fd, tmp, sizeof tmp, 0);

		if (r > 0 || (r < 0 && errno == EINTR))
			continue;
		break;
	}
	pthread_mutex_lock(&lock);
	last_eof = mono();
	pthread_mutex_unlock(&lock);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void
run_send(const char *args)
{
	long port, n, conns, win, burst;
	struct job *jobs;
	pthread_t *t;
	pthread_barrier_t start;

	if (sscanf(args, "%ld %ld %ld %ld %ld", &port, &n, &conns, &win,
	    &burst) != 5 || port <= 0 || port > 65535 || n < 1 || conns < 1 ||
	    conns > 1000 || burst < 1 || win < burst) {
		printf("ERR usage: send PORT N CONNS WINDOW BURST\n");
		return;
	}
	jobs = calloc((size_t)conns, sizeof *jobs);
	t = calloc((size_t)conns, sizeof *t);
	if (jobs == NULL || t == NULL) {
		printf("ERR out of memory\n");
		free(jobs);
		free(t);
		return;
	}
	pthread_mutex_lock(&lock);
	sent = 0;
	window = (uint64_t)win;
	base = envelopes;
	max_batch = 0;
	stalled = false;
	first_send = last_eof = 0;
	pthread_mutex_unlock(&lock);
	pthread_barrier_init(&start, NULL, (unsigned)conns);
	for (long i = 0; i < conns; i++) {
		jobs[i] = (struct job){port, n / conns + (i < n % conns), burst,
		    (uint64_t)i << 16, &start};
		if (pthread_create(&t[i], NULL, job_run, &jobs[i]) != 0) {
			fprintf(stderr, "bench_hec: cannot start a thread\n");
			exit(1);
		}
	}
	for (long i = 0; i < conns; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	pthread_mutex_lock(&lock);
	printf("SENT %.6f %.6f %" PRIu64 " %d\n", first_send, last_eof, sent,
	    stalled);
	pthread_mutex_unlock(&lock);
	free(jobs);
	free(t);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	char line[256];
	pthread_t t;
	int lfd, one = 1, ch;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "k:")) != -1) {
		switch (ch) {
		case 'k': token = optarg; break;
		default:
			fprintf(stderr, "usage: bench_hec [-k TOKEN]\n");
			return 2;
		}
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0) {
		fprintf(stderr, "bench_hec: listen: %s\n", strerror(errno));
		return 1;
	}
	if (pthread_create(&t, NULL, accept_run, (void *)(intptr_t)lfd) != 0) {
		fprintf(stderr, "bench_hec: cannot start a thread\n");
		return 1;
	}
	printf("PORT %u\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	while (fgets(line, sizeof line, stdin) != NULL) {
		if (strncmp(line, "send ", 5) == 0) {
			run_send(line + 5);
			fflush(stdout);
			continue;
		}
		pthread_mutex_lock(&lock);
		if (strncmp(line, "count", 5) == 0) {
			printf("COUNT %" PRIu64 " %" PRIu64 " %.6f %" PRIu64 "\n",
			    envelopes, requests, last_t, max_batch);
		} else if (strncmp(line, "hang ", 5) == 0) {
			hanging = line[5] == '1';
			if (!hanging)
				pthread_cond_broadcast(&unhang);
			printf("OK\n");
		} else {
			printf("ERR unknown command\n");
		}
		pthread_mutex_unlock(&lock);
		fflush(stdout);
	}
	return 0;
}
