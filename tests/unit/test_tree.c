/* test_tree: building git trees from flat path lists and walking them back,
 * path validation, and commits and refs, each in a fresh bare repository. */

#include "config.h"

#include <errno.h>
#include <git2.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tree.h"
#include "tests/unit/tap.h"

#define EMPTY_TREE "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#define REF "refs/heads/main"

struct repo_fx {
	char *dir;
	git_repository *repo;
};

static int repo_open(struct repo_fx *fx)
{
	fx->repo = NULL;
	fx->dir = tap_tmpdir();
	return fx->dir ? git_repository_init(&fx->repo, fx->dir, 1) : -1;
}

static void repo_close(struct repo_fx *fx)
{
	git_repository_free(fx->repo);
	tap_rmrf(fx->dir);
	free(fx->dir);
}

static struct tree_entry file(const char *path, uint32_t mode, const char *content)
{
	return (struct tree_entry){
	    .path = path, .git_mode = mode, .data = content, .len = content ? strlen(content) : 0};
}

/* What a walk saw, in order. */
struct seen {
	size_t n;
	char path[32][64];
	uint32_t mode[32];
	git_oid oid[32];
};

static int record(const char *path, uint32_t mode, const git_oid *oid, void *payload)
{
	struct seen *s = payload;
	if (s->n == 32)
		return -E2BIG;
	snprintf(s->path[s->n], sizeof(s->path[0]), "%s", path);
	s->mode[s->n] = mode;
	git_oid_cpy(&s->oid[s->n], oid);
	s->n++;
	return 0;
}

static long find_seen(const struct seen *s, const char *path)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->path[i], path) == 0)
			return (long)i;
	return -1;
}

static int blob_is(git_repository *repo, const git_oid *oid, const char *content)
{
	git_blob *b;
	if (git_blob_lookup(&b, repo, oid))
		return 0;
	int ok = git_blob_rawsize(b) == (git_object_size_t)strlen(content) &&
		 memcmp(git_blob_rawcontent(b), content, strlen(content)) == 0;
	git_blob_free(b);
	return ok;
}

static int oid_is(const git_oid *oid, const char *hex)
{
	char buf[GIT_OID_HEXSZ + 1];
	git_oid_tostr(buf, sizeof(buf), oid);
	return strcmp(buf, hex) == 0;
}

static void build_then_walk_gives_back_every_entry(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid pre;
	CHECK_EQ(git_blob_create_from_buffer(&pre, fx.repo, "known", 5), 0);
	struct tree_entry e[] = {
	    file("docs/a/b/c.txt", GIT_FILEMODE_BLOB, "deep"),
	    file("bin/run", GIT_FILEMODE_BLOB_EXECUTABLE, "#!/bin/sh\n"),
	    file("README", GIT_FILEMODE_BLOB, "hello\n"),
	    file("bin/link", GIT_FILEMODE_LINK, "run"),
	    file("empty", GIT_FILEMODE_TREE, NULL),
	    file("docs/a/empty2", GIT_FILEMODE_TREE, NULL),
	    file("x/known", GIT_FILEMODE_BLOB, NULL),
	    file("bin", GIT_FILEMODE_TREE, NULL), /* explicit and implied */
	};
	e[6].has_oid = 1;
	git_oid_cpy(&e[6].oid, &pre);
	git_oid root;
	CHECK_EQ(tree_build(&root, fx.repo, e, sizeof(e) / sizeof(e[0])), 0);

	struct seen s = {0};
	CHECK_EQ(tree_walk(fx.repo, &root, record, &s), 0);
	const char *dirs[] = {"bin", "docs", "docs/a", "docs/a/b", "docs/a/empty2", "empty", "x"};
	CHECK_EQ(s.n, 7 + 5);
	for (size_t i = 0; i < 7; i++) {
		long at = find_seen(&s, dirs[i]);
		CHECK(at >= 0 && s.mode[at] == GIT_FILEMODE_TREE);
	}
	for (size_t i = 0; i < 7; i++) {
		long at = find_seen(&s, e[i].path);
		CHECK(at >= 0 && s.mode[at] == e[i].git_mode);
		if (at >= 0 && e[i].git_mode != GIT_FILEMODE_TREE)
			CHECK(blob_is(fx.repo, &s.oid[at], e[i].data ? e[i].data : "known"));
	}
	long empty = find_seen(&s, "empty");
	CHECK(empty >= 0 && oid_is(&s.oid[empty], EMPTY_TREE));
	/* Parents before children. */
	CHECK(find_seen(&s, "docs/a") < find_seen(&s, "docs/a/b/c.txt"));
	CHECK(find_seen(&s, "docs") < find_seen(&s, "docs/a"));
	repo_close(&fx);
}

