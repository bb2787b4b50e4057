/* backend_webdav: a cloud that is a WebDAV collection (webdav://HOST/PATH
 * over http, webdavs:// over https): Nextcloud, ownCloud, Apache mod_dav,
 * a NAS.  This file owns the mapping of keys to WebDAV resources (KEY is
 * the resource BASE/KEY, its '/' are collections) and what it takes to
 * make plain RFC 4918 servers behave like a blob store:
 *
 *   - PUT into a missing collection fails (409), so on 409 the missing
 *     collections are made with MKCOL from the top down (405 means one
 *     already exists: another thread or machine was first) and the PUT is
 *     sent again.
 *   - Many servers refuse PROPFIND with "Depth: infinity" (Apache answers
 *     403), so listings walk the tree one "Depth: 1" level at a time,
 *     entering only collections that can hold keys with the prefix.
 *   - A PUT replaces the resource whole (servers write a temp file and
 *     rename it), which is what heads need; no ETags or locks are used, as
 *     each head has a single writer.
 *
 * Multistatus replies are read by sync/xml.c: only <href> and
 * <collection/> matter. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "sync/backend_impl.h"
#include "sync/http.h"
#include "sync/xml.h"

#define LOG_MODULE "webdav"

struct dav {
	struct backend b;
	struct http *http;
	char *base;	 /* "http://host:port/escaped/path/" */
	char *base_path; /* "/path/", decoded, as hrefs are compared */
	char *user, *password;
	/* Collections known to exist, so that the first PUT into each one is
	 * preceded by MKCOL instead of failing with 409 after sending its
	 * whole body. */
	pthread_mutex_t known_lock;
	char **known;
	size_t nknown, capknown;
};

static struct dav *dv(struct backend *b)
{
	return (struct dav *)b;
}

static const char *const propfind_body =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/></D:prop></D:propfind>\n";

