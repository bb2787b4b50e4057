/* volume: finds, creates and opens a volume's state directory.  It owns the
 * layout of that directory (see volume.h) and the checks made before any
 * other module touches it: name, key permissions, config syntax, the lock.
 * It never mounts, syncs or talks to the network. */
#include "config.h"
#include "core/volume.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/store.h"
#include "core/tree.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "volume"
#define VOLUME_DEFAULT_CACHE_LIMIT (10LL << 30)

int volume_check_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 200 || name[0] == '.' || name[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			goto bad;
	}
	return 0;
bad:
	return error_set(-EINVAL, "invalid volume name '%s': use letters, digits, '-', '_' and '.', "
			 "not starting with '.' or '-'", name ? name : "");
}

int volume_path(char **out, const char *name)
{
	int rc = volume_check_name(name);
	if (rc)
		return rc;
	const char *home = getenv("PEERCLING_HOME");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *user = getenv("HOME");
	int n;
	if (home && *home)
		n = asprintf(out, "%s/%s", home, name);
	else if (xdg && *xdg)
		n = asprintf(out, "%s/peercling/%s", xdg, name);
	else if (user && *user)
		n = asprintf(out, "%s/.local/share/peercling/%s", user, name);
	else
		return error_set(-ENOENT, "cannot find the state directory: set HOME, "
				 "XDG_DATA_HOME or PEERCLING_HOME");
	return n < 0 ? error_set(-ENOMEM, "out of memory") : 0;
}

int volume_file(char **out, const struct volume *v, const char *rel)
{
	return asprintf(out, "%s/%s", v->dir, rel) < 0 ? error_set(-ENOMEM, "out of memory") : 0;
}

/* mkdir -p, mode 0700: state directories hold keys and plaintext. */
static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST) {
				int e = errno;
				error_set(-e, "cannot create directory %s: %s", p, strerror(e));
				free(p);
				return -e;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return 0;
}

void volume_key_to_hex(const uint8_t key[SEAL_KEY_SIZE], char out[2 * SEAL_KEY_SIZE + 1])
{
	sodium_bin2hex(out, 2 * SEAL_KEY_SIZE + 1, key, SEAL_KEY_SIZE);
}

int volume_key_from_hex(uint8_t key[SEAL_KEY_SIZE], const char *hex)
{
	size_t n = 0;
	const char *end = NULL;
	size_t len = strlen(hex);
	while (len && (hex[len - 1] == '\n' || hex[len - 1] == ' '))
		len--;
	if (len != 2 * SEAL_KEY_SIZE ||
	    sodium_hex2bin(key, SEAL_KEY_SIZE, hex, len, NULL, &n, &end) != 0 || n != SEAL_KEY_SIZE)
		return error_set(-EINVAL, "a volume key is 64 hexadecimal digits "
				 "(as printed by 'peercling key NAME')");
	return 0;
}

static int write_key(const char *path, const uint8_t key[SEAL_KEY_SIZE])
{
	char hex[2 * SEAL_KEY_SIZE + 2];
	volume_key_to_hex(key, hex);
	strcat(hex, "\n");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set(-errno, "cannot create key file %s: %s", path, strerror(errno));
	ssize_t w = write(fd, hex, strlen(hex));
	int rc = (w == (ssize_t)strlen(hex) && fsync(fd) == 0) ? 0 : -EIO;
	close(fd);
	sodium_memzero(hex, sizeof(hex));
	return rc ? error_set(rc, "cannot write key file %s", path) : 0;
}

static int read_key(const char *path, uint8_t key[SEAL_KEY_SIZE])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(-errno, "cannot open key file %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		close(fd);
		return error_set(-EACCES, "key file %s is readable by others (mode %04o): "
				 "run 'chmod 600 %s'", path, (unsigned)(st.st_mode & 07777), path);
	}
	char hex[2 * SEAL_KEY_SIZE + 8] = { 0 };
	ssize_t r = read(fd, hex, sizeof(hex) - 1);
	close(fd);
	if (r < 0)
		return error_set(-errno, "cannot read key file %s", path);
	int rc = volume_key_from_hex(key, hex);
	sodium_memzero(hex, sizeof(hex));
	if (rc)
		return error_set(rc, "key file %s is malformed: expected 64 hexadecimal digits", path);
	return 0;
}

static int config_open(git_config **out, const struct volume *v)
{
	char *path = NULL;
	git_config *cfg = NULL;
	if (volume_file(&path, v, "config"))
		return -ENOMEM;
	int rc = git_config_open_ondisk(&cfg, path);
	if (rc < 0) {
		const git_error *e = git_error_last();
		rc = error_set(-EINVAL, "config file %s is malformed: %s", path,
			       e ? e->message : "parse error");
	} else {
		*out = cfg;
	}
	free(path);
	return rc;
}

