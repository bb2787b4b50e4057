/* merge: flattens the three trees into sorted (path, mode, oid) lists and
 * walks them together.  Tree paths are the escaped ones (core/tree.h); the
 * conflict name is made on the user's name and escaped again. */
#include "config.h"
#include "sync/merge.h"
#include "core/error.h"
#include "core/log.h"
#include "core/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "merge"

struct flat_entry {
	char *path;
	uint32_t mode;
	git_oid oid;
};

struct flat {
	struct flat_entry *e;
	size_t n, cap;
};

static int flat_cb(const char *path, uint32_t mode, const git_oid *oid, void *payload)
{
	struct flat *f = payload;
	if (mode == GIT_FILEMODE_TREE)
		return 0;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct flat_entry *e = realloc(f->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		f->e = e;
		f->cap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	f->e[f->n++] = (struct flat_entry){ p, mode, *oid };
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct flat_entry *)a)->path, ((const struct flat_entry *)b)->path);
}

static void flat_free(struct flat *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->e[i].path);
	free(f->e);
}

static int flatten(struct flat *out, git_repository *repo, const git_oid *commit)
{
	memset(out, 0, sizeof(*out));
	if (!commit)
		return 0;
	git_commit *c = NULL;
	if (git_commit_lookup(&c, repo, commit) < 0)
		return tree_git_error(-1, "merge: reading a commit");
	git_oid tree = *git_commit_tree_id(c);
	git_commit_free(c);
	int rc = tree_walk(repo, &tree, flat_cb, out);
	if (rc) {
		flat_free(out);
		return rc < 0 ? rc : -EIO;
	}
	if (out->n)
		qsort(out->e, out->n, sizeof(*out->e), cmp_entry);
	return 0;
}

static const struct flat_entry *find(const struct flat *f, const char *path)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(f->e[mid].path, path);
		if (c == 0)
			return &f->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int same(const struct flat_entry *a, const struct flat_entry *b)
{
	if (!a || !b)
		return a == b;
	return a->mode == b->mode && git_oid_equal(&a->oid, &b->oid);
}

int merge_conflict_name(char **out, const char *path, const char *device, int64_t when)
{
	char date[16];
	time_t t = (time_t)when;
	struct tm tm;
	strftime(date, sizeof(date), "%Y-%m-%d", gmtime_r(&t, &tm));
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	const char *dot = strrchr(name, '.');
	if (!dot || dot == name)
		dot = name + strlen(name);
	int n = asprintf(out, "%.*s%.*s (conflict from %.8s %s)%s", (int)(name - path), path,
			 (int)(dot - name), name, device, date, dot);
	return n < 0 ? -ENOMEM : 0;
}

int merge_conflict_parse(const char *name, char **orig, char device[9], char date[11])
{
	static const char mark[] = " (conflict from ";
	*orig = NULL;
	const char *at = strstr(name, mark);
	/* The last one: a name may carry an older conflict name inside. */
	for (const char *next = at; next; next = strstr(next + 1, mark))
		at = next;
	if (!at || at == name)
		return 0;
	const char *dev = at + sizeof(mark) - 1, *sp = strchr(dev, ' ');
	if (!sp || sp == dev || sp - dev > 8 || strlen(sp) < 12 || sp[11] != ')')
		return 0;
	const char *d = sp + 1;
	for (int i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? d[i] != '-' : (d[i] < '0' || d[i] > '9'))
			return 0;
	const char *ext = d + 11;
	if (*ext && (*ext != '.' || strchr(ext + 1, '/')))
		return 0;
	if (asprintf(orig, "%.*s%s", (int)(at - name), name, ext) < 0)
		return -ENOMEM;
	memcpy(device, dev, (size_t)(sp - dev));
	device[sp - dev] = 0;
	memcpy(date, d, 10);
	date[10] = 0;
	return 1;
}

struct result {
	struct tree_entry *e;
	char **owned;
	size_t n, cap;
};

static int result_add(struct result *r, const char *path, uint32_t mode, const git_oid *oid,
		      char *owned)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct tree_entry *e = realloc(r->e, cap * sizeof(*e));
		if (e)
			r->e = e;
		char **o = realloc(r->owned, cap * sizeof(*o));
		if (o)
			r->owned = o;
		if (!e || !o) {
			free(owned);
			return -ENOMEM;
		}
		r->cap = cap;
	}
	memset(&r->e[r->n], 0, sizeof(r->e[r->n]));
	r->e[r->n].path = path;
	r->e[r->n].git_mode = mode;
	r->e[r->n].has_oid = 1;
	r->e[r->n].oid = *oid;
	r->owned[r->n] = owned;
	r->n++;
	return 0;
}

static int is_meta(const char *path)
{
	const char *slash = strrchr(path, '/');
	return strcmp(slash ? slash + 1 : path, TREE_DIR_META) == 0;
}

/* Both sides changed path differently: a keeps it, b goes beside it. */
static int add_conflict(struct result *r, const struct flat_entry *a, const struct flat_entry *b,
			const char *b_device, int64_t b_when, unsigned *conflicts)
{
	char *user = NULL, *named = NULL, *esc = NULL;
	int rc = result_add(r, a->path, a->mode, &a->oid, NULL);
	if (!rc)
		rc = tree_path_unescape(&user, b->path);
	if (!rc)
		rc = merge_conflict_name(&named, user, b_device, b_when);
	if (!rc)
		rc = tree_path_escape(&esc, named);
	free(user);
	free(named);
	if (!rc)
		rc = result_add(r, esc, b->mode, &b->oid, esc);
	if (!rc)
		(*conflicts)++;
	return rc;
}

