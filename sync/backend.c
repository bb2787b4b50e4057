/* backend: the front of the backend interface (backend.h).  This file owns
 * the recognition of cloud URLs, the defaults of backend_config (timeouts,
 * retries, then the usual environment variables) and the dispatch to each
 * backend's constructor and check (backend_impl.h).  Whatever is specific to
 * a store lives in its own backend_*.c. */
#include "config.h"

#include "sync/backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "sync/backend_impl.h"

#define LOG_MODULE "backend"

#define ACCEPTED_FORMS                                                                             \
	"file:///DIR, webdav://HOST[:PORT]/PATH, webdavs://HOST[:PORT]/PATH "                      \
	"or s3://BUCKET[/PREFIX]"

typedef int (*open_fn)(struct backend **, const char *, const struct backend_config *);

static const struct scheme {
	const char *prefix;
	open_fn open;
} schemes[] = {
    {"file://", backend_file_open},
    {"webdav://", backend_webdav_open},
    {"webdavs://", backend_webdav_open},
    {"s3://", backend_s3_open},
};

static const struct scheme *find_scheme(const char *url)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncasecmp(url, schemes[i].prefix, strlen(schemes[i].prefix)))
			return &schemes[i];
	return NULL;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Fills what the caller left NULL/0: the documented defaults, then the
 * environment, so that every backend sees one complete config. */
static void config_defaults(struct backend_config *c, const struct backend_config *in)
{
	if (in)
		*c = *in;
	else
		memset(c, 0, sizeof(*c));
	if (c->connect_timeout_ms <= 0)
		c->connect_timeout_ms = 3000;
	if (c->timeout_ms <= 0)
		c->timeout_ms = 15000;
	if (c->retries == 0)
		c->retries = 3;
	if (!c->s3_access_key)
		c->s3_access_key = env("AWS_ACCESS_KEY_ID");
	if (!c->s3_secret_key)
		c->s3_secret_key = env("AWS_SECRET_ACCESS_KEY");
	if (!c->s3_region)
		c->s3_region = env("AWS_REGION");
	if (!c->s3_region)
		c->s3_region = env("AWS_DEFAULT_REGION");
	if (!c->s3_region)
		c->s3_region = "us-east-1";
	if (!c->s3_endpoint)
		c->s3_endpoint = env("AWS_ENDPOINT_URL");
}

int backend_open(struct backend **out, const char *url, const struct backend_config *cfg)
{
	*out = NULL;
	if (!url || !*url)
		return error_set(-EINVAL, "no cloud URL given: use " ACCEPTED_FORMS);
	const struct scheme *s = find_scheme(url);
	if (!s)
		return error_set(-EINVAL, "unsupported cloud URL '%s': use " ACCEPTED_FORMS, url);
	if (!url[strlen(s->prefix)])
		return error_set(-EINVAL, "cloud URL '%s' names no place: use " ACCEPTED_FORMS,
				 url);
	struct backend_config c;
	config_defaults(&c, cfg);
	int rc = s->open(out, url, &c);
	if (rc < 0) {
		*out = NULL;
		return rc;
	}
	log_debug("opened cloud %s", url);
	return 0;
}

static int stop_at_first(const char *key, void *payload)
{
	return 1;
}

int backend_check(struct backend *b)
{
	const char *url = b->url ? b->url : "";
	if (!strncasecmp(url, "file://", 7))
		return backend_file_check(b);
	if (!strncasecmp(url, "webdav", 6))
		return backend_webdav_check(b);
	/* S3 (and any other store): a one-key listing proves that the
	 * bucket exists and the keys work; its errors already say which. */
	int rc = backend_list(b, "heads/", stop_at_first, NULL);
	return rc < 0 ? rc : 0;
}

void backend_free(struct backend *b)
{
	if (b)
		b->ops->free(b);
}
