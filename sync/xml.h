/* xml: the little XML the cloud backends read, scanned tolerantly without
 * an XML library: S3's ListBucketResult and error bodies, WebDAV's
 * multistatus.  Whatever a server (or something between it and us) sends,
 * these functions only read inside the buffer they are given and either
 * find what they look for or say the reply is malformed. */
#ifndef PEERCLING_SYNC_XML_H
#define PEERCLING_SYNC_XML_H

#include <stddef.h>

/* The text s[0..n) with the five XML entities and numeric character
 * references decoded (to UTF-8), as a new string; NULL when malformed
 * (an '&' that starts no reference, a code point of 0 or past U+10FFFF)
 * or out of memory. */
char *xml_unescape(const char *s, size_t n);

/* Finds the first <tag>text</tag> (or <tag/>, or <tag attr...>) in
 * [p, end); sets *text, *len to the raw text and returns the end of the
 * element, or NULL when there is none.  Elements of that name must not
 * nest (none of S3's do). */
const char *xml_find(const char *p, const char *end, const char *tag, const char **text,
		     size_t *len);

/* The unescaped text of the first <tag> of body[0..len), malloc'd, or NULL. */
char *xml_text(const char *body, size_t len, const char *tag);

/* One page of an S3 ListObjectsV2 reply: cb(key) for each <Contents><Key>
 * in order; *next (malloc'd) is the continuation token when the listing
 * goes on, else NULL.  -EBADMSG with error_set() when the body is not a
 * listing or is malformed; a non-zero return of cb stops the scan and is
 * returned. */
int xml_s3_list(const char *body, size_t len, int (*cb)(const char *key, void *payload),
		void *payload, char **next);

/* Calls emit for every <response> of a WebDAV multistatus (body
 * NUL-terminated) that has an <href>, with the href's text unescaped and
 * whether the response names a collection; tags match by local name
 * under any namespace prefix.  A response whose href is malformed is
 * skipped.  0, -ENOMEM, or the first non-zero return of emit. */
int xml_multistatus(const char *body, int (*emit)(char *href, int collection, void *payload),
		    void *payload);

#endif
