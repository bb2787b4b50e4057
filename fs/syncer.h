/* syncer: the mount daemon's link to the cloud.  Registers the cloud as a
 * block source of the fetch chain, runs a sync round every sync.interval
 * seconds and on request (peercling sync), remembers whether the cloud
 * answers, and tells the kernel what a merge changed. */
#ifndef PEERCLING_FS_SYNCER_H
#define PEERCLING_FS_SYNCER_H

struct fs;
struct fuse_session;
struct fs_ctl_hooks;
struct fs_syncer;

/* Never fails for an unreachable cloud (offline is normal); only for a
 * cloud.url that cannot be used at all. */
int fs_syncer_start(struct fs_syncer **out, struct fs *fs, struct fuse_session *se);
/* final: try one last round (bounded by the cloud timeouts). */
void fs_syncer_stop(struct fs_syncer *s, int final);
void fs_syncer_hooks(struct fs_syncer *s, struct fs_ctl_hooks *out);

#endif
