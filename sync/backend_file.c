/* backend_file: a cloud that is a local directory (file:///DIR), for a USB
 * disk, a network mount, or tests.  This file owns the on-disk layout of
 * such a directory:
 *
 *   DIR/KEY     one file per key; the '/' of keys are subdirectories,
 *               made on first use
 *   DIR/.tmp/   temp files of puts in flight, renamed into place
 *
 * A put writes a temp file, fsyncs it, renames it over the key and fsyncs
 * the directory, so a reader (of this or another machine sharing DIR) sees
 * the whole old head or the whole new one, never a mix, and a put that
 * returned survives a crash.  The temp directory starts with a dot, as no
 * key component may, so temp files can never collide with keys and listings
 * skip them.
 *
 * DIR itself is never created here: when it is missing (a disk that is not
 * plugged in) every call answers -ENXIO, which sync/ must not mistake for
 * "no such key". */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "sync/backend_impl.h"

#define LOG_MODULE "backend-file"

#define TMP_DIR ".tmp"
#define STALE_TMP_SECONDS (24 * 3600) /* a put never takes a day */

struct file_backend {
	struct backend b;
	char *dir; /* absolute, no trailing '/' */
};

static struct file_backend *fb(struct backend *b)
{
	return (struct file_backend *)b;
}

/* ---- paths and errors -------------------------------------------------- */

/* Keys are relative '/'-separated names whose components are non-empty and
 * do not start with a dot: nothing can escape DIR or hit the temp dir. */
static int key_valid(const char *key)
{
	if (!key || !*key)
		return 0;
	for (const char *p = key; *p;) {
		if (*p == '/' || *p == '.')
			return 0;
		const char *slash = strchr(p, '/');
		if (!slash)
			return 1;
		p = slash + 1;
		if (!*p)
			return 0; /* trailing '/' */
	}
	return 1;
}

static int bad_key(const char *key)
{
	return error_set(-EINVAL, "invalid cloud key '%s'", key ? key : "(null)");
}

static char *join(const char *dir, const char *key)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, key) < 0)
		return NULL;
	return p;
}

static int dir_missing(struct file_backend *f)
{
	struct stat st;
	return stat(f->dir, &st) < 0 || !S_ISDIR(st.st_mode);
}

static int no_dir(struct file_backend *f)
{
	return error_set(-ENXIO, "cloud directory %s does not exist (is its disk mounted?)",
			 f->dir);
}

/* Maps a failed system call on key to a backend errno and message. */
static int sys_error(struct file_backend *f, int err, const char *what, const char *key)
{
	if (err == ENOENT || err == ENOTDIR)
		return dir_missing(f) ? no_dir(f) : error_set(-ENOENT, "%s: no such key", key);
	if (err == EACCES || err == EPERM)
		return error_set(-EACCES, "cloud directory %s: permission denied to %s %s", f->dir,
				 what, key);
	if (err == ENOMEM)
		return error_set(-ENOMEM, "out of memory");
	return error_set(-EIO, "cloud directory %s: cannot %s %s: %s", f->dir, what, key,
			 strerror(err));
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* ---- put --------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The six characters mkostemp replaces with a unique name. */
#define MKSTEMP_SUFFIX "XXXXXX"

/* Creates the temp file holding data, synced; *tmp malloc'd. */
static int write_temp(struct file_backend *f, const void *data, size_t len, char **tmp)
{
	char *path = NULL;
	if (asprintf(&path, "%s/" TMP_DIR "/put-" MKSTEMP_SUFFIX, f->dir) < 0)
		return -ENOMEM;
	size_t n = strlen(path);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		char *td = join(f->dir, TMP_DIR);
		if (td && (mkdir(td, 0755) == 0 || errno == EEXIST)) {
			/* A failed mkostemp leaves its last try in the
			 * template: put the Xs back. */
			memcpy(path + n - 6, MKSTEMP_SUFFIX, 6);
			fd = mkostemp(path, O_CLOEXEC);
		}
		free(td);
	}
	if (fd < 0) {
		int rc = -errno;
		free(path);
		return rc;
	}
	int rc = write_all(fd, data, len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	/* 0644 rather than mkstemp's 0600: a shared directory is read by
	 * other users' peercling too; the content is ciphertext. */
	if (!rc && fchmod(fd, 0644) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc) {
		unlink(path);
		free(path);
		return rc;
	}
	*tmp = path;
	return 0;
}

/* mkdir -p of the directories of key below DIR, each new entry synced into
 * its parent so that a renamed file does not vanish with its directory at a
 * crash. */
static int make_parents(struct file_backend *f, const char *key)
{
	char *path = join(f->dir, key);
	if (!path)
		return -ENOMEM;
	int rc = 0;
	size_t base = strlen(f->dir);
	for (char *p = path + base + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(path, 0755) == 0) {
			char *parent = strrchr(path, '/');
			*parent = '\0';
			rc = fsync_path(path);
			*parent = '/';
		} else if (errno != EEXIST) {
			rc = -errno;
		}
		*p = '/';
		if (rc)
			break;
	}
	free(path);
	return rc;
}

