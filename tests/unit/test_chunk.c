/* test_chunk: proves the properties of the content-defined chunker that the
 * rest of peercling relies on: sizes within bounds, exact cover, the same cuts
 * on every run and machine (pinned offsets), and that a small edit in the
 * middle of a big file leaves almost every block of it unchanged. */
#include "config.h"
#include "core/chunk.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"

#define MIB (1024u * 1024)
#define ID_SIZE 32

/* splitmix64: the test's own fixed-seed generator, so the data (and hence the
 * pinned cut offsets) never depend on the C library.  Bytes are taken least
 * significant first, the same on every byte order. */
static void fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed;
	size_t i, j;

	for (i = 0; i < len; i += 8) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		for (j = 0; j < 8 && i + j < len; j++)
			buf[i + j] = (uint8_t)(z >> (8 * j));
	}
}

static uint8_t *random_buf(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len ? len : 1);

	if (!b) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	fill_random(b, len, seed);
	return b;
}

/* Chunks data and stores the cut lengths in *lens (malloc'd); returns the
 * number of chunks. */
static size_t chunk_all(const uint8_t *data, size_t len, size_t **lens)
{
	size_t cap = len / CHUNK_MIN + 2, n = 0, off = 0;

	*lens = malloc(cap * sizeof(**lens));
	while (off < len) {
		size_t c = chunk_next(data + off, len - off);
		if (c == 0 || n == cap)
			break;
		(*lens)[n++] = c;
		off += c;
	}
	return n;
}

struct chunk_id {
	uint8_t h[ID_SIZE];
};

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ID_SIZE);
}

/* Ids (BLAKE2b-256) of every chunk of data; returns the count. */
static size_t chunk_ids(const uint8_t *data, size_t len, struct chunk_id **ids)
{
	size_t *lens, n = chunk_all(data, len, &lens), i, off = 0;

	*ids = malloc((n ? n : 1) * sizeof(**ids));
	for (i = 0; i < n; i++) {
		crypto_generichash((*ids)[i].h, ID_SIZE, data + off, lens[i], NULL, 0);
		off += lens[i];
	}
	free(lens);
	return n;
}

/* How many chunks of new are not chunks of old. */
static size_t count_new_chunks(const uint8_t *old, size_t old_len, const uint8_t *cur,
			       size_t cur_len, size_t *total)
{
	struct chunk_id *a, *b;
	size_t na = chunk_ids(old, old_len, &a), nb = chunk_ids(cur, cur_len, &b), i, fresh = 0;

	qsort(a, na, sizeof(*a), id_cmp);
	for (i = 0; i < nb; i++)
		if (!bsearch(&b[i], a, na, sizeof(*a), id_cmp))
			fresh++;
	free(a);
	free(b);
	*total = nb;
	return fresh;
}

