/*
 * bench_mock.c: a Moneroo API mock fast enough not to be the bottleneck of
 * the benchmarks (test/bench/run.sh).  One thread, epoll, no allocations on
 * the request path beyond the connection's buffer.
 *
 *   bench_mock --port PORT [--host 127.0.0.1] [--latency-ms MS]
 *
 * API (what the extension and test/bench/plain_client need, nothing more):
 *   POST /v1/payouts/initialize     201 {"success":true,...,"data":{"id":"<unique>"}}
 *   GET  /v1/payouts/{id}/verify    200 {"message":...,"data":{"id":"{id}","status":"success"}}
 *   anything else                   404
 * Every API answer leaves latency_ms after the request has fully arrived.
 * Keep-alive (HTTP/1.1) and fresh connections both work.
 *
 * Control (answered at once, not journaled):
 *   GET  /__mock/health             {"ok":true}
 *   POST /__mock/reset              clears the journal and the counters
 *   POST /__mock/config             {"latency_ms": N}
 *   GET  /__mock/stats              counters, JSON
 *   GET  /__mock/journal            one line per API request, tab separated:
 *        seq accept_us arrival_us answer_us method route status reference
 *        (times: CLOCK_REALTIME microseconds; accept_us is when the request's
 *        connection was accepted, arrival_us when its last byte was read,
 *        answer_us when the answer was written; route i=initialize v=verify
 *        o=other; reference = metadata.payout_reference or -)
 *
 * Moneroo ids never repeat within one mock process, across resets (the
 * extension's moneroo_id column is unique), and carry the start time so two
 * processes in one benchmark run do not collide either.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

#define MAX_EVENTS 256
#define MAX_REQUEST (1 << 20)

typedef enum { C_READING, C_WAITING, C_WRITING } ConnState;

typedef struct Conn
{
	int			fd;
	unsigned	gen;			/* bumped when the slot is reused */
	ConnState	state;
	char	   *in;
	size_t		in_len, in_cap;
	char	   *out;
	size_t		out_len, out_off, out_cap;
	int64_t		accept_us;
	int			close_after;	/* Connection: close, or HTTP/1.0 */
	long		journal_index;	/* entry of the request being answered, -1 */
	int			status;			/* answer prepared for after the latency */
	char		route;
	char		id[64];
} Conn;

typedef struct Entry
{
	long		seq;
	int64_t		accept_us, arrival_us, answer_us;
	char		method;			/* P=POST G=GET o=other */
	char		route;
	short		status;
	char		reference[40];
} Entry;

typedef struct Due
{
	int64_t		at;
	int			fd;
	unsigned	gen;
} Due;

static Conn **conns;			/* by fd */
static int	conns_cap;
static Due *heap;
static int	heap_len, heap_cap;
static Entry *journal;
static long journal_len, journal_cap;
static double latency_ms;
static unsigned long long id_counter;
static unsigned id_prefix;
static int	epfd;

static struct
{
	long		requests, creates, verifies, others, connections;
	long		in_flight, max_in_flight, open, max_open;
	int64_t		first_arrival_us, last_arrival_us, last_answer_us;
} st;

static void *
xrealloc(void *p, size_t n)
{
	void	   *q = realloc(p, n);

	if (q == NULL)
	{
		perror("realloc");
		exit(1);
	}
	return q;
}

/* ---- the latency heap ---- */

static void
heap_push(int64_t at, int fd, unsigned gen)
{
	int			i;

	if (heap_len == heap_cap)
	{
		heap_cap = heap_cap ? heap_cap * 2 : 1024;
		heap = xrealloc(heap, heap_cap * sizeof(Due));
	}
	i = heap_len++;
	while (i > 0 && heap[(i - 1) / 2].at > at)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = (Due) {at, fd, gen};
}

static Due
heap_pop(void)
{
	Due			top = heap[0];
	Due			last = heap[--heap_len];
	int			i = 0;

	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= heap_len)
			break;
		if (c + 1 < heap_len && heap[c + 1].at < heap[c].at)
			c++;
		if (heap[c].at >= last.at)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (heap_len > 0)
		heap[i] = last;
	return top;
}

/* ---- connections ---- */

static void
set_events(Conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = c->fd};

	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_close(Conn *c)
{
	if (c->state == C_WAITING)
		st.in_flight--;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->gen++;
	c->fd = -1;
	c->in_len = c->out_len = c->out_off = 0;
	st.open--;
}

