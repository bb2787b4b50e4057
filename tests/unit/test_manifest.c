/* test_manifest: the manifest format and reads through it.  The decoder is
 * fed everything a peer or a corrupt cloud could send (every truncation,
 * each malformed field, random bytes, random mutations), and reads are
 * checked at every offset against a plain copy of the file, through the
 * real fetch chain and store.  FUZZ_ITER lowers the random iterations (for
 * valgrind). */

#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/store.h"
#include "tests/unit/tap.h"

static const uint8_t key[BLOCKID_KEY_SIZE] = {7, 1, 2, 3};

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: fixed seed, so a failure replays. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static long iterations(void)
{
	const char *e = getenv("FUZZ_ITER");
	return e ? atol(e) : 100000;
}

static blockid_t some_id(uint8_t seed)
{
	blockid_t id;
	for (int i = 0; i < BLOCKID_SIZE; i++)
		id.b[i] = (uint8_t)(seed * 31 + i);
	return id;
}

static int manifest_equal(const struct manifest *a, const struct manifest *b)
{
	if (a->mode != b->mode || a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	    a->atime_sec != b->atime_sec || a->atime_nsec != b->atime_nsec ||
	    a->size != b->size || a->is_inline != b->is_inline || a->nblocks != b->nblocks ||
	    a->nxattrs != b->nxattrs)
		return 0;
	if (a->is_inline && a->size && memcmp(a->inline_data, b->inline_data, a->size))
		return 0;
	for (size_t i = 0; i < a->nblocks; i++)
		if (blockid_cmp(&a->blocks[i].id, &b->blocks[i].id) ||
		    a->blocks[i].len != b->blocks[i].len)
			return 0;
	for (size_t i = 0; i < a->nxattrs; i++)
		if (strcmp(a->xattrs[i].name, b->xattrs[i].name) ||
		    a->xattrs[i].len != b->xattrs[i].len ||
		    (a->xattrs[i].len &&
		     memcmp(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].len)))
			return 0;
	return 1;
}

/* A manifest using every feature: blocks, a hole, xattrs, odd times. */
static struct manifest *sample_blocks(void)
{
	struct manifest *m = manifest_new();
	m->mode = 0100755;
	m->mtime_sec = -1234567890123ll;
	m->mtime_nsec = 999999999;
	blockid_t a = some_id(1), b = some_id(2);
	manifest_add_block(m, &a, 65536);
	manifest_add_block(m, NULL, 4096);
	manifest_add_block(m, &b, 1);
	manifest_xattr_set(m, "user.b", "two", 3);
	manifest_xattr_set(m, "user.a", "", 0);
	manifest_xattr_set(m, "user.c", "\0\1\2", 3);
	return m;
}

static struct manifest *sample_inline(void)
{
	struct manifest *m = manifest_new();
	m->mode = 0100644;
	m->mtime_sec = 1700000000;
	m->is_inline = 1;
	m->size = 5;
	m->inline_data = (uint8_t *)strdup("hello");
	manifest_xattr_set(m, "user.mime", "text/plain", 10);
	return m;
}

static void encode_ok(const struct manifest *m, uint8_t **buf, size_t *len)
{
	int rc = manifest_encode(m, buf, len);
	CHECK_EQ(rc, 0);
	if (rc)
		*buf = NULL, *len = 0;
}

/* Decodes buf; when it is accepted, checks the invariants a reader relies
 * on and that encoding gives back exactly buf.  Returns decode's rc. */
static int decode_checked(const uint8_t *buf, size_t len)
{
	struct manifest *m = NULL;
	int rc = manifest_decode(&m, buf, len);
	if (rc) {
		CHECK_EQ(rc, -EINVAL);
		CHECK(error_last()[0] != '\0');
		return rc;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < m->nblocks; i++)
		sum += m->blocks[i].len;
	CHECK(m->is_inline ? m->nblocks == 0 && m->size <= MANIFEST_INLINE_MAX : sum == m->size);
	uint8_t *again;
	size_t again_len;
	if (manifest_encode(m, &again, &again_len) == 0) {
		CHECK(again_len == len && memcmp(again, buf, len) == 0);
		free(again);
	} else {
		CHECK(!"re-encoding a decoded manifest failed");
	}
	manifest_free(m);
	return 0;
}

