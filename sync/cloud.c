/* cloud: key names, sealing and verification on top of a backend.  Nothing
 * from the cloud is trusted: blocks are checked against their id, objects
 * against their git oid, and sealed data must open with the volume's keys. */
#include "config.h"
#include "sync/cloud.h"
#include "core/error.h"
#include "core/log.h"
#include "core/seal.h"
#include "core/volume.h"
#include "sync/backend.h"
#include "sync/cloud_impl.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "cloud"
#define CONFIG_STRINGS 7

struct cloud_priv {
	struct cloud pub;
	char *strings[CONFIG_STRINGS]; /* backend_config's strings, owned */
};

static const char *cfg_str(struct cloud_priv *p, int i, struct volume *v, const char *key)
{
	if (volume_config_get_string(v, key, &p->strings[i]) != 0)
		p->strings[i] = NULL;
	return p->strings[i];
}

static int64_t cfg_int(struct volume *v, const char *key, int64_t dflt)
{
	int64_t n = dflt;
	if (volume_config_get_int64(v, key, &n, dflt) != 0)
		n = dflt;
	return n;
}

int cloud_open(struct cloud **out, struct volume *vol)
{
	struct cloud_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (!vol->cloud_url) {
		free(p);
		return error_set(-EINVAL, "volume '%s' has no cloud.url in its config", vol->name);
	}
	char *ps = NULL;
	struct backend_config bc = {
		.user = cfg_str(p, 0, vol, "cloud.user"),
		.password = cfg_str(p, 1, vol, "cloud.password"),
		.s3_endpoint = cfg_str(p, 2, vol, "s3.endpoint"),
		.s3_region = cfg_str(p, 3, vol, "s3.region"),
		.s3_access_key = cfg_str(p, 4, vol, "s3.accessKey"),
		.s3_secret_key = cfg_str(p, 5, vol, "s3.secretKey"),
		.connect_timeout_ms = cfg_int(vol, "cloud.connectTimeout", 3000),
		.timeout_ms = cfg_int(vol, "cloud.timeout", 15000),
		.retries = (int)cfg_int(vol, "cloud.retries", 3),
		.max_upload_bps = (uint64_t)cfg_int(vol, "cloud.maxUpload", 0),
		.max_download_bps = (uint64_t)cfg_int(vol, "cloud.maxDownload", 0),
	};
	if (volume_config_get_string(vol, "s3.pathStyle", &ps) == 0) {
		bc.s3_path_style = strcmp(ps, "true") == 0 || strcmp(ps, "1") == 0;
		free(ps);
	}
	p->pub.vol = vol;
	int rc = backend_open(&p->pub.b, vol->cloud_url, &bc);
	if (!rc)
		rc = cloud_packs_new(&p->pub);
	if (!rc)
		rc = cloud_deltas_new(&p->pub);
	if (rc) {
		cloud_free(&p->pub);
		return rc;
	}
	*out = &p->pub;
	return 0;
}

void cloud_free(struct cloud *c)
{
	if (!c)
		return;
	struct cloud_priv *p = (struct cloud_priv *)c;
	cloud_packs_free(c);
	cloud_deltas_free(c);
	if (c->b)
		backend_free(c->b);
	for (int i = 0; i < CONFIG_STRINGS; i++)
		free(p->strings[i]);
	free(p);
}

/* ---- sealing ------------------------------------------------------------ */

/* With encryption off the cloud holds the bytes themselves. */
static int plain_copy(const void *data, size_t len, uint8_t **out, size_t *out_len)
{
	*out = malloc(len ? len : 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, data, len);
	*out_len = len;
	return 0;
}

int cloud_seal(struct cloud *c, const uint8_t key[SEAL_KEY_SIZE], const void *data, size_t len,
	       uint8_t **out, size_t *out_len)
{
	if (c->vol->encrypt)
		return seal_seal(out, out_len, key, data, len);
	return plain_copy(data, len, out, out_len);
}

