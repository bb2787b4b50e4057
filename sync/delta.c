/* delta: see delta.h.  The base is indexed by the XXH3 of every aligned
 * 16-byte window; the target is scanned at every offset, and a window
 * found in the base is grown both ways as far as the bytes agree.  A
 * manifest after a small change (one or two block entries, the mtime)
 * becomes a handful of copies and a hundred inserted bytes. */
#include "config.h"
#include "sync/delta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define WIN 16

struct out {
	uint8_t *p;
	size_t len, cap, max;
};

static int put(struct out *o, const void *data, size_t n)
{
	if (n > o->max - o->len)
		return -E2BIG;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *p = realloc(o->p, cap);
		if (!p)
			return -ENOMEM;
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, data, n);
	o->len += n;
	return 0;
}

static int put_varint(struct out *o, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	return put(o, b, n);
}

static int put_insert(struct out *o, const uint8_t *data, size_t n)
{
	if (!n)
		return 0;
	int rc = put_varint(o, (uint64_t)n << 1);
	return rc ? rc : put(o, data, n);
}

static int put_copy(struct out *o, size_t off, size_t n)
{
	int rc = put_varint(o, ((uint64_t)n << 1) | 1);
	return rc ? rc : put_varint(o, off);
}

/* Open addressing, offsets + 1 (0: empty). */
struct index {
	uint32_t *slot;
	size_t mask;
};

static int index_build(struct index *ix, const uint8_t *base, size_t len)
{
	size_t n = len / WIN, cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	if (!(ix->slot = calloc(cap, sizeof(*ix->slot))))
		return -ENOMEM;
	ix->mask = cap - 1;
	for (size_t p = 0; p + WIN <= len; p += WIN) {
		size_t k = XXH3_64bits(base + p, WIN) & ix->mask;
		/* A window seen before is not kept twice: a base that repeats
		 * itself (zeros, a block id over and over) would otherwise make
		 * one long probe run, and the scan quadratic. */
		while (ix->slot[k] && memcmp(base + ix->slot[k] - 1, base + p, WIN))
			k = (k + 1) & ix->mask;
		if (!ix->slot[k])
			ix->slot[k] = (uint32_t)(p + 1);
	}
	return 0;
}

/* An offset of base whose window equals at, or -1. */
static long index_find(const struct index *ix, const uint8_t *base, const uint8_t *at)
{
	for (size_t k = XXH3_64bits(at, WIN) & ix->mask; ix->slot[k]; k = (k + 1) & ix->mask)
		if (!memcmp(base + ix->slot[k] - 1, at, WIN))
			return (long)ix->slot[k] - 1;
	return -1;
}

int delta_make(const uint8_t *base, size_t base_len, const uint8_t *target, size_t target_len,
	       size_t max_len, uint8_t **out, size_t *out_len)
{
	if (base_len >= UINT32_MAX || base_len < WIN || target_len < WIN)
		return -E2BIG;
	struct index ix;
	int rc = index_build(&ix, base, base_len);
	if (rc)
		return rc;
	struct out o = { .max = max_len };
	size_t i = 0, lit = 0;
	while (!rc && i + WIN <= target_len) {
		long found = index_find(&ix, base, target + i);
		if (found < 0) {
			i++;
			continue;
		}
		size_t p = (size_t)found, back = 0, end = i + WIN, bend = p + WIN;
		while (i - back > lit && p - back > 0 && target[i - back - 1] == base[p - back - 1])
			back++;
		while (end < target_len && bend < base_len && target[end] == base[bend]) {
			end++;
			bend++;
		}
		rc = put_insert(&o, target + lit, i - back - lit);
		if (!rc)
			rc = put_copy(&o, p - back, end - (i - back));
		i = lit = end;
	}
	if (!rc)
		rc = put_insert(&o, target + lit, target_len - lit);
	free(ix.slot);
	if (rc) {
		free(o.p);
		return rc;
	}
	*out = o.p;
	*out_len = o.len;
	return 0;
}

static int get_varint(const uint8_t *d, size_t len, size_t *pos, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return -EBADMSG;
		uint8_t b = d[(*pos)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EBADMSG;
}

/* Walks the delta; with dst, writes the result there.  The total length, or
 * -EBADMSG. */
static int walk(const uint8_t *base, size_t base_len, const uint8_t *d, size_t len,
		size_t max_len, uint8_t *dst, size_t *total)
{
	size_t pos = 0, n = 0;
	while (pos < len) {
		uint64_t v, off;
		if (get_varint(d, len, &pos, &v))
			return -EBADMSG;
		uint64_t count = v >> 1;
		if (!count || count > max_len - n)
			return -EBADMSG;
		if (v & 1) {
			if (get_varint(d, len, &pos, &off) || off > base_len || count > base_len - off)
				return -EBADMSG;
			if (dst)
				memcpy(dst + n, base + off, count);
		} else {
			if (count > len - pos)
				return -EBADMSG;
			if (dst)
				memcpy(dst + n, d + pos, count);
			pos += count;
		}
		n += count;
	}
	*total = n;
	return 0;
}

int delta_apply(const uint8_t *base, size_t base_len, const uint8_t *delta, size_t delta_len,
		size_t max_len, uint8_t **out, size_t *out_len)
{
	size_t n;
	if (walk(base, base_len, delta, delta_len, max_len, NULL, &n))
		return -EBADMSG;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	walk(base, base_len, delta, delta_len, max_len, buf, &n);
	*out = buf;
	*out_len = n;
	return 0;
}
