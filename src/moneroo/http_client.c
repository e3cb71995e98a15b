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

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "moneroo/http_client.h"

/* Connecting is quick or it is not going to happen. */
#define CONNECT_TIMEOUT_MAX_MS 10000

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

/*
 * Runs when the call's context is deleted or reset, however that comes
 * about (http_call_free, the owner's context, an aborted transaction):
 * libcurl's handles and malloc'd answer go with the call.
 */
static void
release_curl(void *arg)
{
	HttpCall   *call = (HttpCall *) arg;

	if (call->easy)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->response);
}

HttpCall *
http_call_new(MemoryContext parent, const char *path, const char *body)
{
	/* first, so that a configuration error leaves nothing allocated */
	const char *key = moneroo_get_secret_key();
	MemoryContext context = AllocSetContextCreate(parent, "moneroo HTTP call",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	HttpCall   *call = palloc0(sizeof(HttpCall));
	MemoryContextCallback *release = palloc0(sizeof(MemoryContextCallback));
	size_t		base_len = strlen(moneroo_api_url);
	char	   *authorization;
	long		connect_timeout;

	call->context = context;
	release->func = release_curl;
	release->arg = call;
	MemoryContextRegisterResetCallback(context, release);

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
	MemoryContextDelete(call->context);
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

void
http_call_classify(HttpCall *call, CURLcode rc)
{
	curl_off_t	connected_us = 0;
	long		status = 0;
	MemoryContext old;

	curl_easy_getinfo(call->easy,
					  call->is_https ? CURLINFO_APPCONNECT_TIME_T : CURLINFO_CONNECT_TIME_T,
					  &connected_us);
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);

	old = MemoryContextSwitchTo(call->context);
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

	pgstat_report_wait_start(moneroo_wait_event(MONEROO_WAIT_REQUEST));
	rc = curl_easy_perform(call->easy);
	pgstat_report_wait_end();
	http_call_classify(call, rc);
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
