/* store: the local block cache (contract in store.h).  This file owns the
 * on-disk layout of the blocks directory, the in-memory accounting (a hash
 * table of entries, the LRU list, the dirty list) and store.log, the
 * append-only record of pin counts and of the dirty set.
 *
 * Layout under the blocks directory:
 *   XX/<64 hex>  one file per block: the plain bytes, then a 16-byte trailer
 *                (see "block files" below); XX is the first byte of the id,
 *                so no directory holds more than 1/256 of the blocks (made
 *                on first use)
 *   tmp/         temp files, renamed into place; emptied at open
 *   corrupt/     blocks that failed verification, kept for a human to look at
 *   store.log    fixed-size records (see "store.log" below)
 *
 * Locking: one mutex guards the accounting and the store.log appends.  Block
 * file I/O (read, hash, write, fsync, unlink, rename) runs outside it.  An
 * entry's state says which file I/O is in flight for its id: WRITING (a put
 * is creating the file), PRESENT, DELETING (an eviction, remove or quarantine
 * is taking the file away).  Puts wait while another thread writes or deletes
 * the same id, so a put never races an unlink of the same name; a reader
 * remembers the entry's generation, so it never quarantines a file that a
 * later put created. */
#include "config.h"

#include "core/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/store_pack.h"
#include "core/le.h"

#define LOG_MODULE "store"

/* ---- lists ------------------------------------------------------------- */

/* Circular, with a sentinel head; an unlinked node points at itself. */
struct link {
	struct link *prev, *next;
};

static void list_init(struct link *l)
{
	l->prev = l->next = l;
}

static int list_linked(const struct link *l)
{
	return l->next != l;
}

static void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

static void list_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/* ---- the store --------------------------------------------------------- */

enum entry_state { E_WRITING, E_PRESENT, E_DELETING };

struct entry {
	blockid_t id;
	uint64_t size;
	uint64_t gen;	    /* tells a re-created entry from the one a reader saw */
	uint64_t dirty_seq; /* store.log sequence number of the dirty mark */
	uint32_t pins;
	uint8_t state, dirty;
	uint8_t packed;		   /* in a cache pack (store_pack.h), not a file of its own */
	uint32_t pack;		   /* when packed: which pack, and where in it */
	uint64_t off;
	int drop_err;		   /* errno of a failed unlink, for the evictor */
	struct entry *hnext;	   /* hash chain */
	struct entry *victim_next; /* an evictor's private list of DELETING entries */
	struct link lru;	   /* linked exactly when evictable */
	struct link dirty_link;	   /* linked exactly when dirty, in dirtying order */
};

#define entry_of(ptr, member) ((struct entry *)((char *)(ptr)-offsetof(struct entry, member)))

struct store {
	char *dir;
	int dirfd, tmpfd, corruptfd, logfd, packfd;
	struct store_packs *packs;
	uint8_t key[BLOCKID_KEY_SIZE];
	pthread_mutex_t lock;
	pthread_cond_t settled;	     /* an entry left WRITING or DELETING */
	pthread_rwlock_t logfd_lock; /* logfd swaps vs fdatasync outside lock */
	struct entry **buckets;
	size_t nbuckets, nentries;
	struct link lru, dirty;
	struct store_stats st;
	uint64_t next_gen;
	uint64_t log_seq, log_synced, log_records;
	int over_warned;
	unsigned tmp_counter;
};

/* "XX/<hex>" plus NUL */
#define BLOCK_REL_SIZE (3 + BLOCKID_HEX_SIZE)

static void block_rel(const blockid_t *id, char rel[BLOCK_REL_SIZE])
{
	char hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(id, hex);
	snprintf(rel, BLOCK_REL_SIZE, "%.2s/%s", hex, hex);
}

