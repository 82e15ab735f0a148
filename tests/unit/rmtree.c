/* rmtree.c - remove a test's temporary directory and all in it. */
#include "rmtree.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void
rm_tree(const char *dir)
{
	(void)nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
