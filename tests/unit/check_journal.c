/*
 * check_journal.c - the journal's damage handling, on real files in a
 * temporary state_dir: ten records are written, bytes of the segment files
 * are changed, and a new reader after a restart must get every record but
 * the damaged ones, with the counts, a torn tail told from damage, and a
 * copy in damaged/ only for damage.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "sinks/sink.h"
#include "suites.h"
#include "pipeline/journal.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NREC 10
#define PAD 2000

enum change { OVERWRITE, TRUNCATE };

static const struct {
	const char *name;
	bool small;       /* 16 KiB segments: records 0-8, then 9 */
	int rec;          /* the record changed, at... */
	long at;          /* ...this offset in it (negative: from its end) */
	enum change how;
	const char *bytes;
	long nbytes;      /* TRUNCATE: bytes cut off the end */
	unsigned lost;    /* bit n: record n is not read back */
	uint64_t damaged; /* records counted as damaged */
	uint64_t torn;
	bool copy;        /* damaged/ holds a copy of the segment */
} cases[] = {
	{"payload", false, 3, 100, OVERWRITE, "\xff\xff\xff\xff\xde\xad\xbe\xef",
	    8, 1u << 3, 1, 0, true},
	{"across two records", false, 3, -4, OVERWRITE,
	    "\xff\xff\xff\xff\xde\xad\xbe\xef", 8, 3u << 3, 2, 0, true},
	{"length", false, 5, 0, OVERWRITE, "\x00\x00\x00\x70", 4, 1u << 5, 1, 0,
	    true},
	{"not the last segment", true, 4, 50, OVERWRITE, "\x00\x00\x00\x00", 4,
	    1u << 4, 1, 0, true},
	{"torn tail", false, 9, 0, TRUNCATE, NULL, 5, 1u << 9, 0, 1, false},
	{"damaged tail", false, 9, 40, OVERWRITE, "\x01", 1, 1u << 9, 1, 0, true},
	{"first record", true, 0, 0, OVERWRITE, "\xde\xad\xbe\xef\xde\xad\xbe\xef",
	    8, 1u << 0, 1, 0, true},
};

static char dir[64];
static long offs[NREC], sizes[NREC];
static int segno[NREC];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
open_journal(bool small)
{
	struct conf *c = conf_new(sinks_sections());
	char opt[128], err[256];

	ck_assert_ptr_nonnull(c);
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, small ? "spool_max=64K" :
	    "spool_max=256M", err, sizeof err), 0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
}

/* The records a new reader gets, as a bit set of their numbers. */
static unsigned
read_all(struct journal_reader *r)
{
	struct journal_rec rec;
	unsigned got = 0;

	while (journal_next(r, &rec, 0) == 1) {
		int n = -1;

		ck_assert_int_eq(sscanf(rec.json, "{\"n\":%d", &n), 1);
		ck_assert_int_ge(n, 0);
		ck_assert_int_lt(n, NREC);
		got |= 1u << n;
	}
	return got;
}

static void
seg_file(int no, char *buf, size_t len)
{
	snprintf(buf, len, "%s/journal/%020d.seg", dir, no);
}

START_TEST(test_damage)
{
	char json[PAD + 64], path[128];
	struct journal_reader *r;
	struct journal_stats st;
	struct stat sb;
	long at;
	int fd;

	snprintf(dir, sizeof dir, "/tmp/deye-check-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	open_journal(cases[_i].small);
	r = journal_reader_open("t"); /* holds the records */
	ck_assert_ptr_nonnull(r);
	journal_start_deleting();
	for (int i = 0, seg = 1; i < NREC; i++) {
		int n = snprintf(json, sizeof json, "{\"n\":%d,\"pad\":\"%0*d\"}",
		    i, PAD, 0);

		seg_file(seg, path, sizeof path);
		offs[i] = stat(path, &sb) == 0 ? (long)sb.st_size : 0;
		segno[i] = seg;
		sizes[i] = 16 + n;
		ck_assert_int_eq(journal_append(1000 + i, json, (size_t)n), 0);
		if (stat(path, &sb) != 0 || sb.st_size == offs[i]) {
			segno[i] = ++seg; /* it rolled before this one */
			offs[i] = 0;
		}
		journal_publish();
	}
	ck_assert_uint_eq(read_all(r), (1u << NREC) - 1);
	journal_close();

	seg_file(segno[cases[_i].rec], path, sizeof path);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	at = offs[cases[_i].rec] + (cases[_i].at >= 0 ? cases[_i].at :
	    sizes[cases[_i].rec] + cases[_i].at);
	if (cases[_i].how == OVERWRITE)
		ck_assert_int_eq(pwrite(fd, cases[_i].bytes,
		    (size_t)cases[_i].nbytes, at), cases[_i].nbytes);
	else
		ck_assert_int_eq(ftruncate(fd, offs[cases[_i].rec] +
		    sizes[cases[_i].rec] - cases[_i].nbytes), 0);
	close(fd);

	open_journal(cases[_i].small);
	r = journal_reader_open("u"); /* no cursor: from the oldest */
	ck_assert_ptr_nonnull(r);
	journal_start_deleting();
	ck_assert_uint_eq(read_all(r), ((1u << NREC) - 1) & ~cases[_i].lost);
	journal_rewind(r); /* met again: not counted again */
	ck_assert_uint_eq(read_all(r), ((1u << NREC) - 1) & ~cases[_i].lost);
	journal_stats(&st);
	ck_assert_uint_eq(st.damaged_records, cases[_i].damaged);
	ck_assert_uint_eq(st.torn, cases[_i].torn);
	snprintf(path, sizeof path, "%s/damaged/%020d.seg", dir,
	    segno[cases[_i].rec]);
	ck_assert_int_eq(access(path, F_OK) == 0, cases[_i].copy);
	journal_close();
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* A second journal_open on a locked state_dir names the holder. */
START_TEST(test_lock)
{
	char err[512], want[128];
	struct conf *c = conf_new(sinks_sections());
	int st;
	pid_t pid;

	snprintf(dir, sizeof dir, "/tmp/deye-check-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	open_journal(false);
	/* flock() locks belong to the open file: a child opening it anew
	 * competes like a second process. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Its copy of the parent's journal, lock fd included, goes:
		 * the parent's open file still holds the lock. */
		journal_close();
		snprintf(want, sizeof want, "state_dir=%s", dir);
		conf_set_option(c, want, err, sizeof err);
		snprintf(want, sizeof want, "state_dir %s is in use by another "
		    "deye-mitm (pid %ld)", dir, (long)getppid());
		_exit(journal_open(c, err, sizeof err) == -1 &&
		    strcmp(err, want) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	conf_free(c);
	journal_close();
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

Suite *
journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("damage");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_damage, 0, NELEM(cases));
	tcase_add_test(tc, test_lock);
	suite_add_tcase(s, tc);
	return s;
}
