/* diff: which paths changed between two versions of a mounted volume, with
 * their sizes; read straight from the repository (a file's blob there is
 * its manifest, so git's own diff would show block lists). */
#include "config.h"
#include "cli/cmd.h"
#include "cli/history.h"
#include "core/manifest.h"
#include "core/tree.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_diff(int argc, char **argv);

const struct cmd cmd_diff = {
	.name = "diff",
	.run = run_diff,
	.usage = "peercling diff [PATH] [--from VERSION] [--to VERSION]",
	.summary = "show which paths changed between two versions",
	.help = "Lists the files, links and directories added, changed or deleted\n"
		"between two versions of the volume mounted at PATH (default: the\n"
		"current directory), with their sizes; only those under PATH when it is\n"
		"inside the mount.  --to: the newer version (default: the newest);\n"
		"--from: the older (default: the one before --to).  VERSION: an id from\n"
		"'peercling log', a prefix of one, or main~N.\n",
};

static int commit_of(git_commit **out, git_repository *repo, const char *rev)
{
	git_oid id;
	*out = NULL;
	int rc = tree_rev(&id, repo, rev);
	if (!rc && git_commit_lookup(out, repo, &id) != 0)
		rc = tree_git_error(-1, "reading a version of the history");
	return rc;
}

/* "12.3 KiB" for a file's size (its manifest's), a link's target length;
 * "" for a directory. */
static void size_of(char *buf, size_t len, git_repository *repo, const git_diff_file *f)
{
	git_blob *b = NULL;
	struct manifest *m = NULL;
	buf[0] = 0;
	if (f->mode == GIT_FILEMODE_TREE || git_blob_lookup(&b, repo, &f->id) != 0)
		return;
	uint64_t size = (uint64_t)git_blob_rawsize(b);
	if (f->mode != GIT_FILEMODE_LINK &&
	    manifest_decode(&m, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b)) == 0)
		size = m->size;
	cmd_human_size(size, buf, len);
	manifest_free(m);
	git_blob_free(b);
}

struct shown {
	git_repository *repo;
	const char *under; /* only paths there (escaped), or NULL */
	size_t under_len, n;
};

static int show_delta(const git_diff_delta *d, float progress, void *p)
{
	struct shown *s = p;
	(void)progress;
	const char *path = d->new_file.path ? d->new_file.path : d->old_file.path;
	const char *last = strrchr(path, '/');
	if (s->under && (strncmp(path, s->under, s->under_len) ||
			 (path[s->under_len] && path[s->under_len] != '/')))
		return 0;
	/* A directory's own metadata: it was made or removed, or only its
	 * mode or times changed (not listed). */
	int dir = !strcmp(last ? last + 1 : path, TREE_DIR_META);
	if (dir && d->status != GIT_DELTA_ADDED && d->status != GIT_DELTA_DELETED)
		return 0;
	char *name = NULL, was[16], now[16];
	if (dir) {
		if (!last)
			return 0; /* the top's own */
		char *parent = strndup(path, (size_t)(last - path));
		int r = parent ? tree_path_unescape(&name, parent) : -1;
		free(parent);
		if (r)
			return -1;
		printf("%s %s/\n", d->status == GIT_DELTA_ADDED ? "added   " : "deleted ", name);
		free(name);
		s->n++;
		return 0;
	}
	if (tree_path_unescape(&name, path) != 0)
		return -1;
	size_of(was, sizeof(was), s->repo, &d->old_file);
	size_of(now, sizeof(now), s->repo, &d->new_file);
	switch (d->status) {
	case GIT_DELTA_ADDED:
		printf("added    %s%s%s%s\n", name, *now ? " (" : "", now, *now ? ")" : "");
		break;
	case GIT_DELTA_DELETED:
		printf("deleted  %s%s%s%s\n", name, *was ? " (" : "", was, *was ? ")" : "");
		break;
	default:
		if (*was && strcmp(was, now))
			printf("changed  %s (%s -> %s)\n", name, was, now);
		else
			printf("changed  %s%s%s%s\n", name, *now ? " (" : "", now, *now ? ")" : "");
	}
	free(name);
	s->n++;
	return 0;
}

static int run_diff(int argc, char **argv)
{
	const char *path = NULL, *from = NULL, *to = "main";
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--from") || !strcmp(argv[i], "--to")) && i + 1 == argc)
			return cmd_usage_error(&cmd_diff, "%s needs a VERSION", argv[i]);
		else if (!strcmp(argv[i], "--from"))
			from = argv[++i];
		else if (!strcmp(argv[i], "--to"))
			to = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1])
			return cmd_usage_error(&cmd_diff, "unknown option %s", argv[i]);
		else if (path)
			return cmd_usage_error(&cmd_diff, "diff takes at most one PATH");
		else
			path = argv[i];
	}
	if (!path)
		path = ".";
	struct history h;
	int rc = EXIT_OK, err = history_open(&h, path);
	git_repository *repo = h.repo;
	git_commit *newer = NULL, *older = NULL;
	git_tree *nt = NULL, *ot = NULL;
	git_diff *diff = NULL;
	if (err)
		rc = cmd_fail(err, "cannot show changes under %s", path);
	else if ((err = commit_of(&newer, repo, to)) != 0)
		rc = !strcmp(to, "main") ? (printf("no versions yet\n"), EXIT_OK)
					 : cmd_fail(err, "cannot show changes");
	else if (from && (err = commit_of(&older, repo, from)) != 0)
		rc = cmd_fail(err, "cannot show changes");
	else if (!from && git_commit_parentcount(newer) > 0 && git_commit_parent(&older, newer, 0))
		rc = cmd_fail(-EIO, "cannot read the version before %s", to);
	if (rc == EXIT_OK && newer) {
		/* No pathspec: it would take PATH as a pattern ('!', '*'). */
		struct shown s = { repo, h.gpath, h.gpath ? strlen(h.gpath) : 0, 0 };
		char a[GIT_OID_HEXSZ + 1] = "nothing", b[GIT_OID_HEXSZ + 1];
		if (git_commit_tree(&nt, newer) != 0 || (older && git_commit_tree(&ot, older) != 0) ||
		    git_diff_tree_to_tree(&diff, repo, ot, nt, NULL) != 0 ||
		    git_diff_foreach(diff, show_delta, NULL, NULL, NULL, &s) != 0) {
			rc = cmd_fail(-EIO, "cannot compare the two versions");
		} else {
			if (older)
				git_oid_tostr(a, sizeof(a), git_commit_id(older));
			git_oid_tostr(b, sizeof(b), git_commit_id(newer));
			printf("%zu path%s changed from %.12s to %.12s\n", s.n, s.n == 1 ? "" : "s", a,
			       b);
		}
	}
	git_diff_free(diff);
	git_tree_free(nt);
	git_tree_free(ot);
	git_commit_free(newer);
	git_commit_free(older);
	history_close(&h);
	return rc;
}
