/* restore: puts a file of the mount back as it was in an earlier version,
 * as a new commit on top of history (nothing is rewritten, nothing lost:
 * what the file held is committed first). */
#ifndef PEERCLING_FS_RESTORE_H
#define PEERCLING_FS_RESTORE_H

struct fs;

/* rel: the file's path in the mount.  rev: a git revision of the volume's
 * history (a commit id or a prefix of one, main~2, ...), or NULL/"" for the
 * newest version that differs from what the file holds now.  *said
 * (malloc'd): what was done, for the user.  0 or -errno with error_last():
 * -ENOENT (no such version of the file), -EINVAL (no such revision),
 * -EISDIR (a directory there). */
int fs_restore(struct fs *fs, const char *rev, const char *rel, char **said);

#endif