int volume_config_get_string(const struct volume *v, const char *key, char **out)
{
	git_config *cfg = NULL, *snap = NULL;
	const char *val = NULL;
	int rc = config_open(&cfg, v);
	if (rc)
		return rc;
	if (git_config_snapshot(&snap, cfg) < 0) {
		git_config_free(cfg);
		return tree_git_error(-1, "reading config");
	}
	rc = git_config_get_string(&val, snap, key);
	if (rc == GIT_ENOTFOUND)
		rc = -ENOENT;
	else if (rc < 0)
		rc = error_set(-EINVAL, "config key %s: %s", key, git_error_last()->message);
	else
		rc = (*out = strdup(val)) ? 0 : -ENOMEM;
	git_config_free(snap);
	git_config_free(cfg);
	return rc;
}

int volume_config_get_int64(const struct volume *v, const char *key, int64_t *out, int64_t dflt)
{
	git_config *cfg = NULL;
	int rc = config_open(&cfg, v);
	if (rc)
		return rc;
	rc = git_config_get_int64(out, cfg, key);
	if (rc == GIT_ENOTFOUND) {
		*out = dflt;
		rc = 0;
	} else if (rc < 0) {
		rc = error_set(-EINVAL, "config key %s is not a number (suffixes k, m, g allowed): %s",
			       key, git_error_last()->message);
	}
	git_config_free(cfg);
	return rc;
}

int volume_config_set_string(const struct volume *v, const char *key, const char *value)
{
	git_config *cfg = NULL;
	int rc = config_open(&cfg, v);
	if (rc)
		return rc;
	if (git_config_set_string(cfg, key, value) < 0)
		rc = tree_git_error(-1, "writing config");
	git_config_free(cfg);
	return rc;
}

static void random_hex(char *out, size_t bytes)
{
	uint8_t buf[32];
	randombytes_buf(buf, bytes);
	sodium_bin2hex(out, 2 * bytes + 1, buf, bytes);
}

static struct volume *volume_alloc(const char *name, const char *dir)
{
	struct volume *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->lock_fd = -1;
	v->name = strdup(name);
	v->dir = strdup(dir);
	if (!v->name || !v->dir) {
		volume_free(v);
		return NULL;
	}
	return v;
}

static int write_initial_config(struct volume *v, const struct volume_create_opts *opts)
{
	char vid[2 * VOLUME_ID_SIZE + 1], did[2 * VOLUME_ID_SIZE + 1];
	char *cloud = NULL;
	int rc;
	random_hex(did, VOLUME_ID_SIZE);
	if (opts->volume_id)
		snprintf(vid, sizeof(vid), "%s", opts->volume_id);
	else
		random_hex(vid, VOLUME_ID_SIZE);
	if (opts->cloud_url)
		cloud = strdup(opts->cloud_url);
	else if (asprintf(&cloud, "file://%s/cloud", v->dir) < 0)
		cloud = NULL;
	if (!cloud)
		return -ENOMEM;
	char *path = NULL;
	if (volume_file(&path, v, "config")) {
		free(cloud);
		return -ENOMEM;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0) {
		free(cloud);
		return error_set(-errno, "cannot create config: %s", strerror(errno));
	}
	close(fd);
	const char *const pairs[][2] = {
		{ "volume.name", v->name },
		{ "volume.id", vid },
		{ "volume.encrypt", opts->no_encrypt ? "false" : "true" },
		{ "device.id", did },
		{ "cloud.url", cloud },
		{ "cache.limit", "10g" },
	};
	rc = 0;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]) && !rc; i++)
		rc = volume_config_set_string(v, pairs[i][0], pairs[i][1]);
	free(cloud);
	return rc;
}

int volume_create(struct volume **out, const char *name, const struct volume_create_opts *opts)
{
	char *dir = NULL, *p = NULL;
	struct stat st;
	int rc = volume_path(&dir, name);
	if (rc)
		return rc;
	if (stat(dir, &st) == 0) {
		rc = error_set(-EEXIST, "volume '%s' already exists in %s", name, dir);
		free(dir);
		return rc;
	}
	struct volume *v = volume_alloc(name, dir);
	free(dir);
	if (!v)
		return error_set(-ENOMEM, "out of memory");
	if ((rc = mkdir_p(v->dir)))
		goto fail;
	uint8_t key[SEAL_KEY_SIZE];
	if (opts->key)
		memcpy(key, opts->key, SEAL_KEY_SIZE);
	else
		seal_random_key(key);
	if (volume_file(&p, v, "key")) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = write_key(p, key)))
		goto fail;
	free(p);
	p = NULL;
	sodium_memzero(key, sizeof(key));
	if ((rc = write_initial_config(v, opts)))
		goto fail;
	git_repository *repo = NULL;
	if (volume_file(&p, v, "repo.git")) {
		rc = -ENOMEM;
		goto fail;
	}
	git_repository_init_options io;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = "main";
	if (git_repository_init_ext(&repo, p, &io) < 0) {
		rc = tree_git_error(-1, "creating the repository");
		goto fail;
	}
	/* The repository is never checked out, so names that are only unsafe
	 * on Windows (git~1, "x.") must stay legal for Linux users. */
	git_config *rc_cfg = NULL;
	if (git_repository_config(&rc_cfg, repo) == 0) {
		git_config_set_bool(rc_cfg, "core.protectNTFS", 0);
		git_config_free(rc_cfg);
	}
	git_repository_free(repo);
	free(p);
	p = NULL;
	volume_free(v);
	log_info("created volume %s", name);
	return volume_open(out, name, 0);
