/* sync: one round of synchronisation between this device and the cloud.
 *
 *   1. fetch: read every device's head; download the objects of heads we do
 *      not have (post-order: an object is written only once everything it
 *      names is present, so "present" always means "complete");
 *   2. merge: under the working tree's lock, commit what is pending, merge
 *      each other head into it (sync/merge), and make the result the
 *      working tree;
 *   3. upload: blocks not yet uploaded, then the objects of new commits,
 *      then this device's head, last, so no reader ever sees a head whose
 *      objects or blocks are missing.
 * A failure leaves everything consistent and is retried by the next round. */
#ifndef PEERCLING_SYNC_H
#define PEERCLING_SYNC_H

#include <git2.h>
#include <stdint.h>

#include "sync/merge.h"

struct cloud;

/* The mounted working tree, when there is one (fs/ implements it). */
struct sync_worktree {
	/* Under the tree's lock: commit pending changes, call merge(local
	 * head, &result) and make result the working tree.  *head_out: the
	 * head afterwards (unset when the volume has no commit at all). */
	int (*commit_and_merge)(void *wt,
				int (*merge)(git_oid *out, const git_oid *local, int has_local,
					     void *p),
				void *p, git_oid *head_out, int *has_head);
	void *wt;
};

struct sync_report {
	unsigned heads_seen, objects_down, objects_up, blocks_up;
	uint64_t bytes_up;
	struct merge_stats merge;
	int has_head;
	git_oid head;
};

/* progress (may be NULL): blocks uploaded so far and in all, called as the
 * upload goes (from upload threads, one call at a time). */
int sync_run(struct cloud *c, const struct sync_worktree *wt, struct sync_report *rep,
	     void (*progress)(void *p, uint64_t done, uint64_t total), void *p);

/* Only the upload step (what `init` and an unmounted volume need). */
int sync_upload(struct cloud *c, const git_oid *head, struct sync_report *rep);

#endif
