/* sync: commit a mounted volume now, through its daemon. */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "core/error.h"
#include "fs/ctl.h"
#include "core/volume.h"
#include "sync/cloud.h"
#include "sync/sync.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const struct cmd cmd_sync = {
	.name = "sync",
	.run = run,
	.usage = "peercling sync [PATH | NAME]",
	.summary = "commit, then sync with the cloud, now",
	.help = "PATH: anywhere inside a mounted volume (default: the current directory).\n"
		"NAME: a volume that is not mounted.  Commits pending changes, uploads\n"
		"blocks and history, fetches and merges the other devices' heads.\n",
};


/* A volume that no daemon serves: sync it here, holding its lock. */
static int sync_unmounted(const char *name)
{
	struct volume *v = NULL;
	struct cloud *c = NULL;
	struct sync_report rep;
	int rc = volume_open(&v, name, VOLUME_OPEN_LOCK);
	if (rc)
		return cmd_fail(rc, "cannot sync '%s'", name);
	rc = cloud_open(&c, v);
	if (!rc)
		rc = sync_run(c, NULL, &rep, cmd_progress_bar, "upload");
	if (!rc) {
		char hex[GIT_OID_HEXSZ + 1] = "no commits yet";
		if (rep.has_head)
			git_oid_tostr(hex, sizeof(hex), &rep.head);
		printf("%s: %s synced: %u blocks (%llu bytes) and %u objects up, %u objects down\n",
		       name, hex, rep.blocks_up, (unsigned long long)rep.bytes_up, rep.objects_up,
		       rep.objects_down);
	}
	cloud_free(c);
	volume_free(v);
	return rc ? cmd_fail(rc, "cannot sync '%s'", name) : EXIT_OK;
}

static int run(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
		return cmd_usage_error(&cmd_sync, "sync takes at most one PATH or NAME");
	const char *path = argc == 2 ? argv[1] : ".";
	struct mount_found m;
	struct stat st;
	if (argc == 2 && stat(path, &st) != 0 && volume_check_name(path) == 0)
		return sync_unmounted(path);
	int rc = mounts_find(&m, path);
	if (rc)
		return cmd_fail(rc, "cannot sync");
	char *reply = NULL;
	rc = fs_ctl_call_progress(m.state_dir, "sync", &reply, cmd_progress_bar, "upload");
	if (rc) {
		rc = cmd_fail(rc, "cannot sync %s", m.mountpoint);
	} else {
		printf("%s: %s\n", m.mountpoint, reply);
		rc = EXIT_OK;
	}
	free(reply);
	mounts_found_free(&m);
	return rc;
}
