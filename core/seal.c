/* seal: XChaCha20-Poly1305 (IETF) with a random nonce per message, and the
 * crypto_kdf subkeys of a volume.  Random nonces are safe here: 192 bits make
 * a collision negligible for any number of messages a volume will see. */
#include "config.h"
#include "core/seal.h"
#include "core/error.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* crypto_kdf contexts are exactly 8 bytes; bump when the derivation changes. */
#define SEAL_KDF_CONTEXT "peercl01"

int seal_init(void)
{
	if (sodium_init() < 0)
		return error_set(-EIO, "libsodium could not initialise (no entropy source?)");
	return 0;
}

void seal_keys_derive(struct seal_keys *out, const uint8_t master[SEAL_KEY_SIZE])
{
	crypto_kdf_derive_from_key(out->id, SEAL_KEY_SIZE, SEAL_SUBKEY_ID, SEAL_KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(out->block, SEAL_KEY_SIZE, SEAL_SUBKEY_BLOCK, SEAL_KDF_CONTEXT,
				   master);
	crypto_kdf_derive_from_key(out->object, SEAL_KEY_SIZE, SEAL_SUBKEY_OBJECT,
				   SEAL_KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(out->head, SEAL_KEY_SIZE, SEAL_SUBKEY_HEAD, SEAL_KDF_CONTEXT,
				   master);
	crypto_kdf_derive_from_key(out->peer, SEAL_KEY_SIZE, SEAL_SUBKEY_PEER, SEAL_KDF_CONTEXT,
				   master);
}

void seal_random_key(uint8_t out[SEAL_KEY_SIZE])
{
	crypto_kdf_keygen(out);
}

int seal_seal(uint8_t **out, size_t *out_len, const uint8_t key[SEAL_KEY_SIZE],
	      const void *plain, size_t len)
{
	size_t total = len + SEAL_OVERHEAD;
	uint8_t *buf = malloc(total ? total : 1);
	if (!buf)
		return error_set(-ENOMEM, "out of memory sealing %zu bytes", len);
	buf[0] = SEAL_VERSION;
	uint8_t *nonce = buf + 1;
	randombytes_buf(nonce, SEAL_NONCE_SIZE);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(buf + 1 + SEAL_NONCE_SIZE, &clen, plain, len,
						   buf, 1, NULL, nonce, key);
	*out = buf;
	*out_len = 1 + SEAL_NONCE_SIZE + (size_t)clen;
	return 0;
}

int seal_open(uint8_t **out, size_t *out_len, const uint8_t key[SEAL_KEY_SIZE],
	      const void *sealed, size_t len)
{
	const uint8_t *in = sealed;
	if (len < SEAL_OVERHEAD)
		return error_set(-EBADMSG, "sealed data is truncated (%zu bytes, at least %d needed)",
				 len, SEAL_OVERHEAD);
	if (in[0] != SEAL_VERSION)
		return error_set(-EPROTO, "sealed data has unknown format version %u (this build reads %u)",
				 in[0], SEAL_VERSION);
	size_t plen = len - SEAL_OVERHEAD;
	uint8_t *buf = malloc(plen ? plen : 1);
	if (!buf)
		return error_set(-ENOMEM, "out of memory opening %zu bytes", len);
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(buf, &mlen, NULL, in + 1 + SEAL_NONCE_SIZE,
						       len - 1 - SEAL_NONCE_SIZE, in, 1, in + 1,
						       key) != 0) {
		free(buf);
		return error_set(-EBADMSG, "sealed data failed authentication: it was altered, "
				 "truncated, or sealed with another volume's key");
	}
	*out = buf;
	*out_len = (size_t)mlen;
	return 0;
}
