/* ops: one function per kernel request, each a thin translation onto fs.c.
 * What the volume cannot keep gets a fixed errno, documented in
 * peercling(1): hard links and device nodes EPERM, ownership other than the
 * mounting user EPERM, extended attributes outside user.* ENOTSUP. */
#include "config.h"
#include "fs/ops.h"
#include "core/error.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/volume.h"
#include "fs/fs.h"
#include "fs/journal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LOG_MODULE "ops"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static struct fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Caller holds fs->lock. */
static struct fs_inode *get(struct fs *fs, fuse_ino_t ino)
{
	return fs_table_find(fs->table, ino);
}

static void fill_stat(struct fs *fs, const struct fs_inode *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	if (S_ISDIR(n->mode))
		st->st_nlink = 2 + (nlink_t)n->nsubdirs; /* ".", its name, each child's ".." */
	else
		st->st_nlink = n->parent || n->ino == FUSE_ROOT_ID ? 1 : 0;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)(S_ISDIR(n->mode) ? 4096 : n->size);
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_mtim = n->mtime;
	st->st_atim = n->atime;
	st->st_ctim = n->ctime;
}

static void fill_entry(struct fs *fs, struct fs_inode *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->attr_timeout = FS_ATTR_TIMEOUT;
	e->entry_timeout = FS_ENTRY_TIMEOUT;
	fill_stat(fs, n, &e->attr);
	n->nlookup++;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	conn->max_write = 1 << 20;
	/* The kernel gathers small writes into large ones and keeps size and
	 * mtime itself; what reaches us is what the page cache writes back. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~FUSE_CAP_SPLICE_READ;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = FS(req);
	struct fuse_entry_param e;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *dir = get(fs, parent), *n = NULL;
	if (dir && S_ISDIR(dir->mode))
		n = fs_table_lookup(fs->table, dir, name);
	if (n)
		fill_entry(fs, n, &e);
	pthread_mutex_unlock(&fs->lock);
	if (!n) {
		/* A negative entry the kernel may cache for a while. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS_NEGATIVE_TIMEOUT;
		if (!dir)
			fuse_reply_err(req, ENOENT);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	fuse_reply_entry(req, &e);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_inode *n = get(fs, ino);
	if (!n)
		return;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	fs_inode_maybe_free(fs->table, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = FS(req);
	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = FS(req);
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct stat st;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	if (n)
		fill_stat(fs, n, &st);
	pthread_mutex_unlock(&fs->lock);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT);
}

static void set_time(struct timespec *t, const struct timespec *src, int now)
{
	if (now)
		clock_gettime(CLOCK_REALTIME, t);
	else
		*t = *src;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct stat st;
	int rc = 0;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	if (!n)
		rc = ENOENT;
	else if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != fs->uid) ||
		 ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != fs->gid))
		rc = EPERM; /* the volume keeps no owners */
	else if ((to_set & FUSE_SET_ATTR_SIZE) && !S_ISREG(n->mode))
		rc = S_ISDIR(n->mode) ? EISDIR : EINVAL;
	pthread_mutex_unlock(&fs->lock);
	if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
		rc = -fs_truncate(fs, n, (uint64_t)attr->st_size);
		if (!rc) {
			pthread_mutex_lock(&fs->lock);
			clock_gettime(CLOCK_REALTIME, &n->mtime);
			n->ctime = n->mtime;
			pthread_mutex_unlock(&fs->lock);
			/* Outside an open file (truncate(2)), make it count now. */
			if (!fi)
				rc = -fs_flush(fs, n, 0);
		}
	}
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	int meta = 0;
	if (to_set & FUSE_SET_ATTR_MODE) {
		n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
		meta = 1;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		set_time(&n->mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
		meta = 1;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		set_time(&n->atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
		meta = 1;
	}
	if (meta || (to_set & FUSE_SET_ATTR_CTIME))
		clock_gettime(CLOCK_REALTIME, &n->ctime);
	if (meta && !S_ISLNK(n->mode))
		rc = -fs_journal_put(fs, n);
	fill_stat(fs, n, &st);
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = FS(req);
	char *t = NULL;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	if (n && S_ISLNK(n->mode))
		t = strdup(n->target);
	pthread_mutex_unlock(&fs->lock);
	if (!t)
		fuse_reply_err(req, n ? EINVAL : ENOENT);
	else
		fuse_reply_readlink(req, t);
	free(t);
}

/* Creates name in parent and replies with its entry (fi: also opens it). */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      const char *target, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fuse_entry_param e;
	struct fs_inode *n = NULL;
	int rc;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *dir = get(fs, parent);
	if (!dir)
		rc = -ENOENT;
	else if (!S_ISDIR(dir->mode))
		rc = -ENOTDIR;
	else
		rc = fs_create_node(fs, dir, name, mode, target, &n);
	if (n) {
		fill_entry(fs, n, &e);
		if (fi)
			n->open_count++;
	}
	pthread_mutex_unlock(&fs->lock);
	if (!n) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fi) {
		fi->fh = n->ino;
		fi->keep_cache = 1;
		if (fuse_reply_create(req, &e, fi) != 0) {
			pthread_mutex_lock(&fs->lock);
			n->open_count--;
			pthread_mutex_unlock(&fs->lock);
		}
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM); /* no device nodes, FIFOs or sockets */
		return;
	}
	make_node(req, parent, name, S_IFREG | (mode & 07777), NULL, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | (mode & 07777), NULL, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, S_IFLNK | 0777, link, NULL);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	make_node(req, parent, name, S_IFREG | (mode & 07777), NULL, fi);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int dir_wanted)
{
	struct fs *fs = FS(req);
	int rc = 0;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *dir = get(fs, parent), *n = NULL;
	if (dir)
		n = fs_table_lookup(fs->table, dir, name);
	if (!n)
		rc = ENOENT;
	else if (dir_wanted && !S_ISDIR(n->mode))
		rc = ENOTDIR;
	else if (!dir_wanted && S_ISDIR(n->mode))
		rc = EISDIR;
	else if (dir_wanted && n->child_first)
		rc = ENOTEMPTY;
	if (!rc) {
		rc = -fs_journal_op(fs, FS_J_REMOVE, 0, n, NULL);
		fs_inode_unlink(fs->table, n);
		fs_dir_touch(dir);
		clock_gettime(CLOCK_REALTIME, &n->ctime);
		fs_inode_maybe_free(fs->table, n);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 1);
}

