/* pin: keeps chosen paths of a volume in the cache for offline use.
 *
 * The pinned paths are listed in STATE/pins (one per line, relative to the
 * volume's root).  Reconciling computes the blocks of every file under them
 * in the current tree, fetches the missing ones (through the fetch chain)
 * and pins them in the store, and unpins the blocks pinned before that are
 * no longer needed; STATE/pinned-blocks remembers which blocks this module
 * pinned.  It runs on pin/unpin and after every sync round, so new versions
 * of pinned files stay available offline too. */
#ifndef PEERCLING_FS_PIN_H
#define PEERCLING_FS_PIN_H

#include <stdint.h>

struct fs;

/* Adds (pin = 1) or removes a path; -ENOENT when it does not exist (pin) or
 * is not pinned (unpin). */
int fs_pin_set(struct fs *fs, const char *rel, int pin);

struct fs_pin_report {
	uint64_t blocks, bytes;    /* pinned now */
	uint64_t fetched, failed;  /* this time */
};

int fs_pin_reconcile(struct fs *fs, struct fs_pin_report *rep,
		     void (*progress)(void *p, uint64_t done, uint64_t total), void *p);

#endif
