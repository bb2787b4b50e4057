/* xml: only what the backends need, by hand: locating elements by name in
 * a byte range (S3), a tag-by-tag scan for <response>, <href> and
 * <collection/> under any namespace prefix (WebDAV), and entity decoding.
 * Every read is bounded by the buffer; tests/unit/test_xml.c feeds these
 * functions real replies and thousands of damaged ones. */
#include "config.h"
#include "sync/xml.h"
#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- entities and S3 ------------------------------------------------------ */

char *xml_unescape(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		if (s[i] != '&') {
			*o++ = s[i++];
			continue;
		}
		const char *semi = memchr(s + i, ';', n - i);
		if (!semi)
			goto bad;
		size_t len = (size_t)(semi - (s + i)) + 1; /* "&...;" */
		const char *e = s + i + 1;
		if (len == 5 && !memcmp(e, "amp", 3)) {
			*o++ = '&';
		} else if (len == 4 && !memcmp(e, "lt", 2)) {
			*o++ = '<';
		} else if (len == 4 && !memcmp(e, "gt", 2)) {
			*o++ = '>';
		} else if (len == 6 && !memcmp(e, "quot", 4)) {
			*o++ = '"';
		} else if (len == 6 && !memcmp(e, "apos", 4)) {
			*o++ = '\'';
		} else if (len > 3 && e[0] == '#') {
			char *end;
			int hex = e[1] == 'x' || e[1] == 'X';
			const char *digits = e + 1 + hex;
			/* strtoul alone would take "&# 5;" and "&#+5;" */
			if (!(hex ? isxdigit((unsigned char)*digits) : isdigit((unsigned char)*digits)))
				goto bad;
			unsigned long c = strtoul(digits, &end, hex ? 16 : 10);
			if (end != semi || c == 0 || c > 0x10ffff)
				goto bad;
			/* UTF-8 */
			if (c < 0x80) {
				*o++ = (char)c;
			} else if (c < 0x800) {
				*o++ = (char)(0xc0 | (c >> 6));
				*o++ = (char)(0x80 | (c & 0x3f));
			} else if (c < 0x10000) {
				*o++ = (char)(0xe0 | (c >> 12));
				*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
				*o++ = (char)(0x80 | (c & 0x3f));
			} else {
				*o++ = (char)(0xf0 | (c >> 18));
				*o++ = (char)(0x80 | ((c >> 12) & 0x3f));
				*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
				*o++ = (char)(0x80 | (c & 0x3f));
			}
			/* "&#N;" is at least 4 bytes and yields at most 4. */
		} else {
			goto bad;
		}
		i += len;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

const char *xml_find(const char *p, const char *end, const char *tag, const char **text,
		     size_t *len)
{
	size_t tl = strlen(tag);
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		if (!lt || (size_t)(end - lt) < tl + 2)
			return NULL;
		const char *t = lt + 1;
		if (!strncmp(t, tag, tl) && (t[tl] == '>' || t[tl] == '/' || t[tl] == ' ')) {
			const char *gt = memchr(t, '>', (size_t)(end - t));
			if (!gt)
				return NULL;
			if (gt[-1] == '/') { /* <tag/> */
				*text = gt;
				*len = 0;
				return gt + 1;
			}
			const char *body = gt + 1;
			/* the closing tag: none of our elements nest in themselves */
			for (const char *q = body; q < end;) {
				const char *c = memchr(q, '<', (size_t)(end - q));
				if (!c || (size_t)(end - c) < tl + 3)
					return NULL;
				if (c[1] == '/' && !strncmp(c + 2, tag, tl) && c[2 + tl] == '>') {
					*text = body;
					*len = (size_t)(c - body);
					return c + 3 + tl;
				}
				q = c + 1;
			}
			return NULL;
		}
		p = lt + 1;
	}
	return NULL;
}

char *xml_text(const char *body, size_t len, const char *tag)
{
	const char *t;
	size_t n;
	if (!body || !xml_find(body, body + len, tag, &t, &n))
		return NULL;
	return xml_unescape(t, n);
}

/* The start tag of the root element: S3 may send an XML declaration and
 * whitespace before it. */
