/* seal: authenticated encryption for everything that leaves the machine
 * (blocks, repository objects, device heads), XChaCha20-Poly1305 from
 * libsodium with a random 192-bit nonce per message.
 *
 * Sealed format: 1 byte version (SEAL_VERSION) | 24 byte nonce |
 * ciphertext | 16 byte tag.  The version byte is authenticated as
 * additional data, so it cannot be swapped either.
 *
 * Keys: every purpose has its own subkey derived from the volume's master key
 * with crypto_kdf, so a block key never opens a head and vice versa. */
#ifndef PEERCLING_SEAL_H
#define PEERCLING_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_KEY_SIZE 32
#define SEAL_VERSION 1
#define SEAL_NONCE_SIZE 24
#define SEAL_TAG_SIZE 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE_SIZE + SEAL_TAG_SIZE)

enum seal_subkey {
	SEAL_SUBKEY_ID = 1,     /* keys BLAKE2b block ids */
	SEAL_SUBKEY_BLOCK = 2,  /* seals blocks */
	SEAL_SUBKEY_OBJECT = 3, /* seals repository objects */
	SEAL_SUBKEY_HEAD = 4,   /* seals device heads */
	SEAL_SUBKEY_PEER = 5,   /* LAN peer handshake */
};

struct seal_keys {
	uint8_t id[SEAL_KEY_SIZE];
	uint8_t block[SEAL_KEY_SIZE];
	uint8_t object[SEAL_KEY_SIZE];
	uint8_t head[SEAL_KEY_SIZE];
	uint8_t peer[SEAL_KEY_SIZE];
};

/* Must be called once before anything else in core (wraps sodium_init). */
int seal_init(void);
void seal_keys_derive(struct seal_keys *out, const uint8_t master[SEAL_KEY_SIZE]);
void seal_random_key(uint8_t out[SEAL_KEY_SIZE]);

/* *out is malloc'd, owned by the caller; *out_len = len + SEAL_OVERHEAD. */
int seal_seal(uint8_t **out, size_t *out_len, const uint8_t key[SEAL_KEY_SIZE],
	      const void *plain, size_t len);
/* -EBADMSG when the ciphertext is truncated, tampered with or sealed with
 * another key; -EPROTO for an unknown version byte.  error_last() says which. */
int seal_open(uint8_t **out, size_t *out_len, const uint8_t key[SEAL_KEY_SIZE],
	      const void *sealed, size_t len);

#endif