int cloud_unseal(struct cloud *c, const uint8_t key[SEAL_KEY_SIZE], const uint8_t *data,
		 size_t len, uint8_t **out, size_t *out_len)
{
	if (c->vol->encrypt)
		return seal_open(out, out_len, key, data, len);
	return plain_copy(data, len, out, out_len);
}

static int open_maybe(struct cloud *c, const uint8_t key[SEAL_KEY_SIZE], uint8_t *data,
		      size_t len, uint8_t **out, size_t *out_len)
{
	if (!c->vol->encrypt) {
		*out = data;
		*out_len = len;
		return 0;
	}
	int rc = seal_open(out, out_len, key, data, len);
	free(data);
	return rc;
}

int cloud_put_sealed(struct cloud *c, const char *key, const uint8_t sk[SEAL_KEY_SIZE],
		     const void *data, size_t len)
{
	uint8_t *s = NULL;
	size_t slen = 0;
	int rc = cloud_seal(c, sk, data, len, &s, &slen);
	if (!rc)
		rc = backend_put(c->b, key, s, slen);
	free(s);
	return rc;
}

int cloud_get_opened(struct cloud *c, const char *key, const uint8_t sk[SEAL_KEY_SIZE],
		     uint8_t **out, size_t *len)
{
	uint8_t *raw = NULL;
	size_t rlen = 0;
	int rc = backend_get(c->b, key, &raw, &rlen);
	if (rc)
		return rc;
	rc = open_maybe(c, sk, raw, rlen, out, len);
	if (rc)
		return error_set(-EBADMSG, "%s in the cloud does not open with this volume's key "
				 "(tampered with, or another volume's)", key);
	return 0;
}

/* ---- volume record ------------------------------------------------------ */

/* What a device must understand to read this volume, one "requires"
 * line each: a build that meets a word it does not know refuses the
 * volume with a clear message instead of failing later on an object it
 * cannot read.  Builds before this list existed ignore it; every build
 * since writes manifest deltas (sync/cloud_delta.c). */
static const char *const known_features[] = { "deltas" };

static int check_requires(struct cloud *c, const uint8_t *data, size_t len)
{
	const char *p = (const char *)data, *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 9 && memcmp(p, "requires ", 9) == 0) {
			int known = 0;
			for (size_t i = 0; i < sizeof(known_features) / sizeof(*known_features); i++)
				known |= strlen(known_features[i]) == n - 9 &&
					 memcmp(known_features[i], p + 9, n - 9) == 0;
			if (!known)
				return error_set(-EPROTO,
						 "the volume in %s needs a newer peercling (it uses "
						 "'%.*s', which this version does not know): upgrade "
						 "peercling on this device",
						 c->vol->cloud_url, (int)(n - 9), p + 9);
		}
		p += n + 1;
	}
	return 0;
}

int cloud_put_volume_info(struct cloud *c)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "peercling-volume 1\nid %s\nrequires %s\n",
			 c->vol->volume_id, known_features[0]);
	/* Encrypted volumes seal it; plain ones keep it readable. */
	return cloud_put_sealed(c, "volume", c->vol->keys.head, buf, (size_t)n);
}

int cloud_check_volume_info(struct cloud *c)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = cloud_get_opened(c, "volume", c->vol->keys.head, &data, &len);
	if (rc == -EBADMSG)
		return error_set(-EKEYREJECTED, "the key does not open this cloud's volume: wrong key "
				 "(check 'peercling key NAME' on a device that has the volume)");
	if (rc == -ENOENT)
		return error_set(-ENOENT, "%s holds no peercling volume", c->vol->cloud_url);
	if (rc)
		return rc;
	char want[64];
	snprintf(want, sizeof(want), "id %s\n", c->vol->volume_id);
	int ok = len > 0 && memmem(data, len, want, strlen(want)) != NULL;
	rc = ok ? check_requires(c, data, len) : 0;
	free(data);
	return !ok ? error_set(-EKEYREJECTED, "the cloud holds another volume") : rc;
}