/* A byte-level builder for hand-made (malformed) encodings. */
struct bld {
	uint8_t b[4096];
	size_t n;
};

static void le(struct bld *w, uint64_t v, int nbytes)
{
	for (int i = 0; i < nbytes; i++)
		w->b[w->n++] = (uint8_t)(v >> (8 * i));
}

static void raw(struct bld *w, const void *p, size_t len)
{
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void header(struct bld *w, int flags, uint64_t size)
{
	raw(w, "PCMF", 4);
	le(w, MANIFEST_VERSION, 1);
	le(w, flags, 1);
	le(w, 0, 2);
	le(w, 0100644, 4);
	le(w, 1, 8);
	le(w, 0, 4);
	le(w, 2, 8); /* atime */
	le(w, 0, 4);
	le(w, size, 8);
}

static void one_xattr(struct bld *w, const char *name, size_t nlen, uint32_t vlen)
{
	le(w, nlen, 2);
	raw(w, name, nlen);
	le(w, vlen, 4);
	w->n += vlen; /* zeros */
}

static int decode_rc(const struct bld *w)
{
	struct manifest *m = NULL;
	int rc = manifest_decode(&m, w->b, w->n);
	manifest_free(m);
	return rc;
}

/* ---- roundtrips ------------------------------------------------------------- */

static void roundtrip_keeps_blocks_holes_and_xattrs(void)
{
	struct manifest *m = sample_blocks(), *d = NULL;
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	CHECK_EQ(manifest_decode(&d, buf, len), 0);
	CHECK(d && manifest_equal(m, d));
	CHECK(d && blockid_is_zero(&d->blocks[1].id));
	CHECK(d && strcmp(d->xattrs[0].name, "user.a") == 0);
	CHECK_EQ(decode_checked(buf, len), 0);
	free(buf);
	manifest_free(m);
	manifest_free(d);
}

static void roundtrip_keeps_inline_data(void)
{
	struct manifest *m = sample_inline(), *d = NULL;
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	CHECK_EQ(manifest_decode(&d, buf, len), 0);
	CHECK(d && d->is_inline && manifest_equal(m, d));
	CHECK_EQ(decode_checked(buf, len), 0);
	free(buf);
	manifest_free(m);
	manifest_free(d);
}

static void roundtrip_keeps_empty_files_both_ways(void)
{
	for (int is_inline = 0; is_inline < 2; is_inline++) {
		struct manifest *m = manifest_new(), *d = NULL;
		m->is_inline = is_inline;
		uint8_t *buf;
		size_t len;
		encode_ok(m, &buf, &len);
		CHECK_EQ(manifest_decode(&d, buf, len), 0);
		CHECK(d && manifest_equal(m, d));
		free(buf);
		manifest_free(m);
		manifest_free(d);
	}
}

static void encoding_is_little_endian_as_documented(void)
{
	struct manifest *m = manifest_new();
	m->mode = 0x01020304;
	m->mtime_sec = -2;
	m->mtime_nsec = 5;
	m->atime_sec = 7;
	m->atime_nsec = 6;
	blockid_t id = some_id(9);
	manifest_add_block(m, &id, 0x0a0b0c0d);
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	static const uint8_t head[] = "PCMF\1\0\0\0"			 /* magic, version, flags */
				      "\4\3\2\1"			 /* mode */
				      "\xfe\xff\xff\xff\xff\xff\xff\xff" /* mtime_sec -2 */
				      "\5\0\0\0"			 /* nsec */
				      "\7\0\0\0\0\0\0\0"		 /* atime_sec 7 */
				      "\6\0\0\0"			 /* atime nsec */
				      "\x0d\x0c\x0b\x0a\0\0\0\0"	 /* size */
				      "\0\0\0\0\1\0\0\0";		 /* nxattr, nblocks */
	CHECK_EQ(len, sizeof(head) - 1 + BLOCKID_SIZE + 4);
	CHECK(buf && memcmp(buf, head, sizeof(head) - 1) == 0);
	CHECK(buf && memcmp(buf + sizeof(head) - 1, id.b, BLOCKID_SIZE) == 0);
	CHECK(buf && memcmp(buf + len - 4, "\x0d\x0c\x0b\x0a", 4) == 0);
	free(buf);
	manifest_free(m);
}

static void dup_is_deep_and_equal(void)
{
	struct manifest *m = sample_blocks();
	struct manifest *d = manifest_dup(m);
	CHECK(d && manifest_equal(m, d));
	manifest_xattr_set(m, "user.b", "changed", 7);
	m->blocks[0].id = some_id(77);
	CHECK(d && manifest_xattr_get(d, "user.b")->len == 3);
	blockid_t first = some_id(1);
	CHECK(d && blockid_cmp(&d->blocks[0].id, &first) == 0);
	manifest_free(m);
	manifest_free(d);
	m = sample_inline();
	d = manifest_dup(m);
	m->inline_data[0] = 'j';
	CHECK(d && d->inline_data[0] == 'h');
	manifest_free(m);
	manifest_free(d);
}

static void add_block_grows_size_and_rejects_empty_blocks(void)
{
	struct manifest *m = manifest_new();
	CHECK_EQ(manifest_add_block(m, NULL, 10), 0);
	CHECK_EQ(manifest_add_block(m, NULL, 0), -EINVAL);
	CHECK_EQ(m->size, 10);
	CHECK_EQ(m->nblocks, 1);
	manifest_free(m);
	m = sample_inline();
	CHECK_EQ(manifest_add_block(m, NULL, 10), -EINVAL);
	manifest_free(m);
}

static void encode_refuses_what_decode_would_reject(void)
{
	struct manifest *m = sample_blocks();
	uint8_t *buf = NULL;
	size_t len;
	m->size++;
	CHECK_EQ(manifest_encode(m, &buf, &len), -EINVAL);
	m->size--;
	m->mtime_nsec = 1000000000;
	CHECK_EQ(manifest_encode(m, &buf, &len), -EINVAL);
	m->mtime_nsec = 0;
	struct manifest_xattr t = m->xattrs[0];
	m->xattrs[0] = m->xattrs[1];
	m->xattrs[1] = t;
	CHECK_EQ(manifest_encode(m, &buf, &len), -EINVAL);
	manifest_free(m);

	m = manifest_new();
	m->is_inline = 1;
	m->size = MANIFEST_INLINE_MAX + 1;
	m->inline_data = calloc(1, m->size);
	CHECK_EQ(manifest_encode(m, &buf, &len), -EINVAL);
	manifest_free(m);
}

/* ---- malformed input -------------------------------------------------------- */

static void check_all_truncations(const struct manifest *m)
{
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	for (size_t n = 0; n < len; n++) {
		struct manifest *d = NULL;
		error_clear();
		int rc = manifest_decode(&d, buf, n);
		if (rc != -EINVAL)
			printf("# prefix of %zu bytes of %zu: rc %d\n", n, len, rc);
		CHECK_EQ(rc, -EINVAL);
		CHECK(error_last()[0] != '\0');
		manifest_free(d);
	}
	free(buf);
}

static void every_truncation_is_rejected(void)
{
	struct manifest *m = sample_blocks();
	check_all_truncations(m);
	manifest_free(m);
	m = sample_inline();
	check_all_truncations(m);
	manifest_free(m);
}

static void trailing_bytes_are_rejected(void)
{
	struct manifest *m = sample_blocks();
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	uint8_t *longer = calloc(1, len + 1);
	memcpy(longer, buf, len);
	struct manifest *d = NULL;
	CHECK_EQ(manifest_decode(&d, longer, len + 1), -EINVAL);
	CHECK(strstr(error_last(), "trailing") != NULL);
	free(longer);
	free(buf);
	manifest_free(m);
}

/* Patches one header byte of a valid encoding; the decode must fail. */
static int decode_patched(size_t at, uint8_t value)
{
	struct manifest *m = sample_blocks(), *d = NULL;
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	buf[at] = value;
	int rc = manifest_decode(&d, buf, len);
	free(buf);
	manifest_free(m);
	manifest_free(d);
	return rc;
}

static void bad_header_fields_are_rejected(void)
{
	CHECK_EQ(decode_patched(0, 'X'), -EINVAL); /* magic */
	CHECK(strstr(error_last(), "magic") != NULL);
	CHECK_EQ(decode_patched(4, 2), -EINVAL); /* version */
	CHECK(strstr(error_last(), "version") != NULL);
	CHECK_EQ(decode_patched(4, 0), -EINVAL);
	CHECK_EQ(decode_patched(5, 2), -EINVAL); /* unknown flag */
	CHECK_EQ(decode_patched(6, 1), -EINVAL); /* reserved */
	CHECK(strstr(error_last(), "reserved") != NULL);
	CHECK_EQ(decode_patched(7, 0x80), -EINVAL);
	CHECK_EQ(decode_patched(23, 0x40), -EINVAL); /* nsec >= 10^9 */
	CHECK_EQ(decode_patched(35, 0x40), -EINVAL); /* atime nsec >= 10^9 */
	CHECK(strstr(error_last(), "atime") != NULL);
	CHECK_EQ(decode_patched(36, 0x55), -EINVAL); /* size != sum of blocks */
}

static void bad_xattrs_are_rejected(void)
{
	char name[300];
	memset(name, 'a', sizeof(name));
	struct {
		const char *name;
		size_t nlen;
		uint32_t vlen;
	} cases[] = {
	    {name, MANIFEST_XATTR_NAME_MAX + 1, 0},	 /* name too long */
	    {"", 0, 0},					 /* empty name */
	    {"user\0x", 6, 0},				 /* NUL in name */
	    {"user.x", 6, MANIFEST_XATTR_VALUE_MAX + 1}, /* value too large */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct bld w; /* large: not on the stack */
		static uint8_t big[MANIFEST_XATTR_VALUE_MAX + 512];
		w.n = 0;
		header(&w, 0, 0);
		le(&w, 1, 4);
		le(&w, cases[i].nlen, 2);
		raw(&w, cases[i].name, cases[i].nlen);
		le(&w, cases[i].vlen, 4);
		/* Enough real bytes that only the limit can reject it. */
		memcpy(big, w.b, w.n);
		size_t n = w.n + cases[i].vlen + 4;
		memset(big + w.n, 0, n - w.n);
		struct manifest *d = NULL;
		CHECK_EQ(manifest_decode(&d, big, n), -EINVAL);
		manifest_free(d);
	}
}

static void limits_themselves_are_accepted(void)
{
	static uint8_t big[MANIFEST_XATTR_VALUE_MAX + 512];
	char name[MANIFEST_XATTR_NAME_MAX];
	memset(name, 'n', sizeof(name));
	struct bld w = {.n = 0};
	header(&w, 0, 0);
	le(&w, 1, 4);
	le(&w, sizeof(name), 2);
	raw(&w, name, sizeof(name));
	le(&w, MANIFEST_XATTR_VALUE_MAX, 4);
	memcpy(big, w.b, w.n);
	size_t n = w.n + MANIFEST_XATTR_VALUE_MAX + 4;
	memset(big + w.n, 0, n - w.n);
	CHECK_EQ(decode_checked(big, n), 0);
}

static void unsorted_or_duplicate_xattrs_are_rejected(void)
{
	const char *pairs[][2] = {{"user.b", "user.a"}, {"user.a", "user.a"}};
	for (int i = 0; i < 2; i++) {
		struct bld w = {.n = 0};
		header(&w, 0, 0);
		le(&w, 2, 4);
		one_xattr(&w, pairs[i][0], 6, 1);
		one_xattr(&w, pairs[i][1], 6, 1);
		le(&w, 0, 4);
		CHECK_EQ(decode_rc(&w), -EINVAL);
	}
}

static void bad_inline_data_is_rejected(void)
{
	struct bld w = {.n = 0};
	header(&w, 1, 3);
	le(&w, 0, 4);
	le(&w, 2, 4); /* inline len != size */
	raw(&w, "ab", 2);
	CHECK_EQ(decode_rc(&w), -EINVAL);

	static uint8_t big[MANIFEST_INLINE_MAX + 512];
	w.n = 0;
	header(&w, 1, MANIFEST_INLINE_MAX + 1);
	le(&w, 0, 4);
	le(&w, MANIFEST_INLINE_MAX + 1, 4);
	memcpy(big, w.b, w.n);
	CHECK_EQ(decode_checked(big, w.n + MANIFEST_INLINE_MAX + 1), -EINVAL);
}

static void absurd_counts_are_rejected_before_allocating(void)
{
	struct bld w = {.n = 0};
	header(&w, 0, 1);
	le(&w, 0, 4);
	le(&w, UINT32_MAX, 4); /* nblocks */
	w.n += BLOCKID_SIZE + 4;
	CHECK_EQ(decode_rc(&w), -EINVAL);
	CHECK(strstr(error_last(), "block count") != NULL);

	w.n = 0;
	header(&w, 0, 0);
	le(&w, UINT32_MAX, 4); /* nxattr */
	w.n += 64;
	CHECK_EQ(decode_rc(&w), -EINVAL);
	CHECK(strstr(error_last(), "xattr count") != NULL);
}

static void bad_block_lengths_are_rejected(void)
{
	uint32_t lens[][2] = {{0, 10}, {5, 4}, {5, 6}, {UINT32_MAX, UINT32_MAX}};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct bld w = {.n = 0};
		header(&w, 0, 10);
		le(&w, 0, 4);
		le(&w, 2, 4);
		for (int j = 0; j < 2; j++) {
			w.n += BLOCKID_SIZE;
			le(&w, lens[i][j], 4);
		}
		CHECK_EQ(decode_rc(&w), -EINVAL);
	}
}