static const char *errstr(int err, char *buf, size_t n)
{
	return strerror_r(err < 0 ? -err : err, buf, n);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dirat(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

/* ---- hash table -------------------------------------------------------- */

/* Ids are keyed BLAKE2b output: their first bytes are already uniform. */
static size_t id_hash(const blockid_t *id)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

static struct entry **ht_slot(struct store *s, const blockid_t *id)
{
	struct entry **p = &s->buckets[id_hash(id) & (s->nbuckets - 1)];
	while (*p && memcmp((*p)->id.b, id->b, BLOCKID_SIZE) != 0)
		p = &(*p)->hnext;
	return p;
}

static struct entry *ht_find(struct store *s, const blockid_t *id)
{
	return *ht_slot(s, id);
}

/* A failed grow only makes the chains longer, so it is not an error. */
static void ht_grow(struct store *s)
{
	size_t n = s->nbuckets * 2;
	struct entry **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			e->hnext = nb[id_hash(&e->id) & (n - 1)];
			nb[id_hash(&e->id) & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->nbuckets = n;
}

static void ht_insert(struct store *s, struct entry *e)
{
	if (s->nentries >= s->nbuckets)
		ht_grow(s);
	struct entry **b = &s->buckets[id_hash(&e->id) & (s->nbuckets - 1)];
	e->hnext = *b;
	*b = e;
	s->nentries++;
}

/* Ids are unique in the table, so the slot found is e's. */
static void ht_remove(struct store *s, struct entry *e)
{
	struct entry **p = ht_slot(s, &e->id);
	*p = e->hnext;
	s->nentries--;
}

static struct entry *entry_new(struct store *s, const blockid_t *id, enum entry_state state)
{
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->id = *id;
	e->state = state;
	e->gen = ++s->next_gen;
	list_init(&e->lru);
	list_init(&e->dirty_link);
	ht_insert(s, e);
	return e;
}

static void entry_forget(struct store *s, struct entry *e)
{
	ht_remove(s, e);
	free(e);
	pthread_cond_broadcast(&s->settled);
}

/* ---- accounting (lock held) -------------------------------------------- */

static int evictable(const struct entry *e)
{
	return e->state == E_PRESENT && !e->pins && !e->dirty;
}

/* Keeps e on the LRU list exactly when it may be evicted, so eviction never
 * walks past pinned or dirty blocks.  A block that becomes evictable counts
 * as just used. */
static void relist(struct store *s, struct entry *e)
{
	if (evictable(e) && !list_linked(&e->lru))
		list_add_tail(&s->lru, &e->lru);
	else if (!evictable(e) && list_linked(&e->lru))
		list_del(&e->lru);
}

static void touch(struct store *s, struct entry *e)
{
	if (!list_linked(&e->lru))
		return;
	list_del(&e->lru);
	list_add_tail(&s->lru, &e->lru);
}

static void set_pins(struct store *s, struct entry *e, uint32_t pins)
{
	if (!e->pins && pins) {
		s->st.pinned_blocks++;
		s->st.pinned_bytes += e->size;
	} else if (e->pins && !pins) {
		s->st.pinned_blocks--;
		s->st.pinned_bytes -= e->size;
	}
	e->pins = pins;
	relist(s, e);
}

static void set_dirty(struct store *s, struct entry *e, int dirty)
{
	if (!!dirty == e->dirty)
		return;
	e->dirty = !!dirty;
	if (dirty) {
		list_add_tail(&s->dirty, &e->dirty_link);
		s->st.dirty_blocks++;
		s->st.dirty_bytes += e->size;
	} else {
		list_del(&e->dirty_link);
		s->st.dirty_blocks--;
		s->st.dirty_bytes -= e->size;
	}
	relist(s, e);
}

static void account_add(struct store *s, struct entry *e, uint64_t size)
{
	e->state = E_PRESENT;
	e->size = size;
	s->st.blocks++;
	s->st.bytes += size;
	relist(s, e);
}

/* Takes e out of every count and list; the caller then deals with the file
 * and calls entry_forget (or account_add to undo). */
static void account_drop(struct store *s, struct entry *e)
{
	set_pins(s, e, 0);
	set_dirty(s, e, 0);
	if (list_linked(&e->lru))
		list_del(&e->lru);
	e->state = E_DELETING;
	s->st.blocks--;
	s->st.bytes -= e->size;
}

/* Waits out a put in flight for id, and a deletion too when the caller is
 * about to create the file.  Returns the PRESENT entry or NULL. */
static struct entry *find_settled(struct store *s, const blockid_t *id, int wait_deleting)
{
	for (;;) {
		struct entry *e = ht_find(s, id);
		if (!e || e->state == E_PRESENT)
			return e;
		if (e->state == E_DELETING && !wait_deleting)
			return NULL;
		pthread_cond_wait(&s->settled, &s->lock);
	}
}

/* ---- store.log --------------------------------------------------------- *
 *
 * Records are 44 bytes: op, 3 zero bytes, a little-endian u32 argument, the
 * 32-byte id, and a CRC-32 of the first 40 bytes, so that a torn last record
 * (crash in the middle of an append) is recognised and ignored.  Ops carry
 * the new state rather than a delta, so replaying a record twice is
 * harmless.  The first record is a header carrying the format version. */

#define LOG_NAME "store.log"
#define LOG_TMP_NAME "store.log.new"
#define LOG_REC_SIZE 44
#define LOG_VERSION 1
/* Compact in session once the log holds this many records beyond twice the
 * live ones (plus a share of the table, which a compaction walks). */
#ifndef LOG_COMPACT_SLACK
#define LOG_COMPACT_SLACK 256
#endif

enum { OP_HEADER = 'H', OP_PINS = 'P', OP_DIRTY = 'D', OP_CLEAN = 'C' };

/* A put flag of this file's own, beside store.h's: the block is a copy,
 * appended to a cache pack instead of getting a file. */
#define PUT_PACKED 0x100

static const uint32_t crc_nibble[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

/* CRC-32 (zlib's polynomial), four bits at a time: a table of 16 constants
 * instead of 256 computed ones, fast enough for 44-byte records. */
static uint32_t crc32_buf(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	while (n--) {
		c ^= *p++;
		c = (c >> 4) ^ crc_nibble[c & 15];
		c = (c >> 4) ^ crc_nibble[c & 15];
	}
	return ~c;
}

static void rec_encode(uint8_t *r, int op, uint32_t arg, const blockid_t *id)
{
	memset(r, 0, LOG_REC_SIZE);
	r[0] = (uint8_t)op;
	le_put32(r + 4, arg);
	if (id)
		memcpy(r + 8, id->b, BLOCKID_SIZE);
	le_put32(r + 40, crc32_buf(r, 40));
}

static int rec_valid(const uint8_t *r)
{
	return le_get32(r + 40) == crc32_buf(r, 40);
}

static size_t log_live_records(const struct store *s)
{
	return 1 + s->st.pinned_blocks + s->st.dirty_blocks;
}

/* The compacted log: header, pin counts, then the dirty set in dirtying
 * order (replay rebuilds the dirty list from the order of D records). */
static uint8_t *log_build(struct store *s, size_t *out_n)
{
	size_t n = 0, max = log_live_records(s);
	uint8_t *buf = malloc(max * LOG_REC_SIZE);
	if (!buf)
		return NULL;
	rec_encode(buf + LOG_REC_SIZE * n++, OP_HEADER, LOG_VERSION, NULL);
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct entry *e = s->buckets[i]; e; e = e->hnext)
			if (e->state == E_PRESENT && e->pins)
				rec_encode(buf + LOG_REC_SIZE * n++, OP_PINS, e->pins, &e->id);
	for (struct link *l = s->dirty.next; l != &s->dirty; l = l->next)
		rec_encode(buf + LOG_REC_SIZE * n++, OP_DIRTY, 0, &entry_of(l, dirty_link)->id);
	*out_n = n;
	return buf;
}

static int log_write_new(struct store *s, const uint8_t *buf, size_t n)
{
	int fd = openat(s->tmpfd, LOG_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			0600);
	if (fd < 0)
		return -errno;
	int rc = write_all(fd, buf, n * LOG_REC_SIZE);
	if (!rc && fdatasync(fd) != 0)
		rc = -errno;
	if (!rc && renameat(s->tmpfd, LOG_TMP_NAME, s->dirfd, LOG_NAME) != 0)
		rc = -errno;
	if (!rc && fsync(s->dirfd) != 0)
		rc = -errno;
	if (rc) {
		close(fd);
		unlinkat(s->tmpfd, LOG_TMP_NAME, 0);
		return rc;
	}
	return fd;
}

/* Rewrites store.log with only the live records (atomic: temp, fsync,
 * rename).  In session the descriptor is swapped under logfd_lock, so a
 * thread in log_sync finishes with the old file first; the new file already
 * holds every record durably. */
static int log_compact(struct store *s)
{
	char eb[128];
	size_t n;
	uint8_t *buf = log_build(s, &n);
	if (!buf)
		return error_set(-ENOMEM, "out of memory compacting %s/" LOG_NAME, s->dir);
	int fd = log_write_new(s, buf, n);
	free(buf);
	if (fd < 0)
		return error_set(fd, "cannot rewrite %s/" LOG_NAME ": %s", s->dir,
				 errstr(fd, eb, sizeof(eb)));
	pthread_rwlock_wrlock(&s->logfd_lock);
	if (s->logfd >= 0)
		close(s->logfd);
	s->logfd = fd;
	pthread_rwlock_unlock(&s->logfd_lock);
	s->log_records = n;
	s->log_synced = s->log_seq;
	return 0;
}

static void log_maybe_compact(struct store *s)
{
	size_t live = log_live_records(s);
	if (s->log_records <= LOG_COMPACT_SLACK + 2 * live + s->nentries / 4)
		return;
	if (log_compact(s) != 0)
		log_warn("%s", error_last());
}

/* Lock held, so that records land in the order the memory changed.  A
 * failed append is cut off again: a partial record in the middle would
 * shift every record after it. */
static int log_append(struct store *s, int op, uint32_t arg, const blockid_t *id, uint64_t *seq)
{
	char eb[128];
	uint8_t r[LOG_REC_SIZE];
	rec_encode(r, op, arg, id);
	int rc = write_all(s->logfd, r, sizeof(r));
	if (rc) {
		if (ftruncate(s->logfd, (off_t)(s->log_records * LOG_REC_SIZE)) != 0)
			log_error("cannot cut a failed append off %s/" LOG_NAME, s->dir);
		return error_set(rc, "cannot record a pin or dirty mark in %s/" LOG_NAME ": %s",
				 s->dir, errstr(rc, eb, sizeof(eb)));
	}
	s->log_records++;
	if (seq)
		*seq = ++s->log_seq;
	log_maybe_compact(s);
	return 0;
}

/* Lock not held: makes every record up to seq durable.  Records appended
 * before the sync starts ride along, so concurrent dirty puts share one
 * fdatasync when they overlap. */
static int log_sync(struct store *s, uint64_t seq)
{
	char eb[128];
	pthread_mutex_lock(&s->lock);
	uint64_t target = s->log_seq;
	int done = !seq || s->log_synced >= seq;
	pthread_mutex_unlock(&s->lock);
	if (done)
		return 0;
	pthread_rwlock_rdlock(&s->logfd_lock);
	int rc = fdatasync(s->logfd) == 0 ? 0 : -errno;
	pthread_rwlock_unlock(&s->logfd_lock);
	if (rc)
		return error_set(rc, "cannot flush %s/" LOG_NAME ": %s", s->dir,
				 errstr(rc, eb, sizeof(eb)));
	pthread_mutex_lock(&s->lock);
	if (s->log_synced < target)
		s->log_synced = target;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* dirty_seq of a dirty mark whose record could not be appended. */
#define SEQ_UNLOGGED UINT64_MAX

/* A block already dirty only waits for its record to be durable; one whose
 * record failed to append tries again, so a later put cannot return 0 on
 * a mark that is not in the log. */
static int mark_dirty(struct store *s, struct entry *e, uint64_t *seq)
{
	if (e->dirty && e->dirty_seq != SEQ_UNLOGGED) {
		*seq = e->dirty_seq;
		return 0;
	}
	/* Stays dirty in memory even if the append fails: the block is then at
	 * least kept for this session. */
	set_dirty(s, e, 1);
	int rc = log_append(s, OP_DIRTY, 0, &e->id, seq);
	e->dirty_seq = rc ? SEQ_UNLOGGED : *seq;
	return rc;
}

/* ---- block files (lock not held) --------------------------------------- *
 *
 * A block file is the block's bytes followed by a trailer:
 *
 *   0..3    magic "PCb1"
 *   4..7    zero (reserved: a new layout gets a new magic)
 *   8..15   XXH3-64 of the bytes, seeded with the id's first 8 bytes, LE
 *
 * A get that finds a good trailer skips the keyed BLAKE2b: on this disk the
 * danger is damage (flipped bits, truncation, files written from outside),
 * not an adversary, since whoever can write the cache can read the key, and
 * a 64-bit checksum catches damage at a fraction of BLAKE2b's cost.  The
 * seed ties the checksum to the file's name: an intact block file copied
 * or renamed over another id's file fails the check instead of handing out
 * the wrong block.
 *
 * Files written before the trailer existed hold the plain bytes only.  They
 * fail the trailer check and are verified the old way, against the id, so
 * they stay readable (they may hold dirty blocks that exist nowhere else). */

#define TRAILER_MAGIC "PCb1"

static void trailer_encode(uint8_t t[STORE_TRAILER_SIZE], const blockid_t *id, const void *data,
			   size_t len)
{
	memcpy(t, TRAILER_MAGIC, 4);
	le_put32(t + 4, 0);
	le_put64(t + 8, store_block_sum(id, data, len));
}

/* The length of the block in a file of len bytes read from id's name, or
 * -EBADMSG when the file is neither a good new one nor a good old one.
 * Block data that itself ends in something shaped like a trailer is safe
 * both ways: in a new file the real trailer comes after it, and in an old
 * file such a tail would have to carry XXH3 of the bytes before it seeded
 * with the id of the whole file, which cannot be arranged by chance (2^-64)
 * and without the key not even on purpose; any other tail fails the check
 * and the file is hashed whole, as before. */
static ssize_t block_verify(struct store *s, const blockid_t *id, const uint8_t *buf, size_t len)
{
	blockid_t got;
	if (len >= STORE_TRAILER_SIZE) {
		const uint8_t *t = buf + len - STORE_TRAILER_SIZE;
		size_t n = len - STORE_TRAILER_SIZE;
		if (memcmp(t, TRAILER_MAGIC, 4) == 0 && le_get32(t + 4) == 0 &&
		    le_get64(t + 8) == store_block_sum(id, buf, n))
			return (ssize_t)n;
	}
	blockid_compute(&got, s->key, buf, len);
	return memcmp(got.b, id->b, BLOCKID_SIZE) == 0 ? (ssize_t)len : -EBADMSG;
}

/* Fan-out directories are made on first use: a small store stays small, and
 * open need not create 256 directories.  The root is synced so the new
 * directory itself survives a power cut. */
static int make_fanout(struct store *s, const char *dir)
{
	if (mkdirat(s->dirfd, dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	return fsync(s->dirfd) == 0 ? 0 : -errno;
}

static int rename_into_place(struct store *s, const char *tmp, const char *rel)
{
	char dir[3] = {rel[0], rel[1], '\0'};
	if (renameat(s->tmpfd, tmp, s->dirfd, rel) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	int rc = make_fanout(s, dir);
	if (rc)
		return rc;
	return renameat(s->tmpfd, tmp, s->dirfd, rel) == 0 ? 0 : -errno;
}

/* STORE_WRITEBACK only starts the writeback of a deferred file, so that the
 * store_sync() ending the batch finds less to wait for.  It is a hint: a
 * failure costs nothing but that head start. */
static void start_writeback(struct store *s, int fd, const char *tmp)
{
	char eb[128];
	if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
		log_debug("cannot start writeback of %s/tmp/%s: %s", s->dir, tmp,
			  errstr(errno, eb, sizeof(eb)));
}

static int write_block_file(struct store *s, const blockid_t *id, const char *rel,
			    const void *data, size_t len, int flags)
{
	char tmp[BLOCKID_HEX_SIZE + 16];
	uint8_t trailer[STORE_TRAILER_SIZE];
	int defer = flags & STORE_DEFER_SYNC;
	unsigned n = __atomic_add_fetch(&s->tmp_counter, 1, __ATOMIC_RELAXED);
	snprintf(tmp, sizeof(tmp), "%s.%u", rel + 3, n);
	trailer_encode(trailer, id, data, len);
	int fd = openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = write_all(fd, data, len);
	if (!rc)
		rc = write_all(fd, trailer, sizeof(trailer));
	if (!rc && !defer && fsync(fd) != 0)
		rc = -errno;
	if (!rc && defer && (flags & STORE_WRITEBACK))
		start_writeback(s, fd, tmp);
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc)
		rc = rename_into_place(s, tmp, rel);
	if (rc)
		unlinkat(s->tmpfd, tmp, 0);
	return rc;
}

/* Durable once the fan-out directory holding the new name is synced; if
 * that fails the file goes again, so accounting never covers a block that
 * may vanish at the next power cut. */
static int store_block_file(struct store *s, const blockid_t *id, const char *rel,
			    const void *data, size_t len, int flags)
{
	char dir[3] = {rel[0], rel[1], '\0'};
	int rc = write_block_file(s, id, rel, data, len, flags);
	if (rc || (flags & STORE_DEFER_SYNC))
		return rc;
	rc = fsync_dirat(s->dirfd, dir);
	if (rc)
		unlinkat(s->dirfd, rel, 0);
	return rc;
}

static int read_block_file(struct store *s, const char *rel, uint8_t **out, size_t *out_len)
{
	int fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	size_t size = (size_t)st.st_size, got = 0;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			close(fd);
			free(buf);
			return rc;
		}
		if (n == 0)
			break; /* shrank under us: the hash check will say so */
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*out_len = got;
	return 0;
}

/* ---- dropping entries -------------------------------------------------- */

/* Lock held.  Pinned and dirty blocks are only ever dropped when their file
 * is gone or bad; the records keep a later re-put of the id from coming
 * back pinned or dirty at the next open.  The entry leaves the counts
 * first, so a compaction triggered by these appends leaves it out too. */
static void drop_logged(struct store *s, struct entry *e)
{
	int pinned = e->pins != 0, dirty = e->dirty;
	account_drop(s, e);
	if (pinned)
		log_append(s, OP_PINS, 0, &e->id, NULL);
	if (dirty)
		log_append(s, OP_CLEAN, 0, &e->id, NULL);
}

/* Finds the entry a reader saw (same generation) if it is still there. */
static struct entry *find_gen(struct store *s, const blockid_t *id, uint64_t gen)
{
	struct entry *e = ht_find(s, id);
	return e && e->gen == gen && e->state == E_PRESENT ? e : NULL;
}

static void warn_lost(const struct entry *e, const char *rel, const char *why)
{
	if (e->dirty)
		log_error("block %s was not yet uploaded and is %s: its data is lost unless "
			  "another device has it",
			  rel + 3, why);
	else if (e->pins)
		log_error("pinned block %s is %s; it will be fetched again when needed", rel + 3,
			  why);
}

/* The file was found corrupt by a reader: move it to corrupt/ (for a human
 * to look at) and forget it, unless someone replaced it meanwhile.  0 when
 * the entry read is gone already (evicted or removed under the reader:
 * what it read was a hole, not damage). */
static int quarantine(struct store *s, const blockid_t *id, uint64_t gen, const char *rel)
{
	char eb[128];
	pthread_mutex_lock(&s->lock);
	struct entry *e = find_gen(s, id, gen);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	int packed = e->packed;
	if (packed)
		log_error("block %s failed verification in pack %08x at %llu: dropped from the "
			  "cache",
			  rel + 3, e->pack, (unsigned long long)e->off);
	else
		log_error("block %s failed verification: %s/%s moved to %s/corrupt/", rel + 3,
			  s->dir, rel, s->dir);
	warn_lost(e, rel, "corrupt");
	drop_logged(s, e);
	s->st.corrupt_blocks++;
	pthread_mutex_unlock(&s->lock);

	if (packed) {
		store_packs_kill(s->packs, e->pack, e->off, e->size);
	} else if (renameat(s->dirfd, rel, s->corruptfd, rel + 3) != 0) {
		log_error("cannot move %s/%s to corrupt/ (%s); deleting it", s->dir, rel,
			  errstr(errno, eb, sizeof(eb)));
		unlinkat(s->dirfd, rel, 0);
	}
	pthread_mutex_lock(&s->lock);
	entry_forget(s, e);
	pthread_mutex_unlock(&s->lock);
	return 1;
}

/* The file disappeared behind our back (not by eviction, which would have
 * changed the entry's state first): bring the accounting back in line. */
static void forget_vanished(struct store *s, const blockid_t *id, uint64_t gen, const char *rel)
{
	pthread_mutex_lock(&s->lock);
	struct entry *e = find_gen(s, id, gen);
	if (e) {
		log_warn("block file %s/%s disappeared; forgetting it", s->dir, rel);
		warn_lost(e, rel, "gone");
		drop_logged(s, e);
		entry_forget(s, e);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- eviction ---------------------------------------------------------- */

static void warn_if_over(struct store *s)
{
	if (!s->st.limit || s->st.bytes <= s->st.limit) {
		s->over_warned = 0;
		return;
	}
	if (s->over_warned)
		return;
	s->over_warned = 1;
	log_warn("block cache %s holds %llu bytes, over its limit of %llu: the rest is "
		 "pinned (%llu bytes) or not yet uploaded (%llu bytes)",
		 s->dir, (unsigned long long)s->st.bytes, (unsigned long long)s->st.limit,
		 (unsigned long long)s->st.pinned_bytes, (unsigned long long)s->st.dirty_bytes);
}

/* Lock held.  The block a put just stored is spared, so the put's caller can
 * still pin or read it even when the unpinned room is smaller than it. */
static struct entry *pick_victims(struct store *s, const struct entry *spare)
{
	struct entry *victims = NULL;
	while (s->st.limit && s->st.bytes > s->st.limit && list_linked(&s->lru)) {
		struct entry *e = entry_of(s->lru.next, lru);
		if (e == spare)
			break;
		account_drop(s, e);
		e->victim_next = victims;
		victims = e;
	}
	warn_if_over(s);
	return victims;
}

/* Lock held: a failed unlink puts the block back, since it is still there. */
static void finish_drops(struct store *s, struct entry *victims, int count_evicted)
{
	char rel[BLOCK_REL_SIZE], eb[128];
	while (victims) {
		struct entry *e = victims;
		victims = e->victim_next;
		if (e->drop_err) {
			block_rel(&e->id, rel);
			log_warn("cannot delete %s/%s: %s", s->dir, rel,
				 errstr(e->drop_err, eb, sizeof(eb)));
			e->drop_err = 0;
			account_add(s, e, e->size);
			pthread_cond_broadcast(&s->settled);
			continue;
		}
		if (count_evicted)
			s->st.evicted_blocks++;
		entry_forget(s, e);
	}
}

static void unlink_victims(struct store *s, struct entry *victims)
{
	char rel[BLOCK_REL_SIZE];
	for (struct entry *e = victims; e; e = e->victim_next) {
		if (e->packed) {
			store_packs_kill(s->packs, e->pack, e->off, e->size);
			continue;
		}
		block_rel(&e->id, rel);
		if (unlinkat(s->dirfd, rel, 0) != 0 && errno != ENOENT)
			e->drop_err = errno;
	}
}

/* Called with the lock held; returns with it released.  Victims are
 * DELETING while their files go, so the unlinks need no lock. */
static void evict_and_unlock(struct store *s, const struct entry *spare)
{
	struct entry *victims = pick_victims(s, spare);
	pthread_mutex_unlock(&s->lock);
	if (!victims)
		return;
	unlink_victims(s, victims);
	pthread_mutex_lock(&s->lock);
	finish_drops(s, victims, 1);
	pthread_mutex_unlock(&s->lock);
}

/* ---- open -------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	int rc = 0;
	for (char *q = p + 1; *q && !rc; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			rc = -errno;
		*q = '/';
	}
	if (!rc && mkdir(p, 0700) != 0 && errno != EEXIST)
		rc = -errno;
	free(p);
	return rc;
}

static int open_subdir(struct store *s, const char *name, int *out)
{
	char eb[128];
	if (mkdirat(s->dirfd, name, 0700) != 0 && errno != EEXIST) {
		int rc = -errno;
		return error_set(rc, "cannot create %s/%s: %s", s->dir, name,
				 errstr(rc, eb, sizeof(eb)));
	}
	*out = openat(s->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*out < 0) {
		int rc = -errno;
		return error_set(rc, "cannot open %s/%s: %s", s->dir, name,
				 errstr(rc, eb, sizeof(eb)));
	}
	return 0;
}

/* The flock keeps a second daemon (or a second store_open) off the same
 * directory: both would clean each other's temp files and interleave
 * store.log. */
static int open_root(struct store *s)
{
	char eb[128];
	int rc = mkdir_p(s->dir);
	if (rc)
		return error_set(rc, "cannot create block store %s: %s", s->dir,
				 errstr(rc, eb, sizeof(eb)));
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = -errno;
		return error_set(rc, "cannot open block store %s: %s", s->dir,
				 errstr(rc, eb, sizeof(eb)));
	}
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		return error_set(rc, "block store %s is already in use by another process", s->dir);
	}
	return 0;
}

static int make_layout(struct store *s)
{
	int rc = open_root(s);
	if (!rc)
		rc = open_subdir(s, "tmp", &s->tmpfd);
	if (!rc)
		rc = open_subdir(s, "corrupt", &s->corruptfd);
	if (!rc)
		rc = open_subdir(s, "packs", &s->packfd);
	if (!rc) {
		char *dir = NULL;
		rc = asprintf(&dir, "%s/packs", s->dir) < 0 ? -ENOMEM : 0;
		if (!rc)
			rc = store_packs_new(&s->packs, s->packfd, dir);
		free(dir);
	}
	return rc;
}

/* Leftovers of puts or compactions cut short by a crash. */
static void clean_tmp(struct store *s)
{
	int fd = openat(s->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && unlinkat(s->tmpfd, de->d_name, 0) != 0)
			log_warn("cannot remove temp file %s/tmp/%s", s->dir, de->d_name);
	closedir(d);
}

struct scanned {
	int64_t when;
	struct entry *e;
};

struct scan {
	struct scanned *v;
	size_t n, cap;
};

/* A block file's name is the lower-case hex id, in the directory named by
 * its first byte; anything else is not ours to count. */
static int block_name(const char *name, const char *dir, blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	if (blockid_from_hex(id, name) != 0)
		return 0;
	blockid_to_hex(id, hex);
	return strcmp(hex, name) == 0 && memcmp(name, dir, 2) == 0;
}

/* LRU order at open: last access if the file system keeps it (relatime
 * updates atime about daily), else the write time. */
static int64_t last_use(const struct stat *st)
{
	const struct timespec *t = &st->st_mtim;
	if (st->st_atim.tv_sec > t->tv_sec ||
	    (st->st_atim.tv_sec == t->tv_sec && st->st_atim.tv_nsec > t->tv_nsec))
		t = &st->st_atim;
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int scan_add(struct store *s, struct scan *sc, const blockid_t *id, const struct stat *st)
{
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 1024;
		struct scanned *v = realloc(sc->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		sc->v = v;
		sc->cap = cap;
	}
	struct entry *e = entry_new(s, id, E_PRESENT);
	if (!e)
		return -ENOMEM;
	e->size = (uint64_t)st->st_size;
	s->st.blocks++;
	s->st.bytes += e->size;
	sc->v[sc->n].when = last_use(st);
	sc->v[sc->n++].e = e;
	return 0;
}

struct scan_packed_ctx {
	struct store *s;
	struct scan *sc;
};

/* A block both in a file of its own and in a pack keeps its file.  In two
 * packs (a kill that did not reach the disk before a crash, then a fetch
 * again), the newer record wins: packs are scanned oldest first, and the
 * older record may be the one whose kill was half done. */
static int scan_packed(void *payload, const blockid_t *id, uint32_t pack, uint64_t off,
		       uint64_t size, int64_t when)
{
	struct scan_packed_ctx *c = payload;
	struct entry *old = ht_find(c->s, id);
	if (old && !old->packed)
		return 0;
	if (old) {
		store_packs_kill(c->s->packs, old->pack, old->off, old->size);
		c->s->st.bytes += size - old->size;
		old->pack = pack;
		old->off = off;
		old->size = size;
		return 1;
	}
	struct stat st = { .st_size = (off_t)size };
	st.st_mtim.tv_sec = when / 1000000000;
	st.st_mtim.tv_nsec = when % 1000000000;
	int rc = scan_add(c->s, c->sc, id, &st);
	if (rc)
		return rc;
	struct entry *e = c->sc->v[c->sc->n - 1].e;
	e->packed = 1;
	e->pack = pack;
	e->off = off;
	return 1;
}

static int scan_entry(struct store *s, struct scan *sc, DIR *d, const char *dir, const char *name)
{
	blockid_t id;
	struct stat st;
	if (name[0] == '.')
		return 0;
	if (!block_name(name, dir, &id)) {
		log_warn("ignoring stray file %s/%s/%s", s->dir, dir, name);
		return 0;
	}
	if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode)) {
		log_warn("ignoring %s/%s/%s: not a regular file", s->dir, dir, name);
		return 0;
	}
	return scan_add(s, sc, &id, &st);
}

static int scan_fanout(struct store *s, struct scan *sc, unsigned i)
{
	char dir[4], eb[128]; /* a spare byte: gcc cannot see that i < 256 */
	snprintf(dir, sizeof(dir), "%02x", i);
	int fd = openat(s->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0; /* made on first use */
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	int rc = d ? 0 : -errno;
	if (!d && fd >= 0)
		close(fd);
	for (struct dirent *de; !rc;) {
		errno = 0;
		if (!(de = readdir(d))) {
			rc = -errno;
			break;
		}
		rc = scan_entry(s, sc, d, dir, de->d_name);
	}
	if (d)
		closedir(d);
	if (rc)
		return error_set(rc, "cannot scan %s/%s: %s", s->dir, dir,
				 errstr(rc, eb, sizeof(eb)));
	return 0;
}

static int cmp_scanned(const void *a, const void *b)
{
	int64_t x = ((const struct scanned *)a)->when, y = ((const struct scanned *)b)->when;
	return (x > y) - (x < y);
}

/* Replay may have linked a few entries already (pinned, then unpinned);
 * relinking every entry in time order gives the whole list one order. */
static void build_lru(struct store *s, struct scan *sc)
{
	if (sc->n)
		qsort(sc->v, sc->n, sizeof(*sc->v), cmp_scanned);
	for (size_t i = 0; i < sc->n; i++) {
		struct entry *e = sc->v[i].e;
		if (list_linked(&e->lru))
			list_del(&e->lru);
		relist(s, e);
	}
}

static int read_log(struct store *s, uint8_t **out, size_t *len)
{
	char eb[128];
	*out = NULL;
	*len = 0;
	int rc = read_block_file(s, LOG_NAME, out, len);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return error_set(rc, "cannot read %s/" LOG_NAME ": %s", s->dir,
				 errstr(rc, eb, sizeof(eb)));
	return 0;
}

static void replay_rec(struct store *s, const uint8_t *r)
{
	blockid_t id;
	memcpy(id.b, r + 8, BLOCKID_SIZE);
	struct entry *e = ht_find(s, &id);
	if (!e)
		return; /* the block file is gone: its record dies with it */
	switch (r[0]) {
	case OP_PINS:
		set_pins(s, e, le_get32(r + 4));
		break;
	case OP_DIRTY:
		set_dirty(s, e, 1);
		break;
	case OP_CLEAN:
		set_dirty(s, e, 0);
		break;
	default:
		log_warn("ignoring unknown record type %d in %s/" LOG_NAME, r[0], s->dir);
	}
}

/* A bad record in the middle is skipped rather than fatal: losing a clean
 * mark costs an upload, and refusing to open would cost the whole cache. */
static int replay_checked(struct store *s, const uint8_t *buf, size_t n, size_t tail)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *r = buf + i * LOG_REC_SIZE;
		if (!rec_valid(r)) {
			if (i == n - 1 && !tail)
				log_warn("ignoring torn last record of %s/" LOG_NAME, s->dir);
			else
				log_error("skipping damaged record %zu of %s/" LOG_NAME, i, s->dir);
			continue;
		}
		if (r[0] != OP_HEADER)
			replay_rec(s, r);
		else if (le_get32(r + 4) > LOG_VERSION)
			return error_set(-EPROTO,
					 "%s/" LOG_NAME " was written by a newer peercling "
					 "(format %u); upgrade to open this store",
					 s->dir, le_get32(r + 4));
	}
	if (tail)
		log_warn("ignoring torn last record of %s/" LOG_NAME, s->dir);
	return 0;
}

static int replay_log(struct store *s)
{
	uint8_t *buf;
	size_t len;
	int rc = read_log(s, &buf, &len);
	if (rc || !buf)
		return rc;
	rc = replay_checked(s, buf, len / LOG_REC_SIZE, len % LOG_REC_SIZE);
	free(buf);
	return rc;
}

static int load(struct store *s)
{
	struct scan sc = {0};
	int rc = 0;
	for (unsigned i = 0; i < 256 && !rc; i++)
		rc = scan_fanout(s, &sc, i);
	if (!rc) {
		struct scan_packed_ctx c = { s, &sc };
		rc = store_packs_scan(s->packs, scan_packed, &c);
	}
	if (!rc)
		rc = replay_log(s);
	if (!rc)
		build_lru(s, &sc);
	free(sc.v);
	if (!rc)
		rc = log_compact(s);
	return rc;
}

static struct store *store_alloc(const char *dir, const uint8_t key[BLOCKID_KEY_SIZE],
				 uint64_t limit)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dir = strdup(dir);
	s->nbuckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (!s->dir || !s->buckets) {
		free(s->dir);
		free(s->buckets);
		free(s);
		return NULL;
	}
	s->dirfd = s->tmpfd = s->corruptfd = s->logfd = s->packfd = -1;
	memcpy(s->key, key, BLOCKID_KEY_SIZE);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->settled, NULL);
	pthread_rwlock_init(&s->logfd_lock, NULL);
	list_init(&s->lru);
	list_init(&s->dirty);
	s->st.limit = limit;
	return s;
}

int store_open(struct store **out, const char *dir, const uint8_t id_key[BLOCKID_KEY_SIZE],
	       uint64_t limit)
{
	*out = NULL;
	struct store *s = store_alloc(dir, id_key, limit);
	if (!s)
		return error_set(-ENOMEM, "out of memory opening block store %s", dir);
	int rc = make_layout(s);
	if (!rc) {
		clean_tmp(s);
		rc = load(s);
	}
	if (rc) {
		store_free(s);
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	evict_and_unlock(s, NULL);
	log_debug("opened %s: %llu blocks, %llu bytes", dir, (unsigned long long)s->st.blocks,
		  (unsigned long long)s->st.bytes);
	*out = s;
	return 0;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void store_free(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	close_fd(s->logfd);
	close_fd(s->tmpfd);
	close_fd(s->corruptfd);
	store_packs_free(s->packs);
	close_fd(s->packfd);
	close_fd(s->dirfd); /* releases the flock */
	sodium_memzero(s->key, sizeof(s->key));
	pthread_cond_destroy(&s->settled);
	pthread_rwlock_destroy(&s->logfd_lock);
	pthread_mutex_destroy(&s->lock);
	free(s->buckets);
	free(s->dir);
	free(s);
}

/* ---- blocks ------------------------------------------------------------ */

static int put_existing(struct store *s, struct entry *e, int flags)
{
	uint64_t seq = 0;
	touch(s, e);
	int rc = (flags & STORE_DIRTY) ? mark_dirty(s, e, &seq) : 0;
	pthread_mutex_unlock(&s->lock);
	return rc ? rc : (flags & STORE_DEFER_SYNC) ? 0 : log_sync(s, seq);
}

/* Called with the lock held, e WRITING; returns with the lock released. */
static int put_new(struct store *s, struct entry *e, const void *data, size_t len, int flags)
{
	char rel[BLOCK_REL_SIZE], eb[128];
	uint64_t seq = 0;
	int dirty = flags & STORE_DIRTY, defer = flags & STORE_DEFER_SYNC;
	uint32_t pack = 0;
	uint64_t off = 0;
	block_rel(&e->id, rel);
	pthread_mutex_unlock(&s->lock);
	int rc = (flags & PUT_PACKED) ? store_packs_write(s->packs, &e->id, data, len, &pack, &off)
				      : store_block_file(s, &e->id, rel, data, len, flags);
	pthread_mutex_lock(&s->lock);
	if (rc) {
		entry_forget(s, e);
		pthread_mutex_unlock(&s->lock);
		return error_set(rc, "cannot store block %s in %s: %s", rel + 3, s->dir,
				 errstr(rc, eb, sizeof(eb)));
	}
	/* The bytes on disk, trailer or header included, as the scan at open
	 * counts them. */
	e->packed = (flags & PUT_PACKED) != 0;
	e->pack = pack;
	e->off = off;
	account_add(s, e, e->packed ? store_pack_record_size(len) : len + STORE_TRAILER_SIZE);
	if (dirty)
		rc = mark_dirty(s, e, &seq);
	pthread_cond_broadcast(&s->settled);
	evict_and_unlock(s, e);
	return rc ? rc : defer ? 0 : log_sync(s, seq);
}

/* A block already stored is not rewritten.  dirty=1 on a clean block marks
 * it dirty anyway: clean only means "came from elsewhere", which does not
 * prove the cloud has it, and a redundant upload is cheap next to a lost
 * block. */
static int put(struct store *s, const blockid_t *id, const void *data, size_t len, int flags)
{
	pthread_mutex_lock(&s->lock);
	struct entry *e = find_settled(s, id, 1);
	if (e)
		return put_existing(s, e, flags);
	e = entry_new(s, id, E_WRITING);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return error_set(-ENOMEM, "out of memory storing a block in %s", s->dir);
	}
	return put_new(s, e, data, len, flags);
}

int store_sync(struct store *s)
{
	char eb[128];
	if (syncfs(s->dirfd) != 0) {
		int rc = -errno;
		return error_set(rc, "cannot sync the block store %s: %s", s->dir,
				 errstr(rc, eb, sizeof(eb)));
	}
	pthread_mutex_lock(&s->lock);
	uint64_t seq = s->log_seq;
	pthread_mutex_unlock(&s->lock);
	return log_sync(s, seq);
}

int store_put_data(struct store *s, blockid_t *out_id, const void *data, size_t len, int flags)
{
	blockid_compute(out_id, s->key, data, len);
	return put(s, out_id, data, len, flags);
}

/* Data that comes with an id must match it before anything is stored. */
static int put_checked(struct store *s, const blockid_t *id, const void *data, size_t len,
		       int flags)
{
	blockid_t got;
	char hex[BLOCKID_HEX_SIZE];
	blockid_compute(&got, s->key, data, len);
	if (memcmp(got.b, id->b, BLOCKID_SIZE) != 0) {
		blockid_to_hex(id, hex);
		return error_set(-EBADMSG, "data offered as block %s does not match that id", hex);
	}
	return put(s, id, data, len, flags);
}

int store_put_cached(struct store *s, const blockid_t *id, const void *data, size_t len)
{
	return put_checked(s, id, data, len, STORE_DEFER_SYNC | PUT_PACKED);
}

int store_put(struct store *s, const blockid_t *id, const void *data, size_t len)
{
	return put_checked(s, id, data, len, 0);
}

static int not_found(struct store *s, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(id, hex);
	return error_set(-ENOENT, "block %s is not in the store %s", hex, s->dir);
}

/* The read and the check run unlocked; the generation taken here lets the
 * outcome be applied only to the entry that was read. */
int store_get(struct store *s, const blockid_t *id, uint8_t **out, size_t *out_len)
{
	char rel[BLOCK_REL_SIZE], eb[128];
	*out = NULL;
	*out_len = 0;
	pthread_mutex_lock(&s->lock);
	struct entry *e = find_settled(s, id, 0);
	uint64_t gen = e ? e->gen : 0, off = e ? e->off : 0, size = e ? e->size : 0;
	uint32_t pack = e ? e->pack : 0;
	int packed = e && e->packed;
	if (e)
		touch(s, e);
	pthread_mutex_unlock(&s->lock);
	if (!e)
		return not_found(s, id);

	uint8_t *buf;
	size_t len;
	block_rel(id, rel);
	int rc = packed ? store_packs_read(s->packs, pack, off, size, id, &buf, &len)
			: read_block_file(s, rel, &buf, &len);
	if (rc == -ENOENT) {
		forget_vanished(s, id, gen, rel);
		return not_found(s, id);
	}
	if (rc && rc != -EBADMSG && packed)
		return error_set(rc, "cannot read block %s from %s/packs/%08x: %s", rel + 3, s->dir,
				 pack, errstr(rc, eb, sizeof(eb)));
	if (rc && rc != -EBADMSG)
		return error_set(rc, "cannot read block %s/%s: %s", s->dir, rel,
				 errstr(rc, eb, sizeof(eb)));
	ssize_t n = rc ? rc : packed ? (ssize_t)len : block_verify(s, id, buf, len);
	if (n < 0) {
		free(buf);
		if (!quarantine(s, id, gen, rel))
			return not_found(s, id);
		if (packed)
			return error_set(-ENOENT, "block %s was corrupt in its cache pack; dropped",
					 rel + 3);
		return error_set(-ENOENT, "block %s was corrupt on disk; moved to %s/corrupt/",
				 rel + 3, s->dir);
	}
	*out = buf;
	*out_len = (size_t)n;
	return 0;
}

int store_has(struct store *s, const blockid_t *id)
{
	pthread_mutex_lock(&s->lock);
	struct entry *e = ht_find(s, id);
	int has = e && e->state == E_PRESENT;
	pthread_mutex_unlock(&s->lock);
	return has;
}

/* Refuses pinned and dirty blocks (-EBUSY): removing them would lose an
 * offline copy or data not yet uploaded; unpin or set_clean first. */
int store_remove(struct store *s, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE], eb[128];
	blockid_to_hex(id, hex);
	pthread_mutex_lock(&s->lock);
	struct entry *e = find_settled(s, id, 0);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return not_found(s, id);
	}
	if (e->pins || e->dirty) {
		const char *why = e->pins ? "pinned" : "not yet uploaded";
		pthread_mutex_unlock(&s->lock);
		return error_set(-EBUSY, "block %s is %s; it cannot be removed", hex, why);
	}
	account_drop(s, e);
	e->victim_next = NULL;
	pthread_mutex_unlock(&s->lock);
	unlink_victims(s, e);
	pthread_mutex_lock(&s->lock);
	int rc = -e->drop_err;
	finish_drops(s, e, 0);
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return error_set(rc, "cannot remove block %s from %s: %s", hex, s->dir,
				 errstr(rc, eb, sizeof(eb)));
	return 0;
}