/* Reads the volume id from the cloud (for clone): *out malloc'd. */
int cloud_read_volume_id(struct cloud *c, char **out)
{
	static const char magic[] = "peercling-volume 1\n";
	uint8_t *raw = NULL, *data = NULL;
	size_t rlen = 0, len = 0;
	int rc = backend_get(c->b, "volume", &raw, &rlen);
	if (rc == -ENOENT)
		return error_set(-ENOENT, "%s holds no peercling volume", c->vol->cloud_url);
	if (rc)
		return rc;
	if (rlen >= sizeof(magic) - 1 && memcmp(raw, magic, sizeof(magic) - 1) == 0) {
		c->vol->encrypt = 0; /* made with --no-encrypt */
		data = raw;
		len = rlen;
	} else {
		c->vol->encrypt = 1;
		rc = seal_open(&data, &len, c->vol->keys.head, raw, rlen);
		free(raw);
		if (rc)
			return error_set(-EKEYREJECTED, "the key does not open the volume in %s: "
					 "wrong key (see 'peercling key NAME' on a device that has it)",
					 c->vol->cloud_url);
	}
	rc = check_requires(c, data, len);
	if (rc) {
		free(data);
		return rc;
	}
	char *s = strndup((const char *)data, len);
	free(data);
	char *id = s ? strstr(s, "\nid ") : NULL;
	if (!id) {
		free(s);
		return error_set(-EBADMSG, "the cloud's volume record is malformed");
	}
	id += 4;
	id[strcspn(id, "\n")] = '\0';
	*out = strdup(id);
	free(s);
	return *out ? 0 : -ENOMEM;
}

/* ---- blocks ------------------------------------------------------------- */

static void block_key(char out[80], const blockid_t *id)
{
	char hex[BLOCKID_HEX_SIZE];
	blockid_to_hex(id, hex);
	snprintf(out, 80, "blocks/%.2s/%s", hex, hex);
}

/* Not checked against the id here: block_get() does that for every source
 * (store_put_cached), and hashing twice would halve cold reads. */
int cloud_get_block(struct cloud *c, const blockid_t *id, uint8_t **out, size_t *len)
{
	char key[80];
	block_key(key, id);
	return cloud_get_opened(c, key, c->vol->keys.block, out, len);
}

static int source_get(void *payload, const blockid_t *id, int flags, uint8_t **out, size_t *len)
{
	int rc = cloud_packed_get(payload, id, flags, out, len);
	if (rc == -ENOENT) /* in no pack this device knows: uploaded alone */
		rc = cloud_get_block(payload, id, out, len);
	return rc;
}

struct fetch_source cloud_block_source(struct cloud *c)
{
	struct fetch_source s = { "cloud", source_get, c };
	return s;
}

/* ---- objects ------------------------------------------------------------ */

static void object_key(struct cloud *c, char out[96], const git_oid *oid)
{
	uint8_t h[32];
	char hex[65];
	crypto_generichash(h, sizeof(h), oid->id, GIT_OID_RAWSZ, c->vol->keys.id, SEAL_KEY_SIZE);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(out, 96, "objects/%.2s/%s", hex, hex);
}

int cloud_object_exists(struct cloud *c, const git_oid *oid)
{
	char key[96];
	object_key(c, key, oid);
	return backend_exists(c->b, key);
}

int cloud_object_body(struct cloud *c, const git_oid *oid, const git_oid *base, uint8_t **out,
		      size_t *out_len)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	int rc = git_repository_odb(&odb, c->vol->repo);
	if (rc == 0)
		rc = git_odb_read(&obj, odb, oid);
	if (rc < 0) {
		git_odb_free(odb);
		return error_set(-EIO, "cannot read object %s: %s", git_oid_tostr_s(oid),
				 git_error_last() ? git_error_last()->message : "?");
	}
	size_t len = git_odb_object_size(obj);
	git_object_t type = git_odb_object_type(obj);
	if (base) {
		rc = cloud_delta_body(c, oid, git_odb_object_data(obj), len, type, base, out,
				      out_len);
		if (rc == 0 || rc == 1) {
			git_odb_object_free(obj);
			git_odb_free(odb);
			return rc;
		}
	}
	uint8_t *buf = malloc(len + 1);
	if (buf) {
		cloud_delta_note_whole(c, oid, type, len);
		buf[0] = (uint8_t)type;
		memcpy(buf + 1, git_odb_object_data(obj), len);
		*out = buf;
		*out_len = len + 1;
	}
	git_odb_object_free(obj);
	git_odb_free(odb);
	return buf ? 0 : error_set(-ENOMEM, "out of memory reading an object to upload");
}

