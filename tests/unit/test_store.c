/* test_store: the block store keeps blocks intact and durable, never hands
 * out a corrupt one, still reads block files written before the trailer
 * existed, evicts least-recently-used blocks but never pinned or dirty
 * ones, and keeps pins and the dirty set across restarts and crashes (torn
 * log records).  STORE_BIG=1 adds timings: open over 100,000 blocks, and
 * store_get over 16,000 blocks of 64 KiB. */
#include "config.h"

#include "core/error.h"
#include "core/store.h"
#include "core/store_pack.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Block files carry a trailer: the byte counts below are file sizes. */
#define T STORE_TRAILER_SIZE

static uint8_t key[BLOCKID_KEY_SIZE];

/* Deterministic, distinct contents for block number n. */
static uint8_t *make_data(unsigned n, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t x = n * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static void block_path(char *out, size_t n, const char *dir, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(id, hex);
	snprintf(out, n, "%s/%.2s/%s", dir, hex, hex);
}

static void corrupt_path(char *out, size_t n, const char *dir, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(id, hex);
	snprintf(out, n, "%s/corrupt/%s", dir, hex);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* Writes data as a block file of the layout before the trailer (the plain
 * bytes only) straight into the store at dir, and returns its id. */
static blockid_t place_old_block(const char *dir, const void *data, size_t len)
{
	blockid_t id;
	char path[4200];
	blockid_compute(&id, key, data, len);
	snprintf(path, sizeof(path), "%s/%02x", dir, id.b[0]);
	mkdir(path, 0700);
	block_path(path, sizeof(path), dir, &id);
	write_file(path, data, len);
	return id;
}

/* A trailer as the store writes it: "PCb1", 4 zero bytes, XXH3-64 of the
 * data seeded with the id's first 8 bytes, little-endian. */
static void make_trailer(uint8_t t[T], const blockid_t *id, const void *data, size_t len)
{
	uint64_t seed = 0, sum;
	for (int i = 7; i >= 0; i--)
		seed = seed << 8 | id->b[i];
	sum = XXH3_64bits_withSeed(data, len, seed);
	memcpy(t, "PCb1\0\0\0\0", 8);
	for (int i = 0; i < 8; i++)
		t[8 + i] = (uint8_t)(sum >> (8 * i));
}

static struct store *open_at(const char *dir, uint64_t limit)
{
	struct store *s = NULL;
	int rc = store_open(&s, dir, key, limit);
	if (rc)
		printf("# store_open(%s): %d %s\n", dir, rc, error_last());
	CHECK_EQ(rc, 0);
	return s;
}

/* Puts block n of len bytes, returning its id. */
static blockid_t put_n(struct store *s, unsigned n, size_t len, int dirty)
{
	blockid_t id;
	uint8_t *d = make_data(n, len);
	CHECK_EQ(store_put_data(s, &id, d, len, dirty), 0);
	free(d);
	return id;
}

static int get_ok(struct store *s, const blockid_t *id, unsigned n, size_t len)
{
	uint8_t *buf = NULL, *want = make_data(n, len);
	size_t got = 0;
	int ok = store_get(s, id, &buf, &got) == 0 && got == len && memcmp(buf, want, len) == 0;
	free(buf);
	free(want);
	return ok;
}

static void put_get_round_trips(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t id = put_n(s, 1, 5000, 0), want;
	uint8_t *d = make_data(1, 5000);
	blockid_compute(&want, key, d, 5000);
	CHECK(blockid_cmp(&id, &want) == 0);
	CHECK(get_ok(s, &id, 1, 5000));
	CHECK_EQ(store_has(s, &id), 1);
	char path[4200];
	block_path(path, sizeof(path), dir, &id);
	CHECK_EQ(file_size(path), 5000 + T);

	blockid_t empty;
	CHECK_EQ(store_put_data(s, &empty, "", 0, 0), 0);
	uint8_t *buf = NULL;
	size_t len = 1;
	CHECK_EQ(store_get(s, &empty, &buf, &len), 0);
	CHECK_EQ(len, 0);
	free(buf);
	block_path(path, sizeof(path), dir, &empty);
	CHECK_EQ(file_size(path), T);
	free(d);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void putting_the_same_data_twice_counts_once(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 7, 3000, 0), b = put_n(s, 7, 3000, 0);
	uint8_t *d = make_data(7, 3000);
	CHECK_EQ(store_put(s, &a, d, 3000), 0);
	CHECK(blockid_cmp(&a, &b) == 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.bytes, 3000 + T);
	free(d);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void getting_a_missing_id_is_enoent(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t id;
	memset(&id, 0xab, sizeof(id));
	uint8_t *buf = (uint8_t *)1;
	size_t len = 1;
	CHECK_EQ(store_get(s, &id, &buf, &len), -ENOENT);
	CHECK(buf == NULL);
	CHECK(strstr(error_last(), "abababab") != NULL);
	CHECK_EQ(store_has(s, &id), 0);
	CHECK_EQ(store_remove(s, &id), -ENOENT);
	CHECK_EQ(store_pin(s, &id), -ENOENT);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

/* Damages the block file with f, then checks the store refuses it and moves
 * it aside. */
static void check_damage_detected(void (*damage)(const char *path))
{
	char *dir = tap_tmpdir(), path[4200], moved[4200];
	struct store *s = open_at(dir, 0);
	blockid_t id = put_n(s, 3, 4096, 0);
	block_path(path, sizeof(path), dir, &id);
	corrupt_path(moved, sizeof(moved), dir, &id);
	damage(path);

	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(store_get(s, &id, &buf, &len), -ENOENT);
	CHECK(buf == NULL);
	CHECK(!exists(path));
	CHECK(exists(moved));
	CHECK_EQ(store_has(s, &id), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.corrupt_blocks, 1);
	CHECK_EQ(st.blocks, 0);
	CHECK_EQ(st.bytes, 0);

	/* A good copy from elsewhere is taken again. */
	uint8_t *d = make_data(3, 4096);
	CHECK_EQ(store_put(s, &id, d, 4096), 0);
	CHECK(get_ok(s, &id, 3, 4096));
	free(d);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void flip_one_bit(const char *path)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;
	CHECK(fd >= 0 && pread(fd, &b, 1, 1000) == 1);
	b ^= 0x10;
	CHECK(pwrite(fd, &b, 1, 1000) == 1);
	close(fd);
}

static void truncate_half(const char *path)
{
	CHECK_EQ(truncate(path, 2048), 0);
}

static void flip_byte_at(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;
	CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
	b ^= 0x01;
	CHECK(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

/* The block check_damage_detected stores is 4096 bytes: its trailer is at
 * 4096..4111. */
static void flip_magic(const char *path)
{
	flip_byte_at(path, 4096 + 2);
}

static void flip_reserved(const char *path)
{
	flip_byte_at(path, 4096 + 5);
}

static void flip_checksum(const char *path)
{
	flip_byte_at(path, 4096 + T - 1);
}

static void cut_last_byte(const char *path)
{
	CHECK_EQ(truncate(path, 4096 + T - 1), 0);
}

static void cut_to_trailer_size(const char *path)
{
	CHECK_EQ(truncate(path, T), 0);
}

static void cut_to_nothing(const char *path)
{
	CHECK_EQ(truncate(path, 0), 0);
}

static void a_flipped_bit_on_disk_is_detected_and_quarantined(void)
{
	check_damage_detected(flip_one_bit);
}

static void a_flipped_trailer_byte_is_detected_and_quarantined(void)
{
	check_damage_detected(flip_magic);
	check_damage_detected(flip_reserved);
	check_damage_detected(flip_checksum);
}

static void a_truncated_block_is_detected_and_quarantined(void)
{
	check_damage_detected(truncate_half);
	check_damage_detected(cut_last_byte);
	check_damage_detected(cut_to_trailer_size);
	check_damage_detected(cut_to_nothing);
}

/* An intact block file under another block's name is damage too (a copy
 * or rename gone wrong): the checksum is seeded with the id, so it fails. */
static void another_blocks_intact_file_under_an_id_is_detected(void)
{
	char *dir = tap_tmpdir(), from[4200], to[4200], moved[4200];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 4096, 0), b = put_n(s, 2, 4096, 0);
	block_path(from, sizeof(from), dir, &a);
	block_path(to, sizeof(to), dir, &b);
	corrupt_path(moved, sizeof(moved), dir, &b);
	uint8_t file[4096 + T];
	int fd = open(from, O_RDONLY);
	CHECK(fd >= 0 && read(fd, file, sizeof(file)) == (ssize_t)sizeof(file));
	close(fd);
	write_file(to, file, sizeof(file));
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(store_get(s, &b, &buf, &len), -ENOENT);
	CHECK(buf == NULL);
	CHECK(exists(moved));
	CHECK(get_ok(s, &a, 1, 4096));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

/* Caches written before the trailer existed hold plain block files, some of
 * them dirty blocks that exist nowhere else: they must read as before. */
static void block_files_without_a_trailer_are_still_read(void)
{
	char *dir = tap_tmpdir(), path[4200];
	store_free(open_at(dir, 0));
	uint8_t *d = make_data(1, 5000), *buf = NULL;
	blockid_t old = place_old_block(dir, d, 5000);
	blockid_t empty = place_old_block(dir, "", 0);
	blockid_t small = place_old_block(dir, d, 7); /* shorter than a trailer */
	struct store *s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 3);
	CHECK_EQ(st.bytes, 5007); /* their file sizes: no trailer */
	CHECK(get_ok(s, &old, 1, 5000));
	CHECK(get_ok(s, &small, 1, 7));
	size_t len = 1;
	CHECK_EQ(store_get(s, &empty, &buf, &len), 0);
	CHECK_EQ(len, 0);
	free(buf);
	/* A put of the same data does not rewrite the file. */
	blockid_t again = put_n(s, 1, 5000, 1);
	CHECK(blockid_cmp(&again, &old) == 0);
	block_path(path, sizeof(path), dir, &old);
	CHECK_EQ(file_size(path), 5000);
	CHECK(get_ok(s, &old, 1, 5000));
	store_get_stats(s, &st);
	CHECK_EQ(st.corrupt_blocks, 0);
	CHECK_EQ(st.dirty_bytes, 5000);
	/* A new block next to them gets the trailer. */
	blockid_t fresh = put_n(s, 2, 5000, 0);
	block_path(path, sizeof(path), dir, &fresh);
	CHECK_EQ(file_size(path), 5000 + T);
	store_get_stats(s, &st);
	CHECK_EQ(st.bytes, 10007 + T);
	store_free(s);

	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.bytes, 10007 + T);
	CHECK(get_ok(s, &old, 1, 5000));
	CHECK(get_ok(s, &fresh, 2, 5000));
	store_free(s);
	free(d);
	tap_rmrf(dir);
	free(dir);
}

static void a_damaged_block_file_without_a_trailer_is_quarantined(void)
{
	char *dir = tap_tmpdir(), path[4200], moved[4200];
	store_free(open_at(dir, 0));
	uint8_t *d = make_data(3, 4096), *buf = NULL;
	blockid_t id = place_old_block(dir, d, 4096);
	block_path(path, sizeof(path), dir, &id);
	corrupt_path(moved, sizeof(moved), dir, &id);
	flip_one_bit(path);
	struct store *s = open_at(dir, 0);
	size_t len = 0;
	CHECK_EQ(store_get(s, &id, &buf, &len), -ENOENT);
	CHECK(buf == NULL);
	CHECK(!exists(path));
	CHECK(exists(moved));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.corrupt_blocks, 1);
	CHECK_EQ(st.bytes, 0);
	store_free(s);
	free(d);
	tap_rmrf(dir);
	free(dir);
}

/* Block data whose last 16 bytes look like a trailer of the bytes before
 * them (say a peercling block file stored as a file): the store must hand
 * back all of it, from a new file and from an old one. */
static void data_ending_in_a_trailer_shaped_tail_round_trips(void)
{
	char *dir = tap_tmpdir();
	store_free(open_at(dir, 0));
	size_t plen = 3000, len = plen + T;
	uint8_t *d = realloc(make_data(5, plen), len), *d2 = malloc(len);
	blockid_t pid;
	blockid_compute(&pid, key, d, plen);
	make_trailer(d + plen, &pid, d, plen); /* valid for the first 3000 bytes */
	memcpy(d2, d, plen);
	blockid_t zero = {{0}};
	make_trailer(d2 + plen, &zero, d2, plen); /* and an unseeded XXH3 */
	blockid_t old = place_old_block(dir, d, len), old2 = place_old_block(dir, d2, len);

	struct store *s = open_at(dir, 0);
	uint8_t *buf = NULL;
	size_t got = 0;
	CHECK_EQ(store_get(s, &old, &buf, &got), 0);
	CHECK(got == len && memcmp(buf, d, len) == 0);
	free(buf);
	CHECK_EQ(store_get(s, &old2, &buf, &got), 0);
	CHECK(got == len && memcmp(buf, d2, len) == 0);
	free(buf);

	/* The same data put anew, on a store without the old file. */
	store_free(s);
	tap_rmrf(dir);
	s = open_at(dir, 0);
	blockid_t id;
	CHECK_EQ(store_put_data(s, &id, d, len, 0), 0);
	CHECK(blockid_cmp(&id, &old) == 0);
	CHECK_EQ(store_get(s, &id, &buf, &got), 0);
	CHECK(got == len && memcmp(buf, d, len) == 0);
	free(buf);
	store_free(s);
	s = open_at(dir, 0);
	CHECK_EQ(store_get(s, &id, &buf, &got), 0);
	CHECK(got == len && memcmp(buf, d, len) == 0);
	free(buf);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.corrupt_blocks, 0);
	store_free(s);
	free(d);
	free(d2);
	tap_rmrf(dir);
	free(dir);
}

static void writeback_puts_round_trip(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = open_at(dir, 0);
	blockid_t ids[8];
	for (unsigned i = 0; i < 8; i++) {
		uint8_t *d = make_data(i, 10000 + i);
		int flags = STORE_DEFER_SYNC | STORE_WRITEBACK | (i % 2 ? STORE_DIRTY : 0);
		CHECK_EQ(store_put_data(s, &ids[i], d, 10000 + i, flags), 0);
		free(d);
	}
	CHECK_EQ(store_sync(s), 0);
	/* Without STORE_DEFER_SYNC the flag changes nothing. */
	blockid_t plain;
	uint8_t *d = make_data(99, 777);
	CHECK_EQ(store_put_data(s, &plain, d, 777, STORE_WRITEBACK), 0);
	free(d);
	for (unsigned i = 0; i < 8; i++) {
		CHECK(get_ok(s, &ids[i], i, 10000 + i));
		block_path(path, sizeof(path), dir, &ids[i]);
		CHECK_EQ(file_size(path), 10000 + i + T);
	}
	CHECK(get_ok(s, &plain, 99, 777));
	store_free(s);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 9);
	CHECK_EQ(st.dirty_blocks, 4);
	CHECK_EQ(st.bytes, 8 * 10000 + 28 + 777 + 9 * T);
	for (unsigned i = 0; i < 8; i++)
		CHECK(get_ok(s, &ids[i], i, 10000 + i));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_corrupt_pinned_dirty_block_loses_its_pin_and_dirty_mark_for_good(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = open_at(dir, 0);
	blockid_t id = put_n(s, 4, 2000, 1);
	CHECK_EQ(store_pin(s, &id), 0);
	block_path(path, sizeof(path), dir, &id);
	flip_one_bit(path);
	uint8_t *buf = NULL;
	size_t len;
	CHECK_EQ(store_get(s, &id, &buf, &len), -ENOENT);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 0);
	CHECK_EQ(st.dirty_blocks, 0);
	/* The same id re-fetched clean must not come back pinned or dirty. */
	put_n(s, 4, 2000, 0);
	store_free(s);
	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.pinned_blocks, 0);
	CHECK_EQ(st.dirty_blocks, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void put_with_data_not_matching_the_id_is_ebadmsg_and_stores_nothing(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	uint8_t *a = make_data(1, 1000), *b = make_data(2, 1000);
	blockid_t ida;
	blockid_compute(&ida, key, a, 1000);
	CHECK_EQ(store_put(s, &ida, b, 1000), -EBADMSG);
	CHECK_EQ(store_has(s, &ida), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 0);
	CHECK_EQ(st.bytes, 0);
	char path[4200];
	block_path(path, sizeof(path), dir, &ida);
	CHECK(!exists(path));
	free(a);
	free(b);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void eviction_under_a_limit_takes_the_least_recently_used_first(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 3500);
	blockid_t a = put_n(s, 1, 1000, 0), b = put_n(s, 2, 1000, 0), c = put_n(s, 3, 1000, 0);
	CHECK(get_ok(s, &a, 1, 1000)); /* a is now newer than b and c */
	blockid_t d = put_n(s, 4, 1000, 0);
	CHECK_EQ(store_has(s, &a), 1);
	CHECK_EQ(store_has(s, &b), 0);
	CHECK_EQ(store_has(s, &c), 1);
	CHECK_EQ(store_has(s, &d), 1);
	put_n(s, 3, 1000, 0); /* a put of a present block touches it too */
	blockid_t e = put_n(s, 5, 1000, 0);
	CHECK_EQ(store_has(s, &a), 0);
	CHECK_EQ(store_has(s, &c), 1);
	CHECK_EQ(store_has(s, &e), 1);
	char path[4200];
	block_path(path, sizeof(path), dir, &b);
	CHECK(!exists(path));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.evicted_blocks, 2);
	CHECK_EQ(st.blocks, 3);
	CHECK_EQ(st.bytes, 3 * (1000 + T));

	/* Lowering the limit evicts down to it at once. */
	CHECK_EQ(store_set_limit(s, 1500), 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(store_has(s, &e), 1);
	CHECK_EQ(st.limit, 1500);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void pinned_and_dirty_blocks_survive_a_limit_smaller_than_they_are(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t dirty = put_n(s, 1, 3000, 1), pinned = put_n(s, 2, 3000, 0);
	CHECK_EQ(store_pin(s, &pinned), 0);
	CHECK_EQ(store_set_limit(s, 1000), 0);
	blockid_t c = put_n(s, 3, 500, 0), d = put_n(s, 4, 500, 0);
	CHECK_EQ(store_has(s, &dirty), 1);
	CHECK_EQ(store_has(s, &pinned), 1);
	CHECK_EQ(store_has(s, &c), 0);
	/* The block a put just stored is spared by that put's own eviction. */
	CHECK_EQ(store_has(s, &d), 1);
	CHECK(get_ok(s, &dirty, 1, 3000));
	CHECK(get_ok(s, &pinned, 2, 3000));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 1);
	CHECK_EQ(st.pinned_bytes, 3000 + T);
	CHECK_EQ(st.dirty_blocks, 1);
	CHECK_EQ(st.dirty_bytes, 3000 + T);
	CHECK_EQ(st.bytes, 6500 + 3 * T);

	/* Once uploaded and unpinned they become ordinary cache. */
	CHECK_EQ(store_set_clean(s, &dirty), 0);
	CHECK_EQ(store_unpin(s, &pinned), 0);
	store_get_stats(s, &st);
	CHECK(st.bytes <= 1000);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

struct walk {
	blockid_t ids[16];
	int n, stop_at;
	struct store *s;
	int clean;
};

static int collect(const blockid_t *id, uint64_t size, void *p)
{
	CHECK(size > 0);
	struct walk *w = p;
	w->ids[w->n++] = *id;
	if (w->clean)
		CHECK_EQ(store_set_clean(w->s, id), 0);
	return w->n == w->stop_at ? 42 : 0;
}

static void pins_and_the_dirty_set_persist_across_reopen_as_do_unpin_and_clean(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1), b = put_n(s, 2, 200, 1), c = put_n(s, 3, 300, 1);
	blockid_t d = put_n(s, 4, 400, 0), e = put_n(s, 5, 500, 0);
	CHECK_EQ(store_pin(s, &d), 0);
	CHECK_EQ(store_pin(s, &d), 0);
	CHECK_EQ(store_pin(s, &e), 0);
	store_free(s);

	s = open_at(dir, 0);
	struct walk w = {.stop_at = -1};
	CHECK_EQ(store_foreach_dirty(s, collect, &w), 0);
	CHECK_EQ(w.n, 3);
	CHECK(blockid_cmp(&w.ids[0], &a) == 0);
	CHECK(blockid_cmp(&w.ids[1], &b) == 0);
	CHECK(blockid_cmp(&w.ids[2], &c) == 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 2);
	CHECK_EQ(st.pinned_bytes, 900 + 2 * T);
	CHECK_EQ(st.dirty_blocks, 3);
	CHECK_EQ(st.dirty_bytes, 600 + 3 * T);
	CHECK_EQ(store_unpin(s, &d), 0);
	CHECK_EQ(store_unpin(s, &e), 0);
	CHECK_EQ(store_set_clean(s, &b), 0);
	store_free(s);

	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 1); /* d had two pins, one is left */
	CHECK_EQ(st.dirty_blocks, 2);
	CHECK_EQ(store_unpin(s, &d), 0);
	CHECK_EQ(store_unpin(s, &d), -EINVAL);
	CHECK_EQ(store_unpin(s, &e), -EINVAL);
	store_free(s);
	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void the_dirty_walk_follows_the_order_blocks_were_made_dirty(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1), b = put_n(s, 2, 100, 1), c = put_n(s, 3, 100, 0);
	put_n(s, 3, 100, 1); /* a clean block put again as new data turns dirty */
	put_n(s, 1, 100, 1); /* already dirty: keeps its place */
	CHECK_EQ(store_set_clean(s, &b), 0);
	put_n(s, 2, 100, 1); /* dirty again: goes to the end */
	store_free(s);
	s = open_at(dir, 0);

	struct walk w = {.stop_at = 2};
	CHECK_EQ(store_foreach_dirty(s, collect, &w), 42);
	CHECK_EQ(w.n, 2);
	memset(&w, 0, sizeof(w));
	w.stop_at = -1;
	w.s = s;
	w.clean = 1; /* an uploader cleans from inside the walk */
	CHECK_EQ(store_foreach_dirty(s, collect, &w), 0);
	CHECK_EQ(w.n, 3);
	CHECK(blockid_cmp(&w.ids[0], &a) == 0);
	CHECK(blockid_cmp(&w.ids[1], &c) == 0);
	CHECK(blockid_cmp(&w.ids[2], &b) == 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.dirty_blocks, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void append_to(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void a_torn_last_record_in_the_log_is_ignored(void)
{
	char *dir = tap_tmpdir(), logp[4200];
	snprintf(logp, sizeof(logp), "%s/store.log", dir);
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1), b = put_n(s, 2, 100, 0);
	CHECK_EQ(store_pin(s, &b), 0);
	store_free(s);
	long long before = file_size(logp);

	uint8_t junk[44];
	memset(junk, 0x5a, sizeof(junk));
	junk[0] = 'C'; /* looks like a clean mark, but its CRC is wrong */
	append_to(logp, junk, 20);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.dirty_blocks, 1);
	CHECK_EQ(st.pinned_blocks, 1);
	store_free(s);
	CHECK_EQ(file_size(logp) % 44, 0);

	append_to(logp, junk, sizeof(junk)); /* a whole record, torn inside */
	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.dirty_blocks, 1);
	CHECK_EQ(st.pinned_blocks, 1);
	CHECK_EQ(store_has(s, &a), 1);
	store_free(s);
	CHECK_EQ(file_size(logp), before);
	tap_rmrf(dir);
	free(dir);
}

static void log_records_of_blocks_whose_file_is_gone_are_dropped_at_open(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1);
	CHECK_EQ(store_pin(s, &a), 0);
	put_n(s, 2, 100, 1);
	store_free(s);
	block_path(path, sizeof(path), dir, &a);
	CHECK_EQ(unlink(path), 0);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.pinned_blocks, 0);
	CHECK_EQ(st.dirty_blocks, 1);
	/* Back again later, it is an ordinary block. */
	put_n(s, 1, 100, 0);
	store_free(s);
	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.pinned_blocks, 0);
	CHECK_EQ(st.dirty_blocks, 1);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static int removable(unsigned i)
{
	return i % 6 == 3 && i % 5 != 0 && i % 7 != 1;
}

