/* inode: the mount's in-memory tree.  Every file, directory and symlink of
 * the working tree is one fs_inode, found by number (for the kernel) or by
 * (parent, name) (for lookups), both through hash tables.  Inode numbers are
 * never reused within one mount, so the kernel's generation is always 0.
 *
 * The table does no locking of its own: the caller holds fs->lock. */
#ifndef PEERCLING_FS_INODE_H
#define PEERCLING_FS_INODE_H

#include <git2.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct manifest;
struct fs_overlay;

/* Several programs may read one file at once, each in order, their reads
 * interleaved (or one reads in order while another jumps about): a read
 * that starts where one of the last FS_RA_STREAMS reads ended continues
 * that stream and earns readahead.  Hints only, read and written
 * atomically. */
#define FS_RA_STREAMS 4
struct fs_ra {
	uint64_t next[FS_RA_STREAMS];	/* where the stream's last read ended */
	uint64_t queued[FS_RA_STREAMS]; /* its readahead queued up to here */
	uint32_t used[FS_RA_STREAMS];	/* when it last read: the oldest goes */
	uint32_t clock;
};

struct fs_inode {
	uint64_t ino;
	uint64_t nlookup;    /* references the kernel holds (lookup - forget) */
	uint32_t open_count; /* open file handles */
	mode_t mode;         /* S_IFREG/S_IFDIR/S_IFLNK | permission bits */
	uint64_t size;
	struct timespec mtime, ctime, atime; /* atime changes only when set */
	struct fs_inode *parent; /* NULL: unlinked (or the root) */
	char *name;

	struct fs_inode *ino_next;  /* hash chain by ino */
	struct fs_inode *dent_next; /* hash chain by (parent, name) */
	struct fs_inode *child_first, *sib_next, *sib_prev; /* directory entries */
	uint64_t nchildren;
	uint64_t nsubdirs; /* of nchildren: directories (st_nlink is 2 + this) */

	/* Regular files: the content as of the last flush, and what was
	 * written since.  data_lock orders readers and writers of the content;
	 * fs->lock is never taken while holding it. */
	struct manifest *m;
	struct fs_overlay *ov;
	pthread_rwlock_t data_lock;
	/* The sequential readers of this file being followed (fs.c's
	 * read_ahead); NULL until its first read.  Installed atomically. */
	struct fs_ra *ra;
	/* A file read all over: reads that missed the store, and once there
	 * were enough, 1 when the whole file is queued for the background.
	 * Hints, read and written atomically. */
	uint32_t scattered_misses;
	uint32_t whole_queued;
	/* Queued for or being cut ahead of the flush (fs/early.c); keeps the
	 * inode alive.  fs->lock guards it. */
	int early_busy;
	/* After an fsync that kept the data in a named overlay (FS_J_DATA):
	 * the record's body and the file's name, to journal again after a
	 * commit empties the journal.  fs->lock guards them. */
	uint8_t *kept;
	size_t kept_len;
	char *kept_name;
	/* Symlinks. */
	char *target;
	/* The blob of the last commit, reused while the inode is unchanged. */
	int blob_valid;
	git_oid blob;
};

struct fs_table;

int fs_table_new(struct fs_table **out);
void fs_table_free(struct fs_table *t);

/* A new inode with a fresh number; linked nowhere yet. */
struct fs_inode *fs_inode_new(struct fs_table *t, mode_t mode);
struct fs_inode *fs_table_find(struct fs_table *t, uint64_t ino);
struct fs_inode *fs_table_lookup(struct fs_table *t, struct fs_inode *dir, const char *name);
uint64_t fs_table_count(struct fs_table *t);

/* Link child into dir under name (dir must not have name yet). */
int fs_inode_link(struct fs_table *t, struct fs_inode *dir, struct fs_inode *child,
		  const char *name);
/* Remove child from its directory; it keeps its number until freed. */
void fs_inode_unlink(struct fs_table *t, struct fs_inode *child);
/* Free when unlinked, unreferenced by the kernel and not open. */
void fs_inode_maybe_free(struct fs_table *t, struct fs_inode *ino);
/* Frees an unlinked directory subtree unconditionally (used at unmount). */
void fs_inode_free_tree(struct fs_table *t, struct fs_inode *root);

/* Path relative to the root ("" for the root); *out malloc'd. */
int fs_inode_path(char **out, const struct fs_inode *ino);

/* Marks the inode and its ancestors as changed since the last commit. */
void fs_inode_touch_blob(struct fs_inode *ino);

#endif
