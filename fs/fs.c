/* fs: the working tree.  Loads the last commit into inodes, replays the
 * journal over it, serves content reads and writes, flushes writes into
 * blocks, and turns the tree back into a commit.  No FUSE here. */
#include "config.h"
#include "fs/fs.h"
#include "core/chunk.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/store.h"
#include "core/tree.h"
#include "core/volume.h"
#include "fs/bcache.h"
#include "fs/early.h"
#include "fs/journal.h"
#include "fs/overlay.h"
#include "fs/prefetch.h"
#include "fs/rechunk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "fs"
#define BCACHE_SLOTS 512
#define BCACHE_BYTES (32u << 20) /* readahead's ~16 MB ahead fits twice */
#define READAHEAD_BLOCKS 224     /* about 16 MB past a sequential read */
#define READAHEAD_MAX 256
/* A file whose reads missed the store this often away from any sequential
 * run is being read all over (a database, an archive's index, fio's random
 * reads): from then on the whole file is fetched in the background
 * (fs_prefetch_whole), so later reads find it here instead of each waiting
 * a round trip.  Only for files that fit a quarter of the cache limit; a
 * few partial reads never get there. */
#define WHOLE_AFTER 64
#define WHOLE_MAX_UNLIMITED (4ull << 30) /* with cache.limit 0 */
/* Each fetches one window (up to 1 MiB) at a time, so this bounds what is
 * in flight: with a cloud 50 ms away, 6 threads read 77 MB/s, 16 read 196
 * (bench/delayproxy); on loopback the two are the same. */
#define PREFETCH_THREADS 16

static int is_exec(mode_t mode)
{
	return (mode & 0111) != 0;
}

static uint32_t git_mode_of(const struct fs_inode *ino)
{
	if (S_ISLNK(ino->mode))
		return GIT_FILEMODE_LINK;
	if (S_ISDIR(ino->mode))
		return GIT_FILEMODE_TREE;
	return is_exec(ino->mode) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
}

void fs_note_change(struct fs *fs)
{
	fs->changed = 1;
	fs->change_seq++;
	clock_gettime(CLOCK_MONOTONIC, &fs->last_change);
}

/* ---- building inodes from paths (load and replay) ---------------------- */

/* Finds the parent directory of path, creating missing directories when
 * create is set; *name points into path at the last component. */
static int walk_to_parent(struct fs *fs, const char *path, int create, struct fs_inode **parent,
			  const char **name)
{
	struct fs_inode *dir = fs->root;
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash)
			break;
		char comp[NAME_MAX + 1];
		size_t n = (size_t)(slash - p);
		if (n == 0 || n > NAME_MAX)
			return -EINVAL;
		memcpy(comp, p, n);
		comp[n] = '\0';
		struct fs_inode *next = fs_table_lookup(fs->table, dir, comp);
		if (!next) {
			if (!create)
				return -ENOENT;
			next = fs_inode_new(fs->table, S_IFDIR | 0755);
			if (!next || fs_inode_link(fs->table, dir, next, comp))
				return -ENOMEM;
		}
		if (!S_ISDIR(next->mode))
			return -ENOTDIR;
		dir = next;
		p = slash + 1;
	}
	if (!*p || strlen(p) > NAME_MAX)
		return -EINVAL;
	*parent = dir;
	*name = p;
	return 0;
}

static struct fs_inode *find_path(struct fs *fs, const char *path)
{
	struct fs_inode *dir;
	const char *name;
	if (!*path)
		return fs->root;
	if (walk_to_parent(fs, path, 0, &dir, &name))
		return NULL;
	return fs_table_lookup(fs->table, dir, name);
}

int fs_path_busy(struct fs *fs, const char *path)
{
	struct fs_inode *n = find_path(fs, path);
	return n && (n->open_count || n->ov);
}

/* Takes n and everything below it out of the tree.  Inodes the kernel
 * still knows or that are open stay allocated (unlinked) until their last
 * forget or release, exactly as after unlink(2). */
static void drop_subtree(struct fs *fs, struct fs_inode *n)
{
	while (n->child_first)
		drop_subtree(fs, n->child_first);
	fs_inode_unlink(fs->table, n);
	fs_inode_maybe_free(fs->table, n);
}

/* Sets a file or symlink inode's content from a blob. */
static int apply_blob(struct fs_inode *ino, uint32_t git_mode, const void *data, size_t len)
{
	if (git_mode == GIT_FILEMODE_LINK) {
		char *t = strndup(data, len);
		if (!t)
			return -ENOMEM;
		free(ino->target);
		ino->target = t;
		ino->mode = S_IFLNK | 0777;
		ino->size = len;
		return 0;
	}
	struct manifest *m = NULL;
	int rc = manifest_decode(&m, data, len);
	if (rc)
		return rc;
	manifest_free(ino->m);
	ino->m = m;
	ino->mode = S_IFREG | (m->mode & 07777);
	/* git's exec bit wins when a plain git tool changed it. */
	if (git_mode == GIT_FILEMODE_BLOB_EXECUTABLE && !is_exec(ino->mode))
		ino->mode |= 0100;
	ino->size = m->size;
	ino->mtime.tv_sec = m->mtime_sec;
	ino->mtime.tv_nsec = m->mtime_nsec;
	ino->atime.tv_sec = m->atime_sec;
	ino->atime.tv_nsec = m->atime_nsec;
	ino->ctime = ino->mtime;
	return 0;
}

/* Creates or replaces the node at path with the given blob. */
static int put_path(struct fs *fs, const char *path, uint32_t git_mode, const void *data,
		    size_t len, const git_oid *oid)
{
	struct fs_inode *dir, *n;
	const char *name;
	int rc = walk_to_parent(fs, path, 1, &dir, &name);
	if (rc)
		return rc;
	n = fs_table_lookup(fs->table, dir, name);
	if (n && S_ISDIR(n->mode)) {
		drop_subtree(fs, n);
		n = NULL;
	}
	if (!n) {
		n = fs_inode_new(fs->table, S_IFREG | 0644);
		if (!n || fs_inode_link(fs->table, dir, n, name))
			return -ENOMEM;
	}
	if ((rc = apply_blob(n, git_mode, data, len)))
		return rc;
	n->blob_valid = oid != NULL;
	if (oid)
		n->blob = *oid;
	return 0;
}

static int mkdir_path(struct fs *fs, const char *path, mode_t mode)
{
	struct fs_inode *dir, *n;
	const char *name;
	if (!*path)
		return 0; /* the root always exists */
	int rc = walk_to_parent(fs, path, 1, &dir, &name);
	if (rc)
		return rc;
	n = fs_table_lookup(fs->table, dir, name);
	if (n && !S_ISDIR(n->mode)) {
		drop_subtree(fs, n);
		n = NULL;
	}
	if (!n) {
		n = fs_inode_new(fs->table, S_IFDIR | (mode & 07777));
		if (!n || fs_inode_link(fs->table, dir, n, name))
			return -ENOMEM;
	}
	return 0;
}

