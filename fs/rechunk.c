/* rechunk: see rechunk.h.  Works through a window of 4 MiB so that memory
 * stays bounded whatever the file size. */
#include "config.h"
#include "fs/rechunk.h"
#include "core/chunk.h"
#include "core/error.h"
#include "core/manifest.h"
#include "core/store.h"
#include "fs/overlay.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW (4u << 20)

static int all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];
	while (n >= sizeof(zero)) {
		if (memcmp(p, zero, sizeof(zero)))
			return 0;
		p += sizeof(zero);
		n -= sizeof(zero);
	}
	return memcmp(p, zero, n) == 0;
}

static int make_inline(struct manifest *m, uint64_t size, fs_rechunk_read_fn read, void *ctx)
{
	m->is_inline = 1;
	m->size = size;
	m->inline_data = malloc(size ? size : 1);
	if (!m->inline_data)
		return -ENOMEM;
	long r = size ? read(ctx, m->inline_data, size, 0) : 0;
	if (r < 0)
		return (int)r;
	if ((uint64_t)r != size)
		return error_set(-EIO, "short read while flushing a small file");
	return 0;
}

/* Where chunking must restart: the start of the old block holding lo. */
static size_t restart_index(const struct manifest *old, uint64_t lo, uint64_t *start)
{
	*start = 0;
	if (!old || old->is_inline || old->nblocks == 0)
		return 0;
	uint64_t probe = lo < old->size ? lo : old->size - 1;
	size_t i = manifest_find(old, probe, start);
	return i;
}

/* 1 when pos is the start of an old block; *idx is that block. */
static int old_boundary(const struct manifest *old, uint64_t pos, size_t *idx)
{
	uint64_t start;
	size_t i = manifest_find(old, pos, &start);
	if (i >= old->nblocks || start != pos)
		return 0;
	*idx = i;
	return 1;
}

/* Chunks cut in the current window, waiting to be hashed and stored.
 * Cutting is cheap (GB/s); hashing is not, so a batch of chunks is hashed
 * and stored on all cores at once, then appended in order. */
#define BATCH_MAX 256
#define WORKERS_MAX 8

struct pending {
	const uint8_t *p;
	size_t n;
	blockid_t id;
	int hole;
};

struct batch {
	struct pending e[BATCH_MAX];
	size_t n;
	struct store *s;
	int nworkers;
};

struct worker {
	struct batch *b;
	int k, rc;
	char why[256]; /* rc's message, from this worker's thread */
};

/* New blocks are dirty (made here), synced by the caller in one go, and
 * handed to the disk at once so that the sync has little left to wait for. */
#define NEW_BLOCK (STORE_DIRTY | STORE_DEFER_SYNC | STORE_WRITEBACK)

static void *hash_some(void *arg)
{
	struct worker *w = arg;
	struct batch *b = w->b;
	for (size_t i = (size_t)w->k; i < b->n && !w->rc; i += (size_t)b->nworkers) {
		struct pending *e = &b->e[i];
		e->hole = all_zero(e->p, e->n);
		if (!e->hole)
			w->rc = store_put_data(b->s, &e->id, e->p, e->n, NEW_BLOCK);
	}
	if (w->rc)
		snprintf(w->why, sizeof(w->why), "%s", error_last());
	return NULL;
}

static int hash_batch(struct batch *b)
{
	struct worker w[WORKERS_MAX];
	pthread_t t[WORKERS_MAX];
	int started[WORKERS_MAX] = { 0 };
	int nw = b->n < (size_t)b->nworkers ? (int)b->n : b->nworkers;
	for (int k = 0; k < nw; k++)
		w[k] = (struct worker){ .b = b, .k = k };
	for (int k = 1; k < nw; k++)
		started[k] = pthread_create(&t[k], NULL, hash_some, &w[k]) == 0;
	if (nw > 0)
		hash_some(&w[0]);
	for (int k = 1; k < nw; k++) {
		if (started[k])
			pthread_join(t[k], NULL);
		else
			hash_some(&w[k]); /* no thread: do its share here */
	}
	for (int k = 0; k < nw; k++)
		if (w[k].rc)
			return error_set(w[k].rc, "%s", w[k].why);
	/* Uploads go in dirty order and a later sequential read fetches what
	 * went up side by side in one request: file order, not the order the
	 * workers happened to finish in. */
	blockid_t ids[BATCH_MAX];
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		if (!b->e[i].hole)
			ids[n++] = b->e[i].id;
	store_dirty_in_order(b->s, ids, n);
	return 0;
}

static int flush_batch(struct batch *b, struct manifest *m, struct fs_rechunk_stats *st)
{
	int rc = hash_batch(b);
	for (size_t i = 0; i < b->n && !rc; i++) {
		struct pending *e = &b->e[i];
		rc = manifest_add_block(m, e->hole ? NULL : &e->id, (uint32_t)e->n);
		if (!e->hole)
			st->blocks_new++;
	}
	b->n = 0;
	return rc;
}

static int worker_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

