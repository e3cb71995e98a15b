/*
 * payout_lookup.c
 *		Every read the extension makes of the payouts table, through SPI.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "payout_lookup.h"
#include "payouts_table.h"

/*
 * The payouts row whose column equals value, as a composite, read with the
 * latest snapshot: the worker may have written it after the caller's
 * snapshot was taken, even in REPEATABLE READ.
 */
static bool
fetch_row(const char *condition, Oid type, Datum value, Datum *row)
{
	bool		found;
	bool		isnull;

	SPI_connect();
	payouts_execute(psprintf("SELECT p FROM %s p WHERE %s", payouts_table_name(), condition),
					1, &type, &value, NULL, true, GetLatestSnapshot());
	found = SPI_processed == 1;
	if (found)
		*row = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull),
								 false, -1);
	SPI_finish();
	return found;
}

static pg_attribute_noreturn() void
payout_not_found(int64 id)
{
	ereport(ERROR,
			errcode(ERRCODE_NO_DATA_FOUND),
			errmsg("payout %lld does not exist", (long long) id),
			errhint("Payout ids are in the id column of the payouts table."));
}

Datum
payout_lookup_row(int64 id)
{
	Datum		row = (Datum) 0;

	if (!fetch_row("id = $1", INT8OID, Int64GetDatum(id), &row))
		payout_not_found(id);
	return row;
}

bool
payout_lookup_row_by_reference(const char *reference, Datum *row)
{
	return fetch_row("reference = $1::uuid", TEXTOID, CStringGetTextDatum(reference), row);
}

PayoutStatus
payout_lookup_status(int64 id, bool for_update, char **moneroo_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	PayoutStatus status;
	char	   *found_id;

	SPI_connect();
	payouts_execute(psprintf("SELECT status, moneroo_id FROM %s WHERE id = $1%s",
							 payouts_table_name(), for_update ? " FOR UPDATE" : ""),
					1, types, values, NULL, !for_update, InvalidSnapshot);
	if (SPI_processed != 1)
		payout_not_found(id);
	status = payout_status_from_name(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	found_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*moneroo_id = found_id ? MemoryContextStrdup(caller, found_id) : NULL;
	SPI_finish();
	return status;
}

bool
payout_lookup_by_moneroo_id(const char *moneroo_id, int64 *id, PayoutStatus *status)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(moneroo_id)};
	bool		found;
	bool		isnull;

	SPI_connect();
	payouts_execute(psprintf("SELECT id, status FROM %s WHERE moneroo_id = $1",
							 payouts_table_name()),
					1, types, values, NULL, true, InvalidSnapshot);
	found = SPI_processed == 1;
	if (found)
	{
		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*status = payout_status_from_name(SPI_getvalue(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2));
	}
	SPI_finish();
	return found;
}

long
payout_lookup_next_due_ms(void)
{
	long		due_ms = -1;
	bool		isnull;
	Datum		ms;

	SPI_connect();
	payouts_execute(psprintf("SELECT ceil(extract(epoch FROM least("
							 "  (SELECT min(next_attempt_at) FROM %1$s WHERE status = 'sent'),"
							 "  (SELECT min(next_attempt_at) FROM %1$s WHERE status = 'pending'))"
							 "  - clock_timestamp()) * 1000)::int8",
							 payouts_table_name()),
					0, NULL, NULL, NULL, true, InvalidSnapshot);
	ms = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		due_ms = Max(DatumGetInt64(ms), 0);
	SPI_finish();
	return due_ms;
}
