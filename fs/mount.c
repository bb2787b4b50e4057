/* mount: process life of the daemon.  Daemonizing is a fork before any
 * thread exists; the child reports "ok" or the error text through a pipe
 * once fuse_session_mount has succeeded or failed, so `peercling mount`
 * returns only when the mount can be used. */
#include "config.h"
#include "fs/mount.h"
#include "core/error.h"
#include "core/log.h"
#include "core/volume.h"
#include "fs/ctl.h"
#include "fs/fs.h"
#include "fs/ops.h"
#include "fs/syncer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_MODULE "mount"
#define DEFAULT_IDLE_SECONDS 5
#define DEFAULT_MAX_SECONDS 300

int fs_mount_check_point(const char *mp)
{
	struct stat st;
	if (stat(mp, &st) != 0) {
		if (errno == ENOTCONN)
			return error_set(-ENOTCONN, "mountpoint %s is a dead mount (the daemon died): "
					 "run 'fusermount3 -u -z %s' first", mp, mp);
		return error_set(-errno, "mountpoint %s does not exist: create it with 'mkdir -p %s'",
				 mp, mp);
	}
	if (!S_ISDIR(st.st_mode))
		return error_set(-ENOTDIR, "mountpoint %s is not a directory", mp);
	DIR *d = opendir(mp);
	if (!d)
		return error_set(-errno, "cannot open mountpoint %s: %s", mp, strerror(errno));
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	if (!empty)
		return error_set(-ENOTEMPTY, "mountpoint %s is not empty: mounting would hide its "
				 "files; use an empty directory", mp);
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		return error_set(-ENODEV, "/dev/fuse is not available (%s): load the fuse module "
				 "('modprobe fuse') or install fuse3", strerror(errno));
	return 0;
}

struct daemon {
	struct volume *vol;
	struct fs *fs;
	struct fuse_session *se;
	struct fs_ctl *ctl;
	struct fs_syncer *syncer;
	pthread_t idle_thread;
	int idle_running;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	int stopping;
	int64_t idle_seconds, max_seconds;
};

static double since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Commits once changes have rested for idle_seconds, or at the latest
 * max_seconds after the first uncommitted change: a dozen saves a second
 * make one commit, not a dozen. */
static void inval_kernel(void *se, const struct fs_inval *w)
{
	if (w->name)
		fuse_lowlevel_notify_inval_entry(se, w->parent, w->name, strlen(w->name));
	if (w->ino)
		fuse_lowlevel_notify_inval_inode(se, w->ino, 0, 0);
}

static void *idle_main(void *arg)
{
	struct daemon *d = arg;
	struct timespec first_change = { 0, 0 };
	int pending = 0;
	pthread_mutex_lock(&d->stop_lock);
	while (!d->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&d->stop_cond, &d->stop_lock, &until);
		if (d->stopping)
			break;
		pthread_mutex_lock(&d->fs->lock);
		int changed = d->fs->changed;
		double rested = changed ? since(&d->fs->last_change) : 0;
		pthread_mutex_unlock(&d->fs->lock);
		if (!changed) {
			pending = 0;
			continue;
		}
		if (!pending) {
			pending = 1;
			clock_gettime(CLOCK_MONOTONIC, &first_change);
		}
		if (rested >= (double)d->idle_seconds || since(&first_change) >= (double)d->max_seconds) {
			pthread_mutex_unlock(&d->stop_lock);
			fs_commit(d->fs, "idle", NULL);
			pthread_mutex_lock(&d->stop_lock);
			pending = 0;
		}
	}
	pthread_mutex_unlock(&d->stop_lock);
	return NULL;
}

static void report(int fd, const char *msg)
{
	if (fd < 0)
		return;
	size_t len = strlen(msg);
	if (write(fd, msg, len) != (ssize_t)len)
		log_warn("cannot report to the starting process");
	close(fd);
}

/* Takes peercling's own options out of the comma-separated -o list: the
 * rest goes to FUSE.  A comma escaped with a backslash stays in its option. */