struct side {
	struct flat f;
	const char *device;
	int64_t when;
};

static int merge3(struct result *r, const struct flat *base, const struct side *a,
		  const struct side *b, unsigned *conflicts)
{
	size_t i = 0, j = 0;
	int rc = 0;
	while (!rc && (i < a->f.n || j < b->f.n)) {
		int c = i == a->f.n ? 1 : j == b->f.n ? -1 : strcmp(a->f.e[i].path, b->f.e[j].path);
		const struct flat_entry *ea = c <= 0 ? &a->f.e[i] : NULL;
		const struct flat_entry *eb = c >= 0 ? &b->f.e[j] : NULL;
		const struct flat_entry *o = find(base, ea ? ea->path : eb->path);
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
		const struct flat_entry *take = NULL;
		if (same(ea, eb) || same(eb, o))
			take = ea;
		else if (same(ea, o))
			take = eb;
		else if (!ea || !eb || is_meta(ea->path))
			take = ea ? ea : eb; /* a change beats a deletion; metadata: a's */
		else {
			rc = add_conflict(r, ea, eb, b->device, b->when, conflicts);
			continue;
		}
		if (take)
			rc = result_add(r, take->path, take->mode, &take->oid, NULL);
	}
	/* Paths in base only were deleted on both sides: nothing to add. */
	return rc;
}

static int load_side(struct side *s, git_repository *repo, const git_oid *commit)
{
	git_commit *c = NULL;
	if (git_commit_lookup(&c, repo, commit) < 0)
		return tree_git_error(-1, "merge: reading a commit");
	/* The committer's email is DEVICE@peercling (core/tree.c). */
	const git_signature *sig = git_commit_committer(c);
	const char *email = sig && sig->email ? sig->email : "unknown";
	s->device = strndup(email, strcspn(email, "@"));
	s->when = git_commit_time(c);
	git_commit_free(c);
	if (!s->device)
		return -ENOMEM;
	return flatten(&s->f, repo, commit);
}

static int write_merge(git_oid *out, git_repository *repo, struct result *r, const git_oid *pa,
		       const git_oid *pb, int64_t when, const git_oid *ours)
{
	git_oid tree;
	int rc = tree_build(&tree, repo, r->e, r->n);
	if (rc)
		return rc;
	/* Nothing to take in: keep our commit, so devices that agree on the
	 * tree go quiet instead of merging each other's merges forever. */
	git_commit *oc = NULL;
	if (git_commit_lookup(&oc, repo, ours) == 0) {
		int same_tree = git_oid_equal(git_commit_tree_id(oc), &tree);
		git_commit_free(oc);
		if (same_tree) {
			*out = *ours;
			return 0;
		}
	}
	git_signature *sig = NULL;
	git_commit *ca = NULL, *cb = NULL;
	if (git_signature_new(&sig, "peercling merge", "merge@peercling", when, 0) < 0 ||
	    git_commit_lookup(&ca, repo, pa) < 0 || git_commit_lookup(&cb, repo, pb) < 0) {
		rc = tree_git_error(-1, "merge: preparing the commit");
	} else {
		git_tree *t = NULL;
		const git_commit *parents[2] = { ca, cb };
		if (git_tree_lookup(&t, repo, &tree) < 0 ||
		    git_commit_create(out, repo, NULL, sig, sig, NULL, "merge", t, 2, parents) < 0)
			rc = tree_git_error(-1, "merge: writing the commit");
		git_tree_free(t);
	}
	git_commit_free(ca);
	git_commit_free(cb);
	git_signature_free(sig);
	return rc;
}

int merge_commits(git_oid *out, git_repository *repo, const git_oid *ours, const git_oid *theirs,
		  struct merge_stats *stats)
{
	if (git_oid_equal(ours, theirs) || git_graph_descendant_of(repo, ours, theirs) == 1) {
		*out = *ours;
		return 0;
	}
	if (git_graph_descendant_of(repo, theirs, ours) == 1) {
		*out = *theirs;
		if (stats)
			stats->fast_forward++;
		return 0;
	}
	/* Deterministic roles: the smaller commit id keeps contested paths. */
	const git_oid *pa = git_oid_cmp(ours, theirs) < 0 ? ours : theirs;
	const git_oid *pb = pa == ours ? theirs : ours;
	git_oid base_oid;
	int have_base = git_merge_base(&base_oid, repo, pa, pb) == 0;
	struct flat base;
	struct side a = { 0 }, b = { 0 };
	struct result r = { 0 };
	unsigned conflicts = 0;
	int rc = flatten(&base, repo, have_base ? &base_oid : NULL);
	if (!rc && !(rc = load_side(&a, repo, pa)) && !(rc = load_side(&b, repo, pb)))
		rc = merge3(&r, &base, &a, &b, &conflicts);
	if (!rc)
		rc = write_merge(out, repo, &r, pa, pb, a.when > b.when ? a.when : b.when, ours);
	if (!rc && stats) {
		stats->merged++;
		stats->conflicts += conflicts;
	}
	if (!rc && conflicts)
		log_warn("merge kept both versions of %u path(s) changed on two devices", conflicts);
	for (size_t i = 0; i < r.n; i++)
		free(r.owned[i]);
	free(r.e);
	free(r.owned);
	flat_free(&base);
	flat_free(&a.f);
	flat_free(&b.f);
	free((char *)a.device);
	free((char *)b.device);
	return rc;
}
