/* cmd: the command table and the helpers every cli/cmd_*.c shares.  Each
 * command is one file starting with its usage string, like git's builtin/. */
#ifndef PEERCLING_CMD_H
#define PEERCLING_CMD_H

#include <stdint.h>
#include <stdio.h>

/* Exit codes, as git and most POSIX tools use them. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;   /* the synopsis line(s) */
	const char *summary; /* one line for `peercling --help` */
	const char *help;    /* options, for `peercling help NAME` and NAME --help */
};

extern const struct cmd cmd_init, cmd_clone, cmd_key, cmd_status, cmd_mount, cmd_umount, cmd_sync,
	cmd_pin, cmd_unpin, cmd_log, cmd_diff, cmd_restore, cmd_conflicts, cmd_resolve;

const struct cmd *cmd_find(const char *name);
void cmd_print_help(const struct cmd *c, FILE *out);

/* Print "peercling: MESSAGE" (plus error_last() when why is set) on stderr
 * and return EXIT_FAIL. */
int cmd_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage error and the synopsis; return EXIT_USAGE. */
int cmd_usage_error(const struct cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Handles -h/--help as the only argument: prints help, returns 1. */
int cmd_wants_help(const struct cmd *c, int argc, char **argv);

/* A progress bar on standard error when it is a terminal; label: a
 * string.  Fits fs_ctl_call_progress() and sync_run(). */
void cmd_progress_bar(void *label, uint64_t done, uint64_t total);

/* "1.5 GiB"; buf of at least 16 bytes. */
const char *cmd_human_size(uint64_t bytes, char *buf, size_t len);

#endif
