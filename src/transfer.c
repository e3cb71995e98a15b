/*
 * transfer.c
 *		Sending one payout now, for moneroo_transfer.
 *
 * An ERROR is raised only where no money moved: the caller can then retry
 * with a clear conscience.  Where the outcome is unknown the row is
 * returned with a WARNING instead, since an error would invite a retry
 * that could pay twice.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/wait_event.h"

#include "http_client.h"
#include "moneroo_api.h"
#include "payout_store.h"
#include "settings.h"
#include "shared_state.h"
#include "transfer.h"

static int
refusal_errcode(HttpCall *call)
{
	if (call->status == 401 || call->status == 403)
		return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	if (call->status == 400 || call->status == 422)
		return ERRCODE_INVALID_PARAMETER_VALUE;
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

Datum
moneroo_transfer_now(Jsonb *request)
{
	char	   *reference;
	int64		id;
	HttpCall   *call;
	MonerooAnswer answer;
	SendVerdict verdict;
	long		status;
	long		wait_ms;

	while ((wait_ms = moneroo_rate_acquire()) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(wait_ms, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	id = payout_store_insert_sending(request, &reference);
	call = http_call_new("/v1/payouts/initialize", moneroo_initialize_body(request, reference));
	http_call_perform(call);
	verdict = moneroo_read_initialize(call, &answer);
	status = call->status;
	if (answer.rate_limited)
		moneroo_rate_pause(60 * 1000);
	payout_store_record_send(id, verdict, &answer, 0);

	switch (verdict)
	{
		case SEND_ACCEPTED:
			break;
		case SEND_UNKNOWN:
			moneroo_note_error(answer.error);
			ereport(WARNING,
					errcode(ERRCODE_WARNING),
					errmsg("outcome of payout %lld is unknown", (long long) id),
					errdetail("%s", answer.error),
					errhint("Do not pay again until you have checked Moneroo for reference %s; then use moneroo_retry(%lld) if it does not exist.",
							reference, (long long) id));
			break;
		case SEND_REFUSED:
			ereport(ERROR,
					errcode(refusal_errcode(call)),
					errmsg("Moneroo refused payout %lld (HTTP %ld)", (long long) id, status),
					errdetail("%s", answer.detail ? answer.detail : answer.error),
					status == 401 || status == 403 ?
					errhint("Check moneroo.secret_key: Moneroo did not accept it.") :
					errhint("Correct the request and send it again; nothing was paid."));
			break;
		case SEND_NOT_SENT:
			ereport(ERROR,
					errcode(answer.rate_limited ? ERRCODE_CONFIGURATION_LIMIT_EXCEEDED :
							ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					errmsg("payout %lld was not sent: %s", (long long) id,
						   answer.rate_limited ? "Moneroo's rate limit was reached" :
						   "could not connect to Moneroo"),
					errdetail("%s", answer.error),
					errhint("Nothing was paid; try again later. Check moneroo.api_url if this persists."));
			break;
	}
	http_call_free(call);
	CHECK_FOR_INTERRUPTS();
	return payout_store_fetch(id);
}