static int commit_locked(struct fs *fs, const char *message, int *made);
static int journal_restart(struct fs *fs);

struct load_ctx {
	struct fs *fs;
	int rc;
};

/* A directory's own metadata (mode, mtime, xattrs) from its "%" entry. */
static int apply_dir_meta(struct fs_inode *dir, const void *data, size_t len)
{
	struct manifest *m = NULL;
	int rc = manifest_decode(&m, data, len);
	if (rc)
		return rc;
	manifest_free(dir->m);
	dir->m = m;
	dir->mode = S_IFDIR | (m->mode & 07777);
	dir->mtime.tv_sec = m->mtime_sec;
	dir->mtime.tv_nsec = m->mtime_nsec;
	dir->atime.tv_sec = m->atime_sec;
	dir->atime.tv_nsec = m->atime_nsec;
	dir->ctime = dir->mtime;
	return 0;
}

static int is_meta_path(const char *tree_path)
{
	const char *slash = strrchr(tree_path, '/');
	return strcmp(slash ? slash + 1 : tree_path, TREE_DIR_META) == 0;
}

static int load_blob(struct fs *fs, const char *tree_path, uint32_t git_mode, const git_oid *oid)
{
	git_blob *blob = NULL;
	char *path = NULL;
	int rc;
	if (git_blob_lookup(&blob, fs->vol->repo, oid) < 0)
		return tree_git_error(-1, tree_path);
	const void *data = git_blob_rawcontent(blob);
	size_t len = (size_t)git_blob_rawsize(blob);
	if ((rc = tree_path_unescape(&path, tree_path)) == 0) {
		if (is_meta_path(tree_path)) {
			char *slash = strrchr(path, '/');
			if (slash)
				*slash = '\0';
			else
				path[0] = '\0';
			struct fs_inode *dir = find_path(fs, path);
			if (!dir && (rc = mkdir_path(fs, path, 0755)) == 0)
				dir = find_path(fs, path);
			if (dir) {
				rc = apply_dir_meta(dir, data, len);
				dir->blob = *oid;
				dir->blob_valid = !rc;
			}
		} else {
			rc = put_path(fs, path, git_mode, data, len, oid);
		}
	}
	free(path);
	git_blob_free(blob);
	return rc;
}

static int load_cb(const char *tree_path, uint32_t git_mode, const git_oid *oid, void *payload)
{
	struct load_ctx *lc = payload;
	struct fs *fs = lc->fs;
	if (git_mode == GIT_FILEMODE_TREE) {
		char *path = NULL;
		lc->rc = tree_path_unescape(&path, tree_path);
		if (!lc->rc)
			lc->rc = mkdir_path(fs, path, 0755);
		free(path);
	} else {
		lc->rc = load_blob(fs, tree_path, git_mode, oid);
	}
	if (lc->rc)
		log_error("cannot load %s from the last commit: %s", tree_path, error_last());
	return lc->rc;
}

struct flush_ctx {
	struct fs *fs;
	struct fs_inode *ino;
};

static long read_locked(struct fs *fs, struct fs_inode *ino, uint8_t *buf, size_t len,
			uint64_t off, int scattered);

static long flush_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct flush_ctx *fc = ctx;
	return read_locked(fc->fs, fc->ino, buf, len, off, 0);
}

/* The new content replaces the old; xattrs belong to the file, not to its
 * content, so they move over. */
static void take_content(struct fs_inode *ino, struct manifest *m)
{
	if (ino->m) {
		m->nxattrs = ino->m->nxattrs;
		m->xattrs = ino->m->xattrs;
		ino->m->nxattrs = 0;
		ino->m->xattrs = NULL;
	}
	manifest_free(ino->m);
	ino->m = m;
}

/* An fsync kept written data in a named overlay file: cut it into blocks
 * now, on top of what the journal has rebuilt so far for that path. */
static int replay_data(struct fs *fs, const struct fs_journal_rec *rec)
{
	struct fs_inode *a = find_path(fs, rec->path1);
	if (!a || !S_ISREG(a->mode))
		return 0; /* removed later on, or never there: nothing to keep */
	struct fs_overlay ov = { .fd = -1 };
	uint64_t size;
	int rc = fs_journal_data_decode(rec->data, rec->len, &size, &ov.base_limit, &ov.r,
					&ov.nranges);
	if (rc)
		return rc;
	char *path = NULL;
	if (strchr(rec->path2, '/') || asprintf(&path, "%s/%s", fs->overlay_dir, rec->path2) < 0) {
		free(ov.r);
		return -EINVAL;
	}
	ov.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ov.fd < 0) {
		rc = error_set(-errno, "data kept for %s in %s is gone: %s", rec->path1, path,
			       strerror(errno));
		free(path);
		free(ov.r);
		return rc;
	}
	free(path);
	struct manifest *m = NULL;
	struct flush_ctx fc = { fs, a };
	a->ov = &ov;
	a->size = size;
	rc = fs_rechunk(&m, a->m, &ov, size, flush_read, &fc, fs->vol->store, NULL);
	a->ov = NULL;
	close(ov.fd);
	free(ov.r);
	if (rc)
		return rc;
	take_content(a, m);
	a->blob_valid = 0;
	return 0;
}

static int replay_cb(const struct fs_journal_rec *rec, void *payload)
{
	struct fs *fs = payload;
	struct fs_inode *a, *b, *dir;
	const char *name;
	int rc = 0;
	if (rec->op == FS_J_BASE) {
		/* Records written on top of another commit than the current one
		 * are already in it (a crash between commit and emptying the
		 * journal): replaying them again could undo later changes. */
		char head[GIT_OID_HEXSZ + 1] = "";
		if (fs->has_head)
			git_oid_tostr(head, sizeof(head), &fs->head);
		fs->replay_skip = rec->len != strlen(head) || memcmp(rec->data, head, rec->len) != 0;
		return 0;
	}
	if (fs->replay_skip)
		return 0;
	fs->replayed++;
	switch (rec->op) {
	case FS_J_PUT:
		rc = put_path(fs, rec->path1, rec->mode, rec->data, rec->len, NULL);
		break;
	case FS_J_MKDIR:
		rc = mkdir_path(fs, rec->path1, rec->mode);
		if (!rc && rec->len && (a = find_path(fs, rec->path1)))
			rc = apply_dir_meta(a, rec->data, rec->len);
		break;
	case FS_J_REMOVE:
		if ((a = find_path(fs, rec->path1)) && a != fs->root)
			drop_subtree(fs, a);
		break;
	case FS_J_RENAME:
		if (!(a = find_path(fs, rec->path1)))
			break;
		if ((rc = walk_to_parent(fs, rec->path2, 1, &dir, &name)))
			break;
		if ((b = fs_table_lookup(fs->table, dir, name)) && b != a)
			drop_subtree(fs, b);
		fs_inode_unlink(fs->table, a);
		rc = fs_inode_link(fs->table, dir, a, name);
		break;
	case FS_J_BASE:
		break;
	case FS_J_DATA:
		rc = replay_data(fs, rec);
		break;
	case FS_J_EXCHANGE: {
		a = find_path(fs, rec->path1);
		b = find_path(fs, rec->path2);
		if (!a || !b)
			break;
		struct fs_inode *pa = a->parent, *pb = b->parent;
		char *na = strdup(a->name), *nb = strdup(b->name);
		fs_inode_unlink(fs->table, a);
		fs_inode_unlink(fs->table, b);
		rc = fs_inode_link(fs->table, pb, a, nb);
		if (!rc)
			rc = fs_inode_link(fs->table, pa, b, na);
		free(na);
		free(nb);
		break;
	}
	}
	if (rc)
		log_error("journal record for %s could not be applied: %s", rec->path1,
			  strerror(-rc));
	return 0; /* one bad record must not hide the ones after it */
}