static void accounting_after_reopen_equals_accounting_before(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t ids[40];
	for (unsigned i = 0; i < 40; i++)
		ids[i] = put_n(s, i, 100 + 37 * i, i % 5 == 0);
	for (unsigned i = 1; i < 40; i += 7)
		CHECK_EQ(store_pin(s, &ids[i]), 0);
	for (unsigned i = 0; i < 40; i++)
		if (removable(i))
			CHECK_EQ(store_remove(s, &ids[i]), 0);
	struct store_stats before, after;
	store_get_stats(s, &before);
	store_free(s);
	s = open_at(dir, 0);
	store_get_stats(s, &after);
	CHECK_EQ(after.blocks, before.blocks);
	CHECK_EQ(after.bytes, before.bytes);
	CHECK_EQ(after.pinned_blocks, before.pinned_blocks);
	CHECK_EQ(after.pinned_bytes, before.pinned_bytes);
	CHECK_EQ(after.dirty_blocks, before.dirty_blocks);
	CHECK_EQ(after.dirty_bytes, before.dirty_bytes);
	CHECK_EQ(before.blocks, 34);
	for (unsigned i = 0; i < 40; i++)
		CHECK_EQ(store_has(s, &ids[i]), !removable(i));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void remove_refuses_pinned_and_dirty_blocks(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1), b = put_n(s, 2, 100, 0), c = put_n(s, 3, 100, 0);
	CHECK_EQ(store_pin(s, &b), 0);
	CHECK_EQ(store_remove(s, &a), -EBUSY);
	CHECK_EQ(store_remove(s, &b), -EBUSY);
	CHECK_EQ(store_remove(s, &c), 0);
	block_path(path, sizeof(path), dir, &c);
	CHECK(!exists(path));
	CHECK_EQ(store_has(s, &c), 0);
	CHECK_EQ(store_remove(s, &c), -ENOENT);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 2);
	CHECK_EQ(st.bytes, 200 + 2 * T);
	CHECK_EQ(st.evicted_blocks, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void the_log_is_compacted_while_open_and_keeps_its_meaning(void)
{
	char *dir = tap_tmpdir(), logp[4200];
	snprintf(logp, sizeof(logp), "%s/store.log", dir);
	struct store *s = open_at(dir, 0);
	blockid_t a = put_n(s, 1, 100, 1), b = put_n(s, 2, 100, 0);
	CHECK_EQ(store_pin(s, &b), 0);
	long long biggest = 0;
	for (int i = 0; i < 300; i++) {
		CHECK_EQ(store_set_clean(s, &a), 0);
		put_n(s, 1, 100, 1);
		long long n = file_size(logp);
		biggest = n > biggest ? n : biggest;
	}
	/* Uncompacted, 600 records would be there. */
	CHECK(biggest < 300 * 44);
	store_free(s);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.dirty_blocks, 1);
	CHECK_EQ(st.pinned_blocks, 1);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

/* ---- concurrency ------------------------------------------------------- */

#define POOL 48
#define THREADS 8
#define OPS 150
#define POOL_LIMIT 16384

static blockid_t pool_id[POOL];
static uint8_t *pool_data[POOL];
static size_t pool_len[POOL];

struct worker {
	struct store *s;
	unsigned seed;
	int bad;
};

static void worker_get(struct worker *w, unsigned i)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = store_get(w->s, &pool_id[i], &buf, &len);
	if (rc == 0 && (len != pool_len[i] || memcmp(buf, pool_data[i], len) != 0))
		w->bad++;
	if (rc != 0 && rc != -ENOENT)
		w->bad++;
	free(buf);
}