static void
out_append(Conn *c, const char *data, size_t n)
{
	if (c->out_len + n > c->out_cap)
	{
		c->out_cap = (c->out_len + n) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
}

static void
out_printf(Conn *c, const char *fmt,...)
{
	char		buf[4096];
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out_append(c, buf, n < (int) sizeof(buf) ? n : (int) sizeof(buf) - 1);
}

static void
queue_answer(Conn *c, int status, const char *body, size_t body_len)
{
	const char *reason = status == 200 ? "OK" : status == 201 ? "Created" :
		status == 404 ? "Not Found" : status == 400 ? "Bad Request" : "Error";

	out_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\n%s\r\n",
			   status, reason, body_len, c->close_after ? "Connection: close\r\n" : "");
	out_append(c, body, body_len);
}

static void conn_read(Conn *c);

/* Writes what is queued; then reads the next request or closes. */
static void
conn_flush(Conn *c)
{
	while (c->out_off < c->out_len)
	{
		ssize_t		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
		{
			c->state = C_WRITING;
			set_events(c, EPOLLOUT);
			return;
		}
		if (n <= 0)
		{
			conn_close(c);
			return;
		}
		c->out_off += n;
	}
	c->out_len = c->out_off = 0;
	if (c->close_after)
	{
		conn_close(c);
		return;
	}
	c->state = C_READING;
	set_events(c, EPOLLIN);
	if (c->in_len > 0)
		conn_read(c);			/* a pipelined request already here */
}

static void
journal_add(Conn *c, char method, char route, const char *body, size_t body_len, int64_t t)
{
	Entry	   *e;
	const char *key = "\"payout_reference\"";
	char	   *p;

	if (journal_len == journal_cap)
	{
		journal_cap = journal_cap ? journal_cap * 2 : 65536;
		journal = xrealloc(journal, journal_cap * sizeof(Entry));
	}
	e = &journal[journal_len];
	memset(e, 0, sizeof(*e));
	e->seq = ++st.requests;
	e->accept_us = c->accept_us;
	e->arrival_us = t;
	e->method = method;
	e->route = route;
	strcpy(e->reference, "-");
	if (body_len > 0 && (p = memmem(body, body_len, key, strlen(key))) != NULL)
	{
		p += strlen(key);
		while (p < body + body_len && (*p == ' ' || *p == ':' || *p == '"'))
			p++;
		for (int i = 0; i < 38 && p < body + body_len && *p != '"'; i++)
			e->reference[i] = *p++, e->reference[i + 1] = '\0';
	}
	c->journal_index = journal_len++;
}

static void
send_api_answer(Conn *c)
{
	char		body[512];
	int			n;

	if (c->route == 'i')
		n = snprintf(body, sizeof(body),
					 "{\"success\":true,\"message\":\"Payout transaction initialized successfully\","
					 "\"data\":{\"id\":\"%s\"},\"errors\":null}", c->id);
	else if (c->route == 'v')
		n = snprintf(body, sizeof(body),
					 "{\"message\":\"Payout transaction fetched successfully!\","
					 "\"data\":{\"id\":\"%s\",\"status\":\"success\",\"amount\":100,"
					 "\"currency\":{\"code\":\"USD\"}},\"errors\":null}", c->id);
	else
		n = snprintf(body, sizeof(body),
					 "{\"success\":false,\"message\":\"Not found\",\"data\":null,\"errors\":null}");
	queue_answer(c, c->status, body, n);
	if (c->journal_index >= 0 && c->journal_index < journal_len)
	{
		Entry	   *e = &journal[c->journal_index];

		e->answer_us = now_us();
		e->status = c->status;
		st.last_answer_us = e->answer_us;
	}
	c->journal_index = -1;
	st.in_flight--;
	c->state = C_READING;		/* conn_flush decides what comes next */
	conn_flush(c);
}

