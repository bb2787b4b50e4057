/* test_bcache: the mount's in-memory block cache stays within its blocks
 * and bytes, evicts the least recently used first, and fetches a miss
 * through the chain. */
#include "config.h"
#include "core/blockid.h"
#include "core/fetch.h"
#include "core/seal.h"
#include "core/store.h"
#include "fs/bcache.h"
#include "tap.h"

#include <errno.h>
#include <string.h>

static uint8_t idkey[BLOCKID_KEY_SIZE];

/* A block of len bytes all equal to fill, and its id. */
static uint8_t *block(uint8_t fill, size_t len, blockid_t *id)
{
	uint8_t *b = malloc(len);
	memset(b, fill, len);
	blockid_compute(id, idkey, b, len);
	return b;
}

struct rig {
	char *dir;
	struct store *s;
	struct fetch *f;
	struct fs_bcache *c;
};

static void setup(struct rig *r, size_t slots, size_t bytes)
{
	r->dir = tap_tmpdir();
	CHECK_EQ(store_open(&r->s, r->dir, idkey, 0), 0);
	CHECK_EQ(fetch_new(&r->f, r->s), 0);
	CHECK_EQ(fs_bcache_new(&r->c, slots, bytes), 0);
}

static void teardown(struct rig *r)
{
	fs_bcache_free(r->c);
	fetch_free(r->f);
	store_free(r->s);
	tap_rmrf(r->dir);
	free(r->dir);
}

/* 1 when a read of id is served from memory: with an empty store and no
 * source, anything else fails. */
static int cached(struct rig *r, const blockid_t *id, uint8_t fill, uint32_t len)
{
	uint8_t b[4] = { 0 };
	if (fs_bcache_read(r->c, r->f, id, 0, len, len - 4, b, 4) != 0)
		return 0;
	return b[0] == fill && b[3] == fill;
}

static void the_byte_budget_evicts_the_least_recently_used(void)
{
	struct rig r;
	setup(&r, 16, 3000);
	blockid_t a, b, c, d;
	fs_bcache_put(r.c, &a, block('a', 1000, &a), 1000);
	fs_bcache_put(r.c, &b, block('b', 1000, &b), 1000);
	fs_bcache_put(r.c, &c, block('c', 1000, &c), 1000);
	CHECK(cached(&r, &a, 'a', 1000)); /* a is now the most recent */
	fs_bcache_put(r.c, &d, block('d', 1000, &d), 1000);
	CHECK(cached(&r, &a, 'a', 1000));
	CHECK(!cached(&r, &b, 'b', 1000)); /* the oldest went */
	CHECK(cached(&r, &c, 'c', 1000));
	CHECK(cached(&r, &d, 'd', 1000));
	/* One big block pushes out as many as it needs. */
	blockid_t e;
	fs_bcache_put(r.c, &e, block('e', 2500, &e), 2500);
	CHECK(cached(&r, &e, 'e', 2500));
	CHECK(!cached(&r, &a, 'a', 1000) && !cached(&r, &c, 'c', 1000));
	/* A block over the whole budget is not kept at all. */
	blockid_t big;
	fs_bcache_put(r.c, &big, block('z', 4000, &big), 4000);
	CHECK(!cached(&r, &big, 'z', 4000));
	CHECK(cached(&r, &e, 'e', 2500));
	teardown(&r);
}

static void the_slot_count_bounds_small_blocks(void)
{
	struct rig r;
	setup(&r, 2, 1 << 20);
	blockid_t a, b, c;
	fs_bcache_put(r.c, &a, block('a', 100, &a), 100);
	fs_bcache_put(r.c, &b, block('b', 100, &b), 100);
	fs_bcache_put(r.c, &c, block('c', 100, &c), 100);
	CHECK(!cached(&r, &a, 'a', 100));
	CHECK(cached(&r, &b, 'b', 100) && cached(&r, &c, 'c', 100));
	/* The same block twice keeps one copy (the second is freed). */
	blockid_t c2;
	fs_bcache_put(r.c, &c2, block('c', 100, &c2), 100);
	CHECK(cached(&r, &b, 'b', 100) && cached(&r, &c, 'c', 100));
	teardown(&r);
}

static void a_miss_is_fetched_through_the_chain_and_kept(void)
{
	struct rig r;
	setup(&r, 4, 1 << 20);
	blockid_t id;
	uint8_t *b = block('q', 5000, &id);
	CHECK_EQ(store_put(r.s, &id, b, 5000), 0);
	free(b);
	uint8_t out[10];
	/* A manifest that says another length is an error, not a short read. */
	CHECK_EQ(fs_bcache_read(r.c, r.f, &id, 0, 4000, 0, out, 10), -EIO);
	CHECK_EQ(fs_bcache_read(r.c, r.f, &id, 0, 5000, 4990, out, 10), 0);
	CHECK(out[0] == 'q' && out[9] == 'q');
	/* Kept: served from memory once the store has lost it. */
	CHECK_EQ(store_remove(r.s, &id), 0);
	CHECK(cached(&r, &id, 'q', 5000));
	blockid_t other;
	free(block('x', 10, &other));
	CHECK(fs_bcache_read(r.c, r.f, &other, 0, 10, 0, out, 10) < 0); /* nowhere */
	teardown(&r);
}

/* Ids that share the bytes the lookup hashes (a chain of several): each is
 * found, the right one, and evicting one from the middle of a chain keeps
 * the others reachable. */
static void ids_in_one_chain_are_told_apart(void)
{
	struct rig r;
	setup(&r, 4, 1 << 20);
	blockid_t ids[8];
	for (int i = 0; i < 8; i++) {
		memset(&ids[i], 0x5a, sizeof(ids[i]));
		ids[i].b[BLOCKID_SIZE - 1] = (uint8_t)i;
		uint8_t *d = malloc(64);
		memset(d, 'a' + i, 64);
		fs_bcache_put(r.c, &ids[i], d, 64);
		CHECK(fs_bcache_has(r.c, &ids[i]));
	}
	for (int i = 0; i < 8; i++) /* the four most recent are kept */
		CHECK_EQ(fs_bcache_has(r.c, &ids[i]), i >= 4);
	CHECK(cached(&r, &ids[5], 'f', 64)); /* 5 is now the most recent */
	uint8_t *d = malloc(64);
	memset(d, 'z', 64);
	blockid_t z;
	memset(&z, 0x5a, sizeof(z));
	z.b[BLOCKID_SIZE - 1] = 0x7f;
	fs_bcache_put(r.c, &z, d, 64); /* evicts 4, in the middle of the chain */
	CHECK(!fs_bcache_has(r.c, &ids[4]));
	CHECK(cached(&r, &ids[5], 'f', 64) && cached(&r, &ids[6], 'g', 64) &&
	      cached(&r, &ids[7], 'h', 64) && cached(&r, &z, 'z', 64));
	teardown(&r);
}

int main(void)
{
	seal_init();
	seal_random_key(idkey);
	TEST(the_byte_budget_evicts_the_least_recently_used);
	TEST(the_slot_count_bounds_small_blocks);
	TEST(a_miss_is_fetched_through_the_chain_and_kept);
	TEST(ids_in_one_chain_are_told_apart);
	TAP_DONE();
}
