/* delta: one byte string described as copies from another plus inserted
 * bytes, so that a new version of an object (a big file's manifest after a
 * small change) goes to the cloud as the few bytes that changed.
 *
 * A delta is a sequence of operations, each a LEB128 varint v:
 *   v odd:  copy v >> 1 bytes from the base at the offset that follows
 *           (another varint);
 *   v even: insert the v >> 1 bytes that follow.
 * Nothing else: the result's length is the sum of the operations. */
#ifndef PEERCLING_DELTA_H
#define PEERCLING_DELTA_H

#include <stddef.h>
#include <stdint.h>

/* The delta turning base into target, *out malloc'd.  -E2BIG when it would
 * not be smaller than max_len (not worth it), -ENOMEM. */
int delta_make(const uint8_t *base, size_t base_len, const uint8_t *target, size_t target_len,
	       size_t max_len, uint8_t **out, size_t *out_len);

/* Applies a delta to base, *out malloc'd.  -EBADMSG when the delta is
 * malformed (truncated, a copy outside base, a result over max_len). */
int delta_apply(const uint8_t *base, size_t base_len, const uint8_t *delta, size_t delta_len,
		size_t max_len, uint8_t **out, size_t *out_len);

#endif
