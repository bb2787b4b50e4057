/* tree: owns the mapping between the volume's directory structure and git
 * trees and commits, and the translation of libgit2 errors into -errno
 * plus a message (tree_git_error) for every module that calls libgit2.
 *
 * tree_build sorts the flat entry list so that each directory's entries are
 * contiguous, then builds bottom-up with one git_treebuilder per directory.
 * Paths are checked here rather than left to libgit2 so that a bad name is
 * -EINVAL with a message naming the path, not a generic -EIO. */
#include "config.h"
#include "core/tree.h"

#define LOG_MODULE "tree"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"

int tree_git_error(int rc, const char *what)
{
	const git_error *e = git_error_last();
	const char *msg = e && e->message ? e->message : "unknown libgit2 error";
	int err;
	switch (rc) {
	case GIT_ENOTFOUND:
		err = -ENOENT;
		break;
	case GIT_EEXISTS:
		err = -EEXIST;
		break;
	case GIT_EINVALIDSPEC:
		err = -EINVAL;
		break;
	default:
		err = -EIO;
	}
	log_debug("%s: %s (libgit2 %d)", what, msg, rc);
	return error_set(err, "%s: %s", what, msg);
}

/* ---- validation ------------------------------------------------------------ */

static int component_ok(const char *c, size_t n)
{
	if (n == 0)
		return 0;
	if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
		return 0;
	/* Any case: libgit2 refuses .GIT too, and it would shadow the
	 * repository on case-insensitive systems. */
	return !(n == 4 && strncasecmp(c, ".git", 4) == 0);
}

static int entry_check(const struct tree_entry *e)
{
	const char *p = e->path;
	if (!p || !*p)
		return error_set(-EINVAL, "tree: empty path");
	for (;;) {
		size_t n = strcspn(p, "/");
		if (!component_ok(p, n))
			return error_set(-EINVAL,
					 "tree: invalid path \"%s\" (empty, \".\", \"..\" or "
					 "\".git\" component, or leading or trailing '/')",
					 e->path);
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	switch (e->git_mode) {
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
	case GIT_FILEMODE_LINK:
	case GIT_FILEMODE_TREE:
		break;
	default:
		return error_set(-EINVAL, "tree: %s has unsupported mode %o", e->path, e->git_mode);
	}
	if (!e->has_oid && e->git_mode != GIT_FILEMODE_TREE && e->len && !e->data)
		return error_set(-EINVAL, "tree: %s has no content", e->path);
	return 0;
}

/* ---- build ------------------------------------------------------------------ */

/* '\0' < '/' < any other byte: a directory's entries then directly follow
 * the directory's own entry, so that every directory is one contiguous
 * run, and duplicates are neighbours. */
static int path_key(char c)
{
	return c == '\0' ? 0 : c == '/' ? 1 : (unsigned char)c + 2;
}

static int entry_cmp(const void *a, const void *b)
{
	const char *p = (*(const struct tree_entry *const *)a)->path;
	const char *q = (*(const struct tree_entry *const *)b)->path;
	while (*p && *p == *q)
		p++, q++;
	return path_key(*p) - path_key(*q);
}

struct builder {
	git_repository *repo;
	const struct tree_entry **e; /* sorted */
};

static int build_dir(struct builder *b, size_t lo, size_t hi, size_t skip, git_oid *out);

static int is_under(const char *p, const char *name, size_t nlen)
{
	return strncmp(p, name, nlen) == 0 && p[nlen] == '/';
}

/* The object of an entry that names itself (has no entries under it). */
static int leaf_oid(struct builder *b, const struct tree_entry *e, git_oid *out)
{
	if (e->has_oid) {
		git_oid_cpy(out, &e->oid);
		return 0;
	}
	if (e->git_mode == GIT_FILEMODE_TREE)
		return build_dir(b, 0, 0, 0, out); /* an empty directory */
	int rc = git_blob_create_from_buffer(out, b->repo, e->data ? e->data : "", e->len);
	return rc ? tree_git_error(rc, "tree: writing a blob") : 0;
}

static int insert(git_treebuilder *tb, const char *name, size_t nlen, const git_oid *oid,
		  uint32_t mode, const char *path)
{
	char *n = strndup(name, nlen);
	if (!n)
		return error_set(-ENOMEM, "tree: out of memory");
	int rc = git_treebuilder_insert(NULL, tb, n, oid, (git_filemode_t)mode);
	free(n);
	if (!rc)
		return 0;
	/* A name libgit2 refuses (git~1, ".git " ...) or an oid that is not
	 * an object of that type: both are the caller's input. */
	tree_git_error(rc, path);
	return -EINVAL;
}

/* Adds the child named by the next component of entry *i's path, and
 * consumes every entry under it. */
static int build_child(struct builder *b, size_t *i, size_t hi, size_t skip, git_treebuilder *tb)
{
	const struct tree_entry *e = b->e[*i];
	const char *name = e->path + skip;
	size_t nlen = strcspn(name, "/");
	int own = name[nlen] == '\0'; /* e is the child itself */
	size_t first = *i + (size_t)own, end = first;
	while (end < hi && is_under(b->e[end]->path + skip, name, nlen))
		end++;
	*i = end;
	if (own && first < hi && strcmp(b->e[first]->path, e->path) == 0)
		return error_set(-EINVAL, "tree: duplicate path \"%s\"", e->path);
	if (own && end > first && (e->git_mode != GIT_FILEMODE_TREE || e->has_oid))
		return error_set(-EINVAL,
				 "tree: \"%s\" is not a directory to build but has "
				 "entries under it",
				 e->path);

	git_oid oid;
	int rc = own && end == first ? leaf_oid(b, e, &oid)
				     : build_dir(b, first, end, skip + nlen + 1, &oid);
	if (rc)
		return rc;
	uint32_t mode = own ? e->git_mode : GIT_FILEMODE_TREE;
	return insert(tb, name, nlen, &oid, mode, own ? e->path : b->e[first]->path);
}

/* Builds the tree of sorted entries [lo, hi), which all lie in one
 * directory whose path with its '/' is their first skip bytes. */
static int build_dir(struct builder *b, size_t lo, size_t hi, size_t skip, git_oid *out)
{
	git_treebuilder *tb;
	int rc = git_treebuilder_new(&tb, b->repo, NULL);
	if (rc)
		return tree_git_error(rc, "tree: creating a tree builder");
	size_t i = lo;
	while (!rc && i < hi)
		rc = build_child(b, &i, hi, skip, tb);
	if (!rc) {
		rc = git_treebuilder_write(out, tb);
		if (rc)
			rc = tree_git_error(rc, "tree: writing a tree");
	}
	git_treebuilder_free(tb);
	return rc;
}

int tree_build(git_oid *out, git_repository *repo, const struct tree_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = entry_check(&entries[i]);
		if (rc)
			return rc;
	}
	struct builder b = {.repo = repo, .e = NULL};
	if (n) {
		b.e = reallocarray(NULL, n, sizeof(*b.e));
		if (!b.e)
			return error_set(-ENOMEM, "tree: out of memory");
		for (size_t i = 0; i < n; i++)
			b.e[i] = &entries[i];
		qsort(b.e, n, sizeof(*b.e), entry_cmp);
	}
	int rc = build_dir(&b, 0, n, 0, out);
	free(b.e);
	return rc;
}

