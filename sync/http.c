/* http: the libcurl wrapper behind http.h, shared by the WebDAV and S3
 * backends.  This file owns everything that touches libcurl: global init,
 * the pool of easy handles, the shared connection cache, timeouts, retries
 * and the mapping of curl failures to errnos.
 *
 * Why a pool and a share: an easy handle may only be used by one thread at a
 * time, but creating one per request would open a new TCP (and TLS)
 * connection per block.  Idle handles wait on a free list; all of them share
 * one connection cache and DNS cache through a CURLSH, so a connection left
 * alive by one thread is reused by the next request from any thread.
 *
 * Timeouts: a connect timeout, and a stall limit (less than 1 byte/s for
 * timeout_ms) rather than a total time limit, so a dead or frozen server is
 * noticed within seconds while a big transfer on a slow link is never cut.
 *
 * Retries: transport failures, 5xx (except 501) and 429 are retried with
 * exponential backoff and jitter; other 4xx are final.  A stall is retried
 * only while the call as a whole has used less than timeout_ms, so a frozen
 * server costs the caller about one stall limit, not one per attempt. */
#include "config.h"

#include "sync/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"

#define LOG_MODULE "http"

/* Bigger replies are refused: blocks and heads are small, so a huge reply
 * means a wrong URL or a hostile server, and must not exhaust memory. */
#define HTTP_MAX_BODY ((size_t)1 << 30)
#define HTTP_POOL_MAX 16 /* idle easy handles kept; more are cleaned up */
/* Connections the shared cache keeps: libcurl's default (5) is per handle
 * and would close the connections of most threads after each request. */
#define HTTP_MAX_CONNECTS 32L
#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 10000

struct http {
	struct http_opts o; /* strings below are owned copies */
	char *user, *password, *aws_sigv4, *aws_key, *aws_secret;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[HTTP_POOL_MAX];
	int npool;
};

/* ---- global init and the share ----------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access acc, void *user)
{
	struct http *h = user;
	pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *user)
{
	struct http *h = user;
	pthread_mutex_unlock(&h->share_locks[data]);
}

static int share_new(struct http *h)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	h->share = curl_share_init();
	if (!h->share)
		return -ENOMEM;
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	if (curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK)
		log_warn("this libcurl cannot share connections: no keep-alive across threads");
	return 0;
}

/* ---- new / free -------------------------------------------------------- */

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

static int copy_opts(struct http *h, const struct http_opts *opts)
{
	if (opts)
		h->o = *opts;
	if (h->o.connect_timeout_ms <= 0)
		h->o.connect_timeout_ms = 3000;
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = 15000;
	/* 0 means the default like every other field; a caller that wants
	 * no retries at all passes a negative count. */
	if (h->o.retries == 0)
		h->o.retries = 3;
	else if (h->o.retries < 0)
		h->o.retries = 0;
	if (dup_opt(&h->user, h->o.user) || dup_opt(&h->password, h->o.password) ||
	    dup_opt(&h->aws_sigv4, h->o.aws_sigv4) || dup_opt(&h->aws_key, h->o.aws_key) ||
	    dup_opt(&h->aws_secret, h->o.aws_secret))
		return -ENOMEM;
	h->o.user = h->user;
	h->o.password = h->password;
	h->o.aws_sigv4 = h->aws_sigv4;
	h->o.aws_key = h->aws_key;
	h->o.aws_secret = h->aws_secret;
	return 0;
}

int http_new(struct http **out, const struct http_opts *opts)
{
	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return error_set(-EIO, "libcurl failed to initialise: %s",
				 curl_easy_strerror(global_rc));
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->pool_lock, NULL);
	int rc = copy_opts(h, opts);
	if (!rc)
		rc = share_new(h);
	if (rc) {
		http_free(h);
		return error_set(rc, "out of memory setting up HTTP");
	}
	*out = h;
	return 0;
}

