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
#include <git2.h>
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
		"'NAME (conflict from DEVICE YYYY-MM-DD).EXT'.  Exit status 0 whether or not\n"
		"there are conflicts.\n",
};

const struct cmd cmd_resolve = {
	.name = "resolve",
	.run = run_resolve,
	.usage = "peercling resolve PATH --ours|--theirs|--both|--with FILE",
	.summary = "settle a conflict listed by 'peercling conflicts'",
	.help = "PATH is the path or one of its conflict copies.\n"
		"  --ours       keep this device's version (at the path or in a copy)\n"
		"  --theirs     keep the other device's version (when several devices left\n"
		"               copies, name the one to keep as PATH)\n"
		"  --both       keep both: each copy is renamed\n"
		"               'NAME (from DEVICE YYYY-MM-DD).EXT' and is a conflict no more\n"
		"  --with FILE  PATH gets the contents of FILE (a regular file)\n"
		"The other copies are removed.  A copy named as PATH is the other version:\n"
		"--theirs puts it in the path's place, --ours removes it; other copies\n"
		"of the path stay.\n",
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
		if (de->d_type == DT_DIR) /* a merge keeps files and links beside */
			continue;
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

/* Lists the conflicts under dir (rel: how to show it, "" for the current
 * directory), depth first; *count grows by the paths listed. */
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
		else if (de->d_type == DT_DIR ||
			 (de->d_type == DT_UNKNOWN && lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)))
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
	if (argc == 2 && argv[1][0] == '-' && argv[1][1])
		return cmd_usage_error(&cmd_conflicts, "unknown option %s", argv[1]);
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
	mounts_found_free(&m);
	/* Paths as the user can give them to resolve from here. */
	char *shown = strdup(strcmp(path, ".") ? path : "");
	size_t count = 0;
	if (!shown)
		return cmd_fail(-ENOMEM, "out of memory");
	for (size_t n = strlen(shown); n > 1 && shown[n - 1] == '/'; n--)
		shown[n - 1] = 0;
	rc = list_dir(real, shown, &count);
	free(shown);
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

/* This device's id as conflict names carry it (8 characters), from the
 * volume's config; "" when it cannot be read. */
static void my_device(const char *state_dir, char out[9])
{
	git_config *cfg = NULL;
	git_buf b = { 0 };
	char *path = NULL;
	out[0] = 0;
	if (asprintf(&path, "%s/config", state_dir) >= 0 &&
	    git_config_open_ondisk(&cfg, path) == 0 &&
	    git_config_get_string_buf(&b, cfg, "device.id") == 0 && b.ptr)
		snprintf(out, 9, "%s", b.ptr);
	git_buf_dispose(&b);
	git_config_free(cfg);
	free(path);
}

/* Copies FILE's contents over target: written beside it, then renamed, so
 * target is either the old or the new contents, never half. */
static int replace_with(const char *target, const char *file)
{
	char *tmp = NULL;
	char buf[65536];
	struct stat st, in_st;
	int in = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (in < 0)
		return cmd_fail(-errno, "cannot read %s", file);
	if (fstat(in, &in_st) != 0 || !S_ISREG(in_st.st_mode)) {
		close(in);
		return cmd_fail(-EINVAL, "cannot use %s: not a regular file", file);
	}
	mode_t mode = stat(target, &st) == 0 ? st.st_mode & 07777 : 0644;
	const char *slash = strrchr(target, '/');
	if (asprintf(&tmp, "%.*s.peercling-resolve-%d", slash ? (int)(slash - target + 1) : 0,
		     target, (int)getpid()) < 0) {
		close(in);
		return cmd_fail(-ENOMEM, "out of memory");
	}
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = out < 0 ? -errno : 0, reading = 0;
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
		rc = -errno, reading = 1;
	/* The path keeps its mode, whatever the umask. */
	if (!rc && fchmod(out, mode) != 0)
		rc = -errno;
	if (out >= 0 && close(out) != 0 && !rc)
		rc = -errno;
	close(in);
	if (!rc && rename(tmp, target) != 0)
		rc = -errno;
	if (rc && out >= 0)
		unlink(tmp);
	free(tmp);
	if (rc)
		return reading ? cmd_fail(rc, "cannot read %s", file)
			       : cmd_fail(rc, "cannot write %s", target);
	return EXIT_OK;
}

