/* status: the facts of one volume: ids, cloud, encryption, history head,
 * cache use and limits.  Human text by default, one JSON object with --json.
 * A mounted volume's cache belongs to its daemon, so then the cache figures
 * come over the control socket (fs/ctl) rather than from a second scan. */
#include "config.h"
#include "cli/cmd.h"
#include "cli/status_facts.h"
#include "core/error.h"
#include "core/volume.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const struct cmd cmd_status = {
	.name = "status",
	.run = run,
	.usage = "peercling status NAME [--json]",
	.summary = "show a volume's state: ids, cloud, history, cache",
	.help = "Options:\n"
		"  --json    print one JSON object instead of text\n",
};

static long long jint(json_object *o, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

static void print_human(json_object *st)
{
	char a[32], b[32];
	json_object *cache = NULL;
	printf("volume:     %s\n", jstr(st, "name"));
	printf("state dir:  %s\n", jstr(st, "dir"));
	printf("volume id:  %s\n", jstr(st, "volume_id"));
	printf("device id:  %s\n", jstr(st, "device_id"));
	printf("cloud:      %s\n", jstr(st, "cloud"));
	printf("encryption: %s\n", jint(st, "encrypted") ? "on" : "off");
	if (jint(st, "mounted"))
		printf("mounted:    yes, by process %lld%s%s\n", jint(st, "daemon_pid"),
		       jstr(st, "mountpoint")[0] ? " at " : "", jstr(st, "mountpoint"));
	else
		printf("mounted:    no\n");
	if (jstr(st, "head") && jstr(st, "head")[0])
		printf("history:    %lld commits, last %s (%s)\n", jint(st, "commits"),
		       jstr(st, "head"), jstr(st, "head_date"));
	else
		printf("history:    no commits yet\n");
	json_object *sy = NULL;
	if (json_object_object_get_ex(st, "sync", &sy)) {
		if (jint(sy, "reachable"))
			printf("cloud:      reachable; last sync %s\n",
			       jstr(sy, "last_sync")[0] ? jstr(sy, "last_sync") : "not yet");
		else
			printf("cloud:      UNREACHABLE since %s (%s); working offline\n",
			       jstr(sy, "unreachable_since"), jstr(sy, "last_error"));
		json_object *up = NULL;
		if (jint(sy, "syncing") && json_object_object_get_ex(sy, "uploading", &up) && up &&
		    jint(up, "total"))
			printf("syncing:    now; %lld of %lld blocks uploaded\n", jint(up, "done"),
			       jint(up, "total"));
		else if (jint(sy, "syncing"))
			printf("syncing:    now\n");
		if (jint(sy, "conflicts"))
			printf("conflicts:  %lld merged during this mount (files named "
			       "'... (conflict from ...)')\n", jint(sy, "conflicts"));
	}
	if (json_object_object_get_ex(st, "cache", &cache)) {
		uint64_t limit = (uint64_t)jint(cache, "limit");
		printf("cache:      %s in %lld blocks, limit %s\n",
		       cmd_human_size((uint64_t)jint(cache, "bytes"), a, sizeof(a)),
		       jint(cache, "blocks"), limit ? cmd_human_size(limit, b, sizeof(b)) : "none");
		printf("pinned:     %s\n", cmd_human_size((uint64_t)jint(cache, "pinned_bytes"), a, sizeof(a)));
		printf("not uploaded: %s in %lld blocks\n",
		       cmd_human_size((uint64_t)jint(cache, "dirty_bytes"), a, sizeof(a)),
		       jint(cache, "dirty_blocks"));
	}
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int json = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return cmd_usage_error(&cmd_status, "unknown option '%s'", argv[optind - 1]);
		json = 1;
	}
	if (optind != argc - 1)
		return cmd_usage_error(&cmd_status, "status takes one volume NAME");
	const char *name = argv[optind];
	json_object *st = NULL;
	int rc = status_facts_collect(&st, name);
	if (rc)
		return cmd_fail(rc, "cannot read the status of '%s'", name);
	if (json)
		printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		print_human(st);
	json_object_put(st);
	return EXIT_OK;
}
