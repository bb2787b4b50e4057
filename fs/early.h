/* early: cutting a file into blocks while it is being written.
 *
 * A flush has to cut, hash and store everything written since the last
 * one, so a 1 GiB file written in one go would make its close wait for
 * 1 GiB of hashing.  A file written from scratch (created, or truncated to
 * zero) mostly grows at the end, and whatever lies well behind the end will
 * not change again: one background thread cuts those blocks while the file
 * is still being written, and the flush starts where it left off.  The
 * thread runs at idle priority, on CPU time the writers leave over, so it
 * never slows the writes down (on two cores, hashing next to the writes
 * made them three times slower).  A write back into the part already cut
 * throws the early blocks away (they stay in the store as garbage that
 * costs an upload at most): correctness never depends on the guess. */
#ifndef PEERCLING_FS_EARLY_H
#define PEERCLING_FS_EARLY_H

#include <stdint.h>

struct fs;
struct fs_inode;
struct fs_overlay;
struct fs_early;

int fs_early_new(struct fs_early **out, struct fs *fs);
/* Stops the thread; inodes still queued are let go. */
void fs_early_free(struct fs_early *e);

/* With ino's data_lock and fs->lock held, after a write: 1 when enough of
 * the file has settled to be worth cutting and it is not queued yet; it is
 * then marked queued (which keeps the inode alive) and the caller must
 * pass it to fs_early_queue once both locks are released. */
int fs_early_due(struct fs_inode *ino);
void fs_early_queue(struct fs_early *e, struct fs_inode *ino);

/* Waits until nothing is queued or being cut (tests). */
void fs_early_wait(struct fs_early *e);

#endif
