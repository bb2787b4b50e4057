/* journal: one write() per record (a single write either lands whole in the
 * page cache or not at all as far as kill -9 is concerned; a torn record from
 * power loss fails its checksum). */
#include "config.h"
#include "fs/journal.h"
#include "core/error.h"
#include "core/log.h"
#include "fs/overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "journal"
#define SUM_SIZE 16
#define HDR_SIZE (1 + 4 + 2 + 2 + 4)
#define MAX_BODY (64u << 20)

struct fs_journal {
	int fd;
	uint64_t size;
	char *path;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int fs_journal_open(struct fs_journal **out, const char *path)
{
	struct fs_journal *j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		return -ENOMEM;
	}
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		int e = errno;
		free(j->path);
		free(j);
		return error_set(-e, "cannot open the journal %s: %s", path, strerror(e));
	}
	struct stat st;
	fstat(j->fd, &st);
	j->size = (uint64_t)st.st_size;
	*out = j;
	return 0;
}

void fs_journal_free(struct fs_journal *j)
{
	if (!j)
		return;
	close(j->fd);
	free(j->path);
	free(j);
}

static int read_all(int fd, uint8_t *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ENODATA;
		done += (size_t)r;
	}
	return 0;
}

static int parse_body(const uint8_t *b, uint32_t blen, struct fs_journal_rec *rec,
		      char **p1, char **p2)
{
	if (blen < HDR_SIZE)
		return -EINVAL;
	uint16_t l1 = get16(b + 5), l2 = get16(b + 7);
	uint32_t l3 = get32(b + 9);
	if ((uint64_t)HDR_SIZE + l1 + l2 + l3 != blen || b[0] < FS_J_PUT || b[0] > FS_J_DATA)
		return -EINVAL;
	*p1 = strndup((const char *)b + HDR_SIZE, l1);
	*p2 = strndup((const char *)b + HDR_SIZE + l1, l2);
	if (!*p1 || !*p2)
		return -ENOMEM;
	rec->op = (enum fs_journal_op)b[0];
	rec->mode = get32(b + 1);
	rec->path1 = *p1;
	rec->path2 = *p2;
	rec->data = b + HDR_SIZE + l1 + l2;
	rec->len = l3;
	return 0;
}

long fs_journal_replay(struct fs_journal *j,
		       int (*cb)(const struct fs_journal_rec *rec, void *payload), void *payload)
{
	uint64_t off = 0;
	long n = 0;
	while (off + 4 + SUM_SIZE <= j->size) {
		uint8_t lenbuf[4], sum[SUM_SIZE], want[SUM_SIZE];
		if (read_all(j->fd, lenbuf, 4, (off_t)off))
			break;
		uint32_t blen = get32(lenbuf);
		if (blen > MAX_BODY || off + 4 + blen + SUM_SIZE > j->size)
			break;
		uint8_t *body = malloc(blen ? blen : 1);
		if (!body)
			return -ENOMEM;
		if (read_all(j->fd, body, blen, (off_t)off + 4) ||
		    read_all(j->fd, sum, SUM_SIZE, (off_t)(off + 4 + blen))) {
			free(body);
			break;
		}
		crypto_generichash(want, SUM_SIZE, body, blen, NULL, 0);
		struct fs_journal_rec rec;
		char *p1 = NULL, *p2 = NULL;
		if (sodium_memcmp(want, sum, SUM_SIZE) != 0 || parse_body(body, blen, &rec, &p1, &p2)) {
			free(p1);
			free(p2);
			free(body);
			break;
		}
		int rc = cb(&rec, payload);
		free(p1);
		free(p2);
		free(body);
		if (rc < 0)
			return rc;
		off += 4 + blen + SUM_SIZE;
		n++;
	}
	if (off < j->size) {
		log_warn("journal %s: %llu bytes after the last good record (a crash mid-write) "
			 "were cut off", j->path, (unsigned long long)(j->size - off));
		if (ftruncate(j->fd, (off_t)off) != 0)
			return error_set(-errno, "cannot truncate the journal %s", j->path);
		j->size = off;
	}
	return n;
}

