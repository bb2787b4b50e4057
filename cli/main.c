/* main: the `peercling` command: global options, then dispatch through the
 * command table to cli/cmd_*.c. */
#include "config.h"
#include "cli/cmd.h"
#include "core/log.h"
#include "core/seal.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cmd *const commands[] = {
	&cmd_init, &cmd_clone, &cmd_key, &cmd_status, &cmd_mount, &cmd_umount, &cmd_sync, &cmd_pin, &cmd_unpin,
	&cmd_log, &cmd_diff, &cmd_restore, &cmd_conflicts, &cmd_resolve,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static void print_main_help(FILE *out)
{
	fprintf(out, "usage: peercling [--version] [--help] [-v] COMMAND [ARGS]\n\n"
		     "A cloud folder as a local, versioned, offline-capable filesystem.\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(out, "\nGlobal options:\n"
		     "  -v, --verbose   log more (repeat for debug)\n"
		     "  -h, --help      this help; 'peercling help COMMAND' for one command\n"
		     "  --version       print the version\n\n"
		     "Volumes live in $PEERCLING_HOME/NAME, or else $XDG_DATA_HOME/peercling/NAME\n"
		     "(~/.local/share/peercling/NAME).  See peercling(1), peercling.conf(5).\n");
}

static int run_help(int argc, char **argv)
{
	if (argc < 2) {
		print_main_help(stdout);
		return EXIT_OK;
	}
	const struct cmd *c = cmd_find(argv[1]);
	if (!c) {
		fprintf(stderr, "peercling: no command '%s'; see 'peercling --help'\n", argv[1]);
		return EXIT_USAGE;
	}
	cmd_print_help(c, stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	int verbose = 0, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--version") == 0) {
			printf("peercling %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_main_help(stdout);
			return EXIT_OK;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbose++;
		} else if (strcmp(a, "-vv") == 0) {
			verbose += 2;
		} else {
			fprintf(stderr, "peercling: unknown option '%s'\n", a);
			print_main_help(stderr);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		print_main_help(stderr);
		return EXIT_USAGE;
	}
	log_set_level(verbose >= 2 ? LOG_DEBUG : verbose ? LOG_INFO : LOG_WARN);
	const char *name = argv[i];
	if (strcmp(name, "help") == 0)
		return run_help(argc - i, argv + i);
	const struct cmd *c = cmd_find(name);
	if (!c) {
		fprintf(stderr, "peercling: '%s' is not a peercling command; see 'peercling --help'\n",
			name);
		return EXIT_USAGE;
	}
	if (cmd_wants_help(c, argc - i, argv + i))
		return EXIT_OK;
	if (seal_init() != 0) {
		fprintf(stderr, "peercling: cannot initialise libsodium\n");
		return EXIT_FAIL;
	}
	git_libgit2_init();
	int rc = c->run(argc - i, argv + i);
	git_libgit2_shutdown();
	return rc;
}
