/* manifest: owns the encoding, decoding and reading of one file's manifest
 * (the format is in core/manifest.h).
 *
 * The decoder is a trust boundary: manifests arrive from the cloud and from
 * peers, so it checks every length against the bytes left and every limit
 * before it allocates, and it accepts exactly one encoding per manifest.
 * Canonical bytes keep blob ids stable, so two devices that see the same
 * file write the same git object and merges see no change.
 *
 * Reads find their first block by binary search over offsets[], a prefix
 * sum kept by manifest_add_block: a 4 GiB file has ~65,000 blocks, and a
 * linear scan per read would dominate sequential reads of large files.  The
 * manifest is never written by a read, so concurrent readers share it. */
#include "config.h"
#include "core/manifest.h"

#define LOG_MODULE "manifest"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"

#define MANIFEST_MAGIC "PCMF"
#define MANIFEST_FLAG_INLINE 0x01u
#define NSEC_PER_SEC 1000000000u
/* magic, version, flags, reserved, mode, mtime_sec, mtime_nsec, size */
#define HEADER_SIZE (4 + 1 + 1 + 2 + 4 + 8 + 4 + 8 + 4 + 8)
#define BLOCK_ENTRY_SIZE (BLOCKID_SIZE + 4)
/* u16 name_len, at least one name byte, u32 value_len */
#define XATTR_MIN_SIZE (2 + 1 + 4)

/* ---- memory ------------------------------------------------------------ */

struct manifest *manifest_new(void)
{
	return calloc(1, sizeof(struct manifest));
}

static void xattrs_free(struct manifest_xattr *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	xattrs_free(m->xattrs, m->nxattrs);
	free(m->blocks);
	free(m->offsets);
	free(m->inline_data);
	free(m);
}

/* Fills offsets[] from blocks[]: for a manifest whose blocks were set
 * without manifest_add_block before the first call to it. */
static void offsets_rebuild(struct manifest *m)
{
	uint64_t at = 0;
	for (size_t i = 0; i < m->nblocks; i++) {
		m->offsets[i] = at;
		at += m->blocks[i].len;
	}
}

static int blocks_reserve(struct manifest *m, size_t want)
{
	if (want <= m->blocks_cap && m->offsets)
		return 0;
	size_t cap = m->blocks_cap > 16 ? m->blocks_cap : 16;
	while (cap < want) {
		if (cap > SIZE_MAX / 2 / sizeof(struct manifest_block))
			return error_set(-ENOMEM, "manifest: too many blocks");
		cap *= 2;
	}
	/* Grow blocks first: if offsets then fails, blocks is merely larger
	 * than blocks_cap says, which is harmless. */
	struct manifest_block *b = reallocarray(m->blocks, cap, sizeof(*b));
	if (!b)
		return error_set(-ENOMEM, "manifest: out of memory");
	m->blocks = b;
	int had_offsets = m->offsets != NULL;
	uint64_t *o = reallocarray(m->offsets, cap, sizeof(*o));
	if (!o)
		return error_set(-ENOMEM, "manifest: out of memory");
	m->offsets = o;
	m->blocks_cap = cap;
	if (!had_offsets)
		offsets_rebuild(m);
	return 0;
}

int manifest_add_block(struct manifest *m, const blockid_t *id, uint32_t len)
{
	if (m->is_inline)
		return error_set(-EINVAL, "manifest: an inline manifest has no blocks");
	if (len == 0)
		return error_set(-EINVAL, "manifest: a block cannot be empty");
	if (len > UINT64_MAX - m->size)
		return error_set(-EFBIG, "manifest: file too large");
	int rc = blocks_reserve(m, m->nblocks + 1);
	if (rc)
		return rc;
	size_t n = m->nblocks;
	if (id)
		m->blocks[n].id = *id;
	else
		memset(&m->blocks[n].id, 0, sizeof(m->blocks[n].id));
	m->blocks[n].len = len;
	m->offsets[n] = n ? m->offsets[n - 1] + m->blocks[n - 1].len : 0;
	m->nblocks++;
	m->size += len;
	return 0;
}