static void worker_op(struct worker *w, unsigned r)
{
	unsigned i = (r >> 8) % POOL;
	blockid_t id;
	int rc;
	switch (r % 8) {
	case 0:
		w->bad += store_put(w->s, &pool_id[i], pool_data[i], pool_len[i]) != 0;
		break;
	case 1:
		w->bad += store_put_cached(w->s, &pool_id[i], pool_data[i], pool_len[i]) != 0;
		break;
	case 2:
		w->bad += store_put_data(w->s, &id, pool_data[i], pool_len[i], 0) != 0;
		break;
	case 3:
		rc = store_remove(w->s, &pool_id[i]);
		w->bad += rc != 0 && rc != -ENOENT && rc != -EBUSY;
		break;
	case 4:
		/* Pinned blocks are neither evicted nor removable, and
		 * every pin is matched by one unpin, so the unpin holds. */
		if (store_pin(w->s, &pool_id[i]) == 0)
			w->bad += store_unpin(w->s, &pool_id[i]) != 0;
		break;
	default:
		worker_get(w, i);
	}
}

static void *worker_run(void *p)
{
	struct worker *w = p;
	for (int k = 0; k < OPS; k++)
		worker_op(w, (unsigned)rand_r(&w->seed));
	return NULL;
}

/* Sums the sizes of the block files actually on disk. */
static void disk_usage(const char *dir, long long *blocks, long long *bytes)
{
	*blocks = *bytes = 0;
	for (unsigned i = 0; i < 256; i++) {
		char sub[4200];
		struct stat st;
		snprintf(sub, sizeof(sub), "%s/%02x", dir, i);
		DIR *d = opendir(sub);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) != 0)
				continue;
			(*blocks)++;
			*bytes += st.st_size;
		}
		if (d)
			closedir(d);
	}
}

