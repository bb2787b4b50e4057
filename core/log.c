/* log: timestamps, levels, one mutex so lines from FUSE worker threads never
 * interleave.  Writes with one fprintf per line to a line-buffered stream.
 * A log file is kept under LOG_ROTATE_BYTES by moving it to PATH.1 (the one
 * before is dropped): a daemon that runs for months, or an application that
 * retries a read the cloud cannot serve, must not fill the disk. */
#include "config.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *log_file;
static char *log_path;
static long log_bytes, log_rotate_bytes = LOG_ROTATE_BYTES;
static enum log_level log_level = LOG_WARN;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_open(const char *path, enum log_level level)
{
	FILE *f = NULL;
	char *copy = NULL;
	if (path) {
		if (!(copy = strdup(path)))
			return -ENOMEM;
		f = fopen(path, "ae");
		if (!f) {
			int rc = -errno;
			free(copy);
			return rc;
		}
		setvbuf(f, NULL, _IOLBF, 0);
	}
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	free(log_path);
	log_file = f;
	log_path = copy;
	log_bytes = f ? ftell(f) : 0;
	log_level = level;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_set_rotate_bytes(long bytes)
{
	pthread_mutex_lock(&log_lock);
	log_rotate_bytes = bytes;
	pthread_mutex_unlock(&log_lock);
}

/* Under log_lock.  The new file is opened before anything moves, so a
 * failure (no file descriptors left, say) leaves PATH as it was, written
 * on and tried again a whole budget later, rather than a PATH.1 that
 * grows without end. */
static void rotate(void)
{
	size_t n = strlen(log_path) + 5;
	char *old = malloc(n), *fresh = malloc(n);
	FILE *f = NULL;
	if (old && fresh) {
		snprintf(old, n, "%s.1", log_path);
		snprintf(fresh, n, "%s.new", log_path);
		f = fopen(fresh, "we");
	}
	if (f && rename(log_path, old) == 0 && rename(fresh, log_path) == 0) {
		setvbuf(f, NULL, _IOLBF, 0);
		fclose(log_file);
		log_file = f;
	} else if (f) {
		fclose(f);
		unlink(fresh);
	}
	log_bytes = 0;
	free(old);
	free(fresh);
}

void log_set_level(enum log_level level) { log_level = level; }
enum log_level log_get_level(void) { return log_level; }

void log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	free(log_path);
	log_path = NULL;
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	if (level > log_level)
		return;
	int saved = errno;
	char stamp[40];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ld", ts.tv_nsec / 1000000);

	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	FILE *out = log_file ? log_file : stderr;
	int w = fprintf(out, "%s peercling[%s] %s: %s\n", stamp, module, level_names[level], msg);
	if (log_file && w > 0 && (log_bytes += w) >= log_rotate_bytes)
		rotate();
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
