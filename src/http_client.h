/*
 * http_client.h
 *		The one HTTP client every call to Moneroo goes through (libcurl).
 */
#ifndef MONEROO_HTTP_CLIENT_H
#define MONEROO_HTTP_CLIENT_H

#include <curl/curl.h>

#define MONEROO_VERSION "1.1"

/* Longest answer we read: Moneroo's payout objects are a few kilobytes. */
#define HTTP_MAX_RESPONSE_BYTES (1024 * 1024)

/*
 * How far a request got.  The money-safety rules hang on this: only
 * HTTP_NEVER_CONNECTED proves that Moneroo never saw the request.
 */
typedef enum HttpOutcome
{
	HTTP_IN_FLIGHT,
	HTTP_NEVER_CONNECTED,		/* DNS, refused, TLS handshake: nothing sent */
	HTTP_NO_ANSWER,				/* connected, then timeout, reset or cancel */
	HTTP_ANSWERED				/* an HTTP status came back */
} HttpOutcome;

typedef struct HttpCall
{
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *url;
	char	   *request_body;	/* NULL for GET */
	bool		is_https;

	/* the answer, in malloc'd memory: curl callbacks must not palloc */
	char	   *response;
	size_t		response_len;
	bool		response_too_large;
	char		errbuf[CURL_ERROR_SIZE];

	HttpOutcome outcome;
	long		status;			/* HTTP status when HTTP_ANSWERED */
	char	   *error;			/* what went wrong, for last_error; palloc'd */

	/* the caller's bookkeeping */
	int64		payout_id;
	int			purpose;
	void	   *owner;
} HttpCall;

/*
 * A request to path under moneroo.api_url.  body NULL makes a GET.  A POST
 * always opens a fresh connection: libcurl silently re-sends a request whose
 * reused connection turned out dead, and a payout must never be sent twice.
 * Raises a configuration error (no key, bad URL) before anything is sent.
 * The call is allocated in TopMemoryContext; release it with http_call_free.
 */
extern HttpCall *http_call_new(const char *path, const char *body);
extern void http_call_free(HttpCall *call);

/* Runs the call to completion in this backend, cancellable by the user. */
extern void http_call_perform(HttpCall *call);

/* Describes an outcome for users and for last_error. */
extern const char *http_outcome_name(HttpOutcome outcome);

/*
 * Many calls at once for the worker: one libcurl multi handle whose sockets
 * sit in an epoll set that the worker waits on together with its latch.
 */
typedef struct HttpPool HttpPool;

extern HttpPool *http_pool_create(void);
/* Adds a call; it starts at the next http_pool_wait. */
extern void http_pool_add(HttpPool *pool, HttpCall *call);
extern int	http_pool_in_flight(HttpPool *pool);
/* True when finished calls wait to be taken with http_pool_next_done. */
extern bool http_pool_has_finished(HttpPool *pool);

/*
 * Sleeps until the latch is set, a socket is ready, libcurl's timer fires or
 * timeout_ms passes (-1: no limit of our own), then lets libcurl progress.
 * With timeout_ms 0 it only lets libcurl progress: new calls start
 * connecting.
 * Returns the WaitEvent flags that woke it (WL_LATCH_SET, ...).
 */
extern int	http_pool_wait(HttpPool *pool, long timeout_ms, uint32 wait_event_info);

/* Finished calls, one at a time, already classified; NULL when none. */
extern HttpCall *http_pool_next_done(HttpPool *pool);

#endif
