/* backend: one small interface to a dumb blob store, the cloud of a volume.
 *
 * Keys are '/'-separated relative names chosen by sync/ (for example
 * "blocks/ab/ab12...", "objects/...", "heads/DEVICE").  Objects under
 * blocks/ and objects/ are immutable: put of an existing key with the same
 * bytes is a no-op, callers never change them.  heads/DEVICE is the one
 * mutable kind of key, written only by its device, so no compare-and-swap is
 * ever needed: put simply replaces it (atomically for readers: a reader
 * sees the old or the new head, never a mix).
 *
 * Objects under packs/ and index/ are immutable too.
 *
 * Errors: 0 or a negative errno with error_set():
 *   -ENOENT     no such key
 *   -EACCES     credentials refused (401/403)
 *   -ENXIO      the bucket / collection / directory does not exist
 *   -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH   cloud unreachable (after retries)
 *   -EIO        any other failure (5xx after retries, garbage reply)
 * Backends are thread-safe: several transfers may run at once. */
#ifndef PEERCLING_BACKEND_H
#define PEERCLING_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct backend;

struct backend_ops {
	int (*put)(struct backend *b, const char *key, const void *data, size_t len);
	/* *out malloc'd. */
	int (*get)(struct backend *b, const char *key, uint8_t **out, size_t *out_len);
	/* 1 present, 0 absent, or -errno. */
	int (*exists)(struct backend *b, const char *key);
	/* LEN bytes of KEY from OFF (*out malloc'd): a shorter reply is -EIO,
	 * so a caller never mistakes a truncated body for data. */
	int (*get_range)(struct backend *b, const char *key, uint64_t off, size_t len,
			 uint8_t **out);
	/* Calls cb for every key starting with prefix (in any order); a
	 * non-zero return from cb stops the listing and is returned. */
	int (*list)(struct backend *b, const char *prefix,
		    int (*cb)(const char *key, void *payload), void *payload);
	int (*del)(struct backend *b, const char *key);
	void (*free)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	char *url;
};

/* Settings that do not fit in a URL; any field may be NULL/0 (defaults,
 * then the usual environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL; ~/.netrc for WebDAV). */
struct backend_config {
	const char *user, *password;          /* WebDAV basic auth */
	const char *s3_endpoint;              /* http://host:port */
	const char *s3_region;                /* default us-east-1 */
	const char *s3_access_key, *s3_secret_key;
	int s3_path_style;                    /* 1: http://endpoint/bucket/key */
	long connect_timeout_ms;              /* default 3000 */
	long timeout_ms;                      /* whole transfer stall limit; default 15000 */
	int retries;                          /* on 5xx/timeouts; default 3 */
	uint64_t max_upload_bps, max_download_bps; /* 0: unlimited */
};

/* file:///DIR, webdav://HOST[:PORT]/PATH, webdavs://..., s3://BUCKET[/PREFIX].
 * Does not touch the network; -EINVAL (with a message) for a bad URL. */
int backend_open(struct backend **out, const char *url, const struct backend_config *cfg);
/* Checks that the store exists and the credentials work (a list or a
 * small request): what `init` and `clone` call to fail early and clearly. */
int backend_check(struct backend *b);
void backend_free(struct backend *b);

static inline int backend_put(struct backend *b, const char *key, const void *d, size_t n)
{
	return b->ops->put(b, key, d, n);
}
static inline int backend_get(struct backend *b, const char *key, uint8_t **out, size_t *n)
{
	return b->ops->get(b, key, out, n);
}
static inline int backend_get_range(struct backend *b, const char *key, uint64_t off,
				    size_t len, uint8_t **out)
{
	return b->ops->get_range(b, key, off, len, out);
}
static inline int backend_exists(struct backend *b, const char *key)
{
	return b->ops->exists(b, key);
}
static inline int backend_list(struct backend *b, const char *prefix,
			       int (*cb)(const char *key, void *payload), void *payload)
{
	return b->ops->list(b, prefix, cb, payload);
}
static inline int backend_del(struct backend *b, const char *key)
{
	return b->ops->del(b, key);
}

#endif