/* ---- walk ------------------------------------------------------------------- */

struct walk {
	tree_walk_cb cb;
	void *payload;
	char *path;
	size_t cap;
	int rc; /* the callback's non-zero return, or -ENOMEM */
};

static int walk_one(const char *root, const git_tree_entry *te, void *payload)
{
	struct walk *w = payload;
	git_object_t type = git_tree_entry_type(te);
	if (type != GIT_OBJECT_BLOB && type != GIT_OBJECT_TREE)
		return 0; /* submodule links: not ours, nothing to show */
	const char *name = git_tree_entry_name(te);
	size_t rlen = strlen(root), need = rlen + strlen(name) + 1;
	if (need > w->cap) {
		char *p = realloc(w->path, need * 2);
		if (!p) {
			w->rc = error_set(-ENOMEM, "tree: out of memory");
			return -1;
		}
		w->path = p;
		w->cap = need * 2;
	}
	memcpy(w->path, root, rlen);
	strcpy(w->path + rlen, name);
	int rc = w->cb(w->path, (uint32_t)git_tree_entry_filemode(te), git_tree_entry_id(te),
		       w->payload);
	if (!rc)
		return 0;
	/* libgit2 stops only on a negative return: remember the real one. */
	w->rc = rc;
	return -1;
}

int tree_walk(git_repository *repo, const git_oid *tree, tree_walk_cb cb, void *payload)
{
	git_tree *t;
	int rc = git_tree_lookup(&t, repo, tree);
	if (rc)
		return tree_git_error(rc, "tree: reading a tree");
	struct walk w = {.cb = cb, .payload = payload};
	rc = git_tree_walk(t, GIT_TREEWALK_PRE, walk_one, &w);
	git_tree_free(t);
	free(w.path);
	if (w.rc)
		return w.rc;
	return rc ? tree_git_error(rc, "tree: walking a tree") : 0;
}

/* ---- commits ------------------------------------------------------------------ */

static int signature(git_signature **out, const char *device, int64_t when_sec)
{
	size_t n = strlen(device) + sizeof("@peercling");
	char *email = malloc(n);
	if (!email)
		return error_set(-ENOMEM, "tree: out of memory");
	snprintf(email, n, "%s@peercling", device);
	/* UTC, so that a commit's bytes do not depend on where it was made. */
	int rc = git_signature_new(out, "peercling", email, when_sec ? when_sec : time(NULL), 0);
	free(email);
	return rc ? tree_git_error(rc, "tree: commit signature") : 0;
}

static void parents_free(const git_commit **pc, size_t n)
{
	for (size_t i = 0; i < n; i++)
		git_commit_free((git_commit *)pc[i]);
}

static int parents_lookup(const git_commit **pc, git_repository *repo, const git_oid *parents,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		git_commit *c;
		int rc = git_commit_lookup(&c, repo, &parents[i]);
		if (rc) {
			parents_free(pc, i);
			return tree_git_error(rc, "tree: reading a parent commit");
		}
		pc[i] = c;
	}
	return 0;
}

