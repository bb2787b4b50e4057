/* cloud: the volume's layout in a blob store, and the sealing of everything
 * written there.  It turns the backend's keys and bytes into blocks,
 * repository objects and device heads:
 *
 *   volume                 sealed {volume id, encrypt}: lets clone check a key
 *   packs/XX/NAME          blocks, each sealed with the block key, one after
 *                          the other (sync/pack.h): how blocks go up
 *   index/NAME             sealed with the object key: the ids, offsets and
 *                          lengths of pack NAME's blocks
 *   blocks/XX/ID           one block, sealed with the block key (ID: its id);
 *                          how blocks went up before packs, still read
 *   objects/XX/NAME        one git object (1 type byte + raw data, or a delta
 *                          against an older blob: cloud_delta.c), sealed with
 *                          the object key; NAME = keyed BLAKE2b of the git oid,
 *                          so the cloud learns no hash of any content
 *   heads/DEVICE           sealed "COMMIT-OID\n", written only by DEVICE
 *
 * With encryption off (volume.encrypt = false) the same keys hold the plain
 * bytes.  Whatever comes back is opened (authenticated) and checked against
 * what was asked for before anyone uses it. */
#ifndef PEERCLING_CLOUD_H
#define PEERCLING_CLOUD_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"
#include "core/fetch.h"

struct volume;
struct backend;
struct cloud_packs;
struct cloud_deltas;

struct cloud {
	struct backend *b;
	struct volume *vol;      /* borrowed */
	struct cloud_packs *pk;  /* the packs this device knows (cloud_pack.c) */
	struct cloud_deltas *deltas; /* depths of delta objects (cloud_delta.c) */
	int volume_ok;           /* the volume record was read and is understood */
};

/* Opens the backend named by the volume's cloud.url and its config. */
int cloud_open(struct cloud **out, struct volume *vol);
void cloud_free(struct cloud *c);

/* The "volume" record: written by init, read by clone, checked by the first
 * sync of each run (sync_run). */
int cloud_put_volume_info(struct cloud *c);
/* -EKEYREJECTED when the key does not open it or it is another volume's;
 * -ENOENT when the cloud holds no volume; -EPROTO when it requires a
 * feature this build does not know. */
int cloud_check_volume_info(struct cloud *c);

/* Seals n blocks into one new pack, uploads it, then its index, and
 * remembers it. */
int cloud_put_pack(struct cloud *c, const blockid_t *ids, uint8_t *const *data,
		   const size_t *lens, size_t n);
/* Fetches the indexes of packs this device does not know yet (the cloud's
 * listing of index/); *added says how many (may be NULL). */
int cloud_refresh_packs(struct cloud *c, unsigned *added);
/* 1 when a known pack holds id (it need not go up again), else 0. */
int cloud_has_packed(struct cloud *c, const blockid_t *id);
/* Opened (authenticated), not yet checked against id: the fetch chain
 * checks every block; *out malloc'd. */
int cloud_get_block(struct cloud *c, const blockid_t *id, uint8_t **out, size_t *len);

/* An object goes up in two steps so that many can go up at once: the
 * body (its type byte then its data, *out malloc'd) is read from the
 * repository by one thread, which libgit2 wants; the sealed PUT may run in
 * any thread. */
/* base: the same path's blob in the parent commit, already in the cloud or
 * going up before the head that names oid (or NULL): when oid is a blob
 * that changed little since, the body is a delta against it
 * (cloud_delta.c); 1 (and no body) when, asked with a base, the cloud holds
 * oid already. */
int cloud_object_body(struct cloud *c, const git_oid *oid, const git_oid *base, uint8_t **out,
		      size_t *out_len);
int cloud_put_object_body(struct cloud *c, const git_oid *oid, const uint8_t *body, size_t len);
/* The volume id recorded in the cloud (clone uses it); *out malloc'd.
 * -EKEYREJECTED for a wrong key. */
int cloud_read_volume_id(struct cloud *c, char **out);

/* Downloads one object, checked against its git oid; *out malloc'd. */
int cloud_get_object(struct cloud *c, const git_oid *oid, git_object_t *type, uint8_t **out,
		     size_t *len);

int cloud_put_head(struct cloud *c, const git_oid *commit);
/* Calls cb for every device head in the cloud (this device's included). */
int cloud_foreach_head(struct cloud *c,
		       int (*cb)(const char *device, const git_oid *commit, void *payload),
		       void *payload);

/* The fetch-chain source for blocks (see core/fetch.h). */
struct fetch_source cloud_block_source(struct cloud *c);

#endif