static int rename_into_place(struct file_backend *f, const char *tmp, const char *key)
{
	char *dst = join(f->dir, key);
	if (!dst)
		return -ENOMEM;
	int rc = rename(tmp, dst) < 0 ? -errno : 0;
	if (rc == -ENOENT) {
		rc = make_parents(f, key);
		if (!rc)
			rc = rename(tmp, dst) < 0 ? -errno : 0;
	}
	if (!rc) {
		*strrchr(dst, '/') = '\0';
		rc = fsync_path(dst);
	}
	free(dst);
	return rc;
}

static int file_put(struct backend *b, const char *key, const void *data, size_t len)
{
	struct file_backend *f = fb(b);
	if (!key_valid(key))
		return bad_key(key);
	if (dir_missing(f))
		return no_dir(f);
	char *tmp = NULL;
	int rc = write_temp(f, data, len, &tmp);
	if (rc)
		return sys_error(f, -rc, "write", key);
	rc = rename_into_place(f, tmp, key);
	if (rc) {
		unlink(tmp);
		if (rc == -ENOTDIR || rc == -EISDIR)
			rc = error_set(-EIO, "cloud directory %s: cannot store %s: %s in the way",
				       f->dir, key, rc == -EISDIR ? "a directory" : "a file");
		else
			rc = sys_error(f, -rc, "store", key);
	}
	free(tmp);
	return rc;
}

/* ---- get / exists / del ------------------------------------------------ */

static int read_all(int fd, uint8_t **out, size_t *out_len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT; /* a directory of keys is not a key */
	size_t cap = (size_t)st.st_size, len = 0;
	uint8_t *p = malloc(cap + 1);
	if (!p)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			/* The file grew under us: rename makes that
			 * impossible for our own puts, but be safe. */
			uint8_t *q = realloc(p, cap * 2 + 4096 + 1);
			if (!q) {
				free(p);
				return -ENOMEM;
			}
			p = q;
			cap = cap * 2 + 4096;
		}
		ssize_t n = read(fd, p + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			free(p);
			return rc;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	p[len] = '\0';
	*out = p;
	*out_len = len;
	return 0;
}

/* *fd open for reading KEY, or -errno with a message. */
static int open_key(struct file_backend *f, const char *key, int *fd)
{
	if (!key_valid(key))
		return bad_key(key);
	char *path = join(f->dir, key);
	if (!path)
		return -ENOMEM;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	return *fd < 0 ? sys_error(f, errno, "read", key) : 0;
}

static int file_get(struct backend *b, const char *key, uint8_t **out, size_t *out_len)
{
	struct file_backend *f = fb(b);
	int fd;
	*out = NULL;
	*out_len = 0;
	int rc = open_key(f, key, &fd);
	if (rc)
		return rc;
	rc = read_all(fd, out, out_len);
	close(fd);
	return rc ? sys_error(f, -rc, "read", key) : 0;
}

