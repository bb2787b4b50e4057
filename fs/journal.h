/* journal: the working tree's changes since the last commit, as an append-
 * only log of path operations, so that what a user did survives kill -9
 * (every record is written before the operation returns) and power loss
 * (fsync on a file or directory makes the log durable first).  At mount the
 * records are replayed on top of the last commit; after a commit the log is
 * emptied.
 *
 * Record: u32 body length | body | 16 byte BLAKE2b of the body.
 * Body:   u8 type | u32 mode | u16 len1 | u16 len2 | u32 len3 | path1 | path2 | data.
 * A torn or corrupt tail (a crash mid-append) ends the replay there and is
 * cut off; everything before it stays. */
#ifndef PEERCLING_FS_JOURNAL_H
#define PEERCLING_FS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

enum fs_journal_op {
	FS_J_PUT = 1,      /* path1 is a file or symlink: mode, data = blob */
	FS_J_MKDIR = 2,    /* path1: mode */
	FS_J_REMOVE = 3,   /* path1 (and everything below it) */
	FS_J_RENAME = 4,   /* path1 -> path2, replacing path2 */
	FS_J_EXCHANGE = 5, /* swap path1 and path2 */
	FS_J_BASE = 6,     /* data: the commit id the records apply to */
	FS_J_DATA = 7,     /* path1's content is its last PUT plus the ranges in
			    * the overlay file path2; data: fs_journal_data */
};

struct fs_journal_rec {
	enum fs_journal_op op;
	uint32_t mode;
	const char *path1, *path2;
	const uint8_t *data;
	size_t len;
};

struct fs_journal;
struct fs_range;

/* FS_J_DATA's data: little-endian u64 size, u64 base_limit, u32 n, then n
 * pairs of u64 (lo, hi).  *out malloc'd. */
int fs_journal_data_encode(uint8_t **out, size_t *len, uint64_t size, uint64_t base_limit,
			   const struct fs_range *r, size_t n);
/* *r malloc'd; -EBADMSG when data is not a well-formed encoding. */
int fs_journal_data_decode(const uint8_t *data, size_t len, uint64_t *size,
			   uint64_t *base_limit, struct fs_range **r, size_t *n);

int fs_journal_open(struct fs_journal **out, const char *path);
void fs_journal_free(struct fs_journal *j);
/* Calls cb for every good record in order; returns the number replayed or
 * a negative errno (from cb or I/O). */
long fs_journal_replay(struct fs_journal *j,
		       int (*cb)(const struct fs_journal_rec *rec, void *payload), void *payload);
int fs_journal_append(struct fs_journal *j, const struct fs_journal_rec *rec);
int fs_journal_sync(struct fs_journal *j);
/* Empties the log (after its contents are in a commit). */
int fs_journal_reset(struct fs_journal *j);
uint64_t fs_journal_size(struct fs_journal *j);

#endif
