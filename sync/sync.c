/* sync: fetch, merge, upload; see sync.h for the order and why. */
#include "config.h"
#include "sync/sync.h"
#include "core/error.h"
#include "core/log.h"
#include "core/store.h"
#include "core/tree.h"
#include "core/volume.h"
#include "sync/cloud.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "sync"
#define UPLOADED_REF "refs/peercling/uploaded"
#define UPLOAD_THREADS 4

/* ---- a set of git oids -------------------------------------------------- */

struct oidset {
	git_oid *slot;
	uint8_t *used;
	size_t cap, n;
};

static size_t oid_hash(const git_oid *o)
{
	size_t h;
	memcpy(&h, o->id, sizeof(h));
	return h;
}

static int oidset_add(struct oidset *s, const git_oid *o); /* 1 new, 0 known */

static int oidset_grow(struct oidset *s)
{
	struct oidset n = { 0 };
	n.cap = s->cap ? s->cap * 2 : 1024;
	n.slot = calloc(n.cap, sizeof(*n.slot));
	n.used = calloc(n.cap, 1);
	if (!n.slot || !n.used) {
		free(n.slot);
		free(n.used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++)
		if (s->used[i])
			oidset_add(&n, &s->slot[i]);
	free(s->slot);
	free(s->used);
	*s = n;
	return 0;
}

static int oidset_add(struct oidset *s, const git_oid *o)
{
	if ((s->n + 1) * 2 > s->cap && oidset_grow(s))
		return -ENOMEM;
	size_t i = oid_hash(o) & (s->cap - 1);
	while (s->used[i]) {
		if (git_oid_equal(&s->slot[i], o))
			return 0;
		i = (i + 1) & (s->cap - 1);
	}
	s->used[i] = 1;
	s->slot[i] = *o;
	s->n++;
	return 1;
}

static int oidset_has(const struct oidset *s, const git_oid *o)
{
	if (!s->cap)
		return 0;
	for (size_t i = oid_hash(o) & (s->cap - 1); s->used[i]; i = (i + 1) & (s->cap - 1))
		if (git_oid_equal(&s->slot[i], o))
			return 1;
	return 0;
}

static void oidset_free(struct oidset *s)
{
	free(s->slot);
	free(s->used);
}

/* ---- worker pools ---------------------------------------------------------- *
 *
 * Block upload, object upload and object fetch each hand n numbered items
 * to a few threads; the first failure (with its message, which lives in
 * the failing thread's error slot) stops the rest and is the result. */

#define WORKERS_MAX 16

struct workq {
	pthread_mutex_t lock; /* also guards what the users keep next to it */
	size_t n, next;
	int rc;
	char why[512];
};

/* 1 with the next item in *k, 0 when none is left or one failed. */
static int workq_take(struct workq *q, size_t *k)
{
	pthread_mutex_lock(&q->lock);
	int more = !q->rc && q->next < q->n;
	if (more)
		*k = q->next++;
	pthread_mutex_unlock(&q->lock);
	return more;
}

/* Under q->lock. */
static void workq_fail_locked(struct workq *q, int rc)
{
	if (rc && !q->rc) {
		q->rc = rc;
		snprintf(q->why, sizeof(q->why), "%s", error_last());
	}
}

static void workq_fail(struct workq *q, int rc)
{
	pthread_mutex_lock(&q->lock);
	workq_fail_locked(q, rc);
	pthread_mutex_unlock(&q->lock);
}

/* Runs fn(arg) in up to threads threads (fewer for fewer items; in this
 * thread alone when none can be started) over q's n items, waits, and
 * returns the first failure with its message, or 0. */
static int workq_run(struct workq *q, size_t n, int threads, void *(*fn)(void *), void *arg)
{
	pthread_t t[WORKERS_MAX];
	size_t started = 0;
	pthread_mutex_init(&q->lock, NULL);
	q->n = n;
	q->next = 0;
	q->rc = 0;
	q->why[0] = '\0';
	for (size_t i = 0; i < n && i < (size_t)threads && i < WORKERS_MAX; i++)
		if (pthread_create(&t[started], NULL, fn, arg) == 0)
			started++;
	if (!started)
		fn(arg);
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_destroy(&q->lock);
	if (q->rc)
		return error_set(q->rc, "%s", q->why[0] ? q->why : strerror(-q->rc));
	return 0;
}

/* ---- fetch -------------------------------------------------------------- */

/* The oids an object names: a commit's tree and parents, a tree's entries
 * (submodules skipped).  Raw git formats. */
static int children(git_object_t type, const uint8_t *d, size_t len, git_oid **out, size_t *n)
{
	size_t cap = 16;
	*n = 0;
	*out = malloc(cap * sizeof(**out));
	if (!*out)
		return -ENOMEM;
	if (type == GIT_OBJECT_COMMIT) {
		const char *p = (const char *)d, *end = p + len;
		while (p < end && *p != '\n') {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl)
				break;
			size_t l = (size_t)(nl - p);
			const char *hex = NULL;
			if (l == 5 + GIT_OID_HEXSZ && !strncmp(p, "tree ", 5))
				hex = p + 5;
			else if (l == 7 + GIT_OID_HEXSZ && !strncmp(p, "parent ", 7))
				hex = p + 7;
			if (hex) {
				if (*n == cap) {
					git_oid *g = realloc(*out, (cap *= 2) * sizeof(**out));
					if (!g)
						return -ENOMEM;
					*out = g;
				}
				if (git_oid_fromstrn(&(*out)[*n], hex, GIT_OID_HEXSZ) < 0)
					return error_set(-EBADMSG, "malformed commit from the cloud");
				(*n)++;
			}
			p = nl + 1;
		}
	} else if (type == GIT_OBJECT_TREE) {
		size_t i = 0;
		while (i < len) {
			const uint8_t *sp = memchr(d + i, ' ', len - i);
			const uint8_t *nul = sp ? memchr(sp, '\0', len - (size_t)(sp - d)) : NULL;
			if (!nul || (size_t)(nul - d) + 1 + GIT_OID_RAWSZ > len)
				return error_set(-EBADMSG, "malformed tree from the cloud");
			int submodule = (size_t)(sp - (d + i)) == 6 && !memcmp(d + i, "160000", 6);
			if (!submodule) {
				if (*n == cap) {
					git_oid *g = realloc(*out, (cap *= 2) * sizeof(**out));
					if (!g)
						return -ENOMEM;
					*out = g;
				}
				git_oid_fromraw(&(*out)[(*n)++], nul + 1);
			}
			i = (size_t)(nul - d) + 1 + GIT_OID_RAWSZ;
		}
	}
	return 0;
}

