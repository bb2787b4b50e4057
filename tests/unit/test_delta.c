/* test_delta: a delta rebuilds its target exactly, a small change to a big
 * manifest-like string makes a small delta, and a damaged delta is refused
 * (never read or written out of bounds: ASan, valgrind). */
#include "config.h"
#include "sync/delta.h"
#include "tap.h"

#include <errno.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)next();
}

static int roundtrip(const uint8_t *base, size_t blen, const uint8_t *t, size_t tlen,
		     size_t *delta_len)
{
	uint8_t *d = NULL, *back = NULL;
	size_t dlen = 0, blen2 = 0;
	int rc = delta_make(base, blen, t, tlen, (size_t)-1, &d, &dlen);
	if (rc)
		return rc;
	rc = delta_apply(base, blen, d, dlen, tlen, &back, &blen2);
	int same = !rc && blen2 == tlen && !memcmp(back, t, tlen);
	free(d);
	free(back);
	*delta_len = dlen;
	return same ? 0 : -1;
}

/* A 1 GiB file's manifest is about 16,000 entries of 36 bytes after a
 * short header; a 4 KiB write changes the mtime and one entry. */
static void a_small_change_to_a_big_manifest_is_a_small_delta(void)
{
	size_t n = 40 + 16000 * 36;
	uint8_t *base = malloc(n), *t = malloc(n + 36);
	fill(base, n);
	memcpy(t, base, n);
	fill(t + 8, 8);                 /* mtime */
	fill(t + 40 + 8000 * 36, 36);   /* one entry replaced */
	size_t dlen;
	CHECK_EQ(roundtrip(base, n, t, n, &dlen), 0);
	CHECK(dlen < 200);
	/* An entry inserted (content-defined chunking shifts the rest). */
	memmove(t + 40 + 9000 * 36 + 36, t + 40 + 9000 * 36, n - (40 + 9000 * 36));
	fill(t + 40 + 9000 * 36, 36);
	CHECK_EQ(roundtrip(base, n, t, n + 36, &dlen), 0);
	CHECK(dlen < 300);
	/* Not worth it: unrelated bytes do not fit under the target's size. */
	fill(t, n);
	uint8_t *d = NULL;
	CHECK_EQ(delta_make(base, n, t, n, n, &d, &dlen), -E2BIG);
	CHECK(d == NULL);
	free(base);
	free(t);
}

/* A manifest of a file full of zeros names the same block over and over:
 * the index must not degrade to one long probe run (it did: minutes for a
 * few MiB). */
static void a_base_that_repeats_itself(void)
{
	size_t n = 40 + 60000 * 36;
	uint8_t *base = malloc(n), *t = malloc(n);
	uint8_t entry[36];
	fill(entry, sizeof(entry));
	fill(base, 40);
	for (size_t i = 40; i < n; i += 36)
		memcpy(base + i, entry, 36);
	memcpy(t, base, n);
	fill(t + 40 + 30000 * 36, 36);
	size_t dlen;
	CHECK_EQ(roundtrip(base, n, t, n, &dlen), 0);
	CHECK(dlen < 300);
	memset(base, 0, n); /* and plain zeros */
	memcpy(t, base, n);
	t[n / 2] = 1;
	CHECK_EQ(roundtrip(base, n, t, n, &dlen), 0);
	CHECK(dlen < 100);
	free(base);
	free(t);
}

static void random_edits_round_trip(void)
{
	for (int round = 0; round < 200; round++) {
		size_t blen = 16 + next() % 5000, tlen = 0;
		uint8_t *base = malloc(blen), *t = malloc(blen * 2 + 64);
		fill(base, blen);
		/* The target: pieces of the base, in another order, with new bytes. */
		while (tlen < blen) {
			size_t off = next() % blen, len = 1 + next() % 300;
			if (len > blen - off)
				len = blen - off;
			if (next() % 4 == 0)
				fill(t + tlen, len);
			else
				memcpy(t + tlen, base + off, len);
			tlen += len;
		}
		size_t dlen;
		int rc = roundtrip(base, blen, t, tlen, &dlen);
		CHECK(rc == 0 || (rc == -E2BIG && tlen < 16));
		free(base);
		free(t);
	}
}

static void short_inputs_are_not_worth_a_delta(void)
{
	uint8_t a[8] = "abcdefg", *d = NULL;
	size_t dlen;
	CHECK_EQ(delta_make(a, sizeof(a), a, sizeof(a), 100, &d, &dlen), -E2BIG);
	uint8_t big[64];
	fill(big, sizeof(big));
	CHECK_EQ(delta_make(big, sizeof(big), a, sizeof(a), 100, &d, &dlen), -E2BIG);
}

static void damaged_deltas_are_refused(void)
{
	size_t n = 4000;
	uint8_t *base = malloc(n), *t = malloc(n);
	fill(base, n);
	memcpy(t, base, n);
	fill(t + 1000, 50);
	uint8_t *d = NULL, *out = NULL;
	size_t dlen, olen;
	CHECK_EQ(delta_make(base, n, t, n, n, &d, &dlen), 0);
	/* Every truncation and 20,000 single-byte changes: refused, or a
	 * result within the limit (a changed count or offset can still be
	 * valid), never a crash. */
	for (size_t cut = 0; cut < dlen; cut++) {
		int rc = delta_apply(base, n, d, cut, n, &out, &olen);
		CHECK(rc == -EBADMSG || (rc == 0 && olen <= n && cut != dlen));
		if (!rc)
			free(out);
	}
	uint8_t *m = malloc(dlen);
	for (int i = 0; i < 20000; i++) {
		memcpy(m, d, dlen);
		m[next() % dlen] ^= (uint8_t)(1 + next() % 255);
		int rc = delta_apply(base, n, m, dlen, n, &out, &olen);
		CHECK(rc == -EBADMSG || (rc == 0 && olen <= n));
		if (!rc)
			free(out);
	}
	/* A copy past the base, a count of zero, a varint that never ends. */
	const uint8_t past[] = { 0x03, 0xa0, 0x1f }; /* copy 1 at 4000 */
	CHECK_EQ(delta_apply(base, n, past, sizeof(past), n, &out, &olen), -EBADMSG);
	const uint8_t zero[] = { 0x00 };
	CHECK_EQ(delta_apply(base, n, zero, sizeof(zero), n, &out, &olen), -EBADMSG);
	uint8_t endless[12];
	memset(endless, 0xff, sizeof(endless));
	CHECK_EQ(delta_apply(base, n, endless, sizeof(endless), n, &out, &olen), -EBADMSG);
	/* A result over the limit. */
	CHECK_EQ(delta_apply(base, n, d, dlen, n - 1, &out, &olen), -EBADMSG);
	free(m);
	free(d);
	free(base);
	free(t);
}

int main(void)
{
	TEST(a_small_change_to_a_big_manifest_is_a_small_delta);
	TEST(a_base_that_repeats_itself);
	TEST(random_edits_round_trip);
	TEST(short_inputs_are_not_worth_a_delta);
	TEST(damaged_deltas_are_refused);
	TAP_DONE();
}
