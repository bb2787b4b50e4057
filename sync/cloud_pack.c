/* cloud_pack: blocks in packs (sync/pack.h): putting a pack and its index,
 * learning the indexes other devices wrote, and reading blocks back with
 * ranged GETs.
 *
 * A read that is part of a sequential read (FETCH_SEQUENTIAL: the prefetch
 * threads working down a file), or a reader's read of a block whose
 * predecessor in the same pack is already stored (unless FETCH_ALONE: a
 * scattered read in the mount), brings a window of
 * up to WINDOW_MAX bytes in one request; the blocks beyond the asked one go
 * straight into the store.  A reader of a block inside a window in flight
 * waits for that window instead of asking again (a readahead goes on to the
 * next block instead, which starts the next window).  A lone read (random
 * access) asks for its block alone, so a 4 KiB read never costs 1 MiB. */
#include "config.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/store.h"
#include "core/volume.h"
#include "sync/backend.h"
#include "sync/cloud.h"
#include "sync/cloud_impl.h"
#include "sync/pack.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "cloud"
#define WINDOW_MAX (1u << 20) /* bytes: a window is fetched and checked by one thread */
#define WINDOWS 32            /* in flight at once */
#define REFRESH_GAP_MS 1000   /* between two listings caused by missing blocks */

struct window {
	int busy;
	uint32_t pack, first, last;
};

