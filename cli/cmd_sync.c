/* sync: commit a mounted volume now, through its daemon. */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "core/error.h"
#include "fs/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const struct cmd cmd_sync = {
	.name = "sync",
	.run = run,
	.usage = "peercling sync [PATH]",
	.summary = "commit the mounted volume holding PATH now",
	.help = "PATH defaults to the current directory.  Prints the commit id.\n",
};

static int run(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
		return cmd_usage_error(&cmd_sync, "sync takes at most one PATH");
	const char *path = argc == 2 ? argv[1] : ".";
	struct mount_found m;
	int rc = mounts_find(&m, path);
	if (rc)
		return cmd_fail(rc, "cannot sync");
	char *reply = NULL;
	rc = fs_ctl_call(m.state_dir, "sync", &reply);
	if (rc) {
		rc = cmd_fail(rc, "cannot sync %s", m.mountpoint);
	} else {
		char *state = strchr(reply, ' ');
		if (state)
			*state++ = '\0';
		printf("%s: %s%s\n", m.mountpoint,
		       state && strcmp(state, "new") == 0 ? "committed " : "up to date at ",
		       reply);
		rc = EXIT_OK;
	}
	free(reply);
	mounts_found_free(&m);
	return rc;
}
