/* store_pack: cache packs (contract in store_pack.h).
 *
 * Each write and read opens the pack by name for its own use: no descriptor
 * is shared, so a pack can be deleted or a new one started at any moment
 * without waiting for users, and a store of many packs holds no descriptors
 * open.  An open of an existing name costs a small part of the create it
 * replaces.  The lock guards only the counts and the append position. */
#include "config.h"

#include "core/store_pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/log.h"
#include "core/le.h"

#define LOG_MODULE "store"
#define MAGIC "PCp2" /* "PCp1": records not on page boundaries, never released */
#define STATE_LIVE 0
#define STATE_DEAD 1
#define NAME_SIZE 9 /* 8 hex digits and NUL */
#define PAGE 4096u
/* 16 M packs of 64 MiB: a PiB.  Bounds the count array a stray name could
 * otherwise blow up (packs/ffffffff). */
#define PACK_NUMBER_MAX (1u << 24)

struct store_packs {
	int dirfd;
	char *dir;
	pthread_mutex_t lock;
	uint32_t *live; /* live (or reserved) records per pack number */
	uint32_t nlive;	/* entries of live[] */
	uint32_t next;	/* number of the next pack to start */
	int active_set;
	uint32_t active;
	uint64_t end; /* append position in the active pack */
};

static void pack_name(uint32_t n, char name[NAME_SIZE])
{
	snprintf(name, NAME_SIZE, "%08x", n);
}

/* Seeded with the id, so a record whose id field was damaged fails too. */
uint64_t store_block_sum(const blockid_t *id, const void *data, size_t len)
{
	return XXH3_64bits_withSeed(data, len, le_get64(id->b));
}

static uint64_t page_up(uint64_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

static void header_encode(uint8_t h[STORE_PACK_HEADER], const blockid_t *id, const void *data,
			  size_t len)
{
	memcpy(h, MAGIC, 4);
	le_put32(h + 4, STATE_LIVE);
	le_put32(h + 8, (uint32_t)len);
	le_put32(h + 12, (uint32_t)time(NULL));
	le_put64(h + 16, store_block_sum(id, data, len));
	memcpy(h + 24, id->b, BLOCKID_SIZE);
}

/* Records start on page boundaries, so a kill can punch a record out
 * whole, header included, and the scan steps over the hole page by page. */
uint64_t store_pack_record_size(size_t len)
{
	return page_up(STORE_PACK_HEADER + (uint64_t)len);
}

int store_packs_new(struct store_packs **out, int dirfd, const char *dir)
{
	struct store_packs *p = calloc(1, sizeof(*p));
	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		return error_set(-ENOMEM, "out of memory");
	}
	p->dirfd = dirfd;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void store_packs_free(struct store_packs *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->live);
	free(p->dir);
	free(p);
}

/* Lock held. */
static int live_grow(struct store_packs *p, uint32_t n)
{
	if (n < p->nlive)
		return 0;
	if (n >= PACK_NUMBER_MAX)
		return -EOVERFLOW;
	uint32_t cap = p->nlive ? p->nlive : 64;
	while (cap <= n)
		cap *= 2; /* at most 2^24: no wrap */
	uint32_t *v = realloc(p->live, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + p->nlive, 0, (cap - p->nlive) * sizeof(*v));
	p->live = v;
	p->nlive = cap;
	return 0;
}

static void delete_pack(struct store_packs *p, uint32_t n)
{
	char name[NAME_SIZE];
	pack_name(n, name);
	if (unlinkat(p->dirfd, name, 0) != 0 && errno != ENOENT)
		log_warn("cannot delete empty pack %s/%s: %s", p->dir, name, strerror(errno));
}

/* ---- scan -------------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		got += (size_t)n;
	}
	return 0;
}

static void mark_dead(int fd, uint64_t off)
{
	uint8_t st[4];
	le_put32(st, STATE_DEAD);
	if (pwrite(fd, st, sizeof(st), (off_t)(off + 4)) != (ssize_t)sizeof(st))
		log_debug("cannot mark a pack record dead: %s", strerror(errno));
}

/* Records are whole pages: the hole takes the header too, and the scan
 * steps over the zeros.  Where holes cannot be made, the header says dead
 * and the space comes back with the whole pack. */