/* ---- strings ----------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX in place; a malformed escape is kept as it is. */
static void percent_decode(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		int hi, lo;
		if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* Keys: relative, no empty, "." or ".." component (nothing may climb out
 * of the base collection). */
static int key_valid(const char *key)
{
	if (!key || !*key || *key == '/')
		return 0;
	for (const char *p = key; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/' && !*++p)
			return 0;
	}
	return 1;
}

static int bad_key(const char *key)
{
	return error_set(-EINVAL, "invalid cloud key '%s'", key ? key : "(null)");
}

/* BASE + escaped rel; *out malloc'd. */
static int make_url(struct dav *d, const char *rel, char **out)
{
	char *esc;
	int rc = http_escape(&esc, rel, 1);
	if (rc)
		return rc;
	rc = asprintf(out, "%s%s", d->base, esc) < 0 ? -ENOMEM : 0;
	free(esc);
	return rc;
}

/* ---- requests ---------------------------------------------------------- */

/* One request on BASE/rel; transport errors come back as errnos, any
 * reply as 0 with r filled. */
static int dav_req(struct dav *d, const char *method, const char *rel, const char *const *headers,
		   const void *body, size_t len, struct http_resp *r)
{
	char *url;
	int rc = make_url(d, rel, &url);
	if (rc)
		return error_set(rc, "out of memory");
	struct http_req req = {method, url, headers, body, len};
	rc = http_do(d->http, &req, r);
	free(url);
	return rc;
}

/* A request whose reply body does not matter: 0 with *status, or -errno. */
static int dav_simple(struct dav *d, const char *method, const char *rel, long *status)
{
	struct http_resp r;
	int rc = dav_req(d, method, rel, NULL, NULL, 0, &r);
	if (rc)
		return rc;
	*status = r.status;
	http_resp_free(&r);
	return 0;
}

static int status_error(struct dav *d, const char *method, const char *rel, long status)
{
	char what[512];
	snprintf(what, sizeof(what), "WebDAV %s %s%s", method, d->base, rel);
	return http_status_errno(status, what);
}

/* ---- put --------------------------------------------------------------- */

/* 1 when rel ("" or ending in '/') is an existing collection, 0 when not,
 * or -errno. */
static int collection_exists(struct dav *d, const char *rel)
{
	static const char *const hdrs[] = {"Depth: 0", "Content-Type: application/xml", NULL};
	struct http_resp r;
	int rc = dav_req(d, "PROPFIND", rel, hdrs, propfind_body, strlen(propfind_body), &r);
	if (rc)
		return rc;
	long st = r.status;
	http_resp_free(&r);
	if (st == 207)
		return 1;
	if (st == 404 || st == 410)
		return 0;
	return status_error(d, "PROPFIND", rel, st);
}

/* MKCOL of one collection that should exist: 0 once it does. */
static int make_collection(struct dav *d, const char *rel)
{
	long st;
	int rc = dav_simple(d, "MKCOL", rel, &st);
	if (rc)
		return rc;
	if (st == 201 || st == 405) /* made, or already there */
		return 0;
	if (st == 409)
		return error_set(-ENXIO,
				 "WebDAV collection %s%s cannot be made: its parent is "
				 "missing",
				 d->base, rel);
	/* Apache answers 403 ("File exists") to the loser of two MKCOLs
	 * of one collection at once: the collection is there, fine.  Any
	 * other refusal stands. */
	int ex = collection_exists(d, rel);
	if (ex == 1)
		return 0;
	return status_error(d, "MKCOL", rel, st);
}

/* MKCOL of every collection above key, top down; -ENXIO at the top means
 * the base collection itself is gone. */
static int make_parents(struct dav *d, const char *key)
{
	char *dir = strdup(key);
	if (!dir)
		return -ENOMEM;
	int rc = 0;
	for (char *p = dir; !rc && (p = strchr(p, '/')); p++) {
		char saved = p[1];
		p[1] = '\0'; /* "a/", then "a/b/" */
		rc = make_collection(d, dir);
		p[1] = saved;
	}
	free(dir);
	return rc;
}

/* 1 when the collection holding key is known to exist; 0 otherwise. */
static int parent_known(struct dav *d, const char *key, size_t dirlen)
{
	int found = 0;
	pthread_mutex_lock(&d->known_lock);
	for (size_t i = 0; i < d->nknown && !found; i++)
		found = strlen(d->known[i]) == dirlen && !strncmp(d->known[i], key, dirlen);
	pthread_mutex_unlock(&d->known_lock);
	return found;
}

static void parent_remember(struct dav *d, const char *key, size_t dirlen)
{
	char *s = strndup(key, dirlen);
	pthread_mutex_lock(&d->known_lock);
	if (s && d->nknown == d->capknown) {
		size_t cap = d->capknown ? d->capknown * 2 : 64;
		char **k = realloc(d->known, cap * sizeof(*k));
		if (k) {
			d->known = k;
			d->capknown = cap;
		}
	}
	if (s && d->nknown < d->capknown) {
		d->known[d->nknown++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&d->known_lock);
	free(s);
}

static int dav_put(struct backend *b, const char *key, const void *data, size_t len)
{
	struct dav *d = dv(b);
	if (!key_valid(key))
		return bad_key(key);
	const char *slash = strrchr(key, '/');
	size_t dirlen = slash ? (size_t)(slash - key) + 1 : 0;
	if (dirlen && !parent_known(d, key, dirlen)) {
		int rc = make_parents(d, key);
		if (rc)
			return rc;
		parent_remember(d, key, dirlen);
	}
	static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
	for (int tries = 0;; tries++) {
		struct http_resp r;
		int rc = dav_req(d, "PUT", key, hdrs, data, len, &r);
		if (rc)
			return rc;
		long st = r.status;
		http_resp_free(&r);
		if (st != 409 || tries > 0 || !strchr(key, '/'))
			return st == 409 ? error_set(-ENXIO,
						     "WebDAV collection %s does not exist "
						     "(PUT %s answered 409)",
						     d->base, key)
					 : status_error(d, "PUT", key, st);
		if ((rc = make_parents(d, key)))
			return rc;
	}
}

/* ---- get / exists / del ------------------------------------------------ */

static int dav_get(struct backend *b, const char *key, uint8_t **out, size_t *out_len)
{
	struct dav *d = dv(b);
	*out = NULL;
	*out_len = 0;
	if (!key_valid(key))
		return bad_key(key);
	struct http_resp r;
	int rc = dav_req(d, "GET", key, NULL, NULL, 0, &r);
	if (rc)
		return rc;
	if (r.status < 200 || r.status > 299) {
		/* A redirect is a collection ("blocks" -> "blocks/"), not a key. */
		rc = r.status >= 300 && r.status < 400 ? error_set(-ENOENT, "%s: no such key", key)
						       : status_error(d, "GET", key, r.status);
		http_resp_free(&r);
		return rc;
	}
	*out = r.body;
	*out_len = r.len;
	return 0;
}

static int dav_get_range(struct backend *b, const char *key, uint64_t off, size_t len,
			 uint8_t **out)
{
	struct dav *d = dv(b);
	*out = NULL;
	if (!key_valid(key))
		return bad_key(key);
	char range[64], what[512];
	http_range_header(range, off, len);
	const char *const hdrs[] = {range, NULL};
	struct http_resp r;
	int rc = dav_req(d, "GET", key, hdrs, NULL, 0, &r);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "WebDAV GET %s%s", d->base, key);
	if (r.status == 404)
		rc = error_set(-ENOENT, "%s: no such key", key);
	else if (r.status != 200 && r.status != 206)
		rc = status_error(d, "GET", key, r.status);
	else
		rc = http_range_body(&r, off, len, out, what);
	http_resp_free(&r);
	return rc;
}

static int dav_exists(struct backend *b, const char *key)
{
	struct dav *d = dv(b);
	if (!key_valid(key))
		return bad_key(key);
	long st;
	int rc = dav_simple(d, "HEAD", key, &st);
	if (rc)
		return rc;
	if (st == 404 || st == 410 || (st >= 300 && st < 400))
		return 0;
	rc = status_error(d, "HEAD", key, st);
	return rc ? rc : 1;
}

/* Deleting a missing key succeeds: a retried DELETE must not fail because
 * the first attempt worked. */
static int dav_del(struct backend *b, const char *key)
{
	struct dav *d = dv(b);
	if (!key_valid(key))
		return bad_key(key);
	long st;
	int rc = dav_simple(d, "DELETE", key, &st);
	if (rc)
		return rc;
	if (st == 404 || st == 410)
		return 0;
	return status_error(d, "DELETE", key, st);
}

/* ---- list -------------------------------------------------------------- */

struct walk {
	struct dav *d;
	const char *prefix;
	size_t prefix_len;
	int (*cb)(const char *key, void *payload);
	void *payload;
	const char *dir; /* the collection being read, relative, "" or "a/" */
	char **subdirs;	 /* collections found at this level, to walk next */
	size_t nsub, capsub;
};

static int may_match(const struct walk *w, const char *rel)
{
	size_t n = strlen(rel);
	return !strncmp(rel, w->prefix, n < w->prefix_len ? n : w->prefix_len);
}

/* The href of e relative to the base collection, or NULL when it lies
 * outside (a server that answers with other paths). */
static const char *href_rel(struct dav *d, char *href)
{
	char *path = href;
	if (strstr(path, "://")) { /* absolute URL: drop scheme and host */
		path = strchr(strstr(path, "://") + 3, '/');
		if (!path)
			return NULL;
	}
	percent_decode(path);
	size_t bl = strlen(d->base_path);
	if (!strncmp(path, d->base_path, bl))
		return path + bl;
	/* The base itself, without its trailing slash. */
	if (strlen(path) == bl - 1 && !strncmp(path, d->base_path, bl - 1))
		return path + bl - 1;
	return NULL;
}

static int add_subdir(struct walk *w, const char *rel)
{
	if (w->nsub == w->capsub) {
		size_t cap = w->capsub ? w->capsub * 2 : 16;
		char **p = realloc(w->subdirs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->subdirs = p;
		w->capsub = cap;
	}
	if (!(w->subdirs[w->nsub] = strdup(rel)))
		return -ENOMEM;
	w->nsub++;
	return 0;
}

static int list_entry(char *href, int collection, void *payload)
{
	struct walk *w = payload;
	const char *rel = href_rel(w->d, href);
	if (!rel) {
		log_debug("ignoring href %s outside %s", href, w->d->base_path);
		return 0;
	}
	size_t n = strlen(rel);
	if (!n)
		return 0; /* the base collection */
	int coll = collection || (n && rel[n - 1] == '/');
	size_t dn = strlen(w->dir);
	/* The collection itself, with or without its trailing '/'. */
	if (!strncmp(rel, w->dir, n) && (n == dn || n + 1 == dn))
		return 0;
	if (coll) {
		char *sub;
		if (asprintf(&sub, "%.*s/", (int)(n && rel[n - 1] == '/' ? n - 1 : n), rel) < 0)
			return -ENOMEM;
		int rc = may_match(w, sub) ? add_subdir(w, sub) : 0;
		free(sub);
		return rc;
	}
	if (!strncmp(rel, w->prefix, w->prefix_len))
		return w->cb(rel, w->payload);
	return 0;
}

/* Lists collection dir ("" or ending in '/'), then the ones below it. */
static int list_level(struct walk *w, const char *dir)
{
	static const char *const hdrs[] = {"Depth: 1", "Content-Type: application/xml", NULL};
	struct http_resp r;
	int rc = dav_req(w->d, "PROPFIND", dir, hdrs, propfind_body, strlen(propfind_body), &r);
	if (rc)
		return rc;
	if (r.status == 404 || r.status == 410) {
		http_resp_free(&r);
		if (!*dir)
			return error_set(-ENXIO, "WebDAV collection %s does not exist", w->d->base);
		return 0; /* no key has this prefix yet */
	}
	if (r.status != 207) {
		http_resp_free(&r);
		return status_error(w->d, "PROPFIND", dir, r.status);
	}
	char **saved = w->subdirs;
	size_t nsaved = w->nsub, capsaved = w->capsub;
	w->subdirs = NULL;
	w->nsub = w->capsub = 0;
	w->dir = dir;
	rc = xml_multistatus((const char *)r.body, list_entry, w);
	http_resp_free(&r);
	char **subs = w->subdirs;
	size_t nsub = w->nsub;
	w->subdirs = saved;
	w->nsub = nsaved;
	w->capsub = capsaved;
	for (size_t i = 0; i < nsub; i++) {
		if (!rc)
			rc = list_level(w, subs[i]);
		free(subs[i]);
	}
	free(subs);
	return rc;
}

static int dav_list(struct backend *b, const char *prefix,
		    int (*cb)(const char *key, void *payload), void *payload)
{
	struct dav *d = dv(b);
	if (!prefix)
		prefix = "";
	struct walk w = {
	    .d = d, .prefix = prefix, .prefix_len = strlen(prefix), .cb = cb, .payload = payload};
	/* Start at the deepest collection the prefix names. */
	const char *slash = strrchr(prefix, '/');
	char *start = strndup(prefix, slash ? (size_t)(slash - prefix) + 1 : 0);
	if (!start)
		return -ENOMEM;
	int rc = list_level(&w, start);
	free(start);
	return rc;
}

/* ---- check ------------------------------------------------------------- */

/* The base collection must answer PROPFIND; a missing one is made once
 * (init names a new folder for a new volume), and only a missing parent
 * makes that -ENXIO: the caller decides whether to make more. */
int backend_webdav_check(struct backend *b)
{
	struct dav *d = dv(b);
	static const char *const hdrs[] = {"Depth: 0", "Content-Type: application/xml", NULL};
	struct http_resp r;
	int rc = dav_req(d, "PROPFIND", "", hdrs, propfind_body, strlen(propfind_body), &r);
	if (rc)
		return rc;
	long st = r.status;
	http_resp_free(&r);
	if (st == 207)
		return 0;
	if (st == 401 || st == 403)
		return error_set(-EACCES,
				 "WebDAV server refused the credentials for %s (HTTP %ld): "
				 "check the user name and password (or ~/.netrc)",
				 d->base, st);
	if (st != 404)
		return status_error(d, "PROPFIND", "", st);
	rc = make_collection(d, "");
	if (rc == -ENXIO)
		return error_set(-ENXIO,
				 "WebDAV collection %s does not exist, nor does its parent: "
				 "create the parent folder on the server",
				 d->base);
	if (!rc)
		log_info("made WebDAV collection %s", d->base);
	return rc;
}

/* ---- open / free ------------------------------------------------------- */

static void dav_free(struct backend *b)
{
	struct dav *d = dv(b);
	http_free(d->http);
	free(d->base);
	free(d->base_path);
	free(d->user);
	if (d->password) {
		memset(d->password, 0, strlen(d->password));
		free(d->password);
	}
	for (size_t i = 0; i < d->nknown; i++)
		free(d->known[i]);
	free(d->known);
	pthread_mutex_destroy(&d->known_lock);
	free(d->b.url);
	free(d);
}

static const struct backend_ops dav_ops = {
    .put = dav_put,
    .get = dav_get,
    .get_range = dav_get_range,
    .exists = dav_exists,
    .list = dav_list,
    .del = dav_del,
    .free = dav_free,
};

static int bad_url(const char *url, const char *why)
{
	return error_set(-EINVAL,
			 "bad WebDAV URL '%s': %s; use webdav://HOST[:PORT]/PATH "
			 "or webdavs://HOST[:PORT]/PATH",
			 url, why);
}

/* Splits "[user[:password]@]host[:port]" off; credentials in the URL are
 * decoded and override none given in the config. */
static int parse_authority(struct dav *d, const char *url, const char *a, size_t n, char **hostport)
{
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (a[i] == '@')
			at = a + i;
	if (at) {
		char *ui = strndup(a, (size_t)(at - a));
		if (!ui)
			return -ENOMEM;
		char *colon = strchr(ui, ':');
		if (colon) {
			*colon = '\0';
			percent_decode(colon + 1);
			d->password = strdup(colon + 1);
		}
		percent_decode(ui);
		d->user = strdup(ui);
		memset(ui, 0, strlen(ui));
		free(ui);
		n -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	if (n == 0 || *a == ':')
		return bad_url(url, "no host");
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)a[i]))
			return bad_url(url, "space in the host name");
	*hostport = strndup(a, n);
	return *hostport ? 0 : -ENOMEM;
}

