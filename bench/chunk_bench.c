/* chunk_bench: measures the content-defined chunker on a real file, the way
 * the daemon uses it: streamed through a big read() buffer, every chunk named
 * by its keyed BLAKE2b-256 id.  It exists to pick CHUNK_MIN/AVG/MAX by
 * measurement (doc/chunking.md) and to catch a slow chunker.
 *
 *   chunk_bench FILE        throughput: one pass chunk-only, one chunk+hash
 *   chunk_bench -e N FILE   dedup after edits: at N evenly spaced places,
 *                           insert 10 bytes / delete 7 bytes, and count the
 *                           chunks and bytes of the edited file that are not
 *                           chunks of the original (what a sync must upload)
 *
 * Output is "name value" lines, one per measure, easy to read and to parse
 * (bench/run-chunk does).  MB is 10^6 bytes. */
#include "config.h"
#include "core/blockid.h"
#include "core/chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (16u * 1024 * 1024)
#define MANIFEST_ENTRY 36 /* 32-byte id + 4-byte length */
#define INSERT_LEN 10
#define DELETE_LEN 7

/* A fixed id key: 32 bytes (the terminating NUL is not used). */
static const uint8_t bench_key[BLOCKID_KEY_SIZE + 1] = "peercling-bench-key-0123456789ab";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "chunk_bench: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

struct pass {
	uint64_t bytes, chunks;
	uint8_t check; /* folds the ids so the hashing is not optimised away */
	double seconds;
};

/* One streaming pass over path: read() into a big buffer, cut every chunk
 * that has CHUNK_MAX bytes of look-ahead (or ends the file), carry the
 * unconsumed tail to the front of the buffer for the next read. */