struct cloud_packs {
	struct pack_set *set;
	pthread_mutex_t lock; /* windows */
	pthread_cond_t done;
	struct window w[WINDOWS];
	pthread_mutex_t refresh; /* one listing at a time */
	long long refreshed_ms;
	int refresh_rc;
	char refresh_why[256];
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cloud_packs_new(struct cloud *c)
{
	struct cloud_packs *pk = calloc(1, sizeof(*pk));
	char *dir = NULL;
	if (!pk || volume_file(&dir, c->vol, "packs")) {
		free(pk);
		return error_set(-ENOMEM, "out of memory");
	}
	int rc = pack_set_new(&pk->set, dir);
	free(dir);
	if (rc) {
		free(pk);
		return rc;
	}
	pthread_mutex_init(&pk->lock, NULL);
	pthread_cond_init(&pk->done, NULL);
	pthread_mutex_init(&pk->refresh, NULL);
	pk->refreshed_ms = -REFRESH_GAP_MS;
	c->pk = pk;
	return 0;
}

void cloud_packs_free(struct cloud *c)
{
	struct cloud_packs *pk = c->pk;
	if (!pk)
		return;
	pack_set_free(pk->set);
	pthread_mutex_destroy(&pk->lock);
	pthread_cond_destroy(&pk->done);
	pthread_mutex_destroy(&pk->refresh);
	free(pk);
	c->pk = NULL;
}

static void pack_key(char out[64], const char *name)
{
	snprintf(out, 64, "packs/%.2s/%s", name, name);
}

/* ---- putting ------------------------------------------------------------ */

int cloud_put_pack(struct cloud *c, const blockid_t *ids, uint8_t *const *data,
		   const size_t *lens, size_t n)
{
	struct pack_entry *e = calloc(n ? n : 1, sizeof(*e));
	uint8_t **sealed = calloc(n ? n : 1, sizeof(*sealed));
	uint8_t *buf = NULL, *body = NULL;
	size_t total = 0, blen = 0;
	char name[PACK_NAME_SIZE], key[64], ikey[64];
	int rc = e && sealed ? 0 : error_set(-ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < n; i++) {
		size_t sl = 0;
		rc = cloud_seal(c, c->vol->keys.block, data[i], lens[i], &sealed[i], &sl);
		e[i].id = ids[i];
		e[i].off = total;
		e[i].len = (uint32_t)sl;
		total += sl;
	}
	if (!rc && !(buf = malloc(total ? total : 1)))
		rc = error_set(-ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < n; i++)
		memcpy(buf + e[i].off, sealed[i], e[i].len);
	pack_new_name(name);
	pack_key(key, name);
	snprintf(ikey, sizeof(ikey), "index/%s", name);
	/* The pack before its index, the index before any head: whoever
	 * sees an index finds its pack. */
	if (!rc)
		rc = backend_put(c->b, key, buf, total);
	if (!rc)
		rc = pack_index_encode(e, n, &body, &blen);
	if (!rc)
		rc = cloud_put_sealed(c, ikey, c->vol->keys.object, body, blen);
	if (!rc)
		rc = pack_set_add(c->pk->set, name, body, blen);
	for (size_t i = 0; sealed && i < n; i++)
		free(sealed[i]);
	free(sealed);
	free(e);
	free(buf);
	free(body);
	return rc;
}

int cloud_has_packed(struct cloud *c, const blockid_t *id)
{
	struct pack_loc loc;
	return pack_find(c->pk->set, id, &loc);
}

/* ---- learning other devices' packs --------------------------------------- */

struct names {
	struct cloud_packs *pk;
	char (*v)[PACK_NAME_SIZE];
	size_t n, cap;
};

static int collect_index(const char *key, void *payload)
{
	struct names *ns = payload;
	const char *name = strrchr(key, '/');
	name = name ? name + 1 : key;
	if (strlen(name) != PACK_NAME_SIZE - 1 || pack_set_has(ns->pk->set, name))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		char(*v)[PACK_NAME_SIZE] = realloc(ns->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	snprintf(ns->v[ns->n++], PACK_NAME_SIZE, "%s", name);
	return 0;
}

int cloud_refresh_packs(struct cloud *c, unsigned *added)
{
	struct names ns = { .pk = c->pk };
	unsigned got = 0;
	int rc = backend_list(c->b, "index/", collect_index, &ns);
	for (size_t i = 0; !rc && i < ns.n; i++) {
		char key[64];
		uint8_t *body = NULL;
		size_t len = 0;
		snprintf(key, sizeof(key), "index/%s", ns.v[i]);
		int r = cloud_get_opened(c, key, c->vol->keys.object, &body, &len);
		if (!r)
			r = pack_set_add(c->pk->set, ns.v[i], body, len);
		free(body);
		if (!r)
			got++;
		else if (r == -EBADMSG || r == -ENOENT)
			/* Another device's damage must not stop this one. */
			log_warn("ignoring pack index %s: %s", key, error_last());
		else
			rc = r;
	}
	free(ns.v);
	if (got)
		log_info("learned %u pack(s) from the cloud", got);
	if (added)
		*added = got;
	return rc;
}

/* On a miss, once per REFRESH_GAP_MS: the block may be in a pack another
 * device wrote since.  While the cloud does not answer, later misses get
 * the same error at once instead of waiting for it again. */
static int refresh_on_miss(struct cloud *c)
{
	struct cloud_packs *pk = c->pk;
	pthread_mutex_lock(&pk->refresh);
	int rc = 0;
	if (now_ms() - pk->refreshed_ms >= REFRESH_GAP_MS) {
		rc = cloud_refresh_packs(c, NULL);
		pk->refreshed_ms = now_ms();
		pk->refresh_rc = rc == -ENOENT ? 0 : rc;
		snprintf(pk->refresh_why, sizeof(pk->refresh_why), "%s", rc ? error_last() : "");
	} else if (pk->refresh_rc) {
		rc = error_set(pk->refresh_rc, "%s", pk->refresh_why);
	}
	pthread_mutex_unlock(&pk->refresh);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- reading ------------------------------------------------------------- */

/* Caller holds pk->lock. */
static int in_flight(const struct cloud_packs *pk, uint32_t pack, uint32_t pos)
{
	for (int i = 0; i < WINDOWS; i++)
		if (pk->w[i].busy && pk->w[i].pack == pack && pos >= pk->w[i].first &&
		    pos <= pk->w[i].last)
			return 1;
	return 0;
}

/* Caller holds pk->lock: the window to fetch for loc, registered (slot
 * returned, or -1 when every slot is busy: fetch alone, unregistered). */
static int plan(struct cloud *c, const struct pack_loc *loc, int flags, uint32_t *last,
		size_t *bytes)
{
	struct cloud_packs *pk = c->pk;
	struct store *st = c->vol->store;
	struct pack_entry e;
	*last = loc->pos;
	*bytes = loc->e.len;
	/* A readahead says whether it is sequential; a reader's own block
	 * counts as sequential when the one before it is already here, unless
	 * the reader knows better (FETCH_ALONE). */
	int follows = (flags & FETCH_SEQUENTIAL) ||
		      (!(flags & (FETCH_NO_WAIT | FETCH_ALONE)) && loc->pos > 0 &&
		       pack_entry_at(pk->set, loc->pack, loc->pos - 1, &e) && store_has(st, &e.id));
	while (follows && pack_entry_at(pk->set, loc->pack, *last + 1, &e) &&
	       *bytes + e.len <= WINDOW_MAX && !in_flight(pk, loc->pack, *last + 1) &&
	       !store_has(st, &e.id)) {
		(*last)++;
		*bytes += e.len;
	}
	for (int i = 0; i < WINDOWS; i++) {
		if (!pk->w[i].busy) {
			pk->w[i] = (struct window){ 1, loc->pack, loc->pos, *last };
			return i;
		}
	}
	*last = loc->pos;
	*bytes = loc->e.len;
	return -1;
}

static void unplan(struct cloud_packs *pk, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&pk->lock);
	pk->w[slot].busy = 0;
	pthread_cond_broadcast(&pk->done);
	pthread_mutex_unlock(&pk->lock);
}

/* Opens each block of the window; the asked one goes to *out, the others
 * into the store (checked against their ids there). */
static int take_window(struct cloud *c, const struct pack_loc *loc, uint32_t last,
		       const uint8_t *buf, int flags, uint8_t **out, size_t *len)
{
	char hex[BLOCKID_HEX_SIZE];
	int rc = 0;
	for (uint32_t pos = loc->pos; pos <= last; pos++) {
		struct pack_entry e;
		if (!pack_entry_at(c->pk->set, loc->pack, pos, &e))
			break;
		uint8_t *plain = NULL;
		size_t plen = 0;
		int r = cloud_unseal(c, c->vol->keys.block, buf + (e.off - loc->e.off), e.len, &plain,
				     &plen);
		if (pos == loc->pos) {
			if (r) {
				blockid_to_hex(&e.id, hex);
				rc = error_set(-EBADMSG, "block %.16s in its pack does not open with "
					       "this volume's key (tampered with)", hex);
			}
			*out = plain;
			*len = plen;
			continue;
		}
		if (!r && block_deliver(c->vol->fetch, &e.id, plain, plen, flags) == -EBADMSG) {
			blockid_to_hex(&e.id, hex);
			log_warn("block %.16s from a pack does not match its id: dropped", hex);
		} else if (r) {
			free(plain);
		}
		/* A reader waiting for this block need not wait for the rest. */
		pthread_mutex_lock(&c->pk->lock);
		pthread_cond_broadcast(&c->pk->done);
		pthread_mutex_unlock(&c->pk->lock);
	}
	return rc;
}

int cloud_packed_get(struct cloud *c, const blockid_t *id, int flags, uint8_t **out,
		     size_t *len)
{
	struct cloud_packs *pk = c->pk;
	struct pack_loc loc;
	if (!pack_find(pk->set, id, &loc)) {
		int rc = refresh_on_miss(c);
		if (rc)
			return rc;
		if (!pack_find(pk->set, id, &loc))
			return -ENOENT;
	}
	pthread_mutex_lock(&pk->lock);
	int waited = 0;
	if ((flags & FETCH_NO_WAIT) && in_flight(pk, loc.pack, loc.pos)) {
		pthread_mutex_unlock(&pk->lock);
		return -EINPROGRESS;
	}
	while (in_flight(pk, loc.pack, loc.pos) && !store_has(c->vol->store, id)) {
		pthread_cond_wait(&pk->done, &pk->lock);
		waited = 1;
	}
	if (waited && store_has(c->vol->store, id)) {
		pthread_mutex_unlock(&pk->lock);
		return -EAGAIN;
	}
	uint32_t last;
	size_t bytes;
	int slot = plan(c, &loc, flags, &last, &bytes);
	pthread_mutex_unlock(&pk->lock);

	char name[PACK_NAME_SIZE], key[64];
	uint8_t *buf = NULL;
	pack_name(pk->set, loc.pack, name);
	pack_key(key, name);
	log_debug("pack %.8s: blocks %u-%u (%zu bytes)%s", name, loc.pos, last, bytes,
		  flags & FETCH_NO_WAIT ? " ahead" : "");
	int rc = backend_get_range(c->b, key, loc.e.off, bytes, &buf);
	if (!rc)
		rc = take_window(c, &loc, last, buf, flags, out, len);
	free(buf);
	unplan(pk, slot);
	return rc;
}
