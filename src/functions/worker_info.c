/*
 * worker_info.c
 *		moneroo_worker_info and moneroo_account_info: this database's
 *		worker's and the account's side of the moneroo_status view, and
 *		moneroo_rate_info, the account's rate limit, read from shared memory.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shmem/account_health.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"

PG_FUNCTION_INFO_V1(moneroo_worker_info);
PG_FUNCTION_INFO_V1(moneroo_account_info);
PG_FUNCTION_INFO_V1(moneroo_rate_info);

Datum
moneroo_worker_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false};
	ServedWorkerInfo info;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "moneroo_worker_info must return a record");
	served_worker_info(&info);

	values[0] = BoolGetDatum(info.worker_pid != 0);
	values[1] = Int32GetDatum(info.worker_pid);
	nulls[1] = info.worker_pid == 0;
	values[2] = Int32GetDatum(info.in_flight);
	/* the account's: every database's requests count against one limit */
	values[3] = Int32GetDatum(moneroo_requests_last_minute());
	values[4] = CStringGetTextDatum(info.last_error);
	nulls[4] = info.last_error[0] == '\0';
	values[5] = TimestampTzGetDatum(info.last_error_at);
	nulls[5] = info.last_error_at == 0;
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

/*
 * Since 1.3: the account's requests and Moneroo's 429 answers, for
 * monitoring (moneroo-exporter.yml).  The count is a counter in
 * Prometheus's sense: it starts again at 0 when the server does.
 */
Datum
moneroo_rate_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false};
	TimestampTz paused_until;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "moneroo_rate_info must return a record");
	values[0] = Int32GetDatum(moneroo_requests_last_minute());
	values[1] = Int64GetDatum(moneroo_rate_limited_count(&paused_until));
	values[2] = TimestampTzGetDatum(paused_until);
	nulls[2] = paused_until == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
