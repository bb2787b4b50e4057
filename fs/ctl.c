/* ctl: a listener thread that answers status itself and hands every other
 * request (sync, pin: they may take minutes) to a thread of its own, one
 * such request at a time, so that status answers while a sync runs. */
#include "config.h"
#include "fs/ctl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/store.h"
#include "core/volume.h"
#include "fs/fs.h"
#include "fs/pin.h"
#include "fs/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_MODULE "ctl"

struct fs_ctl {
	struct fs *fs;
	int sock;
	int stop_pipe[2];
	pthread_t thread;
	char *mountpoint;
	struct fs_ctl_hooks hooks;
	pthread_mutex_t serial; /* one long request at a time */
	pthread_mutex_t lock;   /* active */
	pthread_cond_t idle;
	int active; /* threads serving a long request */
};

void fs_ctl_name(const char *state_dir, char out[FS_CTL_NAME_MAX], size_t *len)
{
	uint8_t h[16];
	char hex[33];
	crypto_generichash(h, sizeof(h), (const uint8_t *)state_dir, strlen(state_dir), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	out[0] = '\0';
	int n = snprintf(out + 1, FS_CTL_NAME_MAX - 1, "peercling-%s", hex);
	*len = 1 + (size_t)n;
}

static int make_addr(const char *state_dir, struct sockaddr_un *sa, socklen_t *slen)
{
	size_t len;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	fs_ctl_name(state_dir, sa->sun_path, &len);
	*slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	return 0;
}

static char *status_json(struct fs_ctl *c)
{
	struct fs *fs = c->fs;
	struct store_stats ss;
	store_get_stats(fs->vol->store, &ss);
	json_object *o = json_object_new_object(), *cache = json_object_new_object();
	pthread_mutex_lock(&fs->lock);
	json_object_object_add(o, "mountpoint", json_object_new_string(c->mountpoint));
	json_object_object_add(o, "daemon_pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "uncommitted_changes", json_object_new_boolean(fs->changed));
	json_object_object_add(o, "commits_this_mount", json_object_new_int64((int64_t)fs->commits_made));
	pthread_mutex_unlock(&fs->lock);
	json_object_object_add(cache, "blocks", json_object_new_int64((int64_t)ss.blocks));
	json_object_object_add(cache, "bytes", json_object_new_int64((int64_t)ss.bytes));
	json_object_object_add(cache, "limit", json_object_new_int64((int64_t)ss.limit));
	json_object_object_add(cache, "pinned_blocks", json_object_new_int64((int64_t)ss.pinned_blocks));
	json_object_object_add(cache, "pinned_bytes", json_object_new_int64((int64_t)ss.pinned_bytes));
	json_object_object_add(cache, "dirty_blocks", json_object_new_int64((int64_t)ss.dirty_blocks));
	json_object_object_add(cache, "dirty_bytes", json_object_new_int64((int64_t)ss.dirty_bytes));
	json_object_object_add(o, "cache", cache);
	if (c->hooks.status)
		c->hooks.status(c->hooks.p, o);
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static void pin_progress(void *p, uint64_t done, uint64_t total)
{
	dprintf(*(int *)p, "progress %llu %llu\n", (unsigned long long)done,
		(unsigned long long)total);
}

/* "pin REL" / "unpin REL": change the list, then fetch and pin, streaming
 * progress lines before the reply. */
static char *serve_pin(struct fs_ctl *c, int fd, const char *rel, int pin)
{
	char *reply = NULL;
	struct fs_pin_report rep;
	int rc = fs_pin_set(c->fs, rel, pin);
	if (!rc)
		rc = fs_pin_reconcile(c->fs, &rep, pin_progress, &fd);
	if (rc) {
		if (asprintf(&reply, "error %s", error_last()) < 0)
			reply = NULL;
	} else if (asprintf(&reply, "ok %llu blocks pinned (%llu bytes), %llu fetched",
			    (unsigned long long)rep.blocks, (unsigned long long)rep.bytes,
			    (unsigned long long)rep.fetched) < 0) {
		reply = NULL;
	}
	return reply;
}

static void dispatch(struct fs_ctl *c, int fd, const char *req)
{
	char *reply = NULL;
	if (strncmp(req, "pin ", 4) == 0 || strncmp(req, "unpin ", 6) == 0) {
		int pin = req[0] == 'p';
		reply = serve_pin(c, fd, req + (pin ? 4 : 6), pin);
	} else if (strcmp(req, "sync") == 0 && c->hooks.sync) {
		char *r = NULL;
		int rc = c->hooks.sync(c->hooks.p, &r, pin_progress, &fd);
		if (rc) {
			if (asprintf(&reply, "error %s", error_last()) < 0)
				reply = NULL;
		} else if (asprintf(&reply, "ok %s", r ? r : "") < 0) {
			reply = NULL;
		}
		free(r);
	} else if (strcmp(req, "sync") == 0) {
		int made = 0;
		int rc = fs_commit(c->fs, "sync", &made);
		if (rc) {
			if (asprintf(&reply, "error commit failed: %s", error_last()) < 0)
				reply = NULL;
		} else {
			char hex[GIT_OID_HEXSZ + 1] = "none";
			pthread_mutex_lock(&c->fs->lock);
			if (c->fs->has_head)
				git_oid_tostr(hex, sizeof(hex), &c->fs->head);
			pthread_mutex_unlock(&c->fs->lock);
			if (asprintf(&reply, "ok %s %s", hex, made ? "new" : "unchanged") < 0)
				reply = NULL;
		}
	} else if (strncmp(req, "restore ", 8) == 0 && strchr(req + 8, ' ')) {
		/* "restore REV REL", REV "-" for the version before */
		const char *rel = strchr(req + 8, ' ') + 1;
		char *rev = strndup(req + 8, (size_t)(rel - 1 - (req + 8))), *said = NULL;
		int rc = rev ? fs_restore(c->fs, strcmp(rev, "-") ? rev : NULL, rel, &said) : -ENOMEM;
		if (asprintf(&reply, rc ? "error %s" : "ok %s", rc ? error_last() : said) < 0)
			reply = NULL;
		free(rev);
		free(said);
	} else if (strcmp(req, "status") == 0) {
		char *js = status_json(c);
		if (js && asprintf(&reply, "ok %s", js) < 0)
			reply = NULL;
		free(js);
	} else {
		if (asprintf(&reply, "error unknown request '%s'", req) < 0)
			reply = NULL;
	}
	if (reply)
		dprintf(fd, "%s\n", reply);
	free(reply);
}

struct conn {
	struct fs_ctl *c;
	int fd;
	char req[];
};

static void *conn_thread(void *arg)
{
	struct conn *k = arg;
	struct fs_ctl *c = k->c;
	pthread_mutex_lock(&c->serial);
	dispatch(c, k->fd, k->req);
	pthread_mutex_unlock(&c->serial);
	close(k->fd);
	free(k);
	pthread_mutex_lock(&c->lock);
	if (--c->active == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Takes fd (closes it, now or from the request's own thread). */
static void serve(struct fs_ctl *c, int fd)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char req[4200];
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		dprintf(fd, "error permission denied\n");
		close(fd);
		return;
	}
	ssize_t n = read(fd, req, sizeof(req) - 1); /* one short line: one read */
	if (n <= 0) {
		close(fd);
		return;
	}
	req[n] = '\0';
	req[strcspn(req, "\r\n")] = '\0';
	struct conn *k = strcmp(req, "status") ? malloc(sizeof(*k) + strlen(req) + 1) : NULL;
	pthread_t t;
	pthread_attr_t attr;
	if (k) {
		k->c = c;
		k->fd = fd;
		strcpy(k->req, req);
		pthread_mutex_lock(&c->lock);
		c->active++;
		pthread_mutex_unlock(&c->lock);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int started = pthread_create(&t, &attr, conn_thread, k) == 0;
		pthread_attr_destroy(&attr);
		if (!started)
			conn_thread(k); /* serve it here, then */
		return;
	}
	dispatch(c, fd, req);
	close(fd);
}

static void *ctl_thread(void *arg)
{
	struct fs_ctl *c = arg;
	struct pollfd p[2] = { { c->sock, POLLIN, 0 }, { c->stop_pipe[0], POLLIN, 0 } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(c->sock, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(c, fd);
	}
	return NULL;
}

int fs_ctl_start(struct fs_ctl **out, struct fs *fs, const char *mountpoint,
		 const struct fs_ctl_hooks *hooks)
{
	struct fs_ctl *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa;
	socklen_t slen;
	if (!c)
		return -ENOMEM;
	c->fs = fs;
	if (hooks)
		c->hooks = *hooks;
	c->mountpoint = strdup(mountpoint);
	pthread_mutex_init(&c->serial, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	make_addr(fs->vol->dir, &sa, &slen);
	if (c->sock < 0 || bind(c->sock, (struct sockaddr *)&sa, slen) != 0 ||
	    listen(c->sock, 8) != 0 || pipe2(c->stop_pipe, O_CLOEXEC) != 0) {
		int e = errno;
		if (c->sock >= 0)
			close(c->sock);
		free(c->mountpoint);
		free(c);
		return error_set(-e, "cannot open the control socket: %s", strerror(e));
	}
	if (pthread_create(&c->thread, NULL, ctl_thread, c) != 0) {
		close(c->sock);
		close(c->stop_pipe[0]);
		close(c->stop_pipe[1]);
		free(c->mountpoint);
		free(c);
		return error_set(-EAGAIN, "cannot start the control thread");
	}
	*out = c;
	return 0;
}

void fs_ctl_stop(struct fs_ctl *c)
{
	if (!c)
		return;
	if (write(c->stop_pipe[1], "x", 1) != 1)
		log_warn("cannot signal the control thread");
	pthread_join(c->thread, NULL);
	pthread_mutex_lock(&c->lock); /* a sync asked for may still be running */
	while (c->active)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->serial);
	close(c->sock);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	free(c->mountpoint);
	free(c);
}

int fs_ctl_call(const char *state_dir, const char *req, char **reply)
{
	return fs_ctl_call_progress(state_dir, req, reply, NULL, NULL);
}

int fs_ctl_call_progress(const char *state_dir, const char *req, char **reply,
			 void (*progress)(void *p, uint64_t done, uint64_t total), void *p)
{
	struct sockaddr_un sa;
	socklen_t slen;
	make_addr(state_dir, &sa, &slen);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, slen) != 0) {
		int e = errno;
		close(fd);
		return error_set(-e, "the mount daemon does not answer (%s)", strerror(e));
	}
	dprintf(fd, "%s\n", req);
	shutdown(fd, SHUT_WR);
	FILE *f = fdopen(fd, "r");
	char *line = NULL, *last = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		unsigned long long a, b;
		if (sscanf(line, "progress %llu %llu", &a, &b) == 2) {
			if (progress)
				progress(p, a, b);
			continue;
		}
		free(last);
		last = strdup(line);
	}
	free(line);
	if (f)
		fclose(f);
	else
		close(fd);
	if (!last)
		return error_set(-EIO, "the mount daemon gave no answer");
	last[strcspn(last, "\n")] = '\0';
	if (strncmp(last, "ok ", 3) == 0) {
		memmove(last, last + 3, strlen(last + 3) + 1);
		*reply = last;
		return 0;
	}
	int rc = error_set(-EIO, "%s", strncmp(last, "error ", 6) == 0 ? last + 6 :
				    "the mount daemon gave no answer");
	free(last);
	return rc;
}
