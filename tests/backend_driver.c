/* backend_driver: exercises any cloud backend through backend.h only and
 * prints TAP, so that one program tests file://, WebDAV and S3 alike (the
 * integration tests run it against real servers and through a fault proxy).
 *
 *   backend_driver URL
 *
 * Normal mode: round trips of 0-byte, 1-byte and 1 MiB objects, -ENOENT,
 * nested and oddly named keys, a 300-key listing over two levels, head
 * replacement, delete, and 8 threads putting and getting 50 objects each.
 * Everything is written under a fresh prefix (DRIVER_PREFIX, default
 * drv-PID-TIME/) and deleted at the end.
 *
 * DRIVER_EXPECT_DOWN=1: the cloud is expected to fail.  One operation
 * (DRIVER_DOWN_OP: get (default), check or put; on key DRIVER_KEY) must
 * fail with a transport errno (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH,
 * -EIO), or with exactly DRIVER_EXPECT_ERRNO (EIO, EACCES, ENXIO, ...) when
 * set, within the time the configured timeouts allow; the elapsed time and
 * error_last() are printed.
 *
 * Settings: PEERCLING_TEST_USER / PEERCLING_TEST_PASSWORD (WebDAV),
 * DRIVER_CONNECT_TIMEOUT_MS, DRIVER_TIMEOUT_MS, DRIVER_RETRIES. */
#include "config.h"

#include "core/error.h"
#include "sync/backend.h"
#include "unit/tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static struct backend *B;
static struct backend_config cfg;
static char P[128]; /* the run's prefix, ending in '/' */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Deterministic, distinct contents for object n. */
static uint8_t *make_data(unsigned n, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t x = n * 2654435761u + 12345;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static char *key(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *key(const char *fmt, ...)
{
	static __thread char buf[8][512];
	static __thread int slot;
	char *k = buf[slot++ & 7];
	int n = snprintf(k, 512, "%s", P);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k + n, 512 - (size_t)n, fmt, ap);
	va_end(ap);
	return k;
}

/* put then get of len bytes; 1 when the bytes come back the same. */
static int round_trip(const char *k, unsigned seed, size_t len)
{
	uint8_t *d = make_data(seed, len), *out = NULL;
	size_t n = 0;
	int rc = backend_put(B, k, d, len);
	if (rc)
		printf("# put %s: %d %s\n", k, rc, error_last());
	if (!rc && (rc = backend_get(B, k, &out, &n)))
		printf("# get %s: %d %s\n", k, rc, error_last());
	int same = !rc && n == len && (len == 0 || !memcmp(out, d, len));
	if (!rc && !same)
		printf("# %s: got %zu bytes back, put %zu\n", k, n, len);
	free(d);
	free(out);
	return same;
}

/* ---- normal mode ------------------------------------------------------- */

static void check_succeeds(void)
{
	int rc = backend_check(B);
	if (rc)
		printf("# backend_check: %d %s\n", rc, error_last());
	CHECK_EQ(rc, 0);
}

static void round_trip_sizes(void)
{
	CHECK(round_trip(key("objects/zero"), 1, 0));
	CHECK(round_trip(key("objects/one"), 2, 1));
	CHECK(round_trip(key("objects/mib"), 3, 1 << 20));
	CHECK_EQ(backend_exists(B, key("objects/mib")), 1);
}

/* Ranged reads, as packs are read: inside, at both ends, the whole
 * object; past the end is an error, never a short body taken as data. */
static void ranges(void)
{
	size_t len = 300000;
	uint8_t *d = make_data(9, len), *out = NULL;
	const char *k = key("packs/ranged");
	CHECK_EQ(backend_put(B, k, d, len), 0);
	static const struct { uint64_t off; size_t len; } r[] = {
		{0, 1}, {0, 65536}, {12345, 70000}, {299999, 1}, {234464, 65536}, {0, 300000},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		int rc = backend_get_range(B, k, r[i].off, r[i].len, &out);
		if (rc)
			printf("# range %llu+%zu: %d %s\n", (unsigned long long)r[i].off, r[i].len, rc,
			       error_last());
		CHECK(!rc && out && !memcmp(out, d + r[i].off, r[i].len));
		free(out);
		out = NULL;
	}
	CHECK(backend_get_range(B, k, 299000, 2000, &out) < 0);
	CHECK(out == NULL);
	CHECK_EQ(backend_get_range(B, key("packs/missing"), 0, 10, &out), -ENOENT);
	free(d);
}

static void missing_is_enoent(void)
{
	uint8_t *out = NULL;
	size_t n = 0;
	CHECK_EQ(backend_get(B, key("objects/missing"), &out, &n), -ENOENT);
	CHECK_EQ(backend_get(B, key("nodir/sub/missing"), &out, &n), -ENOENT);
	CHECK(out == NULL);
	CHECK_EQ(backend_exists(B, key("objects/missing")), 0);
}

static void nested_and_odd_keys(void)
{
	CHECK(round_trip(key("nest/a/b/c/d/leaf"), 4, 100));
	CHECK(round_trip(key("nest/a/b/sibling"), 5, 10));
	CHECK(round_trip(key("odd/name with space+%%&;=~'"), 6, 10));
	CHECK(round_trip(key("odd/ünïcödé"), 7, 10));
}

struct seen {
	int count, outside, dups;
	char **keys;
	size_t n, cap;
	const char *prefix;
};

static int collect(const char *k, void *payload)
{
	struct seen *s = payload;
	if (strncmp(k, s->prefix, strlen(s->prefix)))
		s->outside++;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->keys[i], k))
			s->dups++;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->keys = realloc(s->keys, s->cap * sizeof(char *));
	}
	s->keys[s->n++] = strdup(k);
	s->count++;
	return 0;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
}

