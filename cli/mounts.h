/* mounts: finds peercling mounts in /proc/self/mountinfo, so that commands
 * given a PATH reach the daemon that serves it. */
#ifndef PEERCLING_MOUNTS_H
#define PEERCLING_MOUNTS_H

struct mount_found {
	char *mountpoint;
	char *state_dir;
};

/* The peercling mount holding path (the deepest one).  -ENOENT when path is
 * not inside a peercling mount. */
int mounts_find(struct mount_found *out, const char *path);
void mounts_found_free(struct mount_found *m);

/* The mount holding path, and *rel (malloc'd) the path inside it ("" for
 * its top), without following path's last component: it may be gone, or a
 * symlink (its own history is meant, not its target's). */
int mounts_find_path(struct mount_found *out, const char *path, char **rel);

#endif
