/* fs: the working tree of a mounted volume, independent of FUSE: loading it
 * from the last commit plus the journal, reading and writing file content,
 * flushing writes into blocks and manifests, and committing.  fs/ops.c maps
 * kernel requests onto these calls; the unit tests call them directly.
 *
 * Locking: fs->lock guards the inode table, names, attributes, the journal
 * and commits.  An inode's data_lock guards its content (manifest and
 * overlay).  Order: data_lock before fs->lock, never the other way round. */
#ifndef PEERCLING_FS_FS_H
#define PEERCLING_FS_FS_H

#include <git2.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs/inode.h"
#include "fs/rechunk.h"

struct volume;
struct fs_journal;

/* A kernel cache entry to drop after the tree changed underneath: the name
 * in parent (and, when ino is set, that inode's cached content). */
struct fs_inval {
	uint64_t parent;
	char *name;
	uint64_t ino;
};
struct fs_bcache;
struct fs_early;
struct fs_prefetch;

struct fs {
	struct volume *vol; /* borrowed */
	struct fs_table *table;
	struct fs_inode *root;
	pthread_mutex_t lock;
	struct fs_journal *journal;
	struct fs_bcache *bcache;
	struct fs_prefetch *prefetch;
	struct fs_early *early;
	char *overlay_dir;
	uid_t uid;
	gid_t gid;
	/* -o noxattr: extended attributes answer ENOSYS, so the kernel stops
	 * asking (ls -l asks two per file). */
	int noxattr;
	/* Commits. */
	int changed;           /* since the last commit */
	uint64_t change_seq;   /* bumps on every change */
	struct timespec last_change;
	int has_head;
	git_oid head;
	uint64_t commits_made;
	int replay_skip;
	long replayed;
	struct fs_rechunk_stats last_flush; /* for tests and the debug log */
	uint64_t kept_flushes; /* fsyncs answered by keeping the overlay (tests) */
	/* Kept overlay files whose data is now in blocks: deleted once a
	 * commit has made that durable. */
	char **dead;
	size_t ndead, dead_cap;
	/* Set by the daemon: tells the kernel what changed underneath. */
	void (*inval)(void *payload, const struct fs_inval *what);
	void *inval_payload;
};

int fs_new(struct fs **out, struct volume *vol);
void fs_free(struct fs *fs);

/* Commit the working tree if it differs from the last commit.  *made (may
 * be NULL) is set to 1 when a commit was made.  Takes fs->lock. */
int fs_commit(struct fs *fs, const char *message, int *made);

/* Content.  The caller holds a reference (lookup or open) on ino. */
long fs_read(struct fs *fs, struct fs_inode *ino, void *buf, size_t len, uint64_t off);
long fs_write(struct fs *fs, struct fs_inode *ino, const void *buf, size_t len, uint64_t off);
/* The same, with put() writing the len bytes into the overlay's fd at off
 * itself (the FUSE layer splices them there); returns bytes or -errno. */
long fs_write_with(struct fs *fs, struct fs_inode *ino, size_t len, uint64_t off,
		   long (*put)(void *ctx, int fd, uint64_t off), void *ctx);
int fs_truncate(struct fs *fs, struct fs_inode *ino, uint64_t size);
/* Turn written data into blocks and a manifest and journal it; sync also
 * makes the journal durable (fsync). */
int fs_flush(struct fs *fs, struct fs_inode *ino, int sync);
/* Flush every file with unflushed data; only when no request is running. */
int fs_flush_all(struct fs *fs);

/* Journal the current state of a file or symlink (after a metadata change).
 * Caller holds fs->lock. */
int fs_journal_put(struct fs *fs, struct fs_inode *ino);
/* Append a path operation; caller holds fs->lock. */
int fs_journal_op(struct fs *fs, int op, uint32_t mode, struct fs_inode *a, const char *path2);
/* Records that the tree changed (for the idle commit); caller holds fs->lock. */
void fs_note_change(struct fs *fs);

/* A directory's content changed: new mtime, metadata to commit again.
 * Caller holds fs->lock. */
void fs_dir_touch(struct fs_inode *dir);

/* A new file, directory or symlink under dir; caller holds fs->lock. */
int fs_create_node(struct fs *fs, struct fs_inode *dir, const char *name, mode_t mode,
		   const char *target, struct fs_inode **out);

/* With fs->lock held: 1 when the file at path (in the mount) is open or
 * holds written data not cut into blocks yet: changing it behind its
 * writer's back would be undone by the writer's next flush. */
int fs_path_busy(struct fs *fs, const char *path);

/* The working tree side of a sync (struct sync_worktree's commit_and_merge,
 * with wt a struct fs): commit, merge, take in the result. */
int fs_commit_and_merge(void *wt,
			int (*merge)(git_oid *out, const git_oid *local, int has_local, void *p),
			void *p, git_oid *head_out, int *has_head);

#endif