static void free_secret(char *s)
{
	if (!s)
		return;
	/* volatile: keep the compiler from dropping a wipe before free. */
	for (volatile char *p = s; *p; p++)
		*p = 0;
	free(s);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	/* Easy handles first: they still point into the share. */
	for (int i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	pthread_mutex_destroy(&h->pool_lock);
	free(h->user);
	free_secret(h->password);
	free(h->aws_sigv4);
	free(h->aws_key);
	free_secret(h->aws_secret);
	free(h);
}

/* ---- the pool ---------------------------------------------------------- */

static CURL *pool_take(struct http *h)
{
	CURL *c = NULL;
	pthread_mutex_lock(&h->pool_lock);
	if (h->npool)
		c = h->pool[--h->npool];
	pthread_mutex_unlock(&h->pool_lock);
	if (c)
		return c;
	c = curl_easy_init();
	if (c)
		curl_easy_setopt(c, CURLOPT_SHARE, h->share);
	return c;
}

static void pool_give(struct http *h, CURL *c)
{
	pthread_mutex_lock(&h->pool_lock);
	if (h->npool < HTTP_POOL_MAX) {
		h->pool[h->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

/* ---- bodies ------------------------------------------------------------ */

struct upload {
	const uint8_t *p;
	size_t len, off;
};

static size_t upload_read(char *buf, size_t size, size_t n, void *user)
{
	struct upload *u = user;
	size_t want = size * n, left = u->len - u->off;
	if (want > left)
		want = left;
	if (!want)
		return 0;
	memcpy(buf, u->p + u->off, want);
	u->off += want;
	return want;
}

/* curl rewinds the body when it must resend it (a reused connection that
 * turned out closed, an auth round trip). */
static int upload_seek(void *user, curl_off_t off, int origin)
{
	struct upload *u = user;
	if (origin != SEEK_SET || off < 0 || (size_t)off > u->len)
		return CURL_SEEKFUNC_CANTSEEK;
	u->off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

struct download {
	CURL *c;
	uint8_t *p;
	size_t len, cap;
	int too_big;
};

static size_t download_write(char *data, size_t size, size_t n, void *user)
{
	struct download *d = user;
	size_t add = size * n;
	if (add > HTTP_MAX_BODY - d->len) {
		d->too_big = 1;
		return 0; /* makes curl abort with CURLE_WRITE_ERROR */
	}
	if (d->len + add + 1 > d->cap) {
		/* The first piece comes after the headers: a body of known
		 * length (a 1 MiB window of a pack) gets its buffer at once
		 * instead of seven reallocs.  The length is believed up to
		 * 16 MiB: a server's word is not worth more memory before the
		 * bytes arrive. */
		curl_off_t known = -1;
		size_t cap = d->cap ? d->cap : 16384;
		if (!d->cap && curl_easy_getinfo(d->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &known) ==
				       CURLE_OK &&
		    known > 0 && known < (16 << 20))
			cap = (size_t)known + 1;
		while (cap < d->len + add + 1)
			cap *= 2;
		uint8_t *p = realloc(d->p, cap);
		if (!p)
			return 0;
		d->p = p;
		d->cap = cap;
	}
	memcpy(d->p + d->len, data, add);
	d->len += add;
	return add;
}

/* ---- one attempt ------------------------------------------------------- */

static void set_auth(struct http *h, CURL *c)
{
	if (h->o.aws_sigv4) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, h->o.aws_sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, h->o.aws_key ? h->o.aws_key : "");
		curl_easy_setopt(c, CURLOPT_PASSWORD, h->o.aws_secret ? h->o.aws_secret : "");
	} else if (h->o.user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, h->o.user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, h->o.password ? h->o.password : "");
	} else if (h->o.use_netrc) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
	}
}

static void set_limits(struct http *h, CURL *c)
{
	long stall_s = (h->o.timeout_ms + 999) / 1000;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, HTTP_MAX_CONNECTS);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTP_MAX_BODY);
	if (h->o.max_send_bps)
		curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)h->o.max_send_bps);
	if (h->o.max_recv_bps)
		curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)h->o.max_recv_bps);
}

static void set_method(CURL *c, const struct http_req *req, struct upload *up)
{
	const char *m = req->method;
	if (!strcmp(m, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(m, "PUT")) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
		curl_easy_setopt(c, CURLOPT_READDATA, up);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, upload_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, up);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->len);
	} else {
		/* Any other verb (DELETE, MKCOL, PROPFIND, POST): a custom
		 * request, with the body sent as POST fields when there is
		 * one (curl copies nothing: the body outlives the call). */
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
		if (req->body_len) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
	}
}