static void concurrent_puts_and_gets_on_shared_ids_end_consistent(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, POOL_LIMIT);
	size_t biggest = 0;
	for (unsigned i = 0; i < POOL; i++) {
		pool_len[i] = 200 + (i * 397) % 1800;
		pool_data[i] = make_data(1000 + i, pool_len[i]);
		blockid_compute(&pool_id[i], key, pool_data[i], pool_len[i]);
		biggest = pool_len[i] + T > biggest ? pool_len[i] + T : biggest;
	}
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.s = s, .seed = 17u * (unsigned)i + 1};
		CHECK_EQ(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].bad, 0);
	}
	struct store_stats st;
	store_get_stats(s, &st);
	/* Files of their own are counted on disk; copies in packs by a reopen. */
	long long blocks, bytes;
	disk_usage(dir, &blocks, &bytes);
	CHECK(bytes <= (long long)st.bytes);
	CHECK(blocks <= (long long)st.blocks);
	CHECK_EQ(st.pinned_blocks, 0);
	CHECK(st.evicted_blocks > 0);
	/* Each put spares only its own block, so the overshoot is bounded. */
	CHECK(st.bytes <= POOL_LIMIT + THREADS * biggest);
	int had[POOL];
	for (unsigned i = 0; i < POOL; i++) {
		char path[4200];
		block_path(path, sizeof(path), dir, &pool_id[i]);
		had[i] = store_has(s, &pool_id[i]);
		CHECK(!exists(path) || had[i]);
	}
	store_free(s);

	s = open_at(dir, POOL_LIMIT);
	struct store_stats again;
	store_get_stats(s, &again);
	CHECK_EQ(again.bytes, st.bytes);
	CHECK_EQ(again.blocks, st.blocks);
	for (unsigned i = 0; i < POOL; i++) {
		CHECK_EQ(store_has(s, &pool_id[i]), had[i]);
		struct worker w1 = {.s = s};
		worker_get(&w1, i);
		CHECK_EQ(w1.bad, 0);
	}
	store_free(s);
	for (unsigned i = 0; i < POOL; i++)
		free(pool_data[i]);
	tap_rmrf(dir);
	free(dir);
}

