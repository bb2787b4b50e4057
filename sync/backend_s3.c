/* backend_s3: the S3 backend (s3://BUCKET[/PREFIX]) over http.c.
 *
 * This file owns everything S3-specific: where a bucket lives (AWS itself,
 * or any S3 service through an endpoint: radosgw, MinIO, ...), the
 * addressing style, the SigV4 details that libcurl leaves to us, the XML of
 * ListObjectsV2 and of error replies, and the mapping of S3 error codes to
 * the errnos of backend.h with messages that say what to fix.  HTTP itself
 * (connections, timeouts, retries, signing) is http.c's.
 *
 * Where requests go:
 *   no endpoint        https://BUCKET.s3.REGION.amazonaws.com/KEY (virtual
 *                      host; path style for bucket names with dots, which
 *                      do not fit AWS's wildcard certificate)
 *   endpoint E given   E/BUCKET/KEY (path style: what radosgw on an IP
 *                      address and MinIO need), or virtual host when
 *                      cfg->s3_path_style < 0
 * cfg->s3_path_style: > 0 path style, < 0 virtual host, 0 the default above.
 * Keys map to PREFIX/key; listings strip PREFIX/ again.
 *
 * SigV4: libcurl signs (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3") but, as of
 * curl 7.88, neither sends x-amz-content-sha256 (which S3 and radosgw
 * require) nor normalises the query string it signs.  So every request
 * carries x-amz-content-sha256 with the SHA-256 of its body (libsodium;
 * curl then signs that value), and query strings are built here already
 * sorted by name and percent-encoded the AWS way.  AWS_SESSION_TOKEN is sent
 * as x-amz-security-token with keys taken from the environment.  Without any
 * credentials requests go unsigned (a public bucket).
 *
 * PEERCLING_S3_PAGE_KEYS (tests only) sets max-keys of listing pages so a
 * small store exercises continuation tokens. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "sync/backend.h"
#include "sync/backend_impl.h"
#include "sync/http.h"
#include "sync/xml.h"

#define LOG_MODULE "s3"

#define LIST_PAGE_MAX 1000

struct s3 {
	struct backend b;
	struct http *http;
	char *bucket;
	char *prefix;	 /* "" or "PREFIX/" */
	char *obj_base;	 /* URL that KEY is appended to after a '/' */
	char *list_base; /* URL that "?query" is appended to */
	char *where;	 /* the endpoint, for messages */
	char *key_id;	 /* for messages; NULL when unsigned */
	char *token_hdr; /* "x-amz-security-token: ..." or NULL */
	int page_keys;
};

