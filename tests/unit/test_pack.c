/* test_pack: the pack index format refuses anything malformed, and a
 * pack_set finds every block, keeps its indexes across a restart and drops
 * a damaged copy instead of trusting it. */
#include "config.h"
#include "core/blockid.h"
#include "core/error.h"
#include "core/seal.h"
#include "sync/pack.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXLEN (256 * 1024 + SEAL_OVERHEAD)

static void entries(struct pack_entry *e, size_t n, unsigned seed)
{
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		for (size_t k = 0; k < BLOCKID_SIZE; k++)
			e[i].id.b[k] = (uint8_t)(seed * 31 + i * 7 + k * 13);
		e[i].id.b[0] = (uint8_t)i; /* distinct ids, whatever n */
		e[i].id.b[1] = (uint8_t)(i >> 8);
		e[i].id.b[2] = (uint8_t)seed;
		e[i].len = (uint32_t)(1000 + (i * 977 + seed) % 60000);
		e[i].off = off;
		off += e[i].len;
	}
}

static void round_trip(void)
{
	struct pack_entry e[40], *back = NULL;
	entries(e, 40, 1);
	uint8_t *body = NULL;
	size_t len = 0, n = 0;
	CHECK_EQ(pack_index_encode(e, 40, &body, &len), 0);
	CHECK_EQ(len, (size_t)(PACK_INDEX_HEAD + 40 * PACK_INDEX_ENTRY));
	CHECK_EQ(pack_index_decode(body, len, MAXLEN, &back, &n), 0);
	CHECK_EQ(n, (size_t)40);
	for (size_t i = 0; back && i < n; i++) /* field by field: there is padding */
		CHECK(!blockid_cmp(&back[i].id, &e[i].id) && back[i].off == e[i].off &&
		      back[i].len == e[i].len);
	free(back);
	free(body);
}

static int decodes(const uint8_t *body, size_t len)
{
	struct pack_entry *e = NULL;
	size_t n = 0;
	int rc = pack_index_decode(body, len, MAXLEN, &e, &n);
	if (rc == 0) {
		/* Whatever passes is in place: back to back from 0. */
		uint64_t off = 0;
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(e[i].off, off);
			CHECK(e[i].len > 0 && e[i].len <= MAXLEN);
			off += e[i].len;
		}
	} else {
		CHECK_EQ(rc, -EBADMSG);
		CHECK(e == NULL);
	}
	free(e);
	return rc == 0;
}

static void malformed_indexes_are_refused(void)
{
	struct pack_entry e[8];
	entries(e, 8, 2);
	uint8_t *body = NULL, *bad = NULL;
	size_t len = 0;
	CHECK_EQ(pack_index_encode(e, 8, &body, &len), 0);
	bad = malloc(len + 64);
	CHECK(decodes(body, len));
	/* Truncated anywhere, or longer than its count says. */
	for (size_t cut = 0; cut < len; cut += 7)
		CHECK(!decodes(body, cut));
	memcpy(bad, body, len);
	memset(bad + len, 0, 64);
	CHECK(!decodes(bad, len + PACK_INDEX_ENTRY));
	/* Another magic. */
	memcpy(bad, body, len);
	bad[0] = 'X';
	CHECK(!decodes(bad, len));
	/* A gap, an overlap, a zero or an oversized length. */
	struct pack_entry g[8];
	memcpy(g, e, sizeof(g));
	g[3].off += 1;
	uint8_t *b2 = NULL;
	size_t l2 = 0;
	CHECK_EQ(pack_index_encode(g, 8, &b2, &l2), 0);
	CHECK(!decodes(b2, l2));
	free(b2);
	memcpy(g, e, sizeof(g));
	g[5].off -= 1;
	CHECK_EQ(pack_index_encode(g, 8, &b2, &l2), 0);
	CHECK(!decodes(b2, l2));
	free(b2);
	memcpy(g, e, sizeof(g));
	g[7].len = 0;
	CHECK_EQ(pack_index_encode(g, 8, &b2, &l2), 0);
	CHECK(!decodes(b2, l2));
	free(b2);
	memcpy(g, e, sizeof(g));
	g[7].len = MAXLEN + 1;
	CHECK_EQ(pack_index_encode(g, 8, &b2, &l2), 0);
	CHECK(!decodes(b2, l2));
	free(b2);
	/* Random damage: refused or in place, never a crash (ASan watches). */
	int passed = 0, rounds = getenv("FUZZ_ITER") ? atoi(getenv("FUZZ_ITER")) : 20000;
	for (int round = 0; round < rounds; round++) {
		memcpy(bad, body, len);
		int flips = 1 + (int)randombytes_uniform(4);
		for (int f = 0; f < flips; f++)
			bad[randombytes_uniform((uint32_t)len)] ^= (uint8_t)(1 + randombytes_uniform(255));
		passed += decodes(bad, len);
	}
	/* Flips inside ids pass (an id is any 32 bytes); the rest mostly not. */
	CHECK(passed > 0 && passed < rounds);
	free(bad);
	free(body);
}

