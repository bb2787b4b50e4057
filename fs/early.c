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
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LOG_MODULE "early"

#define WINDOW (4u << 20)
/* Writeback may still deliver pages this far behind the end of the file
 * (the kernel sends dirty pages in roughly, not strictly, ascending order);
 * cutting there would mostly be thrown away. */
#define LAG (8u << 20)
#define QUEUE_MAX 64

struct fs_early {
	struct fs *fs;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t more, idle;
	struct fs_inode *q[QUEUE_MAX];
	size_t head, n;
	int busy, stopping;
	uint8_t *buf;
	struct fs_early_block *blocks;
};

static int settled(const struct fs_overlay *ov, uint64_t size)
{
	return ov && ov->base_limit == 0 && size >= ov->early_end + LAG + WINDOW;
}

int fs_early_due(struct fs_inode *ino)
{
	if (ino->early_busy || !settled(ino->ov, ino->size))
		return 0;
	ino->early_busy = 1;
	return 1;
}

/* Returns 1 when a window was cut and kept (worth another go). */
static int cut_one(struct fs_early *e, struct fs_inode *ino)
{
	struct fs *fs = e->fs;
	pthread_rwlock_rdlock(&ino->data_lock);
	struct fs_overlay *ov = ino->ov;
	if (!settled(ov, ino->size)) {
		pthread_rwlock_unlock(&ino->data_lock);
		return 0;
	}
	uint64_t serial = ov->serial, epoch = ov->early_epoch, start = ov->early_end;
	/* Only this thread writes the early_* fields under the read lock;
	 * writers, who read them, hold the write lock.  From here on a write
	 * into the window bumps the epoch, so the copy can be made without
	 * the lock (writers would wait for it), from a descriptor of our own
	 * that outlives the overlay if a flush frees it meanwhile. */
	ov->early_guard = start + WINDOW;
	int fd = fcntl(ov->fd, F_DUPFD_CLOEXEC, 0);
	pthread_rwlock_unlock(&ino->data_lock);
	int rc = fd < 0 ? -errno : fs_overlay_pread(fd, e->buf, WINDOW, start);
	if (fd >= 0)
		close(fd);
	if (rc) {
		log_debug("cannot read ahead of the flush: %s", strerror(-rc));
		return 0;
	}

	size_t n = 0;
	rc = fs_rechunk_ahead(e->buf, WINDOW, fs->vol->store, e->blocks, &n);
	if (rc) {
		log_debug("cutting ahead of the flush failed: %s", error_last());
		return 0;
	}

	int kept = 0;
	pthread_rwlock_wrlock(&ino->data_lock);
	ov = ino->ov;
	if (ov && ov->serial == serial && ov->early_epoch == epoch && ov->early_end == start)
		kept = fs_overlay_add_early(ov, e->blocks, n) == 0;
	pthread_rwlock_unlock(&ino->data_lock);
	return kept;
}

static void let_go(struct fs *fs, struct fs_inode *ino)
{
	pthread_mutex_lock(&fs->lock);
	ino->early_busy = 0;
	fs_inode_maybe_free(fs->table, ino);
	pthread_mutex_unlock(&fs->lock);
}

static void *early_main(void *arg)
{
	struct fs_early *e = arg;
	struct sched_param sp = { 0 };
	/* Only the CPU time nobody else wants. */
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
		setpriority(PRIO_PROCESS, 0, 19);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		while (!e->n && !e->stopping)
			pthread_cond_wait(&e->more, &e->lock);
		if (e->stopping)
			break;
		struct fs_inode *ino = e->q[e->head];
		e->head = (e->head + 1) % QUEUE_MAX;
		e->n--;
		e->busy = 1;
		pthread_mutex_unlock(&e->lock);
		while (!__atomic_load_n(&e->stopping, __ATOMIC_RELAXED) && cut_one(e, ino))
			;
		let_go(e->fs, ino);
		pthread_mutex_lock(&e->lock);
		e->busy = 0;
		if (!e->n)
			pthread_cond_broadcast(&e->idle);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int fs_early_new(struct fs_early **out, struct fs *fs)
{
	struct fs_early *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fs = fs;
	e->buf = malloc(WINDOW);
	e->blocks = malloc(FS_RECHUNK_AHEAD_MAX * sizeof(*e->blocks));
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->more, NULL);
	pthread_cond_init(&e->idle, NULL);
	if (!e->buf || !e->blocks) {
		fs_early_free(e);
		return -ENOMEM;
	}
	/* Without the thread, flushes simply cut everything themselves. */
	e->started = pthread_create(&e->thread, NULL, early_main, e) == 0;
	*out = e;
	return 0;
}

void fs_early_free(struct fs_early *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = 1;
	pthread_cond_broadcast(&e->more);
	pthread_mutex_unlock(&e->lock);
	if (e->started)
		pthread_join(e->thread, NULL);
	for (; e->n; e->n--, e->head = (e->head + 1) % QUEUE_MAX)
		let_go(e->fs, e->q[e->head]);
	pthread_cond_destroy(&e->idle);
	pthread_cond_destroy(&e->more);
	pthread_mutex_destroy(&e->lock);
	free(e->blocks);
	free(e->buf);
	free(e);
}

void fs_early_queue(struct fs_early *e, struct fs_inode *ino)
{
	pthread_mutex_lock(&e->lock);
	int ok = e->started && !e->stopping && e->n < QUEUE_MAX;
	if (ok) {
		e->q[(e->head + e->n) % QUEUE_MAX] = ino;
		e->n++;
		pthread_cond_signal(&e->more);
	}
	pthread_mutex_unlock(&e->lock);
	if (!ok)
		let_go(e->fs, ino); /* a hint dropped: the flush cuts it */
}

void fs_early_wait(struct fs_early *e)
{
	pthread_mutex_lock(&e->lock);
	while (e->n || e->busy)
		pthread_cond_wait(&e->idle, &e->lock);
	pthread_mutex_unlock(&e->lock);
}
