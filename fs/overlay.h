/* overlay: what was written to an open file since its last flush.  The
 * bytes live in an anonymous temporary file (O_TMPFILE, so a crash leaves
 * nothing behind) at their file offsets; a sorted list of disjoint ranges
 * says which offsets are dirty.  Below base_limit, undirty bytes come from
 * the file's manifest; every byte at or above base_limit is dirty (holes
 * read as zeros from the sparse temp file), so a read never needs to know
 * what a truncate threw away.  The caller holds the inode's data_lock. */
#ifndef PEERCLING_FS_OVERLAY_H
#define PEERCLING_FS_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

struct fs_range {
	uint64_t lo, hi; /* [lo, hi) */
};

/* One block cut ahead of the flush (see fs_rechunk_ahead). */
struct fs_early_block {
	blockid_t id;
	uint32_t len;
	int hole;
};

struct fs_overlay {
	int fd;
	uint64_t serial; /* unique per overlay: tells a new one at an old address apart */
	uint64_t base_limit;
	size_t nranges, cap;
	struct fs_range *r;
	/* A file written from scratch (base_limit 0) is cut into blocks while
	 * it is being written: [0, early_end) is already cut into early[].
	 * Any change below early_guard (early_end, or the end of the window
	 * being cut right now) throws that away and bumps early_epoch. */
	uint64_t early_end, early_guard, early_epoch;
	size_t nearly, early_cap;
	struct fs_early_block *early;
	/* Set once an fsync gave the temp file a name in the overlay
	 * directory, so that a journal record can find it after a crash. */
	char *name;
};

/* dir: where the temp file goes (same filesystem as the state). */
int fs_overlay_new(struct fs_overlay **out, const char *dir, uint64_t base_size);
void fs_overlay_free(struct fs_overlay *ov);

/* Writes buf at off into the temp file and marks it dirty.  size is the
 * file's size before the write: a gap between it and off becomes dirty
 * zeros. */
int fs_overlay_write(struct fs_overlay *ov, const void *buf, size_t len, uint64_t off,
		     uint64_t size);
/* Marks len bytes at off as written by someone else straight into ov->fd
 * (a splice from the kernel); size as for fs_overlay_write. */
void fs_overlay_note_write(struct fs_overlay *ov, size_t len, uint64_t off, uint64_t size);
/* Size changes from old_size to new_size. */
int fs_overlay_truncate(struct fs_overlay *ov, uint64_t old_size, uint64_t new_size);
void fs_overlay_mark(struct fs_overlay *ov, uint64_t lo, uint64_t hi);

/* Makes what was written durable where it is: names the temp file in dir
 * (once), then fdatasync.  After this a journal record naming ov->name and
 * the ranges brings the data back after a crash. */
int fs_overlay_keep(struct fs_overlay *ov, const char *dir);

/* Appends n blocks cut from [early_end, ...) and moves early_end past them. */
int fs_overlay_add_early(struct fs_overlay *ov, const struct fs_early_block *b, size_t n);

/* Reads len bytes at off from an overlay's temp file (fd: ov->fd or a dup
 * of it); bytes past its end read as zeros, as the file's holes do. */
int fs_overlay_pread(int fd, void *buf, size_t len, uint64_t off);

/* The first range that ends after off, or NULL. */
const struct fs_range *fs_overlay_next(const struct fs_overlay *ov, uint64_t off);

#endif
