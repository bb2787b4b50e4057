/* fetch: the ordered chain local store -> sources.  A block from a source is
 * checked against its id by store_put before anyone sees it, so a peer or a
 * cloud that sends garbage can only cost time, never correctness. */
#include "config.h"
#include "core/fetch.h"
#include "core/error.h"
#include "core/log.h"
#include "core/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "fetch"

struct fetch {
	struct store *store;
	size_t nsources;
	struct fetch_source sources[FETCH_MAX_SOURCES];
};

int fetch_new(struct fetch **out, struct store *store)
{
	struct fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(-ENOMEM, "out of memory");
	f->store = store;
	*out = f;
	return 0;
}

void fetch_free(struct fetch *f)
{
	free(f);
}

struct store *fetch_store_borrow(struct fetch *f)
{
	return f->store;
}

int fetch_add_source(struct fetch *f, const struct fetch_source *src)
{
	if (f->nsources == FETCH_MAX_SOURCES)
		return error_set(-ENOSPC, "too many block sources (at most %d)", FETCH_MAX_SOURCES);
	f->sources[f->nsources++] = *src;
	return 0;
}

int block_get(struct fetch *f, const blockid_t *id, uint8_t **out, size_t *out_len)
{
	if (store_get(f->store, id, out, out_len) == 0)
		return 0;

	char hex[BLOCKID_HEX_SIZE];
	char why[512] = "not in the local cache";
	size_t used = strlen(why);
	blockid_to_hex(id, hex);
	for (size_t i = 0; i < f->nsources; i++) {
		const struct fetch_source *src = &f->sources[i];
		uint8_t *buf = NULL;
		size_t len = 0;
		int rc = src->get(src->payload, id, &buf, &len);
		if (rc == 0) {
			rc = store_put(f->store, id, buf, len);
			if (rc == 0 || rc != -EBADMSG) {
				/* A full disk must not hide good data: serve it anyway. */
				*out = buf;
				*out_len = len;
				return 0;
			}
			log_warn("block %.16s from %s does not match its id: dropped", hex, src->name);
			free(buf);
		}
		used += (size_t)snprintf(why + used, used < sizeof(why) ? sizeof(why) - used : 0,
					 "; %s: %s", src->name,
					 rc == -EBADMSG ? "sent corrupt data" : strerror(-rc));
		if (used >= sizeof(why))
			used = sizeof(why) - 1;
	}
	log_warn("block %.16s unavailable: %s", hex, why);
	return error_set(-EIO, "block %.16s is unavailable (%s)", hex, why);
}