struct fetch_ctx {
	struct cloud *c;
	git_odb *odb;
	struct oidset done; /* present locally, with everything below */
	unsigned fetched;
};

/* Objects fetched ahead: the children of one object are downloaded by
 * FETCH_THREADS threads at once (a round trip each: a cloud far away makes
 * that the whole of a clone), then stored one by one, depth first, by the
 * calling thread, so that an object is written only after everything
 * below it, as before. */
#define FETCH_THREADS 16
#define FETCH_AHEAD 256 /* children downloaded at once, bounding memory */

/* An object on its way up or down: type and data are its raw git form. */
struct object_item {
	git_oid id;
	git_object_t type;
	uint8_t *data;
	size_t len;
};

struct fetch_batch {
	struct workq q;
	struct cloud *c;
	struct object_item *o;
};

static void *fetch_objects_thread(void *arg)
{
	struct fetch_batch *b = arg;
	size_t k;
	while (workq_take(&b->q, &k)) {
		struct object_item *g = &b->o[k];
		workq_fail(&b->q, cloud_get_object(b->c, &g->id, &g->type, &g->data, &g->len));
	}
	return NULL;
}

static int store_graph(struct fetch_ctx *fc, struct object_item *g, int depth);

/* Fetches and stores kids[0..n) that are not here yet, FETCH_AHEAD at a time. */
static int fetch_children(struct fetch_ctx *fc, const git_oid *kids, size_t n, int depth)
{
	int rc = 0;
	for (size_t at = 0; !rc && at < n;) {
		struct fetch_batch b = { .c = fc->c };
		size_t m = 0;
		b.o = calloc(FETCH_AHEAD, sizeof(*b.o));
		if (!b.o)
			return error_set(-ENOMEM, "out of memory fetching objects");
		for (; at < n && m < FETCH_AHEAD; at++) {
			if (oidset_has(&fc->done, &kids[at]))
				continue;
			if (git_odb_exists(fc->odb, &kids[at])) {
				oidset_add(&fc->done, &kids[at]);
				continue;
			}
			int dup = 0; /* a tree may name the same blob twice */
			for (size_t j = 0; j < m && !dup; j++)
				dup = git_oid_equal(&b.o[j].id, &kids[at]);
			if (!dup)
				b.o[m++].id = kids[at];
		}
		rc = workq_run(&b.q, m, FETCH_THREADS, fetch_objects_thread, &b);
		for (size_t i = 0; i < m; i++) {
			if (!rc)
				rc = store_graph(fc, &b.o[i], depth);
			free(b.o[i].data);
		}
		free(b.o);
	}
	return rc;
}