/* Files left in the overlay directory were kept by fsyncs before a stop;
 * once the journal is replayed and committed they hold nothing needed. */
static void clean_overlay_dir(struct fs *fs)
{
	DIR *d = opendir(fs->overlay_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && unlinkat(dirfd(d), e->d_name, 0) != 0)
			log_warn("cannot remove %s/%s: %s", fs->overlay_dir, e->d_name,
				 strerror(errno));
	closedir(d);
}

static int load(struct fs *fs)
{
	git_oid tree, commit;
	int rc = tree_head(&tree, &commit, fs->vol->repo, VOLUME_REF);
	if (rc == 0) {
		fs->has_head = 1;
		fs->head = commit;
		struct load_ctx lc = { fs, 0 };
		rc = tree_walk(fs->vol->repo, &tree, load_cb, &lc);
		if (lc.rc)
			rc = lc.rc;
		if (rc)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	}
	long n = fs_journal_replay(fs->journal, replay_cb, fs);
	if (n < 0)
		return (int)n;
	if (fs->replayed > 0) {
		/* Fold what survived a crash into history at once. */
		log_warn("recovered %ld changes made after the last commit", fs->replayed);
		rc = commit_locked(fs, "recovered after an unclean stop", NULL);
	} else {
		rc = journal_restart(fs);
	}
	if (!rc)
		clean_overlay_dir(fs);
	return rc;
}

/* Blocks a source brings along with the one a reader asked for are the
 * ones that reader wants next. */
static void bcache_sink(void *ctx, const blockid_t *id, uint8_t *data, size_t len)
{
	fs_bcache_put(ctx, id, data, len);
}

int fs_new(struct fs **out, struct volume *vol)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	char *jpath = NULL;
	int rc;
	if (!fs)
		return -ENOMEM;
	fs->vol = vol;
	fs->uid = getuid();
	fs->gid = getgid();
	pthread_mutex_init(&fs->lock, NULL);
	if ((rc = fs_table_new(&fs->table)) ||
	    (rc = fs_bcache_new(&fs->bcache, BCACHE_SLOTS, BCACHE_BYTES)))
		goto fail;
	fs->root = fs_inode_new(fs->table, S_IFDIR | 0755);
	if (!fs->root) {
		rc = -ENOMEM;
		goto fail;
	}
	fs->root->nlookup = 1;
	if (volume_file(&fs->overlay_dir, vol, "overlay") || volume_file(&jpath, vol, "journal")) {
		rc = -ENOMEM;
		goto fail;
	}
	if (mkdir(fs->overlay_dir, 0700) != 0 && errno != EEXIST) {
		rc = error_set(-errno, "cannot create %s: %s", fs->overlay_dir, strerror(errno));
		goto fail;
	}
	if ((rc = fs_journal_open(&fs->journal, jpath)) || (rc = load(fs)) ||
	    (rc = fs_prefetch_new(&fs->prefetch, vol->fetch, fs->bcache, PREFETCH_THREADS)) ||
	    (rc = fs_early_new(&fs->early, fs)))
		goto fail;
	fetch_set_sink(vol->fetch, bcache_sink, fs->bcache);
	free(jpath);
	*out = fs;
	return 0;
fail:
	free(jpath);
	fs_free(fs);
	return rc;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_early_free(fs->early);
	fs_prefetch_free(fs->prefetch);
	if (fs->vol && fs->bcache)
		fetch_set_sink(fs->vol->fetch, NULL, NULL);
	fs_table_free(fs->table);
	fs_bcache_free(fs->bcache);
	fs_journal_free(fs->journal);
	pthread_mutex_destroy(&fs->lock);
	for (size_t i = 0; i < fs->ndead; i++)
		free(fs->dead[i]); /* removed at the next mount */
	free(fs->dead);
	free(fs->overlay_dir);
	free(fs);
}

/* ---- journal ------------------------------------------------------------ */

static int encode_blob(struct fs_inode *ino, uint8_t **out, size_t *len)
{
	if (S_ISLNK(ino->mode)) {
		*len = strlen(ino->target);
		*out = (uint8_t *)strdup(ino->target);
		return *out ? 0 : -ENOMEM;
	}
	if (!ino->m && !(ino->m = manifest_new()))
		return -ENOMEM;
	ino->m->mode = ino->mode & 07777;
	ino->m->mtime_sec = ino->mtime.tv_sec;
	ino->m->mtime_nsec = (uint32_t)ino->mtime.tv_nsec;
	ino->m->atime_sec = ino->atime.tv_sec;
	ino->m->atime_nsec = (uint32_t)ino->atime.tv_nsec;
	return manifest_encode(ino->m, out, len);
}

int fs_journal_put(struct fs *fs, struct fs_inode *ino)
{
	char *path = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	if (!ino->parent && ino != fs->root)
		return 0; /* unlinked: not part of the tree */
	int rc = encode_blob(ino, &blob, &len);
	if (!rc)
		rc = fs_inode_path(&path, ino);
	if (!rc) {
		int dir = S_ISDIR(ino->mode);
		struct fs_journal_rec rec = { dir ? FS_J_MKDIR : FS_J_PUT,
					      dir ? (ino->mode & 07777) : git_mode_of(ino), path,
					      NULL, blob, len };
		rc = fs_journal_append(fs->journal, &rec);
	}
	ino->blob_valid = 0;
	fs_note_change(fs);
	free(path);
	free(blob);
	if (rc)
		log_error("cannot journal a change: %s", error_last());
	return rc;
}

int fs_journal_op(struct fs *fs, int op, uint32_t mode, struct fs_inode *a, const char *path2)
{
	char *path = NULL;
	int rc = fs_inode_path(&path, a);
	if (!rc) {
		struct fs_journal_rec rec = { (enum fs_journal_op)op, mode, path, path2, NULL, 0 };
		rc = fs_journal_append(fs->journal, &rec);
	}
	fs_note_change(fs);
	free(path);
	if (rc)
		log_error("cannot journal a change: %s", error_last());
	return rc;
}