static int is_ancestor(const struct fs_inode *a, const struct fs_inode *n)
{
	for (; n; n = n->parent)
		if (n == a)
			return 1;
	return 0;
}

static char *child_path(struct fs_inode *dir, const char *name)
{
	char *dp = NULL, *p = NULL;
	if (fs_inode_path(&dp, dir))
		return NULL;
	if (asprintf(&p, "%s%s%s", dp, *dp ? "/" : "", name) < 0)
		p = NULL;
	free(dp);
	return p;
}

static int do_rename(struct fs *fs, struct fs_inode *odir, const char *oname,
		     struct fs_inode *ndir, const char *nname, unsigned int flags)
{
	struct fs_inode *a = fs_table_lookup(fs->table, odir, oname);
	struct fs_inode *b = fs_table_lookup(fs->table, ndir, nname);
	if (!a)
		return -ENOENT;
	if (strlen(nname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (a == b)
		return 0;
	if ((flags & RENAME_NOREPLACE) && b)
		return -EEXIST;
	if ((flags & RENAME_EXCHANGE) && !b)
		return -ENOENT;
	if (S_ISDIR(a->mode) && is_ancestor(a, ndir))
		return -EINVAL;
	if ((flags & RENAME_EXCHANGE) && S_ISDIR(b->mode) && is_ancestor(b, odir))
		return -EINVAL;
	if (b && !(flags & RENAME_EXCHANGE)) {
		if (S_ISDIR(a->mode) && !S_ISDIR(b->mode))
			return -ENOTDIR;
		if (!S_ISDIR(a->mode) && S_ISDIR(b->mode))
			return -EISDIR;
		if (S_ISDIR(b->mode) && b->child_first)
			return -ENOTEMPTY;
	}
	char *npath = child_path(ndir, nname);
	char *oname_copy = strdup(oname);
	int rc = (npath && oname_copy) ? 0 : -ENOMEM;
	if (!rc)
		rc = fs_journal_op(fs, (flags & RENAME_EXCHANGE) ? FS_J_EXCHANGE : FS_J_RENAME, 0, a,
				   npath);
	if (!rc) {
		fs_inode_unlink(fs->table, a);
		if (b)
			fs_inode_unlink(fs->table, b);
		rc = fs_inode_link(fs->table, ndir, a, nname);
		if (b && (flags & RENAME_EXCHANGE))
			rc = rc ? rc : fs_inode_link(fs->table, odir, b, oname_copy);
		else if (b)
			fs_inode_maybe_free(fs->table, b);
		fs_dir_touch(odir);
		fs_dir_touch(ndir);
		a->ctime = odir->mtime;
	}
	free(npath);
	free(oname_copy);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = FS(req);
	int rc;
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *od = get(fs, parent), *nd = get(fs, newparent);
	if (!od || !nd)
		rc = -ENOENT;
	else if (!S_ISDIR(od->mode) || !S_ISDIR(nd->mode))
		rc = -ENOTDIR;
	else
		rc = do_rename(fs, od, name, nd, newname, flags);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EPERM); /* git trees have no hard links */
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	if (n && S_ISREG(n->mode))
		n->open_count++;
	pthread_mutex_unlock(&fs->lock);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!S_ISREG(n->mode)) {
		fuse_reply_err(req, S_ISDIR(n->mode) ? EISDIR : EINVAL);
		return;
	}
	fi->fh = ino;
	/* Content changes only through this daemon, which keeps the kernel's
	 * page cache current, so cached pages stay valid across opens. */
	fi->keep_cache = 1;
	if ((fi->flags & O_TRUNC) && n->size > 0) {
		int rc = fs_truncate(fs, n, 0);
		if (rc) {
			pthread_mutex_lock(&fs->lock);
			n->open_count--;
			pthread_mutex_unlock(&fs->lock);
			fuse_reply_err(req, -rc);
			return;
		}
	}
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_lock(&fs->lock);
		n->open_count--;
		pthread_mutex_unlock(&fs->lock);
	}
}

