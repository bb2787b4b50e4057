/* conflicts, resolve: the versions a merge kept beside a path edited on two
 * devices (sync/merge.c names them), listed and settled.  Both work on the
 * mount itself (rename, unlink, a write), so a resolution is an edit like
 * any other: journaled, committed, synced. */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "sync/merge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run_conflicts(int argc, char **argv);
static int run_resolve(int argc, char **argv);

const struct cmd cmd_conflicts = {
	.name = "conflicts",
	.run = run_conflicts,
	.usage = "peercling conflicts [PATH]",
	.summary = "list the paths edited apart on two devices",
	.help = "Lists, under PATH (default: the current directory; inside a mount), every\n"
		"path that a sync found edited on two devices in ways it could not merge,\n"
		"with the other version kept beside it as\n"
		"'NAME (conflict from DEVICE YYYY-MM-DD).EXT'.  Exit status 0 either way.\n",
};

const struct cmd cmd_resolve = {
	.name = "resolve",
	.run = run_resolve,
	.usage = "peercling resolve PATH --ours|--theirs|--both|--with FILE",
	.summary = "settle a conflict listed by 'peercling conflicts'",
	.help = "PATH is the path or one of its conflict copies.\n"
		"  --ours       keep PATH as it is; remove its conflict copies\n"
		"  --theirs     the conflict copy replaces PATH (when PATH has several,\n"
		"               name the copy to keep as PATH)\n"
		"  --both       keep both: each copy is renamed\n"
		"               'NAME (from DEVICE YYYY-MM-DD).EXT' and is a conflict no more\n"
		"  --with FILE  PATH gets the contents of FILE; its copies are removed\n",
};

/* A conflict copy found in a directory: its name and the name it stands
 * beside. */
struct copy {
	char *name, *orig;
	char device[9], date[11];
};

struct copies {
	struct copy *v;
	size_t n;
};

static void copies_free(struct copies *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].name);
		free(c->v[i].orig);
	}
	free(c->v);
	c->n = 0;
	c->v = NULL;
}

static int cmp_copy(const void *a, const void *b)
{
	const struct copy *x = a, *y = b;
	int c = strcmp(x->orig, y->orig);
	return c ? c : strcmp(x->name, y->name);
}

/* The conflict copies in directory dir, sorted by the name they stand
 * beside; only those beside orig when it is given. */
static int copies_in(struct copies *out, const char *dir, const char *orig)
{
	DIR *d = opendir(dir);
	out->v = NULL;
	out->n = 0;
	if (!d)
		return -errno;
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		struct copy c = { 0 };
		int r = merge_conflict_parse(de->d_name, &c.orig, c.device, c.date);
		if (r <= 0) {
			rc = r;
			continue;
		}
		if (orig && strcmp(orig, c.orig)) {
			free(c.orig);
			continue;
		}
		if (out->n == cap) {
			struct copy *v = realloc(out->v, (cap = cap ? 2 * cap : 8) * sizeof(*v));
			if (!v) {
				free(c.orig);
				rc = -ENOMEM;
				break;
			}
			out->v = v;
		}
		if (!(c.name = strdup(de->d_name))) {
			free(c.orig);
			rc = -ENOMEM;
			break;
		}
		out->v[out->n++] = c;
	}
	closedir(d);
	if (rc)
		copies_free(out);
	else if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_copy);
	return rc;
}

/* Lists the conflicts under dir (rel: its path inside the mount, "" at the
 * top), depth first; *count grows by the paths listed. */
static int list_dir(const char *dir, const char *rel, size_t *count)
{
	struct copies c;
	int rc = copies_in(&c, dir, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < c.n; i++) {
		if (i == 0 || strcmp(c.v[i].orig, c.v[i - 1].orig)) {
			printf("%s%s%s\n", rel, *rel ? "/" : "", c.v[i].orig);
			(*count)++;
		}
		printf("\t%s%s%s\n", rel, *rel ? "/" : "", c.v[i].name);
	}
	copies_free(&c);
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *sub = NULL, *subrel = NULL;
		struct stat st;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0 ||
		    asprintf(&subrel, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0)
			rc = -ENOMEM;
		else if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			rc = list_dir(sub, subrel, count);
		free(sub);
		free(subrel);
	}
	closedir(d);
	return rc;
}