static void
control(Conn *c, const char *method, const char *path, const char *body, size_t body_len)
{
	if (strcmp(path, "/__mock/health") == 0)
		queue_answer(c, 200, "{\"ok\":true}", 11);
	else if (strcmp(path, "/__mock/reset") == 0)
	{
		long		open = st.open, in_flight = st.in_flight;

		memset(&st, 0, sizeof(st));
		st.open = st.max_open = open;
		st.in_flight = st.max_in_flight = in_flight;
		journal_len = 0;
		queue_answer(c, 200, "{\"ok\":true}", 11);
	}
	else if (strcmp(path, "/__mock/config") == 0)
	{
		char		tmp[256] = "";
		char	   *p;

		memcpy(tmp, body, body_len < sizeof(tmp) - 1 ? body_len : sizeof(tmp) - 1);
		if ((p = strstr(tmp, "\"latency_ms\"")) != NULL && (p = strchr(p, ':')) != NULL)
			latency_ms = strtod(p + 1, NULL);
		char		out[128];
		int			n = snprintf(out, sizeof(out), "{\"latency_ms\":%g}", latency_ms);

		queue_answer(c, 200, out, n);
	}
	else if (strcmp(path, "/__mock/stats") == 0)
	{
		char		out[1024];
		int			n = snprintf(out, sizeof(out),
								 "{\"requests\":%ld,\"creates\":%ld,\"verifies\":%ld,\"others\":%ld,"
								 "\"connections\":%ld,\"in_flight\":%ld,\"max_in_flight\":%ld,"
								 "\"open\":%ld,\"max_open\":%ld,\"first_arrival_us\":%lld,"
								 "\"last_arrival_us\":%lld,\"last_answer_us\":%lld,\"latency_ms\":%g}",
								 st.requests, st.creates, st.verifies, st.others, st.connections,
								 st.in_flight, st.max_in_flight, st.open, st.max_open,
								 (long long) st.first_arrival_us, (long long) st.last_arrival_us,
								 (long long) st.last_answer_us, latency_ms);

		queue_answer(c, 200, out, n);
	}
	else if (strcmp(path, "/__mock/journal") == 0)
	{
		size_t		cap = journal_len * 120 + 1, len = 0;
		char	   *text = malloc(cap);

		for (long i = 0; i < journal_len; i++)
		{
			Entry	   *e = &journal[i];

			len += snprintf(text + len, cap - len, "%ld\t%lld\t%lld\t%lld\t%c\t%c\t%d\t%s\n",
							e->seq, (long long) e->accept_us, (long long) e->arrival_us,
							(long long) e->answer_us, e->method, e->route, e->status,
							e->reference);
		}
		out_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/tab-separated-values\r\n"
				   "Content-Length: %zu\r\n%s\r\n", len,
				   c->close_after ? "Connection: close\r\n" : "");
		out_append(c, text, len);
		free(text);
	}
	else
		queue_answer(c, 404, "{\"error\":\"unknown control route\"}", 33);
	(void) method;
}

