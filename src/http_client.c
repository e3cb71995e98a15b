/*
 * http_client.c
 *		Every request to Moneroo, from a backend or from the worker.
 *
 * The client's job beyond moving bytes is to say how far a request got,
 * because that decides whether a payout may be retried: a request whose
 * connection was never established cannot have created a payout; anything
 * after the connection may have.  libcurl keeps its own malloc: routing it
 * through palloc has crashed other extensions, and its callbacks must never
 * raise a PostgreSQL error through libcurl's stack frames.
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <unistd.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "http_client.h"
#include "settings.h"

/* Connecting is quick or it is not going to happen. */
#define CONNECT_TIMEOUT_MAX_MS 10000

struct HttpPool
{
	CURLM	   *multi;
	int			epoll_fd;
	WaitEventSet *wait_set;
	int			in_flight;
	TimestampTz timer_deadline; /* when libcurl wants to act; 0: no wish */
	List	   *done;			/* finished HttpCalls */
};

static size_t
collect_response(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpCall   *call = (HttpCall *) userdata;
	size_t		n = size * nmemb;
	char	   *grown;

	if (call->response_len + n > HTTP_MAX_RESPONSE_BYTES)
	{
		call->response_too_large = true;
		return 0;				/* makes libcurl stop with CURLE_WRITE_ERROR */
	}
	grown = realloc(call->response, call->response_len + n + 1);
	if (grown == NULL)
		return 0;
	call->response = grown;
	memcpy(call->response + call->response_len, data, n);
	call->response_len += n;
	call->response[call->response_len] = '\0';
	return n;
}

/* Lets a user's query cancel or statement_timeout stop a backend's call. */
static int
check_cancel(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			 curl_off_t ultotal, curl_off_t ulnow)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

#define SET_OPT(call, option, value) \
	do { \
		if (curl_easy_setopt((call)->easy, (option), (value)) != CURLE_OK) \
			elog(ERROR, "could not set libcurl option %s", #option); \
	} while (0)

HttpCall *
http_call_new(const char *path, const char *body)
{
	/* first, so that a configuration error leaves nothing allocated */
	const char *key = moneroo_get_secret_key();
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	HttpCall   *call = palloc0(sizeof(HttpCall));
	size_t		base_len = strlen(moneroo_api_url);
	char	   *authorization;
	long		connect_timeout;

	while (base_len > 0 && moneroo_api_url[base_len - 1] == '/')
		base_len--;
	call->url = psprintf("%.*s%s", (int) base_len, moneroo_api_url, path);
	call->is_https = pg_strncasecmp(call->url, "https:", 6) == 0;
	call->outcome = HTTP_IN_FLIGHT;
	if (body != NULL)
		call->request_body = pstrdup(body);

	authorization = psprintf("Authorization: Bearer %s", key);
	call->headers = curl_slist_append(NULL, authorization);
	explicit_bzero(authorization, strlen(authorization));
	pfree(authorization);
	call->headers = curl_slist_append(call->headers, "Accept: application/json");
	call->headers = curl_slist_append(call->headers, "Content-Type: application/json");
	/* no "Expect: 100-continue" round trip for bodies over 1 kB */
	call->headers = curl_slist_append(call->headers, "Expect:");
	MemoryContextSwitchTo(old);

	call->easy = curl_easy_init();
	if (call->easy == NULL || call->headers == NULL)
	{
		http_call_free(call);
		ereport(ERROR,
				errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("could not prepare a request to Moneroo"));
	}

	connect_timeout = Min(moneroo_request_timeout_ms, CONNECT_TIMEOUT_MAX_MS);
	SET_OPT(call, CURLOPT_URL, call->url);
	SET_OPT(call, CURLOPT_PROTOCOLS_STR, "https,http");
	SET_OPT(call, CURLOPT_FOLLOWLOCATION, 0L);
	SET_OPT(call, CURLOPT_SSL_VERIFYPEER, 1L);
	SET_OPT(call, CURLOPT_SSL_VERIFYHOST, 2L);
	if (moneroo_ca_bundle != NULL && moneroo_ca_bundle[0] != '\0')
		SET_OPT(call, CURLOPT_CAINFO, moneroo_ca_bundle);
	SET_OPT(call, CURLOPT_NOSIGNAL, 1L);
	SET_OPT(call, CURLOPT_TIMEOUT_MS, (long) moneroo_request_timeout_ms);
	SET_OPT(call, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
	SET_OPT(call, CURLOPT_USERAGENT, "moneroo-postgresql/" MONEROO_VERSION " PostgreSQL/" PG_VERSION);
	SET_OPT(call, CURLOPT_HTTPHEADER, call->headers);
	SET_OPT(call, CURLOPT_WRITEFUNCTION, collect_response);
	SET_OPT(call, CURLOPT_WRITEDATA, call);
	SET_OPT(call, CURLOPT_ERRORBUFFER, call->errbuf);
	SET_OPT(call, CURLOPT_PRIVATE, call);
	if (body != NULL)
	{
		SET_OPT(call, CURLOPT_POSTFIELDS, call->request_body);
		SET_OPT(call, CURLOPT_POSTFIELDSIZE, (long) strlen(call->request_body));
		SET_OPT(call, CURLOPT_FRESH_CONNECT, 1L);
		SET_OPT(call, CURLOPT_FORBID_REUSE, 1L);
	}
	return call;
}

void
http_call_free(HttpCall *call)
{
	if (call == NULL)
		return;
	if (call->easy)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->response);
	if (call->url)
		pfree(call->url);
	if (call->request_body)
		pfree(call->request_body);
	if (call->error)
		pfree(call->error);
	pfree(call);
}

static bool
failed_before_connecting(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
			return true;
		default:
			return false;
	}
}