static int run_conflicts(int argc, char **argv)
{
	if (argc > 2)
		return cmd_usage_error(&cmd_conflicts, "conflicts takes at most one PATH");
	const char *path = argc == 2 ? argv[1] : ".";
	struct mount_found m;
	char real[PATH_MAX];
	int rc = mounts_find(&m, path);
	if (rc)
		return cmd_fail(rc, "cannot list conflicts under %s", path);
	if (!realpath(path, real)) {
		rc = -errno;
		mounts_found_free(&m);
		return cmd_fail(rc, "cannot list conflicts under %s", path);
	}
	const char *rel = real + strlen(m.mountpoint);
	while (*rel == '/')
		rel++;
	size_t count = 0;
	rc = list_dir(real, rel, &count);
	mounts_found_free(&m);
	if (rc)
		return cmd_fail(rc, "cannot list conflicts under %s", path);
	if (!count)
		printf("no conflicts\n");
	else
		printf("%zu path%s with conflict copies; settle each with 'peercling resolve PATH "
		       "--ours|--theirs|--both|--with FILE'\n",
		       count, count == 1 ? "" : "s");
	return EXIT_OK;
}

/* ---- resolve ----------------------------------------------------------- */

/* Copies FILE's contents over target: written beside it, then renamed, so
 * target is either the old or the new contents, never half. */
static int replace_with(const char *target, const char *file)
{
	char *tmp = NULL;
	char buf[65536];
	struct stat st;
	int in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return cmd_fail(-errno, "cannot read %s", file);
	mode_t mode = stat(target, &st) == 0 ? st.st_mode & 07777 : 0644;
	const char *slash = strrchr(target, '/');
	if (asprintf(&tmp, "%.*s.peercling-resolve-%d", slash ? (int)(slash - target + 1) : 0,
		     target, (int)getpid()) < 0) {
		close(in);
		return cmd_fail(-ENOMEM, "out of memory");
	}
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	int rc = out < 0 ? -errno : 0;
	ssize_t n = 0;
	while (!rc && (n = read(in, buf, sizeof(buf))) > 0)
		for (ssize_t done = 0; !rc && done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w < 0)
				rc = -errno;
			else
				done += w;
		}
	if (!rc && n < 0)
		rc = -errno;
	if (out >= 0 && close(out) != 0 && !rc)
		rc = -errno;
	close(in);
	if (!rc && rename(tmp, target) != 0)
		rc = -errno;
	if (rc && out >= 0)
		unlink(tmp);
	free(tmp);
	return rc ? cmd_fail(rc, "cannot write %s", target) : EXIT_OK;
}

enum how { OURS, THEIRS, BOTH, WITH };

static int settle(const char *dir, const char *orig, struct copies *c, enum how how,
		  const char *with)
{
	char *target = NULL;
	if (asprintf(&target, "%s/%s", dir, orig) < 0)
		return cmd_fail(-ENOMEM, "out of memory");
	int rc = EXIT_OK;
	if (how == THEIRS) {
		char *from = NULL;
		if (asprintf(&from, "%s/%s", dir, c->v[0].name) < 0)
			rc = cmd_fail(-ENOMEM, "out of memory");
		else if (rename(from, target) != 0)
			rc = cmd_fail(-errno, "cannot put %s in place of %s", c->v[0].name, orig);
		else
			printf("%s: the version from device %s (%s) replaces it\n", orig,
			       c->v[0].device, c->v[0].date);
		free(from);
		free(target);
		return rc;
	}
	if (how == WITH && (rc = replace_with(target, with)) != EXIT_OK) {
		free(target);
		return rc;
	}
	for (size_t i = 0; i < c->n && rc == EXIT_OK; i++) {
		char *from = NULL, *to = NULL;
		if (asprintf(&from, "%s/%s", dir, c->v[i].name) < 0) {
			rc = cmd_fail(-ENOMEM, "out of memory");
		} else if (how != BOTH) {
			if (unlink(from) != 0)
				rc = cmd_fail(-errno, "cannot remove %s", c->v[i].name);
		} else {
			/* The copy's name without "conflict": the same place in
			 * the name, so it sorts beside the path still. */
			const char *mark = strstr(c->v[i].name, " (conflict from ");
			for (const char *next = mark; next; next = strstr(next + 1, " (conflict from "))
				mark = next;
			if (asprintf(&to, "%s/%.*s (from%s", dir, (int)(mark - c->v[i].name),
				     c->v[i].name, mark + strlen(" (conflict from") ) < 0)
				rc = cmd_fail(-ENOMEM, "out of memory");
			else if (access(to, F_OK) == 0)
				rc = cmd_fail(-EEXIST, "cannot rename %s", c->v[i].name);
			else if (rename(from, to) != 0)
				rc = cmd_fail(-errno, "cannot rename %s", c->v[i].name);
			else
				printf("%s: kept as %s\n", c->v[i].name, strrchr(to, '/') + 1);
		}
		free(from);
		free(to);
	}
	if (rc == EXIT_OK && how != BOTH)
		printf("%s: %s; %zu conflict cop%s removed\n", orig,
		       how == OURS ? "kept as it is" : "contents replaced", c->n,
		       c->n == 1 ? "y" : "ies");
	free(target);
	return rc;
}