static void build_does_not_depend_on_entry_order(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	struct tree_entry e[] = {
	    file("a/b", GIT_FILEMODE_BLOB, "1"),   file("a-c", GIT_FILEMODE_BLOB, "2"),
	    file("a/d/e", GIT_FILEMODE_BLOB, "3"), file("a.b", GIT_FILEMODE_BLOB, "4"),
	    file("ab", GIT_FILEMODE_BLOB, "5"),	   file("a/d/f", GIT_FILEMODE_TREE, NULL),
	};
	size_t n = sizeof(e) / sizeof(e[0]);
	git_oid first, other;
	CHECK_EQ(tree_build(&first, fx.repo, e, n), 0);
	for (size_t i = 0; i < n / 2; i++) { /* reverse */
		struct tree_entry t = e[i];
		e[i] = e[n - 1 - i];
		e[n - 1 - i] = t;
	}
	CHECK_EQ(tree_build(&other, fx.repo, e, n), 0);
	CHECK(git_oid_equal(&first, &other));
	repo_close(&fx);
}

static void no_entries_build_the_empty_tree(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid root;
	CHECK_EQ(tree_build(&root, fx.repo, NULL, 0), 0);
	CHECK(oid_is(&root, EMPTY_TREE));
	repo_close(&fx);
}

static void existing_tree_is_grafted_by_oid(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	struct tree_entry inner[] = {file("f", GIT_FILEMODE_BLOB, "x")};
	git_oid sub, root;
	CHECK_EQ(tree_build(&sub, fx.repo, inner, 1), 0);
	struct tree_entry outer[] = {file("d/sub", GIT_FILEMODE_TREE, NULL)};
	outer[0].has_oid = 1;
	git_oid_cpy(&outer[0].oid, &sub);
	CHECK_EQ(tree_build(&root, fx.repo, outer, 1), 0);
	struct seen s = {0};
	CHECK_EQ(tree_walk(fx.repo, &root, record, &s), 0);
	CHECK(find_seen(&s, "d/sub/f") >= 0);
	repo_close(&fx);
}

static void invalid_paths_are_rejected(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	const char *bad[] = {"",     "/abs", "a//b", "a/",	 ".",	 "..",	  "./a",  "a/./b",
			     "a/..", "../a", ".git", "a/.git/b", ".GIT", "git~1", ".git "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tree_entry e[] = {file("ok", GIT_FILEMODE_BLOB, "1"),
					 file(bad[i], GIT_FILEMODE_BLOB, "2")};
		git_oid root;
		error_clear();
		int rc = tree_build(&root, fx.repo, e, 2);
		if (rc != -EINVAL)
			printf("# path \"%s\": %d\n", bad[i], rc);
		CHECK_EQ(rc, -EINVAL);
		CHECK(error_last()[0] != '\0');
	}
	struct tree_entry null_path = file(NULL, GIT_FILEMODE_BLOB, "x");
	git_oid root;
	CHECK_EQ(tree_build(&root, fx.repo, &null_path, 1), -EINVAL);
	repo_close(&fx);
}

