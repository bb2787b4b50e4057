/* fetch: the ordered chain local store -> sources.  A block from a source is
 * checked against its id by store_put before anyone sees it, so a peer or a
 * cloud that sends garbage can only cost time, never correctness. */
#include "config.h"
#include "core/fetch.h"
#include "core/error.h"
#include "core/log.h"
#include "core/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "fetch"

#define INFLIGHT_MAX 32

struct fetch {
	struct store *store;
	size_t nsources;
	struct fetch_source sources[FETCH_MAX_SOURCES];
	/* Blocks being fetched from a source right now: a second reader of
	 * the same block waits for the first instead of fetching it again. */
	pthread_mutex_t lock;
	pthread_cond_t done;
	blockid_t inflight[INFLIGHT_MAX];
	int busy[INFLIGHT_MAX];
	fetch_sink_fn sink;
	void *sink_ctx;
	long long uncached_said; /* when a failed cache write was last logged (s) */
};

int fetch_new(struct fetch **out, struct store *store)
{
	struct fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(-ENOMEM, "out of memory");
	f->store = store;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->done, NULL);
	*out = f;
	return 0;
}

void fetch_free(struct fetch *f)
{
	if (!f)
		return;
	pthread_cond_destroy(&f->done);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Claims id for this thread; returns the slot, or -1 after having waited
 * until no other thread was fetching it any more (the caller then retries
 * the store).  Every release wakes every waiter, so a waiter looks again
 * before it concludes that its block is done.  With every slot busy,
 * fetches go on unclaimed (slot -2).  FETCH_NO_WAIT: -3 instead of
 * waiting. */
static int claim(struct fetch *f, const blockid_t *id, int flags)
{
	int waited = 0;
	pthread_mutex_lock(&f->lock);
	for (;;) {
		int fetching = 0, free_slot = -2;
		for (int i = 0; i < INFLIGHT_MAX; i++) {
			if (f->busy[i] && !blockid_cmp(&f->inflight[i], id)) {
				fetching = 1;
				break;
			}
			if (!f->busy[i] && free_slot == -2)
				free_slot = i;
		}
		if (fetching && (flags & FETCH_NO_WAIT)) {
			pthread_mutex_unlock(&f->lock);
			return -3;
		}
		if (fetching) {
			pthread_cond_wait(&f->done, &f->lock);
			waited = 1;
			continue;
		}
		if (waited) {
			pthread_mutex_unlock(&f->lock);
			return -1;
		}
		if (free_slot >= 0) {
			f->busy[free_slot] = 1;
			f->inflight[free_slot] = *id;
		}
		pthread_mutex_unlock(&f->lock);
		return free_slot;
	}
}

static void release(struct fetch *f, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&f->lock);
	f->busy[slot] = 0;
	pthread_cond_broadcast(&f->done);
	pthread_mutex_unlock(&f->lock);
}

struct store *fetch_store_borrow(struct fetch *f)
{
	return f->store;
}

int fetch_add_source(struct fetch *f, const struct fetch_source *src)
{
	if (f->nsources == FETCH_MAX_SOURCES)
		return error_set(-ENOSPC, "too many block sources (at most %d)", FETCH_MAX_SOURCES);
	f->sources[f->nsources++] = *src;
	return 0;
}

void fetch_set_sink(struct fetch *f, fetch_sink_fn fn, void *ctx)
{
	f->sink = fn;
	f->sink_ctx = ctx;
}

/* A full cache disk must not stop reads (the bytes are served from memory),
 * but the user has to hear of it: once a minute at most, since a cold read
 * meets it for every block. */