/* ---- content ------------------------------------------------------------ */

/* Reads [off, off+len) of the flushed content (manifest), len already
 * clipped to it.  scattered: the read continues none before it, so that a
 * block it needs follows one already here says nothing of what comes next
 * (FETCH_ALONE: no window). */
static int read_manifest(struct fs *fs, const struct manifest *m, uint8_t *buf, size_t len,
			 uint64_t off, int scattered)
{
	int flags = scattered ? FETCH_ALONE : 0;
	if (m->is_inline) {
		memcpy(buf, m->inline_data + off, len);
		return 0;
	}
	uint64_t bstart;
	size_t i = manifest_find(m, off, &bstart);
	while (len > 0 && i < m->nblocks) {
		const struct manifest_block *b = &m->blocks[i];
		uint32_t in = (uint32_t)(off - bstart);
		size_t n = b->len - in;
		if (n > len)
			n = len;
		if (blockid_is_zero(&b->id)) {
			memset(buf, 0, n);
		} else {
			int rc = fs_bcache_read(fs->bcache, fs->vol->fetch, &b->id, flags, b->len,
						in, buf, n);
			if (rc)
				return rc;
		}
		buf += n;
		len -= n;
		off += n;
		bstart += b->len;
		i++;
	}
	return len ? -EIO : 0;
}

/* The current content, with data_lock held (scattered: see read_manifest). */
static long read_locked(struct fs *fs, struct fs_inode *ino, uint8_t *buf, size_t len,
			uint64_t off, int scattered)
{
	if (off >= ino->size)
		return 0;
	if (len > ino->size - off)
		len = (size_t)(ino->size - off);
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done;
		size_t n = len - done;
		int rc;
		const struct fs_range *r = ino->ov ? fs_overlay_next(ino->ov, pos) : NULL;
		if (r && r->lo <= pos) {
			if (n > r->hi - pos)
				n = (size_t)(r->hi - pos);
			rc = fs_overlay_pread(ino->ov->fd, buf + done, n, pos);
		} else {
			if (r && n > r->lo - pos)
				n = (size_t)(r->lo - pos);
			if (!ino->m) {
				memset(buf + done, 0, n);
				rc = 0;
			} else {
				if (pos >= ino->m->size)
					return error_set(-EIO, "read past the flushed content");
				if (n > ino->m->size - pos)
					n = (size_t)(ino->m->size - pos);
				rc = read_manifest(fs, ino->m, buf + done, n, pos, scattered);
			}
		}
		if (rc)
			return rc;
		done += n;
	}
	return (long)done;
}

