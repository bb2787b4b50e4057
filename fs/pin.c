/* pin: see pin.h.  Lists of ids are sorted arrays, compared by merging. */
#include "config.h"
#include "fs/pin.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/store.h"
#include "core/volume.h"
#include "fs/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "pin"

struct ids {
	blockid_t *v;
	uint32_t *len;
	size_t n, cap;
};

static int ids_add(struct ids *l, const blockid_t *id, uint32_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		blockid_t *v = realloc(l->v, cap * sizeof(*v));
		if (v)
			l->v = v;
		uint32_t *ln = realloc(l->len, cap * sizeof(*ln));
		if (ln)
			l->len = ln;
		if (!v || !ln)
			return -ENOMEM;
		l->cap = cap;
	}
	l->v[l->n] = *id;
	l->len[l->n++] = len;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return blockid_cmp(a, b);
}

/* Sorts and drops duplicates (lengths are not needed after this). */
static void ids_sort(struct ids *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_id);
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++)
		if (!w || blockid_cmp(&l->v[w - 1], &l->v[i]))
			l->v[w++] = l->v[i];
	l->n = w;
}

static char *state_file(struct fs *fs, const char *name)
{
	char *p = NULL;
	return volume_file(&p, fs->vol, name) ? NULL : p;
}

/* The pinned paths, one malloc'd string each; *n set. */
static char **read_pins(struct fs *fs, size_t *n)
{
	char *path = state_file(fs, "pins");
	FILE *f = path ? fopen(path, "re") : NULL;
	free(path);
	char **v = NULL, *line = NULL;
	size_t cap = 0, len = 0;
	*n = 0;
	while (f && getline(&line, &len, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char **nv = realloc(v, (cap + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		v[cap++] = strdup(line);
	}
	free(line);
	if (f)
		fclose(f);
	*n = cap;
	return v;
}

/* Replaces STATE/name atomically (temp, fsync, rename) with what fill()
 * writes. */
static int replace_file(struct fs *fs, const char *name, int (*fill)(FILE *f, const void *p),
			const void *p)
{
	char *path = state_file(fs, name), *tmp = NULL;
	if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
		free(path);
		return -ENOMEM;
	}
	FILE *f = fopen(tmp, "we");
	int rc = f ? fill(f, p) : -errno;
	if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0) && !rc)
		rc = -errno;
	if (f)
		fclose(f);
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	free(tmp);
	free(path);
	return rc ? error_set(rc, "cannot write %s: %s", name, strerror(-rc)) : 0;
}

struct lines {
	char **v;
	size_t n;
};

static int fill_lines(FILE *f, const void *p)
{
	const struct lines *l = p;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] && fprintf(f, "%s\n", l->v[i]) < 0)
			return -EIO;
	return 0;
}

static int write_lines(struct fs *fs, const char *name, char **v, size_t n)
{
	struct lines l = { v, n };
	return replace_file(fs, name, fill_lines, &l);
}

static void free_lines(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct fs_inode *find_rel(struct fs *fs, const char *rel)
{
	struct fs_inode *n = fs->root;
	char *copy = strdup(rel), *save = NULL;
	for (char *c = copy ? strtok_r(copy, "/", &save) : NULL; c && n; c = strtok_r(NULL, "/", &save))
		n = S_ISDIR(n->mode) ? fs_table_lookup(fs->table, n, c) : NULL;
	free(copy);
	return copy ? n : NULL;
}

int fs_pin_set(struct fs *fs, const char *rel, int pin)
{
	size_t n;
	pthread_mutex_lock(&fs->lock);
	int exists = find_rel(fs, rel) != NULL;
	pthread_mutex_unlock(&fs->lock);
	char **v = read_pins(fs, &n);
	size_t found = n;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], rel) == 0)
			found = i;
	int rc = 0;
	if (pin && !exists)
		rc = error_set(-ENOENT, "'%s' does not exist in the volume", rel);
	else if (!pin && found == n)
		rc = error_set(-ENOENT, "'%s' is not pinned", rel);
	else if (pin && found == n) {
		char **nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
		} else {
			v = nv;
			v[n++] = strdup(rel);
		}
	} else if (!pin) {
		free(v[found]);
		v[found] = NULL;
	}
	if (!rc)
		rc = write_lines(fs, "pins", v, n);
	free_lines(v, n);
	return rc;
}