/* What becomes of a path and its copies. */
enum settle { KEEP, TAKE, BOTH, WITH };

/* dir: the real directory; c: the copies to settle (TAKE: c->v[take] goes
 * in the path's place, the others go). */
static int settle(const char *dir, const char *orig, struct copies *c, enum settle how,
		  size_t take, const char *with)
{
	char *target = NULL;
	struct stat st;
	if (asprintf(&target, "%s/%s", dir, orig) < 0)
		return cmd_fail(-ENOMEM, "out of memory");
	int rc = EXIT_OK;
	/* Removing the copies of a path that is gone would lose the last
	 * version. */
	if ((how == KEEP || how == WITH) && lstat(target, &st) != 0 && errno == ENOENT) {
		if (how == KEEP)
			rc = cmd_fail(0, "%s no longer exists: its conflict copies are all that is "
					 "left (keep one with --theirs, or remove them yourself)",
				      orig);
	}
	if (rc == EXIT_OK && how == WITH)
		rc = replace_with(target, with);
	if (rc == EXIT_OK && how == TAKE) {
		char *from = NULL;
		if (asprintf(&from, "%s/%s", dir, c->v[take].name) < 0)
			rc = cmd_fail(-ENOMEM, "out of memory");
		else if (rename(from, target) != 0)
			rc = cmd_fail(-errno, "cannot put %s in place of %s", c->v[take].name, orig);
		else
			printf("%s: the version from device %s (%s) replaces it\n", orig,
			       c->v[take].device, c->v[take].date);
		free(from);
	}
	size_t done = 0;
	for (size_t i = 0; i < c->n && rc == EXIT_OK; i++) {
		char *from = NULL, *to = NULL;
		if (how == TAKE && i == take)
			continue;
		if (asprintf(&from, "%s/%s", dir, c->v[i].name) < 0) {
			rc = cmd_fail(-ENOMEM, "out of memory");
		} else if (how != BOTH) {
			if (unlink(from) != 0)
				rc = cmd_fail(-errno, "cannot remove %s (%zu of its copies removed "
						      "already)", c->v[i].name, done);
		} else {
			/* The copy's name without "conflict", in the same
			 * place, so that it still sorts beside the path. */
			const char *ext = strrchr(c->v[i].name, ')') + 1;
			size_t stem = strlen(orig) - strlen(ext);
			if (asprintf(&to, "%s/%.*s (from %s %s)%s", dir, (int)stem, orig, c->v[i].device,
				     c->v[i].date, ext) < 0)
				rc = cmd_fail(-ENOMEM, "out of memory");
			else if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0)
				rc = cmd_fail(-errno, "cannot rename %s", c->v[i].name);
			else
				printf("%s: kept as %s\n", c->v[i].name, strrchr(to, '/') + 1);
		}
		done += rc == EXIT_OK;
		free(from);
		free(to);
	}
	if (rc == EXIT_OK && how != BOTH && done)
		printf("%s: %s; %zu conflict cop%s removed\n", orig,
		       how == WITH ? "contents replaced" : how == KEEP ? "kept as it is" : "settled",
		       done, done == 1 ? "y" : "ies");
	free(target);
	return rc;
}

enum choice { OURS, THEIRS, BOTH_CHOICE, WITH_CHOICE };

/* --ours and --theirs mean this device's version and the other's, as in
 * git; the merge may have kept either at the path.  A copy named by the
 * user is "theirs" against the path. */
static int decide(const struct copies *c, int named_copy, enum choice choice, const char *me,
		  const char *path, enum settle *how, size_t *take)
{
	*take = 0;
	if (choice == BOTH_CHOICE || choice == WITH_CHOICE) {
		*how = choice == BOTH_CHOICE ? BOTH : WITH;
		return EXIT_OK;
	}
	size_t mine = c->n;
	for (size_t i = 0; !named_copy && i < c->n; i++) {
		/* A copy made from a merge commit names no device: which
		 * version is whose cannot be told then. */
		if (!*me || !strcmp(c->v[i].device, "merge"))
			return cmd_fail(0, "cannot tell which version of %s is this device's (%s): "
					   "name the copy as PATH (--theirs takes it, --ours drops it), "
					   "or use --both or --with FILE",
					path, *me ? "a copy from a merge" : "no device id");
		if (!strcmp(c->v[i].device, me))
			mine = i;
	}
	if (choice == OURS) {
		*how = mine < c->n ? TAKE : KEEP;
		*take = mine;
		return EXIT_OK;
	}
	if (mine < c->n && c->n == 1) { /* the copy is ours: theirs is the path */
		*how = KEEP;
		return EXIT_OK;
	}
	if (c->n - (mine < c->n) != 1) {
		fprintf(stderr, "peercling: %s has %zu conflict copies from other devices; name the "
				"one to keep:\n", path, c->n - (mine < c->n));
		for (size_t i = 0; i < c->n; i++)
			fprintf(stderr, "\t%s\n", c->v[i].name); /* beside PATH */
		return EXIT_FAIL;
	}
	*how = TAKE;
	*take = mine == 0 && c->n > 1 ? 1 : 0;
	return EXIT_OK;
}