static int take_own_opts(const char *in, char **fuse_out, int *noxattr)
{
	size_t n = in ? strlen(in) : 0, k = 0;
	char *out = malloc(n + 1), *opt = malloc(n + 1);
	if (!out || !opt) {
		free(out);
		free(opt);
		return -ENOMEM;
	}
	*out = '\0';
	for (size_t i = 0; i <= n; i++) {
		if (i < n && in[i] == '\\' && i + 1 < n) {
			opt[k++] = in[i++];
			opt[k++] = in[i];
			continue;
		}
		if (i < n && in[i] != ',') {
			opt[k++] = in[i];
			continue;
		}
		opt[k] = '\0';
		if (strcmp(opt, "noxattr") == 0)
			*noxattr = 1;
		else if (k)
			strcat(strcat(out, *out ? "," : ""), opt);
		k = 0;
	}
	free(opt);
	*fuse_out = out;
	return 0;
}

static int build_args(struct fuse_args *args, const struct fs_mount_opts *o, const char *dir,
		      int *noxattr)
{
	char *fsname = NULL, *fuse_opts = NULL;
	int rc = 0;
	if (fuse_opt_add_arg(args, "peercling") != 0 ||
	    (o->debug && fuse_opt_add_arg(args, "-d") != 0) || fuse_opt_add_arg(args, "-o") != 0)
		return -ENOMEM;
	char *opts = NULL;
	if (asprintf(&fsname, "fsname=peercling:%s", dir) < 0)
		return -ENOMEM;
	if (take_own_opts(o->fuse_opts, &fuse_opts, noxattr)) {
		free(fsname);
		return -ENOMEM;
	}
	if (fuse_opt_add_opt_escaped(&opts, fsname) != 0 ||
	    fuse_opt_add_opt(&opts, "subtype=peercling,default_permissions") != 0 ||
	    (*fuse_opts && fuse_opt_add_opt(&opts, fuse_opts) != 0) ||
	    fuse_opt_add_arg(args, opts) != 0)
		rc = -ENOMEM;
	free(opts);
	free(fsname);
	free(fuse_opts);
	return rc;
}

static int open_log(struct volume *v, const struct fs_mount_opts *o)
{
	char *path = NULL;
	if (o->foreground)
		return 0; /* stderr */
	if (volume_file(&path, v, "log"))
		return -ENOMEM;
	int rc = log_open(path, o->debug ? LOG_DEBUG : LOG_INFO);
	free(path);
	return rc;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static int load_settings(struct daemon *d)
{
	int rc = volume_config_get_int64(d->vol, "commit.idle", &d->idle_seconds,
					 DEFAULT_IDLE_SECONDS);
	if (!rc)
		rc = volume_config_get_int64(d->vol, "commit.max", &d->max_seconds,
					     DEFAULT_MAX_SECONDS);
	if (!rc && (d->idle_seconds < 1 || d->max_seconds < 1))
		rc = error_set(-EINVAL, "commit.idle and commit.max must be at least 1 second");
	return rc;
}

/* Everything after the fork (or in the foreground). notify: pipe to the
 * waiting parent, or -1. */
static int serve(const struct fs_mount_opts *o, int notify)
{
	struct daemon d = { 0 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char msg[1200];
	int rc, mounted = 0;
	/* Dozens of threads (FUSE, readahead, fetch, upload) would each get a
	 * malloc arena of their own, and freed windows and blocks stay
	 * resident in all of them: a 1 GiB random read peaked at 199 MiB with
	 * the default, 95 MiB with two (doc/cloud.md). */
	mallopt(M_ARENA_MAX, 2);
	pthread_mutex_init(&d.stop_lock, NULL);
	pthread_cond_init(&d.stop_cond, NULL);
	if ((rc = volume_open(&d.vol, o->name, VOLUME_OPEN_LOCK)) || (rc = load_settings(&d)) ||
	    (rc = open_log(d.vol, o)) || (rc = fs_new(&d.fs, d.vol)))
		goto fail;
	if ((rc = build_args(&args, o, d.vol->dir, &d.fs->noxattr))) {
		error_set(rc, "out of memory");
		goto fail;
	}
	d.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), d.fs);
	if (!d.se) {
		rc = error_set(-EINVAL, "FUSE refused the options '%s' (see the log above)",
			       o->fuse_opts ? o->fuse_opts : "");
		goto fail;
	}
	if (fuse_set_signal_handlers(d.se) != 0) {
		rc = error_set(-EIO, "cannot install signal handlers");
		goto fail;
	}
	if (fuse_session_mount(d.se, o->mountpoint) != 0) {
		rc = error_set(-EIO, "the kernel refused to mount %s (is fusermount3 installed, and "
			       "may this user mount there?)", o->mountpoint);
		goto fail;
	}
	mounted = 1;
	/* Merges and restores change files behind the kernel's back. */
	d.fs->inval = inval_kernel;
	d.fs->inval_payload = d.se;
	struct fs_ctl_hooks hooks = { 0 };
	if (fs_syncer_start(&d.syncer, d.fs, d.se) == 0)
		fs_syncer_hooks(d.syncer, &hooks);
	else
		log_warn("no cloud sync for this mount: %s", error_last());
	if ((rc = fs_ctl_start(&d.ctl, d.fs, o->mountpoint, d.syncer ? &hooks : NULL)))
		goto fail;
	if (pthread_create(&d.idle_thread, NULL, idle_main, &d) == 0)
		d.idle_running = 1;
	char *mpfile = NULL;
	if (volume_file(&mpfile, d.vol, "mountpoint") == 0) {
		FILE *f = fopen(mpfile, "we");
		if (f) {
			fprintf(f, "%s\n", o->mountpoint);
			fclose(f);
		}
		free(mpfile);
	}
	log_info("volume %s mounted at %s", o->name, o->mountpoint);
	if (!o->foreground) {
		if (setsid() < 0)
			log_warn("setsid failed: %s", strerror(errno));
		detach_stdio();
	}
	report(notify, "ok");
	notify = -1;

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 16);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	rc = fuse_session_loop_mt(d.se, lc);
	fuse_loop_cfg_destroy(lc);
	if (rc)
		log_warn("the FUSE loop ended with %d", rc);
	rc = 0;
