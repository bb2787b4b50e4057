/* store_pack: the cache packs of the block store (core/store.c's helper;
 * not used elsewhere).
 *
 * Blocks copied from elsewhere (a peer, the cloud) are appended to pack
 * files, blocks/packs/<8 hex digits>, instead of getting a file each: a cold
 * read of a 1 GiB file would otherwise create, write and rename 16,000
 * files, and on ext4 the creates alone took a fifth of the daemon's CPU.
 * Blocks written on this device stay one file each (store.c), since they
 * are fsynced one by one and may exist nowhere else.
 *
 * A pack is a run of records, each starting on a 4 KiB page: a 56-byte
 * header (magic "PCp2", state, data length, the second it was written,
 * XXH3-64 of the data seeded with the id, the 32-byte id), the data, and
 * padding to the next page.  Packs are written once, front to back, and
 * never fsynced (a copy lost in a crash is fetched again).  A record is
 * killed by punching it out whole (or, where holes cannot be made, by
 * setting its state to dead), and a pack whose records are all dead is
 * deleted.  Only the pack being written grows; the store opens a new one
 * at each start.  The scan at open steps record by record and, past a page
 * with no header (a hole, a write lost in a crash), page by page, believing
 * a live record found that way only if its checksum holds.
 *
 * Reads check the header and the checksum: damage, a torn write or a hole
 * left by a kill reads as -EBADMSG, never as data.  Thread-safe. */
#ifndef PEERCLING_STORE_PACK_H
#define PEERCLING_STORE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

#define STORE_PACK_HEADER 56
/* A pack stops growing past this many bytes. */
#define STORE_PACK_MAX (64u << 20)

struct store_packs;

/* dirfd: the packs directory, owned by the caller; dir: its path, for
 * messages. */
int store_packs_new(struct store_packs **out, int dirfd, const char *dir);
void store_packs_free(struct store_packs *p);

/* Calls cb for every live record of every pack, oldest pack first; when is
 * the record's write time in ns (plus its page number, so records of one
 * second keep their order); size is the bytes it takes, padding included.
 * cb returns 1 when it keeps the record, 0 when the id is stored elsewhere
 * (the record is killed), or a negative errno to stop; cb may kill records
 * of packs already scanned or of the one being scanned.  Packs left with no
 * live record are deleted.  Gaps (holes, lost writes, damage) are stepped
 * over, as the header comment says. */
typedef int (*store_packs_scan_cb)(void *payload, const blockid_t *id, uint32_t pack,
				   uint64_t off, uint64_t size, int64_t when);
int store_packs_scan(struct store_packs *p, store_packs_scan_cb cb, void *payload);

/* XXH3-64 of a block's bytes seeded with its id's first 8 bytes: the damage
 * check of pack records and of block files' trailers (store.c). */
uint64_t store_block_sum(const blockid_t *id, const void *data, size_t len);

/* Bytes a record of a len-byte block takes in its pack (whole pages). */
uint64_t store_pack_record_size(size_t len);

/* Appends a record; *pack and *off say where it went. */
int store_packs_write(struct store_packs *p, const blockid_t *id, const void *data, size_t len,
		      uint32_t *pack, uint64_t *off);
/* *out is malloc'd.  -EBADMSG when the record is not id's intact block
 * (damaged, torn or killed), -ENOENT when its pack is gone. */
int store_packs_read(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t size,
		     const blockid_t *id, uint8_t **out, size_t *out_len);
/* Kills the record of size bytes at off (best effort on disk: a record
 * left live there is only a copy, found again at the next open). */
void store_packs_kill(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t size);

#endif
