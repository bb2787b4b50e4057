/* pin, unpin: keep paths of a mounted volume for offline use (fetching
 * them now, with a progress bar), or let them go. */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "core/error.h"
#include "fs/ctl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run_pin(int argc, char **argv);
static int run_unpin(int argc, char **argv);

const struct cmd cmd_pin = {
	.name = "pin",
	.run = run_pin,
	.usage = "peercling pin PATH...",
	.summary = "keep files for offline use (fetches them now)",
	.help = "Every file under each PATH (inside a mount) is fetched into the cache and\n"
		"kept there through eviction, including later versions.\n",
};

const struct cmd cmd_unpin = {
	.name = "unpin",
	.run = run_unpin,
	.usage = "peercling unpin PATH...",
	.summary = "let pinned files be evicted again",
	.help = "PATH must be a path given to 'peercling pin' before.\n",
};


static int one(const char *path, int pin)
{
	struct mount_found m;
	char real[PATH_MAX];
	int rc = mounts_find(&m, path);
	if (rc)
		return cmd_fail(rc, "cannot %s %s", pin ? "pin" : "unpin", path);
	if (!realpath(path, real)) {
		mounts_found_free(&m);
		return cmd_fail(-ENOENT, "cannot %s %s", pin ? "pin" : "unpin", path);
	}
	const char *rel = real + strlen(m.mountpoint);
	while (*rel == '/')
		rel++;
	char *req = NULL, *reply = NULL;
	if (asprintf(&req, "%s %s", pin ? "pin" : "unpin", rel) < 0) {
		mounts_found_free(&m);
		return cmd_fail(-ENOMEM, "out of memory");
	}
	rc = fs_ctl_call_progress(m.state_dir, req, &reply, cmd_progress_bar, (void *)path);
	if (rc)
		rc = cmd_fail(rc, "cannot %s %s", pin ? "pin" : "unpin", path);
	else
		printf("%s: %s\n", path, reply);
	free(req);
	free(reply);
	mounts_found_free(&m);
	return rc;
}

static int run(int argc, char **argv, int pin, const struct cmd *c)
{
	if (argc < 2)
		return cmd_usage_error(c, "%s takes one or more PATHs", c->name);
	int rc = EXIT_OK;
	for (int i = 1; i < argc; i++)
		if (one(argv[i], pin) != EXIT_OK)
			rc = EXIT_FAIL;
	return rc;
}

static int run_pin(int argc, char **argv)
{
	return run(argc, argv, 1, &cmd_pin);
}

static int run_unpin(int argc, char **argv)
{
	return run(argc, argv, 0, &cmd_unpin);
}
