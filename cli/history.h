/* history: what log and diff share: the repository of the mount that holds
 * a path, and that path as its trees spell it. */
#ifndef PEERCLING_CLI_HISTORY_H
#define PEERCLING_CLI_HISTORY_H

#include "cli/mounts.h"

#include <git2.h>

struct history {
	struct mount_found m;
	char *rel;	      /* the path inside the mount ("" for its top) */
	char *gpath;	      /* rel escaped as in the trees; NULL for the top */
	git_repository *repo; /* STATE/repo.git */
};

/* Without following path's last component (mounts_find_path).  0 or
 * -errno with error_last(); history_close either way. */
int history_open(struct history *h, const char *path);
void history_close(struct history *h);

#endif
