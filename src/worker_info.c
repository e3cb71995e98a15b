/*
 * worker_info.c
 *		moneroo_worker_info and moneroo_account_info: the worker's and the
 *		account's side of the moneroo_status view, read from shared memory.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "account_health.h"
#include "rate_limit.h"
#include "shared_state.h"

PG_FUNCTION_INFO_V1(moneroo_worker_info);
PG_FUNCTION_INFO_V1(moneroo_account_info);

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

/* Since 1.2: the pause of every request, when the key is refused or Moneroo fails. */
Datum
moneroo_account_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false};
	TimestampTz paused_until;
	AccountPause pause = account_pause(&paused_until);

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "moneroo_account_info must return a record");
	values[0] = TimestampTzGetDatum(paused_until);
	nulls[0] = pause == ACCOUNT_OK;
	values[1] = pause == ACCOUNT_OK ? (Datum) 0 : CStringGetTextDatum(account_pause_reason(pause));
	nulls[1] = pause == ACCOUNT_OK;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
