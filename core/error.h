/* error: a per-thread message that says why the last call failed, in words a
 * user can act on (what went wrong and what to do).  Functions return 0 or a
 * negative errno and call error_set(); the CLI prints error_last(), the
 * daemon logs it.  Modelled on libgit2's git_error_set/git_error_last. */
#ifndef PEERCLING_ERROR_H
#define PEERCLING_ERROR_H

/* Sets the message and returns rc, so that `return error_set(-EIO, ...)`
 * reads as one statement. */
int error_set(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Borrowed; empty string when nothing was set. */
const char *error_last(void);
void error_clear(void);

#endif
