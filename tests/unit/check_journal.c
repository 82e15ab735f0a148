/*
 * check_journal.c - the journal's damage handling, on real files in a
 * temporary state_dir: ten records are written, bytes of the segment files
 * are changed, and a new reader after a restart must get every record but
 * the damaged ones, with the counts, a torn tail told from damage, and a
 * copy in damaged/ only for damage.  Then the cursors (resume after a
 * commit, rewind to it), appends after a torn tail, and what the journal
 * times, on the stub clock (stub_clock.c): the fsync interval and the
 * cursor-save failure line at most once a minute.
 */
#include <check.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "logcap.h"
#include "stub_clock.h"
#include "rmtree.h"
#include "suites.h"
#include "pipeline/journal.h"
#include "sinks/sink.h"

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
	rm_tree(dir);
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
	rm_tree(dir);
}
END_TEST

static void
new_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/deye-check-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
remove_dir(void)
{
	rm_tree(dir);
}

/* Records from..to-1, published. */
static void
append_range(int from, int to)
{
	char json[64];

	for (int i = from; i < to; i++) {
		int n = snprintf(json, sizeof json, "{\"n\":%d}", i);

		ck_assert_int_eq(journal_append(1000 + i, json, (size_t)n), 0);
	}
	journal_publish();
}

/* The next record's number, -1 when none; *next where the one after it
 * starts. */
static int
next_n(struct journal_reader *r, struct journal_pos *next)
{
	struct journal_rec rec;
	int n = -1;

	if (journal_next(r, &rec, 0) != 1)
		return -1;
	ck_assert_int_eq(sscanf(rec.json, "{\"n\":%d", &n), 1);
	ck_assert_int_eq(rec.time_ms, 1000 + n);
	if (next != NULL)
		*next = rec.next;
	return n;
}

/* A reader reopened under its name resumes after its last commit, also
 * after a restart; a new name starts at the oldest record. */
START_TEST(test_cursor_resume)
{
	struct journal_reader *r;
	struct journal_pos at;

	new_dir();
	open_journal(false);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	append_range(0, 10);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(next_n(r, &at), i);
	journal_commit(r, at);              /* 0-2 delivered */
	ck_assert_int_eq(next_n(r, NULL), 3); /* read, not committed */
	journal_reader_close(r);

	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(next_n(r, NULL), 3);
	journal_reader_close(r);
	journal_close();

	open_journal(false);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	for (int i = 3; i < 10; i++)
		ck_assert_int_eq(next_n(r, &at), i);
	ck_assert_int_eq(next_n(r, NULL), -1);
	journal_commit(r, at);
	journal_reader_close(r);
	r = journal_reader_open("b");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(next_n(r, NULL), 0);
	journal_close();

	open_journal(false);
	r = journal_reader_open("a"); /* all delivered: only what comes */
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(next_n(r, NULL), -1);
	append_range(10, 11);
	ck_assert_int_eq(next_n(r, NULL), 10);
	journal_close();
	remove_dir();
}
END_TEST

/*
 * A segment that can grow no more (EFBIG: RLIMIT_FSIZE here, a file system's
 * limit on a real disk) rolls at once, between two publishes: the records
 * written to it since the last publish must still reach every reader.
 */
START_TEST(test_efbig_roll_keeps_the_unpublished)
{
	struct journal_reader *r;
	struct rlimit rl;
	struct stat sb;
	char path[128], json[64];

	new_dir();
	open_journal(false);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	append_range(0, 3);                 /* published */
	for (int i = 3; i < 6; i++) {       /* written, not yet published */
		int n = snprintf(json, sizeof json, "{\"n\":%d}", i);

		ck_assert_int_eq(journal_append(1000 + i, json, (size_t)n), 0);
	}
	seg_file(1, path, sizeof path);
	ck_assert_int_eq(stat(path, &sb), 0);
	/* The next record does not fit in segment 1 any more. */
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = (rlim_t)sb.st_size + 8;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_int_eq(journal_append(1006, "{\"n\":6}", 7), 0);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	seg_file(2, path, sizeof path);
	ck_assert_int_eq(stat(path, &sb), 0); /* it rolled */
	journal_publish();
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(next_n(r, NULL), i);
	ck_assert_int_eq(next_n(r, NULL), -1);
	journal_close();
	remove_dir();
}
END_TEST

/* A failed delivery rewinds to the last commit, however far it read; a
 * commit behind the cursor moves nothing. */
START_TEST(test_commit_and_rewind)
{
	struct journal_reader *r;
	struct journal_pos at, at2;

	new_dir();
	open_journal(false);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	append_range(0, 10);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(next_n(r, i == 2 ? &at2 : &at), i);
	journal_rewind(r); /* nothing committed: from the start */
	ck_assert_int_eq(next_n(r, NULL), 0);
	journal_rewind(r);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(next_n(r, &at), i);
	journal_commit(r, at);
	for (int i = 3; i < 8; i++)
		ck_assert_int_eq(next_n(r, &at), i);
	journal_rewind(r);
	ck_assert_int_eq(next_n(r, NULL), 3);
	journal_commit(r, at); /* through 7 */
	journal_commit(r, at2); /* through 2: behind, ignored */
	journal_rewind(r);
	ck_assert_int_eq(next_n(r, NULL), 8);
	ck_assert_int_eq(next_n(r, &at), 9);
	journal_commit(r, at);
	journal_rewind(r);
	ck_assert_int_eq(next_n(r, NULL), -1);
	journal_reader_close(r);
	r = journal_reader_open("a"); /* the behind commit was not saved */
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(next_n(r, NULL), -1);
	journal_close();
	remove_dir();
}
END_TEST

/* The torn last record is cut off at open, and the next append follows
 * the last whole record: nothing damaged in between. */
