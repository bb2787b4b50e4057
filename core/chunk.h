/* chunk: content-defined chunking (FastCDC with normalized chunking).
 *
 * The same bytes always cut at the same places, on any machine and in any
 * run: the gear table is a fixed constant, not generated at start-up.  A cut
 * depends only on the bytes since the previous cut, so an edit in the middle
 * of a file changes only the chunk(s) around it; everything after the next
 * cut point that survives the edit is identical.
 *
 * Sizes (measured, see doc/chunking.md): min 16 KiB, average 64 KiB,
 * max 256 KiB.  Cut-point skipping makes the real average about 75 KiB. */
#ifndef PEERCLING_CHUNK_H
#define PEERCLING_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_MIN (16u * 1024)
#define CHUNK_AVG (64u * 1024)
#define CHUNK_MAX (256u * 1024)

/* Length of the chunk that starts at data.  data holds len bytes; the caller
 * passes at least CHUNK_MAX bytes unless the data ends within them (then the
 * whole rest may become the last chunk).  Returns a value in [1, len] for
 * len > 0, and 0 for len == 0. */
size_t chunk_next(const uint8_t *data, size_t len);

#endif
