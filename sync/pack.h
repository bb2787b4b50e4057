/* pack: where blocks live inside the cloud's packs.
 *
 * A cloud request costs far more than the bytes of one 64 KiB block (Apache
 * spends more on a GET than on the data; S3 charges by request and adds tens
 * of milliseconds each), so blocks go up many at a time: a pack is one
 * immutable object holding blocks one after the other, each sealed on its
 * own, so that any run of them can be read with one ranged GET.  Its index
 * (an object of its own, written after the pack and before any head that
 * needs it) lists each block's id, offset and sealed length.
 *
 *   packs/XX/NAME   sealed block | sealed block | ...
 *   index/NAME      sealed index body (below); NAME: 32 random hex digits
 *
 * Index body, little-endian: "PCx1" | u32 count | count x (32-byte block
 * id | u64 offset | u32 sealed length), sorted by offset, without gaps or
 * overlaps.
 *
 * A pack_set is every index this device knows, kept in memory for lookups
 * (about 60 bytes a block: 1 GiB of 64 KiB blocks costs 1 MiB) and on disk
 * (STATE/packs/NAME, the opened bodies) so that a restart lists nothing it
 * already has.  Thread-safe. */
#ifndef PEERCLING_PACK_H
#define PEERCLING_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

#define PACK_NAME_SIZE 33 /* 32 hex digits and a NUL */
#define PACK_INDEX_MAGIC "PCx1"
#define PACK_INDEX_HEAD 8
#define PACK_INDEX_ENTRY (BLOCKID_SIZE + 8 + 4)
#define PACK_MAX_ENTRIES 65536

struct pack_entry {
	blockid_t id;
	uint64_t off;
	uint32_t len; /* sealed */
};

/* Where one block is: entry pos of pack (a number inside the set). */
struct pack_loc {
	uint32_t pack;
	uint32_t pos;
	struct pack_entry e;
};

struct pack_set;

/* cache_dir: where opened index bodies are kept (made if missing), or NULL
 * for memory only.  What is there is loaded now; a damaged file is
 * dropped (it comes again from the cloud). */
int pack_set_new(struct pack_set **out, const char *cache_dir);
void pack_set_free(struct pack_set *s);

/* 1 when known, 0 when not. */
int pack_set_has(struct pack_set *s, const char *name);
/* Adds the pack NAME with its index BODY (checked first: -EBADMSG when
 * malformed) and keeps the body in the cache directory. */
int pack_set_add(struct pack_set *s, const char *name, const uint8_t *body, size_t len);
/* 1 with *out filled, or 0 when no known pack holds id. */
int pack_find(struct pack_set *s, const blockid_t *id, struct pack_loc *out);
/* Entry pos of pack number pack; 1, or 0 past its end. */
int pack_entry_at(struct pack_set *s, uint32_t pack, uint32_t pos, struct pack_entry *out);
/* The name of pack number pack (PACK_NAME_SIZE bytes). */
void pack_name(struct pack_set *s, uint32_t pack, char out[PACK_NAME_SIZE]);
size_t pack_set_count(struct pack_set *s);

/* The index body of n entries; *out malloc'd. */
int pack_index_encode(const struct pack_entry *e, size_t n, uint8_t **out, size_t *len);
/* -EBADMSG (with a message) unless body is a well-formed index whose
 * entries are each at most max_len sealed bytes; *out malloc'd. */
int pack_index_decode(const uint8_t *body, size_t len, uint32_t max_len, struct pack_entry **out,
		      size_t *n);
/* A fresh random pack name. */
void pack_new_name(char out[PACK_NAME_SIZE]);

#endif
