/* ops: the libfuse low-level operations table over struct fs. */
#ifndef PEERCLING_FS_OPS_H
#define PEERCLING_FS_OPS_H

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops fs_ops;

/* Seconds the kernel may cache names and attributes.  Every change made
 * through the mount reaches the kernel's caches by itself; the only other
 * writer is a merge, which invalidates each name it changes (fs.c
 * apply_delta; every directory it makes has a metadata entry, so new
 * directories are covered, and the kernel then drops the parent's
 * attributes too).  So the caches can live long: `stat` of every file of a
 * tree listed or stat'ed in the last minute (make, git status) costs no
 * round trip.  Names that do not exist are kept briefly, as a margin. */
#define FS_ENTRY_TIMEOUT 60.0
#define FS_ATTR_TIMEOUT 60.0
#define FS_NEGATIVE_TIMEOUT 1.0

#endif
