/* bcache: slots hold malloc'd block copies with a use tick, found through
 * a chained hash of the ids (every kernel read looks here, often more than
 * once); a miss fetches outside the lock (block_get may go to the network),
 * then installs the block in the least recently used slot, evicting further
 * least recently used blocks while the bytes held would exceed the budget. */
#include "config.h"
#include "fs/bcache.h"
#include "core/error.h"
#include "core/fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct slot {
	blockid_t id;
	uint8_t *data;
	size_t len;
	uint64_t tick;
	uint32_t next; /* hash chain, slots that hold data only */
};

struct fs_bcache {
	pthread_mutex_t lock;
	size_t nslots, max_bytes, bytes;
	uint64_t tick;
	struct slot *slots;
	uint32_t *bucket, mask;
};

/* Ids are keyed hashes: any 4 of their bytes are already uniform. */
static uint32_t *chain(struct fs_bcache *c, const blockid_t *id)
{
	uint32_t h;
	memcpy(&h, id->b, sizeof(h));
	return &c->bucket[h & c->mask];
}

/* Under the lock: the slot holding id, or NULL. */
static struct slot *find(struct fs_bcache *c, const blockid_t *id)
{
	for (uint32_t i = *chain(c, id); i != NONE; i = c->slots[i].next)
		if (blockid_cmp(&c->slots[i].id, id) == 0)
			return &c->slots[i];
	return NULL;
}

int fs_bcache_new(struct fs_bcache **out, size_t slots, size_t max_bytes)
{
	if (!slots || slots >= NONE / 2)
		return -EINVAL;
	uint32_t nb = 1;
	while (nb < 2 * slots)
		nb *= 2;
	struct fs_bcache *c = calloc(1, sizeof(*c));
	if (!c || !(c->slots = calloc(slots, sizeof(*c->slots))) ||
	    !(c->bucket = malloc(nb * sizeof(*c->bucket)))) {
		if (c)
			free(c->slots);
		free(c);
		return -ENOMEM;
	}
	memset(c->bucket, 0xff, nb * sizeof(*c->bucket)); /* all NONE */
	c->mask = nb - 1;
	c->nslots = slots;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void fs_bcache_free(struct fs_bcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nslots; i++)
		free(c->slots[i].data);
	pthread_mutex_destroy(&c->lock);
	free(c->bucket);
	free(c->slots);
	free(c);
}

/* Under the lock: copy from a cached slot, 1 on a hit. */
static int try_copy(struct fs_bcache *c, const blockid_t *id, uint32_t off, void *buf, size_t n,
		    int *short_block)
{
	struct slot *s = find(c, id);
	if (!s)
		return 0;
	if ((size_t)off + n > s->len) {
		*short_block = 1;
		return 0;
	}
	memcpy(buf, s->data + off, n);
	s->tick = ++c->tick;
	return 1;
}

int fs_bcache_read(struct fs_bcache *c, struct fetch *f, const blockid_t *id, int fetch_flags,
		   uint32_t blen, uint32_t off, void *buf, size_t n)
{
	int short_block = 0;
	pthread_mutex_lock(&c->lock);
	int hit = try_copy(c, id, off, buf, n, &short_block);
	pthread_mutex_unlock(&c->lock);
	if (hit)
		return 0;
	if (short_block)
		return error_set(-EIO, "block shorter than its manifest says");
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = block_get(f, id, fetch_flags, &data, &len);
	if (rc)
		return rc;
	if (len != blen || (size_t)off + n > len) {
		free(data);
		return error_set(-EIO, "block length %zu differs from the manifest's %u", len, blen);
	}
	memcpy(buf, data + off, n);
	fs_bcache_put(c, id, data, len);
	return 0;
}

int fs_bcache_has(struct fs_bcache *c, const blockid_t *id)
{
	pthread_mutex_lock(&c->lock);
	int has = find(c, id) != NULL;
	pthread_mutex_unlock(&c->lock);
	return has;
}

/* Under the lock. */
static void drop(struct fs_bcache *c, struct slot *s)
{
	uint32_t self = (uint32_t)(s - c->slots), *link = chain(c, &s->id);
	while (*link != self)
		link = &c->slots[*link].next;
	*link = s->next;
	c->bytes -= s->len;
	free(s->data);
	s->data = NULL;
	s->len = 0;
}

/* Under the lock: the least recently used occupied slot, or NULL. */
static struct slot *oldest(struct fs_bcache *c)
{
	struct slot *o = NULL;
	for (size_t i = 0; i < c->nslots; i++) {
		struct slot *s = &c->slots[i];
		if (s->data && (!o || s->tick < o->tick))
			o = s;
	}
	return o;
}

void fs_bcache_put(struct fs_bcache *c, const blockid_t *id, uint8_t *data, size_t len)
{
	if (len > c->max_bytes) {
		free(data);
		return;
	}
	pthread_mutex_lock(&c->lock);
	struct slot *free_slot = NULL, *o;
	if (find(c, id))
		goto done; /* another thread installed it meanwhile */
	for (size_t i = 0; i < c->nslots && !free_slot; i++)
		if (!c->slots[i].data)
			free_slot = &c->slots[i];
	while ((!free_slot || c->bytes + len > c->max_bytes) && (o = oldest(c))) {
		drop(c, o);
		if (!free_slot)
			free_slot = o;
	}
	if (free_slot) {
		free_slot->id = *id;
		free_slot->data = data;
		free_slot->len = len;
		free_slot->tick = ++c->tick;
		uint32_t *head = chain(c, id);
		free_slot->next = *head;
		*head = (uint32_t)(free_slot - c->slots);
		c->bytes += len;
		data = NULL;
	}
done:
	pthread_mutex_unlock(&c->lock);
	free(data);
}
