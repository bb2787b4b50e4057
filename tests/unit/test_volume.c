/* test_volume: creating, opening and guarding a volume's state directory. */
#include "config.h"
#include "core/error.h"
#include "core/seal.h"
#include "core/store.h"
#include "core/volume.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *home;

static char *path_in(const char *name, const char *rel)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s/%s", home, name, rel) < 0)
		abort();
	return p;
}

static void create_makes_the_documented_layout(void)
{
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	CHECK_EQ(volume_create(&v, "alpha", &o), 0);
	if (!v)
		return;
	struct stat st;
	char *key = path_in("alpha", "key"), *repo = path_in("alpha", "repo.git/HEAD"),
	     *cfg = path_in("alpha", "config");
	CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(stat(repo, &st) == 0);
	CHECK(stat(cfg, &st) == 0);
	CHECK(v->encrypt == 1);
	CHECK(v->volume_id && strlen(v->volume_id) == 32);
	CHECK(v->device_id && strlen(v->device_id) == 32);
	CHECK(v->cloud_url && strncmp(v->cloud_url, "file://", 7) == 0);
	CHECK(v->store != NULL);
	free(key);
	free(repo);
	free(cfg);
	volume_free(v);
}

static void create_refuses_an_existing_volume(void)
{
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	CHECK_EQ(volume_create(&v, "alpha", &o), -EEXIST);
	CHECK(strstr(error_last(), "already exists") != NULL);
}

static void bad_names_are_refused(void)
{
	const char *bad[] = { "", ".", "..", "a/b", "-x", ".hidden", "sp ace" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(volume_check_name(bad[i]), -EINVAL);
	CHECK_EQ(volume_check_name("my-vol_2.x"), 0);
}

static void open_reads_back_the_same_ids_and_key(void)
{
	struct volume *a = NULL, *b = NULL;
	CHECK_EQ(volume_open(&a, "alpha", 0), 0);
	CHECK_EQ(volume_open(&b, "alpha", VOLUME_OPEN_NO_STORE), 0);
	if (a && b) {
		CHECK(strcmp(a->volume_id, b->volume_id) == 0);
		CHECK(memcmp(a->master_key, b->master_key, SEAL_KEY_SIZE) == 0);
		CHECK(b->store == NULL);
	}
	volume_free(a);
	volume_free(b);
}

static void a_missing_volume_names_the_fix(void)
{
	struct volume *v = NULL;
	CHECK_EQ(volume_open(&v, "nosuch", 0), -ENOENT);
	CHECK(strstr(error_last(), "peercling init nosuch") != NULL);
}

static void a_key_readable_by_others_is_refused(void)
{
	char *key = path_in("alpha", "key");
	struct volume *v = NULL;
	chmod(key, 0644);
	CHECK_EQ(volume_open(&v, "alpha", 0), -EACCES);
	CHECK(strstr(error_last(), "chmod 600") != NULL);
	chmod(key, 0600);
	CHECK_EQ(volume_open(&v, "alpha", 0), 0);
	volume_free(v);
	free(key);
}

static void a_malformed_key_is_refused(void)
{
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	CHECK_EQ(volume_create(&v, "beta", &o), 0);
	volume_free(v);
	v = NULL;
	char *key = path_in("beta", "key");
	int fd = open(key, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "not-a-key\n", 10) == 10);
	close(fd);
	CHECK_EQ(volume_open(&v, "beta", 0), -EINVAL);
	CHECK(strstr(error_last(), "malformed") != NULL);
	free(key);
}

static void a_malformed_config_is_refused(void)
{
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	CHECK_EQ(volume_create(&v, "gamma", &o), 0);
	volume_free(v);
	v = NULL;
	char *cfg = path_in("gamma", "config");
	int fd = open(cfg, O_WRONLY | O_APPEND);
	CHECK(write(fd, "[broken\nx = = =\n", 16) == 16);
	close(fd);
	CHECK_EQ(volume_open(&v, "gamma", 0), -EINVAL);
	CHECK(strstr(error_last(), "config") != NULL);
	free(cfg);
}

static void a_bad_cache_limit_is_refused(void)
{
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	CHECK_EQ(volume_create(&v, "delta", &o), 0);
	CHECK_EQ(volume_config_set_string(v, "cache.limit", "lots"), 0);
	volume_free(v);
	v = NULL;
	CHECK_EQ(volume_open(&v, "delta", 0), -EINVAL);
	CHECK(strstr(error_last(), "cache.limit") != NULL);
}

static void the_lock_keeps_a_second_opener_out(void)
{
	struct volume *v = NULL, *w = NULL;
	CHECK_EQ(volume_open(&v, "alpha", VOLUME_OPEN_LOCK), 0);
	/* flock is per open file description: try from a child process. */
	pid_t pid = fork();
	if (pid == 0) {
		int rc = volume_open(&w, "alpha", VOLUME_OPEN_LOCK);
		_exit(rc == -EBUSY && strstr(error_last(), "in use") ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	volume_free(v);
	CHECK_EQ(volume_open(&w, "alpha", VOLUME_OPEN_LOCK), 0);
	volume_free(w);
}

static void config_values_round_trip_and_the_key_hex_too(void)
{
	struct volume *v = NULL;
	char *s = NULL;
	CHECK_EQ(volume_open(&v, "alpha", 0), 0);
	CHECK_EQ(volume_config_set_string(v, "commit.idle", "7"), 0);
	int64_t n = 0;
	CHECK_EQ(volume_config_get_int64(v, "commit.idle", &n, 3), 0);
	CHECK_EQ(n, 7);
	CHECK_EQ(volume_config_get_int64(v, "no.such", &n, 3), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(volume_config_get_string(v, "no.such", &s), -ENOENT);
	char hex[2 * SEAL_KEY_SIZE + 1];
	uint8_t back[SEAL_KEY_SIZE];
	volume_key_to_hex(v->master_key, hex);
	CHECK_EQ(volume_key_from_hex(back, hex), 0);
	CHECK(memcmp(back, v->master_key, SEAL_KEY_SIZE) == 0);
	CHECK_EQ(volume_key_from_hex(back, "abc"), -EINVAL);
	volume_free(v);
}

int main(void)
{
	seal_init();
	git_libgit2_init();
	home = tap_tmpdir();
	setenv("PEERCLING_HOME", home, 1);
	TEST(create_makes_the_documented_layout);
	TEST(create_refuses_an_existing_volume);
	TEST(bad_names_are_refused);
	TEST(open_reads_back_the_same_ids_and_key);
	TEST(a_missing_volume_names_the_fix);
	TEST(a_key_readable_by_others_is_refused);
	TEST(a_malformed_key_is_refused);
	TEST(a_malformed_config_is_refused);
	TEST(a_bad_cache_limit_is_refused);
	TEST(the_lock_keeps_a_second_opener_out);
	TEST(config_values_round_trip_and_the_key_hex_too);
	tap_rmrf(home);
	free(home);
	git_libgit2_shutdown();
	TAP_DONE();
}