/* g has been downloaded: its children first, then g itself. */
static int store_graph(struct fetch_ctx *fc, struct object_item *g, int depth)
{
	if (oidset_has(&fc->done, &g->id))
		return 0;
	if (depth > 100000)
		return error_set(-ELOOP, "history from the cloud is too deep");
	git_oid *kids = NULL;
	size_t nkids = 0;
	int rc = children(g->type, g->data, g->len, &kids, &nkids);
	if (!rc)
		rc = fetch_children(fc, kids, nkids, depth + 1);
	git_oid written;
	if (!rc && git_odb_write(&written, fc->odb, g->data, g->len, g->type) < 0)
		rc = tree_git_error(-1, "storing an object from the cloud");
	if (!rc) {
		oidset_add(&fc->done, &g->id);
		fc->fetched++;
	}
	free(kids);
	return rc;
}

static int fetch_graph(struct fetch_ctx *fc, const git_oid *oid, int depth)
{
	return fetch_children(fc, oid, 1, depth);
}

struct remote_head {
	char device[64];
	git_oid commit;
};

struct heads {
	struct remote_head *h;
	size_t n, cap;
	const char *self;
	int has_own; /* this device's head as the cloud has it */
	git_oid own;
};

/* Nothing new to publish: the cloud already holds this head for us (an
 * idle device then costs one listing per round, no write). */
static int own_head_is(const struct heads *hs, const git_oid *head)
{
	return hs->has_own && git_oid_equal(&hs->own, head);
}

static int collect_head(const char *device, const git_oid *commit, void *payload)
{
	struct heads *hs = payload;
	if (strcmp(device, hs->self) == 0) {
		hs->own = *commit;
		hs->has_own = 1;
		return 0;
	}
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 8;
		struct remote_head *h = realloc(hs->h, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		hs->h = h;
		hs->cap = cap;
	}
	snprintf(hs->h[hs->n].device, sizeof(hs->h[hs->n].device), "%s", device);
	hs->h[hs->n].commit = *commit;
	hs->n++;
	return 0;
}

static int cmp_head(const void *a, const void *b)
{
	return strcmp(((const struct remote_head *)a)->device, ((const struct remote_head *)b)->device);
}

/* ---- merge -------------------------------------------------------------- */

struct merge_ctx {
	git_repository *repo;
	struct heads *hs;
	struct merge_stats *stats;
};

static int merge_all(git_oid *out, const git_oid *local, int has_local, void *p)
{
	struct merge_ctx *mc = p;
	git_oid cur;
	int have = has_local;
	if (have)
		cur = *local;
	for (size_t i = 0; i < mc->hs->n; i++) {
		if (!have) {
			cur = mc->hs->h[i].commit;
			have = 1;
			mc->stats->fast_forward++;
			continue;
		}
		int rc = merge_commits(&cur, mc->repo, &cur, &mc->hs->h[i].commit, mc->stats);
		if (rc)
			return rc;
	}
	if (!have)
		return -ENOENT;
	*out = cur;
	return 0;
}