int cloud_put_object_body(struct cloud *c, const git_oid *oid, const uint8_t *body, size_t len)
{
	char key[96];
	object_key(c, key, oid);
	return cloud_put_sealed(c, key, c->vol->keys.object, body, len);
}

int cloud_get_object_within(struct cloud *c, const git_oid *oid, unsigned levels,
			    git_object_t *type, uint8_t **out, size_t *len)
{
	char key[96];
	uint8_t *data = NULL, *obj;
	size_t dlen = 0, olen;
	object_key(c, key, oid);
	int rc = cloud_get_opened(c, key, c->vol->keys.object, &data, &dlen);
	if (rc)
		return rc;
	int delta = dlen >= 1 && (data[0] & 0x80);
	if (delta) {
		rc = cloud_delta_open(c, oid, data, dlen, levels, type, &obj, &olen);
		free(data);
		if (rc)
			return rc;
	} else {
		if (dlen < 1 || (data[0] != GIT_OBJECT_COMMIT && data[0] != GIT_OBJECT_TREE &&
				 data[0] != GIT_OBJECT_BLOB)) {
			free(data);
			return error_set(-EBADMSG, "object %s from the cloud is malformed",
					 git_oid_tostr_s(oid));
		}
		*type = (git_object_t)data[0];
		memmove(data, data + 1, dlen - 1);
		obj = data;
		olen = dlen - 1;
	}
	git_oid got;
	if (git_odb_hash(&got, obj, olen, *type) < 0 || !git_oid_equal(&got, oid)) {
		free(obj);
		return error_set(-EBADMSG, "object %s from the cloud does not match its id",
				 git_oid_tostr_s(oid));
	}
	if (!delta)
		cloud_delta_note_whole(c, oid, *type, olen);
	*out = obj;
	*len = olen;
	return 0;
}

int cloud_get_object(struct cloud *c, const git_oid *oid, git_object_t *type, uint8_t **out,
		     size_t *len)
{
	return cloud_get_object_within(c, oid, CLOUD_DELTA_LEVELS, type, out, len);
}

/* ---- heads -------------------------------------------------------------- */

int cloud_put_head(struct cloud *c, const git_oid *commit)
{
	char key[96], body[GIT_OID_HEXSZ + 2];
	snprintf(key, sizeof(key), "heads/%s", c->vol->device_id);
	git_oid_tostr(body, sizeof(body), commit);
	strcat(body, "\n");
	return cloud_put_sealed(c, key, c->vol->keys.head, body, strlen(body));
}

struct head_walk {
	struct cloud *c;
	int (*cb)(const char *device, const git_oid *commit, void *payload);
	void *payload;
};

static int head_cb(const char *key, void *payload)
{
	struct head_walk *hw = payload;
	const char *dev = strrchr(key, '/');
	dev = dev ? dev + 1 : key;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = cloud_get_opened(hw->c, key, hw->c->vol->keys.head, &data, &len);
	if (rc) {
		log_warn("ignoring head %s: %s", key, error_last());
		return 0;
	}
	char hex[GIT_OID_HEXSZ + 1] = "";
	git_oid oid;
	if (len >= GIT_OID_HEXSZ)
		memcpy(hex, data, GIT_OID_HEXSZ);
	free(data);
	if (git_oid_fromstr(&oid, hex) < 0) {
		log_warn("ignoring malformed head %s", key);
		return 0;
	}
	return hw->cb(dev, &oid, hw->payload);
}

int cloud_foreach_head(struct cloud *c,
		       int (*cb)(const char *device, const git_oid *commit, void *payload),
		       void *payload)
{
	struct head_walk hw = { c, cb, payload };
	return backend_list(c->b, "heads/", head_cb, &hw);
}
