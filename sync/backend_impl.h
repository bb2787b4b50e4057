/* backend_impl: what backend.c needs from each backend, private to sync/.
 *
 * A constructor gets the URL (scheme already recognised by backend_open, the
 * rest still to validate) and a config whose defaults and environment
 * fallbacks backend.c has filled in.  It sets b->ops and b->url (a malloc'd
 * copy of url, freed by ops->free with everything else) and touches no
 * network.  The checks back backend_check(): the file and WebDAV backends
 * have their own; S3 is checked through a listing (see backend.c). */
#ifndef PEERCLING_BACKEND_IMPL_H
#define PEERCLING_BACKEND_IMPL_H

#include "sync/backend.h"

int backend_file_open(struct backend **out, const char *url, const struct backend_config *cfg);
int backend_webdav_open(struct backend **out, const char *url, const struct backend_config *cfg);
int backend_s3_open(struct backend **out, const char *url, const struct backend_config *cfg);

int backend_file_check(struct backend *b);
int backend_webdav_check(struct backend *b);

#endif