/* Without a mounted tree: the branch itself moves. */
static int merge_unmounted(struct volume *v, struct merge_ctx *mc, git_oid *head, int *has_head)
{
	git_oid tree, local, result;
	int has_local = tree_head(&tree, &local, v->repo, VOLUME_REF) == 0;
	int rc = merge_all(&result, &local, has_local, mc);
	if (rc == -ENOENT) {
		*has_head = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (!has_local || !git_oid_equal(&local, &result)) {
		git_reference *ref = NULL;
		if (git_reference_create(&ref, v->repo, VOLUME_REF, &result, 1, "peercling sync") < 0)
			return tree_git_error(-1, "moving the branch");
		git_reference_free(ref);
	}
	*head = result;
	*has_head = 1;
	return 0;
}

/* ---- upload ------------------------------------------------------------- */

/* Blocks go up in packs (sync/pack.h) of the blocks made dirty one after
 * the other, which is the order files were written: a later sequential read
 * then finds its blocks side by side, one ranged GET for many.  A pack's
 * size bounds the memory of an upload (UPLOAD_THREADS packs, each held
 * about three times while sealed and sent) and what a failed PUT costs. */
#define PACK_BYTES (4u << 20)
#define PACK_BLOCKS 1024

struct id_list {
	blockid_t *ids;
	uint64_t *sizes;
	size_t n, cap;
	size_t *cut; /* pack k is ids[cut[k]] .. ids[cut[k + 1] - 1] */
	size_t npacks;
};

static int collect_dirty(const blockid_t *id, uint64_t size, void *payload)
{
	struct id_list *l = payload;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		blockid_t *ids = realloc(l->ids, cap * sizeof(*ids));
		if (ids)
			l->ids = ids;
		uint64_t *sizes = realloc(l->sizes, cap * sizeof(*sizes));
		if (sizes)
			l->sizes = sizes;
		if (!ids || !sizes)
			return -ENOMEM;
		l->cap = cap;
	}
	l->ids[l->n] = *id;
	l->sizes[l->n++] = size;
	return 0;
}

static int cut_packs(struct id_list *l)
{
	l->cut = malloc((l->n + 1) * sizeof(*l->cut));
	if (!l->cut)
		return -ENOMEM;
	uint64_t bytes = 0;
	size_t start = 0;
	l->npacks = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (i > start && (bytes + l->sizes[i] > PACK_BYTES || i - start == PACK_BLOCKS)) {
			l->cut[l->npacks++] = start;
			start = i;
			bytes = 0;
		}
		bytes += l->sizes[i];
	}
	l->cut[l->npacks++] = start;
	l->cut[l->npacks] = l->n;
	return 0;
}

struct block_uploader {
	struct workq q; /* items: packs */
	struct cloud *c;
	struct id_list *l;
	unsigned done, sent; /* under q.lock */
	uint64_t bytes;
	void (*progress)(void *p, uint64_t done, uint64_t total);
	void *p;
};

/* One pack: its blocks read from the store (those gone or already in a
 * known pack are simply clean), put, then marked clean. */
static int upload_pack(struct block_uploader *u, size_t first, size_t end, unsigned *nsent,
		       uint64_t *nbytes)
{
	struct store *s = u->c->vol->store;
	size_t n = end - first, m = 0;
	blockid_t *ids = calloc(n, sizeof(*ids));
	uint8_t **data = calloc(n, sizeof(*data));
	size_t *lens = calloc(n, sizeof(*lens));
	int rc = ids && data && lens ? 0 : -ENOMEM;
	for (size_t i = first; !rc && i < end; i++) {
		const blockid_t *id = &u->l->ids[i];
		if (cloud_has_packed(u->c, id)) {
			rc = store_set_clean(s, id); /* another device sent it */
			continue;
		}
		rc = store_get(s, id, &data[m], &lens[m]);
		if (rc == -ENOENT) {
			/* Gone (corrupt and quarantined): nothing to upload. */
			rc = store_set_clean(s, id);
			continue;
		}
		if (!rc)
			ids[m++] = *id;
	}
	if (!rc && m)
		rc = cloud_put_pack(u->c, ids, data, lens, m);
	*nsent = 0;
	*nbytes = 0;
	for (size_t i = 0; i < m; i++) {
		if (!rc)
			rc = store_set_clean(s, &ids[i]);
		*nbytes += lens[i];
		free(data[i]);
	}
	if (!rc)
		*nsent = (unsigned)m;
	free(ids);
	free(data);
	free(lens);
	return rc;
}

static void *upload_blocks_thread(void *arg)
{
	struct block_uploader *u = arg;
	size_t k;
	while (workq_take(&u->q, &k)) {
		unsigned sent = 0;
		uint64_t bytes = 0;
		int rc = upload_pack(u, u->l->cut[k], u->l->cut[k + 1], &sent, &bytes);
		pthread_mutex_lock(&u->q.lock);
		workq_fail_locked(&u->q, rc);
		if (!rc) {
			u->done += (unsigned)(u->l->cut[k + 1] - u->l->cut[k]);
			u->sent += sent;
			u->bytes += bytes;
			if (u->progress)
				u->progress(u->p, u->done, u->l->n);
		}
		pthread_mutex_unlock(&u->q.lock);
	}
	return NULL;
}

