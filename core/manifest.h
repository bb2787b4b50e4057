/* manifest: the content of one file as an ordered list of (block id, length),
 * plus what git does not keep and editors need: exact mode, mtime with
 * nanoseconds, user.* extended attributes.  Small files are inlined.  Holes
 * of sparse files are entries with an all-zero id.
 *
 * Stored as a git blob.  Binary, little-endian, versioned:
 *   "PCMF" | u8 version (1) | u8 flags (1: inline) | u16 reserved (0)
 *   u32 mode | i64 mtime_sec | u32 mtime_nsec | i64 atime_sec | u32 atime_nsec
 *   u64 size
 *   u32 nxattr, then per xattr: u16 name_len | name | u32 value_len | value
 *   inline:  u32 len | bytes             (len == size)
 *   blocks:  u32 nblocks, then per block: 32 byte id | u32 len
 * The sum of block lengths must equal size and no block is empty; xattr
 * names are 1..255 bytes without NUL, unique and sorted (strcmp);
 * mtime_nsec < 10^9; flag bits other than inline and the reserved field are
 * 0.  The decoder checks every length against the buffer and rejects
 * trailing bytes, so each manifest has exactly one encoding. */
#ifndef PEERCLING_MANIFEST_H
#define PEERCLING_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

#define MANIFEST_VERSION 1
#define MANIFEST_INLINE_MAX 2048
#define MANIFEST_XATTR_NAME_MAX 255
#define MANIFEST_XATTR_VALUE_MAX 65536

struct fetch;

struct manifest_block {
	blockid_t id; /* all zero: a hole */
	uint32_t len;
};

struct manifest_xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

struct manifest {
	uint32_t mode;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	int64_t atime_sec; /* kept as set (touch -a, utimensat); reads do not change it */
	uint32_t atime_nsec;
	uint64_t size;
	int is_inline;
	uint8_t *inline_data; /* size bytes when is_inline */
	size_t nblocks, blocks_cap;
	struct manifest_block *blocks;
	/* offsets[i]: where blocks[i] starts in the file, so that reads find
	 * their first block by binary search.  Kept by manifest_add_block
	 * (and so by decode and dup): append blocks only through it. */
	uint64_t *offsets;
	size_t nxattrs;
	struct manifest_xattr *xattrs;
};

struct manifest *manifest_new(void);
void manifest_free(struct manifest *m);
struct manifest *manifest_dup(const struct manifest *m);
/* Appends a block and grows size by len.  id NULL (or all zero): a hole.
 * -EINVAL for len 0 or an inline manifest. */
int manifest_add_block(struct manifest *m, const blockid_t *id, uint32_t len);

/* *out malloc'd.  -EINVAL when m breaks the format's rules (block lengths
 * not summing to size, unsorted xattrs, ...); one manifest has exactly one
 * encoding, so encode(decode(b)) == b. */
int manifest_encode(const struct manifest *m, uint8_t **out, size_t *out_len);
/* -EINVAL (with error_last()) for anything malformed; never crashes. */
int manifest_decode(struct manifest **out, const void *buf, size_t len);

/* Reads up to len bytes at off through the fetch chain; returns the number
 * of bytes read (short only at end of file) or a negative errno (-EIO when a
 * block cannot be had from any source). */
long manifest_read(const struct manifest *m, struct fetch *f, uint64_t off,
		   void *buf, size_t len);

/* Returns the index of the block holding byte off, and its start offset;
 * nblocks and size when off is at or past the end. */
size_t manifest_find(const struct manifest *m, uint64_t off, uint64_t *block_start);

/* xattrs: set replaces or adds; -ENODATA when get/remove finds none. */
int manifest_xattr_set(struct manifest *m, const char *name, const void *val, size_t len);
int manifest_xattr_remove(struct manifest *m, const char *name);
const struct manifest_xattr *manifest_xattr_get(const struct manifest *m, const char *name);

#endif
