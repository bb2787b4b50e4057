/* test_prefetch: a file queued to be fetched whole comes into the store
 * with no more reads, in order, without what is stored already; a reader's
 * readahead goes before it and always finds a thread free; only so many
 * files (and bytes) wait at once; a file whose blocks keep failing is
 * given up. */
#include "config.h"
#include "core/blockid.h"
#include "core/fetch.h"
#include "core/seal.h"
#include "core/store.h"
#include "fs/bcache.h"
#include "fs/prefetch.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define NBLOCKS 40
#define BLEN 1000

static uint8_t idkey[BLOCKID_KEY_SIZE];

/* A source that has NBLOCKS blocks, notes the order it is asked in, and
 * holds every request while its gate is closed. */
struct source {
	pthread_mutex_t lock;
	pthread_cond_t opened;
	int closed;
	int waiting; /* requests held at the gate */
	int fail;    /* answer every request with -EIO */
	blockid_t ids[NBLOCKS];
	uint8_t data[NBLOCKS][BLEN];
	blockid_t asked[4 * NBLOCKS];
	int flags[4 * NBLOCKS];
	int nasked;
};

static int source_get(void *payload, const blockid_t *id, int flags, uint8_t **out,
		      size_t *len)
{
	struct source *s = payload;
	pthread_mutex_lock(&s->lock);
	if (s->nasked < 4 * NBLOCKS) {
		s->asked[s->nasked] = *id;
		s->flags[s->nasked++] = flags;
	}
	s->waiting++;
	while (s->closed)
		pthread_cond_wait(&s->opened, &s->lock);
	s->waiting--;
	int fail = s->fail;
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; fail == 0 && i < NBLOCKS; i++) {
		if (!blockid_cmp(&s->ids[i], id)) {
			*out = malloc(BLEN);
			memcpy(*out, s->data[i], BLEN);
			*len = BLEN;
			return 0;
		}
	}
	return fail ? -EIO : -ENOENT;
}

struct rig {
	char *dir;
	struct store *st;
	struct fetch *f;
	struct fs_bcache *c;
	struct fs_prefetch *p;
	struct source src;
};

static void setup(struct rig *r, int threads)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->src.lock, NULL);
	pthread_cond_init(&r->src.opened, NULL);
	for (int i = 0; i < NBLOCKS; i++) {
		for (int k = 0; k < BLEN; k++)
			r->src.data[i][k] = (uint8_t)(i * 7 + k);
		blockid_compute(&r->src.ids[i], idkey, r->src.data[i], BLEN);
	}
	r->dir = tap_tmpdir();
	CHECK_EQ(store_open(&r->st, r->dir, idkey, 0), 0);
	CHECK_EQ(fetch_new(&r->f, r->st), 0);
	struct fetch_source fs = { "fake", source_get, &r->src };
	CHECK_EQ(fetch_add_source(r->f, &fs), 0);
	CHECK_EQ(fs_bcache_new(&r->c, 64, 1 << 20), 0);
	CHECK_EQ(fs_prefetch_new(&r->p, r->f, r->c, threads), 0);
}

static void set_gate(struct source *s, int closed)
{
	pthread_mutex_lock(&s->lock);
	s->closed = closed;
	pthread_cond_broadcast(&s->opened);
	pthread_mutex_unlock(&s->lock);
}

static int waiting(struct source *s)
{
	pthread_mutex_lock(&s->lock);
	int n = s->waiting;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void teardown(struct rig *r)
{
	set_gate(&r->src, 0);
	fs_prefetch_free(r->p);
	fs_bcache_free(r->c);
	fetch_free(r->f);
	store_free(r->st);
	tap_rmrf(r->dir);
	free(r->dir);
	pthread_cond_destroy(&r->src.opened);
	pthread_mutex_destroy(&r->src.lock);
}

static int all_stored(struct rig *r)
{
	for (int i = 0; i < NBLOCKS; i++)
		if (!store_has(r->st, &r->src.ids[i]))
			return 0;
	return 1;
}

/* Polls cond for up to 10 s. */
static int eventually(int (*cond)(struct rig *), struct rig *r)
{
	for (int i = 0; i < 2000; i++) {
		if (cond(r))
			return 1;
		usleep(5000);
	}
	return cond(r);
}

static void a_file_queued_whole_comes_with_no_more_reads(void)
{
	struct rig r;
	setup(&r, 1);
	for (int i = 0; i < 10; i++) { /* what a few reads brought already */
		blockid_t id;
		CHECK_EQ(store_put_data(r.st, &id, r.src.data[i * 4], BLEN, 0), 0);
	}
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, NBLOCKS, NBLOCKS * BLEN, UINT64_MAX), 0);
	CHECK(eventually(all_stored, &r));
	/* One thread: in file order, each block once, none of those stored. */
	pthread_mutex_lock(&r.src.lock);
	CHECK_EQ(r.src.nasked, NBLOCKS - 10);
	int k = 0;
	for (int i = 0; i < NBLOCKS && k < r.src.nasked; i++) {
		if (i % 4 == 0)
			continue;
		CHECK(!blockid_cmp(&r.src.asked[k], &r.src.ids[i]));
		/* into the store only, and a source may bring the next ones */
		CHECK_EQ(r.src.flags[k] & (FETCH_SEQUENTIAL | FETCH_BACKGROUND),
			 FETCH_SEQUENTIAL | FETCH_BACKGROUND);
		k++;
	}
	pthread_mutex_unlock(&r.src.lock);
	teardown(&r);
}