static void random_buffers_never_crash_or_lie(void)
{
	long n = iterations();
	long accepted = 0;
	for (long it = 0; it < n; it++) {
		uint8_t buf[300];
		size_t len = rng() % sizeof(buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		/* Mostly a plausible start, so that the later fields get
		 * exercised too, not only the magic check. */
		if (it % 3 && len >= 8) {
			memcpy(buf, "PCMF\1", 5);
			buf[5] &= 1;
			buf[6] = buf[7] = 0;
		}
		if (it % 3 == 2 && len >= 40) {
			memset(buf + 20, 0, 4); /* nsec */
			memset(buf + 25, 0, 7); /* small size */
			memset(buf + 33, 0, 3); /* nxattr <= 255 */
		}
		accepted += decode_checked(buf, len) == 0;
	}
	printf("# %ld of %ld random buffers were valid manifests\n", accepted, n);
}

static struct manifest *random_manifest(void)
{
	struct manifest *m = manifest_new();
	m->mode = (uint32_t)rng();
	m->mtime_sec = (int64_t)rng();
	m->mtime_nsec = (uint32_t)(rng() % 1000000000);
	m->atime_sec = (int64_t)rng();
	m->atime_nsec = (uint32_t)(rng() % 1000000000);
	for (int i = rng() % 4; i > 0; i--) {
		char name[16];
		uint8_t val[8];
		snprintf(name, sizeof(name), "user.%u", (unsigned)(rng() % 100));
		memset(val, (int)rng(), sizeof(val));
		manifest_xattr_set(m, name, val, rng() % sizeof(val));
	}
	if (rng() % 2) {
		m->is_inline = 1;
		m->size = rng() % 64;
		m->inline_data = malloc(m->size + 1);
		memset(m->inline_data, (int)rng(), m->size);
		return m;
	}
	for (int i = rng() % 6; i > 0; i--) {
		blockid_t id = some_id((uint8_t)rng());
		manifest_add_block(m, rng() % 3 ? &id : NULL, (uint32_t)(1 + rng() % UINT32_MAX));
	}
	return m;
}

static void random_manifests_roundtrip_exactly(void)
{
	long n = iterations() / 10;
	for (long it = 0; it < n; it++) {
		struct manifest *m = random_manifest(), *d = NULL;
		uint8_t *buf;
		size_t len;
		encode_ok(m, &buf, &len);
		CHECK_EQ(manifest_decode(&d, buf, len), 0);
		CHECK(d && manifest_equal(m, d));
		CHECK_EQ(decode_checked(buf, len), 0);
		free(buf);
		manifest_free(m);
		manifest_free(d);
	}
}

static void mutate_encoding(const struct manifest *m, long n, long *accepted)
{
	uint8_t *buf;
	size_t len;
	encode_ok(m, &buf, &len);
	for (long it = 0; it < n; it++) {
		size_t at = rng() % len;
		uint8_t old = buf[at];
		buf[at] = (uint8_t)rng();
		*accepted += decode_checked(buf, len) == 0;
		buf[at] = old;
	}
	free(buf);
}

static void random_mutations_never_crash_or_lie(void)
{
	long n = iterations(), accepted = 0;
	struct manifest *m = sample_blocks();
	mutate_encoding(m, n / 2, &accepted);
	manifest_free(m);
	m = sample_inline();
	mutate_encoding(m, n - n / 2, &accepted);
	manifest_free(m);
	printf("# %ld of %ld mutations still decoded (ids, mode, mtime, values)\n", accepted, n);
}

/* ---- reads -------------------------------------------------------------------- */

struct fixture {
	char *dir;
	struct store *store;
	struct fetch *fetch;
};

static int fixture_open(struct fixture *fx)
{
	char path[4200];
	fx->dir = tap_tmpdir();
	if (!fx->dir)
		return -1;
	snprintf(path, sizeof(path), "%s/blocks", fx->dir);
	if (store_open(&fx->store, path, key, 0) || fetch_new(&fx->fetch, fx->store))
		return -1;
	return 0;
}

static void fixture_close(struct fixture *fx)
{
	fetch_free(fx->fetch);
	store_free(fx->store);
	tap_rmrf(fx->dir);
	free(fx->dir);
}

/* A file of blocks 7, hole 5, 1, 9 bytes; plain holds the same bytes. */
static struct manifest *small_file(struct fixture *fx, uint8_t plain[22])
{
	static const uint32_t lens[] = {7, 5, 1, 9};
	struct manifest *m = manifest_new();
	size_t at = 0;
	for (size_t i = 0; i < 4; i++) {
		blockid_t id;
		for (uint32_t j = 0; j < lens[i]; j++)
			plain[at + j] = i == 1 ? 0 : (uint8_t)('a' + at + j);
		if (i == 1)
			CHECK_EQ(manifest_add_block(m, NULL, lens[i]), 0);
		else if (store_put_data(fx->store, &id, plain + at, lens[i], 0) == 0)
			CHECK_EQ(manifest_add_block(m, &id, lens[i]), 0);
		else
			CHECK(!"store_put_data failed");
		at += lens[i];
	}
	return m;
}

static void read_matches_file_at_every_offset_and_length(void)
{
	struct fixture fx;
	CHECK_EQ(fixture_open(&fx), 0);
	uint8_t plain[22];
	struct manifest *m = small_file(&fx, plain);
	for (size_t off = 0; off <= 22; off++) {
		for (size_t len = 0; len <= 24; len++) {
			uint8_t out[32];
			long want = off + len > 22 ? (long)(22 - off) : (long)len;
			long got = manifest_read(m, fx.fetch, off, out, len);
			CHECK_EQ(got, want);
			CHECK(got < 0 || memcmp(out, plain + off, (size_t)want) == 0);
		}
	}
	manifest_free(m);
	fixture_close(&fx);
}

static void read_at_or_past_eof_returns_zero(void)
{
	struct fixture fx;
	CHECK_EQ(fixture_open(&fx), 0);
	uint8_t plain[22], out[8];
	struct manifest *m = small_file(&fx, plain);
	CHECK_EQ(manifest_read(m, fx.fetch, 22, out, sizeof(out)), 0);
	CHECK_EQ(manifest_read(m, fx.fetch, 1000, out, sizeof(out)), 0);
	CHECK_EQ(manifest_read(m, fx.fetch, UINT64_MAX, out, sizeof(out)), 0);
	CHECK_EQ(manifest_read(m, fx.fetch, 20, out, sizeof(out)), 2);
	manifest_free(m);
	fixture_close(&fx);
}

static void read_of_holes_needs_no_block(void)
{
	struct fixture fx;
	CHECK_EQ(fixture_open(&fx), 0);
	struct manifest *m = manifest_new();
	manifest_add_block(m, NULL, 100000);
	manifest_add_block(m, NULL, 3);
	uint8_t out[200];
	memset(out, 0xaa, sizeof(out));
	/* The store is empty: any block_get would fail with -EIO. */
	CHECK_EQ(manifest_read(m, fx.fetch, 99900, out, sizeof(out)), 103);
	uint8_t zero[103] = {0};
	CHECK(memcmp(out, zero, sizeof(zero)) == 0);
	CHECK_EQ(out[103], 0xaa);
	manifest_free(m);
	fixture_close(&fx);
}

static void read_of_missing_block_is_eio(void)
{
	struct fixture fx;
	CHECK_EQ(fixture_open(&fx), 0);
	struct manifest *m = manifest_new();
	blockid_t absent = some_id(3);
	manifest_add_block(m, NULL, 10);
	manifest_add_block(m, &absent, 10);
	uint8_t out[20];
	CHECK_EQ(manifest_read(m, fx.fetch, 0, out, 10), 10);
	CHECK_EQ(manifest_read(m, fx.fetch, 5, out, 10), -EIO);
	manifest_free(m);
	fixture_close(&fx);
}

static void read_of_inline_file_needs_no_fetch(void)
{
	struct manifest *m = sample_inline();
	char out[8] = {0};
	CHECK_EQ(manifest_read(m, NULL, 1, out, sizeof(out)), 4);
	CHECK(memcmp(out, "ello", 4) == 0);
	CHECK_EQ(manifest_read(m, NULL, 5, out, sizeof(out)), 0);
	manifest_free(m);
}

static void find_locates_every_boundary_of_a_4gib_file(void)
{
	struct manifest *m = manifest_new();
	size_t n = 65536;
	for (size_t i = 0; i < n; i++)
		manifest_add_block(m, NULL, (uint32_t)(65536 + (i % 7) * 1024));
	uint64_t start = 0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t s1, s2, s3;
		uint32_t len = m->blocks[i].len;
		bad |= manifest_find(m, start, &s1) != i || s1 != start;
		bad |= manifest_find(m, start + len - 1, &s2) != i || s2 != start;
		bad |= manifest_find(m, start + rng() % len, &s3) != i || s3 != start;
		start += len;
	}
	CHECK(!bad);
	CHECK(m->size > (4ull << 30));
	uint64_t s;
	CHECK_EQ(manifest_find(m, m->size, &s), n);
	CHECK(s == m->size);
	manifest_free(m);
}