static int move_ref(git_repository *repo, const char *ref, const git_oid *commit)
{
	git_reference *r;
	int rc = git_reference_create(&r, repo, ref, commit, 1, "peercling commit");
	if (rc)
		return tree_git_error(rc, "tree: updating the ref");
	git_reference_free(r);
	return 0;
}

int tree_commit(git_oid *out, git_repository *repo, const char *ref, const git_oid *tree,
		const git_oid *parents, size_t nparents, const char *device, const char *message,
		int64_t when_sec)
{
	if (nparents > 2)
		return error_set(-EINVAL, "tree: a commit has at most 2 parents");
	if (!device || !*device)
		return error_set(-EINVAL, "tree: a commit needs a device id");
	git_signature *sig = NULL;
	git_tree *t = NULL;
	const git_commit *pc[2] = {NULL, NULL};
	int rc = signature(&sig, device, when_sec);
	if (rc)
		return rc;
	rc = git_tree_lookup(&t, repo, tree);
	if (rc)
		rc = tree_git_error(rc, "tree: reading the tree to commit");
	if (!rc)
		rc = parents_lookup(pc, repo, parents, nparents);
	if (!rc) {
		rc = git_commit_create(out, repo, NULL, sig, sig, NULL, message ? message : "", t,
				       nparents, pc);
		if (rc)
			rc = tree_git_error(rc, "tree: creating a commit");
		parents_free(pc, nparents);
	}
	if (!rc && ref)
		rc = move_ref(repo, ref, out);
	git_tree_free(t);
	git_signature_free(sig);
	return rc;
}

int tree_head(git_oid *out_tree, git_oid *out_commit, git_repository *repo, const char *ref)
{
	git_oid id;
	int rc = git_reference_name_to_id(&id, repo, ref);
	if (rc == GIT_ENOTFOUND)
		return error_set(-ENOENT, "%s has no commit yet", ref);
	if (rc)
		return tree_git_error(rc, "tree: reading a ref");
	git_commit *c;
	rc = git_commit_lookup(&c, repo, &id);
	if (rc) {
		/* The ref exists, so a missing commit is damage, not absence. */
		tree_git_error(rc, "tree: reading the commit of a ref");
		return -EIO;
	}
	if (out_tree)
		git_oid_cpy(out_tree, git_commit_tree_id(c));
	if (out_commit)
		git_oid_cpy(out_commit, &id);
	git_commit_free(c);
	return 0;
}

/* ---- escaping user names for trees ----------------------------------------- */

static int needs_escape(const char *c, size_t n)
{
	return (n > 0 && c[0] == '%') || (n == 4 && strncasecmp(c, ".git", 4) == 0);
}

int tree_path_escape(char **out, const char *path)
{
	size_t len = strlen(path), extra = 0;
	for (const char *p = path;;) {
		size_t n = strcspn(p, "/");
		extra += needs_escape(p, n);
		if (!p[n])
			break;
		p += n + 1;
	}
	char *o = malloc(len + extra + 1), *w = o;
	if (!o)
		return -ENOMEM;
	for (const char *p = path;;) {
		size_t n = strcspn(p, "/");
		if (needs_escape(p, n))
			*w++ = '%';
		memcpy(w, p, n);
		w += n;
		if (!p[n])
			break;
		*w++ = '/';
		p += n + 1;
	}
	*w = '\0';
	*out = o;
	return 0;
}

int tree_path_unescape(char **out, const char *path)
{
	char *o = malloc(strlen(path) + 1), *w = o;
	if (!o)
		return -ENOMEM;
	for (const char *p = path;;) {
		size_t n = strcspn(p, "/");
		if (n > 1 && p[0] == '%') {
			p++;
			n--;
		}
		memcpy(w, p, n);
		w += n;
		if (!p[n])
			break;
		*w++ = '/';
		p += n + 1;
	}
	*w = '\0';
	*out = o;
	return 0;
}

int tree_rev(git_oid *out, git_repository *repo, const char *rev)
{
	git_object *o = NULL, *c = NULL;
	int rc = git_revparse_single(&o, repo, rev);
	if (!rc)
		rc = git_object_peel(&c, o, GIT_OBJECT_COMMIT);
	if (!rc)
		*out = *git_object_id(c);
	git_object_free(c);
	git_object_free(o);
	if (rc)
		return error_set(-EINVAL, "no version '%s' in the history (a commit id, a prefix of "
					  "one, or main~N)", rev);
	return 0;
}

int tree_entry_at(git_tree_entry **out, git_repository *repo, const git_oid *commit,
		  const char *path)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	*out = NULL;
	int rc = git_commit_lookup(&c, repo, commit);
	if (!rc)
		rc = git_commit_tree(&t, c);
	if (!rc) {
		rc = git_tree_entry_bypath(out, t, path);
		if (rc == GIT_ENOTFOUND)
			rc = 0;
	}
	git_tree_free(t);
	git_commit_free(c);
	return rc ? tree_git_error(rc, "reading a version of the history") : 0;
}