/* webdav[s]://AUTH/PATH -> base "http[s]://AUTH/ESCAPED/", base_path, and
 * b->url without credentials. */
static int parse_url(struct dav *d, const char *url)
{
	int tls = !strncasecmp(url, "webdavs://", 10);
	const char *a = url + (tls ? 10 : 9);
	size_t n = strcspn(a, "/");
	if (strpbrk(a, "?#"))
		return bad_url(url, "no query or fragment allowed ('?' and '#' go as %3F, %23)");
	char *hostport = NULL, *esc = NULL;
	int rc = parse_authority(d, url, a, n, &hostport);
	if (rc)
		return rc;
	/* The path may come %-encoded or not: decode, then encode once. */
	rc = asprintf(&d->base_path, "%s/", *(a + n) ? a + n : "/") < 0 ? -ENOMEM : 0;
	if (!rc) {
		percent_decode(d->base_path);
		size_t bl = strlen(d->base_path);
		while (bl > 1 && d->base_path[bl - 1] == '/' && d->base_path[bl - 2] == '/')
			d->base_path[--bl] = '\0';
		rc = http_escape(&esc, d->base_path, 1);
	}
	if (!rc && asprintf(&d->base, "%s://%s%s", tls ? "https" : "http", hostport, esc) < 0)
		rc = -ENOMEM;
	/* b->url is what logs and messages show: never the password. */
	if (!rc && asprintf(&d->b.url, "%s://%s%s", tls ? "webdavs" : "webdav", hostport, esc) < 0)
		rc = -ENOMEM;
	free(hostport);
	free(esc);
	return rc;
}

int backend_webdav_open(struct backend **out, const char *url, const struct backend_config *cfg)
{
	*out = NULL;
	struct dav *d = calloc(1, sizeof(*d));
	if (d)
		pthread_mutex_init(&d->known_lock, NULL);
	if (!d)
		return -ENOMEM;
	d->b.ops = &dav_ops;
	int rc = parse_url(d, url);
	if (!rc) {
		struct http_opts o = {
		    .connect_timeout_ms = cfg->connect_timeout_ms,
		    .timeout_ms = cfg->timeout_ms,
		    .retries = cfg->retries,
		    .max_send_bps = cfg->max_upload_bps,
		    .max_recv_bps = cfg->max_download_bps,
		    .user = cfg->user ? cfg->user : d->user,
		    .password = cfg->user ? cfg->password : d->password,
		    .use_netrc = 1,
		};
		rc = http_new(&d->http, &o);
	}
	if (rc) {
		dav_free(&d->b);
		return rc;
	}
	*out = &d->b;
	return 0;
}