static int file_get_range(struct backend *b, const char *key, uint64_t off, size_t len,
			  uint8_t **out)
{
	struct file_backend *f = fb(b);
	int fd;
	*out = NULL;
	int rc = open_key(f, key, &fd);
	if (rc)
		return rc;
	uint8_t *p = malloc(len ? len : 1);
	size_t got = 0;
	rc = p ? 0 : -ENOMEM;
	while (!rc && got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = sys_error(f, errno, "read", key);
		else if (n == 0)
			rc = error_set(-EIO, "cloud directory %s: %s is shorter than expected "
				       "(%zu bytes at %llu asked, %zu there)",
				       f->dir, key, len, (unsigned long long)off, got);
		else
			got += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static int file_exists(struct backend *b, const char *key)
{
	struct file_backend *f = fb(b);
	if (!key_valid(key))
		return bad_key(key);
	char *path = join(f->dir, key);
	if (!path)
		return -ENOMEM;
	struct stat st;
	int rc = stat(path, &st);
	int err = errno;
	free(path);
	if (rc == 0)
		return S_ISREG(st.st_mode) ? 1 : 0;
	rc = sys_error(f, err, "look up", key);
	return rc == -ENOENT ? 0 : rc;
}

/* Deleting a missing key succeeds, as on S3: a retried delete must not
 * fail because the first attempt worked. */
static int file_del(struct backend *b, const char *key)
{
	struct file_backend *f = fb(b);
	if (!key_valid(key))
		return bad_key(key);
	char *path = join(f->dir, key);
	if (!path)
		return -ENOMEM;
	int rc = unlink(path);
	int err = errno;
	free(path);
	if (rc == 0)
		return 0;
	rc = sys_error(f, err, "delete", key);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- list -------------------------------------------------------------- */

struct walk {
	struct file_backend *f;
	const char *prefix;
	size_t prefix_len;
	int (*cb)(const char *key, void *payload);
	void *payload;
};

/* Whether keys under directory rel ("" or "a/b/") may start with prefix. */
static int may_match(const struct walk *w, const char *rel, size_t rel_len)
{
	size_t n = rel_len < w->prefix_len ? rel_len : w->prefix_len;
	return !strncmp(rel, w->prefix, n);
}

static int walk_dir(struct walk *w, char *rel, size_t rel_len, size_t cap);

static int walk_entry(struct walk *w, int dfd, const struct dirent *de, char *rel, size_t rel_len,
		      size_t cap)
{
	size_t nlen = strlen(de->d_name);
	if (de->d_name[0] == '.' || rel_len + nlen + 2 > cap)
		return 0; /* dot entries, temp dir, absurdly deep names */
	memcpy(rel + rel_len, de->d_name, nlen + 1);
	unsigned char type = de->d_type;
	if (type == DT_UNKNOWN || type == DT_LNK) {
		struct stat st;
		if (fstatat(dfd, de->d_name, &st, 0) < 0)
			return 0; /* vanished under us: a concurrent del */
		type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
	}
	if (type == DT_DIR) {
		rel[rel_len + nlen] = '/';
		rel[rel_len + nlen + 1] = '\0';
		if (!may_match(w, rel, rel_len + nlen + 1))
			return 0;
		return walk_dir(w, rel, rel_len + nlen + 1, cap);
	}
	if (type == DT_REG && !strncmp(rel, w->prefix, w->prefix_len))
		return w->cb(rel, w->payload);
	return 0;
}

/* Walks DIR/rel, rel being "" or ending in '/'. */
static int walk_dir(struct walk *w, char *rel, size_t rel_len, size_t cap)
{
	char *path = join(w->f->dir, rel);
	if (!path)
		return -ENOMEM;
	DIR *d = opendir(path);
	int err = errno;
	free(path);
	if (!d)
		return err == ENOENT || err == ENOTDIR ? 0 : sys_error(w->f, err, "list", rel);
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d)))
		rc = walk_entry(w, dirfd(d), de, rel, rel_len, cap);
	closedir(d);
	rel[rel_len] = '\0';
	return rc;
}