static void *memdup(const void *p, size_t len)
{
	/* Never malloc(0): a NULL result must mean out of memory. */
	void *q = malloc(len ? len : 1);
	if (q && len)
		memcpy(q, p, len);
	return q;
}

static int xattrs_copy(struct manifest *dst, const struct manifest *src)
{
	if (!src->nxattrs)
		return 0;
	dst->xattrs = calloc(src->nxattrs, sizeof(*dst->xattrs));
	if (!dst->xattrs)
		return -ENOMEM;
	for (size_t i = 0; i < src->nxattrs; i++) {
		struct manifest_xattr *x = &dst->xattrs[i];
		x->name = strdup(src->xattrs[i].name);
		x->value = memdup(src->xattrs[i].value, src->xattrs[i].len);
		x->len = src->xattrs[i].len;
		dst->nxattrs = i + 1;
		if (!x->name || !x->value)
			return -ENOMEM;
	}
	return 0;
}

static int blocks_copy(struct manifest *dst, const struct manifest *src)
{
	if (!src->nblocks)
		return 0;
	dst->blocks = reallocarray(NULL, src->nblocks, sizeof(*dst->blocks));
	dst->offsets = reallocarray(NULL, src->nblocks, sizeof(*dst->offsets));
	if (!dst->blocks || !dst->offsets)
		return -ENOMEM;
	memcpy(dst->blocks, src->blocks, src->nblocks * sizeof(*dst->blocks));
	dst->nblocks = dst->blocks_cap = src->nblocks;
	offsets_rebuild(dst);
	return 0;
}

struct manifest *manifest_dup(const struct manifest *m)
{
	struct manifest *d = manifest_new();
	if (!d)
		return NULL;
	d->mode = m->mode;
	d->mtime_sec = m->mtime_sec;
	d->mtime_nsec = m->mtime_nsec;
	d->size = m->size;
	d->is_inline = m->is_inline;
	if (m->is_inline && m->inline_data) {
		d->inline_data = memdup(m->inline_data, m->size);
		if (!d->inline_data)
			goto fail;
	}
	if (blocks_copy(d, m) || xattrs_copy(d, m))
		goto fail;
	return d;
fail:
	manifest_free(d);
	error_set(-ENOMEM, "manifest: out of memory");
	return NULL;
}

/* ---- xattrs ------------------------------------------------------------ */

/* Index of name, or where it would go; *found says which. */
static size_t xattr_pos(const struct manifest *m, const char *name, int *found)
{
	size_t lo = 0, hi = m->nxattrs;
	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->xattrs[mid].name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct manifest_xattr *manifest_xattr_get(const struct manifest *m, const char *name)
{
	int found;
	size_t i = xattr_pos(m, name, &found);
	return found ? &m->xattrs[i] : NULL;
}

/* The errnos are what setxattr(2) callers expect for these limits. */
static int xattr_check(const char *name, size_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0)
		return error_set(-EINVAL, "extended attribute name is empty");
	if (nlen > MANIFEST_XATTR_NAME_MAX)
		return error_set(-ERANGE, "extended attribute name is longer than %d bytes",
				 MANIFEST_XATTR_NAME_MAX);
	if (len > MANIFEST_XATTR_VALUE_MAX)
		return error_set(-E2BIG, "extended attribute value is larger than %d bytes",
				 MANIFEST_XATTR_VALUE_MAX);
	return 0;
}

static int xattr_insert(struct manifest *m, size_t at, const char *name, uint8_t *value, size_t len)
{
	char *n = strdup(name);
	struct manifest_xattr *x = reallocarray(m->xattrs, m->nxattrs + 1, sizeof(*x));
	if (x)
		m->xattrs = x;
	if (!n || !x) {
		free(n);
		return error_set(-ENOMEM, "manifest: out of memory");
	}
	memmove(&x[at + 1], &x[at], (m->nxattrs - at) * sizeof(*x));
	x[at] = (struct manifest_xattr){.name = n, .value = value, .len = len};
	m->nxattrs++;
	return 0;
}

