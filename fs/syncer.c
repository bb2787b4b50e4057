/* syncer: one thread that sleeps until the interval passes or someone asks,
 * and a mutex so that only one sync round runs at a time. */
#include "config.h"
#include "fs/syncer.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/volume.h"
#include "fs/ctl.h"
#include "fs/fs.h"
#include "fs/pin.h"
#include "sync/cloud.h"
#include "sync/sync.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "syncer"
#define DEFAULT_INTERVAL 30

struct fs_syncer {
	struct fs *fs;
	struct fuse_session *se;
	struct cloud *cloud;
	pthread_t thread;
	int running;
	pthread_mutex_t lock; /* state below */
	pthread_cond_t wake;
	int stopping;
	pthread_mutex_t round; /* one sync round at a time */
	int64_t interval;
	int reachable;
	time_t unreachable_since, last_ok, last_try;
	char last_error[512];
	struct sync_report last;
	unsigned conflicts_total;
	/* The round running now, for status: blocks uploaded of how many. */
	int syncing;
	uint64_t up_done, up_total;
	void (*progress)(void *p, uint64_t done, uint64_t total); /* the caller's */
	void *progress_p;
};

/* Keeps the upload's progress for status, and passes it on. */
static void note_progress(void *p, uint64_t done, uint64_t total)
{
	struct fs_syncer *s = p;
	pthread_mutex_lock(&s->lock);
	s->up_done = done;
	s->up_total = total;
	pthread_mutex_unlock(&s->lock);
	if (s->progress)
		s->progress(s->progress_p, done, total);
}

static int transport_error(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -EIO ||
	       rc == -ENETUNREACH || rc == -ECONNRESET || rc == -ENXIO;
}

static int run_round(struct fs_syncer *s, struct sync_report *rep,
		     void (*progress)(void *p, uint64_t done, uint64_t total), void *p)
{
	struct sync_worktree wt = { fs_commit_and_merge, s->fs };
	pthread_mutex_lock(&s->round);
	s->progress = progress; /* only the round's owner touches these */
	s->progress_p = p;
	pthread_mutex_lock(&s->lock);
	s->syncing = 1;
	s->up_done = s->up_total = 0;
	pthread_mutex_unlock(&s->lock);
	int rc = sync_run(s->cloud, &wt, rep, note_progress, s);
	if (rc == 0) {
		/* New versions of pinned files: fetch and keep them too. */
		struct fs_pin_report pr;
		if (fs_pin_reconcile(s->fs, &pr, NULL, NULL) != 0)
			log_warn("pinned files: %s", error_last());
	}
	pthread_mutex_unlock(&s->round);
	time_t now = time(NULL);
	pthread_mutex_lock(&s->lock);
	s->syncing = 0;
	s->last_try = now;
	if (rc == 0) {
		if (!s->reachable)
			log_info("the cloud answers again");
		s->reachable = 1;
		s->last_ok = now;
		s->last_error[0] = '\0';
		s->last = *rep;
		s->conflicts_total += rep->merge.conflicts;
	} else {
		snprintf(s->last_error, sizeof(s->last_error), "%s", error_last());
		if (transport_error(rc) && s->reachable) {
			s->reachable = 0;
			s->unreachable_since = now;
			log_warn("the cloud is unreachable (%s): working offline", s->last_error);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void *sync_main(void *arg)
{
	struct fs_syncer *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += s->interval;
		pthread_cond_timedwait(&s->wake, &s->lock, &until);
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->lock);
		struct sync_report rep;
		run_round(s, &rep, NULL, NULL);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int hook_sync(void *p, char **reply,
		     void (*progress)(void *pp, uint64_t done, uint64_t total), void *pp)
{
	struct fs_syncer *s = p;
	struct sync_report rep;
	int rc = run_round(s, &rep, progress, pp);
	if (rc)
		return rc;
	char hex[GIT_OID_HEXSZ + 1] = "none";
	if (rep.has_head)
		git_oid_tostr(hex, sizeof(hex), &rep.head);
	if (asprintf(reply, "%s synced: %u blocks (%llu bytes) and %u objects up, %u objects down, "
			    "%u merges, %u conflicts", hex, rep.blocks_up,
		     (unsigned long long)rep.bytes_up, rep.objects_up, rep.objects_down,
		     rep.merge.merged + rep.merge.fast_forward, rep.merge.conflicts) < 0)
		return -ENOMEM;
	return 0;
}

static void add_time(json_object *o, const char *key, time_t t)
{
	char buf[64] = "";
	struct tm tm;
	if (t) {
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", localtime_r(&t, &tm));
		json_object_object_add(o, key, json_object_new_string(buf));
	} else {
		json_object_object_add(o, key, NULL);
	}
}

static void hook_status(void *p, json_object *o)
{
	struct fs_syncer *s = p;
	json_object *c = json_object_new_object();
	pthread_mutex_lock(&s->lock);
	json_object_object_add(c, "reachable", json_object_new_boolean(s->reachable));
	add_time(c, "unreachable_since", s->reachable ? 0 : s->unreachable_since);
	add_time(c, "last_sync", s->last_ok);
	add_time(c, "last_attempt", s->last_try);
	json_object_object_add(c, "last_error", s->last_error[0] ?
				   json_object_new_string(s->last_error) : NULL);
	json_object_object_add(c, "conflicts", json_object_new_int64(s->conflicts_total));
	json_object_object_add(c, "interval", json_object_new_int64(s->interval));
	json_object_object_add(c, "syncing", json_object_new_boolean(s->syncing));
	json_object *up = NULL;
	if (s->syncing) {
		up = json_object_new_object();
		json_object_object_add(up, "done", json_object_new_int64((int64_t)s->up_done));
		json_object_object_add(up, "total", json_object_new_int64((int64_t)s->up_total));
	}
	json_object_object_add(c, "uploading", up);
	pthread_mutex_unlock(&s->lock);
	json_object_object_add(o, "sync", c);
}

void fs_syncer_hooks(struct fs_syncer *s, struct fs_ctl_hooks *out)
{
	out->sync = hook_sync;
	out->status = hook_status;
	out->p = s;
}

int fs_syncer_start(struct fs_syncer **out, struct fs *fs, struct fuse_session *se)
{
	struct fs_syncer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fs = fs;
	s->se = se;
	s->reachable = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->round, NULL);
	pthread_cond_init(&s->wake, NULL);
	int rc = volume_config_get_int64(fs->vol, "sync.interval", &s->interval, DEFAULT_INTERVAL);
	if (!rc && s->interval < 0)
		rc = error_set(-EINVAL, "sync.interval must be 0 (off) or a number of seconds");
	if (!rc)
		rc = cloud_open(&s->cloud, fs->vol);
	if (rc) {
		free(s);
		return rc;
	}
	struct fetch_source src = cloud_block_source(s->cloud);
	fetch_add_source(fs->vol->fetch, &src);
	if (s->interval > 0 && pthread_create(&s->thread, NULL, sync_main, s) == 0)
		s->running = 1;
	*out = s;
	return 0;
}

void fs_syncer_stop(struct fs_syncer *s, int final)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	if (s->running)
		pthread_join(s->thread, NULL);
	if (final && s->reachable) {
		struct sync_report rep;
		if (run_round(s, &rep, NULL, NULL) != 0)
			log_warn("last sync before unmount failed: %s (the next mount retries)",
				 error_last());
	}
	cloud_free(s->cloud);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->round);
	pthread_cond_destroy(&s->wake);
	free(s);
}