static int upload_blocks(struct cloud *c, struct sync_report *rep,
			 void (*progress)(void *p, uint64_t done, uint64_t total), void *p)
{
	struct id_list l = { 0 };
	int rc = store_foreach_dirty(c->vol->store, collect_dirty, &l);
	if (!rc && l.n)
		rc = cut_packs(&l);
	if (rc || l.n == 0) {
		free(l.ids);
		free(l.sizes);
		free(l.cut);
		return rc == -ENOMEM ? error_set(rc, "out of memory listing blocks to upload") : rc;
	}
	struct block_uploader u = { .c = c, .l = &l, .progress = progress, .p = p };
	if (progress)
		progress(p, 0, l.n); /* the total is known before the first pack is up */
	rc = workq_run(&u.q, l.npacks, UPLOAD_THREADS, upload_blocks_thread, &u);
	rep->blocks_up += u.sent;
	rep->bytes_up += u.bytes;
	free(l.ids);
	free(l.sizes);
	free(l.cut);
	return rc;
}

/* ---- objects: read in order, sent in parallel -------------------------- *
 *
 * One PUT per object costs a round trip each, which a cloud far away makes
 * the whole of a sync with many small files; so bodies are read into a
 * batch (by this thread: libgit2) and each batch is sent by OBJECT_THREADS
 * threads.  Order within the objects does not matter: readers start from a
 * head, which goes up after all of them. */

#define OBJECT_THREADS 16
#define BATCH_OBJECTS 512
#define BATCH_BYTES (8u << 20)

struct object_batch {
	struct workq q;
	struct cloud *c;
	struct object_item *o; /* data: the body, type byte first */
	size_t n, cap, bytes;
};

static void *send_objects_thread(void *arg)
{
	struct object_batch *b = arg;
	size_t k;
	while (workq_take(&b->q, &k))
		workq_fail(&b->q, cloud_put_object_body(b->c, &b->o[k].id, b->o[k].data, b->o[k].len));
	return NULL;
}

/* Sends what the batch holds and empties it. */
static int batch_flush(struct object_batch *b)
{
	if (!b->n)
		return 0;
	int rc = workq_run(&b->q, b->n, OBJECT_THREADS, send_objects_thread, b);
	for (size_t i = 0; i < b->n; i++)
		free(b->o[i].data);
	b->n = b->bytes = 0;
	return rc;
}

/* 0 when queued (sent by the next flush), 1 when the cloud holds the
 * object already, or a negative errno. */
static int batch_add(struct object_batch *b, const git_oid *oid, const git_oid *base)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct object_item *o = realloc(b->o, cap * sizeof(*o));
		if (!o)
			return error_set(-ENOMEM, "out of memory queueing objects to upload");
		b->o = o;
		b->cap = cap;
	}
	struct object_item *it = &b->o[b->n];
	int rc = cloud_object_body(b->c, oid, base, &it->data, &it->len);
	if (rc == 1)
		return 1; /* in the cloud already: nothing to send or count */
	if (rc)
		return rc;
	it->id = *oid;
	b->bytes += it->len;
	b->n++;
	if (b->n >= BATCH_OBJECTS || b->bytes >= BATCH_BYTES)
		return batch_flush(b);
	return 0;
}

static void batch_free(struct object_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->o[i].data);
	free(b->o);
}

/* Marks every object of a tree as present in the cloud. */
static int mark_tree(git_repository *repo, const git_oid *tree, struct oidset *known)
{
	if (oidset_add(known, tree) != 1)
		return 0;
	git_tree *t = NULL;
	if (git_tree_lookup(&t, repo, tree) < 0)
		return 0;
	for (size_t i = 0; i < git_tree_entrycount(t); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
			mark_tree(repo, git_tree_entry_id(e), known);
		else
			oidset_add(known, git_tree_entry_id(e));
	}
	git_tree_free(t);
	return 0;
}

/* The entry named like e in base (a tree of the parent commit, or NULL) when
 * it has e's type and is already in the cloud or on its way: what a blob
 * that changed a little goes up as a delta against. */