/* ---- errors and housekeeping ------------------------------------------- */

static void an_unusable_store_dir_gives_a_clean_error(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = (struct store *)1;

	snprintf(path, sizeof(path), "%s/file", dir);
	write_file(path, "", 0);
	CHECK_EQ(store_open(&s, path, key, 0), -ENOTDIR);
	CHECK(s == NULL);
	CHECK(strstr(error_last(), path) != NULL);

	snprintf(path, sizeof(path), "%s/file/blocks", dir);
	CHECK_EQ(store_open(&s, path, key, 0), -ENOTDIR);
	CHECK(strstr(error_last(), path) != NULL);

	/* A file where the store wants its tmp/ directory. */
	snprintf(path, sizeof(path), "%s/store", dir);
	CHECK_EQ(mkdir(path, 0700), 0);
	char tmpf[4300];
	snprintf(tmpf, sizeof(tmpf), "%s/tmp", path);
	write_file(tmpf, "", 0);
	CHECK_EQ(store_open(&s, path, key, 0), -ENOTDIR);
	CHECK(strstr(error_last(), "tmp") != NULL);

	if (geteuid() != 0) { /* root ignores permissions */
		snprintf(path, sizeof(path), "%s/ro", dir);
		CHECK_EQ(mkdir(path, 0500), 0);
		CHECK_EQ(store_open(&s, path, key, 0), -EACCES);
		CHECK(strstr(error_last(), path) != NULL);
		chmod(path, 0700);
	} else {
		printf("# running as root: the read-only directory case is skipped\n");
	}
	tap_rmrf(dir);
	free(dir);
}