static int is_list_bucket_result(const char *b, const char *end)
{
	static const char root[] = "<ListBucketResult";
	size_t rl = sizeof(root) - 1;
	for (const char *p = b; (p = memchr(p, '<', (size_t)(end - p)));) {
		if ((size_t)(end - p) >= 2 && (p[1] == '?' || p[1] == '!')) {
			p++;
			continue;
		}
		return (size_t)(end - p) > rl && !memcmp(p, root, rl) &&
		       (p[rl] == ' ' || p[rl] == '>');
	}
	return 0;
}

int xml_s3_list(const char *body, size_t len, int (*cb)(const char *key, void *payload),
		void *payload, char **next)
{
	const char *end = body + len, *t;
	size_t n;
	*next = NULL;
	if (!body || !is_list_bucket_result(body, end))
		return error_set(-EBADMSG, "the reply is not an S3 listing");
	for (const char *p = body; (p = xml_find(p, end, "Contents", &t, &n));) {
		const char *kt;
		size_t kn;
		if (!xml_find(t, t + n, "Key", &kt, &kn))
			return error_set(-EBADMSG, "a listing entry without a <Key>");
		char *key = xml_unescape(kt, kn);
		if (!key)
			return error_set(-EBADMSG, "a malformed <Key> in the listing");
		int rc = cb(key, payload);
		free(key);
		if (rc)
			return rc;
	}
	char *trunc = xml_text(body, len, "IsTruncated");
	int more = trunc && !strcmp(trunc, "true");
	free(trunc);
	if (!more)
		return 0;
	*next = xml_text(body, len, "NextContinuationToken");
	if (!*next || !**next) {
		free(*next);
		*next = NULL;
		return error_set(-EBADMSG, "a truncated listing without a continuation token");
	}
	return 0;
}

/* ---- WebDAV multistatus ---------------------------------------------------- */

/* Whether the tag at t (just after '<' or "</") has local name name,
 * whatever its namespace prefix. */
static int tag_is(const char *t, const char *name)
{
	size_t n = strcspn(t, " \t\r\n/>");
	const char *colon = memchr(t, ':', n);
	const char *local = colon ? colon + 1 : t;
	size_t ln = n - (size_t)(local - t);
	return ln == strlen(name) && !strncasecmp(local, name, ln);
}

struct scan {
	char *href; /* of the current response, unescaped */
	int collection, in_response, bad_href;
	const char *href_start;
	int (*emit)(char *href, int collection, void *payload);
	void *payload;
};

static void scan_open_tag(struct scan *s, const char *name, const char *after, int self_closing)
{
	if (tag_is(name, "response")) {
		free(s->href);
		s->href = NULL;
		s->collection = s->bad_href = 0;
		s->in_response = 1;
	} else if (s->in_response && tag_is(name, "href") && !self_closing && !s->href) {
		s->href_start = after;
	} else if (s->in_response && tag_is(name, "collection")) {
		s->collection = 1;
	}
}

static int scan_close_tag(struct scan *s, const char *name, const char *at)
{
	if (tag_is(name, "href") && s->href_start) {
		s->href = xml_unescape(s->href_start, (size_t)(at - s->href_start));
		s->href_start = NULL;
		if (!s->href)
			s->bad_href = 1; /* or out of memory: either way, not this one */
	} else if (tag_is(name, "response") && s->in_response) {
		s->in_response = 0;
		if (s->href)
			return s->emit(s->href, s->collection, s->payload);
	}
	return 0;
}

int xml_multistatus(const char *body, int (*emit)(char *href, int collection, void *payload),
		    void *payload)
{
	struct scan s = { .emit = emit, .payload = payload };
	int rc = 0;
	for (const char *p = body; !rc && (p = strchr(p, '<'));) {
		if (!strncmp(p, "<!--", 4)) {
			const char *e = strstr(p, "-->");
			p = e ? e + 3 : p + strlen(p);
			continue;
		}
		const char *end = strchr(p, '>');
		if (!end)
			break;
		if (p[1] == '/')
			rc = scan_close_tag(&s, p + 2, p);
		else if (p[1] != '?' && p[1] != '!')
			scan_open_tag(&s, p + 1, end + 1, end[-1] == '/');
		p = end + 1;
	}
	free(s.href);
	return rc;
}
