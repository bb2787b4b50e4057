/* init: create a new volume (state directory, key, repository, config) and,
 * for a file:// cloud, the cloud directory itself. */
#include "config.h"
#include "cli/cmd.h"
#include "core/error.h"
#include "core/volume.h"
#include "sync/backend.h"
#include "sync/cloud.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>

static int run(int argc, char **argv);

const struct cmd cmd_init = {
	.name = "init",
	.run = run,
	.usage = "peercling init NAME [--cloud URL] [--no-encrypt]",
	.summary = "create a new volume",
	.help = "Options:\n"
		"  --cloud URL     where the volume lives: file:///DIR (default: a folder in\n"
		"                  the volume's state directory), webdav://HOST/PATH,\n"
		"                  webdavs://HOST/PATH or s3://BUCKET/PREFIX\n"
		"  --no-encrypt    store data in the cloud unencrypted (default: encrypted)\n",
};

static int check_cloud_url(const char *url)
{
	static const char *const schemes[] = { "file:///", "webdav://", "webdavs://", "s3://" };
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 && url[strlen(schemes[i])])
			return 0;
	return -EINVAL;
}

static int make_file_cloud(const char *url)
{
	const char *dir = url + strlen("file://");
	if (strncmp(url, "file://", 7) != 0)
		return 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return error_set(-errno, "cannot create the cloud directory %s: %s", dir,
				 strerror(errno));
	return 0;
}

/* The cloud must answer, and hold this volume's record, before init says
 * yes: a bucket that does not exist or refused credentials fail here. */
static int publish(struct volume *v)
{
	struct cloud *c = NULL;
	int rc = cloud_open(&c, v);
	if (!rc)
		rc = backend_check(c->b);
	char *existing = NULL;
	int enc = v->encrypt;
	if (!rc && cloud_read_volume_id(c, &existing) != -ENOENT)
		rc = error_set(-EEXIST, "%s already holds a peercling volume: use 'peercling clone' "
			       "to join it, or another URL", v->cloud_url);
	free(existing);
	v->encrypt = enc;
	if (!rc)
		rc = cloud_put_volume_info(c);
	cloud_free(c);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

static void remove_volume(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "peercling: could not remove %s: %s\n", dir, strerror(errno));
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cloud", required_argument, NULL, 'c' },
		{ "no-encrypt", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct volume_create_opts co = { 0 };
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			co.cloud_url = optarg;
			break;
		case 'n':
			co.no_encrypt = 1;
			break;
		default:
			return cmd_usage_error(&cmd_init, "unknown or incomplete option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cmd_usage_error(&cmd_init, "init takes exactly one volume NAME");
	const char *name = argv[optind];
	if (co.cloud_url && check_cloud_url(co.cloud_url))
		return cmd_usage_error(&cmd_init, "'%s' is not a cloud URL (file:///DIR, "
				       "webdav://HOST/PATH, webdavs://HOST/PATH, s3://BUCKET/PREFIX)",
				       co.cloud_url);
	struct volume *v = NULL;
	int rc = volume_create(&v, name, &co);
	if (rc)
		return cmd_fail(rc, "cannot create volume '%s'", name);
	rc = make_file_cloud(v->cloud_url);
	if (!rc)
		rc = publish(v);
	if (rc) {
		char *dir = strdup(v->dir);
		volume_free(v);
		remove_volume(dir);
		free(dir);
		return cmd_fail(rc, "cannot create volume '%s' (nothing was kept)", name);
	}
	printf("Created volume '%s' in %s\n"
	       "  cloud:      %s\n"
	       "  encryption: %s\n"
	       "Mount it with:  peercling mount %s MOUNTPOINT\n"
	       "Join it from another device with the key from:  peercling key %s\n",
	       name, v->dir, v->cloud_url, v->encrypt ? "on" : "off (--no-encrypt)", name, name);
	volume_free(v);
	return EXIT_OK;
}
