/* test_xml: the backends' XML scanning reads real replies right (Apache
 * mod_dav, a Nextcloud-style multistatus, radosgw/AWS listings and error
 * bodies) and survives damaged ones: every mutation of them is parsed
 * without reading outside the buffer (ASan, valgrind) and with sane
 * results. */
#include "config.h"
#include "core/error.h"
#include "sync/xml.h"
#include "tap.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ---- fixtures ------------------------------------------------------------- */

static const char apache_multistatus[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<D:multistatus xmlns:D=\"DAV:\" xmlns:ns0=\"DAV:\">\n"
    "<D:response xmlns:lp1=\"DAV:\">\n"
    "<D:href>/dav/vol/</D:href>\n"
    "<D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype></D:prop>\n"
    "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>\n"
    "</D:response>\n"
    "<D:response xmlns:lp1=\"DAV:\">\n"
    "<D:href>/dav/vol/heads/a%20b&amp;c</D:href>\n"
    "<D:propstat><D:prop><lp1:resourcetype/></D:prop>\n"
    "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>\n"
    "</D:response>\n"
    "<D:response xmlns:lp1=\"DAV:\">\n"
    "<D:href>/dav/vol/packs/</D:href>\n"
    "<D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype></D:prop>\n"
    "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>\n"
    "</D:response>\n"
    "</D:multistatus>\n";

/* Another server's style: other prefix, absolute URLs, a comment, no
 * declaration, an entity in a numeric form. */
static const char other_multistatus[] =
    "<d:multistatus xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\">"
    "<!-- <d:response><d:href>/not/this</d:href></d:response> -->"
    "<d:response><d:href>https://cloud.example.org/remote.php/dav/files/me/x&#47;y</d:href>"
    "<d:propstat><d:prop><d:resourcetype><d:collection /></d:resourcetype>"
    "<oc:size>0</oc:size></d:prop></d:propstat></d:response>"
    "<d:response><d:href>/remote.php/dav/files/me/%C3%A9t%C3%A9</d:href>"
    "<d:propstat><d:prop><d:resourcetype/></d:prop></d:propstat></d:response>"
    "<d:response><d:href>/bad&ref</d:href></d:response>"
    "</d:multistatus>";

static const char s3_listing[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>vol/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>vol/heads/dev&amp;1</Key><LastModified>2026-11-27T03:00:00.000Z"
    "</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
    "<Size>42</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>vol/index/&#x65;f</Key><Size>7</Size></Contents>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

static const char s3_error_body[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>"
    "<Message>The request signature we calculated does not match</Message>"
    "<RequestId>tx000</RequestId><HostId>x</HostId></Error>";

/* ---- collecting callbacks ------------------------------------------------- */

struct seen {
	char v[8][128];
	int coll[8];
	int n, total;
	size_t max_len;
	int stop_at; /* return 1 from the callback at this count (0: never) */
};

static int seen_href(char *href, int collection, void *payload)
{
	struct seen *s = payload;
	size_t n = strlen(href);
	if (n > s->max_len)
		s->max_len = n;
	if (s->n < 8) {
		snprintf(s->v[s->n], sizeof(s->v[0]), "%s", href);
		s->coll[s->n++] = collection;
	}
	s->total++;
	return s->stop_at && s->total == s->stop_at;
}

static int seen_key(const char *key, void *payload)
{
	return seen_href((char *)key, 0, payload);
}

/* ---- behaviour on good replies -------------------------------------------- */

static void an_apache_multistatus_gives_hrefs_and_kinds(void)
{
	struct seen s = { 0 };
	CHECK_EQ(xml_multistatus(apache_multistatus, seen_href, &s), 0);
	CHECK_EQ(s.n, 3);
	CHECK(!strcmp(s.v[0], "/dav/vol/") && s.coll[0] == 1);
	CHECK(!strcmp(s.v[1], "/dav/vol/heads/a%20b&c") && s.coll[1] == 0);
	CHECK(!strcmp(s.v[2], "/dav/vol/packs/") && s.coll[2] == 1);
}

static void another_servers_style_is_read_and_bad_hrefs_skipped(void)
{
	struct seen s = { 0 };
	CHECK_EQ(xml_multistatus(other_multistatus, seen_href, &s), 0);
	CHECK_EQ(s.n, 2); /* the commented-out one and "/bad&ref" are not there */
	CHECK(!strcmp(s.v[0], "https://cloud.example.org/remote.php/dav/files/me/x/y"));
	CHECK_EQ(s.coll[0], 1);
	CHECK(!strcmp(s.v[1], "/remote.php/dav/files/me/%C3%A9t%C3%A9") && s.coll[1] == 0);
}

static void the_callback_can_stop_the_scan(void)
{
	struct seen s = { .stop_at = 2 };
	CHECK_EQ(xml_multistatus(apache_multistatus, seen_href, &s), 1);
	CHECK_EQ(s.total, 2);
}

static void an_s3_listing_gives_keys_and_the_next_token(void)
{
	struct seen s = { 0 };
	char *next = NULL;
	CHECK_EQ(xml_s3_list(s3_listing, strlen(s3_listing), seen_key, &s, &next), 0);
	CHECK_EQ(s.n, 2);
	CHECK(!strcmp(s.v[0], "vol/heads/dev&1"));
	CHECK(!strcmp(s.v[1], "vol/index/ef"));
	CHECK(next && !strcmp(next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
	free(next);
}

static void replies_that_are_not_listings_are_refused(void)
{
	struct seen s = { 0 };
	char *next = NULL;
	CHECK_EQ(xml_s3_list(s3_error_body, strlen(s3_error_body), seen_key, &s, &next), -EBADMSG);
	static const char html[] = "<html><body>ListBucketResult</body></html>";
	CHECK_EQ(xml_s3_list(html, strlen(html), seen_key, &s, &next), -EBADMSG);
	/* Truncated, but no token to go on with: an error, not a silent end. */
	static const char no_token[] =
	    "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
	CHECK_EQ(xml_s3_list(no_token, strlen(no_token), seen_key, &s, &next), -EBADMSG);
	CHECK(strstr(error_last(), "continuation token") != NULL);
	static const char no_key[] = "<ListBucketResult><Contents><Size>1</Size></Contents>"
				     "</ListBucketResult>";
	CHECK_EQ(xml_s3_list(no_key, strlen(no_key), seen_key, &s, &next), -EBADMSG);
	CHECK_EQ(s.total, 0);
	CHECK(next == NULL);
}

static void error_bodies_give_code_and_message(void)
{
	char *code = xml_text(s3_error_body, strlen(s3_error_body), "Code");
	char *msg = xml_text(s3_error_body, strlen(s3_error_body), "Message");
	CHECK(code && !strcmp(code, "SignatureDoesNotMatch"));
	CHECK(msg && !strncmp(msg, "The request signature", 21));
	CHECK(xml_text(s3_error_body, strlen(s3_error_body), "Region") == NULL);
	free(code);
	free(msg);
}

static void entities_decode_to_utf8_and_bad_ones_are_refused(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    { "a&amp;b&lt;&gt;&quot;&apos;", "a&b<>\"'" },
	    { "&#65;&#x42;&#X43;", "ABC" },
	    { "&#233;", "\xc3\xa9" },
	    { "&#x20AC;", "\xe2\x82\xac" },
	    { "&#x1F600;", "\xf0\x9f\x98\x80" },
	    { "", "" },
	    { "&", NULL },
	    { "&amp", NULL },
	    { "&nbsp;", NULL },
	    { "&#0;", NULL },
	    { "&#x110000;", NULL },
	    { "&#;", NULL },
	    { "&#x;", NULL },
	    { "&#12a;", NULL },
	    { "&# 5;", NULL },
	    { "&#+5;", NULL },
	    { "&#x-5;", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *o = xml_unescape(cases[i].in, strlen(cases[i].in));
		if (cases[i].out)
			CHECK(o && !strcmp(o, cases[i].out));
		else
			CHECK(o == NULL);
		if ((cases[i].out && (!o || strcmp(o, cases[i].out))) || (!cases[i].out && o))
			printf("# case %zu: '%s'\n", i, cases[i].in);
		free(o);
	}
}

/* ---- damaged replies ------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* A damaged copy of src in a buffer of exactly its length (plus the NUL
 * the multistatus scanner needs), so that ASan and valgrind see any read
 * past it: bytes flipped, XML-ish bytes dropped in, cut short. */
static char *mutate(const char *src, size_t *len_out)
{
	static const char magic[] = "<>/&;#!-?:\" x\0";
	size_t n = strlen(src);
	char *b = malloc(n + 1);
	memcpy(b, src, n);
	int edits = 1 + (int)(rnd() % 8);
	for (int e = 0; e < edits && n; e++) {
		size_t at = rnd() % n;
		switch (rnd() % 4) {
		case 0:
			b[at] = (char)rnd();
			break;
		case 1:
			b[at] = magic[rnd() % (sizeof(magic) - 1)];
			break;
		case 2: /* cut */
			n = at;
			break;
		default: /* move a piece */
			if (n - at > 1) {
				size_t k = 1 + rnd() % (n - at - 1), to = rnd() % (n - k + 1);
				memmove(b + to, b + at, k);
			}
		}
	}
	char *out = malloc(n + 1);
	memcpy(out, b, n);
	out[n] = '\0';
	free(b);
	*len_out = n;
	return out;
}

static void damaged_replies_are_read_safely(void)
{
	const char *const sources[] = { apache_multistatus, other_multistatus, s3_listing,
					s3_error_body };
	int rounds = getenv("FUZZ_ITER") ? atoi(getenv("FUZZ_ITER")) : 20000;
	for (int r = 0; r < rounds; r++) {
		size_t n;
		const char *src = sources[r % 4];
		char *b = mutate(src, &n);
		size_t blen = strlen(b); /* a NUL may have been dropped in */
		struct seen s = { 0 };
		int rc = xml_multistatus(b, seen_href, &s);
		CHECK(rc == 0);
		CHECK(s.max_len <= blen);
		struct seen k = { 0 };
		char *next = NULL;
		rc = xml_s3_list(b, n, seen_key, &k, &next);
		CHECK(rc == 0 || rc == -EBADMSG);
		CHECK(k.max_len <= n);
		CHECK(!next || strlen(next) <= n);
		free(next);
		const char *tags[] = { "Code", "Key", "Message", "Contents" };
		char *t = xml_text(b, n, tags[r % 4]);
		CHECK(!t || strlen(t) <= n);
		free(t);
		char *u = xml_unescape(b, n);
		CHECK(!u || strlen(u) <= n);
		free(u);
		free(b);
		if (tap_cur_failed) {
			printf("# failed at round %d\n", r);
			return;
		}
	}
}

int main(void)
{
	TEST(an_apache_multistatus_gives_hrefs_and_kinds);
	TEST(another_servers_style_is_read_and_bad_hrefs_skipped);
	TEST(the_callback_can_stop_the_scan);
	TEST(an_s3_listing_gives_keys_and_the_next_token);
	TEST(replies_that_are_not_listings_are_refused);
	TEST(error_bodies_give_code_and_message);
	TEST(entities_decode_to_utf8_and_bad_ones_are_refused);
	TEST(damaged_replies_are_read_safely);
	TAP_DONE();
}