int manifest_xattr_set(struct manifest *m, const char *name, const void *val, size_t len)
{
	int rc = xattr_check(name, len);
	if (rc)
		return rc;
	uint8_t *v = memdup(val, len);
	if (!v)
		return error_set(-ENOMEM, "manifest: out of memory");
	int found;
	size_t i = xattr_pos(m, name, &found);
	if (!found) {
		rc = xattr_insert(m, i, name, v, len);
		if (rc)
			free(v);
		return rc;
	}
	free(m->xattrs[i].value);
	m->xattrs[i].value = v;
	m->xattrs[i].len = len;
	return 0;
}

int manifest_xattr_remove(struct manifest *m, const char *name)
{
	int found;
	size_t i = xattr_pos(m, name, &found);
	if (!found)
		return -ENODATA;
	free(m->xattrs[i].name);
	free(m->xattrs[i].value);
	memmove(&m->xattrs[i], &m->xattrs[i + 1], (m->nxattrs - i - 1) * sizeof(*m->xattrs));
	m->nxattrs--;
	return 0;
}

/* ---- encode -------------------------------------------------------------- */

static int check_blocks(const struct manifest *m)
{
	if (m->nblocks > UINT32_MAX)
		return error_set(-EINVAL, "manifest: too many blocks");
	uint64_t sum = 0;
	for (size_t i = 0; i < m->nblocks; i++) {
		uint32_t len = m->blocks[i].len;
		if (len == 0)
			return error_set(-EINVAL, "manifest: block %zu is empty", i);
		if (len > m->size - sum)
			return error_set(-EINVAL, "manifest: blocks exceed the file size");
		sum += len;
	}
	if (sum != m->size)
		return error_set(-EINVAL, "manifest: blocks sum to %llu bytes, size is %llu",
				 (unsigned long long)sum, (unsigned long long)m->size);
	return 0;
}

static int check_xattrs(const struct manifest *m)
{
	if (m->nxattrs > UINT32_MAX)
		return error_set(-EINVAL, "manifest: too many extended attributes");
	for (size_t i = 0; i < m->nxattrs; i++) {
		const struct manifest_xattr *x = &m->xattrs[i];
		int rc = xattr_check(x->name, x->len);
		if (rc)
			return -EINVAL;
		if (x->len && !x->value)
			return error_set(-EINVAL, "manifest: xattr %s has no value", x->name);
		if (i && strcmp(m->xattrs[i - 1].name, x->name) >= 0)
			return error_set(-EINVAL, "manifest: xattrs not sorted or duplicated");
	}
	return 0;
}

/* The rules decode enforces, checked before encoding so that anything
 * written can be read back. */
static int check(const struct manifest *m)
{
	if (m->mtime_nsec >= NSEC_PER_SEC)
		return error_set(-EINVAL, "manifest: mtime nanoseconds out of range");
	int rc = check_xattrs(m);
	if (rc)
		return rc;
	if (!m->is_inline)
		return check_blocks(m);
	if (m->size > MANIFEST_INLINE_MAX)
		return error_set(-EINVAL, "manifest: inline data larger than %d bytes",
				 MANIFEST_INLINE_MAX);
	if (m->nblocks)
		return error_set(-EINVAL, "manifest: inline manifest with blocks");
	if (m->size && !m->inline_data)
		return error_set(-EINVAL, "manifest: inline manifest without data");
	return 0;
}