static void run_pass(const char *path, uint8_t *buf, int hash, struct pass *p)
{
	size_t have = 0;
	int eof = 0;
	int fd = open(path, O_RDONLY);
	double t0;

	if (fd < 0)
		die("cannot open", path);
	memset(p, 0, sizeof(*p));
	t0 = now();
	while (!eof || have > 0) {
		size_t off = 0;

		while (!eof && have < READ_BUF) {
			ssize_t r = read(fd, buf + have, READ_BUF - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("cannot read", path);
			if (r == 0)
				eof = 1;
			have += (size_t)r;
		}
		while (off < have && (eof || have - off >= CHUNK_MAX)) {
			size_t c = chunk_next(buf + off, have - off);

			if (hash) {
				blockid_t id;
				blockid_compute(&id, bench_key, buf + off, c);
				p->check ^= id.b[0];
			}
			p->chunks++;
			p->bytes += c;
			off += c;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	p->seconds = now() - t0;
	close(fd);
}

static void throughput(const char *path)
{
	uint8_t *buf = malloc(READ_BUF);
	struct pass c, h;

	if (!buf) {
		fprintf(stderr, "chunk_bench: out of memory\n");
		exit(1);
	}
	run_pass(path, buf, 0, &c);
	run_pass(path, buf, 1, &h);
	printf("sizes %u/%u/%u\n", CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
	printf("bytes %llu\n", (unsigned long long)c.bytes);
	printf("chunks %llu\n", (unsigned long long)c.chunks);
	printf("avg_chunk %.0f\n", c.chunks ? (double)c.bytes / (double)c.chunks : 0.0);
	printf("manifest_bytes_per_gib %.0f\n",
	       c.bytes ? (double)c.chunks * MANIFEST_ENTRY * 1073741824.0 / (double)c.bytes : 0.0);
	printf("chunk_seconds %.3f\n", c.seconds);
	printf("chunk_mbps %.0f\n", (double)c.bytes / c.seconds / 1e6);
	printf("chunk_hash_seconds %.3f\n", h.seconds);
	printf("chunk_hash_mbps %.0f\n", (double)h.bytes / h.seconds / 1e6);
	printf("check %u\n", h.check);
	free(buf);
}

/* --- dedup after edits -------------------------------------------------- */

static uint8_t *load(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *data;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		die("cannot open", path);
	*len = (size_t)st.st_size;
	data = malloc(*len ? *len : 1);
	if (!data) {
		fprintf(stderr, "chunk_bench: out of memory\n");
		exit(1);
	}
	while (got < *len) {
		ssize_t r = read(fd, data + got, *len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("cannot read", path);
		got += (size_t)r;
	}
	close(fd);
	return data;
}

static int id_cmp(const void *a, const void *b)
{
	return blockid_cmp(a, b);
}

static int off_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

struct original {
	const uint8_t *data;
	size_t len, n;
	size_t *cuts;	/* n + 1 chunk boundaries, 0 first and len last */
	blockid_t *ids; /* sorted */
};

struct edit_result {
	size_t chunks, bytes;
};

/* Re-chunks the original with delta bytes inserted (delta > 0, the bytes of
 * ins) or deleted (delta < 0) at pos, from the start of the chunk holding pos
 * until a cut lands on a cut of the original: after it, every chunk is the
 * same.  Counts the chunks (and their bytes) that are not in the original. */
static struct edit_result edit_once(const struct original *o, size_t pos, long delta,
				    const uint8_t *ins)
{
	struct edit_result res = {0, 0};
	size_t i, start, tail, wlen, off = 0;
	size_t win = 64 * (size_t)CHUNK_MAX;
	size_t skip = delta < 0 ? (size_t)-delta : 0, add = delta > 0 ? (size_t)delta : 0;
	int truncated;
	uint8_t *w;

	/* The chunk that holds pos: the last cut <= pos. */
	for (i = 0; i + 1 < o->n && o->cuts[i + 1] <= pos; i++)
		;
	start = o->cuts[i];
	tail = o->len - pos - skip;
	if (tail > win)
		tail = win;
	wlen = pos - start + add + tail;
	w = malloc(wlen);
	memcpy(w, o->data + start, pos - start);
	memcpy(w + pos - start, ins, add);
	memcpy(w + pos - start + add, o->data + pos + skip, tail);

	truncated = pos + skip + tail < o->len;
	while (off < wlen) {
		size_t c, old_end;
		blockid_t id;

		if (truncated && wlen - off < CHUNK_MAX) {
			fprintf(stderr, "chunk_bench: no resync within %zu bytes\n", win);
			break;
		}
		c = chunk_next(w + off, wlen - off);
		blockid_compute(&id, bench_key, w + off, c);
		if (!bsearch(&id, o->ids, o->n, sizeof(id), id_cmp)) {
			res.chunks++;
			res.bytes += c;
		}
		off += c;
		/* Back in step once a cut at or past the edit falls on an old cut:
		 * what follows it is the same bytes, so the same chunks. */
		if (start + off >= pos + add) {
			old_end = start + off + skip - add;
			if (bsearch(&old_end, o->cuts, o->n + 1, sizeof(size_t), off_cmp))
				break;
		}
	}
	free(w);
	return res;
}

static void dedup(const char *path, int edits)
{
	static const uint8_t ins[INSERT_LEN] = "0123456789";
	struct original o;
	size_t off = 0;
	struct edit_result sum[2] = {{0, 0}, {0, 0}}, max[2] = {{0, 0}, {0, 0}};
	double t0 = now();
	int k, kind;

	o.data = load(path, &o.len);
	if (o.len < 4 * (size_t)CHUNK_MAX) {
		fprintf(stderr, "chunk_bench: %s is too small for -e\n", path);
		exit(1);
	}
	o.cuts = malloc((o.len / CHUNK_MIN + 2) * sizeof(*o.cuts));
	o.ids = malloc((o.len / CHUNK_MIN + 2) * sizeof(*o.ids));
	o.n = 0;
	o.cuts[0] = 0;
	while (off < o.len) {
		size_t c = chunk_next(o.data + off, o.len - off);
		blockid_compute(&o.ids[o.n], bench_key, o.data + off, c);
		off += c;
		o.cuts[++o.n] = off;
	}
	qsort(o.ids, o.n, sizeof(*o.ids), id_cmp);

	for (k = 0; k < edits; k++) {
		/* Evenly spaced, away from the ends, at odd offsets. */
		size_t pos = (size_t)((double)o.len * (k + 0.5) / edits) | 1;
		if (pos + DELETE_LEN >= o.len)
			pos = o.len / 2 + 1;
		for (kind = 0; kind < 2; kind++) {
			struct edit_result r =
			    edit_once(&o, pos, kind ? -DELETE_LEN : INSERT_LEN, ins);
			sum[kind].chunks += r.chunks;
			sum[kind].bytes += r.bytes;
			if (r.chunks > max[kind].chunks)
				max[kind].chunks = r.chunks;
			if (r.bytes > max[kind].bytes)
				max[kind].bytes = r.bytes;
		}
	}
	printf("sizes %u/%u/%u\n", CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
	printf("bytes %zu\n", o.len);
	printf("chunks %zu\n", o.n);
	printf("avg_chunk %.0f\n", (double)o.len / (double)o.n);
	printf("edits %d\n", edits);
	for (kind = 0; kind < 2; kind++) {
		const char *name = kind ? "delete7" : "insert10";
		printf("%s_new_chunks_avg %.2f\n", name, (double)sum[kind].chunks / edits);
		printf("%s_new_chunks_max %zu\n", name, max[kind].chunks);
		printf("%s_new_bytes_avg %.0f\n", name, (double)sum[kind].bytes / edits);
		printf("%s_new_bytes_max %zu\n", name, max[kind].bytes);
	}
	printf("seconds %.3f\n", now() - t0);
	free(o.cuts);
	free(o.ids);
	free((void *)o.data);
}

int main(int argc, char **argv)
{
	int edits = 0, opt;

	while ((opt = getopt(argc, argv, "e:")) != -1) {
		if (opt == 'e' && atoi(optarg) > 0) {
			edits = atoi(optarg);
			continue;
		}
		fprintf(stderr, "usage: chunk_bench [-e EDITS] FILE\n");
		return 2;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: chunk_bench [-e EDITS] FILE\n");
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "chunk_bench: sodium_init failed\n");
		return 1;
	}
	if (edits)
		dedup(argv[optind], edits);
	else
		throughput(argv[optind]);
	return 0;
}