static void add(struct pack_set *s, const char *name, struct pack_entry *e, size_t n)
{
	uint8_t *body = NULL;
	size_t len = 0;
	CHECK_EQ(pack_index_encode(e, n, &body, &len), 0);
	CHECK_EQ(pack_set_add(s, name, body, len), 0);
	free(body);
}

static const char A[] = "0123456789abcdef0123456789abcdef";
static const char B[] = "fedcba9876543210fedcba9876543210";

static void a_set_finds_every_block_and_survives_a_restart(void)
{
	char *dir = tap_tmpdir();
	char sub[4096];
	snprintf(sub, sizeof(sub), "%s/packs", dir);
	struct pack_set *s = NULL;
	CHECK_EQ(pack_set_new(&s, sub), 0);
	struct pack_entry a[300], b[5];
	entries(a, 300, 3);
	entries(b, 5, 4);
	add(s, A, a, 300);
	add(s, B, b, 5);
	CHECK_EQ(pack_set_count(s), (size_t)2);
	CHECK(pack_set_has(s, A) && pack_set_has(s, B));
	CHECK(!pack_set_has(s, "00000000000000000000000000000000"));
	/* Not a name: refused, not written anywhere. */
	uint8_t *body = NULL;
	size_t len = 0;
	CHECK_EQ(pack_index_encode(b, 5, &body, &len), 0);
	CHECK_EQ(pack_set_add(s, "../escape", body, len), -EBADMSG);
	free(body);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < 300; i++) {
			struct pack_loc loc;
			CHECK_EQ(pack_find(s, &a[i].id, &loc), 1);
			CHECK_EQ(loc.pos, (uint32_t)i);
			CHECK_EQ(loc.e.off, a[i].off);
			CHECK_EQ(loc.e.len, a[i].len);
			char name[PACK_NAME_SIZE];
			pack_name(s, loc.pack, name);
			CHECK(!strcmp(name, A));
		}
		struct pack_loc loc;
		CHECK_EQ(pack_find(s, &b[4].id, &loc), 1);
		struct pack_entry e;
		CHECK_EQ(pack_entry_at(s, loc.pack, 4, &e), 1);
		CHECK_EQ(pack_entry_at(s, loc.pack, 5, &e), 0);
		blockid_t none;
		memset(&none, 0xee, sizeof(none));
		CHECK_EQ(pack_find(s, &none, &loc), 0);
		/* Again from what the directory kept. */
		pack_set_free(s);
		s = NULL;
		CHECK_EQ(pack_set_new(&s, sub), 0);
		CHECK_EQ(pack_set_count(s), (size_t)2);
	}
	pack_set_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_damaged_copy_is_dropped_not_trusted(void)
{
	char *dir = tap_tmpdir();
	char sub[4096], path[4200];
	snprintf(sub, sizeof(sub), "%s/packs", dir);
	struct pack_set *s = NULL;
	CHECK_EQ(pack_set_new(&s, sub), 0);
	struct pack_entry a[10], b[10];
	entries(a, 10, 5);
	entries(b, 10, 6);
	add(s, A, a, 10);
	add(s, B, b, 10);
	pack_set_free(s);
	snprintf(path, sizeof(path), "%s/%s", sub, B);
	CHECK_EQ(truncate(path, 30), 0);
	snprintf(path, sizeof(path), "%s/%s.tmp", sub, A); /* a write cut short */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK_EQ(pack_set_new(&s, sub), 0);
	CHECK_EQ(pack_set_count(s), (size_t)1);
	CHECK(pack_set_has(s, A) && !pack_set_has(s, B));
	snprintf(path, sizeof(path), "%s/%s", sub, B);
	CHECK(access(path, F_OK) != 0);
	snprintf(path, sizeof(path), "%s/%s.tmp", sub, A);
	CHECK(access(path, F_OK) != 0);
	pack_set_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_block_in_two_packs_is_found_in_either(void)
{
	struct pack_set *s = NULL;
	CHECK_EQ(pack_set_new(&s, NULL), 0);
	struct pack_entry a[3], b[3];
	entries(a, 3, 7);
	entries(b, 3, 8);
	b[1].id = a[2].id;
	add(s, A, a, 3);
	add(s, B, b, 3);
	struct pack_loc loc;
	CHECK_EQ(pack_find(s, &a[2].id, &loc), 1);
	CHECK(loc.pos == 2 || loc.pos == 1);
	CHECK_EQ(pack_find(s, &b[2].id, &loc), 1);
	CHECK_EQ(loc.pos, (uint32_t)2);
	pack_set_free(s);
}

int main(void)
{
	seal_init();
	TEST(round_trip);
	TEST(malformed_indexes_are_refused);
	TEST(a_set_finds_every_block_and_survives_a_restart);
	TEST(a_damaged_copy_is_dropped_not_trusted);
	TEST(a_block_in_two_packs_is_found_in_either);
	TAP_DONE();
}
