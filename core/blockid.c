/* blockid: keyed BLAKE2b-256 through libsodium's generichash. */
#include "config.h"
#include "core/blockid.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

void blockid_compute(blockid_t *out, const uint8_t key[BLOCKID_KEY_SIZE],
		     const void *data, size_t len)
{
	crypto_generichash(out->b, BLOCKID_SIZE, data, len, key, BLOCKID_KEY_SIZE);
}

void blockid_to_hex(const blockid_t *id, char out[BLOCKID_HEX_SIZE])
{
	sodium_bin2hex(out, BLOCKID_HEX_SIZE, id->b, BLOCKID_SIZE);
}

int blockid_from_hex(blockid_t *out, const char *hex)
{
	size_t n = 0;
	const char *end = NULL;
	if (strlen(hex) != 2 * BLOCKID_SIZE)
		return -EINVAL;
	if (sodium_hex2bin(out->b, BLOCKID_SIZE, hex, 2 * BLOCKID_SIZE, NULL, &n, &end) != 0 ||
	    n != BLOCKID_SIZE || *end != '\0')
		return -EINVAL;
	return 0;
}

int blockid_cmp(const blockid_t *a, const blockid_t *b)
{
	return memcmp(a->b, b->b, BLOCKID_SIZE);
}

int blockid_is_zero(const blockid_t *id)
{
	static const blockid_t zero;
	return memcmp(id->b, zero.b, BLOCKID_SIZE) == 0;
}
