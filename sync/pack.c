/* pack: the index of the cloud's packs; see pack.h for the format. */
#include "config.h"
#include "sync/pack.h"
#include "core/error.h"
#include "core/log.h"
#include "core/le.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "pack"
#define MAX_SEALED (1u << 24) /* no block is near this: a sanity bound */

struct pack {
	char name[PACK_NAME_SIZE];
	struct pack_entry *e;
	size_t n;
};

struct pack_set {
	pthread_rwlock_t lock;
	char *dir;
	struct pack *p;
	size_t np, capp;
	/* Open addressing over every entry: (pack, pos) + 1, 0 empty. */
	uint64_t *slot;
	size_t cap, used;
};

int pack_index_encode(const struct pack_entry *e, size_t n, uint8_t **out, size_t *len)
{
	if (n > PACK_MAX_ENTRIES)
		return error_set(-E2BIG, "a pack of %zu blocks is too big", n);
	size_t l = PACK_INDEX_HEAD + n * PACK_INDEX_ENTRY;
	uint8_t *b = malloc(l);
	if (!b)
		return error_set(-ENOMEM, "out of memory");
	memcpy(b, PACK_INDEX_MAGIC, 4);
	le_put32(b + 4, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *r = b + PACK_INDEX_HEAD + i * PACK_INDEX_ENTRY;
		memcpy(r, e[i].id.b, BLOCKID_SIZE);
		le_put64(r + BLOCKID_SIZE, e[i].off);
		le_put32(r + BLOCKID_SIZE + 8, e[i].len);
	}
	*out = b;
	*len = l;
	return 0;
}

int pack_index_decode(const uint8_t *body, size_t len, uint32_t max_len, struct pack_entry **out,
		      size_t *n)
{
	*out = NULL;
	*n = 0;
	if (len < PACK_INDEX_HEAD || memcmp(body, PACK_INDEX_MAGIC, 4))
		return error_set(-EBADMSG, "a pack index without its header");
	uint32_t count = le_get32(body + 4);
	if (count > PACK_MAX_ENTRIES || len != PACK_INDEX_HEAD + (size_t)count * PACK_INDEX_ENTRY)
		return error_set(-EBADMSG, "a pack index of %zu bytes cannot hold %u entries", len,
				 count);
	struct pack_entry *e = malloc((count ? count : 1) * sizeof(*e));
	if (!e)
		return error_set(-ENOMEM, "out of memory");
	uint64_t next = 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *r = body + PACK_INDEX_HEAD + (size_t)i * PACK_INDEX_ENTRY;
		memcpy(e[i].id.b, r, BLOCKID_SIZE);
		e[i].off = le_get64(r + BLOCKID_SIZE);
		e[i].len = le_get32(r + BLOCKID_SIZE + 8);
		/* One after the other from 0: a reader may then read any run
		 * of them as one range. */
		if (e[i].off != next || e[i].len == 0 || e[i].len > max_len ||
		    e[i].len > MAX_SEALED) {
			unsigned long long off = e[i].off;
			uint32_t l = e[i].len;
			free(e);
			return error_set(-EBADMSG, "pack index entry %u is out of place "
					 "(offset %llu, %u bytes)", i, off, l);
		}
		next = e[i].off + e[i].len;
	}
	*out = e;
	*n = count;
	return 0;
}

void pack_new_name(char out[PACK_NAME_SIZE])
{
	uint8_t r[16];
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, PACK_NAME_SIZE, r, sizeof(r));
}

static int name_valid(const char *name)
{
	if (strlen(name) != PACK_NAME_SIZE - 1)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return 0;
	return 1;
}

/* ---- the lookup table --------------------------------------------------- */

static size_t id_hash(const blockid_t *id)
{
	size_t h;
	memcpy(&h, id->b, sizeof(h)); /* ids are uniform already */
	return h;
}

static const struct pack_entry *slot_entry(const struct pack_set *s, uint64_t v)
{
	uint64_t pk = (v - 1) >> 32, pos = (v - 1) & 0xffffffffu;
	return &s->p[pk].e[pos];
}

static void slot_insert(struct pack_set *s, uint32_t pk, uint32_t pos)
{
	const blockid_t *id = &s->p[pk].e[pos].id;
	size_t i = id_hash(id) & (s->cap - 1);
	while (s->slot[i]) {
		if (!blockid_cmp(&slot_entry(s, s->slot[i])->id, id))
			return; /* in an earlier pack too: either copy will do */
		i = (i + 1) & (s->cap - 1);
	}
	s->slot[i] = (((uint64_t)pk << 32) | pos) + 1;
	s->used++;
}

static int table_grow(struct pack_set *s, size_t more)
{
	if ((s->used + more) * 2 <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 1024;
	while ((s->used + more) * 2 > cap)
		cap *= 2;
	uint64_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return error_set(-ENOMEM, "out of memory for the pack index");
	uint64_t *old = s->slot;
	size_t oldcap = s->cap;
	s->slot = slot;
	s->cap = cap;
	s->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i]) {
			uint64_t v = old[i] - 1;
			slot_insert(s, (uint32_t)(v >> 32), (uint32_t)v);
		}
	}
	free(old);
	return 0;
}

/* Caller holds the write lock; takes e. */
static int add_locked(struct pack_set *s, const char *name, struct pack_entry *e, size_t n)
{
	if (s->np == s->capp) {
		size_t cap = s->capp ? s->capp * 2 : 64;
		struct pack *p = realloc(s->p, cap * sizeof(*p));
		if (!p) {
			free(e);
			return error_set(-ENOMEM, "out of memory for the pack index");
		}
		s->p = p;
		s->capp = cap;
	}
	int rc = table_grow(s, n);
	if (rc) {
		free(e);
		return rc;
	}
	struct pack *p = &s->p[s->np];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->e = e;
	p->n = n;
	uint32_t pk = (uint32_t)s->np++;
	for (size_t i = 0; i < n; i++)
		slot_insert(s, pk, (uint32_t)i);
	return 0;
}

