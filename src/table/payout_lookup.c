/*
 * payout_lookup.c
 *		Every read the extension makes of the payouts table, through SPI.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "compat/compat.h"
#include "table/payout_lookup.h"
#include "table/payouts_table.h"

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

pg_noreturn static void
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

bool
payout_lookup_row_by_idempotency_key(const char *key, Jsonb *request, Datum *row,
									 bool *same_request)
{
	Oid			types[2] = {TEXTOID, JSONBOID};
	Datum		values[2] = {CStringGetTextDatum(key), JsonbPGetDatum(request)};
	char		nulls[2] = {' ', request ? ' ' : 'n'};
	bool		found;
	bool		isnull;

	SPI_connect();
	payouts_execute(psprintf("SELECT p, p.request = $2 FROM %s p WHERE idempotency_key = $1",
							 payouts_table_name()),
					2, types, values, nulls, true, GetLatestSnapshot());
	found = SPI_processed == 1;
	if (found)
	{
		Datum		same = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		*same_request = !isnull && DatumGetBool(same);
		*row = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull),
								 false, -1);
	}
	SPI_finish();
	return found;
}

/* Reads (id, status, reference, moneroo_id) rows; true when there was one. */
static bool
keys_from_row(MemoryContext caller, PayoutKeys *keys)
{
	HeapTuple	row;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	char	   *moneroo_id;
	bool		isnull;

	if (SPI_processed != 1)
		return false;
	row = SPI_tuptable->vals[0];
	keys->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	keys->status = payout_status_from_name(SPI_getvalue(row, desc, 2));
	keys->reference = MemoryContextStrdup(caller, SPI_getvalue(row, desc, 3));
	moneroo_id = SPI_getvalue(row, desc, 4);
	keys->moneroo_id = moneroo_id ? MemoryContextStrdup(caller, moneroo_id) : NULL;
	return true;
}

PayoutKeys
payout_lookup_keys(int64 id, bool for_update)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	PayoutKeys	keys;

	SPI_connect();
	payouts_execute(psprintf("SELECT id, status, reference, moneroo_id FROM %s WHERE id = $1%s",
							 payouts_table_name(), for_update ? " FOR UPDATE" : ""),
					1, types, values, NULL, !for_update, InvalidSnapshot);
	if (!keys_from_row(caller, &keys))
		payout_not_found(id);
	SPI_finish();
	return keys;
}

HeldPayout
payout_lookup_held(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	HeldPayout	held = {0};
	HeapTuple	row;
	TupleDesc	desc;
	char	   *created_by;
	bool		isnull;

	SPI_connect();
	payouts_execute(psprintf("SELECT created_by, currency, amount FROM %s WHERE id = $1",
							 payouts_table_name()),
					1, types, values, NULL, true, InvalidSnapshot);
	if (SPI_processed != 1)
		payout_not_found(id);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	created_by = SPI_getvalue(row, desc, 1);
	held.created_by = created_by ? MemoryContextStrdup(caller, created_by) : NULL;
	held.currency = MemoryContextStrdup(caller, SPI_getvalue(row, desc, 2));
	held.amount = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	SPI_finish();
	return held;
}

/* The text form of a uuid, as gen_random_uuid() writes it; anything else is no reference of ours. */
static bool
is_uuid_text(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		bool		dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

bool
payout_lookup_keys_by_reference(const char *reference, PayoutKeys *keys)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(reference)};
	MemoryContext caller = CurrentMemoryContext;
	bool		found;

	if (!is_uuid_text(reference))
		return false;
	SPI_connect();
	payouts_execute(psprintf("SELECT id, status, reference, moneroo_id FROM %s "
							 "WHERE reference = $1::uuid FOR UPDATE",
							 payouts_table_name()),
					1, types, values, NULL, false, InvalidSnapshot);
	found = keys_from_row(caller, keys);
	SPI_finish();
	return found;
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

char *
payout_lookup_any_moneroo_id(MemoryContext context)
{
	char	   *moneroo_id = NULL;

	SPI_connect();
	payouts_execute(psprintf("SELECT moneroo_id FROM %s WHERE moneroo_id IS NOT NULL "
							 "ORDER BY id DESC LIMIT 1",
							 payouts_table_name()),
					0, NULL, NULL, NULL, true, InvalidSnapshot);
	if (SPI_processed == 1)
		moneroo_id = MemoryContextStrdup(context, SPI_getvalue(SPI_tuptable->vals[0],
															   SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return moneroo_id;
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

bool
payout_lookup_any_due_to_send(void)
{
	bool		isnull;
	bool		due;

	SPI_connect();
	payouts_execute(psprintf("SELECT EXISTS (SELECT FROM %s WHERE status = 'pending'"
							 "  AND (next_attempt_at IS NULL OR next_attempt_at <= now()))",
							 payouts_table_name()),
					0, NULL, NULL, NULL, true, InvalidSnapshot);
	due = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return due;
}
