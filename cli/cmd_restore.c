/* restore: an earlier version of a file of a mounted volume, put back (the
 * daemon makes it a new commit: history only grows). */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "fs/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_restore(int argc, char **argv);

const struct cmd cmd_restore = {
	.name = "restore",
	.run = run_restore,
	.usage = "peercling restore PATH [--at VERSION]",
	.summary = "put a file back as it was in an earlier version",
	.help = "PATH (inside a mount; it may have been deleted since, its directory\n"
		"not) gets the contents, mode and modification time it had in VERSION: a\n"
		"commit id or a prefix of one, or main~N (N commits back along first\n"
		"parents), as 'peercling log' shows them.\n"
		"Without --at: the newest earlier version, along first parents, that differs\n"
		"from what PATH holds now.  What PATH held is committed first, so\n"
		"restoring loses nothing; the restore is a commit of its own and syncs\n"
		"like any edit.  A file open in some program is refused: close it first.\n",
};

static int run_restore(int argc, char **argv)
{
	const char *path = NULL, *rev = "-";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--at") && i + 1 < argc)
			rev = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1])
			return cmd_usage_error(&cmd_restore, "unknown option %s", argv[i]);
		else if (path)
			return cmd_usage_error(&cmd_restore, "restore takes one PATH");
		else
			path = argv[i];
	}
	if (!path)
		return cmd_usage_error(&cmd_restore, "restore takes a PATH");
	if (strpbrk(path, "\r\n")) /* the control socket speaks in lines */
		return cmd_fail(-EINVAL, "cannot restore a path with a line break in its name");
	if (!*rev || strchr(rev, ' ') || strchr(rev, '\n'))
		return cmd_usage_error(&cmd_restore, "a VERSION has no spaces");
	/* PATH may be gone (its directory must be there), or a link. */
	struct mount_found m = { 0 };
	char *rel = NULL;
	int rc = mounts_find_path(&m, path, &rel);
	if (rc)
		return cmd_fail(rc, "cannot restore %s", path);
	if (!*rel) {
		free(rel);
		mounts_found_free(&m);
		return cmd_usage_error(&cmd_restore, "PATH names a file in the mount");
	}
	char *req = NULL, *reply = NULL;
	if (asprintf(&req, "restore %s %s", rev, rel) < 0) {
		rc = cmd_fail(-ENOMEM, "out of memory");
	} else if ((rc = fs_ctl_call(m.state_dir, req, &reply)) != 0) {
		rc = cmd_fail(rc, "cannot restore %s", path);
	} else {
		printf("%s\n", reply);
	}
	free(req);
	free(reply);
	free(rel);
	mounts_found_free(&m);
	return rc;
}
