/* fuzz_manifest: libFuzzer target for the manifest decoder, the one parser
 * that reads bytes from peers and the cloud.  Whatever the input, decode
 * must not crash, and what it accepts must satisfy the format's invariants
 * and encode back to exactly the input (one encoding per manifest), whose
 * decoding equals the first.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_manifest.c core/manifest.c core/blockid.c core/error.c \
 *     core/log.c core/fetch.c core/store.c $(pkg-config --cflags --libs libsodium libxxhash)
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"

static int same(const struct manifest *a, const struct manifest *b)
{
	if (a->mode != b->mode || a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	    a->size != b->size || a->is_inline != b->is_inline || a->nblocks != b->nblocks ||
	    a->nxattrs != b->nxattrs)
		return 0;
	if (a->is_inline && a->size && memcmp(a->inline_data, b->inline_data, a->size))
		return 0;
	for (size_t i = 0; i < a->nblocks; i++)
		if (memcmp(&a->blocks[i], &b->blocks[i], sizeof(a->blocks[i])) ||
		    a->offsets[i] != b->offsets[i])
			return 0;
	for (size_t i = 0; i < a->nxattrs; i++)
		if (strcmp(a->xattrs[i].name, b->xattrs[i].name) ||
		    a->xattrs[i].len != b->xattrs[i].len ||
		    (a->xattrs[i].len &&
		     memcmp(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].len)))
			return 0;
	return 1;
}

/* What readers rely on: blocks tile [0, size) exactly. */
static void check_invariants(const struct manifest *m)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < m->nblocks; i++) {
		if (m->blocks[i].len == 0 || m->offsets[i] != sum)
			abort();
		sum += m->blocks[i].len;
	}
	if (m->is_inline ? m->nblocks || m->size > MANIFEST_INLINE_MAX : sum != m->size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL, *again = NULL;
	if (manifest_decode(&m, data, size) != 0)
		return 0;
	check_invariants(m);
	uint8_t *enc;
	size_t len;
	if (manifest_encode(m, &enc, &len) != 0)
		abort();
	if (len != size || memcmp(enc, data, size) != 0)
		abort();
	if (manifest_decode(&again, enc, len) != 0 || !same(m, again))
		abort();
	free(enc);
	manifest_free(m);
	manifest_free(again);
	return 0;
}
