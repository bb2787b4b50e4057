/* error: thread-local last-error message. */
#include "config.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

static __thread char error_buf[1024];

int error_set(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error_buf, sizeof(error_buf), fmt, ap);
	va_end(ap);
	return rc;
}

const char *error_last(void) { return error_buf; }
void error_clear(void) { error_buf[0] = '\0'; }