static const char empty_sha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ---- small helpers ----------------------------------------------------- */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static void payload_hash(char hex[65], const void *data, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	if (!len) {
		memcpy(hex, empty_sha256, 65);
		return;
	}
	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* Bucket names: 3 to 63 characters of letters, digits, '.', '-', '_'
 * (AWS wants lower case; other S3 services accept legacy names). */
static int bucket_ok(const char *s, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

/* ---- errors ------------------------------------------------------------ */

/* Maps a non-2xx reply to a backend errno with a message.  what names the
 * object ("s3://bucket/key"), bucket_op says the request named no key (a
 * listing), so a bare 404 means the bucket is missing. */
static int s3_error(struct s3 *s, long status, const struct http_resp *r, const char *method,
		    const char *what, int bucket_op)
{
	char *code = r ? xml_text((const char *)r->body, r->len, "Code") : NULL;
	char *msg = r ? xml_text((const char *)r->body, r->len, "Message") : NULL;
	const char *c = code ? code : "";
	char detail[320] = "";
	int rc;

	if (msg && *msg)
		snprintf(detail, sizeof(detail), ": %.300s", msg);
	if (!strcmp(c, "NoSuchBucket") || (status == 404 && bucket_op && !*c)) {
		rc = error_set(-ENXIO, "bucket %s does not exist (create it first) at %s",
			       s->bucket, s->where);
	} else if (status == 404 || !strcmp(c, "NoSuchKey")) {
		rc = error_set(-ENOENT, "%s: no such key", what);
	} else if (!strcmp(c, "InvalidAccessKeyId")) {
		rc = error_set(-EACCES,
			       "%s refused the credentials: access key id '%s' is unknown "
			       "(InvalidAccessKeyId); check AWS_ACCESS_KEY_ID",
			       s->where, s->key_id ? s->key_id : "");
	} else if (!strcmp(c, "SignatureDoesNotMatch")) {
		rc = error_set(-EACCES,
			       "%s refused the credentials: the secret key does not match access "
			       "key id '%s' (SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY",
			       s->where, s->key_id ? s->key_id : "");
	} else if (!strcmp(c, "RequestTimeTooSkewed")) {
		rc = error_set(-EACCES,
			       "%s refused the request: this machine's clock is too far off "
			       "(RequestTimeTooSkewed); set the time (NTP) and retry",
			       s->where);
	} else if (!strcmp(c, "AuthorizationHeaderMalformed") || !strcmp(c, "PermanentRedirect") ||
		   status == 301) {
		char *region = r ? xml_text((const char *)r->body, r->len, "Region") : NULL;
		rc = error_set(-EIO,
			       "%s %s: the bucket %s is not in this region (%s%s%s); set "
			       "AWS_REGION%s%s",
			       method, what, s->bucket, *c ? c : "HTTP 301",
			       region ? ", it is in " : "", region ? region : "",
			       region ? " to " : "", region ? region : "");
		free(region);
	} else if (status == 401 || status == 403) {
		if (!s->key_id)
			rc = error_set(-EACCES,
				       "%s %s: access denied (HTTP %ld %s) and no credentials are "
				       "set: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
				       method, what, status, c);
		else
			rc = error_set(-EACCES,
				       "%s %s: the credentials of access key id '%s' were refused "
				       "(HTTP %ld %s%s)",
				       method, what, s->key_id, status, c, detail);
	} else if (status >= 500) {
		rc = error_set(-EIO, "%s %s: S3 server error (HTTP %ld %s%s), try again later",
			       method, what, status, c, detail);
	} else {
		rc = error_set(-EIO, "%s %s: unexpected reply (HTTP %ld %s%s)", method, what,
			       status, c, detail);
	}
	free(code);
	free(msg);
	return rc;
}

/* ---- requests ---------------------------------------------------------- */

/* The URL of one key (PREFIX/key, percent-encoded), or NULL. */
static char *key_url(struct s3 *s, const char *key)
{
	char *full = xasprintf("%s%s", s->prefix, key), *esc = NULL, *url = NULL;
	if (full && !http_escape(&esc, full, 1))
		url = xasprintf("%s/%s", s->obj_base, esc);
	free(full);
	free(esc);
	return url;
}

static int check_key(struct s3 *s, const char *key)
{
	if (!key || !*key || key[0] == '/')
		return error_set(-EINVAL, "s3://%s/%s%s: invalid key", s->bucket, s->prefix,
				 key ? key : "(null)");
	return 0;
}

/* One signed request; on 0 *resp holds the reply (any status). */
static int s3_do_with(struct s3 *s, const char *method, const char *url, const void *body,
		      size_t len, const char *extra, struct http_resp *resp)
{
	char sha[65], hdr[100];
	const char *headers[4] = {hdr, s->token_hdr ? s->token_hdr : extra,
				  s->token_hdr ? extra : NULL, NULL};
	payload_hash(sha, body, len);
	snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", sha);
	struct http_req req = {
	    .method = method,
	    .url = url,
	    .headers = headers,
	    .body = body,
	    .body_len = len,
	};
	return http_do(s->http, &req, resp);
}

static int s3_do(struct s3 *s, const char *method, const char *url, const void *body, size_t len,
		 struct http_resp *resp)
{
	return s3_do_with(s, method, url, body, len, NULL, resp);
}

static int s3_put(struct backend *b, const char *key, const void *data, size_t len)
{
	struct s3 *s = (struct s3 *)b;
	struct http_resp r;
	int rc = check_key(s, key);
	if (rc)
		return rc;
	char *url = key_url(s, key);
	if (!url)
		return error_set(-ENOMEM, "out of memory");
	rc = s3_do(s, "PUT", url, data, len, &r);
	if (!rc) {
		if (r.status < 200 || r.status > 299)
			rc = s3_error(s, r.status, &r, "PUT", url, 0);
		http_resp_free(&r);
	}
	free(url);
	return rc;
}

static int s3_get(struct backend *b, const char *key, uint8_t **out, size_t *out_len)
{
	struct s3 *s = (struct s3 *)b;
	struct http_resp r;
	*out = NULL;
	*out_len = 0;
	int rc = check_key(s, key);
	if (rc)
		return rc;
	char *url = key_url(s, key);
	if (!url)
		return error_set(-ENOMEM, "out of memory");
	rc = s3_do(s, "GET", url, NULL, 0, &r);
	if (!rc) {
		if (r.status >= 200 && r.status <= 299) {
			*out = r.body;
			*out_len = r.len;
			r.body = NULL;
		} else {
			rc = s3_error(s, r.status, &r, "GET", url, 0);
		}
		http_resp_free(&r);
	}
	free(url);
	return rc;
}

static int s3_get_range(struct backend *b, const char *key, uint64_t off, size_t len,
			uint8_t **out)
{
	struct s3 *s = (struct s3 *)b;
	struct http_resp r;
	*out = NULL;
	int rc = check_key(s, key);
	if (rc)
		return rc;
	char *url = key_url(s, key);
	if (!url)
		return error_set(-ENOMEM, "out of memory");
	char range[64], what[512];
	http_range_header(range, off, len);
	rc = s3_do_with(s, "GET", url, NULL, 0, range, &r);
	if (!rc) {
		snprintf(what, sizeof(what), "S3 GET %s", url);
		if (r.status == 200 || r.status == 206)
			rc = http_range_body(&r, off, len, out, what);
		else
			rc = s3_error(s, r.status, &r, "GET", url, 0);
		http_resp_free(&r);
	}
	free(url);
	return rc;
}

static int s3_exists(struct backend *b, const char *key)
{
	struct s3 *s = (struct s3 *)b;
	struct http_resp r;
	int rc = check_key(s, key);
	if (rc)
		return rc;
	char *url = key_url(s, key);
	if (!url)
		return error_set(-ENOMEM, "out of memory");
	rc = s3_do(s, "HEAD", url, NULL, 0, &r);
	if (!rc) {
		if (r.status >= 200 && r.status <= 299)
			rc = 1;
		else if (r.status == 404)
			rc = 0;
		else /* a HEAD reply has no body: the status says it all */
			rc = s3_error(s, r.status, NULL, "HEAD", url, 0);
		http_resp_free(&r);
	}
	free(url);
	return rc;
}

static int s3_del(struct backend *b, const char *key)
{
	struct s3 *s = (struct s3 *)b;
	struct http_resp r;
	int rc = check_key(s, key);
	if (rc)
		return rc;
	char *url = key_url(s, key);
	if (!url)
		return error_set(-ENOMEM, "out of memory");
	rc = s3_do(s, "DELETE", url, NULL, 0, &r);
	if (!rc) {
		/* S3 answers 204 for a missing key too; a 404 (NoSuchKey
		 * from some services) means the same: it is gone. */
		if ((r.status < 200 || r.status > 299) && r.status != 404)
			rc = s3_error(s, r.status, &r, "DELETE", url, 0);
		else if (r.status == 404 && strstr((char *)r.body, "NoSuchBucket"))
			rc = s3_error(s, r.status, &r, "DELETE", url, 0);
		http_resp_free(&r);
	}
	free(url);
	return rc;
}

/* ---- listing ----------------------------------------------------------- */

/* Builds the ListObjectsV2 URL.  The parameters are in sorted order and
 * their values percent-encoded: the query is signed exactly as written. */
static char *list_url(struct s3 *s, const char *full_prefix, const char *token, int max_keys)
{
	char *ep = NULL, *et = NULL, *url = NULL;
	char mk[32] = "";
	if (http_escape(&ep, full_prefix, 0))
		return NULL;
	if (token && http_escape(&et, token, 0)) {
		free(ep);
		return NULL;
	}
	if (max_keys > 0)
		snprintf(mk, sizeof(mk), "&max-keys=%d", max_keys);
	url = xasprintf("%s?%s%s%slist-type=2%s&prefix=%s", s->list_base,
			token ? "continuation-token=" : "", token ? et : "", token ? "&" : "", mk,
			ep);
	free(ep);
	free(et);
	return url;
}

struct page {
	const char *prefix;
	size_t skip;
	int (*cb)(const char *key, void *payload);
	void *payload;
};

/* Keys come with the volume's prefix: only those under it, without it. */
static int page_key(const char *key, void *payload)
{
	struct page *pg = payload;
	if (strlen(key) > pg->skip && !strncmp(key, pg->prefix, pg->skip))
		return pg->cb(key + pg->skip, pg->payload);
	return 0;
}

/* Calls cb for each key of one page; sets *next to the continuation token
 * (malloc'd) when the listing goes on. */
static int list_page(struct s3 *s, const struct http_resp *r, size_t skip,
		     int (*cb)(const char *key, void *payload), void *payload, char **next,
		     const char *what)
{
	struct page pg = { s->prefix, skip, cb, payload };
	int rc = xml_s3_list((const char *)r->body, r->len, page_key, &pg, next);
	if (rc == -EBADMSG) {
		char why[256];
		snprintf(why, sizeof(why), "%s", error_last());
		return error_set(-EIO, "%s: %s (is %s an S3 service?)", what, why, s->where);
	}
	return rc;
}

static int s3_list(struct backend *b, const char *prefix, int (*cb)(const char *key, void *payload),
		   void *payload)
{
	struct s3 *s = (struct s3 *)b;
	size_t skip = strlen(s->prefix);
	char *full = xasprintf("%s%s", s->prefix, prefix ? prefix : "");
	char *token = NULL;
	int rc = 0;
	if (!full)
		return error_set(-ENOMEM, "out of memory");
	for (;;) {
		struct http_resp r;
		char *url = list_url(s, full, token, s->page_keys), *next = NULL;
		if (!url) {
			rc = error_set(-ENOMEM, "out of memory");
			break;
		}
		rc = s3_do(s, "GET", url, NULL, 0, &r);
		if (!rc) {
			if (r.status >= 200 && r.status <= 299)
				rc = list_page(s, &r, skip, cb, payload, &next, url);
			else
				rc = s3_error(s, r.status, &r, "GET", url, 1);
			http_resp_free(&r);
		}
		free(url);
		if (rc || !next) {
			free(next);
			break;
		}
		if (token && !strcmp(token, next)) {
			free(next);
			rc = error_set(-EIO,
				       "listing s3://%s/%s: the server repeats its "
				       "continuation token",
				       s->bucket, full);
			break;
		}
		free(token);
		token = next;
	}
	free(token);
	free(full);
	return rc;
}

/* ---- open / free ------------------------------------------------------- */

static void s3_free(struct backend *b)
{
	struct s3 *s = (struct s3 *)b;
	if (!s)
		return;
	http_free(s->http);
	free(s->b.url);
	free(s->bucket);
	free(s->prefix);
	free(s->obj_base);
	free(s->list_base);
	free(s->where);
	free(s->key_id);
	if (s->token_hdr)
		sodium_memzero(s->token_hdr, strlen(s->token_hdr));
	free(s->token_hdr);
	free(s);
}

static const struct backend_ops s3_ops = {
    .put = s3_put,
    .get = s3_get,
    .get_range = s3_get_range,
    .exists = s3_exists,
    .list = s3_list,
    .del = s3_del,
    .free = s3_free,
};

/* Splits s3://BUCKET[/PREFIX] into bucket and "PREFIX/" (or ""). */
static int parse_url(struct s3 *s, const char *url)
{
	const char *p = url + strlen("s3://");
	size_t n = strcspn(p, "/");
	if (!bucket_ok(p, n))
		return error_set(-EINVAL,
				 "cloud URL '%s': '%.*s' is not a bucket name (3 to 63 "
				 "letters, digits, '.', '-'): use s3://BUCKET[/PREFIX]",
				 url, (int)n, p);
	if (!(s->bucket = strndup(p, n)))
		return -ENOMEM;
	p += n;
	while (*p == '/')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	if (strstr(p, "//") && strstr(p, "//") < p + pl)
		return error_set(-EINVAL, "cloud URL '%s': empty path segment in the prefix", url);
	s->prefix = pl ? xasprintf("%.*s/", (int)pl, p) : strdup("");
	return s->prefix ? 0 : -ENOMEM;
}

/* Sets obj_base, list_base and where from the endpoint and style. */
static int make_bases(struct s3 *s, const struct backend_config *cfg, const char *region)
{
	const char *ep = cfg->s3_endpoint && *cfg->s3_endpoint ? cfg->s3_endpoint : NULL;
	char *endpoint;
	int path_style;
	if (ep) {
		endpoint = strstr(ep, "://") ? strdup(ep) : xasprintf("https://%s", ep);
		path_style = cfg->s3_path_style >= 0;
	} else {
		endpoint = xasprintf("https://s3.%s.amazonaws.com", region);
		path_style = cfg->s3_path_style > 0 || strchr(s->bucket, '.');
	}
	if (!endpoint)
		return -ENOMEM;
	size_t el = strlen(endpoint);
	while (el && endpoint[el - 1] == '/')
		endpoint[--el] = '\0';
	if (strncasecmp(endpoint, "http://", 7) && strncasecmp(endpoint, "https://", 8)) {
		int rc = error_set(-EINVAL, "S3 endpoint '%s' is not an http:// or https:// URL",
				   endpoint);
		free(endpoint);
		return rc;
	}
	if (path_style) {
		s->obj_base = xasprintf("%s/%s", endpoint, s->bucket);
		s->list_base = s->obj_base ? strdup(s->obj_base) : NULL;
	} else {
		const char *host = strstr(endpoint, "://") + 3;
		s->obj_base =
		    xasprintf("%.*s%s.%s", (int)(host - endpoint), endpoint, s->bucket, host);
		s->list_base = s->obj_base ? xasprintf("%s/", s->obj_base) : NULL;
	}
	s->where = xasprintf("S3 at %s", endpoint);
	free(endpoint);
	return s->obj_base && s->list_base && s->where ? 0 : -ENOMEM;
}

int backend_s3_open(struct backend **out, const char *url, const struct backend_config *cfg)
{
	static const struct backend_config none;
	*out = NULL;
	if (!cfg)
		cfg = &none;
	if (sodium_init() < 0)
		return error_set(-EIO, "libsodium failed to initialise");
	struct s3 *s = calloc(1, sizeof(*s));
	if (!s)
		return error_set(-ENOMEM, "out of memory");
	s->b.ops = &s3_ops;
	int rc = -ENOMEM;
	if (!(s->b.url = strdup(url)))
		goto fail;
	if ((rc = parse_url(s, url)))
		goto fail;

	const char *region = cfg->s3_region;
	if (!region)
		region = env("AWS_REGION");
	if (!region)
		region = env("AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	struct backend_config c = *cfg;
	if (!c.s3_endpoint)
		c.s3_endpoint = env("AWS_ENDPOINT_URL");
	if ((rc = make_bases(s, &c, region)))
		goto fail;

	const char *key = cfg->s3_access_key, *secret = cfg->s3_secret_key;
	if (!key && !secret) {
		key = env("AWS_ACCESS_KEY_ID");
		secret = env("AWS_SECRET_ACCESS_KEY");
	}
	if (!!key != !!secret) {
		rc = error_set(-EINVAL,
			       "%s: an S3 access key id needs its secret key and vice "
			       "versa: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
			       url);
		goto fail;
	}
	char sigv4[128];
	struct http_opts ho = {
	    .connect_timeout_ms = cfg->connect_timeout_ms,
	    .timeout_ms = cfg->timeout_ms,
	    .retries = cfg->retries,
	    .max_send_bps = cfg->max_upload_bps,
	    .max_recv_bps = cfg->max_download_bps,
	};
	if (key) {
		snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", region);
		ho.aws_sigv4 = sigv4;
		ho.aws_key = key;
		ho.aws_secret = secret;
		rc = -ENOMEM;
		if (!(s->key_id = strdup(key)))
			goto fail;
		const char *token = env("AWS_SESSION_TOKEN");
		const char *env_key = env("AWS_ACCESS_KEY_ID");
		if (token && env_key && !strcmp(env_key, key) &&
		    !(s->token_hdr = xasprintf("x-amz-security-token: %s", token)))
			goto fail;
	}
	const char *pk = env("PEERCLING_S3_PAGE_KEYS");
	s->page_keys = pk ? atoi(pk) : 0;
	if (s->page_keys < 0 || s->page_keys > LIST_PAGE_MAX)
		s->page_keys = 0;
	if ((rc = http_new(&s->http, &ho)))
		goto fail;
	log_debug("%s: bucket %s prefix '%s' at %s", url, s->bucket, s->prefix, s->obj_base);
	*out = &s->b;
	return 0;
fail:
	s3_free(&s->b);
	return rc == -ENOMEM ? error_set(rc, "out of memory opening %s", url) : rc;
}
