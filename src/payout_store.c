/*
 * payout_store.c
 *		Every write the extension makes to the payouts table, through SPI.
 *
 * Each write names the state it expects the row to be in, so that two
 * writers (the worker, an operator's moneroo_retry, a webhook) can never
 * move a payout along two paths at once.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "payout_store.h"

bool		moneroo_internal_write = false;

Oid
payout_store_schema(void)
{
	Oid			extension = get_extension_oid("moneroo", true);
	Oid			schema = InvalidOid;
	Relation	catalog;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;

	if (!OidIsValid(extension))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("extension \"moneroo\" is not installed in this database"),
				errhint("Run CREATE EXTENSION moneroo."));

	/* PostgreSQL 15 does not export get_extension_schema() */
	catalog = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(catalog, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	return schema;
}

/* "schema".payouts, for building statements. */
static char *
payouts_table(void)
{
	return psprintf("%s.payouts",
					quote_identifier(get_namespace_name(payout_store_schema())));
}

/*
 * Runs one statement as the extension.  The flag is cleared even when the
 * statement fails, so that no later user statement inherits it.
 */
static int
execute_internal(const char *sql, int nargs, Oid *types, Datum *values,
				 const char *nulls, bool read_only)
{
	int			rc;

	PG_TRY();
	{
		moneroo_internal_write = true;
		rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	}
	PG_FINALLY();
	{
		moneroo_internal_write = false;
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "moneroo could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	return rc;
}

static Datum
jsonb_or_null(Jsonb *value, char *null_flag)
{
	*null_flag = value ? ' ' : 'n';
	return value ? JsonbPGetDatum(value) : (Datum) 0;
}

static Datum
text_or_null(const char *value, char *null_flag)
{
	*null_flag = value ? ' ' : 'n';
	return value ? CStringGetTextDatum(value) : (Datum) 0;
}

int64
payout_store_insert_sending(Jsonb *request, char **reference)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(request)};
	MemoryContext caller = CurrentMemoryContext;
	int64		id;
	bool		isnull;

	SPI_connect();
	execute_internal(psprintf("INSERT INTO %s (request, status, attempts) "
							  "VALUES ($1, 'sending', 1) RETURNING id, reference::text",
							  payouts_table()),
					 1, types, values, NULL, false);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*reference = MemoryContextStrdup(caller,
									 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	SPI_finish();
	return id;
}

/*
 * A second row with the same Moneroo id means Moneroo's answer is wrong or
 * was replayed; the unique constraint would make it an error, and an error
 * here would lose the payout's record.  Such an answer leaves it unknown.
 */
static bool
moneroo_id_taken(const char *moneroo_id, int64 id)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(moneroo_id), Int64GetDatum(id)};

	execute_internal(psprintf("SELECT 1 FROM %s WHERE moneroo_id = $1 AND id <> $2",
							  payouts_table()),
					 2, types, values, NULL, true);
	return SPI_processed > 0;
}