static int list_count(const char *prefix, int *outside, int *dups)
{
	struct seen s = {.prefix = prefix};
	int rc = backend_list(B, prefix, collect, &s);
	if (rc)
		printf("# list %s: %d %s\n", prefix, rc, error_last());
	*outside = s.outside;
	*dups = s.dups;
	seen_free(&s);
	return rc ? rc : s.count;
}

static void list_300_keys(void)
{
	int ok = 1;
	for (int i = 0; i < 100 && ok; i++)
		ok = !backend_put(B, key("list/top-%03d", i), "t", 1);
	for (int i = 0; i < 200 && ok; i++)
		ok = !backend_put(B, key("list/d%d/k-%03d", i % 10, i), "s", 1);
	if (!ok)
		printf("# put: %s\n", error_last());
	CHECK(ok);
	/* Decoys just outside the prefix. */
	CHECK_EQ(backend_put(B, key("listx/a"), "x", 1), 0);
	CHECK_EQ(backend_put(B, key("lis"), "x", 1), 0);
	int outside, dups;
	CHECK_EQ(list_count(key("list/"), &outside, &dups), 300);
	CHECK_EQ(outside, 0);
	CHECK_EQ(dups, 0);
	/* A prefix that ends inside a name. */
	CHECK_EQ(list_count(key("list/d1"), &outside, &dups), 20);
	CHECK_EQ(list_count(key("list/d1/k-0"), &outside, &dups), 10);
	CHECK_EQ(list_count(key("list"), &outside, &dups), 301);
	CHECK_EQ(list_count(key("nothing/"), &outside, &dups), 0);
	CHECK_EQ(outside, 0);
}

static void head_replace(void)
{
	const char *h = key("heads/device-1");
	for (int i = 0; i < 20; i++) {
		size_t len = i & 1 ? 200 : 5000;
		uint8_t *d = make_data(100 + (unsigned)i, len), *out = NULL;
		size_t n = 0;
		CHECK_EQ(backend_put(B, h, d, len), 0);
		CHECK_EQ(backend_get(B, h, &out, &n), 0);
		CHECK(n == len && out && !memcmp(out, d, len));
		free(d);
		free(out);
	}
}

static void del_removes(void)
{
	const char *k = key("objects/doomed");
	CHECK_EQ(backend_put(B, k, "x", 1), 0);
	CHECK_EQ(backend_del(B, k), 0);
	uint8_t *out = NULL;
	size_t n;
	CHECK_EQ(backend_get(B, k, &out, &n), -ENOENT);
	CHECK_EQ(backend_exists(B, k), 0);
	CHECK_EQ(backend_del(B, k), 0); /* again: still fine */
}

#define THREADS 8
#define PER_THREAD 50

static void *worker(void *arg)
{
	long t = (long)arg, bad = 0;
	for (int i = 0; i < PER_THREAD; i++) {
		size_t len = (size_t)((t * 7919 + i * 104729) % 65536) + 1;
		if (!round_trip(key("par/t%ld/o%02d", t, i), (unsigned)(t * 1000 + i), len))
			bad++;
	}
	return (void *)bad;
}

static void threads_concurrently(void)
{
	pthread_t th[THREADS];
	long t0 = now_ms(), bad = 0;
	for (long t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, worker, (void *)t);
	for (int t = 0; t < THREADS; t++) {
		void *r;
		pthread_join(th[t], &r);
		bad += (long)r;
	}
	printf("# %d round trips in %ld ms\n", THREADS * PER_THREAD, now_ms() - t0);
	CHECK_EQ(bad, 0);
	int outside, dups;
	CHECK_EQ(list_count(key("par/"), &outside, &dups), THREADS * PER_THREAD);
}