static void a_second_open_of_the_same_store_is_refused(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0), *t = NULL;
	CHECK_EQ(store_open(&t, dir, key, 0), -EBUSY);
	CHECK(t == NULL);
	store_free(s);
	s = open_at(dir, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void leftover_temp_files_are_cleaned_and_stray_files_not_counted(void)
{
	char *dir = tap_tmpdir(), path[4200];
	struct store *s = open_at(dir, 0);
	put_n(s, 1, 100, 0);
	store_free(s);
	snprintf(path, sizeof(path), "%s/tmp/deadbeef.1", dir);
	write_file(path, "", 0);
	snprintf(path, sizeof(path), "%s/00", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/00/README", dir);
	write_file(path, "hello", 5);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.bytes, 100 + T);
	snprintf(path, sizeof(path), "%s/tmp/deadbeef.1", dir);
	CHECK(!exists(path));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void reopening_with_a_lower_limit_evicts_down_to_it(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	uint64_t limit = 4 * (1000 + T); /* room for 4 of the 10 block files */
	for (unsigned i = 0; i < 10; i++)
		put_n(s, i, 1000, 0);
	store_free(s);
	s = open_at(dir, limit);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK(st.bytes <= limit);
	CHECK_EQ(st.evicted_blocks, 6);
	long long blocks, bytes;
	disk_usage(dir, &blocks, &bytes);
	CHECK_EQ(bytes, st.bytes);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}


/* ---- copies in cache packs (store_put_cached) -------------------------- */

#define H STORE_PACK_HEADER
/* A record takes whole pages: header and data, rounded up. */
#define REC(len) (((uint64_t)H + (len) + 4095) / 4096 * 4096)

/* Puts block n of len bytes as a copy fetched from elsewhere. */
static blockid_t put_cached_n(struct store *s, unsigned n, size_t len)
{
	blockid_t id;
	uint8_t *d = make_data(n, len);
	blockid_compute(&id, key, d, len);
	CHECK_EQ(store_put_cached(s, &id, d, len), 0);
	free(d);
	return id;
}

/* The pack files under dir/packs: how many, and the path of the first. */
static int packs_in(const char *dir, char *first, size_t n)
{
	char path[4000];
	snprintf(path, sizeof(path), "%s/packs", dir);
	DIR *d = opendir(path);
	int count = 0;
	if (!d)
		return -1;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		if (!count++ && first)
			snprintf(first, n, "%s/%s", path, de->d_name);
	}
	closedir(d);
	return count;
}

static void cached_copies_go_to_one_pack_not_a_file_each(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t id[20];
	for (unsigned i = 0; i < 20; i++)
		id[i] = put_cached_n(s, i, 3000 + i);
	long long blocks, bytes;
	disk_usage(dir, &blocks, &bytes);
	CHECK_EQ(blocks, 0); /* no file of its own */
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	uint64_t want = 0;
	for (unsigned i = 0; i < 20; i++)
		want += REC(3000 + i);
	/* The last record's padding is not written. */
	long long on_disk = (long long)(want - REC(3019) + H + 3019);
	CHECK_EQ(file_size(pack), on_disk);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 20);
	CHECK_EQ(st.bytes, want);
	for (unsigned i = 0; i < 20; i++)
		CHECK(get_ok(s, &id[i], i, 3000 + i));
	/* A copy that is already there is not appended again. */
	put_cached_n(s, 3, 3003);
	CHECK_EQ(file_size(pack), on_disk);
	store_free(s);

	s = open_at(dir, 0);
	struct store_stats again;
	store_get_stats(s, &again);
	CHECK_EQ(again.blocks, 20);
	CHECK_EQ(again.bytes, want);
	for (unsigned i = 0; i < 20; i++)
		CHECK(get_ok(s, &id[i], i, 3000 + i));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_damaged_record_is_dropped_and_its_neighbours_still_read(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 5000), b = put_cached_n(s, 2, 5000),
		  c = put_cached_n(s, 3, 5000);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	/* A byte of b's data, then a byte of c's header (its id field). */
	int fd = open(pack, O_RDWR);
	CHECK(fd >= 0);
	off_t where[2] = { REC(5000) + H + 100, 2 * REC(5000) + 30 };
	for (int i = 0; i < 2; i++) {
		uint8_t x = 0;
		CHECK(pread(fd, &x, 1, where[i]) == 1);
		x ^= 0x5a; /* flipped: a set value could be the one already there */
		CHECK(pwrite(fd, &x, 1, where[i]) == 1);
	}
	close(fd);
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK_EQ(store_get(s, &b, &buf, &len), -ENOENT);
	CHECK(buf == NULL);
	CHECK_EQ(store_get(s, &c, &buf, &len), -ENOENT);
	CHECK(get_ok(s, &a, 1, 5000));
	CHECK(!store_has(s, &b) && !store_has(s, &c));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.corrupt_blocks, 2);
	CHECK_EQ(st.blocks, 1);
	/* Fetched again, b is whole once more. */
	put_cached_n(s, 2, 5000);
	CHECK(get_ok(s, &b, 2, 5000));
	store_free(s);
	s = open_at(dir, 0);
	CHECK(get_ok(s, &a, 1, 5000) && get_ok(s, &b, 2, 5000));
	CHECK(!store_has(s, &c));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_pack_cut_short_by_a_crash_keeps_the_records_before_the_cut(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t id[5];
	for (unsigned i = 0; i < 5; i++)
		id[i] = put_cached_n(s, i, 4000);
	store_free(s);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	CHECK_EQ(truncate(pack, 3 * REC(4000) + 1000), 0);
	s = open_at(dir, 0);
	for (unsigned i = 0; i < 3; i++)
		CHECK(get_ok(s, &id[i], i, 4000));
	CHECK(!store_has(s, &id[3]) && !store_has(s, &id[4]));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 3);
	CHECK_EQ(st.bytes, 3 * REC(4000));
	/* New copies go to a new pack, never after the torn tail. */
	put_cached_n(s, 4, 4000);
	CHECK_EQ(packs_in(dir, NULL, 0), 2);
	CHECK(get_ok(s, &id[4], 4, 4000));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void evicted_copies_leave_their_pack_and_an_empty_pack_is_deleted(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t id[10];
	for (unsigned i = 0; i < 10; i++)
		id[i] = put_cached_n(s, i, 8192);
	store_free(s);
	/* A reopen starts a new pack; a limit of 4 records evicts 6 from the
	 * old one, which lives on for the other 4. */
	s = open_at(dir, 4 * REC(8192));
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.evicted_blocks, 6);
	CHECK_EQ(st.blocks, 4);
	CHECK_EQ(packs_in(dir, NULL, 0), 1);
	for (unsigned i = 6; i < 10; i++)
		CHECK(get_ok(s, &id[i], i, 8192));
	for (unsigned i = 0; i < 6; i++)
		CHECK(!store_has(s, &id[i]));
	store_free(s);
	/* The evictions are remembered: the records are dead on disk too. */
	s = open_at(dir, 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 4);
	for (unsigned i = 6; i < 10; i++)
		CHECK_EQ(store_remove(s, &id[i]), 0);
	CHECK_EQ(packs_in(dir, NULL, 0), 0);
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 0);
	CHECK_EQ(st.bytes, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_copy_made_dirty_or_pinned_stays_so_across_reopen(void)
{
	char *dir = tap_tmpdir();
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 6000), b = put_cached_n(s, 2, 6000), got;
	uint8_t *d = make_data(1, 6000);
	CHECK_EQ(store_put_data(s, &got, d, 6000, STORE_DIRTY), 0);
	free(d);
	CHECK(blockid_cmp(&got, &a) == 0);
	CHECK_EQ(store_pin(s, &b), 0);
	store_free(s);
	s = open_at(dir, 1); /* a limit of one byte evicts all it may */
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.dirty_blocks, 1);
	CHECK_EQ(st.pinned_blocks, 1);
	CHECK(get_ok(s, &a, 1, 6000) && get_ok(s, &b, 2, 6000));
	CHECK_EQ(store_remove(s, &a), -EBUSY);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_copy_and_a_file_of_the_same_block_count_once(void)
{
	char *dir = tap_tmpdir(), other[4300];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 7000);
	store_free(s);
	/* The same block as a file of its own, written by a store beside it
	 * and moved in (as after a crash between a put and a kill). */
	snprintf(other, sizeof(other), "%s/other", dir);
	s = open_at(other, 0);
	put_n(s, 1, 7000, 0);
	store_free(s);
	char from[8400], to[8400], hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(&a, hex);
	snprintf(to, sizeof(to), "%s/%.2s", dir, hex);
	mkdir(to, 0700);
	block_path(from, sizeof(from), other, &a);
	block_path(to, sizeof(to), dir, &a);
	CHECK_EQ(rename(from, to), 0);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.bytes, 7000 + T);
	CHECK(get_ok(s, &a, 1, 7000));
	store_free(s);
	/* The record was killed at that open, so its pack went with it. */
	s = open_at(dir, 0);
	CHECK_EQ(packs_in(dir, NULL, 0), 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static long long allocated(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

static void a_killed_record_gives_its_space_back_and_a_gap_hides_nothing_after_it(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t id[6];
	for (unsigned i = 0; i < 6; i++)
		id[i] = put_cached_n(s, i, 20000);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	sync();
	long long before = allocated(pack);
	CHECK_EQ(store_remove(s, &id[1]), 0);
	long long after = allocated(pack);
	/* Where holes can be made (ext4, xfs, btrfs, tmpfs), all of it. */
	CHECK(after <= before - (long long)REC(20000));
	CHECK(get_ok(s, &id[0], 0, 20000) && get_ok(s, &id[2], 2, 20000));
	store_free(s);

	/* Zeros where records 2 and 3 were (a write lost in a crash): the
	 * ones after the gap are still found. */
	int fd = open(pack, O_RDWR);
	CHECK(fd >= 0);
	uint8_t *z = calloc(1, 2 * REC(20000));
	CHECK(pwrite(fd, z, 2 * REC(20000), 2 * REC(20000)) == (ssize_t)(2 * REC(20000)));
	free(z);
	close(fd);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 3);
	CHECK(get_ok(s, &id[0], 0, 20000));
	CHECK(!store_has(s, &id[1]) && !store_has(s, &id[2]) && !store_has(s, &id[3]));
	CHECK(get_ok(s, &id[4], 4, 20000) && get_ok(s, &id[5], 5, 20000));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void of_two_records_of_one_block_the_newer_is_kept(void)
{
	char *dir = tap_tmpdir(), pack[4300], newer[4400];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 9000);
	store_free(s);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	/* The same record again in a later pack, and the older one damaged
	 * (a kill whose hole reached the disk but not its dead mark). */
	snprintf(newer, sizeof(newer), "%s/packs/00000007", dir);
	uint8_t *rec = malloc(H + 9000);
	int fd = open(pack, O_RDWR);
	CHECK(fd >= 0 && pread(fd, rec, H + 9000, 0) == (ssize_t)(H + 9000));
	uint8_t x = 0;
	CHECK(pread(fd, &x, 1, H + 10) == 1);
	x ^= 0xff;
	CHECK(pwrite(fd, &x, 1, H + 10) == 1);
	close(fd);
	write_file(newer, rec, H + 9000);
	free(rec);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.bytes, REC(9000));
	CHECK(get_ok(s, &a, 1, 9000));
	CHECK_EQ(st.corrupt_blocks, 0);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void a_block_twice_in_one_pack_keeps_the_pack(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 6000);
	store_free(s);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	/* a's record again right after it (a kill of the first that never
	 * reached the disk, then a fetch again): killing the older record,
	 * the only one of the pack counted so far, must not delete the pack
	 * being scanned. */
	uint8_t *rec = malloc(H + 6000);
	int fd = open(pack, O_RDWR);
	CHECK(fd >= 0 && pread(fd, rec, H + 6000, 0) == (ssize_t)(H + 6000));
	CHECK(pwrite(fd, rec, H + 6000, REC(6000)) == (ssize_t)(H + 6000));
	close(fd);
	free(rec);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.bytes, REC(6000));
	CHECK(exists(pack));
	CHECK(get_ok(s, &a, 1, 6000));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void records_after_a_hole_are_found(void)
{
	char *dir = tap_tmpdir(), pack[4300];
	struct store *s = open_at(dir, 0);
	blockid_t id[6];
	for (unsigned i = 0; i < 6; i++)
		id[i] = put_cached_n(s, i, 10000);
	store_free(s);
	CHECK_EQ(packs_in(dir, pack, sizeof(pack)), 1);
	/* Records 1 to 3 never reached the disk (a crash): a hole. */
	int fd = open(pack, O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)REC(10000),
			   (off_t)(3 * REC(10000))), 0);
	close(fd);
	s = open_at(dir, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK_EQ(st.blocks, 3);
	CHECK(get_ok(s, &id[0], 0, 10000) && get_ok(s, &id[4], 4, 10000) &&
	      get_ok(s, &id[5], 5, 10000));
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

static void stray_names_in_the_packs_directory_are_ignored(void)
{
	char *dir = tap_tmpdir(), path[4300];
	struct store *s = open_at(dir, 0);
	blockid_t a = put_cached_n(s, 1, 3000);
	store_free(s);
	/* Pack numbers this large would once have sized a table by them. */
	snprintf(path, sizeof(path), "%s/packs/ffffffff", dir);
	write_file(path, "", 0);
	snprintf(path, sizeof(path), "%s/packs/notes.txt", dir);
	write_file(path, "x", 1);
	s = open_at(dir, 0);
	CHECK(get_ok(s, &a, 1, 3000));
	put_cached_n(s, 2, 3000);
	CHECK_EQ(packs_in(dir, NULL, 0), 4);
	store_free(s);
	tap_rmrf(dir);
	free(dir);
}

/* ---- STORE_BIG=1: open time over 100,000 blocks ------------------------ */

#define BIG_BLOCKS 100000
#define BIG_SIZE 1024

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Files are written directly: going through store_put would cost two
 * fsyncs per block and time the disk, not open. */
static void write_big_store(const char *dir)
{
	uint8_t buf[BIG_SIZE];
	char path[4200];
	for (unsigned i = 0; i < BIG_BLOCKS; i++) {
		blockid_t id;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &i, sizeof(i));
		blockid_compute(&id, key, buf, sizeof(buf));
		snprintf(path, sizeof(path), "%s/%02x", dir, id.b[0]);
		mkdir(path, 0700);
		block_path(path, sizeof(path), dir, &id);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0 && write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
		close(fd);
	}
}

