/*
 * slowdisk.c - an LD_PRELOAD shim for the slow-disk tests: write, writev,
 * pwrite, fsync and fdatasync on a file under $SLOWDISK_DIR (the directory
 * itself included) sleep $SLOWDISK_MS milliseconds before the real call.
 * Other descriptors (sockets, pipes, other files) are not touched.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void
maybe_sleep(int fd)
{
	const char *dir = getenv("SLOWDISK_DIR"), *ms = getenv("SLOWDISK_MS");
	char link[64], path[4096];
	size_t n;
	ssize_t k;
	int e = errno;

	if (dir == NULL || ms == NULL || (n = strlen(dir)) == 0)
		return;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	k = readlink(link, path, sizeof path - 1);
	if (k >= 0) {
		path[k] = '\0';
		if (strncmp(path, dir, n) == 0 && (path[n] == '\0' ||
		    path[n] == '/')) {
			long v = strtol(ms, NULL, 10);
			struct timespec ts = {v / 1000, (v % 1000) * 1000000L};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
	}
	errno = e;
}

/* The next definition of name, looked up once (a race only repeats it). */
static void *
real(const char *name, void **cache)
{
	if (*cache == NULL)
		*cache = dlsym(RTLD_NEXT, name);
	return *cache;
}

typedef ssize_t write_fn(int, const void *, size_t);
typedef ssize_t writev_fn(int, const struct iovec *, int);
typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);
typedef ssize_t pwrite64_fn(int, const void *, size_t, off64_t);
typedef int sync_fn(int);

ssize_t
write(int fd, const void *buf, size_t n)
{
	static void *p;
	write_fn *f = (write_fn *)real("write", &p);

	maybe_sleep(fd);
	return f(fd, buf, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	static void *p;
	writev_fn *f = (writev_fn *)real("writev", &p);

	maybe_sleep(fd);
	return f(fd, iov, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static void *p;
	pwrite_fn *f = (pwrite_fn *)real("pwrite", &p);

	maybe_sleep(fd);
	return f(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	static void *p;
	pwrite64_fn *f = (pwrite64_fn *)real("pwrite64", &p);

	maybe_sleep(fd);
	return f(fd, buf, n, off);
}

int
fsync(int fd)
{
	static void *p;
	sync_fn *f = (sync_fn *)real("fsync", &p);

	maybe_sleep(fd);
	return f(fd);
}

int
fdatasync(int fd)
{
	static void *p;
	sync_fn *f = (sync_fn *)real("fdatasync", &p);

	maybe_sleep(fd);
	return f(fd);
}
