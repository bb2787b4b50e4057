/* test_seal: sealing round-trips, and every kind of bad ciphertext is
 * rejected with a clear error. */
#include "config.h"
#include "core/error.h"
#include "core/seal.h"
#include "tap.h"

#include <errno.h>
#include <sodium.h>

static uint8_t key[SEAL_KEY_SIZE], other[SEAL_KEY_SIZE];
static const char msg[] = "the quick brown fox jumps over the lazy dog";

static void seal_then_open_gives_the_plaintext_back(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen = 0, plen = 0;
	CHECK_EQ(seal_seal(&ct, &clen, key, msg, sizeof(msg)), 0);
	CHECK_EQ(clen, sizeof(msg) + SEAL_OVERHEAD);
	CHECK_EQ(seal_open(&pt, &plen, key, ct, clen), 0);
	CHECK_EQ(plen, sizeof(msg));
	CHECK(pt && memcmp(pt, msg, sizeof(msg)) == 0);
	CHECK(memmem(ct, clen, "quick", 5) == NULL);
	free(ct);
	free(pt);
}

static void empty_plaintext_round_trips(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen = 0, plen = 1;
	CHECK_EQ(seal_seal(&ct, &clen, key, "", 0), 0);
	CHECK_EQ(seal_open(&pt, &plen, key, ct, clen), 0);
	CHECK_EQ(plen, 0);
	free(ct);
	free(pt);
}

static void same_plaintext_seals_differently_each_time(void)
{
	uint8_t *a = NULL, *b = NULL;
	size_t al, bl;
	seal_seal(&a, &al, key, msg, sizeof(msg));
	seal_seal(&b, &bl, key, msg, sizeof(msg));
	CHECK(al == bl && memcmp(a, b, al) != 0);
	free(a);
	free(b);
}

static void every_flipped_bit_is_rejected(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen, plen;
	int accepted = 0;
	seal_seal(&ct, &clen, key, msg, sizeof(msg));
	for (size_t i = 0; i < clen * 8; i++) {
		ct[i / 8] ^= (uint8_t)(1u << (i % 8));
		int rc = seal_open(&pt, &plen, key, ct, clen);
		if (rc == 0) {
			accepted++;
			free(pt);
		} else {
			CHECK(rc == -EBADMSG || rc == -EPROTO);
		}
		ct[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	CHECK_EQ(accepted, 0);
	free(ct);
}

static void every_truncation_is_rejected(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen, plen;
	seal_seal(&ct, &clen, key, msg, sizeof(msg));
	for (size_t n = 0; n < clen; n++) {
		CHECK_EQ(seal_open(&pt, &plen, key, ct, n), -EBADMSG);
		if (n < SEAL_OVERHEAD)
			CHECK(strstr(error_last(), "truncated") != NULL);
	}
	free(ct);
}

static void a_foreign_key_is_rejected_with_a_clear_message(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen, plen;
	seal_seal(&ct, &clen, key, msg, sizeof(msg));
	CHECK_EQ(seal_open(&pt, &plen, other, ct, clen), -EBADMSG);
	CHECK(strstr(error_last(), "another volume's key") != NULL);
	free(ct);
}

static void an_unknown_version_is_rejected(void)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen, plen;
	seal_seal(&ct, &clen, key, msg, sizeof(msg));
	ct[0] = 99;
	CHECK_EQ(seal_open(&pt, &plen, key, ct, clen), -EPROTO);
	CHECK(strstr(error_last(), "version 99") != NULL);
	free(ct);
}

static void derived_subkeys_differ_and_are_deterministic(void)
{
	struct seal_keys a, b;
	seal_keys_derive(&a, key);
	seal_keys_derive(&b, key);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	CHECK(memcmp(a.id, a.block, SEAL_KEY_SIZE) != 0);
	CHECK(memcmp(a.block, a.object, SEAL_KEY_SIZE) != 0);
	CHECK(memcmp(a.object, a.head, SEAL_KEY_SIZE) != 0);
	CHECK(memcmp(a.block, key, SEAL_KEY_SIZE) != 0);
	/* A block sealed with the block key does not open with the head key. */
	uint8_t *ct = NULL, *pt = NULL;
	size_t clen, plen;
	seal_seal(&ct, &clen, a.block, msg, sizeof(msg));
	CHECK_EQ(seal_open(&pt, &plen, a.head, ct, clen), -EBADMSG);
	free(ct);
}

int main(void)
{
	CHECK_EQ(seal_init(), 0);
	seal_random_key(key);
	seal_random_key(other);
	TEST(seal_then_open_gives_the_plaintext_back);
	TEST(empty_plaintext_round_trips);
	TEST(same_plaintext_seals_differently_each_time);
	TEST(every_flipped_bit_is_rejected);
	TEST(every_truncation_is_rejected);
	TEST(a_foreign_key_is_rejected_with_a_clear_message);
	TEST(an_unknown_version_is_rejected);
	TEST(derived_subkeys_differ_and_are_deterministic);
	TAP_DONE();
}
