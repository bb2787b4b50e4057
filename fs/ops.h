/* ops: the libfuse low-level operations table over struct fs. */
#ifndef PEERCLING_FS_OPS_H
#define PEERCLING_FS_OPS_H

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops fs_ops;

/* Seconds the kernel may cache names and attributes. */
#define FS_ENTRY_TIMEOUT 1.0
#define FS_ATTR_TIMEOUT 1.0

#endif