void
payout_store_record_send(int64 id, SendVerdict verdict, MonerooAnswer *answer,
						 int retry_after_ms)
{
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = "     ";
	const char *table = NULL;
	const char *sql = NULL;

	SPI_connect();
	table = payouts_table();
	if (verdict == SEND_ACCEPTED && moneroo_id_taken(answer->moneroo_id, id))
	{
		answer->error = psprintf("Moneroo answered with id \"%s\", which another payout already carries",
								 answer->moneroo_id);
		verdict = SEND_UNKNOWN;
	}

	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(verdict == SEND_ACCEPTED ? answer->moneroo_id : NULL, &nulls[1]);
	values[2] = text_or_null(answer->error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	values[4] = Int32GetDatum(retry_after_ms);

	switch (verdict)
	{
		case SEND_ACCEPTED:
			sql = "UPDATE %s SET status = 'sent', moneroo_id = $2, moneroo_status = 'initiated', "
				"last_error = $3, response = $4, sent_at = now(), verifications = 0, "
				"next_attempt_at = now() + $5 * interval '1 millisecond' "
				"WHERE id = $1 AND status = 'sending'";
			break;
		case SEND_REFUSED:
			sql = "UPDATE %s SET status = 'rejected', last_error = $3, response = $4, "
				"completed_at = now(), next_attempt_at = NULL, moneroo_id = $2 "
				"WHERE id = $1 AND status = 'sending'";
			break;
		case SEND_NOT_SENT:
			sql = "UPDATE %s SET status = 'pending', last_error = $3, response = $4, "
				"next_attempt_at = now() + $5 * interval '1 millisecond', moneroo_id = $2 "
				"WHERE id = $1 AND status = 'sending'";
			break;
		case SEND_UNKNOWN:
			sql = "UPDATE %s SET status = 'unknown', last_error = $3, response = $4, "
				"next_attempt_at = NULL, moneroo_id = $2 "
				"WHERE id = $1 AND status = 'sending'";
			break;
	}
	execute_internal(psprintf(sql, table), 5, types, values, nulls, false);
	if (SPI_processed != 1)
		ereport(WARNING,
				errcode(ERRCODE_INTERNAL_ERROR),
				errmsg("payout %lld was no longer in state \"sending\" when its result came back",
					   (long long) id),
				errdetail("The result was: %s.", send_verdict_name(verdict)));
	SPI_finish();
}

void
payout_store_record_verify(int64 id, bool ok, MonerooAnswer *answer, int next_check_ms)
{
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = "     ";
	const char *sql;

	SPI_connect();
	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(ok ? answer->moneroo_status : NULL, &nulls[1]);
	values[2] = text_or_null(ok ? NULL : answer->error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	values[4] = Int32GetDatum(next_check_ms);

	if (ok)
		sql = "UPDATE %s SET moneroo_status = $2, last_error = NULL, response = $4, "
			"verifications = verifications + 1, "
			"status = CASE WHEN $2 IN ('success', 'failed') THEN $2 ELSE 'sent' END, "
			"completed_at = CASE WHEN $2 IN ('success', 'failed') "
			"                    THEN coalesce(completed_at, now()) END, "
			"next_attempt_at = CASE WHEN $2 IN ('success', 'failed') THEN NULL "
			"                  ELSE now() + $5 * interval '1 millisecond' END "
			"WHERE id = $1 AND moneroo_id IS NOT NULL "
			"AND status IN ('sent', 'success', 'failed', 'unknown')";
	else
		sql = "UPDATE %s SET last_error = $3, verifications = verifications + 1, "
			"next_attempt_at = CASE WHEN status = 'sent' "
			"                  THEN now() + $5 * interval '1 millisecond' END "
			"WHERE id = $1";
	execute_internal(psprintf(sql, payouts_table()), 5, types, values, nulls, false);
	SPI_finish();
}

Datum
payout_store_fetch(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	SPIPlanPtr	plan;
	Datum		row;
	bool		isnull;

	SPI_connect();
	plan = SPI_prepare(psprintf("SELECT p FROM %s p WHERE id = $1", payouts_table()), 1, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the payout lookup");

	/*
	 * The latest snapshot: the row may have been written by the worker after
	 * the caller's snapshot was taken, even in REPEATABLE READ.
	 */
	if (SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		ereport(ERROR,
				errcode(ERRCODE_NO_DATA_FOUND),
				errmsg("payout %lld does not exist", (long long) id));
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	return row;
}

bool
payout_store_lock(int64 id, char **status, char **moneroo_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	bool		found;

	SPI_connect();
	execute_internal(psprintf("SELECT status, moneroo_id FROM %s WHERE id = $1 FOR UPDATE",
							  payouts_table()),
					 1, types, values, NULL, false);
	found = SPI_processed == 1;
	if (found)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *m = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		*status = MemoryContextStrdup(caller, s);
		*moneroo_id = m ? MemoryContextStrdup(caller, m) : NULL;
	}
	SPI_finish();
	return found;
}

void
payout_store_requeue(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	SPI_connect();
	execute_internal(psprintf("UPDATE %s SET status = 'pending', next_attempt_at = NULL, "
							  "last_error = 'requeued by moneroo_retry after: ' || coalesce(last_error, 'no error') "
							  "WHERE id = $1 AND status = 'unknown'",
							  payouts_table()),
					 1, types, values, NULL, false);
	SPI_finish();
}
