/* inode: two hash tables (by number and by parent+name) that grow by
 * doubling, and the per-directory child lists that readdir walks. */
#include "config.h"
#include "fs/inode.h"
#include "core/manifest.h"
#include "fs/overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct fs_table {
	struct fs_inode **by_ino, **by_dent;
	size_t nbuckets; /* a power of two, for both tables */
	uint64_t count;
	uint64_t next_ino;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static uint64_t dent_hash(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ parent;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return mix(h);
}

int fs_table_new(struct fs_table **out)
{
	struct fs_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_dent = calloc(t->nbuckets, sizeof(*t->by_dent));
	if (!t->by_ino || !t->by_dent) {
		fs_table_free(t);
		return -ENOMEM;
	}
	t->next_ino = 1; /* FUSE_ROOT_ID */
	*out = t;
	return 0;
}

static void inode_destroy(struct fs_inode *ino)
{
	manifest_free(ino->m);
	fs_overlay_free(ino->ov);
	free(ino->ra);
	free(ino->kept);
	free(ino->kept_name);
	pthread_rwlock_destroy(&ino->data_lock);
	free(ino->target);
	free(ino->name);
	free(ino);
}

void fs_table_free(struct fs_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->by_ino && i < t->nbuckets; i++) {
		struct fs_inode *n = t->by_ino[i];
		while (n) {
			struct fs_inode *next = n->ino_next;
			inode_destroy(n);
			n = next;
		}
	}
	free(t->by_ino);
	free(t->by_dent);
	free(t);
}

static void grow(struct fs_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct fs_inode **bi = calloc(nb, sizeof(*bi)), **bd = calloc(nb, sizeof(*bd));
	if (!bi || !bd) {
		free(bi);
		free(bd);
		return; /* keep the old, slower tables: still correct */
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct fs_inode *n = t->by_ino[i], *next; n; n = next) {
			next = n->ino_next;
			size_t b = mix(n->ino) & (nb - 1);
			n->ino_next = bi[b];
			bi[b] = n;
		}
		for (struct fs_inode *n = t->by_dent[i], *next; n; n = next) {
			next = n->dent_next;
			size_t b = dent_hash(n->parent->ino, n->name) & (nb - 1);
			n->dent_next = bd[b];
			bd[b] = n;
		}
	}
	free(t->by_ino);
	free(t->by_dent);
	t->by_ino = bi;
	t->by_dent = bd;
	t->nbuckets = nb;
}

struct fs_inode *fs_inode_new(struct fs_table *t, mode_t mode)
{
	struct fs_inode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	if (t->count >= t->nbuckets)
		grow(t);
	n->ino = t->next_ino++;
	n->mode = mode;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->atime = n->mtime;
	pthread_rwlock_init(&n->data_lock, NULL);
	size_t b = mix(n->ino) & (t->nbuckets - 1);
	n->ino_next = t->by_ino[b];
	t->by_ino[b] = n;
	t->count++;
	return n;
}

struct fs_inode *fs_table_find(struct fs_table *t, uint64_t ino)
{
	for (struct fs_inode *n = t->by_ino[mix(ino) & (t->nbuckets - 1)]; n; n = n->ino_next)
		if (n->ino == ino)
			return n;
	return NULL;
}

struct fs_inode *fs_table_lookup(struct fs_table *t, struct fs_inode *dir, const char *name)
{
	size_t b = dent_hash(dir->ino, name) & (t->nbuckets - 1);
	for (struct fs_inode *n = t->by_dent[b]; n; n = n->dent_next)
		if (n->parent == dir && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

uint64_t fs_table_count(struct fs_table *t)
{
	return t->count;
}

int fs_inode_link(struct fs_table *t, struct fs_inode *dir, struct fs_inode *child,
		  const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(child->name);
	child->name = copy;
	child->parent = dir;
	size_t b = dent_hash(dir->ino, name) & (t->nbuckets - 1);
	child->dent_next = t->by_dent[b];
	t->by_dent[b] = child;
	child->sib_prev = NULL;
	child->sib_next = dir->child_first;
	if (dir->child_first)
		dir->child_first->sib_prev = child;
	dir->child_first = child;
	dir->nchildren++;
	if (S_ISDIR(child->mode))
		dir->nsubdirs++;
	return 0;
}

void fs_inode_unlink(struct fs_table *t, struct fs_inode *child)
{
	struct fs_inode *dir = child->parent;
	if (!dir)
		return;
	size_t b = dent_hash(dir->ino, child->name) & (t->nbuckets - 1);
	for (struct fs_inode **pp = &t->by_dent[b]; *pp; pp = &(*pp)->dent_next) {
		if (*pp == child) {
			*pp = child->dent_next;
			break;
		}
	}
	if (child->sib_prev)
		child->sib_prev->sib_next = child->sib_next;
	else
		dir->child_first = child->sib_next;
	if (child->sib_next)
		child->sib_next->sib_prev = child->sib_prev;
	child->sib_next = child->sib_prev = child->dent_next = NULL;
	child->parent = NULL;
	dir->nchildren--;
	if (S_ISDIR(child->mode) && dir->nsubdirs)
		dir->nsubdirs--;
}

static void table_remove(struct fs_table *t, struct fs_inode *n)
{
	for (struct fs_inode **pp = &t->by_ino[mix(n->ino) & (t->nbuckets - 1)]; *pp;
	     pp = &(*pp)->ino_next) {
		if (*pp == n) {
			*pp = n->ino_next;
			t->count--;
			return;
		}
	}
}

void fs_inode_maybe_free(struct fs_table *t, struct fs_inode *n)
{
	if (n->parent || n->ino == 1 || n->nlookup || n->open_count || n->child_first ||
	    n->early_busy)
		return;
	table_remove(t, n);
	inode_destroy(n);
}

void fs_inode_free_tree(struct fs_table *t, struct fs_inode *root)
{
	while (root->child_first) {
		struct fs_inode *c = root->child_first;
		fs_inode_unlink(t, c);
		fs_inode_free_tree(t, c);
	}
	table_remove(t, root);
	inode_destroy(root);
}

int fs_inode_path(char **out, const struct fs_inode *ino)
{
	size_t len = 0, parts = 0;
	for (const struct fs_inode *n = ino; n->parent; n = n->parent) {
		len += strlen(n->name);
		parts++;
	}
	if (parts > 1)
		len += parts - 1;
	char *p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	p[len] = '\0';
	size_t pos = len;
	for (const struct fs_inode *n = ino; n->parent; n = n->parent) {
		size_t l = strlen(n->name);
		pos -= l;
		memcpy(p + pos, n->name, l);
		if (pos > 0)
			p[--pos] = '/';
	}
	*out = p;
	return 0;
}

void fs_inode_touch_blob(struct fs_inode *ino)
{
	ino->blob_valid = 0;
}