static int collect(struct fs_inode *n, struct ids *out)
{
	if (S_ISDIR(n->mode)) {
		for (struct fs_inode *c = n->child_first; c; c = c->sib_next) {
			int rc = collect(c, out);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!S_ISREG(n->mode) || !n->m || n->m->is_inline)
		return 0;
	for (size_t i = 0; i < n->m->nblocks; i++) {
		const struct manifest_block *b = &n->m->blocks[i];
		if (!blockid_is_zero(&b->id)) {
			int rc = ids_add(out, &b->id, b->len);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static void read_pinned(struct fs *fs, struct ids *out)
{
	char *path = state_file(fs, "pinned-blocks");
	FILE *f = path ? fopen(path, "re") : NULL;
	free(path);
	blockid_t id;
	while (f && fread(id.b, BLOCKID_SIZE, 1, f) == 1)
		ids_add(out, &id, 0);
	if (f)
		fclose(f);
	ids_sort(out);
}

static int fill_ids(FILE *f, const void *p)
{
	const struct ids *l = p;
	return !l->n || fwrite(l->v, BLOCKID_SIZE, l->n, f) == l->n ? 0 : -EIO;
}

static int write_pinned(struct fs *fs, const struct ids *l)
{
	return replace_file(fs, "pinned-blocks", fill_ids, l);
}

int fs_pin_reconcile(struct fs *fs, struct fs_pin_report *rep,
		     void (*progress)(void *p, uint64_t done, uint64_t total), void *p)
{
	struct ids want = { 0 }, had = { 0 }, now = { 0 };
	size_t npins;
	int rc = 0;
	memset(rep, 0, sizeof(*rep));
	char **pins = read_pins(fs, &npins);
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; !rc && i < npins; i++) {
		struct fs_inode *n = pins[i] ? find_rel(fs, pins[i]) : NULL;
		if (n)
			rc = collect(n, &want);
	}
	pthread_mutex_unlock(&fs->lock);
	free_lines(pins, npins);
	uint64_t total = 0;
	for (size_t i = 0; i < want.n; i++)
		total += want.len[i];
	ids_sort(&want);
	read_pinned(fs, &had);
	if (!want.n && !had.n) {
		free(want.v);
		free(want.len);
		free(had.v);
		free(had.len);
		return 0; /* nothing pinned, before or now: no file to rewrite */
	}
	struct store *s = fs->vol->store;
	size_t j = 0;
	for (size_t i = 0; !rc && i < want.n; i++) {
		while (j < had.n && blockid_cmp(&had.v[j], &want.v[i]) < 0)
			store_unpin(s, &had.v[j++]); /* no longer wanted */
		int already = j < had.n && blockid_cmp(&had.v[j], &want.v[i]) == 0;
		if (already) {
			j++;
			ids_add(&now, &want.v[i], 0);
			continue;
		}
		uint8_t *data = NULL;
		size_t len = 0;
		int had_it = store_has(s, &want.v[i]);
		if (block_get(fs->vol->fetch, &want.v[i], 0, &data, &len) == 0 &&
		    store_pin(s, &want.v[i]) == 0) {
			ids_add(&now, &want.v[i], 0);
			rep->fetched += !had_it;
		} else {
			rep->failed++;
		}
		free(data);
		if (progress)
			progress(p, i + 1, want.n);
	}
	while (j < had.n)
		store_unpin(s, &had.v[j++]);
	if (!rc)
		rc = write_pinned(fs, &now);
	rep->blocks = now.n;
	rep->bytes = total;
	free(want.v);
	free(want.len);
	free(had.v);
	free(had.len);
	free(now.v);
	free(now.len);
	if (!rc && rep->failed)
		rc = error_set(-EIO, "%llu block(s) could not be fetched (cloud unreachable?); "
			       "they are fetched by the next sync", (unsigned long long)rep->failed);
	return rc;
}