static void say_uncached(struct fetch *f, int rc)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long now = (long long)ts.tv_sec + 1, last = __atomic_load_n(&f->uncached_said,
									   __ATOMIC_RELAXED);
	if ((last && now - last < 60) ||
	    !__atomic_compare_exchange_n(&f->uncached_said, &last, now, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	log_warn("fetched blocks cannot be kept in the cache (%s): reads are served without "
		 "caching, and go to the network again next time (said at most once a minute)",
		 rc == -ENOSPC ? "the disk is full" : error_last());
}

static int put_copy(struct fetch *f, const blockid_t *id, const uint8_t *data, size_t len)
{
	int rc = store_put_cached(f->store, id, data, len);
	if (rc && rc != -EBADMSG)
		say_uncached(f, rc);
	return rc;
}

int block_deliver(struct fetch *f, const blockid_t *id, uint8_t *data, size_t len, int flags)
{
	int rc = put_copy(f, id, data, len);
	if (rc == -EBADMSG || !f->sink || (flags & FETCH_BACKGROUND))
		free(data);
	else
		f->sink(f->sink_ctx, id, data, len);
	return rc;
}

static int from_sources(struct fetch *f, const blockid_t *id, int flags, uint8_t **out,
			size_t *out_len);

static int get(struct fetch *f, const blockid_t *id, int flags, uint8_t **out, size_t *out_len)
{
	if (store_get(f->store, id, out, out_len) == 0)
		return 0;
	if (!f->nsources)
		return from_sources(f, id, flags, out, out_len);
	int slot = claim(f, id, flags);
	if (slot == -3)
		return -EINPROGRESS;
	/* Look again: another thread may have brought it between our miss
	 * and our claim (or while we waited for it). */
	if (store_get(f->store, id, out, out_len) == 0) {
		release(f, slot);
		return 0;
	}
	int rc = from_sources(f, id, flags, out, out_len);
	release(f, slot);
	return rc;
}

int block_get(struct fetch *f, const blockid_t *id, int flags, uint8_t **out, size_t *out_len)
{
	return get(f, id, flags & FETCH_ALONE, out, out_len);
}

int block_prefetch(struct fetch *f, const blockid_t *id, int flags, uint8_t **out,
		   size_t *out_len)
{
	return get(f, id, flags | FETCH_NO_WAIT, out, out_len);
}

static int from_sources(struct fetch *f, const blockid_t *id, int flags, uint8_t **out,
			size_t *out_len)
{
	char hex[BLOCKID_HEX_SIZE];
	char why[512] = "not in the local cache";
	size_t used = strlen(why);
	blockid_to_hex(id, hex);
	for (size_t i = 0; i < f->nsources; i++) {
		const struct fetch_source *src = &f->sources[i];
		uint8_t *buf = NULL;
		size_t len = 0;
		log_debug("fetching block %.16s from %s", hex, src->name);
		int rc = src->get(src->payload, id, flags, &buf, &len);
		if (rc == -EAGAIN && store_get(f->store, id, out, out_len) == 0)
			return 0;
		if (rc == -EINPROGRESS)
			return rc;
		if (rc == 0) {
			rc = put_copy(f, id, buf, len);
			if (rc == 0 || rc != -EBADMSG) {
				/* A full disk must not hide good data: serve it anyway. */
				*out = buf;
				*out_len = len;
				return 0;
			}
			log_warn("block %.16s from %s does not match its id: dropped", hex, src->name);
			free(buf);
		}
		used += (size_t)snprintf(why + used, used < sizeof(why) ? sizeof(why) - used : 0,
					 "; %s: %s", src->name,
					 rc == -EBADMSG ? "sent corrupt data" : strerror(-rc));
		if (used >= sizeof(why))
			used = sizeof(why) - 1;
	}
	/* A reader's miss is worth a line; readahead's (hundreds a second
	 * while the cloud is away) only when debugging. */
	if (flags & FETCH_NO_WAIT)
		log_debug("block %.16s unavailable for readahead: %s", hex, why);
	else
		log_warn("block %.16s unavailable: %s", hex, why);
	return error_set(-EIO, "block %.16s is unavailable (%s)", hex, why);
}
