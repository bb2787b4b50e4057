/* overlay: dirty ranges kept merged and sorted, so a read finds its ranges
 * by binary search and a flush walks them in order. */
#include "config.h"
#include "fs/overlay.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

int fs_overlay_new(struct fs_overlay **out, const char *dir, uint64_t base_size)
{
	struct fs_overlay *ov = calloc(1, sizeof(*ov));
	if (!ov)
		return -ENOMEM;
	ov->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (ov->fd < 0) {
		int e = errno;
		free(ov);
		return error_set(-e, "cannot create a write overlay in %s: %s", dir, strerror(e));
	}
	static uint64_t serials;
	ov->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
	ov->base_limit = base_size;
	if (ftruncate(ov->fd, (off_t)base_size) != 0) {
		int e = errno;
		fs_overlay_free(ov);
		return error_set(-e, "cannot size the write overlay: %s", strerror(e));
	}
	*out = ov;
	return 0;
}

void fs_overlay_free(struct fs_overlay *ov)
{
	if (!ov)
		return;
	if (ov->fd >= 0)
		close(ov->fd);
	free(ov->r);
	free(ov->early);
	free(ov->name);
	free(ov);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int fs_overlay_keep(struct fs_overlay *ov, const char *dir)
{
	char proc[64], name[64], *path = NULL;
	int rc = 0;
	if (!ov->name) {
		/* A name no other overlay has, in this mount or a later one. */
		uint8_t rnd[8];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return error_set(-EIO, "no random bytes for an overlay name");
		snprintf(name, sizeof(name), "kept-%llu-%02x%02x%02x%02x%02x%02x%02x%02x",
			 (unsigned long long)ov->serial, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
			 rnd[5], rnd[6], rnd[7]);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", ov->fd);
		if (asprintf(&path, "%s/%s", dir, name) < 0)
			return -ENOMEM;
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0)
			rc = error_set(-errno, "cannot keep written data in %s: %s", path,
				       strerror(errno));
		free(path);
		if (rc)
			return rc;
		if (!(ov->name = strdup(name)))
			return -ENOMEM;
	}
	if (fdatasync(ov->fd) != 0)
		return error_set(-errno, "cannot write data to disk in %s: %s", dir, strerror(errno));
	/* The name must last too; syncing the directory again costs little. */
	rc = fsync_dir(dir);
	return rc ? error_set(rc, "cannot sync %s: %s", dir, strerror(-rc)) : 0;
}

static void early_drop(struct fs_overlay *ov)
{
	ov->nearly = 0;
	ov->early_end = 0;
	ov->early_guard = 0;
	ov->early_epoch++;
}

int fs_overlay_add_early(struct fs_overlay *ov, const struct fs_early_block *b, size_t n)
{
	if (ov->nearly + n > ov->early_cap) {
		size_t cap = ov->early_cap ? ov->early_cap * 2 : 256;
		while (cap < ov->nearly + n)
			cap *= 2;
		struct fs_early_block *e = realloc(ov->early, cap * sizeof(*e));
		if (!e)
			return -ENOMEM; /* the flush cuts them again */
		ov->early = e;
		ov->early_cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		ov->early[ov->nearly++] = b[i];
		ov->early_end += b[i].len;
	}
	ov->early_guard = ov->early_end;
	return 0;
}

int fs_overlay_pread(int fd, void *out, size_t len, uint64_t off)
{
	uint8_t *buf = out;
	while (len > 0) {
		ssize_t r = pread(fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) { /* beyond the temp file's end: zeros */
			memset(buf, 0, len);
			return 0;
		}
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Index of the first range with hi > off (ranges are sorted and disjoint). */
static size_t first_after(const struct fs_overlay *ov, uint64_t off)
{
	size_t lo = 0, hi = ov->nranges;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ov->r[mid].hi <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void fs_overlay_mark(struct fs_overlay *ov, uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return;
	if (lo < ov->early_guard)
		early_drop(ov);
	/* Ranges touching [lo, hi) (including adjacent ones) merge into it. */
	size_t i = first_after(ov, lo ? lo - 1 : 0);
	size_t j = i;
	while (j < ov->nranges && ov->r[j].lo <= hi) {
		if (ov->r[j].lo < lo)
			lo = ov->r[j].lo;
		if (ov->r[j].hi > hi)
			hi = ov->r[j].hi;
		j++;
	}
	if (j == i) {
		if (ov->nranges == ov->cap) {
			size_t cap = ov->cap ? ov->cap * 2 : 8;
			struct fs_range *r = realloc(ov->r, cap * sizeof(*r));
			if (!r)
				abort(); /* losing track of dirty data would lose writes */
			ov->r = r;
			ov->cap = cap;
		}
		memmove(ov->r + i + 1, ov->r + i, (ov->nranges - i) * sizeof(*ov->r));
		ov->nranges++;
	} else if (j > i + 1) {
		memmove(ov->r + i + 1, ov->r + j, (ov->nranges - j) * sizeof(*ov->r));
		ov->nranges -= j - i - 1;
	}
	ov->r[i].lo = lo;
	ov->r[i].hi = hi;
}

int fs_overlay_write(struct fs_overlay *ov, const void *buf, size_t len, uint64_t off,
		     uint64_t size)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(ov->fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)w;
	}
	fs_overlay_note_write(ov, len, off, size);
	return 0;
}

void fs_overlay_note_write(struct fs_overlay *ov, size_t len, uint64_t off, uint64_t size)
{
	if (off > size)
		fs_overlay_mark(ov, size, off);
	fs_overlay_mark(ov, off, off + len);
}

int fs_overlay_truncate(struct fs_overlay *ov, uint64_t old_size, uint64_t new_size)
{
	if (new_size < old_size) {
		/* Whatever was beyond is gone: zero it in the temp file by
		 * shrinking it, and drop the ranges past the end. */
		if (ftruncate(ov->fd, (off_t)new_size) != 0)
			return -errno;
		size_t i = first_after(ov, new_size);
		if (i < ov->nranges && ov->r[i].lo < new_size) {
			ov->r[i].hi = new_size;
			i++;
		}
		ov->nranges = i;
		if (new_size < ov->base_limit)
			ov->base_limit = new_size;
		if (new_size < ov->early_guard)
			early_drop(ov);
	}
	if (ftruncate(ov->fd, (off_t)new_size) != 0)
		return -errno;
	if (new_size > old_size)
		fs_overlay_mark(ov, old_size, new_size);
	return 0;
}

const struct fs_range *fs_overlay_next(const struct fs_overlay *ov, uint64_t off)
{
	size_t i = first_after(ov, off);
	return i < ov->nranges ? &ov->r[i] : NULL;
}