/* Decides how far a finished call got; see HttpOutcome. */
static void
classify(HttpCall *call, CURLcode rc)
{
	curl_off_t	connected_us = 0;
	long		status = 0;
	MemoryContext old;

	curl_easy_getinfo(call->easy,
					  call->is_https ? CURLINFO_APPCONNECT_TIME_T : CURLINFO_CONNECT_TIME_T,
					  &connected_us);
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (rc == CURLE_OK)
	{
		call->outcome = HTTP_ANSWERED;
		call->status = status;
	}
	else if (rc == CURLE_WRITE_ERROR && call->response_too_large && status > 0)
	{
		call->outcome = HTTP_ANSWERED;
		call->status = status;
		call->error = psprintf("Moneroo answered HTTP %ld with a body larger than %d bytes",
							   status, HTTP_MAX_RESPONSE_BYTES);
	}
	else
	{
		/*
		 * A POST always has a fresh connection, so "connected" is exact for
		 * every request that can create a payout.
		 */
		bool		never_connected = failed_before_connecting(rc) || connected_us == 0;

		call->outcome = never_connected ? HTTP_NEVER_CONNECTED : HTTP_NO_ANSWER;
		call->error = psprintf("%s: %s",
							   never_connected ? "could not connect to Moneroo" :
							   "no answer from Moneroo after the request was sent",
							   call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
	}
	MemoryContextSwitchTo(old);
}

void
http_call_perform(HttpCall *call)
{
	CURLcode	rc;

	SET_OPT(call, CURLOPT_XFERINFOFUNCTION, check_cancel);
	SET_OPT(call, CURLOPT_NOPROGRESS, 0L);

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	rc = curl_easy_perform(call->easy);
	pgstat_report_wait_end();
	classify(call, rc);
}

const char *
http_outcome_name(HttpOutcome outcome)
{
	switch (outcome)
	{
		case HTTP_IN_FLIGHT:
			return "in flight";
		case HTTP_NEVER_CONNECTED:
			return "never connected";
		case HTTP_NO_ANSWER:
			return "sent, no answer";
		case HTTP_ANSWERED:
			return "answered";
	}
	return "?";
}

/* ---- the worker's pool of concurrent calls ---- */

static int
track_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	HttpPool   *pool = (HttpPool *) userp;
	struct epoll_event ev = {0};

	ev.data.fd = fd;
	if (what == CURL_POLL_REMOVE)
	{
		epoll_ctl(pool->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		curl_multi_assign(pool->multi, fd, NULL);
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) |
		((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (socketp == NULL)
	{
		epoll_ctl(pool->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
		curl_multi_assign(pool->multi, fd, pool);
	}
	else
		epoll_ctl(pool->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
	return 0;
}

/* libcurl speaks in delays from now; kept as a deadline so it never ages */
static int
track_timer(CURLM *multi, long timeout_ms, void *userp)
{
	((HttpPool *) userp)->timer_deadline = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

HttpPool *
http_pool_create(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	HttpPool   *pool = palloc0(sizeof(HttpPool));

	pool->multi = curl_multi_init();
	pool->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (pool->multi == NULL || pool->epoll_fd < 0)
		elog(ERROR, "could not create the HTTP pool: %m");
	curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, track_socket);
	curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool);
	curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, track_timer);
	curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool);

	/*
	 * The epoll set of libcurl's sockets is itself one readable descriptor,
	 * so a single WaitEventSet covers the latch, postmaster death and every
	 * request in flight, without rebuilding anything per request.
	 */
	pool->wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(pool->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(pool->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(pool->wait_set, WL_SOCKET_READABLE, pool->epoll_fd, NULL, NULL);
	MemoryContextSwitchTo(old);
	return pool;
}

void
http_pool_add(HttpPool *pool, HttpCall *call)
{
	if (curl_multi_add_handle(pool->multi, call->easy) != CURLM_OK)
		elog(ERROR, "could not add a request to the HTTP pool");
	pool->in_flight++;
}

int
http_pool_in_flight(HttpPool *pool)
{
	return pool->in_flight;
}

bool
http_pool_has_finished(HttpPool *pool)
{
	return pool->done != NIL;
}

static void
collect_finished(HttpPool *pool)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL)
	{
		HttpCall   *call = NULL;
		MemoryContext old;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call);
		classify(call, msg->data.result);
		curl_multi_remove_handle(pool->multi, msg->easy_handle);
		pool->in_flight--;
		old = MemoryContextSwitchTo(TopMemoryContext);
		pool->done = lappend(pool->done, call);
		MemoryContextSwitchTo(old);
	}
}

int
http_pool_wait(HttpPool *pool, long timeout_ms, uint32 wait_event_info)
{
	WaitEvent	event;
	struct epoll_event ready[64];
	int			running;
	int			nready;
	int			woke = 0;

	/*
	 * libcurl's timer matters only while it has requests: a stale deadline
	 * left by the last one (a refused connection, say) must not make us spin.
	 */
	if (pool->in_flight > 0 && pool->timer_deadline != 0)
	{
		long		timer_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															   pool->timer_deadline);

		if (timeout_ms < 0 || timer_ms < timeout_ms)
			timeout_ms = timer_ms;
	}

	if (timeout_ms != 0 &&
		WaitEventSetWait(pool->wait_set, timeout_ms, &event, 1, wait_event_info) == 1)
	{
		woke = event.events;
		if (event.events & WL_LATCH_SET)
			ResetLatch(MyLatch);
	}

	/* Let libcurl act on every ready socket, then on its timer. */
	do
	{
		nready = epoll_wait(pool->epoll_fd, ready, lengthof(ready), 0);
		for (int i = 0; i < nready; i++)
		{
			int			flags = ((ready[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
				((ready[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
				((ready[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);

			curl_multi_socket_action(pool->multi, ready[i].data.fd, flags, &running);
		}
	} while (nready == lengthof(ready));
	curl_multi_socket_action(pool->multi, CURL_SOCKET_TIMEOUT, 0, &running);

	collect_finished(pool);
	return woke;
}

HttpCall *
http_pool_next_done(HttpPool *pool)
{
	HttpCall   *call;

	if (pool->done == NIL)
		return NULL;
	call = linitial(pool->done);
	pool->done = list_delete_first(pool->done);
	return call;
}
