/* fs_meta: metadata workload for bench/fs-bench.
 *
 *   fs_meta DIR NFILES [FILESIZE]
 *
 * In DIR (which must exist and be empty), times four phases separately:
 *   create  mkdir of the subdirectories, then for each file
 *           open(O_CREAT|O_EXCL|O_WRONLY) + write(FILESIZE bytes) + close
 *   stat    stat() of every file, in creation order
 *   ls      `ls -lR DIR >/dev/null` (readdir + lstat + xattr probes, as users
 *           see it)
 *   rm      `rm -r` of the tree (unlink of every file, rmdir of every
 *           subdirectory)
 * Files are spread over subdirectories of FILES_PER_DIR files each, as in a
 * source tree.  Prints one JSON object on stdout:
 *   {"nfiles":N,"ndirs":D,"filesize":S,
 *    "create":{"ops":N,"seconds":T,"ops_per_s":R}, "stat":{...}, ...}
 * where ops is files for create and stat, files + directories for ls and rm.
 * Exits non-zero at the first failing system call (message on stderr). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FILES_PER_DIR 100

extern char **environ;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fs_meta: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void file_path(char *buf, size_t n, const char *dir, long i)
{
	snprintf(buf, n, "%s/d%04ld/f%06ld", dir, i / FILES_PER_DIR, i);
}

/* Run argv with stdout to /dev/null; return its wall-clock seconds. */
static double run_cmd(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	double t0 = now();
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (rc != 0) {
		errno = rc;
		die("spawn", argv[0]);
	}
	if (waitpid(pid, &st, 0) < 0)
		die("waitpid", argv[0]);
	double t = now() - t0;
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "fs_meta: %s %s failed (status %d)\n", argv[0], argv[1], st);
		exit(1);
	}
	return t;
}

static void phase(const char *name, long ops, double secs, int last)
{
	printf("\"%s\":{\"ops\":%ld,\"seconds\":%.6f,\"ops_per_s\":%.1f}%s", name, ops, secs,
	       secs > 0 ? ops / secs : 0.0, last ? "" : ",");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fs_meta DIR NFILES [FILESIZE]\n");
		return 2;
	}
	const char *dir = argv[1];
	long nfiles = atol(argv[2]);
	size_t fsize = argc > 3 ? (size_t)atol(argv[3]) : 4096;
	if (nfiles <= 0) {
		fprintf(stderr, "fs_meta: NFILES must be positive\n");
		return 2;
	}
	long ndirs = (nfiles + FILES_PER_DIR - 1) / FILES_PER_DIR;
	char *buf = malloc(fsize ? fsize : 1);
	for (size_t i = 0; i < fsize; i++)
		buf[i] = (char)(i * 131 + 7);
	char path[4096];
	struct stat st;

	/* create */
	double t0 = now();
	for (long d = 0; d < ndirs; d++) {
		snprintf(path, sizeof path, "%s/d%04ld", dir, d);
		if (mkdir(path, 0755) != 0)
			die("mkdir", path);
	}
	for (long i = 0; i < nfiles; i++) {
		file_path(path, sizeof path, dir, i);
		/* vary the content so that a deduplicating store does real work */
		memcpy(buf, &i, sizeof i < fsize ? sizeof i : fsize);
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			die("open", path);
		size_t off = 0;
		while (off < fsize) {
			ssize_t w = write(fd, buf + off, fsize - off);
			if (w < 0)
				die("write", path);
			off += (size_t)w;
		}
		if (close(fd) != 0)
			die("close", path);
	}
	double t_create = now() - t0;

	/* stat */
	t0 = now();
	for (long i = 0; i < nfiles; i++) {
		file_path(path, sizeof path, dir, i);
		if (stat(path, &st) != 0)
			die("stat", path);
		if ((size_t)st.st_size != fsize) {
			fprintf(stderr, "fs_meta: %s has size %lld, expected %zu\n", path,
				(long long)st.st_size, fsize);
			return 1;
		}
	}
	double t_stat = now() - t0;

	/* ls -lR */
	char *ls_argv[] = { "ls", "-lR", (char *)dir, NULL };
	double t_ls = run_cmd(ls_argv);

	/* rm -r: remove the subdirectories, keep DIR itself */
	char **rm_argv = calloc((size_t)ndirs + 3, sizeof *rm_argv);
	rm_argv[0] = "rm";
	rm_argv[1] = "-r";
	for (long d = 0; d < ndirs; d++) {
		if (asprintf(&rm_argv[d + 2], "%s/d%04ld", dir, d) < 0)
			die("asprintf", dir);
	}
	double t_rm = run_cmd(rm_argv);

	printf("{\"nfiles\":%ld,\"ndirs\":%ld,\"filesize\":%zu,", nfiles, ndirs, fsize);
	phase("create", nfiles, t_create, 0);
	phase("stat", nfiles, t_stat, 0);
	phase("ls", nfiles + ndirs, t_ls, 0);
	phase("rm", nfiles + ndirs, t_rm, 1);
	printf("}\n");
	return 0;
}