/* ---- xattrs -------------------------------------------------------------------- */

static void xattr_set_replaces_and_remove_deletes(void)
{
	struct manifest *m = manifest_new();
	CHECK_EQ(manifest_xattr_set(m, "user.k", "v1", 2), 0);
	CHECK_EQ(manifest_xattr_set(m, "user.k", "value2", 6), 0);
	CHECK_EQ(m->nxattrs, 1);
	const struct manifest_xattr *x = manifest_xattr_get(m, "user.k");
	CHECK(x && x->len == 6 && memcmp(x->value, "value2", 6) == 0);
	CHECK_EQ(manifest_xattr_remove(m, "user.k"), 0);
	CHECK(manifest_xattr_get(m, "user.k") == NULL);
	CHECK_EQ(manifest_xattr_remove(m, "user.k"), -ENODATA);
	CHECK_EQ(m->nxattrs, 0);
	manifest_free(m);
}

static void xattrs_stay_sorted_so_encoding_is_canonical(void)
{
	struct manifest *a = manifest_new(), *b = manifest_new();
	const char *names[] = {"user.m", "user.a", "user.z", "user.b", "user.y"};
	for (int i = 0; i < 5; i++)
		manifest_xattr_set(a, names[i], names[i], 6);
	for (int i = 4; i >= 0; i--)
		manifest_xattr_set(b, names[i], names[i], 6);
	manifest_xattr_set(a, "user.q", "x", 1);
	manifest_xattr_remove(a, "user.q");
	for (size_t i = 1; i < a->nxattrs; i++)
		CHECK(strcmp(a->xattrs[i - 1].name, a->xattrs[i].name) < 0);
	uint8_t *ea, *eb;
	size_t la, lb;
	encode_ok(a, &ea, &la);
	encode_ok(b, &eb, &lb);
	CHECK(la == lb && memcmp(ea, eb, la) == 0);
	free(ea);
	free(eb);
	manifest_free(a);
	manifest_free(b);
}

