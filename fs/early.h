/* early: cutting a file into blocks while it is being written.
 *
 * A flush has to cut, hash and store everything written since the last
 * one, so a 1 GiB file written in one go would make its close or fsync wait
 * for 1 GiB of hashing.  A file written from scratch (created, or truncated
 * to zero) mostly grows at the end, and whatever lies well behind the end
 * will not change again: the writing thread cuts those blocks while the
 * file is still being written (hashing on all cores), so that work overlaps
 * the writes instead of following them, and the flush starts where it left
 * off.  A
 * write back into the part already cut throws the early blocks away (they
 * stay in the store as garbage that costs an upload at most): correctness
 * never depends on the guess. */
#ifndef PEERCLING_FS_EARLY_H
#define PEERCLING_FS_EARLY_H

struct fs;
struct fs_inode;

/* Called after a write to ino returned, by the thread that made it, with no
 * lock held; the caller keeps ino alive.  Does nothing unless enough of the
 * file has settled and no other thread is cutting it already. */
void fs_early_cut(struct fs *fs, struct fs_inode *ino);

#endif
