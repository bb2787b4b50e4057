/* history: the repository of a mounted volume, opened for reading (git
 * reads it safely while the daemon writes). */
#include "config.h"
#include "cli/history.h"
#include "core/error.h"
#include "core/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int history_open(struct history *h, const char *path)
{
	memset(h, 0, sizeof(*h));
	char *dir = NULL;
	int rc = mounts_find_path(&h->m, path, &h->rel);
	if (!rc && *h->rel)
		rc = tree_path_escape(&h->gpath, h->rel);
	if (!rc && asprintf(&dir, "%s/repo.git", h->m.state_dir) < 0)
		rc = error_set(-ENOMEM, "out of memory");
	if (!rc && git_repository_open(&h->repo, dir) != 0)
		rc = error_set(-EIO, "cannot open the history in %s", h->m.state_dir);
	free(dir);
	return rc;
}

void history_close(struct history *h)
{
	git_repository_free(h->repo);
	free(h->gpath);
	free(h->rel);
	mounts_found_free(&h->m);
	memset(h, 0, sizeof(*h));
}
