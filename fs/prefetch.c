/* prefetch: a bounded ring of block ids and a few worker threads that call
 * block_get() and drop the bytes: the fetch chain keeps them in the store.
 * When the ring is empty, up to half of the workers go down the files to
 * fetch whole (fs_prefetch_whole): readers' readahead comes first, and
 * always finds a worker free soon. */
#include "config.h"
#include "fs/prefetch.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/store.h"
#include "fs/bcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "prefetch"

#define QUEUE_MAX 256
#define THREADS_MAX 16
#define WHOLE_JOBS_MAX 8
/* A job that fails this often in a row is given up (the cloud is away, the
 * blocks are gone): it would otherwise retry block after block for hours. */
#define WHOLE_FAILURES_MAX 4

/* The blocks of one file to fetch whole, in file order. */
struct whole_job {
	blockid_t *ids;
	size_t n, next;
	uint64_t bytes;	 /* the file's size */
	uint64_t serial; /* names it while a worker fetches unlocked */
	int failures;	 /* in a row */
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
	int njobs, job_workers;
	uint64_t job_bytes, job_serial;
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
 * neither stored nor on its way (1, and the job's serial), dropping the
 * jobs that are done. */
static int next_of_jobs(struct fs_prefetch *p, blockid_t *id, uint64_t *serial)
{
	struct store *s = fetch_store_borrow(p->f);
	while (p->jobs) {
		struct whole_job *j = p->jobs;
		while (j->next < j->n) {
			const blockid_t *c = &j->ids[j->next++];
			if (!blockid_is_zero(c) && !store_has(s, c) &&
			    !queued_or_busy(p, c, 0)) {
				*id = *c;
				*serial = j->serial;
				return 1;
			}
		}
		p->jobs = j->later;
		if (!p->jobs)
			p->last_job = NULL;
		p->njobs--;
		p->job_bytes -= j->bytes;
		free(j->ids);
		free(j);
	}
	return 0;
}

/* With p->lock held: counts a job's fetch; too many failures in a row end
 * it (its entry is dropped at the next look). */
static void job_done(struct fs_prefetch *p, uint64_t serial, int rc, const char *why)
{
	for (struct whole_job *j = p->jobs; j; j = j->later) {
		if (j->serial != serial)
			continue;
		if (rc == 0 || rc == -EINPROGRESS) {
			j->failures = 0;
		} else if (++j->failures >= WHOLE_FAILURES_MAX && j->next < j->n) {
			log_info("stopped fetching a file of %llu bytes in the background after %d "
				 "failures in a row (%zu of %zu blocks gone through): %s",
				 (unsigned long long)j->bytes, j->failures, j->next, j->n, why);
			j->next = j->n;
		}
		return;
	}
}

static int job_room(const struct fs_prefetch *p)
{
	int cap = p->nthreads / 2;
	return p->jobs && p->job_workers < (cap ? cap : 1);
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct fs_prefetch *p = wa->p;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !job_room(p) && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		if (p->stopping)
			break;
		blockid_t id;
		uint64_t job = 0; /* serial of the job the block is for, or 0 */
		/* What a whole-file job brings goes to the store only, and in
		 * windows: the job goes down the file in order. */
		int flags = FETCH_SEQUENTIAL | FETCH_BACKGROUND;
		if (p->n) {
			id = p->q[p->head];
			flags = p->qflags[p->head];
			p->head = (p->head + 1) % QUEUE_MAX;
			p->n--;
		} else if (!next_of_jobs(p, &id, &job)) {
			continue;
		} else {
			p->job_workers++;
		}
		p->busy[wa->k] = id;
		p->busy_set[wa->k] = 1;
		pthread_mutex_unlock(&p->lock);
		uint8_t *data = NULL;
		size_t len = 0;
		char why[256] = "";
		if (flags & FS_PREFETCH_MEMORY)
			flags &= ~FETCH_BACKGROUND;
		int rc = block_prefetch(p->f, &id, flags & ~FS_PREFETCH_MEMORY, &data, &len);
		if (rc == 0 && (flags & FS_PREFETCH_MEMORY))
			fs_bcache_put(p->cache, &id, data, len);
		else if (rc == 0)
			free(data);
		else if (job)
			snprintf(why, sizeof(why), "%s", error_last());
		pthread_mutex_lock(&p->lock);
		p->busy_set[wa->k] = 0;
		if (job) {
			p->job_workers--;
			job_done(p, job, rc, why);
			pthread_cond_signal(&p->more); /* room for another job fetch */
		}
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

int fs_prefetch_whole(struct fs_prefetch *p, const blockid_t *ids, size_t n, uint64_t bytes,
		      uint64_t max_bytes)
{
	struct whole_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->ids = malloc((n ? n : 1) * sizeof(*ids)))) {
		free(j);
		return -ENOMEM;
	}
	memcpy(j->ids, ids, n * sizeof(*ids));
	j->n = n;
	j->bytes = bytes;
	pthread_mutex_lock(&p->lock);
	if (p->njobs >= WHOLE_JOBS_MAX || (p->jobs && p->job_bytes + bytes > max_bytes)) {
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
	p->job_bytes += bytes;
	j->serial = ++p->job_serial;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
