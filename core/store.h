/* store: the local block cache, content-addressed.
 *
 * Each block made here is one file, blocks/ab/abcd... (the id in 64 hex
 * digits, its first two naming the fan-out directory), holding the plain
 * bytes (the cache is local; sealing happens only for what leaves the
 * machine) and a 16-byte trailer with a checksum of them.  Writes are
 * atomic and durable: temp file, fsync, rename, fsync of the directory.
 * Copies of blocks fetched from elsewhere (store_put_cached) are appended
 * to cache packs instead (core/store_pack.h): no file, no fsync.  Data is
 * checked against its id (keyed BLAKE2b) when it enters the store; reads
 * check the trailer's checksum (XXH3, enough against damage on disk), or
 * the id for files written before the trailer existed.  A corrupt file is
 * logged, moved aside to blocks/corrupt/ and reported as missing, never
 * returned.
 *
 * Accounting lives in memory (a hash table plus an LRU list) and is rebuilt
 * at open by scanning the block directories.  Two sets are persistent and
 * never evicted: pinned blocks (a pin count, for offline use) and dirty
 * blocks (written here, not yet uploaded).  They are kept in an append-only
 * log, DIR/store.log, compacted at open and when it grows.  All calls are thread-safe. */
#ifndef PEERCLING_STORE_H
#define PEERCLING_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

struct store;

/* Bytes a block file holds beyond the block itself. */
#define STORE_TRAILER_SIZE 16

/* The byte counts are of block files on disk, so they include the trailer
 * (STORE_TRAILER_SIZE per block; none for files written before it existed),
 * and so does the limit. */
struct store_stats {
	uint64_t blocks, bytes;
	uint64_t limit; /* 0: no limit */
	uint64_t pinned_blocks, pinned_bytes;
	uint64_t dirty_blocks, dirty_bytes;
	uint64_t evicted_blocks; /* since open */
	uint64_t corrupt_blocks; /* since open */
};

/* dir: the volume's blocks directory (created if missing).  id_key: the key
 * ids are computed with, to verify blocks.  limit: bytes, 0 for none. */
int store_open(struct store **out, const char *dir,
	       const uint8_t id_key[BLOCKID_KEY_SIZE], uint64_t limit);
void store_free(struct store *s);

/* Flags of store_put_data. */
enum {
	STORE_DIRTY = 1,      /* not yet uploaded (data created on this device) */
	STORE_DEFER_SYNC = 2, /* skip the fsyncs: the caller calls store_sync()
				 before anything durable refers to the block */
	STORE_WRITEBACK = 4,  /* with STORE_DEFER_SYNC: start writing the new
				 file to disk now (sync_file_range), so the
				 store_sync() ending the batch waits less; a
				 hint, no durability promise; alone, no effect */
};

/* Computes the id and stores the block (a no-op when it is already there).
 * flags: STORE_DIRTY, STORE_DEFER_SYNC, STORE_WRITEBACK (1 alone is the
 * plain dirty put). */
int store_put_data(struct store *s, blockid_t *out_id, const void *data,
		   size_t len, int flags);
/* Makes every block and mark stored so far durable (one syncfs): ends a
 * batch of STORE_DEFER_SYNC puts. */
int store_sync(struct store *s);
/* Stores a block that came from elsewhere; -EBADMSG when data does not
 * match id (nothing is stored). */
int store_put(struct store *s, const blockid_t *id, const void *data, size_t len);
/* The same for a copy of a block that lives elsewhere (fetched from a peer
 * or the cloud): not fsynced, since a copy lost in a crash is detected at
 * the next read (the checksum) and fetched again. */
int store_put_cached(struct store *s, const blockid_t *id, const void *data, size_t len);
/* *out is malloc'd.  -ENOENT when missing (or found corrupt). */
int store_get(struct store *s, const blockid_t *id, uint8_t **out, size_t *out_len);
int store_has(struct store *s, const blockid_t *id);
int store_remove(struct store *s, const blockid_t *id);

int store_pin(struct store *s, const blockid_t *id);
int store_unpin(struct store *s, const blockid_t *id);
int store_set_clean(struct store *s, const blockid_t *id);
/* Calls cb for every dirty block, in the order they were made dirty, with
 * its size on disk; a non-zero return stops the walk and is returned. */
int store_foreach_dirty(struct store *s,
			int (*cb)(const blockid_t *id, uint64_t size, void *payload), void *payload);
/* Moves those of ids that are dirty to the end of the dirty order, in the
 * order given: blocks stored by several threads at once become dirty in
 * whatever order the threads finish, and uploads go in dirty order (see
 * sync/sync.c).  Nothing is logged: a restart before the log is next
 * compacted brings back the order the marks were logged in. */
void store_dirty_in_order(struct store *s, const blockid_t *ids, size_t n);

void store_get_stats(struct store *s, struct store_stats *out);
/* Changes the limit and evicts down to it. */
int store_set_limit(struct store *s, uint64_t limit);

#endif