static int run_resolve(int argc, char **argv)
{
	const char *path = NULL, *with = NULL;
	int choice = -1, choices = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ours")) {
			choice = OURS;
			choices++;
		} else if (!strcmp(argv[i], "--theirs")) {
			choice = THEIRS;
			choices++;
		} else if (!strcmp(argv[i], "--both")) {
			choice = BOTH_CHOICE;
			choices++;
		} else if (!strcmp(argv[i], "--with")) {
			if (i + 1 == argc)
				return cmd_usage_error(&cmd_resolve, "--with needs a FILE");
			choice = WITH_CHOICE;
			choices++;
			with = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cmd_usage_error(&cmd_resolve, "unknown option %s", argv[i]);
		} else if (path) {
			return cmd_usage_error(&cmd_resolve, "resolve takes one PATH");
		} else {
			path = argv[i];
		}
	}
	if (!path || choices != 1)
		return cmd_usage_error(&cmd_resolve, "resolve takes a PATH and one of --ours, "
						     "--theirs, --both, --with FILE");
	/* The real directory (the path itself may be gone, or a symlink in
	 * conflict) and the name in it. */
	struct mount_found m = { 0 };
	char *rel = NULL, *dir = NULL, me[9] = "";
	const char *name = "";
	int rc = EXIT_OK, err = mounts_find_path(&m, path, &rel);
	if (err) {
		rc = cmd_fail(err, "cannot resolve %s", path);
	} else if (!*rel) {
		rc = cmd_usage_error(&cmd_resolve, "PATH names a file");
	} else {
		const char *slash = strrchr(rel, '/');
		name = slash ? slash + 1 : rel;
		if (asprintf(&dir, "%s%s%.*s", m.mountpoint, slash ? "/" : "",
			     slash ? (int)(slash - rel) : 0, rel) < 0) {
			dir = NULL;
			rc = cmd_fail(-ENOMEM, "out of memory");
		} else {
			my_device(m.state_dir, me);
		}
	}
	mounts_found_free(&m);
	struct copies c = { 0 };
	char *orig = NULL, dev[9], date[11];
	int named_copy = 0;
	if (rc == EXIT_OK) {
		/* A copy edited apart on two devices has copies of its own: it
		 * is a path then, as 'conflicts' lists it. */
		if ((err = copies_in(&c, dir, name)) != 0)
			rc = cmd_fail(err, "cannot read the directory %s", dir);
		else if (!c.n && (err = merge_conflict_parse(name, &orig, dev, date)) < 0)
			rc = cmd_fail(err, "out of memory");
		else if (!c.n && err == 1)
			named_copy = 1;
	}
	if (rc == EXIT_OK && named_copy) {
		if ((err = copies_in(&c, dir, orig)) != 0) {
			rc = cmd_fail(err, "cannot read the directory %s", dir);
		} else {
			size_t k = 0;
			while (k < c.n && strcmp(c.v[k].name, name))
				k++;
			if (k == c.n) {
				rc = cmd_fail(-ENOENT, "cannot resolve %s", path);
			} else { /* just this copy, as the user named it */
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
	}
	enum settle how = KEEP;
	size_t take = 0;
	if (rc == EXIT_OK && !c.n)
		rc = cmd_fail(0, "%s has no conflict copy ('peercling conflicts' lists them)", path);
	else if (rc == EXIT_OK)
		rc = decide(&c, named_copy, (enum choice)choice, me, path, &how, &take);
	if (rc == EXIT_OK)
		rc = settle(dir, named_copy ? orig : name, &c, how, take, with);
	copies_free(&c);
	free(orig);
	free(dir);
	free(rel);
	return rc;
}
