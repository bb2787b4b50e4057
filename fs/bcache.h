/* bcache: a small in-memory cache of verified blocks for the read path, so
 * that the many kernel reads that fall inside one block read and hash its
 * file once, not once per read, and blocks fetched ahead of a sequential
 * reader wait for it in memory.  Bounded in blocks and bytes, LRU,
 * thread-safe. */
#ifndef PEERCLING_FS_BCACHE_H
#define PEERCLING_FS_BCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

struct fetch;
struct fs_bcache;

/* At most slots blocks and max_bytes bytes of them. */
int fs_bcache_new(struct fs_bcache **out, size_t slots, size_t max_bytes);
void fs_bcache_free(struct fs_bcache *c);
/* Copies n bytes at off within block id (of length blen) into buf, fetching
 * the block through the chain (block_get with fetch_flags) when it is not
 * cached.  0 or -errno. */
int fs_bcache_read(struct fs_bcache *c, struct fetch *f, const blockid_t *id, int fetch_flags,
		   uint32_t blen, uint32_t off, void *buf, size_t n);

/* 1 when id is held (a hint: it may be evicted the next moment). */
int fs_bcache_has(struct fs_bcache *c, const blockid_t *id);

/* Installs a verified block (taking ownership of data), e.g. from
 * readahead, so that the reads that follow need no store read or hash. */
void fs_bcache_put(struct fs_bcache *c, const blockid_t *id, uint8_t *data, size_t len);

#endif
