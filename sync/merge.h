/* merge: combines this device's history with another device's head.
 *
 * Fast-forward when one contains the other.  Otherwise a three-way merge of
 * the two trees against their merge base, path by path: a path changed on
 * one side only takes that side; a path changed on both sides keeps both
 * versions: the path holds the version of the commit with the smaller id,
 * and the other appears beside it as "NAME (conflict from DEVICE
 * YYYY-MM-DD).EXT", DEVICE and date being that commit's.  A path deleted on
 * one side and changed on the other keeps the change.  The result depends
 * only on the two commits (parents sorted, time = the later parent's), so
 * every device that merges the same heads makes the same commit and the
 * devices converge. */
#ifndef PEERCLING_MERGE_H
#define PEERCLING_MERGE_H

#include <git2.h>

struct merge_stats {
	unsigned fast_forward, merged, conflicts;
};

/* *out: the commit that contains both ours and theirs (may be one of them).
 * Writes a merge commit when needed; moves no ref. */
int merge_commits(git_oid *out, git_repository *repo, const git_oid *ours, const git_oid *theirs,
		  struct merge_stats *stats);

/* The conflict name for path (the last component changes), from device and
 * the date of when (UTC).  *out malloc'd. */
int merge_conflict_name(char **out, const char *path, const char *device, int64_t when);

/* The other way: 1 when name (one path component) is a conflict name, with
 * *orig the name it stands beside (malloc'd) and device (up to 8
 * characters) and date ("YYYY-MM-DD") copied into their buffers; 0 when it
 * is not one; -ENOMEM.  *orig is NULL unless 1. */
int merge_conflict_parse(const char *name, char **orig, char device[9], char date[11]);

#endif