static void check_bounds_and_cover(const uint8_t *data, size_t len)
{
	size_t *lens, n = chunk_all(data, len, &lens), i, sum = 0, bad = 0;

	for (i = 0; i < n; i++) {
		sum += lens[i];
		if (i + 1 < n && (lens[i] < CHUNK_MIN || lens[i] > CHUNK_MAX))
			bad++;
		if (lens[i] > CHUNK_MAX || lens[i] == 0)
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(sum, len);
	printf("# %zu bytes: %zu chunks, average %zu\n", len, n, n ? len / n : 0);
	free(lens);
}

static void chunks_within_bounds_and_cover_input(void)
{
	size_t len = 32 * MIB + 12345;
	uint8_t *b = random_buf(len, 1);
	size_t i;

	check_bounds_and_cover(b, len);
	/* Low-entropy but not constant data: text-like, short repeating runs. */
	for (i = 0; i < len; i++)
		b[i] = "peercling \n"[(i * 7 + i / 4096) % 11];
	check_bounds_and_cover(b, len);
	free(b);
}

static void same_data_gives_same_cuts(void)
{
	size_t len = 8 * MIB;
	uint8_t *b = random_buf(len, 2), *copy = malloc(len);
	size_t *l1, *l2, n1, n2;

	memcpy(copy, b, len);
	n1 = chunk_all(b, len, &l1);
	n2 = chunk_all(copy, len, &l2);
	CHECK_EQ(n1, n2);
	CHECK(n1 == n2 && memcmp(l1, l2, n1 * sizeof(*l1)) == 0);
	free(l1);
	free(l2);
	free(b);
	free(copy);
}

/* The contract that lets callers stream: a cut depends only on the bytes up
 * to CHUNK_MAX after the chunk start, never on what follows. */
static void cut_ignores_bytes_beyond_max(void)
{
	size_t len = 4 * MIB, off = 0, bad = 0;
	uint8_t *b = random_buf(len, 3);

	while (off < len) {
		size_t rest = len - off, window = rest < CHUNK_MAX ? rest : CHUNK_MAX;
		size_t c = chunk_next(b + off, rest);
		if (chunk_next(b + off, window) != c)
			bad++;
		off += c;
	}
	CHECK_EQ(bad, 0);
	free(b);
}

/* Pinned regression: any change to the gear table, the masks, the sizes or
 * the loop moves these cuts, and would make every device cut files
 * differently from the blocks already stored.  Change only on purpose.  The
 * first cuts are pinned one by one; all cuts of 16 MiB through their count
 * and an FNV-1a fold of their offsets, which also catches a change that
 * moves only a few cuts (a single flipped bit of one gear entry). */
static void cuts_are_pinned(void)
{
	static const size_t want[] = {
		94612, 163522, 237532, 303212, 376309, 459582, 526606, 549625,
	};
	size_t len = 16 * MIB, off = 0, i, n = 0;
	uint8_t *b = random_buf(len, 0x70656572636c696eull);
	uint64_t fold = 0xcbf29ce484222325ull;

	for (i = 0; off < len; i++) {
		off += chunk_next(b + off, len - off);
		if (i < sizeof(want) / sizeof(want[0])) {
			printf("# cut %zu at %zu\n", i, off);
			CHECK_EQ(off, want[i]);
		}
		fold = (fold ^ off) * 0x100000001b3ull;
		n++;
	}
	printf("# %zu cuts, fold 0x%016llx\n", n, (unsigned long long)fold);
	CHECK_EQ(n, 222);
	CHECK(fold == 0xadc57ac27c5fec85ull);
	free(b);
}

/* A small edit in the middle of a 64 MiB file changes at most two of its
 * blocks: everything after the next surviving cut is shared. */
static void mid_file_edit_keeps_other_chunks(void)
{
	size_t len = 64 * MIB, mid = len / 2 + 4321, total, fresh;
	uint8_t *old = random_buf(len, 4), *cur = malloc(len + 10);
	static const uint8_t ins[10] = "0123456789";

	/* Insert 10 bytes. */
	memcpy(cur, old, mid);
	memcpy(cur + mid, ins, sizeof(ins));
	memcpy(cur + mid + sizeof(ins), old + mid, len - mid);
	fresh = count_new_chunks(old, len, cur, len + sizeof(ins), &total);
	printf("# insert 10 bytes at %zu: %zu of %zu chunks new\n", mid, fresh, total);
	CHECK(fresh >= 1);
	CHECK(fresh <= 2);

	/* Delete 7 bytes. */
	memcpy(cur, old, mid);
	memcpy(cur + mid, old + mid + 7, len - mid - 7);
	fresh = count_new_chunks(old, len, cur, len - 7, &total);
	printf("# delete 7 bytes at %zu: %zu of %zu chunks new\n", mid, fresh, total);
	CHECK(fresh >= 1);
	CHECK(fresh <= 2);

	free(old);
	free(cur);
}

/* Each edge case in a buffer of exactly its size, so that ASan sees any
 * read past the end. */
static size_t chunk_exact(size_t len, int zero)
{
	uint8_t *b = random_buf(len, 5);
	size_t c;

	if (zero)
		memset(b, 0, len ? len : 1);
	c = chunk_next(b, len);
	free(b);
	return c;
}

static void edge_lengths(void)
{
	size_t c;

	CHECK_EQ(chunk_exact(0, 0), 0);
	CHECK_EQ(chunk_next(NULL, 0), 0);
	CHECK_EQ(chunk_exact(1, 0), 1);
	CHECK_EQ(chunk_exact(CHUNK_MIN - 1, 0), CHUNK_MIN - 1);
	CHECK_EQ(chunk_exact(CHUNK_MIN, 0), CHUNK_MIN);
	c = chunk_exact(CHUNK_MAX + 1, 0);
	CHECK(c >= CHUNK_MIN && c <= CHUNK_MAX);
	CHECK_EQ(chunk_exact(CHUNK_MAX + 1, 1), CHUNK_MAX);
	c = chunk_exact(CHUNK_MAX, 0);
	CHECK(c >= CHUNK_MIN && c <= CHUNK_MAX);
	c = chunk_exact(CHUNK_MAX - 1, 1);
	CHECK_EQ(c, CHUNK_MAX - 1);
}

/* All-zero data never matches a mask: every chunk is CHUNK_MAX long, with
 * the remainder (if any) as the last. */
static void zeros_cut_at_max(void)
{
	static const size_t lens_to_try[] = {10 * MIB, 10 * MIB + 1000};
	size_t t;

	for (t = 0; t < 2; t++) {
		size_t len = lens_to_try[t], *lens, n, i, bad = 0;
		uint8_t *b = calloc(1, len);
		size_t last = len % CHUNK_MAX ? len % CHUNK_MAX : CHUNK_MAX;

		n = chunk_all(b, len, &lens);
		for (i = 0; i < n; i++)
			if (lens[i] != (i + 1 < n ? CHUNK_MAX : last))
				bad++;
		CHECK_EQ(bad, 0);
		CHECK_EQ(n, (len + CHUNK_MAX - 1) / CHUNK_MAX);
		free(lens);
		free(b);
	}
}

int main(void)
{
	if (sodium_init() < 0) {
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	TEST(chunks_within_bounds_and_cover_input);
	TEST(same_data_gives_same_cuts);
	TEST(cut_ignores_bytes_beyond_max);
	TEST(cuts_are_pinned);
	TEST(mid_file_edit_keeps_other_chunks);
	TEST(edge_lengths);
	TEST(zeros_cut_at_max);
	TAP_DONE();
}
