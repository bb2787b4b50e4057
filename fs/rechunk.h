/* rechunk: turns a file's old manifest plus its overlay into a new manifest,
 * cutting new blocks only around what changed.
 *
 * Every boundary in a manifest except the last is a content-defined cut, so
 * chunking may restart at the start of the block holding the first changed
 * byte and produce exactly what chunking the whole file would.  When the
 * size did not change, chunking stops at the first new cut past the last
 * changed byte that falls on an old boundary: from there on the old blocks
 * are reused.  A small write into a 4 GiB file thus reads and hashes a few
 * blocks, not 4 GiB.  All-zero chunks become holes and cost no block. */
#ifndef PEERCLING_FS_RECHUNK_H
#define PEERCLING_FS_RECHUNK_H

#include <stddef.h>
#include <stdint.h>

struct manifest;
struct fs_overlay;
struct fs_early_block;
struct store;

/* Reads the file's current content (old manifest + overlay). */
typedef long (*fs_rechunk_read_fn)(void *ctx, void *buf, size_t len, uint64_t off);

struct fs_rechunk_stats {
	uint64_t bytes_chunked; /* bytes read and cut anew */
	uint64_t bytes_early;   /* taken as cut while the file was written */
	uint64_t blocks_new, blocks_reused;
};

/* *out: a new manifest (content only: the caller sets mode, mtime, xattrs).
 * New blocks are stored with STORE_DEFER_SYNC: the caller must store_sync()
 * before anything durable (the journal) names them. */
int fs_rechunk(struct manifest **out, const struct manifest *old, const struct fs_overlay *ov,
	       uint64_t new_size, fs_rechunk_read_fn read, void *ctx, struct store *s,
	       struct fs_rechunk_stats *stats);

/* Cuts blocks off the start of buf, len bytes of a file starting at a cut
 * point, while more of the file is still to come: only cuts made with
 * CHUNK_MAX bytes in view are the ones a flush would make, so up to
 * CHUNK_MAX bytes at the end stay uncut.  Stores the blocks like
 * fs_rechunk (hashing on all cores) and fills out (room for
 * FS_RECHUNK_AHEAD_MAX). */
#define FS_RECHUNK_AHEAD_MAX 256
int fs_rechunk_ahead(const uint8_t *buf, size_t len, struct store *s, struct fs_early_block *out,
		     size_t *nout);

#endif