static int has_locked(const struct pack_set *s, const char *name)
{
	for (size_t i = 0; i < s->np; i++)
		if (!strcmp(s->p[i].name, name))
			return 1;
	return 0;
}

/* ---- the cache directory ------------------------------------------------ */

static int write_body(const char *dir, const char *name, const uint8_t *body, size_t len)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, body + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int rc = -errno;
			close(fd);
			unlink(tmp);
			return rc;
		}
		done += (size_t)w;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static int read_body(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > PACK_INDEX_HEAD + PACK_MAX_ENTRIES * PACK_INDEX_ENTRY) {
		close(fd);
		return -EBADMSG;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	ssize_t r = b ? pread(fd, b, (size_t)st.st_size, 0) : -1;
	close(fd);
	if (r != st.st_size) {
		free(b);
		return -EIO;
	}
	*out = b;
	*len = (size_t)st.st_size;
	return 0;
}

static void load_dir(struct pack_set *s)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
		if (de->d_name[0] == '.')
			continue;
		if (!name_valid(de->d_name)) {
			if (strstr(de->d_name, ".tmp"))
				unlink(path); /* a write cut short */
			continue;
		}
		uint8_t *body = NULL;
		size_t len = 0;
		struct pack_entry *e = NULL;
		size_t n = 0;
		if (read_body(path, &body, &len) || pack_index_decode(body, len, MAX_SEALED, &e, &n)) {
			log_warn("dropping the damaged pack index %s (the cloud has it)", path);
			unlink(path);
		} else if (add_locked(s, de->d_name, e, n)) {
			log_warn("pack index %s: %s", path, error_last());
		}
		free(body);
	}
	closedir(d);
}

/* ---- the set ------------------------------------------------------------- */

int pack_set_new(struct pack_set **out, const char *cache_dir)
{
	struct pack_set *s = calloc(1, sizeof(*s));
	if (!s)
		return error_set(-ENOMEM, "out of memory");
	pthread_rwlock_init(&s->lock, NULL);
	if (cache_dir) {
		if (!(s->dir = strdup(cache_dir))) {
			pack_set_free(s);
			return error_set(-ENOMEM, "out of memory");
		}
		if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
			int rc = error_set(-errno, "cannot make %s: %s", s->dir, strerror(errno));
			pack_set_free(s);
			return rc;
		}
		load_dir(s);
	}
	*out = s;
	return 0;
}

void pack_set_free(struct pack_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->np; i++)
		free(s->p[i].e);
	free(s->p);
	free(s->slot);
	free(s->dir);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int pack_set_has(struct pack_set *s, const char *name)
{
	pthread_rwlock_rdlock(&s->lock);
	int r = has_locked(s, name);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int pack_set_add(struct pack_set *s, const char *name, const uint8_t *body, size_t len)
{
	if (!name_valid(name))
		return error_set(-EBADMSG, "'%s' is not a pack name", name);
	struct pack_entry *e = NULL;
	size_t n = 0;
	int rc = pack_index_decode(body, len, MAX_SEALED, &e, &n);
	if (rc)
		return error_set(rc, "pack %s: %s", name, error_last());
	pthread_rwlock_wrlock(&s->lock);
	if (has_locked(s, name)) {
		pthread_rwlock_unlock(&s->lock);
		free(e);
		return 0;
	}
	rc = add_locked(s, name, e, n);
	pthread_rwlock_unlock(&s->lock);
	/* Losing the copy only costs one more GET after a restart. */
	if (!rc && s->dir && (rc = write_body(s->dir, name, body, len)) != 0) {
		log_warn("cannot keep pack index %s in %s: %s", name, s->dir, strerror(-rc));
		rc = 0;
	}
	return rc;
}

int pack_find(struct pack_set *s, const blockid_t *id, struct pack_loc *out)
{
	int found = 0;
	pthread_rwlock_rdlock(&s->lock);
	if (s->cap) {
		for (size_t i = id_hash(id) & (s->cap - 1); s->slot[i]; i = (i + 1) & (s->cap - 1)) {
			const struct pack_entry *e = slot_entry(s, s->slot[i]);
			if (!blockid_cmp(&e->id, id)) {
				uint64_t v = s->slot[i] - 1;
				out->pack = (uint32_t)(v >> 32);
				out->pos = (uint32_t)v;
				out->e = *e;
				found = 1;
				break;
			}
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return found;
}

int pack_entry_at(struct pack_set *s, uint32_t pack, uint32_t pos, struct pack_entry *out)
{
	int ok = 0;
	pthread_rwlock_rdlock(&s->lock);
	if (pack < s->np && pos < s->p[pack].n) {
		*out = s->p[pack].e[pos];
		ok = 1;
	}
	pthread_rwlock_unlock(&s->lock);
	return ok;
}

void pack_name(struct pack_set *s, uint32_t pack, char out[PACK_NAME_SIZE])
{
	pthread_rwlock_rdlock(&s->lock);
	snprintf(out, PACK_NAME_SIZE, "%s", pack < s->np ? s->p[pack].name : "");
	pthread_rwlock_unlock(&s->lock);
}

size_t pack_set_count(struct pack_set *s)
{
	pthread_rwlock_rdlock(&s->lock);
	size_t n = s->np;
	pthread_rwlock_unlock(&s->lock);
	return n;
}
