/*
 * envoy_spool.c - spool files that a reader never sees half-written: each goes
 * to a hidden temporary name, is fsynced, and is renamed into place; the
 * directory is fsynced so the name survives a power cut too.  Names are
 * ours (time and random), never taken from the input.
 */
#include "proto/envoy_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

void
envoy_spool_name(char *buf, size_t len, time_t when)
{
	struct tm tm;
	uint32_t r = 0;
	char t[32];

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)when ^ (uint32_t)getpid() << 16 ^ (uint32_t)(uintptr_t)buf;
	localtime_r(&when, &tm);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s-%08x", t, (unsigned)r);
}

int
envoy_spool_write(const char *dir, const char *name, const char *suffix,
    const void *data, size_t n)
{
	char path[4096], tmp[4096];
	const char *p = data;
	int fd, dfd, e;

	if (snprintf(path, sizeof path, "%s/%s.%s", dir, name, suffix) >=
	    (int)sizeof path || snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp", dir,
	    name, suffix) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0640) != 0) /* whatever the umask */
		goto fail;
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		p += w;
		n -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	e = close(fd);
	fd = -1;
	if (e != 0 || rename(tmp, path) != 0)
		goto fail;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e;
	return -1;
}
