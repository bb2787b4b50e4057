/* mount: serve a volume at a mountpoint (the daemon lives in fs/mount.c). */
#include "config.h"
#include "cli/cmd.h"
#include "core/error.h"
#include "core/volume.h"
#include "fs/mount.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const struct cmd cmd_mount = {
	.name = "mount",
	.run = run,
	.usage = "peercling mount NAME MOUNTPOINT [-f] [-d] [-o OPTS]",
	.summary = "mount a volume (runs a daemon until unmounted)",
	.help = "Options:\n"
		"  -f             stay in the foreground (default: return once mounted)\n"
		"  -d             debug: log every request (implies nothing else)\n"
		"  -o OPTS        FUSE mount options, comma-separated: ro, allow_other,\n"
		"                 default_permissions (always on), ...; noxattr: no\n"
		"                 extended attributes (faster ls -l)\n"
		"Unmount with 'peercling umount MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT';\n"
		"both make a final commit.\n",
};

static int run(int argc, char **argv)
{
	struct fs_mount_opts o = { 0 };
	char *opts = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt(argc, argv, "+fdo:")) != -1) {
		switch (c) {
		case 'f':
			o.foreground = 1;
			break;
		case 'd':
			o.debug = 1;
			break;
		case 'o': {
			char *joined = NULL;
			if (asprintf(&joined, "%s%s%s", opts ? opts : "", opts ? "," : "", optarg) < 0)
				return cmd_fail(-ENOMEM, "out of memory");
			free(opts);
			opts = joined;
			break;
		}
		default:
			free(opts);
			return cmd_usage_error(&cmd_mount, "unknown option or missing argument '%s'",
					       argv[optind - 1]);
		}
	}
	/* Options may also follow the operands, as mount(8) passes them. */
	if (argc - optind >= 2) {
		o.name = argv[optind];
		o.mountpoint = argv[optind + 1];
		optind += 2;
		while ((c = getopt(argc, argv, "+fdo:")) != -1) {
			if (c == 'f')
				o.foreground = 1;
			else if (c == 'd')
				o.debug = 1;
			else if (c == 'o') {
				char *joined = NULL;
				if (asprintf(&joined, "%s%s%s", opts ? opts : "", opts ? "," : "",
					     optarg) < 0)
					return cmd_fail(-ENOMEM, "out of memory");
				free(opts);
				opts = joined;
			} else {
				free(opts);
				return cmd_usage_error(&cmd_mount, "unknown option '%s'",
						       argv[optind - 1]);
			}
		}
	}
	if (!o.name || optind != argc) {
		free(opts);
		return cmd_usage_error(&cmd_mount, "mount takes a volume NAME and a MOUNTPOINT");
	}
	char real[PATH_MAX];
	int rc = volume_check_name(o.name);
	if (rc) {
		free(opts);
		return cmd_fail(rc, "cannot mount");
	}
	if (!realpath(o.mountpoint, real)) {
		fs_mount_check_point(o.mountpoint);
		free(opts);
		return cmd_fail(-ENOENT, "cannot mount '%s'", o.name);
	}
	o.mountpoint = real;
	o.fuse_opts = opts;
	rc = fs_mount_run(&o);
	free(opts);
	if (rc)
		return cmd_fail(-EIO, "cannot mount '%s' at %s", o.name, real);
	return EXIT_OK;
}
