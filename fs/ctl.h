/* ctl: the daemon's control socket, through which `peercling sync`,
 * `status` and `umount` talk to a mounted volume.  An abstract Unix socket
 * named after the state directory, so its path length never matters; only
 * the daemon's own user (or root) may talk to it (SO_PEERCRED).
 *
 * Protocol: one request line, one reply line.
 *   "sync"   -> "ok COMMIT" (or "ok none" when nothing changed)
 *   "status" -> "ok {json}"
 *   "pin REL", "unpin REL" -> "progress DONE TOTAL" lines, then "ok ..."
 * Errors:    "error MESSAGE". */
#ifndef PEERCLING_FS_CTL_H
#define PEERCLING_FS_CTL_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

struct fs;
struct fs_ctl;

#define FS_CTL_NAME_MAX 108

/* The socket's address for a state directory (leading NUL: abstract). */
void fs_ctl_name(const char *state_dir, char out[FS_CTL_NAME_MAX], size_t *len);

/* What the daemon adds to the socket: a full sync (commit, merge, upload)
 * instead of a local commit, and its own status fields. */
struct fs_ctl_hooks {
	/* 0 and *reply (malloc'd, one line), or -errno with error_last();
	 * progress (blocks uploaded) is streamed to the client. */
	int (*sync)(void *p, char **reply,
		    void (*progress)(void *pp, uint64_t done, uint64_t total), void *pp);
	void (*status)(void *p, struct json_object *o);
	void *p;
};

int fs_ctl_start(struct fs_ctl **out, struct fs *fs, const char *mountpoint,
		 const struct fs_ctl_hooks *hooks);
void fs_ctl_stop(struct fs_ctl *c);

/* Client: sends req, *reply malloc'd (the text after "ok ").  -ECONNREFUSED
 * when no daemon listens; -EIO with error_last() for "error" replies. */
int fs_ctl_call(const char *state_dir, const char *req, char **reply);
/* The same, calling progress for each "progress DONE TOTAL" line the
 * daemon sends before its reply (pin). */
int fs_ctl_call_progress(const char *state_dir, const char *req, char **reply,
			 void (*progress)(void *p, uint64_t done, uint64_t total), void *p);

#endif
