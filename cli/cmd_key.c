/* key: print a volume's key, the secret another device needs to join it. */
#include "config.h"
#include "cli/cmd.h"
#include "core/volume.h"

#include <sodium.h>
#include <stdio.h>
#include <unistd.h>

static int run(int argc, char **argv);

const struct cmd cmd_key = {
	.name = "key",
	.run = run,
	.usage = "peercling key NAME",
	.summary = "print the volume key to give another device",
	.help = "Prints the 64-hex-digit volume key on standard output.  Anyone with the key\n"
		"and access to the cloud can read the volume: pass it only over a channel you\n"
		"trust (peercling clone URL NAME --key KEY on the other device).\n",
};

static int run(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error(&cmd_key, "key takes exactly one volume NAME");
	struct volume *v = NULL;
	int rc = volume_open(&v, argv[1], VOLUME_OPEN_NO_STORE);
	if (rc)
		return cmd_fail(rc, "cannot read the key of '%s'", argv[1]);
	char hex[2 * SEAL_KEY_SIZE + 1];
	volume_key_to_hex(v->master_key, hex);
	printf("%s\n", hex);
	sodium_memzero(hex, sizeof(hex));
	if (isatty(STDOUT_FILENO))
		fprintf(stderr, "Keep this key secret: it decrypts everything in volume '%s'.\n",
			argv[1]);
	volume_free(v);
	return EXIT_OK;
}