/* Root only; elsewhere the cold round is just another warm one. */
static int drop_caches(void)
{
	sync();
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
	if (!f)
		return 0;
	int ok = fputs("3\n", f) >= 0;
	return fclose(f) == 0 && ok;
}

static void opening_100000_blocks_is_timed(void)
{
	char *dir = tap_tmpdir();
	store_free(open_at(dir, 0));
	write_big_store(dir);
	for (int round = 0; round < 3; round++) {
		int cold = round == 2 && drop_caches();
		double t0 = now_ms();
		struct store *s = open_at(dir, 0);
		double t1 = now_ms();
		struct store_stats st;
		store_get_stats(s, &st);
		CHECK_EQ(st.blocks, BIG_BLOCKS);
		CHECK_EQ(st.bytes, (uint64_t)BIG_BLOCKS * BIG_SIZE);
		store_free(s);
		printf("# open of %d blocks (%s): %.1f ms, free: %.1f ms\n", BIG_BLOCKS,
		       cold ? "cold: page cache dropped" : "warm cache", t1 - t0, now_ms() - t1);
	}
	tap_rmrf(dir);
	free(dir);
}

/* ---- STORE_BIG=1: store_get over 16,000 blocks of 64 KiB ---------------- */

#define GET_BLOCKS 16000
#define GET_SIZE 65536
#define GET_ROUNDS 3

