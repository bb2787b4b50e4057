/* prefetch: readahead for files read in order, and for files read all
 * over (fs.c's WHOLE_AFTER).  When a read of a file continues an earlier
 * one (fs.c's read_ahead), the next blocks are fetched in the background
 * (a few at a time, in parallel) into the local store and the read cache,
 * so that a cold sequential read from the cloud waits for one round trip
 * per window rather than per block. */
#ifndef PEERCLING_FS_PREFETCH_H
#define PEERCLING_FS_PREFETCH_H

#include "core/blockid.h"

struct fetch;
struct fs_bcache;
struct fs_prefetch;

/* Fetched blocks also go into cache (the read path's block cache). */
int fs_prefetch_new(struct fs_prefetch **out, struct fetch *f, struct fs_bcache *cache,
		    int threads);
void fs_prefetch_free(struct fs_prefetch *p);
/* Besides the fetch flags of core/fetch.h: a reader is right behind, so
 * put the blocks in the read cache, and with FETCH_SEQUENTIAL read those
 * already stored into it too. */
#define FS_PREFETCH_MEMORY 0x100

/* Queues ids that are not in the store yet (see FS_PREFETCH_MEMORY); flags:
 * FETCH_SEQUENTIAL when they come from a sequential read (windows).  Stops
 * when the queue is full (readahead is a hint, never a promise) and returns
 * how many of ids it went through. */
size_t fs_prefetch_queue(struct fs_prefetch *p, const blockid_t *ids, size_t n, int flags);

/* Fetches ids (the blocks of a file of size bytes, in order; copied) into
 * the store whenever the queue above is empty, in windows, skipping what
 * is stored already, with at most half of the threads; gives up after a
 * few failures in a row.  0, -ENOMEM, or -EBUSY when the files waiting
 * already are too many (8) or would come to more than max_bytes with this
 * one (try again later). */
int fs_prefetch_whole(struct fs_prefetch *p, const blockid_t *ids, size_t n, uint64_t bytes,
		      uint64_t max_bytes);

#endif