static void invalid_modes_and_oids_are_rejected(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid root;
	struct tree_entry e = file("a", 0100600, "x");
	CHECK_EQ(tree_build(&root, fx.repo, &e, 1), -EINVAL);
	e = file("a", GIT_FILEMODE_BLOB, NULL);
	e.has_oid = 1;
	git_oid_fromstr(&e.oid, "1111111111111111111111111111111111111111");
	CHECK_EQ(tree_build(&root, fx.repo, &e, 1), -EINVAL);
	repo_close(&fx);
}

static void duplicate_and_conflicting_paths_are_rejected(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid root;
	struct tree_entry dup[] = {file("d/a", GIT_FILEMODE_BLOB, "1"),
				   file("d/a", GIT_FILEMODE_BLOB, "1")};
	CHECK_EQ(tree_build(&root, fx.repo, dup, 2), -EINVAL);
	CHECK(strstr(error_last(), "duplicate") != NULL);
	struct tree_entry dupdir[] = {file("d", GIT_FILEMODE_TREE, NULL),
				      file("d", GIT_FILEMODE_TREE, NULL)};
	CHECK_EQ(tree_build(&root, fx.repo, dupdir, 2), -EINVAL);
	struct tree_entry file_as_dir[] = {file("a/b", GIT_FILEMODE_BLOB, "1"),
					   file("a", GIT_FILEMODE_BLOB, "2")};
	CHECK_EQ(tree_build(&root, fx.repo, file_as_dir, 2), -EINVAL);
	repo_close(&fx);
}

static void walk_stops_with_the_callbacks_value(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	struct tree_entry e[] = {file("a", GIT_FILEMODE_BLOB, "1"),
				 file("b", GIT_FILEMODE_BLOB, "2")};
	git_oid root;
	CHECK_EQ(tree_build(&root, fx.repo, e, 2), 0);
	struct seen s = {.n = 31}; /* room for one more */
	CHECK_EQ(tree_walk(fx.repo, &root, record, &s), -E2BIG);
	CHECK_EQ(s.n, 32);
	repo_close(&fx);
}

static void commit_then_head_gives_the_same_tree(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	struct tree_entry e = file("f", GIT_FILEMODE_BLOB, "content");
	git_oid tree, commit, head_tree, head_commit;
	CHECK_EQ(tree_build(&tree, fx.repo, &e, 1), 0);
	CHECK_EQ(tree_commit(&commit, fx.repo, REF, &tree, NULL, 0, "dev1", "first", 1700000000),
		 0);
	CHECK_EQ(tree_head(&head_tree, &head_commit, fx.repo, REF), 0);
	CHECK(git_oid_equal(&tree, &head_tree));
	CHECK(git_oid_equal(&commit, &head_commit));

	git_commit *c;
	CHECK_EQ(git_commit_lookup(&c, fx.repo, &commit), 0);
	const git_signature *a = git_commit_author(c);
	CHECK(strcmp(a->name, "peercling") == 0 && strcmp(a->email, "dev1@peercling") == 0);
	CHECK_EQ(a->when.time, 1700000000);
	CHECK(strcmp(git_commit_message(c), "first") == 0);
	CHECK_EQ(git_commit_parentcount(c), 0);
	git_commit_free(c);
	repo_close(&fx);
}