/* ---- pins and the dirty set -------------------------------------------- */

/* Lock held on return 0 with *out set; released otherwise. */
static int lock_present(struct store *s, const blockid_t *id, struct entry **out)
{
	pthread_mutex_lock(&s->lock);
	*out = find_settled(s, id, 0);
	if (*out)
		return 0;
	pthread_mutex_unlock(&s->lock);
	return not_found(s, id);
}

/* A pin is made durable before returning: the user asked for the block to
 * be there offline, even after a crash. */
int store_pin(struct store *s, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	struct entry *e;
	uint64_t seq = 0;
	int rc = lock_present(s, id, &e);
	if (rc)
		return rc;
	if (e->pins == UINT32_MAX) {
		blockid_to_hex(id, hex);
		rc = error_set(-EOVERFLOW, "block %s is pinned too many times", hex);
	}
	if (!rc) {
		set_pins(s, e, e->pins + 1);
		rc = log_append(s, OP_PINS, e->pins, id, &seq);
		if (rc) /* keep memory as the log says */
			set_pins(s, e, e->pins - 1);
	}
	pthread_mutex_unlock(&s->lock);
	return rc ? rc : log_sync(s, seq);
}

/* Unpin and clean marks are not synced: losing one in a crash only keeps a
 * block a little longer or uploads it once more. */
