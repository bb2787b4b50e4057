/* prefetch: a bounded ring of block ids and a few worker threads that call
 * block_get() and drop the bytes: the fetch chain keeps them in the store.
 * When the ring is empty, the workers go down the files to fetch whole
 * (fs_prefetch_whole), so readers' readahead always comes first. */
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
#define WHOLE_JOBS_MAX 8

/* The blocks of one file to fetch whole, in file order. */
struct whole_job {
	blockid_t *ids;
	size_t n, next;
	struct whole_job *later;
};

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
	struct whole_job *jobs, *last_job; /* first in, first out */
	int njobs;
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

/* With p->lock held: the next block of the oldest whole-file job that is
 * neither stored nor on its way (1), dropping the jobs that are done. */
static int next_of_jobs(struct fs_prefetch *p, blockid_t *id)
{
	struct store *s = fetch_store_borrow(p->f);
	while (p->jobs) {
		struct whole_job *j = p->jobs;
		while (j->next < j->n) {
			const blockid_t *c = &j->ids[j->next++];
			if (!blockid_is_zero(c) && !store_has(s, c) &&
			    !queued_or_busy(p, c, 0)) {
				*id = *c;
				return 1;
			}
		}
		p->jobs = j->later;
		if (!p->jobs)
			p->last_job = NULL;
		p->njobs--;
		free(j->ids);
		free(j);
	}
	return 0;
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct fs_prefetch *p = wa->p;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !p->jobs && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		if (p->stopping)
			break;
		blockid_t id;
		/* What a whole-file job brings goes to the store only, and in
		 * windows: the job goes down the file in order. */
		int flags = FETCH_SEQUENTIAL | FETCH_BACKGROUND;
		if (p->n) {
			id = p->q[p->head];
			flags = p->qflags[p->head];
			p->head = (p->head + 1) % QUEUE_MAX;
			p->n--;
		} else if (!next_of_jobs(p, &id)) {
			continue;
		}
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
	while (p->jobs) {
		struct whole_job *j = p->jobs;
		p->jobs = j->later;
		free(j->ids);
		free(j);
	}
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

int fs_prefetch_whole(struct fs_prefetch *p, const blockid_t *ids, size_t n)
{
	struct whole_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->ids = malloc((n ? n : 1) * sizeof(*ids)))) {
		free(j);
		return -ENOMEM;
	}
	memcpy(j->ids, ids, n * sizeof(*ids));
	j->n = n;
	pthread_mutex_lock(&p->lock);
	if (p->njobs >= WHOLE_JOBS_MAX) {
		pthread_mutex_unlock(&p->lock);
		free(j->ids);
		free(j);
		return -EBUSY;
	}
	if (p->last_job)
		p->last_job->later = j;
	else
		p->jobs = j;
	p->last_job = j;
	p->njobs++;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
