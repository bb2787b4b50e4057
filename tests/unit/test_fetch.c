/* test_fetch: the fetch chain tries the store, then each source in order,
 * verifies what sources send, and keeps good blocks. */
#include "config.h"
#include "core/blockid.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/seal.h"
#include "core/store.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static uint8_t idkey[BLOCKID_KEY_SIZE];
static const char good[] = "block contents that a peer has";

struct fake_source {
	int calls;
	int corrupt; /* send altered bytes */
	int have;
};

static int fake_get(void *payload, const blockid_t *id, int flags, uint8_t **out, size_t *len)
{
	struct fake_source *fs = payload;
	fs->calls++;
	if (!fs->have)
		return -ENOENT;
	*out = malloc(sizeof(good));
	memcpy(*out, good, sizeof(good));
	if (fs->corrupt)
		(*out)[3] ^= 1;
	*len = sizeof(good);
	return 0;
}

static void setup(char **dir, struct store **s, struct fetch **f)
{
	*dir = tap_tmpdir();
	CHECK_EQ(store_open(s, *dir, idkey, 0), 0);
	CHECK_EQ(fetch_new(f, *s), 0);
}

static void teardown(char *dir, struct store *s, struct fetch *f)
{
	fetch_free(f);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_local_block_needs_no_source(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fake_source src = { .have = 1 };
	struct fetch_source fsrc = { "peer", fake_get, &src };
	setup(&dir, &s, &f);
	fetch_add_source(f, &fsrc);
	blockid_t id;
	CHECK_EQ(store_put_data(s, &id, good, sizeof(good), 0), 0);
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(block_get(f, &id, 0, &buf, &len), 0);
	CHECK_EQ(src.calls, 0);
	CHECK(len == sizeof(good) && memcmp(buf, good, len) == 0);
	free(buf);
	teardown(dir, s, f);
}

static void a_corrupt_source_is_skipped_for_the_next_one(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fake_source bad = { .have = 1, .corrupt = 1 }, cloud = { .have = 1 };
	struct fetch_source a = { "peer", fake_get, &bad }, b = { "cloud", fake_get, &cloud };
	setup(&dir, &s, &f);
	fetch_add_source(f, &a);
	fetch_add_source(f, &b);
	blockid_t id;
	blockid_compute(&id, idkey, good, sizeof(good));
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(block_get(f, &id, 0, &buf, &len), 0);
	CHECK(buf && len == sizeof(good) && memcmp(buf, good, len) == 0);
	CHECK_EQ(bad.calls, 1);
	CHECK_EQ(cloud.calls, 1);
	free(buf);
	/* Kept in the store: a second read asks nobody. */
	CHECK_EQ(store_has(s, &id), 1);
	CHECK_EQ(block_get(f, &id, 0, &buf, &len), 0);
	CHECK_EQ(cloud.calls, 1);
	free(buf);
	teardown(dir, s, f);
}

static void no_good_copy_anywhere_is_eio_with_reasons(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fake_source bad = { .have = 1, .corrupt = 1 }, none = { .have = 0 };
	struct fetch_source a = { "peer", fake_get, &bad }, b = { "cloud", fake_get, &none };
	setup(&dir, &s, &f);
	fetch_add_source(f, &a);
	fetch_add_source(f, &b);
	blockid_t id;
	blockid_compute(&id, idkey, good, sizeof(good));
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(block_get(f, &id, 0, &buf, &len), -EIO);
	CHECK(strstr(error_last(), "peer: sent corrupt data") != NULL);
	CHECK(strstr(error_last(), "cloud:") != NULL);
	CHECK_EQ(store_has(s, &id), 0);
	teardown(dir, s, f);
}

static void the_chain_has_a_bounded_number_of_sources(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fake_source none = { 0 };
	struct fetch_source a = { "x", fake_get, &none };
	setup(&dir, &s, &f);
	for (int i = 0; i < FETCH_MAX_SOURCES; i++)
		CHECK_EQ(fetch_add_source(f, &a), 0);
	CHECK_EQ(fetch_add_source(f, &a), -ENOSPC);
	teardown(dir, s, f);
}

/* A source with one slow and one quick block, counting fetches of each. */
static const char slow_data[] = "a block that takes long to arrive";
static const char quick_data[] = "a block that arrives at once";
static blockid_t slow_id, quick_id;
static int slow_calls, quick_calls;

static int timed_get(void *payload, const blockid_t *id, int flags, uint8_t **out, size_t *len)
{
	int slow = !blockid_cmp(id, &slow_id);
	const char *d = slow ? slow_data : quick_data;
	__atomic_add_fetch(slow ? &slow_calls : &quick_calls, 1, __ATOMIC_RELAXED);
	usleep(slow ? 300000 : 20000);
	*len = strlen(d);
	*out = malloc(*len);
	memcpy(*out, d, *len);
	return 0;
}

struct getter {
	struct fetch *f;
	const blockid_t *id;
	int delay_ms, rc;
};

static void *get_thread(void *arg)
{
	struct getter *g = arg;
	uint8_t *buf = NULL;
	size_t len = 0;
	usleep((useconds_t)g->delay_ms * 1000);
	g->rc = block_get(g->f, g->id, 0, &buf, &len);
	free(buf);
	return NULL;
}

/* A reader waiting for a block another thread is fetching must not be sent
 * off by the end of some other fetch: it would fetch the block again. */
static void a_block_in_flight_is_fetched_once_whatever_ends_meanwhile(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fetch_source src = { "cloud", timed_get, NULL };
	setup(&dir, &s, &f);
	fetch_add_source(f, &src);
	blockid_compute(&slow_id, idkey, slow_data, strlen(slow_data));
	blockid_compute(&quick_id, idkey, quick_data, strlen(quick_data));
	struct getter g[4] = {
		{ f, &slow_id, 0, -1 },  /* fetches the slow block */
		{ f, &slow_id, 50, -1 }, /* waits for it */
		{ f, &slow_id, 60, -1 }, /* so does this one */
		{ f, &quick_id, 70, -1 }, /* ends long before it */
	};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, get_thread, &g[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(g[i].rc, 0);
	CHECK_EQ(slow_calls, 1);
	CHECK_EQ(quick_calls, 1);
	teardown(dir, s, f);
}

struct sink_log {
	int calls;
	blockid_t id;
	size_t len;
};

static void record_sink(void *ctx, const blockid_t *id, uint8_t *data, size_t len)
{
	struct sink_log *l = ctx;
	l->calls++;
	l->id = *id;
	l->len = len;
	CHECK(len == sizeof(good) && memcmp(data, good, len) == 0);
	free(data);
}

/* A block a source brought along unasked is checked, kept, and handed to
 * the sink; a wrong one is neither kept nor handed on. */
static void a_delivered_block_is_checked_kept_and_handed_on(void)
{
	char *dir;
	struct store *s;
	struct fetch *f;
	struct sink_log log = { 0 };
	setup(&dir, &s, &f);
	fetch_set_sink(f, record_sink, &log);
	blockid_t id;
	blockid_compute(&id, idkey, good, sizeof(good));
	uint8_t *bad = malloc(sizeof(good));
	memcpy(bad, good, sizeof(good));
	bad[0] ^= 1;
	CHECK_EQ(block_deliver(f, &id, bad, sizeof(good), 0), -EBADMSG);
	CHECK_EQ(log.calls, 0);
	CHECK_EQ(store_has(s, &id), 0);
	uint8_t *data = malloc(sizeof(good));
	memcpy(data, good, sizeof(good));
	CHECK_EQ(block_deliver(f, &id, data, sizeof(good), 0), 0);
	CHECK_EQ(log.calls, 1);
	CHECK(!blockid_cmp(&log.id, &id) && log.len == sizeof(good));
	CHECK_EQ(store_has(s, &id), 1);
	/* Brought along by a background fetch: stored, not handed on. */
	blockid_t id2;
	uint8_t other[sizeof(good)];
	memcpy(other, good, sizeof(good));
	other[1] ^= 0x55;
	blockid_compute(&id2, idkey, other, sizeof(other));
	data = malloc(sizeof(other));
	memcpy(data, other, sizeof(other));
	CHECK_EQ(block_deliver(f, &id2, data, sizeof(other), FETCH_BACKGROUND), 0);
	CHECK_EQ(log.calls, 1);
	CHECK_EQ(store_has(s, &id2), 1);
	/* Without a sink the block is only stored (and freed: valgrind). */
	fetch_set_sink(f, NULL, NULL);
	data = malloc(sizeof(good));
	memcpy(data, good, sizeof(good));
	CHECK_EQ(block_deliver(f, &id, data, sizeof(good), 0), 0);
	CHECK_EQ(log.calls, 1);
	teardown(dir, s, f);
}

int main(void)
{
	seal_init();
	seal_random_key(idkey);
	TEST(a_local_block_needs_no_source);
	TEST(a_corrupt_source_is_skipped_for_the_next_one);
	TEST(no_good_copy_anywhere_is_eio_with_reasons);
	TEST(the_chain_has_a_bounded_number_of_sources);
	TEST(a_block_in_flight_is_fetched_once_whatever_ends_meanwhile);
	TEST(a_delivered_block_is_checked_kept_and_handed_on);
	TAP_DONE();
}