int fs_rechunk(struct manifest **out, const struct manifest *old, const struct fs_overlay *ov,
	       uint64_t new_size, fs_rechunk_read_fn read, void *ctx, struct store *s,
	       struct fs_rechunk_stats *stats)
{
	struct fs_rechunk_stats st = { 0 };
	struct manifest *m = manifest_new();
	struct batch *bt = NULL;
	uint8_t *buf = NULL;
	int rc = 0;
	if (!m)
		return -ENOMEM;
	if (new_size <= MANIFEST_INLINE_MAX) {
		rc = make_inline(m, new_size, read, ctx);
		goto done;
	}
	uint64_t lo = new_size, hi = 0;
	if (ov && ov->nranges) {
		lo = ov->r[0].lo;
		hi = ov->r[ov->nranges - 1].hi;
	}
	if (ov && ov->base_limit < lo)
		lo = ov->base_limit;
	uint64_t old_size = (old && !old->is_inline) ? old->size : 0;
	int can_resync = old_size && new_size == old_size && (!ov || ov->base_limit == old_size);
	uint64_t pos;
	size_t first = restart_index(old, lo, &pos);
	for (size_t i = 0; i < first; i++) {
		if ((rc = manifest_add_block(m, &old->blocks[i].id, old->blocks[i].len)))
			goto done;
		st.blocks_reused++;
	}
	if (ov && ov->base_limit == 0 && pos == 0 && ov->early_end <= new_size) {
		/* Cut while the file was being written. */
		for (size_t i = 0; i < ov->nearly; i++) {
			const struct fs_early_block *e = &ov->early[i];
			if ((rc = manifest_add_block(m, e->hole ? NULL : &e->id, e->len)))
				goto done;
			st.blocks_new += !e->hole;
		}
		pos = ov->early_end;
		st.bytes_early = ov->early_end;
	}
	buf = malloc(WINDOW);
	if (!buf) {
		rc = -ENOMEM;
		goto done;
	}
	uint64_t win_off = pos; /* file offset of buf[0] */
	size_t win_len = 0, refills = 0;
	bt = calloc(1, sizeof(*bt));
	if (!bt) {
		rc = -ENOMEM;
		goto done;
	}
	bt->s = s;
	bt->nworkers = worker_count();
	while (pos < new_size) {
		size_t idx;
		if (can_resync && pos >= hi && pos > 0 && old_boundary(old, pos, &idx)) {
			if ((rc = flush_batch(bt, m, &st)))
				goto done;
			for (; idx < old->nblocks; idx++) {
				if ((rc = manifest_add_block(m, &old->blocks[idx].id,
							     old->blocks[idx].len)))
					goto done;
				st.blocks_reused++;
			}
			break;
		}
		size_t have = (size_t)(win_off + win_len - pos);
		uint64_t left = new_size - pos;
		if (have < CHUNK_MAX && have < left) {
			/* The batch points into the window: finish it first. */
			if ((rc = flush_batch(bt, m, &st)))
				goto done;
			/* Slide the window so that it starts at pos, then fill it. */
			memmove(buf, buf + (pos - win_off), have);
			win_off = pos;
			win_len = have;
			/* The first read is no more than the next chunks need,
			 * so a small change reads a few blocks; a rewrite that
			 * goes on reads whole windows, for big parallel batches. */
			size_t want = refills++ ? WINDOW - win_len : 2 * CHUNK_MAX;
			if (want > WINDOW - win_len)
				want = WINDOW - win_len;
			if (want > new_size - (win_off + win_len))
				want = (size_t)(new_size - (win_off + win_len));
			long r = read(ctx, buf + win_len, want, win_off + win_len);
			if (r < 0) {
				rc = (int)r;
				goto done;
			}
			if ((size_t)r != want) {
				rc = error_set(-EIO, "short read while flushing");
				goto done;
			}
			win_len += want;
			st.bytes_chunked += want;
			have = win_len;
		}
		const uint8_t *p = buf + (pos - win_off);
		size_t n = chunk_next(p, have < left ? have : (size_t)left);
		bt->e[bt->n++] = (struct pending){ .p = p, .n = n };
		if (bt->n == BATCH_MAX && (rc = flush_batch(bt, m, &st)))
			goto done;
		pos += n;
	}
	rc = flush_batch(bt, m, &st);
done:
	free(bt);
	free(buf);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	if (stats)
		*stats = st;
	*out = m;
	return 0;
}

_Static_assert(FS_RECHUNK_AHEAD_MAX >= BATCH_MAX, "room for a whole batch");

int fs_rechunk_ahead(const uint8_t *buf, size_t len, struct store *s, struct fs_early_block *out,
		     size_t *nout)
{
	struct batch *bt = calloc(1, sizeof(*bt));
	if (!bt)
		return -ENOMEM;
	bt->s = s;
	bt->nworkers = worker_count();
	size_t pos = 0;
	while (len - pos >= CHUNK_MAX && bt->n < BATCH_MAX) {
		size_t n = chunk_next(buf + pos, len - pos);
		bt->e[bt->n++] = (struct pending){ .p = buf + pos, .n = n };
		pos += n;
	}
	int rc = hash_batch(bt);
	for (size_t i = 0; i < bt->n && !rc; i++)
		out[i] = (struct fs_early_block){ bt->e[i].id, (uint32_t)bt->e[i].n, bt->e[i].hole };
	*nout = rc ? 0 : bt->n;
	free(bt);
	return rc;
}