static int run_resolve(int argc, char **argv)
{
	const char *path = NULL, *with = NULL;
	int how = -1, hows = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ours"))
			how = OURS, hows++;
		else if (!strcmp(argv[i], "--theirs"))
			how = THEIRS, hows++;
		else if (!strcmp(argv[i], "--both"))
			how = BOTH, hows++;
		else if (!strcmp(argv[i], "--with") && i + 1 < argc)
			how = WITH, hows++, with = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1])
			return cmd_usage_error(&cmd_resolve, "unknown option %s", argv[i]);
		else if (path)
			return cmd_usage_error(&cmd_resolve, "resolve takes one PATH");
		else
			path = argv[i];
	}
	if (!path || hows != 1)
		return cmd_usage_error(&cmd_resolve, "resolve takes a PATH and one of --ours, "
						     "--theirs, --both, --with FILE");
	struct mount_found m;
	int rc = mounts_find(&m, path);
	if (rc)
		return cmd_fail(rc, "cannot resolve %s", path);
	mounts_found_free(&m);

	/* The directory and the name: PATH need not exist (its copy may be
	 * all that is left of it). */
	char *copy_of_path = strdup(path), *dir, *name;
	if (!copy_of_path)
		return cmd_fail(-ENOMEM, "out of memory");
	char *slash = strrchr(copy_of_path, '/');
	if (slash) {
		*slash = 0;
		dir = *copy_of_path ? copy_of_path : "/";
		name = slash + 1;
	} else {
		dir = ".";
		name = copy_of_path;
	}
	struct copies c = { 0 };
	char *orig = NULL, dev[9], date[11];
	int is_copy = merge_conflict_parse(name, &orig, dev, date);
	if (is_copy < 0)
		rc = cmd_fail(is_copy, "out of memory");
	else if ((rc = copies_in(&c, dir, is_copy ? orig : name)) != 0)
		rc = cmd_fail(rc, "cannot read the directory %s", dir);
	if (!rc && is_copy) {
		/* Just this copy, as the user named it. */
		size_t k = 0;
		while (k < c.n && strcmp(c.v[k].name, name))
			k++;
		if (k == c.n) {
			rc = cmd_fail(-ENOENT, "cannot resolve %s", path);
		} else {
			struct copy keep = c.v[k];
			c.v[k] = c.v[0];
			c.v[0] = keep;
			for (size_t i = 1; i < c.n; i++) {
				free(c.v[i].name);
				free(c.v[i].orig);
			}
			c.n = 1;
		}
	}
	if (!rc && !c.n) {
		fprintf(stderr, "peercling: %s has no conflict copy ('peercling conflicts' lists "
				"them)\n",
			path);
		rc = EXIT_FAIL;
	} else if (!rc && how == THEIRS && c.n > 1) {
		fprintf(stderr, "peercling: %s has %zu conflict copies; name the one to keep:\n", path,
			c.n);
		for (size_t i = 0; i < c.n; i++)
			fprintf(stderr, "\t%s/%s\n", dir, c.v[i].name);
		rc = EXIT_FAIL;
	} else if (!rc) {
		rc = settle(dir, is_copy ? orig : name, &c, (enum how)how, with);
	}
	copies_free(&c);
	free(orig);
	free(copy_of_path);
	return rc;
}
