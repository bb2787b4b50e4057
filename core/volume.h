/* volume: one volume's state directory and everything opened from it.
 *
 *   $PEERCLING_HOME/NAME  or  $XDG_DATA_HOME/peercling/NAME
 *   (~/.local/share/peercling/NAME when XDG_DATA_HOME is unset)
 *     config      git-config format, read and written with libgit2
 *     key         the 32 byte master key as 64 hex digits, mode 0600
 *     repo.git/   bare git repository: manifests, trees, commits
 *     blocks/     the block cache (core/store)
 *     cloud/      the default cloud, a local directory (file://)
 *     lock        flock'ed by the one process that has the volume open
 *     journal     the mount's write journal (fs/)
 *     control.sock, log
 *
 * Opening checks the key's permissions (refused when group or others can
 * read it), the config, and takes the lock when asked. */
#ifndef PEERCLING_VOLUME_H
#define PEERCLING_VOLUME_H

#include <git2.h>
#include <stdint.h>

#include "core/seal.h"

struct store;
struct fetch;

#define VOLUME_REF "refs/heads/main"
#define VOLUME_ID_SIZE 16 /* bytes; 32 hex digits */

struct volume {
	char *name;
	char *dir;
	char *volume_id; /* hex */
	char *device_id; /* hex */
	char *cloud_url;
	int encrypt;
	uint64_t cache_limit;
	git_repository *repo;
	uint8_t master_key[SEAL_KEY_SIZE];
	struct seal_keys keys;
	struct store *store;
	struct fetch *fetch;
	int lock_fd;
};

struct volume_create_opts {
	const char *cloud_url; /* NULL: file://STATE/cloud */
	int no_encrypt;
	const uint8_t *key; /* NULL: a new random key (clone passes one) */
	const char *volume_id; /* NULL: new */
};

/* LOCK: take the volume's lock (only one daemon or writer at a time).
 * NO_STORE: config, key and repository only; safe while a daemon runs. */
enum { VOLUME_OPEN_LOCK = 1, VOLUME_OPEN_NO_STORE = 2 };

/* *out malloc'd: the state directory of NAME (which need not exist). */
int volume_path(char **out, const char *name);
/* -EINVAL for names that are not a single safe path component. */
int volume_check_name(const char *name);

int volume_create(struct volume **out, const char *name, const struct volume_create_opts *opts);
/* -ENOENT: no such volume; -EBUSY: locked by another process (mounted);
 * -EACCES: key readable by others; -EINVAL: malformed config or key. */
int volume_open(struct volume **out, const char *name, int flags);
void volume_free(struct volume *v);

/* A path inside the state directory; *out malloc'd. */
int volume_file(char **out, const struct volume *v, const char *rel);

/* Config: a fresh snapshot each call, so changes by the CLI are seen. */
int volume_config_get_string(const struct volume *v, const char *key, char **out);
int volume_config_get_int64(const struct volume *v, const char *key, int64_t *out, int64_t dflt);
int volume_config_set_string(const struct volume *v, const char *key, const char *value);

/* The master key as 64 hex digits, and back. */
void volume_key_to_hex(const uint8_t key[SEAL_KEY_SIZE], char out[2 * SEAL_KEY_SIZE + 1]);
int volume_key_from_hex(uint8_t key[SEAL_KEY_SIZE], const char *hex);

#endif