static void punch_or_mark(int fd, uint64_t off, uint64_t size)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)size) == 0)
		return;
	if (errno != EOPNOTSUPP)
		log_debug("cannot punch a hole in a pack: %s", strerror(errno));
	mark_dead(fd, off);
}

static void clear_record(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t size)
{
	char name[NAME_SIZE];
	pack_name(pack, name);
	int fd = openat(p->dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	punch_or_mark(fd, off, size);
	close(fd);
}

/* A live record met after damage or a hole is believed only if its data
 * matches its checksum: "PCp2" at a page start inside other data is not a
 * record. */
static int record_intact(int fd, const uint8_t h[STORE_PACK_HEADER], uint64_t off)
{
	uint32_t len = le_get32(h + 8);
	uint8_t *buf = malloc(len ? len : 1);
	blockid_t id;
	memcpy(id.b, h + 24, BLOCKID_SIZE);
	int ok = buf && read_full(fd, buf, len, off + STORE_PACK_HEADER) == 0 &&
		 le_get64(h + 16) == store_block_sum(&id, buf, len);
	free(buf);
	return ok;
}

/* Steps record by record; past a page that holds no header (a record
 * punched out, a write lost in a crash or a full disk, damage) it looks at
 * each next page, so records after a gap are found too. */
static int scan_pack(struct store_packs *p, uint32_t n, store_packs_scan_cb cb, void *payload)
{
	char name[NAME_SIZE];
	struct stat st;
	pack_name(n, name);
	int fd = openat(p->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return error_set(rc, "cannot open pack %s/%s: %s", p->dir, name, strerror(-rc));
	}
	uint64_t size = (uint64_t)st.st_size, off = 0, skipped = 0;
	int rc = 0, resync = 0;
	while (off + STORE_PACK_HEADER <= size) {
		uint8_t h[STORE_PACK_HEADER];
		uint32_t len = 0;
		/* Past damage, only a live record whose checksum holds is
		 * believed (a dead one's length cannot be checked: step by a
		 * page instead). */
		int good = read_full(fd, h, sizeof(h), off) == 0 && memcmp(h, MAGIC, 4) == 0 &&
			   (len = le_get32(h + 8)) <= STORE_PACK_MAX &&
			   off + STORE_PACK_HEADER + len <= size &&
			   ((le_get32(h + 4) == STATE_DEAD && !resync) ||
			    (le_get32(h + 4) == STATE_LIVE && (!resync || record_intact(fd, h, off))));
		if (!good) {
			/* A hole ends where a record begins (kills punch whole
			 * records; a lost write leaves a hole up to the next
			 * one written): jump to it and trust it.  Anything else
			 * (zeros written, damage) is stepped over page by page. */
			off_t data = lseek(fd, (off_t)(off + PAGE), SEEK_DATA);
			if (data < 0 && errno == ENXIO)
				break; /* holes to the end */
			uint64_t next = data > 0 ? page_up((uint64_t)data) : 0;
			resync = !(next > off + PAGE);
			if (resync)
				next = off + PAGE;
			skipped += next - off;
			off = next;
			continue;
		}
		resync = 0;
		if (le_get32(h + 4) == STATE_LIVE) {
			blockid_t id;
			memcpy(id.b, h + 24, BLOCKID_SIZE);
			/* Written at that second; the offset keeps a pack's order. */
			int64_t when = (int64_t)le_get32(h + 12) * 1000000000 + (int64_t)(off / PAGE);
			rc = cb(payload, &id, n, off, store_pack_record_size(len), when);
			if (rc < 0)
				break;
			if (rc == 1)
				p->live[n]++;
			else
				punch_or_mark(fd, off, store_pack_record_size(len));
			rc = 0;
		}
		off += store_pack_record_size(len);
	}
	if (skipped)
		log_debug("pack %s/%s: %llu bytes hold no record (killed, or lost in a crash)",
			  p->dir, name, (unsigned long long)skipped);
	close(fd);
	return rc;
}

static int pack_number(const char *name, uint32_t *n)
{
	char *end;
	if (strlen(name) != 8 || strspn(name, "0123456789abcdef") != 8)
		return 0;
	unsigned long v = strtoul(name, &end, 16);
	if (v >= PACK_NUMBER_MAX)
		return 0;
	*n = (uint32_t)v;
	return 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int list_packs(struct store_packs *p, uint32_t **out, size_t *count)
{
	int fd = openat(p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return error_set(rc, "cannot list %s: %s", p->dir, strerror(-rc));
	}
	uint32_t *v = NULL, n;
	size_t cnt = 0, cap = 0;
	int rc = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (!pack_number(de->d_name, &n)) {
			if (de->d_name[0] != '.')
				log_warn("ignoring stray file %s/%s", p->dir, de->d_name);
			continue;
		}
		if (cnt == cap) {
			cap = cap ? 2 * cap : 64;
			uint32_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[cnt++] = n;
	}
	closedir(d);
	if (rc) {
		free(v);
		return error_set(rc, "out of memory listing %s", p->dir);
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_u32);
	*out = v;
	*count = cnt;
	return 0;
}

int store_packs_scan(struct store_packs *p, store_packs_scan_cb cb, void *payload)
{
	uint32_t *v = NULL;
	size_t cnt = 0;
	int rc = list_packs(p, &v, &cnt);
	if (rc)
		return rc;
	if (cnt && live_grow(p, v[cnt - 1])) {
		free(v);
		return error_set(-ENOMEM, "out of memory scanning %s", p->dir);
	}
	for (size_t i = 0; i < cnt && !rc; i++) {
		/* Held while scanned: a kill of an older record of the same
		 * block in this very pack (cb) must not delete it. */
		p->live[v[i]]++;
		rc = scan_pack(p, v[i], cb, payload);
		if (--p->live[v[i]] == 0 && !rc)
			delete_pack(p, v[i]);
	}
	if (cnt)
		p->next = v[cnt - 1] + 1;
	free(v);
	return rc;
}

/* ---- write, read, kill ------------------------------------------------- */

/* Lock held: starts pack p->next, leaving the one before if it is empty. */
static int start_pack(struct store_packs *p)
{
	char name[NAME_SIZE];
	uint32_t n = p->next;
	int rc = live_grow(p, n);
	if (rc)
		return rc;
	pack_name(n, name);
	int fd = openat(p->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	if (p->active_set && p->live[p->active] == 0)
		delete_pack(p, p->active);
	p->next = n + 1;
	p->active = n;
	p->active_set = 1;
	p->end = 0;
	return 0;
}

/* Lock held: one record of pack fewer; 1 when that left the pack empty
 * and it is not the one being written (the caller deletes it). */
static int release(struct store_packs *p, uint32_t pack)
{
	return pack < p->nlive && p->live[pack] && --p->live[pack] == 0 &&
	       !(p->active_set && p->active == pack);
}

/* A failed write: the place is reused when it was the last one taken;
 * otherwise the pack takes no more records, so the gap stays small (the
 * scan steps over it anyway). */
static void give_back(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t rec)
{
	/* Cleared while the place is still ours: a writer given it next must
	 * not have its record punched out after the fact. */
	clear_record(p, pack, off, rec);
	pthread_mutex_lock(&p->lock);
	if (p->active_set && p->active == pack)
		p->end = p->end == off + rec ? off : STORE_PACK_MAX;
	int empty = release(p, pack);
	pthread_mutex_unlock(&p->lock);
	if (empty)
		delete_pack(p, pack);
}

static int reserve(struct store_packs *p, uint64_t rec, uint32_t *pack, uint64_t *off)
{
	int rc = 0;
	pthread_mutex_lock(&p->lock);
	if (!p->active_set || (p->end && p->end + rec > STORE_PACK_MAX))
		rc = start_pack(p);
	if (rc == -EOVERFLOW)
		rc = error_set(-EOVERFLOW, "%s holds pack numbers up to the limit", p->dir);
	if (!rc) {
		*pack = p->active;
		*off = p->end;
		p->end += rec;
		p->live[p->active]++;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Writes a header and its data at off in one call when the kernel takes it
 * whole (it nearly always does), piece by piece otherwise. */
static int write_record(int fd, const uint8_t h[STORE_PACK_HEADER], const void *data, size_t len,
			uint64_t off)
{
	uint64_t total = STORE_PACK_HEADER + (uint64_t)len, done = 0;
	while (done < total) {
		struct iovec iov[2];
		int cnt = 0;
		if (done < STORE_PACK_HEADER)
			iov[cnt++] = (struct iovec){ (void *)(h + done), STORE_PACK_HEADER - done };
		size_t dd = done > STORE_PACK_HEADER ? (size_t)(done - STORE_PACK_HEADER) : 0;
		if (len > dd)
			iov[cnt++] = (struct iovec){ (uint8_t *)data + dd, len - dd };
		ssize_t n = pwritev(fd, iov, cnt, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

int store_packs_write(struct store_packs *p, const blockid_t *id, const void *data, size_t len,
		      uint32_t *pack, uint64_t *off)
{
	char name[NAME_SIZE];
	uint8_t h[STORE_PACK_HEADER];
	if (len > STORE_PACK_MAX - STORE_PACK_HEADER)
		return error_set(-EFBIG, "a block of %zu bytes does not fit a cache pack", len);
	uint64_t rec = store_pack_record_size(len);
	int rc = reserve(p, rec, pack, off);
	if (rc)
		return error_set(rc, "cannot start a pack in %s: %s", p->dir, strerror(-rc));
	header_encode(h, id, data, len);
	pack_name(*pack, name);
	int fd = openat(p->dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = write_record(fd, h, data, len, *off);
		close(fd);
	}
	if (rc) {
		give_back(p, *pack, *off, rec);
		return error_set(rc, "cannot write to pack %s/%s: %s", p->dir, name, strerror(-rc));
	}
	return 0;
}

int store_packs_read(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t size,
		     const blockid_t *id, uint8_t **out, size_t *out_len)
{
	char name[NAME_SIZE];
	uint8_t h[STORE_PACK_HEADER];
	*out = NULL;
	*out_len = 0;
	if (size < STORE_PACK_HEADER)
		return -EBADMSG;
	size_t len = (size_t)(size - STORE_PACK_HEADER); /* at most; the header says */
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	pack_name(pack, name);
	int fd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	/* One call for header and data: the record's padding may run past the
	 * end of the file, so a short read is fine once the header's length
	 * is in. */
	struct iovec iov[2] = { { h, sizeof(h) }, { buf, len } };
	ssize_t n;
	do
		n = preadv(fd, iov, 2, (off_t)off);
	while (n < 0 && errno == EINTR);
	int rc = n < 0 ? -errno : (size_t)n < sizeof(h) ? -EBADMSG : 0;
	size_t want = rc ? 0 : le_get32(h + 8), got = rc ? 0 : (size_t)n - sizeof(h);
	if (!rc && want > len)
		rc = -EBADMSG;
	if (!rc && got < want)
		rc = read_full(fd, buf + got, want - got, off + sizeof(h) + got);
	close(fd);
	if (!rc && (memcmp(h, MAGIC, 4) != 0 || le_get32(h + 4) != STATE_LIVE ||
		    memcmp(h + 24, id->b, BLOCKID_SIZE) != 0 ||
		    le_get64(h + 16) != store_block_sum(id, buf, want)))
		rc = -EBADMSG;
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = want;
	return 0;
}

void store_packs_kill(struct store_packs *p, uint32_t pack, uint64_t off, uint64_t size)
{
	pthread_mutex_lock(&p->lock);
	int empty = release(p, pack);
	pthread_mutex_unlock(&p->lock);
	if (empty)
		delete_pack(p, pack);
	else
		clear_record(p, pack, off, size);
}
