/* cloud_delta: a blob that changed a little since its version in the
 * parent commit (a big file's manifest after a small write: the mtime and
 * one or two block entries) goes to the cloud as a delta against that
 * version (sync/delta.h) instead of whole:
 *
 *   0x80 | type, depth (1..DELTA_DEPTH_MAX), the base's 20-byte oid, delta
 *
 * The base is always in the cloud before the head that names the new
 * version (it is in the parent commit's tree, uploaded earlier or in the
 * same upload), and whoever opens the delta checks the result against the
 * requested oid as for any object.  Each delta is one deeper than its base;
 * past DELTA_DEPTH_MAX the object goes up whole, so a fresh device resolves
 * at most that many bases for one object.  The depths of the blobs of 4 KiB
 * or more this device sent or received are kept in STATE/delta-depth
 * (21-byte records); a base of unknown depth is never used, so a lost
 * record costs one whole upload, not a longer chain.  A reader follows at
 * most CLOUD_DELTA_LEVELS bases, whatever the bodies say. */
#include "config.h"
#include "sync/cloud.h"
#include "sync/cloud_impl.h"
#include "sync/delta.h"
#include "core/error.h"
#include "core/log.h"
#include "core/volume.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "cloud"

#define DELTA_DEPTH_MAX CLOUD_DELTA_DEPTH_MAX
#define DELTA_MIN 4096                /* smaller blobs go up whole */
#define DELTA_HEADER (2 + GIT_OID_RAWSZ)
#define DELTA_RESULT_MAX (1ull << 30) /* a 1 GiB blob is far past any manifest */

struct depth_slot {
	git_oid id;
	uint8_t depth1; /* the depth + 1 (0: an empty slot) */
};

struct cloud_deltas {
	pthread_mutex_t lock; /* the table, the file, and the odb for fetch threads */
	struct depth_slot *slot;
	size_t n, cap;
	int fd;
};

static struct depth_slot *slot_of(struct cloud_deltas *d, const git_oid *id)
{
	uint32_t h;
	memcpy(&h, id->id, sizeof(h));
	for (size_t k = h & (d->cap - 1);; k = (k + 1) & (d->cap - 1))
		if (!d->slot[k].depth1 || git_oid_equal(&d->slot[k].id, id))
			return &d->slot[k];
}

/* Under the lock. */
static int remember(struct cloud_deltas *d, const git_oid *id, uint8_t depth1)
{
	if (2 * (d->n + 1) > d->cap) {
		size_t cap = d->cap * 2;
		struct depth_slot *old = d->slot, *s = calloc(cap, sizeof(*s));
		if (!s)
			return -ENOMEM;
		size_t oldcap = d->cap;
		d->slot = s;
		d->cap = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].depth1)
				*slot_of(d, &old[i].id) = old[i];
		free(old);
	}
	struct depth_slot *s = slot_of(d, id);
	if (!s->depth1)
		d->n++;
	s->id = *id;
	s->depth1 = depth1;
	return 0;
}