/* One pass of store_get over every id, page cache warm: what a cold read
 * of a file from the local cache costs, less the disk. */
static double time_gets(struct store *s, const blockid_t *ids)
{
	double t0 = now_ms();
	for (unsigned i = 0; i < GET_BLOCKS; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		CHECK_EQ(store_get(s, &ids[i], &buf, &len), 0);
		CHECK_EQ(len, GET_SIZE);
		free(buf);
	}
	return now_ms() - t0;
}

static void report_gets(const char *what, double ms)
{
	printf("# get of %d blocks of %d KiB (warm cache, %s): %.0f ms, %.0f MB/s, %.1f us/block\n",
	       GET_BLOCKS, GET_SIZE / 1024, what, ms, (double)GET_BLOCKS * GET_SIZE / ms / 1e3,
	       ms * 1e3 / GET_BLOCKS);
}

static void reading_16000_blocks_of_64_kib_is_timed(void)
{
	char *dir = tap_tmpdir(), path[4200];
	blockid_t *ids = malloc(GET_BLOCKS * sizeof(*ids));
	uint8_t *d = make_data(1, GET_SIZE);
	struct store *s = open_at(dir, 0);
	for (unsigned i = 0; i < GET_BLOCKS; i++) {
		memcpy(d, &i, sizeof(i));
		CHECK_EQ(store_put_data(s, &ids[i], d, GET_SIZE, STORE_DEFER_SYNC), 0);
	}
	CHECK_EQ(store_sync(s), 0);
	for (int round = 0; round < GET_ROUNDS; round++)
		report_gets("block files with trailer", time_gets(s, ids));
	store_free(s);

	/* The same blocks as files of the layout before the trailer: the
	 * fallback to the keyed hash, i.e. what every get cost before. */
	for (unsigned i = 0; i < GET_BLOCKS; i++) {
		memcpy(d, &i, sizeof(i));
		block_path(path, sizeof(path), dir, &ids[i]);
		write_file(path, d, GET_SIZE);
	}
	s = open_at(dir, 0);
	for (int round = 0; round < GET_ROUNDS; round++)
		report_gets("block files without trailer", time_gets(s, ids));
	store_free(s);
	free(d);
	free(ids);
	tap_rmrf(dir);
	free(dir);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof(key));
	TEST(put_get_round_trips);
	TEST(putting_the_same_data_twice_counts_once);
	TEST(getting_a_missing_id_is_enoent);
	TEST(a_flipped_bit_on_disk_is_detected_and_quarantined);
	TEST(a_flipped_trailer_byte_is_detected_and_quarantined);
	TEST(a_truncated_block_is_detected_and_quarantined);
	TEST(another_blocks_intact_file_under_an_id_is_detected);
	TEST(block_files_without_a_trailer_are_still_read);
	TEST(a_damaged_block_file_without_a_trailer_is_quarantined);
	TEST(data_ending_in_a_trailer_shaped_tail_round_trips);
	TEST(writeback_puts_round_trip);
	TEST(a_corrupt_pinned_dirty_block_loses_its_pin_and_dirty_mark_for_good);
	TEST(put_with_data_not_matching_the_id_is_ebadmsg_and_stores_nothing);
	TEST(eviction_under_a_limit_takes_the_least_recently_used_first);
	TEST(pinned_and_dirty_blocks_survive_a_limit_smaller_than_they_are);
	TEST(pins_and_the_dirty_set_persist_across_reopen_as_do_unpin_and_clean);
	TEST(the_dirty_walk_follows_the_order_blocks_were_made_dirty);
	TEST(a_torn_last_record_in_the_log_is_ignored);
	TEST(log_records_of_blocks_whose_file_is_gone_are_dropped_at_open);
	TEST(accounting_after_reopen_equals_accounting_before);
	TEST(remove_refuses_pinned_and_dirty_blocks);
	TEST(the_log_is_compacted_while_open_and_keeps_its_meaning);
	TEST(concurrent_puts_and_gets_on_shared_ids_end_consistent);
	TEST(an_unusable_store_dir_gives_a_clean_error);
	TEST(a_second_open_of_the_same_store_is_refused);
	TEST(leftover_temp_files_are_cleaned_and_stray_files_not_counted);
	TEST(reopening_with_a_lower_limit_evicts_down_to_it);
	TEST(cached_copies_go_to_one_pack_not_a_file_each);
	TEST(a_damaged_record_is_dropped_and_its_neighbours_still_read);
	TEST(a_pack_cut_short_by_a_crash_keeps_the_records_before_the_cut);
	TEST(evicted_copies_leave_their_pack_and_an_empty_pack_is_deleted);
	TEST(a_copy_made_dirty_or_pinned_stays_so_across_reopen);
	TEST(a_copy_and_a_file_of_the_same_block_count_once);
	TEST(a_killed_record_gives_its_space_back_and_a_gap_hides_nothing_after_it);
	TEST(of_two_records_of_one_block_the_newer_is_kept);
	TEST(stray_names_in_the_packs_directory_are_ignored);
	TEST(a_block_twice_in_one_pack_keeps_the_pack);
	TEST(records_after_a_hole_are_found);
	if (getenv("STORE_BIG")) {
		TEST(opening_100000_blocks_is_timed);
		TEST(reading_16000_blocks_of_64_kib_is_timed);
	} else {
		printf("# STORE_BIG not set: the open and get timings are skipped\n");
	}
	TAP_DONE();
}
