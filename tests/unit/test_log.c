/* test_log: a log file stays bounded: past its size it moves to PATH.1 (the
 * one before is dropped) and starts again, losing no line in between. */
#include "config.h"
#include "core/log.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define LOG_MODULE "test"

static long size_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Lines "line N" in path, in order, appended to seen[]; how many. */
static int lines_in(const char *path, int *seen, int max)
{
	FILE *f = fopen(path, "r");
	char buf[512];
	int n = 0, k;
	if (!f)
		return 0;
	while (n < max && fgets(buf, sizeof(buf), f)) {
		const char *p = strstr(buf, "line ");
		if (p && sscanf(p, "line %d", &k) == 1)
			seen[n++] = k;
	}
	fclose(f);
	return n;
}

static void a_full_log_moves_aside_and_starts_again(void)
{
	char *dir = tap_tmpdir(), path[512], old[520];
	snprintf(path, sizeof(path), "%s/log", dir);
	snprintf(old, sizeof(old), "%s/log.1", dir);
	CHECK_EQ(log_open(path, LOG_INFO), 0);
	log_set_rotate_bytes(4000);
	for (int i = 0; i < 1000; i++)
		log_info("line %d of a daemon that talks a lot", i);
	log_close();
	/* Each file stays within the budget plus one line. */
	CHECK(size_of(path) > 0 && size_of(path) < 4100);
	CHECK(size_of(old) >= 4000 && size_of(old) < 4100);
	/* The newest lines are all there, in order, across both files. */
	static int seen[2000];
	int n = lines_in(old, seen, 2000);
	n += lines_in(path, seen + n, 2000 - n);
	CHECK(n > 50);
	CHECK_EQ(seen[n - 1], 999);
	for (int i = 1; i < n; i++)
		CHECK_EQ(seen[i], seen[i - 1] + 1);
	/* Reopening appends and counts what is already there: with a budget
	 * just above it, the next line fills the file and moves it aside. */
	long before = size_of(path);
	CHECK_EQ(log_open(path, LOG_INFO), 0);
	log_set_rotate_bytes(before + 10);
	log_info("line %d after a restart", 1000);
	log_close();
	CHECK_EQ(size_of(path), 0);
	n = lines_in(old, seen, 2000);
	CHECK(n > 0 && seen[n - 1] == 1000);
	log_set_rotate_bytes(LOG_ROTATE_BYTES);
	tap_rmrf(dir);
	free(dir);
}

static void lines_below_the_level_are_not_written(void)
{
	char *dir = tap_tmpdir(), path[512];
	snprintf(path, sizeof(path), "%s/log", dir);
	CHECK_EQ(log_open(path, LOG_WARN), 0);
	log_info("line 1 not wanted");
	log_warn("line 2 wanted");
	log_close();
	int seen[4];
	CHECK_EQ(lines_in(path, seen, 4), 1);
	CHECK_EQ(seen[0], 2);
	tap_rmrf(dir);
	free(dir);
}

int main(void)
{
	TEST(a_full_log_moves_aside_and_starts_again);
	TEST(lines_below_the_level_are_not_written);
	TAP_DONE();
}
