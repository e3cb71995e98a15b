/*
 * http_client.h
 *		The one HTTP client every call to Moneroo goes through (libcurl).
 */
#ifndef MONEROO_HTTP_CLIENT_H
#define MONEROO_HTTP_CLIENT_H

#include <curl/curl.h>

#include "utils/palloc.h"

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
	MemoryContext context;		/* holds the call; deleting it frees everything */
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
	char	   *error;			/* what went wrong, for last_error */

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
 * The call lives in a memory context of its own under parent: deleting
 * parent, or http_call_free, releases it with its libcurl handles.
 */
extern HttpCall *http_call_new(MemoryContext parent, const char *path, const char *body);
extern void http_call_free(HttpCall *call);

/* Runs the call to completion in this backend, cancellable by the user. */
extern void http_call_perform(HttpCall *call);

/* Decides how far a call that libcurl finished with rc got; see HttpOutcome. */
extern void http_call_classify(HttpCall *call, CURLcode rc);

/* Describes an outcome for users and for last_error. */
extern const char *http_outcome_name(HttpOutcome outcome);

#endif
