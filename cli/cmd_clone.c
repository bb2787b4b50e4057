/* clone: join a volume that lives in a cloud, from another device.  The
 * history (commits, trees, manifests) comes at once; file contents come
 * when they are read. */
#include "config.h"
#include "cli/cmd.h"
#include "core/error.h"
#include "core/volume.h"
#include "sync/backend.h"
#include "sync/cloud.h"
#include "sync/sync.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const struct cmd cmd_clone = {
	.name = "clone",
	.run = run,
	.usage = "peercling clone URL NAME --key KEY",
	.summary = "join an existing volume from another device",
	.help = "Options:\n"
		"  --key KEY   the volume key, as printed by 'peercling key NAME' on a device\n"
		"              that has the volume (or '-' to read it from standard input)\n"
		"History arrives at once; file contents are fetched when first read.\n",
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

static int read_key_arg(const char *arg, uint8_t key[SEAL_KEY_SIZE])
{
	char buf[256];
	if (strcmp(arg, "-") == 0) {
		if (!fgets(buf, sizeof(buf), stdin))
			return error_set(-EINVAL, "no key on standard input");
		arg = buf;
	}
	return volume_key_from_hex(key, arg);
}

static int join(struct volume *v, struct sync_report *rep)
{
	struct cloud *c = NULL;
	char *id = NULL;
	int rc = cloud_open(&c, v);
	if (!rc)
		rc = backend_check(c->b);
	if (!rc)
		rc = cloud_read_volume_id(c, &id);
	if (!rc && (rc = volume_config_set_string(v, "volume.id", id)) == 0 &&
	    (rc = volume_config_set_string(v, "volume.encrypt", v->encrypt ? "true" : "false")) == 0) {
		free(v->volume_id);
		v->volume_id = id;
		id = NULL;
		rc = sync_run(c, NULL, rep, NULL, NULL);
	}
	free(id);
	cloud_free(c);
	return rc;
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key_arg = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return cmd_usage_error(&cmd_clone, "unknown option or missing value '%s'",
					       argv[optind - 1]);
		key_arg = optarg;
	}
	if (optind != argc - 2)
		return cmd_usage_error(&cmd_clone, "clone takes a cloud URL and a volume NAME");
	if (!key_arg)
		return cmd_usage_error(&cmd_clone, "--key KEY is required (see 'peercling key NAME' "
				       "on a device that has the volume)");
	const char *url = argv[optind], *name = argv[optind + 1];
	uint8_t key[SEAL_KEY_SIZE];
	int rc = read_key_arg(key_arg, key);
	if (rc)
		return cmd_fail(rc, "bad --key");
	struct volume_create_opts co = { .cloud_url = url, .key = key,
					 .volume_id = "00000000000000000000000000000000" };
	struct volume *v = NULL;
	rc = volume_create(&v, name, &co);
	sodium_memzero(key, sizeof(key));
	if (rc)
		return cmd_fail(rc, "cannot clone into '%s'", name);
	struct sync_report rep;
	rc = join(v, &rep);
	if (rc) {
		char *dir = strdup(v->dir);
		volume_free(v);
		if (dir && nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
			fprintf(stderr, "peercling: could not remove %s\n", dir);
		free(dir);
		return cmd_fail(rc, "cannot clone %s (nothing was kept)", url);
	}
	printf("Cloned volume '%s' from %s into %s\n"
	       "  %u objects of history from %u device(s); file contents are fetched when read\n"
	       "Mount it with:  peercling mount %s MOUNTPOINT\n",
	       name, url, v->dir, rep.objects_down, rep.heads_seen, name);
	volume_free(v);
	return EXIT_OK;
}