fail:
	free(p);
	volume_free(v);
	return rc;
}

static int take_lock(struct volume *v)
{
	char *path = NULL;
	if (volume_file(&path, v, "lock"))
		return -ENOMEM;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		free(path);
		return error_set(-e, "cannot open the volume lock: %s", strerror(e));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "?";
		ssize_t r = pread(fd, pid, sizeof(pid) - 1, 0);
		if (r > 0)
			pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		free(path);
		return error_set(-EBUSY, "volume '%s' is in use by process %s (already mounted?); "
				 "unmount it first", v->name, pid);
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("cannot record pid in %s", path);
	free(path);
	v->lock_fd = fd;
	return 0;
}

static int load_config(struct volume *v)
{
	char *s = NULL;
	int64_t limit;
	int rc;
	if ((rc = volume_config_get_string(v, "volume.id", &v->volume_id)) ||
	    (rc = volume_config_get_string(v, "device.id", &v->device_id)))
		return rc == -ENOENT ? error_set(-EINVAL, "config of volume '%s' lacks volume.id or "
						 "device.id", v->name) : rc;
	if ((rc = volume_config_get_string(v, "cloud.url", &v->cloud_url)) && rc != -ENOENT)
		return rc;
	v->encrypt = 1;
	if (volume_config_get_string(v, "volume.encrypt", &s) == 0) {
		v->encrypt = !(strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "0") == 0);
		free(s);
	}
	if ((rc = volume_config_get_int64(v, "cache.limit", &limit, VOLUME_DEFAULT_CACHE_LIMIT)))
		return rc;
	if (limit < 0)
		return error_set(-EINVAL, "cache.limit must not be negative");
	v->cache_limit = (uint64_t)limit;
	return 0;
}

int volume_open(struct volume **out, const char *name, int flags)
{
	char *dir = NULL, *p = NULL;
	struct stat st;
	int rc = volume_path(&dir, name);
	if (rc)
		return rc;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = error_set(-ENOENT, "no volume named '%s' (looked in %s); create it with "
			       "'peercling init %s'", name, dir, name);
		free(dir);
		return rc;
	}
	struct volume *v = volume_alloc(name, dir);
	free(dir);
	if (!v)
		return error_set(-ENOMEM, "out of memory");
	if ((flags & VOLUME_OPEN_LOCK) && (rc = take_lock(v)))
		goto fail;
	if ((rc = load_config(v)))
		goto fail;
	if (volume_file(&p, v, "key"))
		goto nomem;
	if ((rc = read_key(p, v->master_key)))
		goto fail;
	free(p);
	p = NULL;
	seal_keys_derive(&v->keys, v->master_key);
	if (volume_file(&p, v, "repo.git"))
		goto nomem;
	if (git_repository_open_bare(&v->repo, p) < 0) {
		rc = tree_git_error(-1, "opening the repository");
		goto fail;
	}
	free(p);
	p = NULL;
	if (flags & VOLUME_OPEN_NO_STORE) {
		*out = v;
		return 0;
	}
	if (volume_file(&p, v, "blocks"))
		goto nomem;
	if ((rc = store_open(&v->store, p, v->keys.id, v->cache_limit)))
		goto fail;
	free(p);
	p = NULL;
	if ((rc = fetch_new(&v->fetch, v->store)))
		goto fail;
	*out = v;
	return 0;
nomem:
	rc = error_set(-ENOMEM, "out of memory");
fail:
	free(p);
	volume_free(v);
	return rc;
}

void volume_free(struct volume *v)
{
	if (!v)
		return;
	if (v->fetch)
		fetch_free(v->fetch);
	if (v->store)
		store_free(v->store);
	if (v->repo)
		git_repository_free(v->repo);
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	sodium_memzero(v->master_key, sizeof(v->master_key));
	sodium_memzero(&v->keys, sizeof(v->keys));
	free(v->name);
	free(v->dir);
	free(v->volume_id);
	free(v->device_id);
	free(v->cloud_url);
	free(v);
}
