/* test_fs: the mount's working tree without FUSE: content round-trips
 * through flush and commit, the journal brings back what a crash would lose,
 * and a small change in a big file re-chunks only around it. */
#include "config.h"
#include "core/error.h"
#include "core/fetch.h"
#include "core/manifest.h"
#include "core/seal.h"
#include "core/store.h"
#include "core/tree.h"
#include "core/volume.h"
#include "fs/fs.h"
#include "fs/early.h"
#include "fs/journal.h"
#include "fs/overlay.h"
#include "tap.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char *home;
static int volcount;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = next_rand();
		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

static struct volume *new_volume(void)
{
	char name[32];
	struct volume *v = NULL;
	struct volume_create_opts o = { 0 };
	snprintf(name, sizeof(name), "v%d", volcount++);
	CHECK_EQ(volume_create(&v, name, &o), 0);
	return v;
}

static struct fs_inode *mkfile(struct fs *fs, struct fs_inode *dir, const char *name)
{
	struct fs_inode *n = NULL;
	pthread_mutex_lock(&fs->lock);
	CHECK_EQ(fs_create_node(fs, dir, name, S_IFREG | 0644, NULL, &n), 0);
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static struct fs_inode *lookup(struct fs *fs, struct fs_inode *dir, const char *name)
{
	return fs_table_lookup(fs->table, dir, name);
}

static int content_is(struct fs *fs, struct fs_inode *n, const uint8_t *want, size_t len)
{
	uint8_t *got = malloc(len + 16);
	long r = fs_read(fs, n, got, len + 16, 0);
	int ok = r == (long)len && memcmp(got, want, len) == 0;
	free(got);
	return ok;
}

/* A new volume and working tree with name holding len random bytes
 * (*data, malloc'd), written but not flushed. */
static struct fs_inode *random_file(struct volume **v, struct fs **fs, uint8_t **data, size_t len,
				    const char *name)
{
	*v = new_volume();
	*fs = NULL;
	*data = malloc(len);
	fill_random(*data, len);
	CHECK_EQ(fs_new(fs, *v), 0);
	struct fs_inode *f = mkfile(*fs, (*fs)->root, name);
	CHECK_EQ(fs_write(*fs, f, *data, len, 0), (long)len);
	return f;
}

static void written_content_survives_commit_and_reload(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	size_t len = 3 * 1024 * 1024 + 17;
	uint8_t *data = malloc(len);
	fill_random(data, len);
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *f = mkfile(fs, fs->root, "big.bin");
	CHECK_EQ(fs_write(fs, f, data, len, 0), (long)len);
	CHECK(content_is(fs, f, data, len));
	CHECK_EQ(fs_flush(fs, f, 1), 0);
	CHECK(content_is(fs, f, data, len));
	int made = 0;
	CHECK_EQ(fs_commit(fs, "test", &made), 0);
	CHECK_EQ(made, 1);
	CHECK_EQ(fs_commit(fs, "again", &made), 0);
	CHECK_EQ(made, 0); /* nothing changed: no empty commit */
	fs_free(fs);
	CHECK_EQ(fs_new(&fs, v), 0);
	f = lookup(fs, fs->root, "big.bin");
	CHECK(f != NULL);
	if (f)
		CHECK(content_is(fs, f, data, len));
	fs_free(fs);
	volume_free(v);
	free(data);
}

static void the_journal_restores_what_was_not_committed(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	const char text[] = "synced but never committed";
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *d = NULL, *f;
	pthread_mutex_lock(&fs->lock);
	CHECK_EQ(fs_create_node(fs, fs->root, "dir", S_IFDIR | 0755, NULL, &d), 0);
	pthread_mutex_unlock(&fs->lock);
	f = mkfile(fs, d, "note.txt");
	CHECK_EQ(fs_write(fs, f, text, sizeof(text), 0), (long)sizeof(text));
	CHECK_EQ(fs_flush(fs, f, 1), 0);
	/* A crash: no commit, no cleanup beyond freeing memory. */
	fs_free(fs);
	CHECK_EQ(fs_new(&fs, v), 0);
	d = lookup(fs, fs->root, "dir");
	f = d ? lookup(fs, d, "note.txt") : NULL;
	CHECK(f != NULL);
	if (f)
		CHECK(content_is(fs, f, (const uint8_t *)text, sizeof(text)));
	/* Recovery made a commit of its own. */
	git_oid tree, commit;
	CHECK_EQ(tree_head(&tree, &commit, v->repo, VOLUME_REF), 0);
	fs_free(fs);
	volume_free(v);
}

static int files_in(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* An fsync of a lot of data keeps it in the overlay, named in the journal:
 * a crash brings it back, even after a rename and a commit (which does not
 * hold unflushed data) came in between; a close cuts it into blocks and
 * the next commit drops the kept file. */
static void an_fsync_of_much_data_keeps_it_through_a_crash(void)
{
	struct volume *v;
	struct fs *fs;
	uint8_t *data;
	size_t len = 6u << 20;
	struct fs_inode *f = random_file(&v, &fs, &data, len, "kept.bin");
	CHECK_EQ(fs_flush(fs, f, 1), 0);
	CHECK_EQ(fs->kept_flushes, 1);
	CHECK(f->ov != NULL); /* not cut yet */
	CHECK_EQ(files_in(fs->overlay_dir), 1);
	pthread_mutex_lock(&fs->lock);
	CHECK_EQ(fs_journal_op(fs, FS_J_RENAME, 0, f, "moved.bin"), 0);
	fs_inode_unlink(fs->table, f);
	CHECK_EQ(fs_inode_link(fs->table, fs->root, f, "moved.bin"), 0);
	pthread_mutex_unlock(&fs->lock);
	CHECK_EQ(fs_commit(fs, "meanwhile", NULL), 0);
	fs_free(fs); /* a crash: nothing flushed */

	CHECK_EQ(fs_new(&fs, v), 0);
	f = lookup(fs, fs->root, "moved.bin");
	CHECK(f != NULL);
	if (f)
		CHECK(content_is(fs, f, data, len));
	CHECK_EQ(files_in(fs->overlay_dir), 0); /* recovered and committed */

	struct fs_inode *g = mkfile(fs, fs->root, "second.bin");
	CHECK_EQ(fs_write(fs, g, data, len, 0), (long)len);
	CHECK_EQ(fs_flush(fs, g, 1), 0);
	CHECK_EQ(files_in(fs->overlay_dir), 1);
	CHECK_EQ(fs_flush(fs, g, 0), 0); /* close: cut into blocks */
	CHECK(g->ov == NULL && g->m && g->m->size == len);
	CHECK_EQ(files_in(fs->overlay_dir), 1); /* until a commit holds the blocks */
	CHECK_EQ(fs_commit(fs, "closed", NULL), 0);
	CHECK_EQ(files_in(fs->overlay_dir), 0);
	fs_free(fs);
	CHECK_EQ(fs_new(&fs, v), 0);
	g = lookup(fs, fs->root, "second.bin");
	CHECK(g != NULL);
	if (g)
		CHECK(content_is(fs, g, data, len));
	fs_free(fs);
	volume_free(v);
	free(data);
}

/* FS_J_DATA bodies come from a file on disk: anything malformed is refused
 * whole, never half-applied. */
static void journal_data_bodies_round_trip_and_bad_ones_are_refused(void)
{
	struct fs_range r[3] = { { 0, 10 }, { 20, 4096 }, { 5000, 9000 } };
	uint8_t *b = NULL;
	size_t len = 0, n = 0;
	uint64_t size = 0, base = 0;
	struct fs_range *got = NULL;
	CHECK_EQ(fs_journal_data_encode(&b, &len, 9000, 3, r, 3), 0);
	CHECK_EQ(fs_journal_data_decode(b, len, &size, &base, &got, &n), 0);
	CHECK(size == 9000 && base == 3 && n == 3 && got && !memcmp(got, r, sizeof(r)));
	free(got);
	for (size_t cut = 0; cut < len; cut++)
		CHECK_EQ(fs_journal_data_decode(b, cut, &size, &base, &got, &n), -EBADMSG);
	struct fs_range bad[][2] = {
		{ { 0, 10 }, { 5, 20 } },  /* overlapping */
		{ { 30, 40 }, { 0, 10 } }, /* unsorted */
		{ { 0, 0 }, { 1, 2 } },    /* empty */
		{ { 0, 10 }, { 20, 9001 } }, /* past the size */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *bb = NULL;
		size_t bl = 0;
		CHECK_EQ(fs_journal_data_encode(&bb, &bl, 9000, 0, bad[i], 2), 0);
		CHECK_EQ(fs_journal_data_decode(bb, bl, &size, &base, &got, &n), -EBADMSG);
		free(bb);
	}
	uint8_t *bb = NULL;
	size_t bl = 0;
	CHECK_EQ(fs_journal_data_encode(&bb, &bl, 10, 11, r, 1), 0); /* base past size */
	CHECK_EQ(fs_journal_data_decode(bb, bl, &size, &base, &got, &n), -EBADMSG);
	free(bb);
	/* Random damage: refused or well-formed, never a crash. */
	for (int k = 0; k < 20000; k++) {
		uint8_t m[128];
		size_t ml = len < sizeof(m) ? len : sizeof(m);
		memcpy(m, b, ml);
		m[next_rand() % ml] ^= (uint8_t)(1 + next_rand() % 255);
		got = NULL;
		if (fs_journal_data_decode(m, ml, &size, &base, &got, &n) == 0) {
			CHECK(base <= size);
			for (size_t i = 0; i < n; i++)
				CHECK(got[i].lo < got[i].hi && got[i].hi <= size &&
				      (!i || got[i].lo >= got[i - 1].hi));
		}
		free(got);
	}
	free(b);
}

static void a_journal_already_in_a_commit_is_not_replayed_again(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *f = mkfile(fs, fs->root, "a");
	CHECK_EQ(fs_commit(fs, "one", NULL), 0);
	/* rename a -> b, then a new a; commit; then fake a crash between the
	 * commit and the emptying of the journal by putting the old records
	 * back: replaying them would move the new a over b. */
	char *jpath = NULL;
	volume_file(&jpath, v, "journal");
	pthread_mutex_lock(&fs->lock);
	CHECK_EQ(fs_journal_op(fs, FS_J_RENAME, 0, f, "b"), 0);
	fs_inode_unlink(fs->table, f);
	CHECK_EQ(fs_inode_link(fs->table, fs->root, f, "b"), 0);
	pthread_mutex_unlock(&fs->lock);
	struct fs_inode *a2 = mkfile(fs, fs->root, "a");
	CHECK_EQ(fs_write(fs, a2, "new", 3, 0), 3);
	CHECK_EQ(fs_flush(fs, a2, 1), 0);
	FILE *jf = fopen(jpath, "rb");
	uint8_t saved[65536];
	size_t saved_len = jf ? fread(saved, 1, sizeof(saved), jf) : 0;
	if (jf)
		fclose(jf);
	CHECK_EQ(fs_commit(fs, "two", NULL), 0);
	fs_free(fs);
	jf = fopen(jpath, "wb");
	CHECK(jf && fwrite(saved, 1, saved_len, jf) == saved_len);
	if (jf)
		fclose(jf);
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *a = lookup(fs, fs->root, "a"), *b = lookup(fs, fs->root, "b");
	CHECK(a && b);
	if (a)
		CHECK(content_is(fs, a, (const uint8_t *)"new", 3));
	if (b)
		CHECK_EQ(b->size, 0);
	free(jpath);
	fs_free(fs);
	volume_free(v);
}

static void a_small_write_in_a_big_file_rechunks_only_around_it(void)
{
	struct volume *v;
	struct fs *fs;
	uint8_t *data;
	size_t len = 64u << 20;
	struct fs_inode *f = random_file(&v, &fs, &data, len, "huge");
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	size_t before = f->m->nblocks;
	memcpy(data + len / 2, "PATCH", 5);
	CHECK_EQ(fs_write(fs, f, "PATCH", 5, len / 2), 5);
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	printf("# 64 MiB file, 5-byte write: %llu bytes re-chunked, %llu new blocks, "
	       "%llu reused of %zu\n",
	       (unsigned long long)fs->last_flush.bytes_chunked,
	       (unsigned long long)fs->last_flush.blocks_new,
	       (unsigned long long)fs->last_flush.blocks_reused, before);
	CHECK(fs->last_flush.bytes_chunked <= 4u << 20); /* one window, not 64 MiB */
	CHECK(fs->last_flush.blocks_new <= 2);
	CHECK_EQ(f->m->nblocks, before);
	CHECK(content_is(fs, f, data, len));
	/* An append re-chunks only the tail. */
	CHECK_EQ(fs_write(fs, f, "TAIL", 4, len), 4);
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	CHECK(fs->last_flush.bytes_chunked <= 4u << 20);
	fs_free(fs);
	volume_free(v);
	free(data);
}

struct id_walk {
	blockid_t ids[1024];
	size_t n;
};

static int note_id(const blockid_t *id, uint64_t size, void *payload)
{
	struct id_walk *w = payload;
	(void)size;
	if (w->n < 1024)
		w->ids[w->n++] = *id;
	return 0;
}

/* The blocks are hashed on every core at once, and go up in the order
 * they became dirty: that must be the file's order, or a sequential reader
 * of the cloud finds its blocks scattered over many requests. */
static void a_file_becomes_dirty_in_its_own_order(void)
{
	struct volume *v;
	struct fs *fs;
	uint8_t *data;
	struct fs_inode *f = random_file(&v, &fs, &data, 24u << 20, "big");
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	struct id_walk *w = calloc(1, sizeof(*w));
	CHECK_EQ(store_foreach_dirty(v->store, note_id, w), 0);
	CHECK(f->m->nblocks > 100);
	CHECK_EQ(w->n, f->m->nblocks);
	size_t same = 0;
	for (size_t i = 0; i < w->n && i < f->m->nblocks; i++)
		same += !blockid_cmp(&w->ids[i], &f->m->blocks[i].id);
	CHECK_EQ(same, f->m->nblocks);
	free(w);
	fs_free(fs);
	volume_free(v);
	free(data);
}

/* A source that serves one manifest's blocks and notes, for each request,
 * where the block starts in the file and whether it was readahead. */
struct noting_source {
	const struct manifest *m;
	const uint8_t *data;
	pthread_mutex_t lock;
	uint64_t ahead_from[2]; /* the furthest readahead seen in each half */
};

static int noting_get(void *payload, const blockid_t *id, int flags, uint8_t **out, size_t *len)
{
	struct noting_source *src = payload;
	uint64_t off = 0;
	for (size_t i = 0; i < src->m->nblocks; off += src->m->blocks[i++].len) {
		if (blockid_cmp(&src->m->blocks[i].id, id))
			continue;
		*len = src->m->blocks[i].len;
		*out = malloc(*len);
		memcpy(*out, src->data + off, *len);
		int half = off >= src->m->size / 2;
		pthread_mutex_lock(&src->lock);
		if ((flags & FETCH_NO_WAIT) && off > src->ahead_from[half])
			src->ahead_from[half] = off;
		pthread_mutex_unlock(&src->lock);
		return 0;
	}
	return -ENOENT;
}

/* Two programs read one file at once, each from start to end of its half,
 * their reads interleaved: each is a sequential reader of its own, with
 * readahead running ahead of it, however far apart they are. */
static void two_readers_at_once_both_get_readahead(void)
{
	struct volume *v;
	struct fs *fs;
	uint8_t *data;
	/* Each reads 20 MiB: past the readahead its first read queued. */
	size_t len = 64u << 20, step = 128u << 10, upto = 20u << 20;
	struct fs_inode *f = random_file(&v, &fs, &data, len, "shared");
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	/* Only the source has the blocks now. */
	for (size_t i = 0; i < f->m->nblocks; i++) {
		store_set_clean(v->store, &f->m->blocks[i].id);
		CHECK_EQ(store_remove(v->store, &f->m->blocks[i].id), 0);
	}
	struct noting_source src = { .m = f->m, .data = data };
	pthread_mutex_init(&src.lock, NULL);
	struct fetch_source fsrc = { "noting", noting_get, &src };
	CHECK_EQ(fetch_add_source(v->fetch, &fsrc), 0);
	uint8_t *buf = malloc(step);
	for (size_t off = 0; off < upto; off += step) {
		CHECK_EQ(fs_read(fs, f, buf, step, off), (long)step);
		CHECK(!memcmp(buf, data + off, step));
		CHECK_EQ(fs_read(fs, f, buf, step, len / 2 + off), (long)step);
		CHECK(!memcmp(buf, data + len / 2 + off, step));
	}
	/* Readahead went past where each reader stopped (with one stream for
	 * the file, the one behind got none: the other's marked its window
	 * queued).  How far depends on how fast the threads take the queue. */
	int ahead = 0;
	for (int i = 0; i < 1000 && !ahead; i++) {
		pthread_mutex_lock(&src.lock);
		ahead = src.ahead_from[0] >= upto && src.ahead_from[1] >= len / 2 + upto;
		pthread_mutex_unlock(&src.lock);
		if (!ahead)
			usleep(10000);
	}
	CHECK(ahead);
	fs_free(fs); /* waits for the prefetch threads */
	pthread_mutex_destroy(&src.lock);
	free(buf);
	volume_free(v);
	free(data);
}

static int same_blocks(const struct manifest *a, const struct manifest *b)
{
	if (a->nblocks != b->nblocks)
		return 0;
	for (size_t i = 0; i < a->nblocks; i++)
		if (a->blocks[i].len != b->blocks[i].len ||
		    memcmp(a->blocks[i].id.b, b->blocks[i].id.b, BLOCKID_SIZE))
			return 0;
	return 1;
}

static void write_in_steps(struct fs *fs, struct fs_inode *f, const uint8_t *data, size_t len,
			   int backwards)
{
	size_t step = 1u << 20;
	for (size_t k = 0; k < len / step; k++) {
		size_t off = (backwards ? len / step - 1 - k : k) * step;
		CHECK_EQ(fs_write(fs, f, data + off, step, off), (long)step);
	}
}

/* Blocks cut while a file is written must be exactly those a flush would
 * cut, and a write back into them must not let stale ones through. */
static void blocks_cut_while_writing_match_a_cut_at_flush(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	size_t len = 40u << 20;
	uint8_t *data = malloc(len), *patched = malloc(len);
	fill_random(data, len);
	memcpy(patched, data, len);
	memcpy(patched + (1u << 20) + 77, "PATCH", 5);
	CHECK_EQ(fs_new(&fs, v), 0);

	struct fs_inode *a = mkfile(fs, fs->root, "forward");
	write_in_steps(fs, a, data, len, 0);
	fs_early_wait(fs->early);
	CHECK(a->ov && a->ov->early_end >= len / 2);
	struct fs_inode *b = mkfile(fs, fs->root, "backward");
	write_in_steps(fs, b, data, len, 1);
	fs_early_wait(fs->early);
	struct fs_inode *c = mkfile(fs, fs->root, "patched");
	write_in_steps(fs, c, data, 30u << 20, 0);
	fs_early_wait(fs->early);
	CHECK(c->ov && c->ov->early_end > (1u << 20) + 77);
	uint64_t epoch = c->ov ? c->ov->early_epoch : 0;
	CHECK_EQ(fs_write(fs, c, "PATCH", 5, (1u << 20) + 77), 5);
	CHECK(c->ov && c->ov->early_epoch != epoch);
	CHECK_EQ(fs_write(fs, c, patched + (30u << 20), len - (30u << 20), 30u << 20),
		 (long)(len - (30u << 20)));
	fs_early_wait(fs->early);

	CHECK_EQ(fs_flush(fs, a, 0), 0); /* close: cut what is left */
	CHECK(fs->last_flush.bytes_early >= len / 2);
	CHECK(fs->last_flush.bytes_chunked <= len - fs->last_flush.bytes_early);
	CHECK_EQ(fs_flush(fs, b, 0), 0);
	CHECK_EQ(fs_flush(fs, c, 0), 0);
	CHECK(a->m && b->m && same_blocks(a->m, b->m));
	CHECK(content_is(fs, a, data, len));
	CHECK(content_is(fs, c, patched, len));
	CHECK_EQ(fs_commit(fs, "early", NULL), 0);
	fs_free(fs);

	CHECK_EQ(fs_new(&fs, v), 0);
	a = lookup(fs, fs->root, "forward");
	c = lookup(fs, fs->root, "patched");
	CHECK(a && c);
	if (a && c) {
		CHECK(content_is(fs, a, data, len));
		CHECK(content_is(fs, c, patched, len));
	}
	fs_free(fs);
	volume_free(v);
	free(data);
	free(patched);
}

static void truncate_and_sparse_writes_read_back_zeros(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	size_t len = 1 << 20;
	uint8_t *data = malloc(len), *want = calloc(1, 6u << 20);
	fill_random(data, len);
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *f = mkfile(fs, fs->root, "sparse");
	CHECK_EQ(fs_write(fs, f, data, len, 0), (long)len);
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	CHECK_EQ(fs_truncate(fs, f, 1000), 0);
	CHECK_EQ(fs_truncate(fs, f, 2000), 0);
	CHECK_EQ(fs_write(fs, f, "end", 3, (5u << 20)), 3);
	memcpy(want, data, 1000);
	memcpy(want + (5u << 20), "end", 3);
	CHECK_EQ(f->size, (5u << 20) + 3);
	CHECK(content_is(fs, f, want, (5u << 20) + 3));
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	CHECK(content_is(fs, f, want, (5u << 20) + 3));
	/* The zeros became holes: no block holds them. */
	size_t holes = 0;
	for (size_t i = 0; i < f->m->nblocks; i++)
		holes += blockid_is_zero(&f->m->blocks[i].id);
	CHECK(holes >= 10);
	fs_free(fs);
	volume_free(v);
	free(data);
	free(want);
}

static void a_corrupt_block_reads_as_eio_not_wrong_data(void)
{
	struct volume *v = new_volume();
	struct fs *fs = NULL;
	size_t len = 200000;
	uint8_t *data = malloc(len), *buf = malloc(len);
	fill_random(data, len);
	CHECK_EQ(fs_new(&fs, v), 0);
	struct fs_inode *f = mkfile(fs, fs->root, "c");
	CHECK_EQ(fs_write(fs, f, data, len, 0), (long)len);
	CHECK_EQ(fs_flush(fs, f, 0), 0);
	CHECK_EQ(fs_commit(fs, "c", NULL), 0);
	char hex[BLOCKID_HEX_SIZE], *path = NULL;
	blockid_to_hex(&f->m->blocks[0].id, hex);
	CHECK(asprintf(&path, "%s/blocks/%.2s/%s", v->dir, hex, hex) > 0);
	fs_free(fs);
	FILE *bf = fopen(path, "r+b");
	CHECK(bf != NULL);
	if (bf) {
		fseek(bf, 100, SEEK_SET);
		fputc(0x5a ^ data[100], bf);
		fclose(bf);
	}
	CHECK_EQ(fs_new(&fs, v), 0);
	f = lookup(fs, fs->root, "c");
	CHECK(f != NULL);
	if (f)
		CHECK_EQ(fs_read(fs, f, buf, 4096, 0), -EIO);
	free(path);
	fs_free(fs);
	volume_free(v);
	free(data);
	free(buf);
}

int main(void)
{
	seal_init();
	git_libgit2_init();
	home = tap_tmpdir();
	setenv("PEERCLING_HOME", home, 1);
	TEST(written_content_survives_commit_and_reload);
	TEST(the_journal_restores_what_was_not_committed);
	TEST(an_fsync_of_much_data_keeps_it_through_a_crash);
	TEST(journal_data_bodies_round_trip_and_bad_ones_are_refused);
	TEST(a_journal_already_in_a_commit_is_not_replayed_again);
	TEST(a_small_write_in_a_big_file_rechunks_only_around_it);
	TEST(a_file_becomes_dirty_in_its_own_order);
	TEST(two_readers_at_once_both_get_readahead);
	TEST(blocks_cut_while_writing_match_a_cut_at_flush);
	TEST(truncate_and_sparse_writes_read_back_zeros);
	TEST(a_corrupt_block_reads_as_eio_not_wrong_data);
	tap_rmrf(home);
	free(home);
	git_libgit2_shutdown();
	TAP_DONE();
}
