/*
 * bench_echo - a fast echo server for `make bench` (tests/bench/bench.py).
 *
 *   bench_echo [PORT]
 *
 * Listens on 127.0.0.1:PORT (0 or none: any free port), prints "PORT <n>"
 * on stdout once listening, then echoes every byte back on every connection
 * until it is killed.  One thread, level-triggered epoll, non-blocking
 * sockets, so that it is never the bottleneck of a relay benchmark.  A
 * connection is closed when its peer's EOF is read; reading stops while an
 * echo is still pending, so everything received has been echoed by then.
 * It dies with its parent (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#define BUF_SIZE (16 * 1024)
#define MAX_EVENTS 256

struct conn {
	int fd;
	size_t off;    /* next byte of buf to send */
	size_t len;    /* bytes in buf */
	unsigned char buf[BUF_SIZE];
};

static int lfd = -1; /* its epoll data.ptr is NULL */

static void
die(const char *what)
{
	fprintf(stderr, "bench_echo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
conn_close(int ep, struct conn *c)
{
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void
conn_want(int ep, struct conn *c, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl mod");
}

/* Send what is pending; 0 all sent, 1 would block, -1 the peer is gone. */
static int
conn_flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off,
		    MSG_NOSIGNAL);

		if (w > 0) {
			c->off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		return -1;
	}
	c->off = c->len = 0;
	return 0;
}

static void
conn_event(int ep, struct conn *c, unsigned events)
{
	int r;

	if (events & EPOLLOUT) {
		r = conn_flush(c);
		if (r < 0) {
			conn_close(ep, c);
			return;
		}
		if (r == 0)
			conn_want(ep, c, EPOLLIN);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);

		if (n < 0 && (errno == EINTR || errno == EAGAIN ||
		    errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(ep, c);
			return;
		}
		c->off = 0;
		c->len = (size_t)n;
		r = conn_flush(c);
		if (r < 0)
			conn_close(ep, c);
		else if (r > 0)
			conn_want(ep, c, EPOLLOUT);
	}
}

static void
accept_all(int ep)
{
	for (;;) {
		struct epoll_event ev;
		struct conn *c;
		int one = 1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				fprintf(stderr, "bench_echo: accept: %s\n",
				    strerror(errno));
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if ((c = malloc(sizeof *c)) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->off = c->len = 0;
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
		}
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	struct epoll_event ev, evs[MAX_EVENTS];
	int ep, one = 1;
	long port = 0;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 2 || (argc == 2 && ((port = strtol(argv[1], NULL, 10)) < 0 ||
	    port > 65535))) {
		fprintf(stderr, "usage: bench_echo [PORT]\n");
		return 2;
	}
	raise_nofile();

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0)
		die("bind");
	if (listen(lfd, 4096) != 0)
		die("listen");
	if (getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0)
		die("getsockname");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
		die("epoll_ctl add");
	printf("PORT %u\n", (unsigned)ntohs(sin.sin_port));
	if (fflush(stdout) != 0)
		die("stdout");

	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				accept_all(ep);
			else
				conn_event(ep, evs[i].data.ptr, evs[i].events);
		}
	}
}