START_TEST(test_torn_then_append)
{
	char path[128];
	struct journal_reader *r;
	struct journal_stats st;
	struct stat sb;
	off_t whole;

	new_dir();
	open_journal(false);
	append_range(0, 3);
	journal_close();
	seg_file(1, path, sizeof path);
	ck_assert_int_eq(stat(path, &sb), 0);
	whole = sb.st_size;
	{
		int fd = open(path, O_WRONLY | O_APPEND);
		/* A header and half a record: a crash mid-append. */
		static const char torn[] = "\x20\x00\x00\x00\x01\x02\x03\x04"
		    "\x00\x00\x00\x00\x00\x00\x00\x00{\"n\":";

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, torn, sizeof torn - 1),
		    (ssize_t)sizeof torn - 1);
		close(fd);
	}
	open_journal(false);
	journal_stats(&st);
	ck_assert_uint_eq(st.torn, 1);
	ck_assert_uint_eq(st.bytes, (uint64_t)whole);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_size, whole);
	append_range(3, 5);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(next_n(r, NULL), i);
	ck_assert_int_eq(next_n(r, NULL), -1);
	journal_stats(&st);
	ck_assert_uint_eq(st.damaged_records, 0);
	ck_assert_uint_eq(st.torn, 1);
	journal_close();
	remove_dir();
}
END_TEST

/* journal_fsync=2s: what was published waits for its fsync until two
 * seconds after the last one, whatever comes in between; the writer is
 * told how long. */
START_TEST(test_fsync_interval)
{
	struct conf *c = conf_new(sinks_sections());
	char opt[128], err[256];
	const int64_t t0 = 1000000;

	new_dir();
	clock_stub_set(t0, 1700000000000);
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	ck_assert_int_eq(conf_set_option(c, "journal_fsync=2s", err,
	    sizeof err), 0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
	ck_assert_int_eq(journal_publish(), -1);     /* nothing written */
	ck_assert_int_eq(journal_append(1, "{}", 2), 0);
	ck_assert_int_eq(journal_publish(), 2000);
	clock_stub_advance(1500);
	ck_assert_int_eq(journal_append(2, "{}", 2), 0);
	ck_assert_int_eq(journal_publish(), 500);    /* not pushed back */
	clock_stub_advance(499);
	ck_assert_int_eq(journal_publish(), 1);
	clock_stub_advance(1);
	ck_assert_int_eq(journal_publish(), -1);     /* synced now */
	ck_assert_int_eq(journal_publish(), -1);
	clock_stub_advance(700);
	ck_assert_int_eq(journal_append(3, "{}", 2), 0);
	ck_assert_int_eq(journal_publish(), 1300);   /* from that fsync */
	clock_stub_advance(5000);
	ck_assert_int_eq(journal_publish(), -1);
	clock_stub_off();
	journal_close();
	remove_dir();
}
END_TEST

/* A cursor that cannot be saved: delivery goes on, the failure is logged
 * at once, then at most once a minute with the count, and its recovery
 * once. */
START_TEST(test_cursor_save_failure)
{
	struct journal_reader *r;
	struct journal_pos at;
	char path[128];
	const int64_t t0 = 1000000;

	new_dir();
	snprintf(path, sizeof path, "%s/stderr", dir);
	logcap_start(path);
	clock_stub_set(t0, 1700000000000);
	open_journal(false);
	r = journal_reader_open("a");
	ck_assert_ptr_nonnull(r);
	append_range(0, 6);
	/* The save's temporary file cannot be made. */
	snprintf(path, sizeof path, "%s/journal/a.cursor.tmp", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);

	ck_assert_int_eq(next_n(r, &at), 0);
	journal_commit(r, at);
	ck_assert_int_eq(logcap_count("journal cursor"), 1);
	ck_assert_int_eq(logcap_count("a.cursor: Is a directory (1 failed "
	    "attempt(s); delivery goes on"), 1);
	clock_stub_advance(1000);
	ck_assert_int_eq(next_n(r, &at), 1);
	journal_commit(r, at);
	clock_stub_advance(58999);
	ck_assert_int_eq(next_n(r, &at), 2);
	journal_commit(r, at);
	ck_assert_int_eq(logcap_count("journal cursor"), 1);
	clock_stub_advance(1); /* a minute after the line */
	ck_assert_int_eq(next_n(r, &at), 3);
	journal_commit(r, at);
	ck_assert_int_eq(logcap_count("journal cursor"), 2);
	ck_assert_int_eq(logcap_count("a.cursor: Is a directory (3 failed "
	    "attempt(s); delivery goes on"), 1);
	ck_assert_int_eq(next_n(r, &at), 4); /* delivery went on */

	ck_assert_int_eq(rmdir(path), 0);
	journal_commit(r, at);
	ck_assert_int_eq(logcap_count("journal cursor"), 3);
	ck_assert_int_eq(logcap_count("a.cursor: saved again\n"), 1);
	journal_reader_close(r);
	r = journal_reader_open("a"); /* the last save holds */
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(next_n(r, NULL), 5);
	clock_stub_off();
	logcap_stop();
	journal_close();
	remove_dir();
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
	tc = tcase_create("cursor");
	tcase_add_test(tc, test_cursor_resume);
	tcase_add_test(tc, test_efbig_roll_keeps_the_unpublished);
	tcase_add_test(tc, test_commit_and_rewind);
	tcase_add_test(tc, test_torn_then_append);
	suite_add_tcase(s, tc);
	tc = tcase_create("timing");
	tcase_add_test(tc, test_fsync_interval);
	tcase_add_test(tc, test_cursor_save_failure);
	suite_add_tcase(s, tc);
	return s;
}