fail:
	if (rc && notify >= 0) {
		snprintf(msg, sizeof(msg), "%s", error_last()[0] ? error_last() : strerror(-rc));
		report(notify, msg);
	} else if (rc) {
		fprintf(stderr, "peercling: %s\n", error_last());
	}
	if (d.idle_running) {
		pthread_mutex_lock(&d.stop_lock);
		d.stopping = 1;
		pthread_cond_signal(&d.stop_cond);
		pthread_mutex_unlock(&d.stop_lock);
		pthread_join(d.idle_thread, NULL);
	}
	fs_ctl_stop(d.ctl);
	if (mounted)
		fuse_session_unmount(d.se);
	if (d.fs)
		fs_flush_all(d.fs);
	/* After the unmount: the final round commits and uploads everything. */
	fs_syncer_stop(d.syncer, mounted && !rc);
	if (d.fs)
		d.fs->inval = NULL; /* no thread left that merges */
	if (d.se) {
		fuse_remove_signal_handlers(d.se);
		fuse_session_destroy(d.se);
	}
	if (d.fs) {
		fs_flush_all(d.fs);
		if (mounted && fs_commit(d.fs, "unmount", NULL) != 0)
			log_error("final commit failed; the journal keeps the changes for the next mount");
		fs_free(d.fs);
	}
	if (d.vol) {
		char *mpf = NULL;
		if (volume_file(&mpf, d.vol, "mountpoint") == 0)
			unlink(mpf);
		free(mpf);
	}
	volume_free(d.vol);
	fuse_opt_free_args(&args);
	if (mounted)
		log_info("volume %s unmounted", o->name);
	log_close();
	return rc ? 1 : 0;
}

int fs_mount_run(const struct fs_mount_opts *o)
{
	int rc = fs_mount_check_point(o->mountpoint);
	if (rc)
		return 1;
	if (o->foreground)
		return serve(o, -1);
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		error_set(-errno, "pipe: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		error_set(-errno, "fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		_exit(serve(o, p[1]));
	}
	close(p[1]);
	char buf[1200];
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	buf[len] = '\0';
	if (strcmp(buf, "ok") == 0)
		return 0;
	error_set(-EIO, "%s", len ? buf : "the mount daemon died while starting (see its log)");
	return 1;
}
