/* util: what every command shares: error and usage printing, sizes. */
#include "config.h"
#include "cli/cmd.h"
#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cmd_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	fputs("peercling: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	const char *why = error_last();
	if (rc && why[0])
		fprintf(stderr, ": %s", why);
	else if (rc)
		fprintf(stderr, ": %s", strerror(-rc));
	fputc('\n', stderr);
	return EXIT_FAIL;
}

int cmd_usage_error(const struct cmd *c, const char *fmt, ...)
{
	va_list ap;
	fputs("peercling: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\nTry 'peercling help %s' for more.\n", c->usage, c->name);
	return EXIT_USAGE;
}

void cmd_print_help(const struct cmd *c, FILE *out)
{
	fprintf(out, "usage: %s\n\n%s\n", c->usage, c->summary);
	if (c->help && c->help[0])
		fprintf(out, "\n%s", c->help);
}

int cmd_wants_help(const struct cmd *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			cmd_print_help(c, stdout);
			return 1;
		}
	}
	return 0;
}

const char *cmd_human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

void cmd_progress_bar(void *label, uint64_t done, uint64_t total)
{
	if (!isatty(STDERR_FILENO) || !total)
		return;
	int width = 40, fill = (int)(done * (uint64_t)width / total);
	fprintf(stderr, "\r%s [%.*s%*s] %llu/%llu blocks", (const char *)label, fill,
		"########################################", width - fill, "",
		(unsigned long long)done, (unsigned long long)total);
	if (done == total)
		fputc('\n', stderr);
}
