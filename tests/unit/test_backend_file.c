/* test_backend_file: the file:// backend stores and returns keys intact,
 * makes the directories of nested keys, replaces heads atomically for a
 * concurrent reader, lists by prefix, deletes, refuses bad URLs and keys,
 * and tells a missing cloud directory (-ENXIO) from a missing key. */
#include "config.h"

#include "core/error.h"
#include "sync/backend.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static struct backend *open_dir(const char *dir)
{
	char url[4200];
	struct backend *b = NULL;
	snprintf(url, sizeof(url), "file://%s", dir);
	int rc = backend_open(&b, url, NULL);
	CHECK_EQ(rc, 0);
	return b;
}

static int file_exists(const char *dir, const char *rel)
{
	char p[4200];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return stat(p, &st) == 0;
}

static void put_get_round_trip(void)
{
	char *dir = tap_tmpdir();
	struct backend *b = open_dir(dir);
	CHECK_EQ(backend_check(b), 0);
	const char data[] = "hello\0world";
	CHECK_EQ(backend_put(b, "objects/x", data, sizeof(data)), 0);
	uint8_t *out = NULL;
	size_t n = 0;
	CHECK_EQ(backend_get(b, "objects/x", &out, &n), 0);
	CHECK_EQ(n, sizeof(data));
	CHECK(out && !memcmp(out, data, sizeof(data)));
	free(out);
	/* Empty objects are objects too. */
	CHECK_EQ(backend_put(b, "empty", "", 0), 0);
	CHECK_EQ(backend_get(b, "empty", &out, &n), 0);
	CHECK_EQ(n, 0);
	CHECK(out != NULL);
	free(out);
	CHECK_EQ(backend_exists(b, "objects/x"), 1);
	CHECK_EQ(backend_exists(b, "objects"), 0); /* a directory is not a key */
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void get_missing_is_enoent(void)
{
	char *dir = tap_tmpdir();
	struct backend *b = open_dir(dir);
	uint8_t *out = (uint8_t *)1;
	size_t n = 7;
	CHECK_EQ(backend_get(b, "blocks/ab/nothing", &out, &n), -ENOENT);
	CHECK(out == NULL);
	CHECK_EQ(backend_exists(b, "blocks/ab/nothing"), 0);
	CHECK_EQ(backend_get(b, "nothing", &out, &n), -ENOENT);
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void nested_keys_make_directories(void)
{
	char *dir = tap_tmpdir();
	struct backend *b = open_dir(dir);
	CHECK_EQ(backend_put(b, "blocks/ab/cd/ef/abcdef", "x", 1), 0);
	CHECK(file_exists(dir, "blocks/ab/cd/ef/abcdef"));
	/* A second key in an existing directory, and one beside it. */
	CHECK_EQ(backend_put(b, "blocks/ab/cd/ef/other", "y", 1), 0);
	CHECK_EQ(backend_put(b, "blocks/ab/zz", "z", 1), 0);
	CHECK_EQ(backend_exists(b, "blocks/ab/zz"), 1);
	/* A key where a directory would have to be. */
	CHECK_EQ(backend_put(b, "blocks/ab/zz/under", "w", 1), -EIO);
	/* No temp file is left behind. */
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/.tmp')\"", dir);
	CHECK_EQ(system(cmd), 0);
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

/* ---- atomic head replacement ------------------------------------------- */

#define HEAD_SIZE (64 * 1024)
#define REPLACES 1000

struct race {
	struct backend *b;
	uint8_t *bodies[2];
	int done;
	long reads, bad, errors;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < REPLACES; i++)
		if (backend_put(r->b, "heads/dev", r->bodies[i & 1], HEAD_SIZE))
			__atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *reader(void *arg)
{
	struct race *r = arg;
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
		uint8_t *out;
		size_t n;
		if (backend_get(r->b, "heads/dev", &out, &n)) {
			__atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		r->reads++;
		if (n != HEAD_SIZE ||
		    (memcmp(out, r->bodies[0], n) && memcmp(out, r->bodies[1], n)))
			r->bad++;
		free(out);
	}
	return NULL;
}

static void heads_replaced_atomically(void)
{
	char *dir = tap_tmpdir();
	struct race r = {.b = open_dir(dir)};
	for (int k = 0; k < 2; k++) {
		r.bodies[k] = malloc(HEAD_SIZE);
		memset(r.bodies[k], 'a' + k, HEAD_SIZE);
	}
	CHECK_EQ(backend_put(r.b, "heads/dev", r.bodies[1], HEAD_SIZE), 0);
	pthread_t w, rd;
	pthread_create(&rd, NULL, reader, &r);
	pthread_create(&w, NULL, writer, &r);
	pthread_join(w, NULL);
	pthread_join(rd, NULL);
	printf("# %ld reads during %d replaces\n", r.reads, REPLACES);
	CHECK_EQ(r.bad, 0);
	CHECK_EQ(r.errors, 0);
	CHECK(r.reads > 0);
	uint8_t *out;
	size_t n;
	CHECK_EQ(backend_get(r.b, "heads/dev", &out, &n), 0);
	CHECK(n == HEAD_SIZE && !memcmp(out, r.bodies[(REPLACES - 1) & 1], n));
	free(out);
	free(r.bodies[0]);
	free(r.bodies[1]);
	backend_free(r.b);
	tap_rmrf(dir);
	free(dir);
}

/* ---- list -------------------------------------------------------------- */

struct seen {
	char keys[64][64];
	int n;
	int stop_after;
};

static int collect(const char *key, void *payload)
{
	struct seen *s = payload;
	if (s->n < 64)
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->n++;
	return s->stop_after && s->n >= s->stop_after ? 42 : 0;
}

static int seen_has(const struct seen *s, const char *key)
{
	for (int i = 0; i < s->n && i < 64; i++)
		if (!strcmp(s->keys[i], key))
			return 1;
	return 0;
}

static void list_with_prefix(void)
{
	char *dir = tap_tmpdir();
	struct backend *b = open_dir(dir);
	const char *keys[] = {"blocks/ab/ab01", "blocks/ab/ab02", "blocks/ac/ac01", "blocks/abx",
			      "heads/dev1",	"heads/dev2",	  "objects/o1"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK_EQ(backend_put(b, keys[i], "k", 1), 0);

	struct seen s = {.n = 0};
	CHECK_EQ(backend_list(b, "heads/", collect, &s), 0);
	CHECK_EQ(s.n, 2);
	CHECK(seen_has(&s, "heads/dev1") && seen_has(&s, "heads/dev2"));

	/* A prefix that ends inside a name matches files and directories. */
	memset(&s, 0, sizeof(s));
	CHECK_EQ(backend_list(b, "blocks/ab", collect, &s), 0);
	CHECK_EQ(s.n, 3);
	CHECK(seen_has(&s, "blocks/ab/ab01") && seen_has(&s, "blocks/ab/ab02") &&
	      seen_has(&s, "blocks/abx"));

	memset(&s, 0, sizeof(s));
	CHECK_EQ(backend_list(b, "", collect, &s), 0);
	CHECK_EQ(s.n, 7); /* everything, and no temp file */

	memset(&s, 0, sizeof(s));
	CHECK_EQ(backend_list(b, "nothing/", collect, &s), 0);
	CHECK_EQ(s.n, 0);

	/* A non-zero return from the callback stops the listing. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	CHECK_EQ(backend_list(b, "blocks/", collect, &s), 42);
	CHECK_EQ(s.n, 2);
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void del_removes_key(void)
{
	char *dir = tap_tmpdir();
	struct backend *b = open_dir(dir);
	CHECK_EQ(backend_put(b, "objects/gone", "x", 1), 0);
	CHECK_EQ(backend_del(b, "objects/gone"), 0);
	CHECK_EQ(backend_exists(b, "objects/gone"), 0);
	uint8_t *out;
	size_t n;
	CHECK_EQ(backend_get(b, "objects/gone", &out, &n), -ENOENT);
	/* Deleting what is not there succeeds (a retried delete). */
	CHECK_EQ(backend_del(b, "objects/gone"), 0);
	CHECK_EQ(backend_del(b, "never/was"), 0);
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void bad_urls_and_keys_are_einval(void)
{
	const char *bad[] = {
	    "",		 "ftp://host/dir",    "file://relative/dir",	  "file://", "/just/a/path",
	    "webdav://", "webdav:///no-host", "webdav://host/path?query", "s3://"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct backend *b = (struct backend *)1;
		error_clear();
		int rc = backend_open(&b, bad[i], NULL);
		if (rc != -EINVAL)
			printf("# '%s' gave %d\n", bad[i], rc);
		CHECK_EQ(rc, -EINVAL);
		CHECK(b == NULL);
		CHECK(strlen(error_last()) > 0);
	}
	struct backend *b = NULL;
	CHECK_EQ(backend_open(&b, "gopher://x/y", NULL), -EINVAL);
	CHECK(strstr(error_last(), "file:///DIR") != NULL);
	CHECK(strstr(error_last(), "webdav://") != NULL);

	/* Keys that would escape the directory or hit temp files. */
	char *dir = tap_tmpdir();
	b = open_dir(dir);
	const char *keys[] = {"", "/abs", "a/../../etc", "..", "a//b", "a/", ".tmp/x"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		CHECK_EQ(backend_put(b, keys[i], "x", 1), -EINVAL);
		uint8_t *out;
		size_t n;
		CHECK_EQ(backend_get(b, keys[i], &out, &n), -EINVAL);
	}
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void missing_directory_is_enxio(void)
{
	char *dir = tap_tmpdir();
	char gone[4200];
	snprintf(gone, sizeof(gone), "%s/not-here", dir);
	struct backend *b = open_dir(gone); /* open touches nothing */
	CHECK(b != NULL);
	error_clear();
	CHECK_EQ(backend_check(b), -ENXIO);
	CHECK(strstr(error_last(), "does not exist") != NULL);
	CHECK(strstr(error_last(), gone) != NULL);
	/* Not "no such key": the whole cloud is absent. */
	uint8_t *out;
	size_t n;
	CHECK_EQ(backend_get(b, "heads/x", &out, &n), -ENXIO);
	CHECK_EQ(backend_exists(b, "heads/x"), -ENXIO);
	CHECK_EQ(backend_put(b, "heads/x", "x", 1), -ENXIO);
	CHECK(!file_exists(dir, "not-here")); /* never created by a put */
	struct seen s = {.n = 0};
	CHECK_EQ(backend_list(b, "", collect, &s), -ENXIO);
	backend_free(b);

	/* A file where the directory should be. */
	FILE *fp = fopen(gone, "w");
	CHECK(fp != NULL);
	if (fp)
		fclose(fp);
	b = open_dir(gone);
	CHECK_EQ(backend_check(b), -ENXIO);
	backend_free(b);
	tap_rmrf(dir);
	free(dir);
}

static void readonly_directory_is_eacces(void)
{
	if (geteuid() == 0) {
		printf("# skipped: root writes anywhere\n");
		return;
	}
	char *dir = tap_tmpdir();
	chmod(dir, 0555);
	struct backend *b = open_dir(dir);
	CHECK_EQ(backend_check(b), -EACCES);
	CHECK_EQ(backend_put(b, "heads/x", "x", 1), -EACCES);
	backend_free(b);
	chmod(dir, 0755);
	tap_rmrf(dir);
	free(dir);
}

int main(void)
{
	TEST(put_get_round_trip);
	TEST(get_missing_is_enoent);
	TEST(nested_keys_make_directories);
	TEST(heads_replaced_atomically);
	TEST(list_with_prefix);
	TEST(del_removes_key);
	TEST(bad_urls_and_keys_are_einval);
	TEST(missing_directory_is_enxio);
	TEST(readonly_directory_is_eacces);
	TAP_DONE();
}