static size_t encoded_size(const struct manifest *m)
{
	size_t n = HEADER_SIZE + 4;
	for (size_t i = 0; i < m->nxattrs; i++)
		n += 2 + strlen(m->xattrs[i].name) + 4 + m->xattrs[i].len;
	n += 4;
	if (m->is_inline)
		n += m->size;
	else
		n += m->nblocks * BLOCK_ENTRY_SIZE;
	return n;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, int nbytes)
{
	for (int i = 0; i < nbytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + nbytes;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t len)
{
	if (len)
		memcpy(p, src, len);
	return p + len;
}

static uint8_t *put_header(uint8_t *p, const struct manifest *m)
{
	p = put_bytes(p, MANIFEST_MAGIC, 4);
	p = put_le(p, MANIFEST_VERSION, 1);
	p = put_le(p, m->is_inline ? MANIFEST_FLAG_INLINE : 0, 1);
	p = put_le(p, 0, 2);
	p = put_le(p, m->mode, 4);
	p = put_le(p, (uint64_t)m->mtime_sec, 8);
	p = put_le(p, m->mtime_nsec, 4);
	p = put_le(p, (uint64_t)m->atime_sec, 8);
	p = put_le(p, m->atime_nsec, 4);
	return put_le(p, m->size, 8);
}

static uint8_t *put_body(uint8_t *p, const struct manifest *m)
{
	p = put_le(p, m->nxattrs, 4);
	for (size_t i = 0; i < m->nxattrs; i++) {
		const struct manifest_xattr *x = &m->xattrs[i];
		size_t nlen = strlen(x->name);
		p = put_le(p, nlen, 2);
		p = put_bytes(p, x->name, nlen);
		p = put_le(p, x->len, 4);
		p = put_bytes(p, x->value, x->len);
	}
	if (m->is_inline) {
		p = put_le(p, m->size, 4);
		return put_bytes(p, m->inline_data, m->size);
	}
	p = put_le(p, m->nblocks, 4);
	for (size_t i = 0; i < m->nblocks; i++) {
		p = put_bytes(p, m->blocks[i].id.b, BLOCKID_SIZE);
		p = put_le(p, m->blocks[i].len, 4);
	}
	return p;
}

int manifest_encode(const struct manifest *m, uint8_t **out, size_t *out_len)
{
	int rc = check(m);
	if (rc)
		return rc;
	size_t n = encoded_size(m);
	uint8_t *buf = malloc(n);
	if (!buf)
		return error_set(-ENOMEM, "manifest: out of memory");
	uint8_t *end = put_body(put_header(buf, m), m);
	if ((size_t)(end - buf) != n) {
		/* A bug here would write a manifest nobody can read: refuse. */
		free(buf);
		log_error("encoded %zu bytes, expected %zu", (size_t)(end - buf), n);
		return error_set(-EIO, "manifest: internal encoding error");
	}
	*out = buf;
	*out_len = n;
	return 0;
}

/* ---- decode ---------------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t left, total;
};

/* Every rejection goes through here, so that each says where it happened. */
static int bad(const struct reader *r, const char *why)
{
	return error_set(-EINVAL, "corrupt manifest: %s (at byte %zu of %zu)", why,
			 r->total - r->left, r->total);
}

static int take(struct reader *r, size_t n, const uint8_t **out)
{
	*out = NULL; /* never read on failure, but gcc -O2 cannot see that */
	if (r->left < n)
		return bad(r, "truncated");
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int get_le(struct reader *r, int nbytes, uint64_t *v)
{
	const uint8_t *p;
	int rc = take(r, (size_t)nbytes, &p);
	if (rc)
		return rc;
	*v = 0;
	for (int i = 0; i < nbytes; i++)
		*v |= (uint64_t)p[i] << (8 * i);
	return 0;
}

static int get_header(struct reader *r, struct manifest *m)
{
	const uint8_t *magic;
	uint64_t version, flags, reserved, mode, sec, nsec, asec, ansec, size;
	if (take(r, 4, &magic))
		return -EINVAL;
	if (memcmp(magic, MANIFEST_MAGIC, 4) != 0)
		return bad(r, "not a manifest (wrong magic)");
	if (get_le(r, 1, &version) || get_le(r, 1, &flags) || get_le(r, 2, &reserved))
		return -EINVAL;
	if (version != MANIFEST_VERSION)
		return bad(r, "unknown version (made by a newer peercling?)");
	if (flags & ~(uint64_t)MANIFEST_FLAG_INLINE)
		return bad(r, "unknown flags");
	if (reserved != 0)
		return bad(r, "reserved field is not zero");
	if (get_le(r, 4, &mode) || get_le(r, 8, &sec) || get_le(r, 4, &nsec) ||
	    get_le(r, 8, &asec) || get_le(r, 4, &ansec) || get_le(r, 8, &size))
		return -EINVAL;
	if (nsec >= NSEC_PER_SEC)
		return bad(r, "mtime nanoseconds out of range");
	if (ansec >= NSEC_PER_SEC)
		return bad(r, "atime nanoseconds out of range");
	m->atime_sec = (int64_t)asec;
	m->atime_nsec = (uint32_t)ansec;
	m->is_inline = (flags & MANIFEST_FLAG_INLINE) != 0;
	m->mode = (uint32_t)mode;
	m->mtime_sec = (int64_t)sec;
	m->mtime_nsec = (uint32_t)nsec;
	m->size = size;
	return 0;
}

static int get_xattr(struct reader *r, struct manifest *m)
{
	uint64_t nlen, vlen;
	const uint8_t *name, *value;
	if (get_le(r, 2, &nlen))
		return -EINVAL;
	if (nlen == 0)
		return bad(r, "empty xattr name");
	if (nlen > MANIFEST_XATTR_NAME_MAX)
		return bad(r, "xattr name too long");
	if (take(r, nlen, &name))
		return -EINVAL;
	if (memchr(name, '\0', nlen))
		return bad(r, "NUL in xattr name");
	if (get_le(r, 4, &vlen))
		return -EINVAL;
	if (vlen > MANIFEST_XATTR_VALUE_MAX)
		return bad(r, "xattr value too large");
	if (take(r, vlen, &value))
		return -EINVAL;
	struct manifest_xattr *x = &m->xattrs[m->nxattrs];
	x->name = strndup((const char *)name, nlen);
	x->value = memdup(value, vlen);
	x->len = vlen;
	m->nxattrs++; /* now owned by m, freed with it even on failure */
	if (!x->name || !x->value)
		return error_set(-ENOMEM, "manifest: out of memory");
	if (m->nxattrs > 1 && strcmp(m->xattrs[m->nxattrs - 2].name, x->name) >= 0)
		return bad(r, "xattrs not sorted or duplicated");
	return 0;
}

static int get_xattrs(struct reader *r, struct manifest *m)
{
	uint64_t n;
	if (get_le(r, 4, &n))
		return -EINVAL;
	/* Bound the allocation by what the buffer can hold. */
	if (n > r->left / XATTR_MIN_SIZE)
		return bad(r, "xattr count exceeds the data");
	if (n == 0)
		return 0;
	m->xattrs = calloc(n, sizeof(*m->xattrs));
	if (!m->xattrs)
		return error_set(-ENOMEM, "manifest: out of memory");
	for (uint64_t i = 0; i < n; i++) {
		int rc = get_xattr(r, m);
		if (rc)
			return rc;
	}
	return 0;
}

static int get_inline(struct reader *r, struct manifest *m)
{
	uint64_t len;
	const uint8_t *data;
	if (get_le(r, 4, &len))
		return -EINVAL;
	if (len != m->size)
		return bad(r, "inline length differs from size");
	if (len > MANIFEST_INLINE_MAX)
		return bad(r, "inline data too large");
	if (take(r, len, &data))
		return -EINVAL;
	m->inline_data = memdup(data, len);
	if (!m->inline_data)
		return error_set(-ENOMEM, "manifest: out of memory");
	return 0;
}

static int get_blocks(struct reader *r, struct manifest *m)
{
	uint64_t n, size = m->size;
	if (get_le(r, 4, &n))
		return -EINVAL;
	if (n > r->left / BLOCK_ENTRY_SIZE)
		return bad(r, "block count exceeds the data");
	if (n && blocks_reserve(m, n))
		return -ENOMEM;
	m->size = 0; /* manifest_add_block adds it back up */
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *id;
		uint64_t len;
		if (take(r, BLOCKID_SIZE, &id) || get_le(r, 4, &len))
			return -EINVAL;
		if (len == 0)
			return bad(r, "empty block");
		if (len > size - m->size)
			return bad(r, "blocks exceed the file size");
		blockid_t bid;
		memcpy(bid.b, id, BLOCKID_SIZE);
		if (manifest_add_block(m, &bid, (uint32_t)len))
			return -ENOMEM;
	}
	if (m->size != size)
		return bad(r, "blocks do not add up to the file size");
	return 0;
}

int manifest_decode(struct manifest **out, const void *buf, size_t len)
{
	struct reader r = {.p = buf, .left = len, .total = len};
	struct manifest *m = manifest_new();
	if (!m)
		return error_set(-ENOMEM, "manifest: out of memory");
	int rc = get_header(&r, m);
	if (!rc)
		rc = get_xattrs(&r, m);
	if (!rc)
		rc = m->is_inline ? get_inline(&r, m) : get_blocks(&r, m);
	if (!rc && r.left)
		rc = bad(&r, "trailing bytes");
	if (rc) {
		manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* ---- read ------------------------------------------------------------------ */

size_t manifest_find(const struct manifest *m, uint64_t off, uint64_t *block_start)
{
	size_t i = 0;
	uint64_t start = 0;
	if (off >= m->size || m->nblocks == 0) {
		i = m->nblocks;
		start = m->size;
	} else if (m->offsets) {
		/* The last block starting at or before off. */
		size_t lo = 0, hi = m->nblocks - 1;
		while (lo < hi) {
			size_t mid = lo + (hi - lo + 1) / 2;
			if (m->offsets[mid] <= off)
				lo = mid;
			else
				hi = mid - 1;
		}
		i = lo;
		start = m->offsets[lo];
	} else {
		/* Blocks set by hand: correct, only slower. */
		while (i + 1 < m->nblocks && off - start >= m->blocks[i].len)
			start += m->blocks[i++].len;
	}
	if (block_start)
		*block_start = start;
	return i;
}

/* Copies n bytes at in of block b to dst; a hole is zeros and is never
 * fetched. */
static int copy_block(struct fetch *f, const struct manifest_block *b, uint64_t in, uint8_t *dst,
		      size_t n)
{
	if (blockid_is_zero(&b->id)) {
		memset(dst, 0, n);
		return 0;
	}
	uint8_t *data;
	size_t dlen;
	int rc = block_get(f, &b->id, 0, &data, &dlen);
	if (rc < 0)
		return rc;
	if (dlen != b->len) {
		char hex[BLOCKID_HEX_SIZE];
		blockid_to_hex(&b->id, hex);
		free(data);
		return error_set(-EIO, "block %s has %zu bytes, its manifest says %u", hex, dlen,
				 b->len);
	}
	memcpy(dst, data + in, n);
	free(data);
	return 0;
}

static long read_blocks(const struct manifest *m, struct fetch *f, uint64_t off, uint8_t *buf,
			size_t len)
{
	uint64_t start;
	size_t i = manifest_find(m, off, &start);
	size_t done = 0;
	while (done < len) {
		/* Only a manifest built by hand can fail these. */
		if (i >= m->nblocks || off + done - start >= m->blocks[i].len)
			return error_set(-EIO, "manifest: blocks end before the file size");
		const struct manifest_block *b = &m->blocks[i];
		uint64_t in = off + done - start;
		size_t n = b->len - in < len - done ? (size_t)(b->len - in) : len - done;
		int rc = copy_block(f, b, in, buf + done, n);
		if (rc)
			return rc;
		done += n;
		start += b->len;
		i++;
	}
	return (long)done;
}

long manifest_read(const struct manifest *m, struct fetch *f, uint64_t off, void *buf, size_t len)
{
	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = (size_t)(m->size - off);
	if (len > LONG_MAX)
		len = LONG_MAX;
	if (!m->is_inline)
		return read_blocks(m, f, off, buf, len);
	if (!m->inline_data)
		return error_set(-EIO, "manifest: inline manifest without data");
	memcpy(buf, m->inline_data + off, len);
	return (long)len;
}