static void xattr_limits_are_enforced_on_set(void)
{
	struct manifest *m = manifest_new();
	char name[MANIFEST_XATTR_NAME_MAX + 2];
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	CHECK_EQ(manifest_xattr_set(m, name, "", 0), -ERANGE);
	CHECK_EQ(manifest_xattr_set(m, "", "", 0), -EINVAL);
	void *big = calloc(1, MANIFEST_XATTR_VALUE_MAX + 1);
	CHECK_EQ(manifest_xattr_set(m, "user.big", big, MANIFEST_XATTR_VALUE_MAX + 1), -E2BIG);
	CHECK_EQ(manifest_xattr_set(m, "user.big", big, MANIFEST_XATTR_VALUE_MAX), 0);
	free(big);
	CHECK_EQ(m->nxattrs, 1);
	manifest_free(m);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	log_set_level(LOG_ERROR); /* missing blocks are expected here */
	TEST(roundtrip_keeps_blocks_holes_and_xattrs);
	TEST(roundtrip_keeps_inline_data);
	TEST(roundtrip_keeps_empty_files_both_ways);
	TEST(encoding_is_little_endian_as_documented);
	TEST(dup_is_deep_and_equal);
	TEST(add_block_grows_size_and_rejects_empty_blocks);
	TEST(encode_refuses_what_decode_would_reject);
	TEST(every_truncation_is_rejected);
	TEST(trailing_bytes_are_rejected);
	TEST(bad_header_fields_are_rejected);
	TEST(bad_xattrs_are_rejected);
	TEST(limits_themselves_are_accepted);
	TEST(unsorted_or_duplicate_xattrs_are_rejected);
	TEST(bad_inline_data_is_rejected);
	TEST(absurd_counts_are_rejected_before_allocating);
	TEST(bad_block_lengths_are_rejected);
	TEST(random_manifests_roundtrip_exactly);
	TEST(random_buffers_never_crash_or_lie);
	TEST(random_mutations_never_crash_or_lie);
	TEST(read_matches_file_at_every_offset_and_length);
	TEST(read_at_or_past_eof_returns_zero);
	TEST(read_of_holes_needs_no_block);
	TEST(read_of_missing_block_is_eio);
	TEST(read_of_inline_file_needs_no_fetch);
	TEST(find_locates_every_boundary_of_a_4gib_file);
	TEST(xattr_set_replaces_and_remove_deletes);
	TEST(xattrs_stay_sorted_so_encoding_is_canonical);
	TEST(xattr_limits_are_enforced_on_set);
	TAP_DONE();
}
