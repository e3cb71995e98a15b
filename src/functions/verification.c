/*
 * verification.c
 *		Asking Moneroo now for a payout's status.
 *
 * The worker verifies sent payouts on its own schedule; this is the path
 * for an operator who wants the answer now (moneroo_verify) and for a
 * webhook, which is only a hint that it is worth asking: Moneroo's verify
 * answer, not the webhook's body, decides the payout's state.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "functions/verification.h"
#include "moneroo/http_client.h"
#include "moneroo/moneroo_api.h"
#include "shmem/account_health.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "table/audit_trail.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/verify_schedule.h"

PG_FUNCTION_INFO_V1(moneroo_verify);

/* Waits, interruptibly, for the rate limiter to let one request leave. */
static void
wait_for_rate_limit(void)
{
	long		wait_ms;

	while ((wait_ms = moneroo_rate_acquire()) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(wait_ms, 1000), moneroo_wait_event(MONEROO_WAIT_RATE_LIMIT));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

VerifyAsk
moneroo_ask(const char *moneroo_id, bool may_wait, MonerooAnswer *answer)
{
	HttpCall   *call;
	volatile bool ok = false;
	volatile long http_status = 0;

	if (may_wait)
		wait_for_rate_limit();
	else if (moneroo_rate_acquire() > 0)
		return ASK_NO_ROOM;

	call = http_call_new(CurrentMemoryContext, moneroo_verify_path(moneroo_id), NULL);
	PG_TRY();
	{
		http_call_perform(call);
		ok = moneroo_read_verify(call, moneroo_id, answer);
		account_note_verify(call);
		if (call->outcome == HTTP_ANSWERED)
			http_status = call->status;
	}
	PG_FINALLY();
	{
		http_call_free(call);
	}
	PG_END_TRY();
	CHECK_FOR_INTERRUPTS();

	if (answer->rate_limited)
		moneroo_rate_limited();
	if (ok)
		return ASK_ANSWERED;
	return http_status == 404 ? ASK_UNKNOWN_ID : ASK_FAILED;
}

Datum
moneroo_verify_now(int64 id, bool may_wait)
{
	/* no row lock: it would be held through the rate wait and the request */
	PayoutKeys	keys = payout_lookup_keys(id, false);
	MonerooAnswer answer;

	if (keys.moneroo_id == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld has no Moneroo id to verify: it is %s", (long long) id,
					   payout_status_name(keys.status)),
				errdetail("Only payouts that Moneroo accepted carry an id."),
				errhint("For an unknown payout, look for its reference in Moneroo's dashboard, then use moneroo_resolve() if it exists or moneroo_retry() if it does not."));

	switch (moneroo_ask(keys.moneroo_id, may_wait, &answer))
	{
		case ASK_NO_ROOM:
			payout_store_schedule_verification(id, GetCurrentTimestamp());
			moneroo_wake_worker();
			break;
		case ASK_ANSWERED:
			payout_store_record_verify(id, keys.moneroo_id, true, &answer,
									   verify_delay_ms(NULL, 0));
			break;
		case ASK_UNKNOWN_ID:
		case ASK_FAILED:
			ereport(ERROR,
					errcode(ERRCODE_CONNECTION_FAILURE),
					errmsg("could not verify payout %lld with Moneroo", (long long) id),
					errdetail("%s", answer.error),
					errhint("The payout is unchanged; the worker keeps verifying it on its own schedule."));
	}
	return payout_lookup_row(id);
}

Datum
moneroo_verify(PG_FUNCTION_ARGS)
{
	Datum		row;

	audit_set_action("moneroo_verify");
	row = moneroo_verify_now(PG_GETARG_INT64(0), true);
	audit_set_action(NULL);
	PG_RETURN_DATUM(row);
}
