/* mounts: parse mountinfo lines ("... MOUNTPOINT OPTS ... - TYPE SOURCE
 * SUPEROPTS"), undoing the kernel's octal escapes (\040 for a space). */
#include "config.h"
#include "cli/mounts.h"
#include "core/error.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static int inside(const char *path, const char *mp)
{
	size_t n = strlen(mp);
	if (strcmp(mp, "/") == 0)
		return 1;
	return strncmp(path, mp, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int mounts_find(struct mount_found *out, const char *path)
{
	char real[PATH_MAX];
	if (!realpath(path, real))
		return error_set(-errno, "%s: %s", path, strerror(errno));
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return error_set(-errno, "cannot read /proc/self/mountinfo");
	char *line = NULL;
	size_t cap = 0;
	size_t best = 0;
	out->mountpoint = out->state_dir = NULL;
	while (getline(&line, &cap, f) > 0) {
		char *fields[12] = { 0 }, *save = NULL;
		int n = 0;
		for (char *t = strtok_r(line, " \n", &save); t && n < 12; t = strtok_r(NULL, " \n", &save))
			fields[n++] = t;
		int dash = -1;
		for (int i = 6; i < n; i++)
			if (strcmp(fields[i], "-") == 0) {
				dash = i;
				break;
			}
		if (dash < 0 || dash + 2 >= n || strcmp(fields[dash + 1], "fuse.peercling") != 0)
			continue;
		char *mp = fields[4], *src = fields[dash + 2];
		unescape(mp);
		unescape(src);
		if (strncmp(src, "peercling:", 10) != 0 || !inside(real, mp) || strlen(mp) < best)
			continue;
		best = strlen(mp);
		mounts_found_free(out);
		out->mountpoint = strdup(mp);
		out->state_dir = strdup(src + 10);
	}
	free(line);
	fclose(f);
	if (!out->mountpoint)
		return error_set(-ENOENT, "%s is not inside a peercling mount", path);
	return 0;
}

void mounts_found_free(struct mount_found *m)
{
	free(m->mountpoint);
	free(m->state_dir);
	m->mountpoint = m->state_dir = NULL;
}

int mounts_find_path(struct mount_found *out, const char *path, char **rel)
{
	char real[PATH_MAX];
	char *a = strdup(path), *b = strdup(path);
	int rc = a && b ? 0 : -ENOMEM;
	const char *name = b ? basename(b) : NULL;
	*rel = NULL;
	out->mountpoint = out->state_dir = NULL;
	if (!rc && (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, "/"))) {
		/* the directory itself: nothing to keep unfollowed */
		if (!realpath(path, real))
			rc = error_set(-errno, "%s: %s", path, strerror(errno));
		name = "";
	} else if (!rc && !realpath(dirname(a), real)) {
		rc = error_set(-errno, "%s: %s", path, strerror(errno));
	}
	if (!rc)
		rc = mounts_find(out, real);
	if (rc == -ENOENT && *name && realpath(path, real) && mounts_find(out, real) == 0) {
		if (!strcmp(real, out->mountpoint)) { /* path is the mount's top */
			rc = 0;
			name = "";
		} else {
			mounts_found_free(out);
		}
	}
	if (!rc) {
		const char *in = real + strlen(out->mountpoint);
		while (*in == '/')
			in++;
		if (asprintf(rel, "%s%s%s", in, *in && *name ? "/" : "", name) < 0) {
			*rel = NULL;
			rc = -ENOMEM;
		}
	}
	if (rc && out->mountpoint)
		mounts_found_free(out);
	free(a);
	free(b);
	return rc;
}