static void cleanup_deletes_all(void)
{
	struct seen s = {.prefix = P};
	CHECK_EQ(backend_list(B, P, collect, &s), 0);
	int bad = 0;
	for (size_t i = 0; i < s.n; i++)
		if (backend_del(B, s.keys[i]))
			bad++;
	CHECK_EQ(bad, 0);
	seen_free(&s);
	int outside, dups;
	CHECK_EQ(list_count(P, &outside, &dups), 0);
}

static int run_all(void)
{
	TEST(check_succeeds);
	TEST(round_trip_sizes);
	TEST(missing_is_enoent);
	TEST(ranges);
	TEST(nested_and_odd_keys);
	TEST(list_300_keys);
	TEST(head_replace);
	TEST(del_removes);
	TEST(threads_concurrently);
	TEST(cleanup_deletes_all);
	TAP_DONE();
}

/* ---- down mode --------------------------------------------------------- */

static const struct {
	const char *name;
	int err;
} errnames[] = {{"EIO", EIO},
		{"ETIMEDOUT", ETIMEDOUT},
		{"ECONNREFUSED", ECONNREFUSED},
		{"EHOSTUNREACH", EHOSTUNREACH},
		{"EACCES", EACCES},
		{"ENXIO", ENXIO},
		{"ENOENT", ENOENT}};

static const char *errname(int err)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return "other";
}

static int errnum(const char *name)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (!strcmp(errnames[i].name, name))
			return errnames[i].err;
	return 0;
}

static int transport_errno(int rc)
{
	return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -EIO;
}

static int down_op(const char *op, const char *k)
{
	if (!strcmp(op, "check"))
		return backend_check(B);
	if (!strcmp(op, "put"))
		return backend_put(B, k, "x", 1);
	uint8_t *out = NULL;
	size_t n = 0;
	int rc = backend_get(B, k, &out, &n);
	if (!rc)
		printf("# get %s succeeded with %zu bytes\n", k, n);
	free(out);
	return rc;
}

/* The longest a failing call may take: a connect timeout and a stall
 * limit, or a connect timeout per attempt, plus the backoffs. */
static long allowed_ms(void)
{
	long attempts = cfg.retries < 0 ? 1 : cfg.retries + 1;
	long connects = cfg.connect_timeout_ms * attempts;
	long stall = cfg.connect_timeout_ms + cfg.timeout_ms;
	return (connects > stall ? connects : stall) + 300L * (1L << attempts) + 2000;
}

static void fails_in_time(void)
{
	const char *op = getenv("DRIVER_DOWN_OP") ? getenv("DRIVER_DOWN_OP") : "get";
	const char *k = getenv("DRIVER_KEY") ? getenv("DRIVER_KEY") : "heads/driver-probe";
	const char *want = getenv("DRIVER_EXPECT_ERRNO");
	long t0 = now_ms();
	error_clear();
	int rc = down_op(op, k);
	long el = now_ms() - t0;
	printf("# %s %s: %d (%s) after %ld ms, allowed %ld\n", op, k, rc, errname(-rc), el,
	       allowed_ms());
	printf("# error: %s\n", error_last());
	if (want && *want)
		CHECK_EQ(rc, -errnum(want));
	else
		CHECK(transport_errno(rc));
	CHECK(strlen(error_last()) > 0);
	CHECK(el <= allowed_ms());
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: backend_driver URL\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cfg.user = getenv("PEERCLING_TEST_USER");
	cfg.password = getenv("PEERCLING_TEST_PASSWORD");
	cfg.connect_timeout_ms = env_long("DRIVER_CONNECT_TIMEOUT_MS", 3000);
	cfg.timeout_ms = env_long("DRIVER_TIMEOUT_MS", 15000);
	cfg.retries = (int)env_long("DRIVER_RETRIES", 3);
	const char *p = getenv("DRIVER_PREFIX");
	if (p && *p)
		snprintf(P, sizeof(P), "%s/", p);
	else
		snprintf(P, sizeof(P), "drv-%d-%ld/", (int)getpid(), (long)time(NULL));
	int rc = backend_open(&B, argv[1], &cfg);
	if (rc) {
		printf("Bail out! backend_open %s: %d %s\n", argv[1], rc, error_last());
		return 1;
	}
	int ret;
	if (env_long("DRIVER_EXPECT_DOWN", 0)) {
		TEST(fails_in_time);
		printf("1..%d\n", tap_count);
		ret = tap_failed_total ? 1 : 0;
	} else {
		ret = run_all();
	}
	backend_free(B);
	return ret;
}
