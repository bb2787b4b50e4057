/* umount: unmount a peercling mount and wait until its daemon has made the
 * final commit and exited (it releases the volume lock last). */
#include "config.h"
#include "cli/cmd.h"
#include "cli/mounts.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SECONDS 120

static int run(int argc, char **argv);

const struct cmd cmd_umount = {
	.name = "umount",
	.run = run,
	.usage = "peercling umount MOUNTPOINT",
	.summary = "unmount a volume after a final commit",
	.help = "Fails, leaving the mount in place, while files under MOUNTPOINT are in use.\n",
};

static int fusermount(const char *mp, char *err, size_t errlen)
{
	int p[2];
	if (pipe(p) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		execlp("fusermount3", "fusermount3", "-u", mp, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read(p[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOENT;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

/* The daemon holds an exclusive flock on STATE/lock until it has exited. */
static int wait_daemon(const char *state_dir)
{
	char *path = NULL;
	if (asprintf(&path, "%s/lock", state_dir) < 0)
		return -ENOMEM;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	for (int i = 0; i < WAIT_SECONDS * 20; i++) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			close(fd);
			return 0;
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	close(fd);
	return -ETIMEDOUT;
}

static int run(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error(&cmd_umount, "umount takes one MOUNTPOINT");
	struct mount_found m;
	int rc = mounts_find(&m, argv[1]);
	if (rc)
		return cmd_fail(rc, "cannot unmount");
	if (strcmp(m.mountpoint, argv[1]) != 0) {
		char *real = realpath(argv[1], NULL);
		int same = real && strcmp(real, m.mountpoint) == 0;
		free(real);
		if (!same) {
			rc = cmd_fail(0, "%s is inside the mount at %s; name the mountpoint itself",
				      argv[1], m.mountpoint);
			mounts_found_free(&m);
			return rc;
		}
	}
	char err[512];
	rc = fusermount(m.mountpoint, err, sizeof(err));
	if (rc == -ENOENT)
		rc = cmd_fail(0, "fusermount3 is missing: install the Debian package fuse3");
	else if (rc)
		rc = cmd_fail(0, "cannot unmount %s: %s(close the files and shells using it; "
			      "'fuser -m %s' lists them)", m.mountpoint, err[0] ? err : "busy ",
			      m.mountpoint);
	else if (wait_daemon(m.state_dir) != 0)
		rc = cmd_fail(0, "unmounted, but the daemon did not finish within %d s", WAIT_SECONDS);
	mounts_found_free(&m);
	return rc ? rc : EXIT_OK;
}