static const git_oid *same_path(git_tree *base, const git_tree_entry *e, struct oidset *known)
{
	const git_tree_entry *be = base ? git_tree_entry_byname(base, git_tree_entry_name(e)) : NULL;
	if (!be || git_tree_entry_type(be) != git_tree_entry_type(e) ||
	    git_oid_equal(git_tree_entry_id(be), git_tree_entry_id(e)))
		return NULL;
	if (git_tree_entry_type(e) == GIT_OBJECT_BLOB && !oidset_has(known, git_tree_entry_id(be)))
		return NULL;
	return git_tree_entry_id(be);
}

/* base: the same directory in the parent commit (or NULL). */
static int upload_tree(struct object_batch *b, const git_oid *tree, const git_oid *base,
		       struct oidset *known, struct sync_report *rep)
{
	struct cloud *c = b->c;
	if (oidset_has(known, tree))
		return 0;
	git_tree *t = NULL, *bt = NULL;
	if (git_tree_lookup(&t, c->vol->repo, tree) < 0)
		return tree_git_error(-1, "reading a tree to upload");
	if (base && git_tree_lookup(&bt, c->vol->repo, base) < 0)
		bt = NULL; /* deltas are an optimisation: go without */
	int rc = 0;
	for (size_t i = 0; !rc && i < git_tree_entrycount(t); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		const git_oid *id = git_tree_entry_id(e);
		if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
			rc = upload_tree(b, id, same_path(bt, e, known), known, rep);
		else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB && !oidset_has(known, id)) {
			rc = batch_add(b, id, same_path(bt, e, known));
			if (rc >= 0) {
				oidset_add(known, id);
				rep->objects_up += rc == 0;
				rc = 0;
			}
		}
	}
	git_tree_free(t);
	git_tree_free(bt);
	if (!rc)
		rc = batch_add(b, tree, NULL);
	if (rc >= 0) {
		oidset_add(known, tree);
		rep->objects_up += rc == 0;
		rc = 0;
	}
	return rc;
}

static int upload_objects(struct cloud *c, const git_oid *head, struct sync_report *rep,
			  const struct heads *hs)
{
	git_repository *repo = c->vol->repo;
	git_revwalk *walk = NULL;
	struct oidset known = { 0 };
	struct object_batch b = { .c = c };
	git_oid uploaded, oid;
	int rc = 0;
	if (git_revwalk_new(&walk, repo) < 0)
		return tree_git_error(-1, "walking history");
	git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	git_revwalk_push(walk, head);
	if (git_reference_name_to_id(&uploaded, repo, UPLOADED_REF) == 0)
		git_revwalk_hide(walk, &uploaded);
	for (size_t i = 0; hs && i < hs->n; i++)
		git_revwalk_hide(walk, &hs->h[i].commit); /* already in the cloud */
	while (!rc && git_revwalk_next(&oid, walk) == 0) {
		git_commit *cm = NULL;
		if (git_commit_lookup(&cm, repo, &oid) < 0) {
			rc = tree_git_error(-1, "reading a commit to upload");
			break;
		}
		/* What a parent already in the cloud has need not go again. */
		for (unsigned p = 0; p < git_commit_parentcount(cm); p++) {
			git_commit *pc = NULL;
			if (!oidset_has(&known, git_commit_parent_id(cm, p)) &&
			    git_commit_parent(&pc, cm, p) == 0) {
				mark_tree(repo, git_commit_tree_id(pc), &known);
				git_commit_free(pc);
			}
		}
		git_commit *first = NULL;
		git_oid base_tree;
		int has_base = git_commit_parentcount(cm) > 0 && git_commit_parent(&first, cm, 0) == 0;
		if (has_base) {
			base_tree = *git_commit_tree_id(first);
			git_commit_free(first);
		}
		rc = upload_tree(&b, git_commit_tree_id(cm), has_base ? &base_tree : NULL, &known, rep);
		if (!rc)
			rc = batch_add(&b, &oid, NULL);
		if (rc >= 0) {
			oidset_add(&known, &oid);
			rep->objects_up += rc == 0;
			rc = 0;
		}
		git_commit_free(cm);
	}
	if (!rc)
		rc = batch_flush(&b);
	batch_free(&b);
	git_revwalk_free(walk);
	oidset_free(&known);
	return rc;
}

int sync_upload(struct cloud *c, const git_oid *head, struct sync_report *rep)
{
	int rc = upload_blocks(c, rep, NULL, NULL);
	if (!rc && head)
		rc = upload_objects(c, head, rep, NULL);
	if (!rc && head)
		rc = cloud_put_head(c, head);
	if (!rc && head) {
		git_reference *ref = NULL;
		if (git_reference_create(&ref, c->vol->repo, UPLOADED_REF, head, 1, "uploaded") == 0)
			git_reference_free(ref);
	}
	return rc;
}

