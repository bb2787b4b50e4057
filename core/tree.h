/* tree: the volume's directory structure as git trees.  A directory is a
 * tree, a file is a manifest blob (mode 100644 or 100755), a symlink is a blob
 * holding its target (mode 120000).  Builds a tree from a flat list of
 * path -> (mode, blob) entries, walks a tree back into such a list, and
 * commits. */
#ifndef PEERCLING_TREE_H
#define PEERCLING_TREE_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

struct tree_entry {
	const char *path;   /* relative, '/'-separated, no leading '/' */
	uint32_t git_mode;  /* GIT_FILEMODE_BLOB, _BLOB_EXECUTABLE, _LINK, _TREE */
	const void *data;   /* blob content, written when has_oid is 0 */
	size_t len;
	int has_oid;        /* oid already known: data is not needed */
	git_oid oid;
};

/* Entries may come in any order; a path that is a prefix directory of another
 * is created implicitly.  An entry with GIT_FILEMODE_TREE and no oid is an
 * (empty) directory.  -EINVAL for an invalid or duplicate path. */
int tree_build(git_oid *out, git_repository *repo, const struct tree_entry *entries,
	       size_t n);

/* Calls cb for every blob entry and every directory (depth first, parents
 * before children).  A non-zero return from cb stops the walk. */
typedef int (*tree_walk_cb)(const char *path, uint32_t git_mode, const git_oid *oid,
			    void *payload);
int tree_walk(git_repository *repo, const git_oid *tree, tree_walk_cb cb, void *payload);

/* Commits tree with the given parents (0, 1 or 2) and moves ref to it (ref
 * NULL: the caller moves it).  Author and committer are "peercling
 * DEVICE"; when_sec 0 means now. */
int tree_commit(git_oid *out, git_repository *repo, const char *ref, const git_oid *tree,
		const git_oid *parents, size_t nparents, const char *device,
		const char *message, int64_t when_sec);

/* 0 and the tree of ref's commit, or -ENOENT when ref does not exist yet. */
int tree_head(git_oid *out_tree, git_oid *out_commit, git_repository *repo, const char *ref);

/* *out: the commit rev names (a commit id or a prefix of one, main~N, any
 * git revision); -EINVAL saying so when none. */
int tree_rev(git_oid *out, git_repository *repo, const char *rev);
/* *out: the entry at path (as trees spell it) in commit; NULL when there
 * is none. */
int tree_entry_at(git_tree_entry **out, git_repository *repo, const git_oid *commit,
		  const char *path);

/* Names a git tree cannot hold (".git" in any case) still exist in user
 * trees (a git checkout inside the mount).  Each path component is escaped
 * for the tree: a name that is ".git" in any case or starts with '%' gets
 * one more '%' in front; unescaping strips one.  A component that is just
 * "%" can therefore never be a user's name: the mount keeps a directory's
 * own metadata there (TREE_DIR_META).  *out malloc'd. */
#define TREE_DIR_META "%"
int tree_path_escape(char **out, const char *path);
int tree_path_unescape(char **out, const char *path);

/* Maps a libgit2 failure to -errno and copies its message into error_set. */
int tree_git_error(int rc, const char *what);

#endif
