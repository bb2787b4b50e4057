/* mount: runs a volume as a FUSE filesystem: opens it (taking its lock),
 * mounts, serves requests on several threads, commits on idle and at
 * unmount.  By default it detaches into the background and returns in the
 * parent only once the mount is live (or has failed, with the reason). */
#ifndef PEERCLING_FS_MOUNT_H
#define PEERCLING_FS_MOUNT_H

struct fs_mount_opts {
	const char *name;
	const char *mountpoint;
	const char *fuse_opts; /* comma-separated -o options, or NULL */
	int foreground;
	int debug;
};

/* Returns the process exit code (0 ok, 1 failed); error_last() says why. */
int fs_mount_run(const struct fs_mount_opts *o);

/* Checks a mountpoint the way the user needs to hear about it: missing, not
 * a directory, not empty.  0 or -errno with error_set. */
int fs_mount_check_point(const char *mountpoint);

#endif