int store_unpin(struct store *s, const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	struct entry *e;
	int rc = lock_present(s, id, &e);
	if (rc)
		return rc;
	if (!e->pins) {
		pthread_mutex_unlock(&s->lock);
		blockid_to_hex(id, hex);
		return error_set(-EINVAL, "block %s is not pinned", hex);
	}
	set_pins(s, e, e->pins - 1);
	rc = log_append(s, OP_PINS, e->pins, id, NULL);
	if (rc)
		set_pins(s, e, e->pins + 1);
	evict_and_unlock(s, NULL);
	return rc;
}

int store_set_clean(struct store *s, const blockid_t *id)
{
	struct entry *e;
	int rc = lock_present(s, id, &e);
	if (rc)
		return rc;
	if (e->dirty) {
		set_dirty(s, e, 0);
		rc = log_append(s, OP_CLEAN, 0, id, NULL);
	}
	evict_and_unlock(s, NULL);
	return rc;
}

/* Walks a snapshot, so cb may call back into the store (an uploader calls
 * store_set_clean from it). */
int store_foreach_dirty(struct store *s,
			int (*cb)(const blockid_t *id, uint64_t size, void *payload), void *payload)
{
	pthread_mutex_lock(&s->lock);
	size_t n = 0, max = s->st.dirty_blocks;
	blockid_t *ids = malloc((max ? max : 1) * sizeof(*ids));
	uint64_t *sizes = malloc((max ? max : 1) * sizeof(*sizes));
	if (!ids || !sizes) {
		pthread_mutex_unlock(&s->lock);
		free(ids);
		free(sizes);
		return error_set(-ENOMEM, "out of memory listing dirty blocks");
	}
	for (struct link *l = s->dirty.next; l != &s->dirty; l = l->next) {
		ids[n] = entry_of(l, dirty_link)->id;
		sizes[n++] = entry_of(l, dirty_link)->size;
	}
	pthread_mutex_unlock(&s->lock);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = cb(&ids[i], sizes[i], payload);
	free(ids);
	free(sizes);
	return rc;
}

void store_dirty_in_order(struct store *s, const blockid_t *ids, size_t n)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		struct entry *e = ht_find(s, &ids[i]);
		if (e && e->dirty) {
			list_del(&e->dirty_link);
			list_add_tail(&s->dirty, &e->dirty_link);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}

int store_set_limit(struct store *s, uint64_t limit)
{
	pthread_mutex_lock(&s->lock);
	s->st.limit = limit;
	evict_and_unlock(s, NULL);
	return 0;
}
