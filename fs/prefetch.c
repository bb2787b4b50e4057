/* prefetch: a bounded ring of block ids and a few worker threads that call
 * block_get() and drop the bytes: the fetch chain keeps them in the store. */
#include "config.h"
#include "fs/prefetch.h"
#include "core/fetch.h"
#include "core/store.h"
#include "fs/bcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MAX 256
#define THREADS_MAX 16

struct fs_prefetch {
	struct fetch *f;
	struct fs_bcache *cache;
	pthread_mutex_t lock;
	pthread_cond_t more;
	blockid_t q[QUEUE_MAX];
	int qflags[QUEUE_MAX];
	size_t head, n;
	blockid_t busy[THREADS_MAX];
	int busy_set[THREADS_MAX];
	int stopping, nthreads;
	pthread_t t[THREADS_MAX];
	struct worker_arg {
		struct fs_prefetch *p;
		int k;
	} args[THREADS_MAX];
};

/* 1 when id is queued (its flags gain flags: a reader now right behind a
 * background fetch wants the block in memory too) or being fetched. */
static int queued_or_busy(struct fs_prefetch *p, const blockid_t *id, int flags)
{
	for (size_t i = 0; i < p->n; i++) {
		size_t k = (p->head + i) % QUEUE_MAX;
		if (!blockid_cmp(&p->q[k], id)) {
			p->qflags[k] |= flags;
			return 1;
		}
	}
	for (int k = 0; k < p->nthreads; k++)
		if (p->busy_set[k] && !blockid_cmp(&p->busy[k], id))
			return 1;
	return 0;
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct fs_prefetch *p = wa->p;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		if (p->stopping)
			break;
		blockid_t id = p->q[p->head];
		int flags = p->qflags[p->head];
		p->head = (p->head + 1) % QUEUE_MAX;
		p->n--;
		p->busy[wa->k] = id;
		p->busy_set[wa->k] = 1;
		pthread_mutex_unlock(&p->lock);
		uint8_t *data = NULL;
		size_t len = 0;
		if (flags & FS_PREFETCH_MEMORY)
			flags &= ~FETCH_BACKGROUND;
		if (block_prefetch(p->f, &id, flags & ~FS_PREFETCH_MEMORY, &data, &len) == 0) {
			if (flags & FS_PREFETCH_MEMORY)
				fs_bcache_put(p->cache, &id, data, len);
			else
				free(data);
		}
		pthread_mutex_lock(&p->lock);
		p->busy_set[wa->k] = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int fs_prefetch_new(struct fs_prefetch **out, struct fetch *f, struct fs_bcache *cache,
		    int threads)
{
	struct fs_prefetch *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->f = f;
	p->cache = cache;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	if (threads > THREADS_MAX)
		threads = THREADS_MAX;
	for (int k = 0; k < threads; k++) {
		struct worker_arg *wa = &p->args[k];
		wa->p = p;
		wa->k = k;
		if (pthread_create(&p->t[k], NULL, worker, wa) != 0)
			break;
		p->nthreads++;
	}
	*out = p;
	return 0;
}

void fs_prefetch_free(struct fs_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (int k = 0; k < p->nthreads; k++)
		pthread_join(p->t[k], NULL);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t fs_prefetch_queue(struct fs_prefetch *p, const blockid_t *ids, size_t n, int flags)
{
	struct store *s = fetch_store_borrow(p->f);
	int stored_too = (flags & FETCH_SEQUENTIAL) && (flags & FS_PREFETCH_MEMORY);
	size_t i = 0;
	pthread_mutex_lock(&p->lock);
	for (; i < n && p->n < QUEUE_MAX; i++) {
		/* Ahead of a sequential reader, blocks already stored are read
		 * into memory too: from a cold disk, many block files in
		 * parallel beat one after another. */
		if (blockid_is_zero(&ids[i]) || queued_or_busy(p, &ids[i], flags) ||
		    (store_has(s, &ids[i]) && (!stored_too || fs_bcache_has(p->cache, &ids[i]))))
			continue;
		p->q[(p->head + p->n) % QUEUE_MAX] = ids[i];
		p->qflags[(p->head + p->n) % QUEUE_MAX] = flags;
		p->n++;
		pthread_cond_signal(&p->more);
	}
	pthread_mutex_unlock(&p->lock);
	return i;
}