static struct curl_slist *make_headers(const struct http *h, const struct http_req *req)
{
	/* An empty "Expect:" stops curl from waiting for 100-continue before
	 * big uploads: a round trip saved, and some servers never answer it.
	 * Not with SigV4: curl 7.88 signs that empty header but never sends
	 * it, so every signature would fail (SignatureDoesNotMatch). */
	const char *first = h->o.aws_sigv4 ? "Accept: */*" : "Expect:";
	struct curl_slist *l = curl_slist_append(NULL, first);
	for (const char *const *hd = req->headers; l && hd && *hd; hd++) {
		struct curl_slist *n = curl_slist_append(l, *hd);
		if (!n) {
			curl_slist_free_all(l);
			return NULL;
		}
		l = n;
	}
	return l;
}

struct attempt {
	CURLcode cc;
	long status;
	long os_errno;
	curl_off_t retry_after_s;
	char errbuf[CURL_ERROR_SIZE];
	struct download body;
};

static void attempt_once(struct http *h, CURL *c, const struct http_req *req,
			 struct curl_slist *hdrs, struct attempt *a)
{
	struct upload up = {req->body, req->body_len, 0};
	/* Reset keeps the share, the live connections and the caches; it
	 * drops the previous request's method and body options. */
	curl_easy_reset(c);
	a->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, download_write);
	a->body.c = c;
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
	set_limits(h, c);
	set_auth(h, c);
	set_method(c, req, &up);
	a->cc = curl_easy_perform(c);
	a->status = 0;
	a->os_errno = 0;
	a->retry_after_s = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &a->os_errno);
	curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &a->retry_after_s);
}

/* ---- errors and retries ------------------------------------------------ */

static int curl_errno(CURLcode cc, long os_errno)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH)
			return -EHOSTUNREACH;
		if (os_errno == ETIMEDOUT)
			return -ETIMEDOUT;
		return -ECONNREFUSED;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_LOGIN_DENIED:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* Failures that another attempt cannot fix: bad URL, certificate problems,
 * our own refusal of a huge reply. */
static int curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_LOGIN_DENIED:
	case CURLE_ABORTED_BY_CALLBACK:
		return 0;
	default:
		return 1;
	}
}