static void second_commit_has_its_parent_and_moves_the_ref(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	struct tree_entry e = file("f", GIT_FILEMODE_BLOB, "v1");
	git_oid t1, t2, c1, c2, head;
	CHECK_EQ(tree_build(&t1, fx.repo, &e, 1), 0);
	CHECK_EQ(tree_commit(&c1, fx.repo, REF, &t1, NULL, 0, "dev1", "one", 0), 0);
	e = file("f", GIT_FILEMODE_BLOB, "v2");
	CHECK_EQ(tree_build(&t2, fx.repo, &e, 1), 0);
	CHECK_EQ(tree_commit(&c2, fx.repo, REF, &t2, &c1, 1, "dev1", "two", 0), 0);
	CHECK_EQ(tree_head(NULL, &head, fx.repo, REF), 0);
	CHECK(git_oid_equal(&head, &c2));

	git_commit *c;
	CHECK_EQ(git_commit_lookup(&c, fx.repo, &c2), 0);
	CHECK_EQ(git_commit_parentcount(c), 1);
	CHECK(git_oid_equal(git_commit_parent_id(c, 0), &c1));
	CHECK(git_commit_author(c)->when.time > 1700000000); /* "now" */
	git_commit_free(c);

	/* A merge: two parents. */
	git_oid both[2] = {c1, c2}, c3;
	CHECK_EQ(tree_commit(&c3, fx.repo, REF, &t2, both, 2, "dev2", "merge", 0), 0);
	CHECK_EQ(git_commit_lookup(&c, fx.repo, &c3), 0);
	CHECK_EQ(git_commit_parentcount(c), 2);
	git_commit_free(c);
	repo_close(&fx);
}

static void commit_with_a_missing_parent_fails_and_keeps_the_ref(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid tree, c1, c2, bogus, head;
	CHECK_EQ(tree_build(&tree, fx.repo, NULL, 0), 0);
	CHECK_EQ(tree_commit(&c1, fx.repo, REF, &tree, NULL, 0, "dev1", "one", 0), 0);
	git_oid_fromstr(&bogus, "2222222222222222222222222222222222222222");
	CHECK_EQ(tree_commit(&c2, fx.repo, REF, &tree, &bogus, 1, "dev1", "two", 0), -ENOENT);
	CHECK(strstr(error_last(), "parent") != NULL);
	CHECK_EQ(tree_head(NULL, &head, fx.repo, REF), 0);
	CHECK(git_oid_equal(&head, &c1));
	repo_close(&fx);
}

static void head_of_a_missing_ref_is_enoent(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid t, c;
	CHECK_EQ(tree_head(&t, &c, fx.repo, REF), -ENOENT);
	CHECK_EQ(tree_head(&t, &c, fx.repo, "HEAD"), -ENOENT); /* unborn */
	CHECK(error_last()[0] != '\0');
	repo_close(&fx);
}

static void git_errors_map_to_errno_with_a_message(void)
{
	struct repo_fx fx;
	CHECK_EQ(repo_open(&fx), 0);
	git_oid bogus;
	git_oid_fromstr(&bogus, "3333333333333333333333333333333333333333");
	git_tree *t;
	int rc = git_tree_lookup(&t, fx.repo, &bogus);
	CHECK_EQ(tree_git_error(rc, "looking up"), -ENOENT);
	CHECK(strncmp(error_last(), "looking up: ", 12) == 0 && strlen(error_last()) > 12);
	CHECK_EQ(tree_git_error(GIT_EEXISTS, "x"), -EEXIST);
	CHECK_EQ(tree_git_error(GIT_ERROR, "x"), -EIO);
	repo_close(&fx);
}

int main(void)
{
	if (sodium_init() < 0 || git_libgit2_init() < 0)
		return 1;
	TEST(build_then_walk_gives_back_every_entry);
	TEST(build_does_not_depend_on_entry_order);
	TEST(no_entries_build_the_empty_tree);
	TEST(existing_tree_is_grafted_by_oid);
	TEST(invalid_paths_are_rejected);
	TEST(invalid_modes_and_oids_are_rejected);
	TEST(duplicate_and_conflicting_paths_are_rejected);
	TEST(walk_stops_with_the_callbacks_value);
	TEST(commit_then_head_gives_the_same_tree);
	TEST(second_commit_has_its_parent_and_moves_the_ref);
	TEST(commit_with_a_missing_parent_fails_and_keeps_the_ref);
	TEST(head_of_a_missing_ref_is_enoent);
	TEST(git_errors_map_to_errno_with_a_message);
	git_libgit2_shutdown();
	TAP_DONE();
}
