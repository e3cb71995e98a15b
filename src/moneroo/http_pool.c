/*
 * http_pool.c
 *		Many calls to Moneroo at once, for the worker.
 *
 * One libcurl multi handle drives every request in flight; its sockets sit
 * in an epoll set, which is itself one descriptor in the WaitEventSet the
 * worker sleeps on beside its latch.  A call finishes on its own, and its
 * slot frees as soon as its own request ends.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat/compat.h"
#include "moneroo/http_pool.h"

struct HttpPool
{
	CURLM	   *multi;
	int			epoll_fd;
	WaitEventSet *wait_set;
	int			in_flight;
	TimestampTz timer_deadline; /* when libcurl wants to act; 0: no wish */
	List	   *done;			/* finished HttpCalls */
};

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
	pool->wait_set = compat_create_wait_event_set(3);
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
		http_call_classify(call, msg->data.result);
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
	sigset_t	blocked;
	sigset_t	unblocked;

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

	/*
	 * Let libcurl act on every ready socket, then on its timer.  Acting, it
	 * may start a thread to resolve a host name, and a thread starts with
	 * its creator's signal mask: blocked here, so that the worker's signal
	 * handlers run only in its own thread, between the steps whose order
	 * they rely on (worker_transaction.c).
	 */
	blocked = BlockSig;
	sigdelset(&blocked, SIGQUIT);	/* an immediate stop is not held up by a slow resolver */
	pthread_sigmask(SIG_SETMASK, &blocked, &unblocked);
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
	pthread_sigmask(SIG_SETMASK, &unblocked, NULL);

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
