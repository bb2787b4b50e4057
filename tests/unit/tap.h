/* tap: a tiny TAP producer for the C unit tests, read by automake's
 * tap-driver.sh.  One TEST() per behaviour, named for what it proves;
 * CHECK() records a failure with file and line and goes on. */
#ifndef PEERCLING_TAP_H
#define PEERCLING_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failed_total, tap_cur_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("# %s:%d: check failed: %s\n", __FILE__,         \
			       __LINE__, #cond);                               \
			tap_cur_failed = 1;                                    \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		if (_a != _b) {                                                \
			printf("# %s:%d: %s == %lld, expected %s == %lld\n",    \
			       __FILE__, __LINE__, #a, _a, #b, _b);            \
			tap_cur_failed = 1;                                    \
		}                                                              \
	} while (0)

/* Runs fn as one test case and prints its TAP line. */
#define TEST(fn)                                                               \
	do {                                                                   \
		tap_cur_failed = 0;                                            \
		fn();                                                          \
		tap_count++;                                                   \
		if (tap_cur_failed)                                            \
			tap_failed_total++;                                    \
		printf("%s %d - %s\n", tap_cur_failed ? "not ok" : "ok",       \
		       tap_count, #fn);                                        \
		fflush(stdout);                                                \
	} while (0)

#define TAP_DONE()                                                             \
	do {                                                                   \
		printf("1..%d\n", tap_count);                                  \
		return tap_failed_total ? 1 : 0;                               \
	} while (0)

/* A fresh temporary directory for one test; *out malloc'd. */
static inline char *tap_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	snprintf(tmpl, sizeof(tmpl), "%s/peercling-test-XXXXXX", base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static inline void tap_rmrf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

#endif
