/* rmtree.h - remove a test's temporary directory and all in it. */
#ifndef DEYE_TEST_RMTREE_H
#define DEYE_TEST_RMTREE_H

/* Like rm -rf dir; symbolic links are removed, not followed. */
void rm_tree(const char *dir);

#endif
