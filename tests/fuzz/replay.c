/*
 * replay.c - run a fuzz harness over saved inputs without libFuzzer (curl's
 * and jansson's standalone fuzz drivers do the same), so `make check`, the
 * sanitizer builds and valgrind all replay the corpus and the regressions.
 *
 *   replay DIR|FILE ...
 *
 * Every regular file named, or directly inside a directory named, is one
 * input; names starting with '.' are skipped.  A broken invariant aborts,
 * as under the fuzzer.  Exit status 1 when no input was found at all (a
 * mistyped corpus path must not pass as "nothing failed").
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
run_file(const char *path, size_t *ran)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = -1;

	if (fp == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			uint8_t *nbuf = realloc(buf, ncap);

			if (nbuf == NULL) {
				fprintf(stderr, "replay: %s: out of memory\n", path);
				goto fail;
			}
			buf = nbuf;
			cap = ncap;
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(fp)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		goto fail;
	}
	/* An exact-size copy, so ASan sees a read past the input. */
	{
		uint8_t *exact = malloc(len > 0 ? len : 1);

		if (exact == NULL)
			goto fail;
		memcpy(exact, buf, len);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	(*ran)++;
	rc = 0;
fail:
	free(buf);
	fclose(fp);
	return rc;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The files of one directory, in name order so runs repeat. */
static int
run_dir(const char *dir, size_t *ran)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof *nn);

			if (nn == NULL) {
				rc = -1;
				goto out;
			}
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(e->d_name)) == NULL) {
			rc = -1;
			goto out;
		}
		n++;
	}
	if (n > 0)
		qsort(names, n, sizeof *names, compare_names);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		int w = snprintf(path, sizeof path, "%s/%s", dir, names[i]);

		if (w < 0 || (size_t)w >= sizeof path) {
			fprintf(stderr, "replay: %s/%s: name too long\n", dir,
			    names[i]);
			rc = -1;
			continue;
		}
		if (stat(path, &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
			rc = -1;
			continue;
		}
		if (S_ISREG(st.st_mode) && run_file(path, ran) != 0)
			rc = -1;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int
main(int argc, char **argv)
{
	size_t ran = 0;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: replay DIR|FILE ...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			rc = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &ran) != 0)
				rc = 1;
		} else if (run_file(argv[i], &ran) != 0) {
			rc = 1;
		}
	}
	printf("replay: %zu inputs ran\n", ran);
	if (ran == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	return rc;
}
