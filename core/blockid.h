/* blockid: the 256-bit name of a block, BLAKE2b keyed with the volume's id
 * key so that nobody without the key can test whether a volume holds a
 * known file.  Also the hex form used for file names in the store and cloud. */
#ifndef PEERCLING_BLOCKID_H
#define PEERCLING_BLOCKID_H

#include <stddef.h>
#include <stdint.h>

#define BLOCKID_SIZE 32
#define BLOCKID_HEX_SIZE (2 * BLOCKID_SIZE + 1)
#define BLOCKID_KEY_SIZE 32

typedef struct {
	uint8_t b[BLOCKID_SIZE];
} blockid_t;

void blockid_compute(blockid_t *out, const uint8_t key[BLOCKID_KEY_SIZE],
		     const void *data, size_t len);
void blockid_to_hex(const blockid_t *id, char out[BLOCKID_HEX_SIZE]);
/* 0, or -EINVAL when hex is not exactly 64 hex digits. */
int blockid_from_hex(blockid_t *out, const char *hex);
int blockid_cmp(const blockid_t *a, const blockid_t *b);
int blockid_is_zero(const blockid_t *id);

#endif
