/*
 * sql_functions.c
 *		The SQL-callable functions: moneroo_transfer, moneroo_verify,
 *		moneroo_retry and moneroo_validate.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "utils/timestamp.h"
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
#include "verification.h"

PG_FUNCTION_INFO_V1(moneroo_validate_sql);
PG_FUNCTION_INFO_V1(moneroo_transfer);
PG_FUNCTION_INFO_V1(moneroo_verify);
PG_FUNCTION_INFO_V1(moneroo_retry);
PG_FUNCTION_INFO_V1(moneroo_worker_info);

Datum
moneroo_validate_sql(PG_FUNCTION_ARGS)
{
	moneroo_validate_request(PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0),
							 payout_store_schema());
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

Datum
moneroo_verify(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(moneroo_verify_now(PG_GETARG_INT64(0), true));
}

Datum
moneroo_retry(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *status;
	char	   *moneroo_id;

	payout_store_lookup(id, true, &status, &moneroo_id);
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

/* The worker's side of the moneroo_status view. */
Datum
moneroo_worker_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false};
	pid_t		pid;
	int32		in_flight;
	char		last_error[LAST_ERROR_BYTES];
	TimestampTz last_error_at;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "moneroo_worker_info must return a record");
	SpinLockAcquire(&moneroo_shared->mutex);
	pid = moneroo_shared->worker_pid;
	in_flight = moneroo_shared->in_flight;
	strlcpy(last_error, moneroo_shared->last_error, LAST_ERROR_BYTES);
	last_error_at = moneroo_shared->last_error_at;
	SpinLockRelease(&moneroo_shared->mutex);

	values[0] = BoolGetDatum(pid != 0);
	values[1] = Int32GetDatum(pid);
	nulls[1] = pid == 0;
	values[2] = Int32GetDatum(in_flight);
	values[3] = Int32GetDatum(moneroo_requests_last_minute());
	values[4] = CStringGetTextDatum(last_error);
	nulls[4] = last_error[0] == '\0';
	values[5] = TimestampTzGetDatum(last_error_at);
	nulls[5] = last_error_at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