static int one_waiting(struct rig *r)
{
	return waiting(&r->src) == 1;
}

static int room_again(struct rig *r)
{
	return fs_prefetch_whole(r->p, r->src.ids, 1, 1, UINT64_MAX) == 0;
}

static void readahead_goes_before_a_whole_file_and_few_files_wait(void)
{
	struct rig r;
	setup(&r, 1);
	set_gate(&r.src, 1);
	/* The one thread takes block 0 of the job and is held at the gate. */
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, NBLOCKS / 2, 1, UINT64_MAX), 0);
	CHECK(eventually(one_waiting, &r));
	/* A reader's readahead, queued meanwhile, is next, before block 1. */
	CHECK_EQ(fs_prefetch_queue(r.p, &r.src.ids[NBLOCKS - 1], 1, FS_PREFETCH_MEMORY), 1u);
	for (int j = 1; j < 8; j++) /* 8 files wait, counting the first */
		CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids + NBLOCKS / 2, NBLOCKS / 2, 1, UINT64_MAX), 0);
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, 1, 1, UINT64_MAX), -EBUSY);
	set_gate(&r.src, 0);
	CHECK(eventually(all_stored, &r));
	pthread_mutex_lock(&r.src.lock);
	CHECK(r.src.nasked >= 3);
	CHECK(!blockid_cmp(&r.src.asked[0], &r.src.ids[0]));
	CHECK(!blockid_cmp(&r.src.asked[1], &r.src.ids[NBLOCKS - 1]));
	CHECK(!blockid_cmp(&r.src.asked[2], &r.src.ids[1]));
	/* The seven copies of the second half asked for nothing twice. */
	CHECK_EQ(r.src.nasked, NBLOCKS);
	pthread_mutex_unlock(&r.src.lock);
	/* With the jobs done (the thread drops them on its next look) there
	 * is room again. */
	CHECK(eventually(room_again, &r));
	teardown(&r);
}

static int two_waiting(struct rig *r)
{
	return waiting(&r->src) == 2;
}

static int four_waiting(struct rig *r)
{
	return waiting(&r->src) == 4;
}

static void half_the_threads_at_most_go_to_whole_files(void)
{
	struct rig r;
	setup(&r, 4);
	set_gate(&r.src, 1);
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, NBLOCKS / 2, 600, 1000), 0);
	CHECK(eventually(two_waiting, &r));
	usleep(50 * 1000);
	CHECK_EQ(waiting(&r.src), 2); /* the other two stay free... */
	/* ...for readahead, which starts at once. */
	CHECK_EQ(fs_prefetch_queue(r.p, &r.src.ids[NBLOCKS - 2], 2, FS_PREFETCH_MEMORY), 2u);
	CHECK(eventually(four_waiting, &r));
	/* 600 bytes wait; 500 more would pass max_bytes. */
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, 1, 500, 1000), -EBUSY);
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, 1, 400, 1000), 0);
	teardown(&r);
}

static int asked_four(struct rig *r)
{
	pthread_mutex_lock(&r->src.lock);
	int n = r->src.nasked;
	pthread_mutex_unlock(&r->src.lock);
	return n >= 4;
}

/* A job of 1 byte with at most 1 byte waiting is taken only when no other
 * job waits. */
static int no_job_waits(struct rig *r)
{
	return fs_prefetch_whole(r->p, r->src.ids, 1, 1, 1) == 0;
}

static void a_file_whose_blocks_keep_failing_is_given_up(void)
{
	struct rig r;
	setup(&r, 1);
	r.src.fail = 1;
	CHECK_EQ(fs_prefetch_whole(r.p, r.src.ids, NBLOCKS, NBLOCKS * BLEN, UINT64_MAX), 0);
	CHECK(eventually(asked_four, &r));
	usleep(100 * 1000);
	pthread_mutex_lock(&r.src.lock);
	CHECK_EQ(r.src.nasked, 4); /* not all 40, nor forever */
	pthread_mutex_unlock(&r.src.lock);
	CHECK(eventually(no_job_waits, &r)); /* and the job is gone */
	teardown(&r);
}

int main(void)
{
	seal_init();
	seal_random_key(idkey);
	TEST(a_file_queued_whole_comes_with_no_more_reads);
	TEST(readahead_goes_before_a_whole_file_and_few_files_wait);
	TEST(half_the_threads_at_most_go_to_whole_files);
	TEST(a_file_whose_blocks_keep_failing_is_given_up);
	TAP_DONE();
}