/* Called for reads that are not sequential (see WHOLE_AFTER). */
static void fetch_whole(struct fs *fs, struct fs_inode *ino, const struct manifest *m,
			size_t first_block)
{
	if (__atomic_load_n(&ino->whole_queued, __ATOMIC_RELAXED))
		return;
	uint64_t limit = fs->vol->cache_limit, max = limit ? limit / 4 : WHOLE_MAX_UNLIMITED;
	if (m->size > max ||
	    store_has(fetch_store_borrow(fs->vol->fetch), &m->blocks[first_block].id) ||
	    __atomic_add_fetch(&ino->scattered_misses, 1, __ATOMIC_RELAXED) < WHOLE_AFTER)
		return;
	uint32_t no = 0;
	if (!__atomic_compare_exchange_n(&ino->whole_queued, &no, 1, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return; /* another read got here first */
	blockid_t *ids = malloc((m->nblocks ? m->nblocks : 1) * sizeof(*ids));
	int rc = ids ? 0 : -ENOMEM;
	for (size_t k = 0; ids && k < m->nblocks; k++)
		ids[k] = m->blocks[k].id;
	/* All files fetched whole at once stay within a quarter of the cache
	 * too, or they would evict each other. */
	if (!rc)
		rc = fs_prefetch_whole(fs->prefetch, ids, m->nblocks, m->size, max);
	free(ids);
	if (rc) {
		/* Busy with other files: ask again after as many misses. */
		__atomic_store_n(&ino->scattered_misses, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&ino->whole_queued, 0, __ATOMIC_RELAXED);
		log_debug("no background fetch of a file read all over yet: %s", strerror(-rc));
	}
}

/* The file's readahead streams, made at its first read (NULL if memory is
 * short: every read is then scattered). */
static struct fs_ra *ra_of(struct fs_inode *ino)
{
	struct fs_ra *ra = __atomic_load_n(&ino->ra, __ATOMIC_ACQUIRE);
	if (ra)
		return ra;
	struct fs_ra *made = calloc(1, sizeof(*made));
	if (!made)
		return NULL;
	/* Only a read from the very start counts as continuing a stream
	 * nobody has started. */
	for (int k = 1; k < FS_RA_STREAMS; k++)
		made->next[k] = UINT64_MAX;
	if (__atomic_compare_exchange_n(&ino->ra, &ra, made, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return made;
	free(made); /* another reader installed one first: ra is it */
	return ra;
}

/* The stream this read continues (*seq = 1), or the oldest one, which it
 * starts anew (*seq = 0); -1 without streams. */
static int ra_stream(struct fs_ra *ra, uint64_t off, size_t len, int *seq)
{
	int k = -1;
	*seq = 0;
	if (!ra)
		return -1;
	for (int i = 0; i < FS_RA_STREAMS && k < 0; i++)
		if (__atomic_load_n(&ra->next[i], __ATOMIC_RELAXED) == off)
			k = i;
	if (k >= 0) {
		*seq = 1;
	} else {
		k = 0;
		for (int i = 1; i < FS_RA_STREAMS; i++)
			if ((int32_t)(__atomic_load_n(&ra->used[i], __ATOMIC_RELAXED) -
				      __atomic_load_n(&ra->used[k], __ATOMIC_RELAXED)) < 0)
				k = i;
		__atomic_store_n(&ra->queued[k], 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&ra->used[k], __atomic_add_fetch(&ra->clock, 1, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&ra->next[k], off + len, __ATOMIC_RELAXED);
	return k;
}

/* Fetches in parallel what this read needs beyond its first block (which
 * the reading thread fetches itself) and, when the read continues one of
 * the file's streams (struct fs_ra), the next READAHEAD_BLOCKS too, so a
 * cold read waits about one round trip per request instead of one per
 * block.  A sequential reader's window mostly overlaps the one queued for
 * its previous read: the stream's queued marks how far that one went, so
 * each block is queued once, not once per read.  1 when the read is
 * sequential. */
static int read_ahead(struct fs *fs, struct fs_inode *ino, uint64_t off, size_t len)
{
	int seq;
	struct fs_ra *ra = ra_of(ino);
	int k = ra_stream(ra, off, len, &seq);
	const struct manifest *m = ino->m;
	if (!m || m->is_inline || !fs->prefetch || off >= m->size)
		return seq;
	uint64_t start, end = off + len;
	uint64_t queued = seq ? __atomic_load_n(&ra->queued[k], __ATOMIC_RELAXED) : 0;
	size_t i = manifest_find(m, off, &start);
	size_t extra = seq ? READAHEAD_BLOCKS : 0, n = 0;
	blockid_t ids[READAHEAD_MAX];
	uint64_t ends[READAHEAD_MAX];
	if (!seq)
		fetch_whole(fs, ino, m, i);
	start += m->blocks[i].len;
	if (queued < start || queued > end + (uint64_t)READAHEAD_BLOCKS * CHUNK_MAX)
		queued = 0; /* not this reader's window: queue it all */
	for (size_t j = i + 1; j < m->nblocks && n < READAHEAD_MAX; j++) {
		if (start >= end) {
			if (!extra)
				break;
			extra--;
		}
		uint64_t from = start;
		start += m->blocks[j].len;
		if (from >= queued) {
			ends[n] = start;
			ids[n++] = m->blocks[j].id;
		}
	}
	if (!n)
		return seq;
	size_t took = fs_prefetch_queue(fs->prefetch, ids, n,
					FS_PREFETCH_MEMORY | (seq ? FETCH_SEQUENTIAL : 0));
	/* What did not fit the queue is offered again with the next read. */
	if (seq && took)
		__atomic_store_n(&ra->queued[k], ends[took - 1], __ATOMIC_RELAXED);
	return seq;
}

long fs_read(struct fs *fs, struct fs_inode *ino, void *buf, size_t len, uint64_t off)
{
	pthread_rwlock_rdlock(&ino->data_lock);
	int seq = off < ino->size &&
		  read_ahead(fs, ino, off, len < ino->size - off ? len : (size_t)(ino->size - off));
	long r = read_locked(fs, ino, buf, len, off, !seq);
	pthread_rwlock_unlock(&ino->data_lock);
	if (r < 0) {
		char *path = NULL;
		pthread_mutex_lock(&fs->lock); /* names change under rename */
		fs_inode_path(&path, ino);
		pthread_mutex_unlock(&fs->lock);
		log_error("read of %s failed: %s", path ? path : "?", error_last());
		free(path);
	}
	return r;
}

static int ensure_overlay(struct fs *fs, struct fs_inode *ino)
{
	if (ino->ov)
		return 0;
	return fs_overlay_new(&ino->ov, fs->overlay_dir, ino->size);
}

long fs_write_with(struct fs *fs, struct fs_inode *ino, size_t len, uint64_t off,
		   long (*put)(void *ctx, int fd, uint64_t off), void *ctx)
{
	pthread_rwlock_wrlock(&ino->data_lock);
	long w = ensure_overlay(fs, ino);
	if (!w)
		w = put(ctx, ino->ov->fd, off);
	int cut = 0;
	if (w > 0) {
		fs_overlay_note_write(ino->ov, (size_t)w, off, ino->size);
		/* Size and times in one visit to fs->lock: this is the write
		 * path. */
		pthread_mutex_lock(&fs->lock);
		if (off + (uint64_t)w > ino->size)
			ino->size = off + (uint64_t)w;
		clock_gettime(CLOCK_REALTIME, &ino->mtime);
		ino->ctime = ino->mtime;
		ino->blob_valid = 0;
		cut = fs->early && fs_early_due(ino);
		pthread_mutex_unlock(&fs->lock);
	}
	pthread_rwlock_unlock(&ino->data_lock);
	if (cut)
		fs_early_queue(fs->early, ino);
	return w;
}

struct plain_write {
	const void *buf;
	size_t len;
};

static long put_plain(void *ctx, int fd, uint64_t off)
{
	struct plain_write *pw = ctx;
	size_t done = 0;
	while (done < pw->len) {
		ssize_t w = pwrite(fd, (const char *)pw->buf + done, pw->len - done,
				   (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return (long)done;
}

long fs_write(struct fs *fs, struct fs_inode *ino, const void *buf, size_t len, uint64_t off)
{
	struct plain_write pw = { buf, len };
	return fs_write_with(fs, ino, len, off, put_plain, &pw);
}

int fs_truncate(struct fs *fs, struct fs_inode *ino, uint64_t size)
{
	pthread_rwlock_wrlock(&ino->data_lock);
	int rc = 0;
	if (size != ino->size) {
		rc = ensure_overlay(fs, ino);
		if (!rc)
			rc = fs_overlay_truncate(ino->ov, ino->size, size);
		if (!rc) {
			pthread_mutex_lock(&fs->lock);
			ino->size = size;
			pthread_mutex_unlock(&fs->lock);
		}
	}
	pthread_rwlock_unlock(&ino->data_lock);
	return rc;
}

/* An fsync of this much data or more keeps it in the overlay (made durable
 * there, named in the journal) instead of cutting it into blocks first: the
 * fsync then costs what writing the data costs, and the cutting happens at
 * close or commit, or has happened while the file was written. */
#define KEEP_MIN (1u << 20)

static uint64_t dirty_bytes(const struct fs_overlay *ov)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ov->nranges; i++)
		n += ov->r[i].hi - ov->r[i].lo;
	return n;
}

/* data_lock held.  Journals FS_J_DATA for the overlay as it is now. */
static int keep_overlay(struct fs *fs, struct fs_inode *ino)
{
	struct fs_overlay *ov = ino->ov;
	uint8_t *body = NULL;
	size_t len = 0;
	char *path = NULL, *name = NULL;
	int rc = fs_overlay_keep(ov, fs->overlay_dir);
	if (!rc)
		rc = fs_journal_data_encode(&body, &len, ino->size, ov->base_limit, ov->r,
					    ov->nranges);
	if (!rc && !(name = strdup(ov->name)))
		rc = -ENOMEM;
	if (rc) {
		free(body);
		return rc;
	}
	pthread_mutex_lock(&fs->lock);
	rc = fs_inode_path(&path, ino);
	if (!rc && ino->parent) {
		struct fs_journal_rec rec = { FS_J_DATA, 0, path, name, body, len };
		rc = fs_journal_append(fs->journal, &rec);
	}
	if (!rc) {
		free(ino->kept);
		free(ino->kept_name);
		ino->kept = body;
		ino->kept_len = len;
		ino->kept_name = name;
		body = NULL;
		name = NULL;
		fs->kept_flushes++;
	}
	pthread_mutex_unlock(&fs->lock);
	free(path);
	free(body);
	free(name);
	return rc;
}

/* fs->lock held.  The overlay is about to go: its kept file, if any, may be
 * deleted after the next commit. */
static void retire_kept(struct fs *fs, struct fs_inode *ino)
{
	free(ino->kept);
	ino->kept = NULL;
	ino->kept_len = 0;
	if (!ino->kept_name)
		return;
	if (fs->ndead == fs->dead_cap) {
		size_t cap = fs->dead_cap ? fs->dead_cap * 2 : 16;
		char **d = realloc(fs->dead, cap * sizeof(*d));
		if (!d) { /* left for the next mount's clean-up */
			free(ino->kept_name);
			ino->kept_name = NULL;
			return;
		}
		fs->dead = d;
		fs->dead_cap = cap;
	}
	fs->dead[fs->ndead++] = ino->kept_name;
	ino->kept_name = NULL;
}

int fs_flush(struct fs *fs, struct fs_inode *ino, int sync)
{
	int rc = 0;
	pthread_rwlock_wrlock(&ino->data_lock);
	if (ino->ov && sync && dirty_bytes(ino->ov) >= KEEP_MIN) {
		rc = keep_overlay(fs, ino);
		if (rc)
			log_error("keeping written data failed: %s", error_last());
	} else if (ino->ov) {
		struct manifest *m = NULL;
		struct flush_ctx fc = { fs, ino };
		struct fs_rechunk_stats st;
		struct timespec t0, t1, t2;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = fs_rechunk(&m, ino->m, ino->ov, ino->size, flush_read, &fc, fs->vol->store, &st);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc) {
			log_error("flushing a file failed: %s", error_last());
		} else {
			log_debug("flush: %llu bytes chunked (%llu more while written), %llu new blocks, %llu reused",
				  (unsigned long long)st.bytes_chunked,
				  (unsigned long long)st.bytes_early,
				  (unsigned long long)st.blocks_new,
				  (unsigned long long)st.blocks_reused);
			pthread_mutex_lock(&fs->lock);
			fs->last_flush = st;
			take_content(ino, m);
			retire_kept(fs, ino);
			pthread_mutex_unlock(&fs->lock);
			/* Closing the overlay first drops its pages, so a sync
			 * writes the new blocks and not the overlay too.  Only
			 * fsync pays for the sync; a close leaves it to the next
			 * commit (sync_repo), so saving many small files stays
			 * cheap, and kill -9 loses nothing either way. */
			fs_overlay_free(ino->ov);
			ino->ov = NULL;
			rc = sync ? store_sync(fs->vol->store) : 0;
			clock_gettime(CLOCK_MONOTONIC, &t2);
			log_debug("flush: chunking %.3f s, sync %.3f s",
				  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
				  (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9);
			pthread_mutex_lock(&fs->lock);
			int jrc = fs_journal_put(fs, ino);
			pthread_mutex_unlock(&fs->lock);
			rc = rc ? rc : jrc;
		}
	}
	pthread_rwlock_unlock(&ino->data_lock);
	if (!rc && sync) {
		pthread_mutex_lock(&fs->lock);
		rc = fs_journal_sync(fs->journal);
		pthread_mutex_unlock(&fs->lock);
	}
	return rc;
}

void fs_dir_touch(struct fs_inode *dir)
{
	clock_gettime(CLOCK_REALTIME, &dir->mtime);
	dir->ctime = dir->mtime;
	dir->blob_valid = 0;
}

int fs_create_node(struct fs *fs, struct fs_inode *dir, const char *name, mode_t mode,
		   const char *target, struct fs_inode **out)
{
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (fs_table_lookup(fs->table, dir, name))
		return -EEXIST;
	struct fs_inode *n = fs_inode_new(fs->table, mode);
	if (!n)
		return -ENOMEM;
	if (target && !(n->target = strdup(target))) {
		fs_inode_maybe_free(fs->table, n);
		return -ENOMEM;
	}
	if (target)
		n->size = strlen(target);
	int rc = fs_inode_link(fs->table, dir, n, name);
	if (rc) {
		fs_inode_maybe_free(fs->table, n);
		return rc;
	}
	fs_dir_touch(dir);
	rc = fs_journal_put(fs, n);
	*out = n;
	return rc;
}

/* ---- commits ------------------------------------------------------------ */

struct entries {
	struct tree_entry *e;
	char **paths;
	uint8_t **blobs;
	size_t n, cap;
};

static int entries_grow(struct entries *es)
{
	if (es->n < es->cap)
		return 0;
	size_t cap = es->cap ? es->cap * 2 : 256;
	struct tree_entry *e = realloc(es->e, cap * sizeof(*e));
	if (e)
		es->e = e;
	char **p = realloc(es->paths, cap * sizeof(*p));
	if (p)
		es->paths = p;
	uint8_t **b = realloc(es->blobs, cap * sizeof(*b));
	if (b)
		es->blobs = b;
	if (!e || !p || !b)
		return -ENOMEM;
	es->cap = cap;
	return 0;
}

/* One entry: a file or symlink, or (meta) a directory's "%" entry. */
static int entries_add(struct entries *es, struct fs_inode *ino, int meta)
{
	int rc = entries_grow(es);
	if (rc)
		return rc;
	size_t i = es->n++;
	struct tree_entry *e = &es->e[i];
	memset(e, 0, sizeof(*e));
	es->blobs[i] = NULL;
	es->paths[i] = NULL;
	char *path = NULL, *esc = NULL;
	if ((rc = fs_inode_path(&path, ino)) || (rc = tree_path_escape(&esc, path))) {
		free(path);
		return rc;
	}
	free(path);
	if (meta) {
		int n = asprintf(&es->paths[i], "%s%s%s", esc, *esc ? "/" : "", TREE_DIR_META);
		free(esc);
		if (n < 0) {
			es->paths[i] = NULL;
			return -ENOMEM;
		}
	} else {
		es->paths[i] = esc;
	}
	e->path = es->paths[i];
	e->git_mode = meta ? GIT_FILEMODE_BLOB : git_mode_of(ino);
	if (ino->blob_valid) {
		e->has_oid = 1;
		e->oid = ino->blob;
		return 0;
	}
	size_t len;
	rc = encode_blob(ino, &es->blobs[i], &len);
	e->data = es->blobs[i];
	e->len = len;
	return rc;
}

/* Depth first: every directory's metadata, then its entries. */
static int collect(struct entries *es, struct fs_inode *dir)
{
	int rc = entries_add(es, dir, 1);
	for (struct fs_inode *c = dir->child_first; c && !rc; c = c->sib_next)
		rc = S_ISDIR(c->mode) ? collect(es, c) : entries_add(es, c, 0);
	return rc;
}

static void entries_free(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++) {
		free(es->paths[i]);
		free(es->blobs[i]);
	}
	free(es->e);
	free(es->paths);
	free(es->blobs);
}

/* After a commit, remember each blob so the next commit reuses it. */
static void remember_blobs(struct fs *fs, struct fs_inode *dir, git_repository *repo,
			   git_tree *tree)
{
	const git_tree_entry *te = git_tree_entry_byname(tree, TREE_DIR_META);
	if (te) {
		dir->blob = *git_tree_entry_id(te);
		dir->blob_valid = 1;
	}
	for (struct fs_inode *c = dir->child_first; c; c = c->sib_next) {
		char *esc = NULL;
		if (tree_path_escape(&esc, c->name))
			continue;
		te = git_tree_entry_byname(tree, esc);
		free(esc);
		if (!te)
			continue;
		if (S_ISDIR(c->mode)) {
			git_tree *sub = NULL;
			if (git_tree_lookup(&sub, repo, git_tree_entry_id(te)) == 0) {
				remember_blobs(fs, c, repo, sub);
				git_tree_free(sub);
			}
		} else {
			c->blob = *git_tree_entry_id(te);
			c->blob_valid = 1;
		}
	}
}

/* Objects first, then the ref, each made durable before the next step and
 * before the journal is emptied: one syncfs per step instead of an fsync
 * per object (libgit2's own fsync option) keeps big commits fast. */
static int sync_repo(struct fs *fs)
{
	int fd = open(git_repository_path(fs->vol->repo), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return error_set(-errno, "cannot open the repository: %s", strerror(errno));
	int rc = syncfs(fd) == 0 ? 0 : error_set(-errno, "syncfs: %s", strerror(errno));
	close(fd);
	return rc;
}

/* Data kept by an fsync is not in the commit (only flushed content is):
 * its record goes into the new journal again, durably. */
static int rejournal_kept(struct fs *fs, struct fs_inode *dir, int *n)
{
	int rc = 0;
	for (struct fs_inode *c = dir->child_first; c && !rc; c = c->sib_next) {
		if (S_ISDIR(c->mode)) {
			rc = rejournal_kept(fs, c, n);
		} else if (c->kept) {
			char *path = NULL;
			rc = fs_inode_path(&path, c);
			if (!rc) {
				struct fs_journal_rec rec = { FS_J_DATA, 0, path, c->kept_name,
							      c->kept, c->kept_len };
				rc = fs_journal_append(fs->journal, &rec);
				(*n)++;
			}
			free(path);
		}
	}
	return rc;
}

/* Empties the journal and starts it with the commit its records build on. */
static int journal_restart(struct fs *fs)
{
	int rc = fs_journal_reset(fs->journal), n = 0;
	if (rc)
		return rc;
	/* What the dead overlays held is in the commit now. */
	for (size_t i = 0; i < fs->ndead; i++) {
		char *p = NULL;
		if (asprintf(&p, "%s/%s", fs->overlay_dir, fs->dead[i]) > 0 && unlink(p) != 0 &&
		    errno != ENOENT)
			log_warn("cannot remove %s: %s", p, strerror(errno));
		free(p);
		free(fs->dead[i]);
	}
	fs->ndead = 0;
	if (!fs->has_head)
		return 0;
	char head[GIT_OID_HEXSZ + 1];
	git_oid_tostr(head, sizeof(head), &fs->head);
	struct fs_journal_rec rec = { FS_J_BASE, 0, "", NULL, (const uint8_t *)head, strlen(head) };
	rc = fs_journal_append(fs->journal, &rec);
	if (!rc)
		rc = rejournal_kept(fs, fs->root, &n);
	if (!rc && n)
		rc = fs_journal_sync(fs->journal);
	return rc;
}

static int commit_locked(struct fs *fs, const char *message, int *made)
{
	struct entries es = { 0 };
	git_oid tree_oid, commit_oid, old_tree;
	int rc = collect(&es, fs->root);
	if (!rc)
		rc = tree_build(&tree_oid, fs->vol->repo, es.e, es.n);
	entries_free(&es);
	if (!rc)
		rc = sync_repo(fs);
	if (rc)
		return rc;
	git_tree *tree = NULL;
	if (git_tree_lookup(&tree, fs->vol->repo, &tree_oid) == 0) {
		remember_blobs(fs, fs->root, fs->vol->repo, tree);
		git_tree_free(tree);
	}
	git_oid head_commit;
	int have_head = tree_head(&old_tree, &head_commit, fs->vol->repo, VOLUME_REF) == 0;
	if (have_head && git_oid_equal(&old_tree, &tree_oid)) {
		rc = 0; /* nothing new: no empty commits */
	} else {
		rc = tree_commit(&commit_oid, fs->vol->repo, VOLUME_REF, &tree_oid,
				 have_head ? &head_commit : NULL, have_head ? 1 : 0,
				 fs->vol->device_id, message, 0);
		if (!rc)
			rc = sync_repo(fs);
		if (rc)
			return rc;
		fs->head = commit_oid;
		fs->has_head = 1;
		fs->commits_made++;
		if (made)
			*made = 1;
	}
	fs->changed = 0;
	return journal_restart(fs);
}

int fs_commit(struct fs *fs, const char *message, int *made)
{
	if (made)
		*made = 0;
	pthread_mutex_lock(&fs->lock);
	int rc = commit_locked(fs, message, made);
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		log_error("commit failed: %s", error_last());
	return rc;
}

/* Used at unmount, when no request runs any more: data written through a
 * shared mapping can arrive after the last release, so flush everything. */
static void flush_tree(struct fs *fs, struct fs_inode *dir)
{
	for (struct fs_inode *c = dir->child_first; c; c = c->sib_next) {
		if (S_ISDIR(c->mode))
			flush_tree(fs, c);
		else if (c->ov)
			fs_flush(fs, c, 0);
	}
}

int fs_flush_all(struct fs *fs)
{
	flush_tree(fs, fs->root);
	return 0;
}

/* ---- taking in a merged head ------------------------------------------- */

struct deferred {
	uint64_t ino;
	git_oid blob;
	uint32_t mode;
};

struct inval_list {
	struct fs_inval *e;
	size_t n, cap;
	struct deferred *d; /* busy files whose new content waits */
	size_t nd, capd;
};

static void deferred_add(struct inval_list *l, uint64_t ino, const git_oid *blob, uint32_t mode)
{
	if (l->nd == l->capd) {
		size_t cap = l->capd ? l->capd * 2 : 8;
		struct deferred *d = realloc(l->d, cap * sizeof(*d));
		if (!d)
			return;
		l->d = d;
		l->capd = cap;
	}
	l->d[l->nd++] = (struct deferred){ ino, *blob, mode };
}

static void inval_add(struct inval_list *l, uint64_t parent, const char *name, uint64_t ino);

/* New content for a file that was busy during the merge: content lock
 * first, then fs->lock, as everywhere else. */
static void apply_deferred(struct fs *fs, const struct deferred *d, struct inval_list *inv)
{
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = fs_table_find(fs->table, d->ino);
	if (n)
		n->open_count++; /* keeps it while fs->lock is released */
	pthread_mutex_unlock(&fs->lock);
	if (!n)
		return;
	git_blob *blob = NULL;
	pthread_rwlock_wrlock(&n->data_lock);
	pthread_mutex_lock(&fs->lock);
	if (!n->ov && git_blob_lookup(&blob, fs->vol->repo, &d->blob) == 0 &&
	    apply_blob(n, d->mode, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) == 0) {
		n->blob = d->blob;
		n->blob_valid = 1;
		if (n->parent)
			inval_add(inv, n->parent->ino, n->name, n->ino);
	}
	git_blob_free(blob);
	n->open_count--;
	fs_inode_maybe_free(fs->table, n);
	pthread_mutex_unlock(&fs->lock);
	pthread_rwlock_unlock(&n->data_lock);
}

static void inval_add(struct inval_list *l, uint64_t parent, const char *name, uint64_t ino)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct fs_inval *e = realloc(l->e, cap * sizeof(*e));
		if (!e)
			return; /* the kernel's caches time out (FS_ATTR_TIMEOUT) */
		l->e = e;
		l->cap = cap;
	}
	l->e[l->n++] = (struct fs_inval){ parent, name ? strdup(name) : NULL, ino };
}

/* One changed path of the merged tree, applied to the inodes; a file with
 * unflushed writes keeps them (its next flush and commit carry them on). */
static int apply_delta(struct fs *fs, const git_diff_delta *d, struct inval_list *inv)
{
	const git_diff_file *f = d->status == GIT_DELTA_DELETED ? &d->old_file : &d->new_file;
	char *path = NULL;
	int rc = tree_path_unescape(&path, f->path);
	if (rc)
		return rc;
	int meta = is_meta_path(f->path);
	if (meta) {
		char *slash = strrchr(path, '/');
		if (slash)
			*slash = '\0';
		else
			path[0] = '\0';
	}
	struct fs_inode *n = find_path(fs, path);
	if (n && n->ov) {
		free(path);
		return 0;
	}
	if (d->status == GIT_DELTA_DELETED) {
		if (n && n != fs->root && (!S_ISDIR(n->mode) || !n->child_first)) {
			inval_add(inv, n->parent->ino, n->name, 0);
			fs_inode_unlink(fs->table, n);
			fs_inode_maybe_free(fs->table, n);
		}
	} else {
		git_blob *blob = NULL;
		if (git_blob_lookup(&blob, fs->vol->repo, &f->id) < 0) {
			free(path);
			return tree_git_error(-1, "reading a merged file");
		}
		const void *data = git_blob_rawcontent(blob);
		size_t len = (size_t)git_blob_rawsize(blob);
		if (meta) {
			if (!n && (rc = mkdir_path(fs, path, 0755)) == 0)
				n = find_path(fs, path);
			if (n && (rc = apply_dir_meta(n, data, len)) == 0) {
				/* The next commit must write this metadata, not
				 * reuse the blob of the old one. */
				n->blob = f->id;
				n->blob_valid = 1;
			}
		} else if (n && S_ISREG(n->mode) && f->mode != GIT_FILEMODE_LINK &&
			   pthread_rwlock_trywrlock(&n->data_lock) != 0) {
			/* Someone is reading or writing it: its content lock
			 * cannot be waited for under fs->lock; do it after. */
			deferred_add(inv, n->ino, &f->id, f->mode);
		} else {
			int locked = n && S_ISREG(n->mode) && f->mode != GIT_FILEMODE_LINK;
			rc = put_path(fs, path, f->mode, data, len, &f->id);
			if (locked)
				pthread_rwlock_unlock(&n->data_lock);
			n = find_path(fs, path);
		}
		git_blob_free(blob);
		if (n && n->parent)
			inval_add(inv, n->parent->ino, n->name, n->ino);
		else if (n)
			inval_add(inv, 0, NULL, n->ino); /* the root: its attributes */
	}
	free(path);
	return rc;
}

static int apply_head(struct fs *fs, const git_oid *from, const git_oid *to, struct inval_list *inv)
{
	git_commit *a = NULL, *b = NULL;
	git_tree *ta = NULL, *tb = NULL;
	git_diff *diff = NULL;
	int rc = 0;
	if ((from && (git_commit_lookup(&a, fs->vol->repo, from) < 0 || git_commit_tree(&ta, a) < 0)) ||
	    git_commit_lookup(&b, fs->vol->repo, to) < 0 || git_commit_tree(&tb, b) < 0 ||
	    git_diff_tree_to_tree(&diff, fs->vol->repo, ta, tb, NULL) < 0)
		rc = tree_git_error(-1, "comparing the merged tree");
	/* Files first, then directory metadata, so emptied directories go. */
	for (int pass = 0; !rc && pass < 2; pass++) {
		for (size_t i = 0; !rc && i < git_diff_num_deltas(diff); i++) {
			const git_diff_delta *d = git_diff_get_delta(diff, i);
			const char *p = d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path;
			if (is_meta_path(p) == pass)
				rc = apply_delta(fs, d, inv);
		}
	}
	git_diff_free(diff);
	git_tree_free(ta);
	git_tree_free(tb);
	git_commit_free(a);
	git_commit_free(b);
	return rc;
}

int fs_commit_and_merge(void *wt,
			int (*merge)(git_oid *out, const git_oid *local, int has_local, void *p),
			void *p, git_oid *head_out, int *has_head)
{
	struct fs *fs = wt;
	struct inval_list inv = { 0 };
	git_oid merged;
	pthread_mutex_lock(&fs->lock);
	int rc = commit_locked(fs, "sync", NULL);
	if (!rc) {
		rc = merge(&merged, &fs->head, fs->has_head, p);
		if (rc == -ENOENT) { /* no commit anywhere yet */
			rc = 0;
			*has_head = 0;
		} else if (!rc && (!fs->has_head || !git_oid_equal(&merged, &fs->head))) {
			/* The objects durable before the tree and the ref name them. */
			rc = sync_repo(fs);
			if (!rc)
				rc = apply_head(fs, fs->has_head ? &fs->head : NULL, &merged, &inv);
			git_reference *ref = NULL;
			if (!rc && git_reference_create(&ref, fs->vol->repo, VOLUME_REF, &merged, 1,
							"peercling merge") < 0)
				rc = tree_git_error(-1, "moving the branch to the merge");
			git_reference_free(ref);
			if (!rc) {
				fs->head = merged;
				fs->has_head = 1;
				rc = journal_restart(fs);
			}
		}
		if (!rc && fs->has_head) {
			*head_out = fs->head;
			*has_head = 1;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	for (size_t i = 0; i < inv.nd; i++)
		apply_deferred(fs, &inv.d[i], &inv);
	free(inv.d);
	/* The kernel may call back into us while invalidating: never under
	 * the lock. */
	for (size_t i = 0; i < inv.n; i++) {
		if (fs->inval)
			fs->inval(fs->inval_payload, &inv.e[i]);
		free(inv.e[i].name);
	}
	free(inv.e);
	return rc;
}