/* Once per daemon (per struct cloud) after it succeeds, so a volume record
 * changed while a daemon runs is seen at its next start: a cloud that now
 * holds another volume, or a volume that needs a newer build, must not
 * receive uploads.  Any other failure (offline, no record) is left to the
 * head listing that follows, and the check runs again next time. */
static int volume_usable(struct cloud *c)
{
	if (__atomic_load_n(&c->volume_ok, __ATOMIC_RELAXED))
		return 0;
	int rc = cloud_check_volume_info(c);
	if (!rc)
		__atomic_store_n(&c->volume_ok, 1, __ATOMIC_RELAXED);
	return rc == -EPROTO || rc == -EKEYREJECTED ? rc : 0;
}

int sync_run(struct cloud *c, const struct sync_worktree *wt, struct sync_report *rep,
	     void (*progress)(void *p, uint64_t done, uint64_t total), void *p)
{
	struct heads hs = { .self = c->vol->device_id };
	struct fetch_ctx fc = { .c = c };
	memset(rep, 0, sizeof(*rep));
	int rc = volume_usable(c);
	if (!rc)
		rc = cloud_foreach_head(c, collect_head, &hs);
	if (rc) {
		/* Offline (or a volume this build must not write): still
		 * commit what is pending, so that `peercling sync` always
		 * leaves a commit; the upload waits for the cloud. */
		int err = rc;
		const char *why = error_last();
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", why);
		struct heads none = { .self = hs.self };
		struct merge_ctx mc0 = { c->vol->repo, &none, &rep->merge };
		if (wt)
			wt->commit_and_merge(wt->wt, merge_all, &mc0, &rep->head, &rep->has_head);
		rc = error_set(err, "%s", msg);
		goto out;
	}
	if (hs.n)
		qsort(hs.h, hs.n, sizeof(*hs.h), cmp_head);
	rep->heads_seen = (unsigned)hs.n;
	if (git_repository_odb(&fc.odb, c->vol->repo) < 0) {
		rc = tree_git_error(-1, "opening the object database");
		goto out;
	}
	for (size_t i = 0; !rc && i < hs.n; i++)
		rc = fetch_graph(&fc, &hs.h[i].commit, 0);
	rep->objects_down = fc.fetched;
	/* New history from others names blocks in packs this device has not
	 * heard of: learn them now (reads would, one miss later). */
	if (!rc && fc.fetched)
		rc = cloud_refresh_packs(c, NULL);
	if (rc)
		goto out;
	if (hs.n)
		log_info("fetched %u objects from %zu other device(s)", fc.fetched, hs.n);
	struct merge_ctx mc = { c->vol->repo, &hs, &rep->merge };
	if (wt)
		rc = wt->commit_and_merge(wt->wt, merge_all, &mc, &rep->head, &rep->has_head);
	else
		rc = merge_unmounted(c->vol, &mc, &rep->head, &rep->has_head);
	if (rc)
		goto out;
	rc = upload_blocks(c, rep, progress, p);
	if (!rc && rep->has_head)
		rc = upload_objects(c, &rep->head, rep, &hs);
	git_oid uploaded;
	int same = rep->has_head &&
		   git_reference_name_to_id(&uploaded, c->vol->repo, UPLOADED_REF) == 0 &&
		   git_oid_equal(&uploaded, &rep->head) && own_head_is(&hs, &rep->head);
	if (!rc && rep->has_head && !same)
		rc = cloud_put_head(c, &rep->head);
	if (!rc && rep->has_head && !same) {
		git_reference *ref = NULL;
		if (git_reference_create(&ref, c->vol->repo, UPLOADED_REF, &rep->head, 1,
					 "uploaded") == 0)
			git_reference_free(ref);
	}
	log_info("uploaded %u blocks (%llu bytes) and %u objects%s", rep->blocks_up,
		 (unsigned long long)rep->bytes_up, rep->objects_up,
		 rc ? " before the failure below" : "");
out:
	git_odb_free(fc.odb);
	oidset_free(&fc.done);
	free(hs.h);
	if (rc)
		log_warn("sync failed: %s", error_last());
	return rc;
}
