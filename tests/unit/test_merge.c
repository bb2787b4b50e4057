/* test_merge: a conflict name reads back as the name it stands beside, the
 * device and the date; names that only look like one do not. */
#include "config.h"
#include "sync/merge.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* 2026-11-27 12:00 UTC */
#define WHEN 1795780800

static int round_trip(const char *path, const char *want_name)
{
	char *named = NULL, *orig = NULL, dev[9], date[11];
	if (merge_conflict_name(&named, path, "0123456789abcdef", WHEN) != 0)
		return 0;
	const char *slash = strrchr(named, '/');
	const char *name = slash ? slash + 1 : named;
	int ok = !strcmp(name, want_name) && merge_conflict_parse(name, &orig, dev, date) == 1;
	const char *pslash = strrchr(path, '/');
	ok = ok && !strcmp(orig, pslash ? pslash + 1 : path) && !strcmp(dev, "01234567") &&
	     !strcmp(date, "2026-11-27");
	free(named);
	free(orig);
	return ok;
}

static void a_conflict_name_reads_back(void)
{
	CHECK(round_trip("notes/todo.txt", "todo (conflict from 01234567 2026-11-27).txt"));
	CHECK(round_trip("Makefile", "Makefile (conflict from 01234567 2026-11-27)"));
	CHECK(round_trip("a.tar.gz", "a.tar (conflict from 01234567 2026-11-27).gz"));
	CHECK(round_trip(".bashrc", ".bashrc (conflict from 01234567 2026-11-27)"));
	/* A conflict copy of a conflict copy stands beside the first. */
	char *orig = NULL, dev[9], date[11];
	CHECK_EQ(merge_conflict_parse("x (conflict from aaaa 2026-01-02) (conflict from bbbb "
				      "2026-03-04).txt",
				      &orig, dev, date),
		 1);
	CHECK(orig && !strcmp(orig, "x (conflict from aaaa 2026-01-02).txt"));
	CHECK(!strcmp(dev, "bbbb") && !strcmp(date, "2026-03-04"));
	free(orig);
}

static void names_that_only_look_like_one_are_not(void)
{
	static const char *const not_ones[] = {
		"todo.txt",
		"(conflict from 01234567 2026-11-27).txt", /* nothing it stands beside */
		"todo (conflict from 0123456789 2026-11-27).txt",
		"todo (conflict from 01234567 2026-1-27).txt",
		"todo (conflict from 01234567 2026-11-27.txt",
		"todo (conflict from 01234567 2026-11-27)x",
		"todo (conflict from  2026-11-27).txt",
		"todo (conflict from 01234567 20261127).txt",
	};
	for (size_t i = 0; i < sizeof(not_ones) / sizeof(*not_ones); i++) {
		char *orig = NULL, dev[9], date[11];
		int r = merge_conflict_parse(not_ones[i], &orig, dev, date);
		if (r != 0)
			printf("# taken for a conflict name: %s\n", not_ones[i]);
		CHECK_EQ(r, 0);
		free(orig);
	}
}

int main(void)
{
	TEST(a_conflict_name_reads_back);
	TEST(names_that_only_look_like_one_are_not);
	TAP_DONE();
}