static int status_retryable(long status)
{
	return status == 429 || (status >= 500 && status <= 599 && status != 501);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Cheap per-thread jitter source: it only spreads retries of many threads
 * apart, nothing depends on its quality. */
static unsigned jitter(unsigned max)
{
	static __thread unsigned x;
	if (!x)
		x = (unsigned)now_ms() ^ (unsigned)(uintptr_t)&x ^ 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return max ? x % max : 0;
}

/* 200, 400, 800 ... ms plus up to half again of jitter; a server's
 * Retry-After is honoured up to BACKOFF_MAX_MS. */
static long backoff_ms(int attempt, curl_off_t retry_after_s)
{
	long base = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);
	long ms = base + (long)jitter((unsigned)base / 2 + 1);
	if (retry_after_s > 0) {
		long ra = retry_after_s > BACKOFF_MAX_MS / 1000 ? BACKOFF_MAX_MS
								: (long)retry_after_s * 1000;
		if (ra > ms)
			ms = ra;
	}
	return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Whether one more attempt is worth it after a. */
static int should_retry(struct http *h, const struct attempt *a, long started)
{
	if (a->cc == CURLE_OK)
		return status_retryable(a->status);
	if (!curl_retryable(a->cc))
		return 0;
	if (a->cc == CURLE_OPERATION_TIMEDOUT)
		return now_ms() - started < h->o.timeout_ms;
	return 1;
}

static int transport_error(const struct http_req *req, const struct attempt *a, int attempts)
{
	int rc = curl_errno(a->cc, a->os_errno);
	const char *why = a->errbuf[0] ? a->errbuf : curl_easy_strerror(a->cc);
	if (a->body.too_big || a->cc == CURLE_FILESIZE_EXCEEDED)
		return error_set(-EIO, "%s %s: reply larger than %zu bytes, refused", req->method,
				 req->url, HTTP_MAX_BODY);
	return error_set(rc, "%s %s: %s (after %d attempt%s)", req->method, req->url, why, attempts,
			 attempts == 1 ? "" : "s");
}

/* ---- http_do ----------------------------------------------------------- */

int http_do(struct http *h, const struct http_req *in, struct http_resp *out)
{
	struct http_req r = *in, *req = &r;
	if (!r.method)
		r.method = "GET";
	memset(out, 0, sizeof(*out));
	if (req->body_len > HTTP_MAX_BODY)
		return error_set(-EFBIG, "%s %s: request body of %zu bytes is over the %zu limit",
				 req->method, req->url, req->body_len, HTTP_MAX_BODY);
	struct curl_slist *hdrs = make_headers(h, req);
	CURL *c = pool_take(h);
	struct attempt *a = calloc(1, sizeof(*a));
	if (!hdrs || !c || !a) {
		curl_slist_free_all(hdrs);
		if (c)
			curl_easy_cleanup(c);
		free(a);
		return error_set(-ENOMEM, "out of memory for an HTTP request");
	}
	long started = now_ms();
	int n = 0;
	for (;;) {
		a->body.len = 0;
		a->body.too_big = 0;
		attempt_once(h, c, req, hdrs, a);
		n++;
		if (n > h->o.retries || !should_retry(h, a, started))
			break;
		long ms = backoff_ms(n - 1, a->retry_after_s);
		log_debug("%s %s: %s, retrying in %ld ms", req->method, req->url,
			  a->cc ? curl_easy_strerror(a->cc) : "server error", ms);
		sleep_ms(ms);
	}
	/* The easy handle's header list pointer dies with hdrs. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	pool_give(h, c);
	curl_slist_free_all(hdrs);
	int rc = 0;
	if (a->cc != CURLE_OK) {
		rc = transport_error(req, a, n);
		free(a->body.p);
	} else {
		out->status = a->status;
		out->body = a->body.p;
		out->len = a->body.len;
		if (!out->body && !(out->body = calloc(1, 1)))
			rc = error_set(-ENOMEM, "out of memory for an HTTP reply");
		else
			out->body[out->len] = '\0';
	}
	free(a);
	return rc;
}

void http_resp_free(struct http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- status and escaping ----------------------------------------------- */

int http_status_errno(long status, const char *what)
{
	if (status >= 200 && status <= 299)
		return 0;
	if (status == 404 || status == 410)
		return error_set(-ENOENT, "%s: not found (HTTP %ld)", what, status);
	if (status == 401 || status == 403)
		return error_set(-EACCES,
				 "%s: credentials refused (HTTP %ld); check the user name "
				 "and password or keys for this cloud",
				 what, status);
	if (status == 408)
		return error_set(-ETIMEDOUT, "%s: the server timed out (HTTP 408)", what);
	if (status == 429)
		return error_set(-EIO, "%s: the server is busy (HTTP 429), try again later", what);
	if (status >= 500 && status <= 599)
		return error_set(-EIO, "%s: server error (HTTP %ld), try again later", what,
				 status);
	return error_set(-EIO, "%s: unexpected reply (HTTP %ld)", what, status);
}

static int unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int http_escape(char **out, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *p = malloc(3 * n + 1);
	*out = p;
	if (!p)
		return error_set(-ENOMEM, "out of memory escaping a URL");
	for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
		if (unreserved(*q) || (keep_slash && *q == '/')) {
			*p++ = (char)*q;
		} else {
			*p++ = '%';
			*p++ = hex[*q >> 4];
			*p++ = hex[*q & 15];
		}
	}
	*p = '\0';
	return 0;
}

void http_range_header(char out[64], uint64_t off, size_t len)
{
	snprintf(out, 64, "Range: bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + (len ? len : 1) - 1));
}

int http_range_body(struct http_resp *r, uint64_t off, size_t len, uint8_t **out,
		    const char *what)
{
	*out = NULL;
	if (r->status == 206 && r->len == len) {
		*out = r->body;
		r->body = NULL;
		return 0;
	}
	if (r->status == 200 && r->len >= off && r->len - off >= len) {
		uint8_t *p = malloc(len ? len : 1);
		if (!p)
			return -ENOMEM;
		memcpy(p, r->body + off, len);
		*out = p;
		return 0;
	}
	return error_set(-EIO, "%s: %zu bytes at %llu asked, a %ld reply of %zu bytes came "
			 "(truncated or not what was stored)", what, len, (unsigned long long)off,
			 r->status, r->len);
}
