/* restore: an earlier version of one file, brought back by a commit whose
 * tree is the current one with that file's entry taken from the earlier
 * version.  A manifest is all a version of a file is, so this copies no
 * data: the blocks are the old ones, fetched when read.  The commit goes
 * through fs_commit_and_merge, the path a sync's merge takes, so the working
 * tree, the journal and the kernel's caches follow as they do for a merge. */
#include "config.h"
#include "fs/restore.h"
#include "core/error.h"
#include "core/tree.h"
#include "core/volume.h"
#include "fs/fs.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct restore {
	struct fs *fs;
	const char *rev, *rel;
	char *gpath; /* rel as the trees spell it */
	git_oid from; /* the commit the file came from */
	int changed;
};

static int same_entry(const git_tree_entry *a, const git_tree_entry *b)
{
	if (!a || !b)
		return a == b;
	return git_tree_entry_filemode(a) == git_tree_entry_filemode(b) &&
	       git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b));
}

/* The newest commit before local, down the first parents (children
 * before parents, whatever the clocks said, and no sorting of the whole
 * history), whose version of the file differs from now's and has the
 * file. */
#define WALK_MAX 100000

static int previous_version(git_oid *out, struct restore *r, const git_oid *local,
			    const git_tree_entry *now)
{
	git_repository *repo = r->fs->vol->repo;
	git_oid id = *local;
	int rc = 0, found = 0;
	for (int steps = 0; !rc && !found && steps < WALK_MAX; steps++) {
		git_tree_entry *e = NULL;
		git_commit *c = NULL;
		rc = tree_entry_at(&e, repo, &id, r->gpath);
		if (!rc && e && !same_entry(e, now)) {
			*out = id;
			found = 1;
		}
		git_tree_entry_free(e);
		if (rc || found)
			break;
		if ((rc = git_commit_lookup(&c, repo, &id)) != 0) {
			rc = tree_git_error(rc, "walking the history");
			break;
		}
		if (git_commit_parentcount(c) == 0) {
			git_commit_free(c);
			break;
		}
		id = *git_commit_parent_id(c, 0);
		git_commit_free(c);
	}
	if (!rc && !found)
		rc = error_set(-ENODATA, "%s has no earlier version", r->rel);
	return rc;
}

/* fs_commit_and_merge's merge step: *out is local plus the restored file.
 * -ENODATA for "no such version": -ENOENT means "no history" there. */
static int restore_onto(git_oid *out, const git_oid *local, int has_local, void *p)
{
	struct restore *r = p;
	git_repository *repo = r->fs->vol->repo;
	if (!has_local)
		return error_set(-ENODATA, "%s has no earlier version: nothing is committed yet",
				 r->rel);
	git_tree_entry *now = NULL, *then = NULL;
	git_commit *lc = NULL;
	git_tree *lt = NULL;
	/* (fs->lock is held here) */
	if (fs_path_busy(r->fs, r->rel))
		return error_set(-EBUSY, "%s is open, or has writes not flushed yet: close it "
					 "first", r->rel);
	int rc = tree_entry_at(&now, repo, local, r->gpath);
	if (!rc)
		rc = r->rev && *r->rev ? tree_rev(&r->from, repo, r->rev)
				       : previous_version(&r->from, r, local, now);
	if (!rc)
		rc = tree_entry_at(&then, repo, &r->from, r->gpath);
	if (!rc && !then)
		rc = error_set(-ENODATA, "%s did not exist in version %.12s", r->rel,
			       git_oid_tostr_s(&r->from));
	if (!rc && git_tree_entry_type(then) != GIT_OBJECT_BLOB)
		rc = error_set(-EISDIR, "%s is a directory in version %.12s: restore its files",
			       r->rel, git_oid_tostr_s(&r->from));
	if (!rc && now && git_tree_entry_type(now) == GIT_OBJECT_TREE)
		rc = error_set(-EISDIR, "%s is a directory now: move it away first", r->rel);
	if (!rc && same_entry(now, then)) {
		*out = *local; /* it holds that version already */
		goto done;
	}
	if (!rc && ((rc = git_commit_lookup(&lc, repo, local)) || (rc = git_commit_tree(&lt, lc))))
		rc = tree_git_error(rc, "reading the current version");
	if (!rc) {
		git_tree_update up = { GIT_TREE_UPDATE_UPSERT, *git_tree_entry_id(then),
				       git_tree_entry_filemode(then), r->gpath };
		git_oid tree;
		char msg[512];
		if ((rc = git_tree_create_updated(&tree, repo, lt, 1, &up)))
			rc = tree_git_error(rc, "making the tree with the restored file");
		snprintf(msg, sizeof(msg), "restore %s as of %.12s", r->rel,
			 git_oid_tostr_s(&r->from));
		if (!rc)
			rc = tree_commit(out, repo, NULL, &tree, local, 1, r->fs->vol->device_id,
					 msg, 0); /* the ref moves once the tree is taken in */
		r->changed = !rc;
	}
done:
	git_tree_free(lt);
	git_commit_free(lc);
	git_tree_entry_free(now);
	git_tree_entry_free(then);
	/* A missing object is damage here, not "no history" as -ENOENT
	 * would tell fs_commit_and_merge. */
	return rc == -ENOENT ? -EIO : rc;
}

int fs_restore(struct fs *fs, const char *rev, const char *rel, char **said)
{
	struct restore r = { fs, rev, rel, NULL, { { 0 } }, 0 };
	git_oid head;
	int has = 0;
	*said = NULL;
	int rc = tree_path_escape(&r.gpath, rel);
	if (!rc)
		rc = fs_commit_and_merge(fs, restore_onto, &r, &head, &has);
	if (rc == -ENODATA)
		rc = -ENOENT;
	if (!rc) {
		git_commit *c = NULL;
		char date[32] = "?";
		if (git_commit_lookup(&c, fs->vol->repo, &r.from) == 0) {
			time_t t = (time_t)git_commit_time(c);
			struct tm tm;
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
		}
		git_commit_free(c);
		if (asprintf(said, "%s %s %.12s (%s)", rel,
			     r.changed ? "restored as of" : "is already as of", git_oid_tostr_s(&r.from),
			     date) < 0) {
			*said = NULL;
			rc = -ENOMEM;
		}
	}
	free(r.gpath);
	return rc;
}
