/*
 * sql_functions.c
 *		The SQL-callable functions: moneroo_transfer, moneroo_verify,
 *		moneroo_retry and moneroo_validate.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/wait_event.h"

#include "http_client.h"
#include "moneroo_api.h"
#include "payout_store.h"
#include "request_validator.h"
#include "settings.h"
#include "shared_state.h"
#include "transfer.h"

PG_FUNCTION_INFO_V1(moneroo_validate_sql);
PG_FUNCTION_INFO_V1(moneroo_transfer);
PG_FUNCTION_INFO_V1(moneroo_verify);
PG_FUNCTION_INFO_V1(moneroo_retry);

Datum
moneroo_validate_sql(PG_FUNCTION_ARGS)
{
	moneroo_validate_request(PG_GETARG_JSONB_P(0), payout_store_schema());
	PG_RETURN_VOID();
}

Datum
moneroo_transfer(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);

	moneroo_validate_request(request, payout_store_schema());
	moneroo_check_configuration();
	PG_RETURN_DATUM(moneroo_transfer_now(request));
}

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

/*
 * Delay before the next verification of a payout verified n times:
 * doubling from moneroo.verify_min_interval up to verify_max_interval.
 */
int
moneroo_verify_backoff_ms(int verifications)
{
	int64		delay = moneroo_verify_min_interval_ms;

	for (int i = 0; i < verifications && delay < moneroo_verify_max_interval_ms; i++)
		delay *= 2;
	return (int) Min(delay, (int64) moneroo_verify_max_interval_ms);
}

Datum
moneroo_verify(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *status;
	char	   *moneroo_id;
	HttpCall   *call;
	MonerooAnswer answer;
	bool		ok;

	if (!payout_store_lock(id, &status, &moneroo_id))
		ereport(ERROR,
				errcode(ERRCODE_NO_DATA_FOUND),
				errmsg("payout %lld does not exist", (long long) id));
	if (moneroo_id == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld has no Moneroo id to verify: it is %s", (long long) id, status),
				errdetail("Only payouts that Moneroo accepted carry an id."),
				errhint("For an unknown payout, look for its reference in Moneroo's dashboard, then use moneroo_retry() if it does not exist."));

	wait_for_rate_limit();
	call = http_call_new(moneroo_verify_path(moneroo_id), NULL);
	http_call_perform(call);
	ok = moneroo_read_verify(call, moneroo_id, &answer);
	http_call_free(call);
	CHECK_FOR_INTERRUPTS();

	if (answer.rate_limited)
		moneroo_rate_pause(60 * 1000);
	if (!ok)
		ereport(ERROR,
				errcode(ERRCODE_CONNECTION_FAILURE),
				errmsg("could not verify payout %lld with Moneroo", (long long) id),
				errdetail("%s", answer.error),
				errhint("The payout is unchanged; the worker keeps verifying it on its own schedule."));

	payout_store_record_verify(id, true, &answer, moneroo_verify_backoff_ms(0));
	PG_RETURN_DATUM(payout_store_fetch(id));
}

Datum
moneroo_retry(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *status;
	char	   *moneroo_id;

	if (!payout_store_lock(id, &status, &moneroo_id))
		ereport(ERROR,
				errcode(ERRCODE_NO_DATA_FOUND),
				errmsg("payout %lld does not exist", (long long) id));
	if (strcmp(status, "unknown") != 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld is %s, not unknown", (long long) id, status),
				errdetail("Only a payout whose fate is unknown can be put back in the queue."),
				strcmp(status, "pending") == 0 ?
				errhint("It is already queued.") :
				errhint("Insert a new payout to pay again."));

	payout_store_requeue(id);
	PG_RETURN_DATUM(payout_store_fetch(id));
}
