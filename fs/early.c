/* early: see early.h.  One window at a time: copy it out of the overlay
 * under the read lock, cut and hash it with no lock held, then keep the
 * result only if nothing touched the window meanwhile. */
#include "config.h"
#include "fs/early.h"
#include "core/chunk.h"
#include "core/error.h"
#include "core/log.h"
#include "core/volume.h"
#include "fs/fs.h"
#include "fs/overlay.h"
#include "fs/rechunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "early"

#define WINDOW (4u << 20)
/* Writeback may still deliver pages this far behind the end of the file
 * (the kernel sends dirty pages in roughly, not strictly, ascending order);
 * cutting there would mostly be thrown away. */
#define LAG (8u << 20)

static int due(const struct fs_overlay *ov, uint64_t size)
{
	return ov && ov->base_limit == 0 && size >= ov->early_end + LAG + WINDOW;
}

static int read_window(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Returns 1 when a window was cut and kept (worth another go). */
static int cut_one(struct fs *fs, struct fs_inode *ino, uint8_t *buf,
		   struct fs_early_block *blocks)
{
	pthread_rwlock_rdlock(&ino->data_lock);
	struct fs_overlay *ov = ino->ov;
	if (!due(ov, ino->size)) {
		pthread_rwlock_unlock(&ino->data_lock);
		return 0;
	}
	uint64_t serial = ov->serial, epoch = ov->early_epoch, start = ov->early_end;
	/* Only this thread writes the early_* fields under the read lock
	 * (early_busy); writers, who read them, hold the write lock. */
	ov->early_guard = start + WINDOW;
	int rc = read_window(ov->fd, buf, WINDOW, start);
	pthread_rwlock_unlock(&ino->data_lock);
	if (rc) {
		log_debug("cannot read ahead of the flush: %s", strerror(-rc));
		return 0;
	}

	size_t n = 0;
	rc = fs_rechunk_ahead(buf, WINDOW, fs->vol->store, blocks, &n);
	if (rc) {
		log_debug("cutting ahead of the flush failed: %s", error_last());
		return 0;
	}

	int kept = 0;
	pthread_rwlock_wrlock(&ino->data_lock);
	ov = ino->ov;
	if (ov && ov->serial == serial && ov->early_epoch == epoch && ov->early_end == start)
		kept = fs_overlay_add_early(ov, blocks, n) == 0;
	pthread_rwlock_unlock(&ino->data_lock);
	return kept;
}

void fs_early_cut(struct fs *fs, struct fs_inode *ino)
{
	if (__atomic_exchange_n(&ino->early_busy, 1, __ATOMIC_ACQUIRE))
		return;
	/* Most writes have nothing to do here: look before allocating. */
	pthread_rwlock_rdlock(&ino->data_lock);
	int go = due(ino->ov, ino->size);
	pthread_rwlock_unlock(&ino->data_lock);
	uint8_t *buf = go ? malloc(WINDOW) : NULL;
	struct fs_early_block *blocks = go ? malloc(FS_RECHUNK_AHEAD_MAX * sizeof(*blocks)) : NULL;
	if (buf && blocks)
		while (cut_one(fs, ino, buf, blocks))
			;
	free(blocks);
	free(buf);
	__atomic_store_n(&ino->early_busy, 0, __ATOMIC_RELEASE);
}