int fs_journal_append(struct fs_journal *j, const struct fs_journal_rec *rec)
{
	size_t l1 = rec->path1 ? strlen(rec->path1) : 0, l2 = rec->path2 ? strlen(rec->path2) : 0;
	if (l1 > UINT16_MAX || l2 > UINT16_MAX || rec->len > MAX_BODY)
		return error_set(-ENAMETOOLONG, "journal record too large");
	size_t blen = HDR_SIZE + l1 + l2 + rec->len;
	size_t total = 4 + blen + SUM_SIZE;
	uint8_t *buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	uint8_t *b = buf + 4;
	put32(buf, (uint32_t)blen);
	b[0] = (uint8_t)rec->op;
	put32(b + 1, rec->mode);
	put16(b + 5, (uint16_t)l1);
	put16(b + 7, (uint16_t)l2);
	put32(b + 9, (uint32_t)rec->len);
	memcpy(b + HDR_SIZE, rec->path1, l1);
	if (l2)
		memcpy(b + HDR_SIZE + l1, rec->path2, l2);
	if (rec->len)
		memcpy(b + HDR_SIZE + l1 + l2, rec->data, rec->len);
	crypto_generichash(b + blen, SUM_SIZE, b, blen, NULL, 0);
	ssize_t w = pwrite(j->fd, buf, total, (off_t)j->size);
	int e = errno;
	free(buf);
	if (w != (ssize_t)total) {
		/* Leave no half record for the next append to follow. */
		if (ftruncate(j->fd, (off_t)j->size) != 0)
			log_error("journal %s: cannot cut a failed append", j->path);
		return error_set(w < 0 ? -e : -ENOSPC, "cannot write the journal %s: %s", j->path,
				 strerror(w < 0 ? e : ENOSPC));
	}
	j->size += total;
	return 0;
}

int fs_journal_sync(struct fs_journal *j)
{
	return fdatasync(j->fd) == 0 ? 0 : error_set(-errno, "cannot sync the journal");
}

int fs_journal_reset(struct fs_journal *j)
{
	if (ftruncate(j->fd, 0) != 0 || fdatasync(j->fd) != 0)
		return error_set(-errno, "cannot empty the journal %s", j->path);
	j->size = 0;
	return 0;
}

uint64_t fs_journal_size(struct fs_journal *j)
{
	return j->size;
}

/* ---- FS_J_DATA bodies ---------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#define DATA_HEAD (8 + 8 + 4)

int fs_journal_data_encode(uint8_t **out, size_t *len, uint64_t size, uint64_t base_limit,
			   const struct fs_range *r, size_t n)
{
	if (n > (UINT32_MAX - DATA_HEAD) / 16)
		return error_set(-E2BIG, "too many written ranges to journal");
	size_t l = DATA_HEAD + 16 * n;
	uint8_t *b = malloc(l);
	if (!b)
		return -ENOMEM;
	put_u64(b, size);
	put_u64(b + 8, base_limit);
	for (int i = 0; i < 4; i++)
		b[16 + i] = (uint8_t)(n >> (8 * i));
	for (size_t i = 0; i < n; i++) {
		put_u64(b + DATA_HEAD + 16 * i, r[i].lo);
		put_u64(b + DATA_HEAD + 16 * i + 8, r[i].hi);
	}
	*out = b;
	*len = l;
	return 0;
}

/* Ranges must be sorted, disjoint, non-empty and within size. */
int fs_journal_data_decode(const uint8_t *data, size_t len, uint64_t *size,
			   uint64_t *base_limit, struct fs_range **r, size_t *n)
{
	if (len < DATA_HEAD)
		return -EBADMSG;
	uint32_t cnt = (uint32_t)data[16] | (uint32_t)data[17] << 8 | (uint32_t)data[18] << 16 |
		       (uint32_t)data[19] << 24;
	if ((len - DATA_HEAD) / 16 != cnt || (len - DATA_HEAD) % 16)
		return -EBADMSG;
	*size = get_u64(data);
	*base_limit = get_u64(data + 8);
	if (*base_limit > *size)
		return -EBADMSG;
	struct fs_range *v = malloc((cnt ? cnt : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	uint64_t prev = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		v[i].lo = get_u64(data + DATA_HEAD + 16 * i);
		v[i].hi = get_u64(data + DATA_HEAD + 16 * i + 8);
		if (v[i].lo >= v[i].hi || v[i].hi > *size || (i && v[i].lo < prev)) {
			free(v);
			return -EBADMSG;
		}
		prev = v[i].hi;
	}
	*r = v;
	*n = cnt;
	return 0;
}
