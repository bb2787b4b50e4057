/* delayproxy: a TCP proxy that delays every byte by a fixed time in each
 * direction, to see how a cloud client behaves when its server is far
 * away (this machine's kernel has no sch_netem).  It models latency only:
 * bytes are buffered without limit, so a single stream is not held back
 * by a TCP window the way it would be on a real long link.
 *
 *   delayproxy LISTEN_PORT UPSTREAM_PORT DELAY_MS     (127.0.0.1 only)
 *
 * Standalone on purpose (cloud-bench compiles it with cc when DELAY_MS is
 * set); `make bench/delayproxy` builds it too.
 *
 * A thread pair per direction per connection: a reader that stamps each
 * chunk with the time it may leave, and a writer that sends it then. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct chunk {
	struct chunk *next;
	struct timespec due;
	size_t len; /* 0: end of stream */
	char data[];
};

struct pipe_ {
	int from, to;
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct chunk *head, *tail;
};

static long delay_ms;
static int upstream_port;

static void *reader(void *arg)
{
	struct pipe_ *p = arg;
	for (;;) {
		struct chunk *c = malloc(sizeof(*c) + 65536);
		ssize_t n = read(p->from, c->data, 65536);
		c->len = n > 0 ? (size_t)n : 0;
		c->next = NULL;
		clock_gettime(CLOCK_MONOTONIC, &c->due);
		c->due.tv_nsec += (delay_ms % 1000) * 1000000;
		c->due.tv_sec += delay_ms / 1000 + c->due.tv_nsec / 1000000000;
		c->due.tv_nsec %= 1000000000;
		pthread_mutex_lock(&p->lock);
		if (p->tail)
			p->tail->next = c;
		else
			p->head = c;
		p->tail = c;
		pthread_cond_signal(&p->more);
		pthread_mutex_unlock(&p->lock);
		if (n <= 0)
			return NULL;
	}
}

static void *writer(void *arg)
{
	struct pipe_ *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->head)
			pthread_cond_wait(&p->more, &p->lock);
		struct chunk *c = p->head;
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &c->due, NULL) == EINTR)
			;
		if (!c->len) {
			shutdown(p->to, SHUT_WR);
			free(c);
			return NULL;
		}
		for (size_t off = 0; off < c->len;) {
			ssize_t w = write(p->to, c->data + off, c->len - off);
			if (w <= 0) {
				shutdown(p->from, SHUT_RD);
				break;
			}
			off += (size_t)w;
		}
		free(c);
	}
}

static void *connection(void *arg)
{
	int client = (int)(long)arg, up = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(upstream_port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(up, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(client);
		close(up);
		return NULL;
	}
	setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct pipe_ p[2] = { { .from = client, .to = up }, { .from = up, .to = client } };
	pthread_t t[4];
	for (int i = 0; i < 2; i++) {
		pthread_mutex_init(&p[i].lock, NULL);
		pthread_cond_init(&p[i].more, NULL);
		pthread_create(&t[2 * i], NULL, reader, &p[i]);
		pthread_create(&t[2 * i + 1], NULL, writer, &p[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	close(client);
	close(up);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: delayproxy LISTEN_PORT UPSTREAM_PORT DELAY_MS\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	upstream_port = atoi(argv[2]);
	delay_ms = atol(argv[3]);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 128) != 0) {
		perror("delayproxy: bind/listen");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, connection, (void *)(long)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
}