/* Parses as many complete requests as the buffer holds (one at a time). */
static void
handle_request(Conn *c)
{
	char	   *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	char		method[16] = "", path[1024] = "", version[16] = "";
	size_t		head_len, content_length = 0, total;
	char	   *line, *body;
	int64_t		t;

	if (end == NULL)
		return;
	head_len = end - c->in + 4;
	*end = '\0';
	if (sscanf(c->in, "%15s %1023s %15s", method, path, version) != 3)
	{
		c->close_after = 1;
		queue_answer(c, 400, "{}", 2);
		c->in_len = 0;
		conn_flush(c);
		return;
	}
	c->close_after = strcmp(version, "HTTP/1.0") == 0;
	for (line = strstr(c->in, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n"))
	{
		if (strncasecmp(line + 2, "content-length:", 15) == 0)
			content_length = strtoul(line + 17, NULL, 10);
		else if (strncasecmp(line + 2, "connection:", 11) == 0 && strcasestr(line + 13, "close") &&
				 (strchr(line + 2, '\r') == NULL || strcasestr(line + 13, "close") < strchr(line + 2, '\r')))
			c->close_after = 1;
	}
	*end = '\r';
	total = head_len + content_length;
	if (total > MAX_REQUEST)
	{
		conn_close(c);
		return;
	}
	if (c->in_len < total)
		return;					/* body still coming */
	body = c->in + head_len;
	t = now_us();

	if (strncmp(path, "/__mock/", 8) == 0)
	{
		control(c, method, path, body, content_length);
		memmove(c->in, c->in + total, c->in_len - total);
		c->in_len -= total;
		conn_flush(c);
		return;
	}

	c->route = 'o';
	c->status = 404;
	if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/payouts/initialize") == 0)
	{
		c->route = 'i';
		c->status = 201;
		snprintf(c->id, sizeof(c->id), "bm%08x%010llx", id_prefix, ++id_counter);
		st.creates++;
	}
	else if (strcmp(method, "GET") == 0 && strncmp(path, "/v1/payouts/", 12) == 0 &&
			 strlen(path) > 19 && strcmp(path + strlen(path) - 7, "/verify") == 0)
	{
		size_t		n = strlen(path) - 12 - 7;

		c->route = 'v';
		c->status = 200;
		if (n >= sizeof(c->id))
			n = sizeof(c->id) - 1;
		memcpy(c->id, path + 12, n);
		c->id[n] = '\0';
		st.verifies++;
	}
	else
		st.others++;
	journal_add(c, method[0] == 'P' ? 'P' : method[0] == 'G' ? 'G' : 'o', c->route,
				body, content_length, t);
	if (st.first_arrival_us == 0)
		st.first_arrival_us = t;
	st.last_arrival_us = t;
	memmove(c->in, c->in + total, c->in_len - total);
	c->in_len -= total;

	st.in_flight++;
	if (st.in_flight > st.max_in_flight)
		st.max_in_flight = st.in_flight;
	c->state = C_WAITING;
	if (latency_ms <= 0)
		send_api_answer(c);
	else
	{
		set_events(c, 0);		/* nothing more is read until it is answered */
		heap_push(t + (int64_t) (latency_ms * 1000), c->fd, c->gen);
	}
}

static void
conn_read(Conn *c)
{
	for (;;)
	{
		ssize_t		n;

		if (c->state != C_READING)
			return;
		if (c->in_len > 0 && memmem(c->in, c->in_len, "\r\n\r\n", 4) != NULL)
		{
			size_t		before = c->in_len;

			handle_request(c);
			if (c->fd < 0)
				return;
			if (c->state != C_READING || c->in_len != before)
				continue;		/* answered or waiting; maybe another queued */
		}
		if (c->in_cap - c->in_len < 4096)
		{
			c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
			c->in = xrealloc(c->in, c->in_cap);
		}
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
		{
			conn_close(c);
			return;
		}
		c->in_len += n;
	}
}

static void
accept_all(int lfd)
{
	for (;;)
	{
		int			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int			one = 1;
		Conn	   *c;
		struct epoll_event ev = {.events = EPOLLIN};

		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (fd >= conns_cap)
		{
			int			cap = fd * 2 + 64;

			conns = xrealloc(conns, cap * sizeof(Conn *));
			memset(conns + conns_cap, 0, (cap - conns_cap) * sizeof(Conn *));
			conns_cap = cap;
		}
		if (conns[fd] == NULL)
			conns[fd] = calloc(1, sizeof(Conn));
		c = conns[fd];
		c->fd = fd;
		c->state = C_READING;
		c->in_len = c->out_len = c->out_off = 0;
		c->close_after = 0;
		c->journal_index = -1;
		c->accept_us = now_us();
		st.connections++;
		st.open++;
		if (st.open > st.max_open)
			st.max_open = st.open;
		ev.data.fd = fd;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int			port = 0;
	int			lfd, one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN}, events[MAX_EVENTS];

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(argv[i], "--latency-ms") == 0 && i + 1 < argc)
			latency_ms = atof(argv[++i]);
		else
		{
			fprintf(stderr, "usage: %s --port PORT [--host 127.0.0.1] [--latency-ms MS]\n", argv[0]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	id_prefix = (unsigned) time(NULL) ^ ((unsigned) getpid() << 16);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_port = htons(port);
	inet_pton(AF_INET, host, &addr.sin_addr);
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0)
	{
		perror("bench_mock: bind/listen");
		return 1;
	}
	{
		socklen_t	len = sizeof(addr);

		getsockname(lfd, (struct sockaddr *) &addr, &len);
		printf("listening on http://%s:%d\n", host, ntohs(addr.sin_port));
		fflush(stdout);
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = lfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);

	while (!stop)
	{
		struct timespec timeout = {0, 0};
		int			n;

		/* to the microsecond: the latency is what the benchmark asked for */
		if (heap_len > 0)
		{
			int64_t		wait = heap[0].at - now_us();

			if (wait > 0)
				timeout = (struct timespec) {wait / 1000000, (wait % 1000000) * 1000};
		}
		n = epoll_pwait2(epfd, events, MAX_EVENTS, heap_len > 0 ? &timeout : NULL, NULL);
		for (int i = 0; i < n; i++)
		{
			int			fd = events[i].data.fd;
			Conn	   *c;

			if (fd == lfd)
			{
				accept_all(lfd);
				continue;
			}
			c = conns[fd];
			if (c == NULL || c->fd < 0)
				continue;
			if (c->state == C_WRITING)
				conn_flush(c);
			else if (c->state == C_READING)
				conn_read(c);
		}
		/* answers whose latency is over; the heap is in due order */
		if (heap_len > 0)
		{
			int64_t		t = now_us();

			while (heap_len > 0 && heap[0].at <= t)
			{
				Due			d = heap_pop();
				Conn	   *c = d.fd < conns_cap ? conns[d.fd] : NULL;

				if (c && c->fd == d.fd && c->gen == d.gen && c->state == C_WAITING)
					send_api_answer(c);
			}
		}
	}
	return 0;
}
