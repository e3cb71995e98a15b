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
#include "utils/wait_event.h"

#include "http_client.h"
#include "moneroo_api.h"
#include "payout_lookup.h"
#include "payout_store.h"
#include "rate_limit.h"
#include "settings.h"
#include "shared_state.h"
#include "verification.h"

PG_FUNCTION_INFO_V1(moneroo_verify);

/* Waits, interruptibly, for the rate limiter to let one request leave. */
static void
wait_for_rate_limit(void)
{
	long		wait_ms;

	while ((wait_ms = moneroo_rate_acquire()) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(wait_ms, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

Datum
moneroo_verify_now(int64 id, bool may_wait)
{
	PayoutStatus status;
	char	   *moneroo_id;
	char	   *path;
	HttpCall   *call;
	MonerooAnswer answer;
	volatile bool ok = false;

	/* no row lock: it would be held through the rate wait and the request */
	status = payout_lookup_status(id, false, &moneroo_id);
	if (moneroo_id == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld has no Moneroo id to verify: it is %s", (long long) id,
					   payout_status_name(status)),
				errdetail("Only payouts that Moneroo accepted carry an id."),
				errhint("For an unknown payout, look for its reference in Moneroo's dashboard, then use moneroo_retry() if it does not exist."));

	if (may_wait)
		wait_for_rate_limit();
	else if (moneroo_rate_acquire() > 0)
	{
		payout_store_schedule_verification(id);
		moneroo_wake_worker();
		return payout_lookup_row(id);
	}

	path = moneroo_verify_path(moneroo_id);
	call = http_call_new(CurrentMemoryContext, path, NULL);
	PG_TRY();
	{
		http_call_perform(call);
		ok = moneroo_read_verify(call, moneroo_id, &answer);
	}
	PG_FINALLY();
	{
		http_call_free(call);
	}
	PG_END_TRY();
	CHECK_FOR_INTERRUPTS();

	if (answer.rate_limited)
		moneroo_rate_pause(RATE_LIMIT_PAUSE_MS);
	if (!ok)
		ereport(ERROR,
				errcode(ERRCODE_CONNECTION_FAILURE),
				errmsg("could not verify payout %lld with Moneroo", (long long) id),
				errdetail("%s", answer.error),
				errhint("The payout is unchanged; the worker keeps verifying it on its own schedule."));

	payout_store_record_verify(id, moneroo_id, true, &answer, moneroo_verify_backoff_ms(0));
	return payout_lookup_row(id);
}

Datum
moneroo_verify(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(moneroo_verify_now(PG_GETARG_INT64(0), true));
}
