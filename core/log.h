/* log: the one logging module.  Everything that wants to tell the user or the
 * developer something goes through here, with a level and a timestamp, to
 * stderr or to a file.  It never exits or aborts: callers decide. */
#ifndef PEERCLING_LOG_H
#define PEERCLING_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* A log file past this size is moved to PATH.1 and started again. */
#define LOG_ROTATE_BYTES (16L << 20)

/* path NULL: stderr.  Returns 0 or -errno (the file could not be opened). */
int log_open(const char *path, enum log_level level);
/* Another size than LOG_ROTATE_BYTES (tests). */
void log_set_rotate_bytes(long bytes);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_close(void);
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, LOG_MODULE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, LOG_MODULE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, LOG_MODULE, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() >= LOG_DEBUG)                              \
			log_msg(LOG_DEBUG, LOG_MODULE, __VA_ARGS__);           \
	} while (0)

#endif
