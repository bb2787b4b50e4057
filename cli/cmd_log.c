/* log: a mounted volume's history, newest first, or the versions of one
 * path in it; read straight from the repository (git can read it too, but
 * its blobs are manifests, and names are escaped). */
#include "config.h"
#include "cli/cmd.h"
#include "cli/history.h"
#include "core/tree.h"
#include "core/volume.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int run_log(int argc, char **argv);

const struct cmd cmd_log = {
	.name = "log",
	.run = run_log,
	.usage = "peercling log [PATH] [-n N]",
	.summary = "show the history of a volume, or of one path",
	.help = "Every version of the volume mounted at PATH (default: the current\n"
		"directory), newest first: its id (what 'peercling restore --at' takes),\n"
		"date (UTC), the device that made it, and what it was (an idle commit, a\n"
		"sync, a merge, a restore).  With PATH a file or directory inside the\n"
		"mount (it may have been deleted since), only the versions that changed\n"
		"it, each marked added, changed or deleted.  -n N: at most N.\n",
};

/* What c did to path against its first parent: NULL for nothing. */
static const char *change_of(git_repository *repo, const git_commit *c, const char *path)
{
	git_tree_entry *now = NULL, *before = NULL;
	if (tree_entry_at(&now, repo, git_commit_id(c), path) != 0)
		return NULL;
	if (git_commit_parentcount(c) > 0 &&
	    tree_entry_at(&before, repo, git_commit_parent_id(c, 0), path) != 0) {
		git_tree_entry_free(now);
		return NULL;
	}
	const char *what = NULL;
	if (now && !before)
		what = "added";
	else if (!now && before)
		what = "deleted";
	else if (now && before &&
		 (!git_oid_equal(git_tree_entry_id(now), git_tree_entry_id(before)) ||
		  git_tree_entry_filemode(now) != git_tree_entry_filemode(before)))
		what = "changed";
	git_tree_entry_free(now);
	git_tree_entry_free(before);
	return what;
}

static void print_commit(const git_commit *c, const char *what)
{
	char id[GIT_OID_HEXSZ + 1], date[32];
	git_oid_tostr(id, sizeof(id), git_commit_id(c));
	time_t t = (time_t)git_commit_time(c);
	struct tm tm;
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
	const git_signature *a = git_commit_author(c);
	const char *email = a && a->email ? a->email : "?";
	int dev = (int)strcspn(email, "@");
	const char *summary = git_commit_summary((git_commit *)c);
	printf("%.12s  %s  %-8.*s  %s%s%s\n", id, date, dev > 8 ? 8 : dev, email,
	       summary ? summary : "", what ? ": " : "", what ? what : "");
}

static int run_log(int argc, char **argv)
{
	const char *path = NULL;
	long max = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n")) {
			char *end = NULL;
			if (i + 1 < argc)
				max = strtol(argv[++i], &end, 10);
			if (!end || *end || max < 0)
				return cmd_usage_error(&cmd_log, "-n takes a number");
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cmd_usage_error(&cmd_log, "unknown option %s", argv[i]);
		} else if (path) {
			return cmd_usage_error(&cmd_log, "log takes at most one PATH");
		} else {
			path = argv[i];
		}
	}
	if (!path)
		path = ".";
	struct history h;
	git_revwalk *w = NULL;
	int rc = EXIT_OK, err = history_open(&h, path);
	git_repository *repo = h.repo;
	const char *gpath = h.gpath;
	if (err)
		rc = cmd_fail(err, "cannot show the history of %s", path);
	if (rc == EXIT_OK &&
	    (git_revwalk_new(&w, repo) != 0 ||
	     git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME) != 0)) {
		rc = cmd_fail(-EIO, "cannot walk the history");
	} else if (rc == EXIT_OK && git_revwalk_push_ref(w, VOLUME_REF) != 0) {
		printf("no versions yet\n");
	} else if (rc == EXIT_OK) {
		git_oid id;
		long shown = 0;
		int next = 0;
		while ((max < 0 || shown < max) && (next = git_revwalk_next(&id, w)) == 0) {
			git_commit *c = NULL;
			if (git_commit_lookup(&c, repo, &id) != 0) {
				rc = cmd_fail(-EIO, "cannot read version %s", git_oid_tostr_s(&id));
				break;
			}
			const char *what = gpath ? change_of(repo, c, gpath) : NULL;
			if (!gpath || what) {
				print_commit(c, what);
				shown++;
			}
			git_commit_free(c);
		}
		if (rc == EXIT_OK && next && next != GIT_ITEROVER)
			rc = cmd_fail(-EIO, "cannot walk the history: %s",
				      git_error_last() ? git_error_last()->message : "?");
		else if (rc == EXIT_OK && !shown && gpath)
			printf("no version changed %s\n", path);
	}
	git_revwalk_free(w);
	history_close(&h);
	return rc;
}