/* The inode of an open file: open_count keeps it alive without the lock. */
static struct fs_inode *open_inode(struct fs *fs, fuse_ino_t ino)
{
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fs_inode *n = open_inode(fs, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	long r = fs_read(fs, n, buf, size, (uint64_t)off);
	if (r < 0)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

struct splice_write {
	struct fuse_bufvec *in;
	size_t len;
};

/* Straight from the kernel's buffer (a pipe, when splicing) into the
 * overlay file: no copy through our memory. */
static long put_bufvec(void *ctx, int fd, uint64_t off)
{
	struct splice_write *sw = ctx;
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(sw->len);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = (off_t)off;
	ssize_t r = fuse_buf_copy(&out, sw->in, 0);
	return (long)r;
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fs_inode *n = open_inode(fs, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct splice_write sw = { in, fuse_buf_size(in) };
	long r = fs_write_with(fs, n, sw.len, (uint64_t)off, put_bufvec, &sw);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* What close, fsync and fsyncdir tell the application: a full disk or
 * quota as such (an editor then says "No space left on device" and keeps
 * its buffer), anything else as EIO. */
static int flush_errno(int rc)
{
	if (!rc)
		return 0;
	return rc == -ENOSPC || rc == -EDQUOT ? -rc : EIO;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fs_inode *n = open_inode(fs, ino);
	int rc = n ? fs_flush(fs, n, 0) : -ENOENT;
	fuse_reply_err(req, flush_errno(rc));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fs_inode *n = open_inode(fs, ino);
	int rc = n ? fs_flush(fs, n, 1) : -ENOENT;
	fuse_reply_err(req, flush_errno(rc));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct fs_inode *n = open_inode(fs, ino);
	if (n)
		fs_flush(fs, n, 0);
	pthread_mutex_lock(&fs->lock);
	if (n) {
		n->open_count--;
		fs_inode_maybe_free(fs->table, n);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, 0);
}

/* ---- directories -------------------------------------------------------- */

struct dir_entry {
	char *name;
	uint64_t ino;
	mode_t mode;
};

struct dir_handle {
	size_t n;
	struct dir_entry *e;
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct dir_handle *d = calloc(1, sizeof(*d));
	int rc = 0;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *n = get(fs, ino);
	if (!n)
		rc = ENOENT;
	else if (!S_ISDIR(n->mode))
		rc = ENOTDIR;
	else if (!d || !(d->e = calloc(n->nchildren + 2, sizeof(*d->e))))
		rc = ENOMEM;
	if (!rc) {
		/* A snapshot, so that offsets stay stable while the directory
		 * changes under a reader. */
		d->e[d->n++] = (struct dir_entry){ strdup("."), n->ino, S_IFDIR };
		d->e[d->n++] = (struct dir_entry){ strdup(".."), n->parent ? n->parent->ino : n->ino,
						   S_IFDIR };
		for (struct fs_inode *c = n->child_first; c; c = c->sib_next)
			d->e[d->n++] = (struct dir_entry){ strdup(c->name), c->ino, c->mode };
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		if (d)
			free(d->e);
		free(d);
		fuse_reply_err(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct fs *fs = FS(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct dir_entry *de = &d->e[i];
		size_t need;
		if (plus) {
			struct fuse_entry_param e;
			struct fs_inode *c = NULL;
			int dots = strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0;
			if (!dots)
				c = get(fs, de->ino);
			if (!dots && (!c || !c->parent))
				continue; /* removed since opendir */
			memset(&e, 0, sizeof(e));
			if (c) {
				fill_entry(fs, c, &e);
			} else {
				e.attr.st_ino = de->ino;
				e.attr.st_mode = de->mode;
			}
			need = fuse_add_direntry_plus(req, buf + used, size - used, de->name, &e,
						      (off_t)(i + 1));
			if (need > size - used) {
				if (c)
					c->nlookup--;
				break;
			}
		} else {
			struct stat st = { .st_ino = de->ino, .st_mode = de->mode };
			need = fuse_add_direntry(req, buf + used, size - used, de->name, &st,
						 (off_t)(i + 1));
			if (need > size - used)
				break;
		}
		used += need;
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	pthread_mutex_lock(&fs->lock);
	int rc = fs_journal_sync(fs->journal);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, flush_errno(rc));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = FS(req);
	struct statvfs sv;
	if (statvfs(fs->vol->dir, &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = NAME_MAX;
	pthread_mutex_lock(&fs->lock);
	sv.f_files = fs_table_count(fs->table) + sv.f_ffree;
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: user.* on regular files, kept in the manifest -- */

static int xattr_target(struct fs *fs, fuse_ino_t ino, const char *name, struct fs_inode **out)
{
	struct fs_inode *n = get(fs, ino);
	if (!n)
		return ENOENT;
	if (name && strncmp(name, "user.", 5) != 0)
		return ENOTSUP;
	if (!S_ISREG(n->mode) && !S_ISDIR(n->mode))
		return name ? ENOTSUP : 0;
	if (!n->m && !(n->m = manifest_new()))
		return ENOMEM;
	*out = n;
	return 0;
}

/* -o noxattr: ENOSYS makes the kernel stop sending xattr calls at all. */
static int xattrs_off(fuse_req_t req)
{
	if (!FS(req)->noxattr)
		return 0;
	fuse_reply_err(req, ENOSYS);
	return 1;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	if (xattrs_off(req))
		return;
	struct fs *fs = FS(req);
	struct fs_inode *n = NULL;
	pthread_mutex_lock(&fs->lock);
	int rc = xattr_target(fs, ino, name, &n);
	if (!rc) {
		const struct manifest_xattr *x = manifest_xattr_get(n->m, name);
		if ((flags & XATTR_CREATE) && x)
			rc = EEXIST;
		else if ((flags & XATTR_REPLACE) && !x)
			rc = ENODATA;
		else if (size > MANIFEST_XATTR_VALUE_MAX || strlen(name) > MANIFEST_XATTR_NAME_MAX)
			rc = E2BIG;
		else
			rc = -manifest_xattr_set(n->m, name, value, size);
		if (!rc) {
			clock_gettime(CLOCK_REALTIME, &n->ctime);
			rc = -fs_journal_put(fs, n);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (xattrs_off(req))
		return;
	struct fs *fs = FS(req);
	struct fs_inode *n = NULL;
	char *copy = NULL;
	size_t len = 0;
	pthread_mutex_lock(&fs->lock);
	int rc = xattr_target(fs, ino, name, &n);
	/* A user.* name on a symlink simply has no value; a namespace we do not
	 * keep (security.*, system.*) is unsupported, and saying so lets ls -l
	 * stop asking for every file of the mount after the first. */
	if (rc == ENOTSUP && strncmp(name, "user.", 5) == 0)
		rc = ENODATA;
	if (!rc) {
		const struct manifest_xattr *x = manifest_xattr_get(n->m, name);
		if (!x)
			rc = ENODATA;
		else if (size && (copy = malloc(x->len ? x->len : 1)))
			memcpy(copy, x->value, x->len);
		if (x)
			len = x->len;
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, copy, len);
	free(copy);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (xattrs_off(req))
		return;
	struct fs *fs = FS(req);
	struct fs_inode *n = NULL;
	char *buf = NULL;
	size_t len = 0;
	pthread_mutex_lock(&fs->lock);
	int rc = xattr_target(fs, ino, NULL, &n);
	if (!rc && n) {
		for (size_t i = 0; i < n->m->nxattrs; i++)
			len += strlen(n->m->xattrs[i].name) + 1;
		if (size && len <= size && (buf = malloc(len ? len : 1))) {
			size_t pos = 0;
			for (size_t i = 0; i < n->m->nxattrs; i++) {
				size_t l = strlen(n->m->xattrs[i].name) + 1;
				memcpy(buf + pos, n->m->xattrs[i].name, l);
				pos += l;
			}
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		fuse_reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (xattrs_off(req))
		return;
	struct fs *fs = FS(req);
	struct fs_inode *n = NULL;
	pthread_mutex_lock(&fs->lock);
	int rc = xattr_target(fs, ino, name, &n);
	if (rc == ENOTSUP)
		rc = ENODATA;
	if (!rc) {
		rc = manifest_xattr_remove(n->m, name) ? ENODATA : 0;
		if (!rc) {
			clock_gettime(CLOCK_REALTIME, &n->ctime);
			rc = -fs_journal_put(fs, n);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, rc);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	if (mode != 0) {
		fuse_reply_err(req, EOPNOTSUPP); /* punching holes is not cheap here */
		return;
	}
	struct fs_inode *n = open_inode(fs, ino);
	int rc = 0;
	if (!n)
		rc = -ENOENT;
	else if ((uint64_t)(offset + length) > n->size)
		rc = fs_truncate(fs, n, (uint64_t)(offset + length));
	fuse_reply_err(req, -rc);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
};
