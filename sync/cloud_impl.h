/* cloud_impl: what cloud.c and cloud_pack.c share inside sync/. */
#ifndef PEERCLING_CLOUD_IMPL_H
#define PEERCLING_CLOUD_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <git2.h>

#include "core/blockid.h"
#include "core/seal.h"

struct cloud;

/* Sealed with sk when the volume encrypts, else a plain copy; *out malloc'd. */
int cloud_seal(struct cloud *c, const uint8_t sk[SEAL_KEY_SIZE], const void *data, size_t len,
	       uint8_t **out, size_t *out_len);
/* The reverse, of bytes the caller keeps; -EBADMSG when they do not open. */
int cloud_unseal(struct cloud *c, const uint8_t sk[SEAL_KEY_SIZE], const uint8_t *data,
		 size_t len, uint8_t **out, size_t *out_len);
int cloud_put_sealed(struct cloud *c, const char *key, const uint8_t sk[SEAL_KEY_SIZE],
		     const void *data, size_t len);
int cloud_get_opened(struct cloud *c, const char *key, const uint8_t sk[SEAL_KEY_SIZE],
		     uint8_t **out, size_t *len);

/* The packs' state of a cloud: made by cloud_open, freed by cloud_free. */
int cloud_packs_new(struct cloud *c);
void cloud_packs_free(struct cloud *c);
/* A block through the packs: 0 with *out (opened, not yet checked against
 * its id); -EAGAIN when it was fetched with others and is now in the store;
 * -ENOENT when no pack is known to hold it; with FETCH_NO_WAIT (core/fetch.h),
 * -EINPROGRESS when a window in flight holds it. */
int cloud_packed_get(struct cloud *c, const blockid_t *id, int flags, uint8_t **out,
		     size_t *len);

/* Delta objects (cloud_delta.c): made by cloud_open, freed by cloud_free. */
#define CLOUD_DELTA_DEPTH_MAX 16
#define CLOUD_DELTA_LEVELS 64 /* bases a reader follows at most */
int cloud_deltas_new(struct cloud *c);
void cloud_deltas_free(struct cloud *c);
/* 1 when the cloud holds object oid, 0 when not, or -errno. */
int cloud_object_exists(struct cloud *c, const git_oid *oid);
/* The body of oid (data, its raw form) as a delta against base, *out
 * malloc'd; -E2BIG when it goes up whole instead (not a blob, small, a
 * chain deep enough already, or a delta not worth it); 1 when the cloud
 * holds oid already, so nothing need go up. */
int cloud_delta_body(struct cloud *c, const git_oid *oid, const uint8_t *data, size_t len,
		     git_object_t type, const git_oid *base, uint8_t **out, size_t *out_len);
/* A blob that went up or came down whole: depth 0, a base deltas may use. */
void cloud_delta_note_whole(struct cloud *c, const git_oid *oid, git_object_t type, size_t len);
/* The object a delta body (opened, first byte with 0x80) rebuilds, not yet
 * checked against oid; its base from the repository or the cloud, following
 * at most levels bases.  -EBADMSG when malformed. */
int cloud_delta_open(struct cloud *c, const git_oid *oid, const uint8_t *body, size_t len,
		     unsigned levels, git_object_t *type, uint8_t **out, size_t *out_len);
/* cloud_get_object, following at most levels delta bases. */
int cloud_get_object_within(struct cloud *c, const git_oid *oid, unsigned levels,
			    git_object_t *type, uint8_t **out, size_t *len);

#endif
