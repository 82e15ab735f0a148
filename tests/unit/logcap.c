/* logcap.c - see logcap.h. */
#include "logcap.h"

#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int fd = -1, saved = -1;
static char buf[256 * 1024];

void
logcap_start(const char *path)
{
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
	    0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
}

void
logcap_stop(void)
{
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (fd >= 0)
		close(fd);
	fd = saved = -1;
}

const char *
logcap_read(char *b, size_t len)
{
	ssize_t n = pread(fd, b, len - 1, 0);

	ck_assert_int_ge(n, 0);
	b[n] = '\0';
	return b;
}

int
logcap_count(const char *s)
{
	const char *p = logcap_read(buf, sizeof buf);
	int n = 0;

	while ((p = strstr(p, s)) != NULL) {
		n++;
		p += strlen(s);
	}
	return n;
}
