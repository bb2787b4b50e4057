/* http: the one place that speaks HTTP (libcurl), shared by the WebDAV and
 * S3 backends: connection reuse and keep-alive, timeouts that notice a dead
 * server in seconds, retries with exponential backoff on 5xx, 429 and
 * transport failures (never on other 4xx), optional bandwidth limits, and
 * optional AWS SigV4 signing.  Thread-safe: each call takes an easy handle
 * from a small pool; connections are shared. */
#ifndef PEERCLING_HTTP_H
#define PEERCLING_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct http;

struct http_opts {
	long connect_timeout_ms; /* default 3000 */
	long timeout_ms;         /* no progress for this long aborts; default 15000 */
	int retries;             /* extra attempts on retryable failures; default 3 */
	uint64_t max_send_bps, max_recv_bps; /* 0: unlimited */
	const char *user, *password; /* basic auth, or NULL */
	int use_netrc;               /* read ~/.netrc when user is NULL */
	const char *aws_sigv4;       /* e.g. "aws:amz:us-east-1:s3", or NULL */
	const char *aws_key, *aws_secret;
};

struct http_req {
	const char *method;   /* "GET", "PUT", "MKCOL", "PROPFIND", ... */
	const char *url;      /* already percent-encoded */
	const char *const *headers; /* "Name: value" strings, NULL-terminated, or NULL */
	const void *body;
	size_t body_len;
};

struct http_resp {
	long status;
	uint8_t *body; /* malloc'd, NUL-terminated (not counted in len) */
	size_t len;
};

int http_new(struct http **out, const struct http_opts *opts);
void http_free(struct http *h);

/* 0 when a final response arrived (any status: the caller maps it), or a
 * negative errno when none did after the retries: -ETIMEDOUT,
 * -ECONNREFUSED, -EHOSTUNREACH (DNS or routing), -EIO. */
int http_do(struct http *h, const struct http_req *req, struct http_resp *out);
void http_resp_free(struct http_resp *r);

/* Maps an HTTP status to 0 or a backend errno (404 -ENOENT, 401/403
 * -EACCES, 5xx -EIO, ...) with an error_set() message naming what. */
int http_status_errno(long status, const char *what);

/* For a ranged GET: the header asking for LEN bytes from OFF, and the body
 * of its 2xx reply cut to exactly those bytes (206 as asked, or a 200 with
 * the whole object from a server that ignores Range).  A short or
 * misplaced body is -EIO naming WHAT; *out malloc'd, r->body taken. */
void http_range_header(char out[64], uint64_t off, size_t len);
int http_range_body(struct http_resp *r, uint64_t off, size_t len, uint8_t **out,
		    const char *what);

/* Percent-encodes s for a URL path (keep_slash) or a query value. *out malloc'd. */
int http_escape(char **out, const char *s, int keep_slash);

#endif