int cloud_deltas_new(struct cloud *c)
{
	struct cloud_deltas *d = calloc(1, sizeof(*d));
	char *path = NULL;
	if (!d || !(d->slot = calloc(d->cap = 64, sizeof(*d->slot)))) {
		free(d);
		return error_set(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&d->lock, NULL);
	d->fd = -1;
	c->deltas = d;
	if (volume_file(&path, c->vol, "delta-depth") != 0)
		return 0; /* a volume without a state dir (tests): memory only */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		uint8_t rec[GIT_OID_RAWSZ + 1];
		while (read(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
			git_oid id;
			git_oid_fromraw(&id, rec);
			if (rec[GIT_OID_RAWSZ] <= DELTA_DEPTH_MAX)
				remember(d, &id, (uint8_t)(rec[GIT_OID_RAWSZ] + 1));
		}
		close(fd);
	}
	d->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (d->fd < 0)
		log_warn("cannot keep delta depths in %s: %s", path, strerror(errno));
	free(path);
	return 0;
}

void cloud_deltas_free(struct cloud *c)
{
	struct cloud_deltas *d = c->deltas;
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	pthread_mutex_destroy(&d->lock);
	free(d->slot);
	free(d);
	c->deltas = NULL;
}

/* -1 when unknown. */
static int depth_of(struct cloud_deltas *d, const git_oid *id)
{
	pthread_mutex_lock(&d->lock);
	int depth = (int)slot_of(d, id)->depth1 - 1;
	pthread_mutex_unlock(&d->lock);
	return depth;
}

static void note_depth(struct cloud_deltas *d, const git_oid *id, uint8_t depth)
{
	pthread_mutex_lock(&d->lock);
	if (slot_of(d, id)->depth1 != depth + 1 && remember(d, id, (uint8_t)(depth + 1)) == 0 &&
	    d->fd >= 0) {
		uint8_t rec[GIT_OID_RAWSZ + 1];
		memcpy(rec, id->id, GIT_OID_RAWSZ);
		rec[GIT_OID_RAWSZ] = depth;
		/* A lost record only makes the next version of that blob
		 * go up whole (an unknown depth is never guessed). */
		if (write(d->fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
			log_debug("cannot record a delta depth: %s", strerror(errno));
	}
	pthread_mutex_unlock(&d->lock);
}

void cloud_delta_note_whole(struct cloud *c, const git_oid *oid, git_object_t type, size_t len)
{
	if (type == GIT_OBJECT_BLOB && len >= DELTA_MIN)
		note_depth(c->deltas, oid, 0);
}

int cloud_delta_body(struct cloud *c, const git_oid *oid, const uint8_t *data, size_t len,
		     git_object_t type, const git_oid *base, uint8_t **out, size_t *out_len)
{
	int depth = depth_of(c->deltas, base);
	if (type != GIT_OBJECT_BLOB || len < DELTA_MIN || depth < 0 || depth >= DELTA_DEPTH_MAX)
		return -E2BIG;
	/* A blob the cloud holds already (a version restored, the same bytes
	 * made elsewhere) stays as it is: sent again as a delta it could
	 * become the base of its own base, and nobody could rebuild either. */
	int there = cloud_object_exists(c, oid);
	if (there == 1)
		return 1;
	if (there < 0)
		return -E2BIG;
	git_odb *odb = NULL;
	git_odb_object *bo = NULL;
	int rc = -E2BIG;
	if (git_repository_odb(&odb, c->vol->repo) < 0 || git_odb_read(&bo, odb, base) < 0 ||
	    git_odb_object_type(bo) != GIT_OBJECT_BLOB)
		goto out;
	uint8_t *delta = NULL;
	size_t dlen = 0;
	if ((rc = delta_make(git_odb_object_data(bo), git_odb_object_size(bo), data, len,
			     len / 2, &delta, &dlen)))
		goto out;
	uint8_t *body = malloc(DELTA_HEADER + dlen);
	if (!body) {
		free(delta);
		rc = -ENOMEM;
		goto out;
	}
	body[0] = 0x80 | (uint8_t)type;
	body[1] = (uint8_t)(depth + 1);
	memcpy(body + 2, base->id, GIT_OID_RAWSZ);
	memcpy(body + DELTA_HEADER, delta, dlen);
	free(delta);
	note_depth(c->deltas, oid, (uint8_t)(depth + 1));
	*out = body;
	*out_len = DELTA_HEADER + dlen;
out:
	git_odb_object_free(bo);
	git_odb_free(odb);
	return rc;
}

/* The base's content: from the repository, or else from the cloud (and then
 * kept in the repository, so that the versions after it find it there). */
static int base_content(struct cloud *c, const git_oid *base, unsigned levels, uint8_t **out,
			size_t *len)
{
	struct cloud_deltas *d = c->deltas;
	git_odb *odb = NULL;
	git_odb_object *bo = NULL;
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (git_repository_odb(&odb, c->vol->repo) == 0 && git_odb_read(&bo, odb, base) == 0) {
		*len = git_odb_object_size(bo);
		rc = git_odb_object_type(bo) != GIT_OBJECT_BLOB ? -EBADMSG
		     : (*out = malloc(*len ? *len : 1)) ? 0 : -ENOMEM;
		if (!rc)
			memcpy(*out, git_odb_object_data(bo), *len);
		git_odb_object_free(bo);
		git_odb_free(odb);
		pthread_mutex_unlock(&d->lock);
		return rc;
	}
	pthread_mutex_unlock(&d->lock);
	git_object_t type;
	if ((rc = cloud_get_object_within(c, base, levels, &type, out, len))) {
		git_odb_free(odb);
		return rc;
	}
	if (type != GIT_OBJECT_BLOB) {
		free(*out);
		git_odb_free(odb);
		return error_set(-EBADMSG, "the base of a delta from the cloud is not a blob");
	}
	git_oid written;
	pthread_mutex_lock(&d->lock);
	if (odb && git_odb_write(&written, odb, *out, *len, GIT_OBJECT_BLOB) < 0)
		log_debug("cannot keep a delta base: %s",
			  git_error_last() ? git_error_last()->message : "?");
	pthread_mutex_unlock(&d->lock);
	git_odb_free(odb);
	return 0;
}

int cloud_delta_open(struct cloud *c, const git_oid *oid, const uint8_t *body, size_t len,
		     unsigned levels, git_object_t *type, uint8_t **out, size_t *out_len)
{
	if (len < DELTA_HEADER || (body[0] & 0x7f) != GIT_OBJECT_BLOB || !body[1] ||
	    body[1] > DELTA_DEPTH_MAX || !levels)
		return error_set(-EBADMSG, "object %s from the cloud is a malformed delta",
				 git_oid_tostr_s(oid));
	git_oid base;
	git_oid_fromraw(&base, body + 2);
	uint8_t *bdata = NULL;
	size_t blen = 0;
	int rc = base_content(c, &base, levels - 1, &bdata, &blen);
	if (rc)
		return error_set(rc, "the base of object %s: %s", git_oid_tostr_s(oid),
				 error_last());
	rc = delta_apply(bdata, blen, body + DELTA_HEADER, len - DELTA_HEADER, DELTA_RESULT_MAX,
			 out, out_len);
	free(bdata);
	if (rc)
		return error_set(rc, "object %s from the cloud is a malformed delta",
				 git_oid_tostr_s(oid));
	*type = GIT_OBJECT_BLOB;
	note_depth(c->deltas, oid, body[1]);
	return 0;
}
