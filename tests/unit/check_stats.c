/*
 * check_stats.c - the counters the metrics read: each module's stats hook
 * (journal backlog per cursor, a listener's connection and protocol counts,
 * the loggers' last frame times) against what was done to it.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "suites.h"
#include "pipeline/journal.h"

static char dir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
journal_start(void)
{
	struct conf *c = conf_new();
	char opt[128], err[256];

	ck_assert_ptr_nonnull(c);
	snprintf(opt, sizeof opt, "state_dir=%s", dir);
	ck_assert_int_eq(conf_set_option(c, opt, err, sizeof err), 0);
	/* 16 KiB segments: the records below fill several. */
	ck_assert_int_eq(conf_set_option(c, "spool_max=64K", err, sizeof err),
	    0);
	ck_assert_msg(journal_open(c, err, sizeof err) == 0, "%s", err);
	conf_free(c);
}

#define NREC 20
#define PAD 1000

/* Records of one size, so the estimate of a last run's segments is exact
 * too; each is 16 + this long. */
static size_t
append_one(int i)
{
	char json[PAD + 64];
	int n = snprintf(json, sizeof json, "{\"n\":%02d,\"pad\":\"%0*d\"}", i,
	    PAD, 0);

	ck_assert_int_eq(journal_append(1000 + i, json, (size_t)n), 0);
	journal_publish();
	return (size_t)n;
}

static void
assert_backlog(const char *name, uint64_t events, uint64_t bytes)
{
	struct journal_backlog b;

	ck_assert(journal_backlog(name, &b));
	ck_assert_uint_eq(b.events, events);
	ck_assert_uint_eq(b.bytes, bytes);
}

/* Read n records and commit after the last. */
static void
deliver(struct journal_reader *r, int n)
{
	struct journal_rec rec;

	for (int i = 0; i < n; i++)
		ck_assert_int_eq(journal_next(r, &rec, 0), 1);
	journal_commit(r, rec.next);
}

START_TEST(test_journal_backlog)
{
	struct journal_reader *a, *b;
	struct journal_backlog bl;
	uint64_t rec = 0;

	snprintf(dir, sizeof dir, "/tmp/deye-check-stats-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	journal_start();
	ck_assert_ptr_nonnull(a = journal_reader_open("a"));
	ck_assert_ptr_nonnull(b = journal_reader_open("b"));
	journal_start_deleting();
	assert_backlog("a", 0, 0);
	ck_assert(!journal_backlog("nobody", &bl));
	ck_assert_uint_eq(bl.events, 0);
	for (int i = 0; i < NREC; i++)
		rec = 16 + append_one(i);
	assert_backlog("a", NREC, NREC * rec);
	/* Across segment ends: a commit anywhere counts exactly. */
	deliver(a, 7);
	assert_backlog("a", NREC - 7, (NREC - 7) * rec);
	assert_backlog("b", NREC, NREC * rec);
	deliver(a, 6);
	assert_backlog("a", NREC - 13, (NREC - 13) * rec);
	/* A rewind reads again, but the backlog is what is committed. */
	journal_rewind(a);
	assert_backlog("a", NREC - 13, (NREC - 13) * rec);
	deliver(a, NREC - 13);
	assert_backlog("a", 0, 0);
	deliver(b, 3);
	journal_close();

	/* After a restart: b's cursor is read back, in the middle of a
	 * segment; the last segment is counted, the others estimated. */
	journal_start();
	ck_assert_ptr_nonnull(a = journal_reader_open("a"));
	ck_assert_ptr_nonnull(b = journal_reader_open("b"));
	journal_start_deleting();
	assert_backlog("a", 0, 0);
	assert_backlog("b", NREC - 3, (NREC - 3) * rec);
	append_one(NREC);
	assert_backlog("a", 1, rec);
	assert_backlog("b", NREC - 2, (NREC - 2) * rec);
	deliver(b, NREC - 2);
	assert_backlog("b", 0, 0);
	journal_close();
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("hooks");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_journal_backlog);
	suite_add_tcase(s, tc);
	return s;
}
