/* fetch: the fetch chain.  block_get() is the one way anything reads a block:
 * the local store first, then each registered source in order (LAN peers,
 * then the cloud).  Every block from a source is verified against its id;
 * a bad one is dropped and the next source tried; a good one is kept in the
 * store.  Core knows sources only as this struct of function pointers, so it
 * never includes peers/ or sync/. */
#ifndef PEERCLING_FETCH_H
#define PEERCLING_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/blockid.h"

struct store;

struct fetch_source {
	const char *name;
	/* *out malloc'd; 0, -ENOENT (does not have it) or another -errno.
	 * -EAGAIN: the source brought it along with others and put it into
	 * the store itself (checked there); block_get() looks there.  With
	 * FETCH_NO_WAIT, -EINPROGRESS: it is on its way already. */
	int (*get)(void *payload, const blockid_t *id, int flags, uint8_t **out, size_t *out_len);
	void *payload;
};

#define FETCH_MAX_SOURCES 4
/* A readahead: never wait for a fetch already under way. */
#define FETCH_NO_WAIT 1
/* Part of a sequential read: the blocks after it will be wanted too, so a
 * source may bring them along. */
#define FETCH_SEQUENTIAL 2
/* Nobody is about to read it (a whole file fetched in the background): the
 * blocks a source brings along go to the store only, not to the sink. */
#define FETCH_BACKGROUND 4
/* Bring nothing along, however it looks: a read in the mount that
 * continues none before it.  That the block before this one is here (the
 * same read just fetched it, or an earlier scattered read did) says
 * nothing of what comes next. */
#define FETCH_ALONE 8

struct fetch;

int fetch_new(struct fetch **out, struct store *store);
void fetch_free(struct fetch *f);
int fetch_add_source(struct fetch *f, const struct fetch_source *src);
struct store *fetch_store_borrow(struct fetch *f);

/* Where the blocks a source brings along unasked go once they are checked
 * and stored (the mount's in-memory block cache: a sequential reader then
 * finds them in memory instead of reading each back from its file).  The
 * sink owns data.  NULL fn: none.  Set it before any fetch runs, clear it
 * only once none can. */
typedef void (*fetch_sink_fn)(void *ctx, const blockid_t *id, uint8_t *data, size_t len);
void fetch_set_sink(struct fetch *f, fetch_sink_fn fn, void *ctx);
/* A source hands over a block it received besides the one asked for:
 * checked against id and stored, then given to the sink (or freed; always
 * freed with FETCH_BACKGROUND among flags, those of the fetch that brought
 * it).  Takes ownership of data.  0, -EBADMSG (not that block: dropped) or
 * the store's error (the sink still gets the good data). */
int block_deliver(struct fetch *f, const blockid_t *id, uint8_t *data, size_t len, int flags);

/* *out malloc'd; flags: 0 or FETCH_ALONE.  -EIO when no source has a good
 * copy (error_last() says which sources were tried and why they failed). */
int block_get(struct fetch *f, const blockid_t *id, int flags, uint8_t **out, size_t *out_len);
/* The same for readahead: -EINPROGRESS at once when the block is already
 * being fetched (by another reader, or along with other blocks), so that
 * the caller goes on to blocks nobody has asked for yet. */
int block_prefetch(struct fetch *f, const blockid_t *id, int flags, uint8_t **out,
		   size_t *out_len);

#endif