static int file_list(struct backend *b, const char *prefix,
		     int (*cb)(const char *key, void *payload), void *payload)
{
	struct file_backend *f = fb(b);
	if (!prefix)
		prefix = "";
	if (dir_missing(f))
		return no_dir(f);
	struct walk w = {f, prefix, strlen(prefix), cb, payload};
	size_t cap = 4096 + w.prefix_len;
	char *rel = malloc(cap);
	if (!rel)
		return -ENOMEM;
	/* Start at the deepest directory the prefix names: listing
	 * "blocks/ab" reads blocks/ only, not the whole store. */
	const char *slash = strrchr(prefix, '/');
	size_t start = slash ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(rel, prefix, start);
	rel[start] = '\0';
	int rc = walk_dir(&w, rel, start, cap);
	free(rel);
	return rc;
}

/* ---- check, free, open ------------------------------------------------- */

/* Temp files left by a crashed put are removed once they are old enough
 * that no put of any machine sharing DIR can still be writing them. */
static void sweep_temp(struct file_backend *f)
{
	char *td = join(f->dir, TMP_DIR);
	DIR *d = td ? opendir(td) : NULL;
	if (!d) {
		free(td);
		return;
	}
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		if (S_ISREG(st.st_mode) && now - st.st_mtime > STALE_TMP_SECONDS)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	free(td);
}

int backend_file_check(struct backend *b)
{
	struct file_backend *f = fb(b);
	struct stat st;
	if (stat(f->dir, &st) < 0)
		return errno == EACCES
			   ? error_set(-EACCES, "cloud directory %s: permission denied", f->dir)
			   : no_dir(f);
	if (!S_ISDIR(st.st_mode))
		return error_set(-ENXIO, "cloud directory %s is not a directory", f->dir);
	/* A real write says more than access(): it also catches a read-only
	 * mount, a full disk, and root squashing on NFS. */
	char *tmp = NULL;
	int rc = write_temp(f, "", 0, &tmp);
	if (rc == -EACCES || rc == -EPERM || rc == -EROFS)
		return error_set(-EACCES, "cloud directory %s is not writable: %s", f->dir,
				 strerror(-rc));
	if (rc)
		return error_set(-EIO, "cloud directory %s: cannot write: %s", f->dir,
				 strerror(-rc));
	unlink(tmp);
	free(tmp);
	sweep_temp(f);
	return 0;
}

static void file_free(struct backend *b)
{
	struct file_backend *f = fb(b);
	free(f->dir);
	free(f->b.url);
	free(f);
}

static const struct backend_ops file_ops = {
    .put = file_put,
    .get = file_get,
    .get_range = file_get_range,
    .exists = file_exists,
    .list = file_list,
    .del = file_del,
    .free = file_free,
};

/* "file:///DIR" or "file://localhost/DIR" → "/DIR" without trailing '/'.
 * The path is taken literally (no %-decoding): it is what the user typed. */
static int parse_url(const char *url, char **dir)
{
	const char *p = url + strlen("file://");
	if (!strncasecmp(p, "localhost/", 10))
		p += 9;
	if (*p != '/')
		return error_set(-EINVAL,
				 "cloud URL '%s' is not a local directory: use file:///DIR "
				 "(three slashes, absolute path)",
				 url);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	*dir = strndup(p, n);
	return *dir ? 0 : -ENOMEM;
}

int backend_file_open(struct backend **out, const char *url, const struct backend_config *cfg)
{
	*out = NULL;
	struct file_backend *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int rc = parse_url(url, &f->dir);
	if (!rc && !(f->b.url = strdup(url)))
		rc = -ENOMEM;
	if (rc) {
		free(f->dir);
		free(f);
		return rc;
	}
	f->b.ops = &file_ops;
	*out = &f->b;
	return 0;
}
