/* status_facts: volume facts from the state directory; cache figures from a
 * scan when nobody has the volume open, else (mounted) from the daemon. */
#include "config.h"
#include "cli/status_facts.h"
#include "core/error.h"
#include "core/store.h"
#include "core/tree.h"
#include "core/volume.h"
#include "fs/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void add_int(json_object *o, const char *k, long long v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static void add_history(json_object *st, struct volume *v)
{
	git_oid tree, commit;
	if (tree_head(&tree, &commit, v->repo, VOLUME_REF) != 0) {
		json_object_object_add(st, "head", NULL);
		add_int(st, "commits", 0);
		return;
	}
	char hex[GIT_OID_HEXSZ + 1];
	git_oid_tostr(hex, sizeof(hex), &commit);
	add_str(st, "head", hex);
	git_commit *cm = NULL;
	if (git_commit_lookup(&cm, v->repo, &commit) == 0) {
		time_t t = (time_t)git_commit_time(cm);
		char buf[64];
		struct tm tm;
		strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		add_str(st, "head_date", buf);
		git_commit_free(cm);
	}
	git_revwalk *walk = NULL;
	long long n = 0;
	git_oid oid;
	if (git_revwalk_new(&walk, v->repo) == 0 && git_revwalk_push(walk, &commit) == 0)
		while (git_revwalk_next(&oid, walk) == 0)
			n++;
	git_revwalk_free(walk);
	add_int(st, "commits", n);
}

static void add_cache(json_object *st, struct store *s)
{
	struct store_stats ss;
	store_get_stats(s, &ss);
	json_object *c = json_object_new_object();
	add_int(c, "blocks", (long long)ss.blocks);
	add_int(c, "bytes", (long long)ss.bytes);
	add_int(c, "limit", (long long)ss.limit);
	add_int(c, "pinned_blocks", (long long)ss.pinned_blocks);
	add_int(c, "pinned_bytes", (long long)ss.pinned_bytes);
	add_int(c, "dirty_blocks", (long long)ss.dirty_blocks);
	add_int(c, "dirty_bytes", (long long)ss.dirty_bytes);
	json_object_object_add(st, "cache", c);
}

/* A mounted volume's live figures come from its daemon. */
static void add_daemon(json_object *st, const char *dir)
{
	char *reply = NULL;
	if (fs_ctl_call(dir, "status", &reply) != 0) {
		add_str(st, "daemon_error", error_last());
		return;
	}
	json_object *d = json_tokener_parse(reply);
	free(reply);
	if (!d)
		return;
	json_object_object_foreach(d, key, val)
		json_object_object_add(st, key, json_object_get(val));
	json_object_put(d);
}

int status_facts_collect(json_object **out, const char *name)
{
	struct volume *v = NULL;
	int mounted = 0;
	int rc = volume_open(&v, name, VOLUME_OPEN_LOCK);
	if (rc == -EBUSY) {
		mounted = 1;
		rc = volume_open(&v, name, VOLUME_OPEN_NO_STORE);
	}
	if (rc)
		return rc;
	json_object *st = json_object_new_object();
	add_str(st, "name", v->name);
	add_str(st, "dir", v->dir);
	add_str(st, "volume_id", v->volume_id);
	add_str(st, "device_id", v->device_id);
	add_str(st, "cloud", v->cloud_url);
	json_object_object_add(st, "encrypted", json_object_new_boolean(v->encrypt));
	json_object_object_add(st, "mounted", json_object_new_boolean(mounted));
	add_history(st, v);
	if (v->store)
		add_cache(st, v->store);
	else if (mounted)
		add_daemon(st, v->dir);
	volume_free(v);
	*out = st;
	return 0;
}
