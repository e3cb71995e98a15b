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
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "payout_store.h"
#include "run_as_owner.h"
#include "settings.h"

bool		moneroo_internal_write = false;

/*
 * Where payouts lives, looked up once and kept until the table changes:
 * finding the extension means scanning pg_extension, which has no syscache,
 * and the worker needs the answer for every statement it runs.
 */
typedef struct PayoutsLocation
{
	bool		valid;
	Oid			schema;
	Oid			relid;
	char	   *qualified_name; /* in TopMemoryContext */
} PayoutsLocation;

static PayoutsLocation location;

/* Counts invalidations, so that a lookup can tell whether one came during it. */
static uint64 location_invalidations = 0;

static void
forget_location(Datum arg, Oid relid)
{
	/* while a lookup runs, the relid it will find is not known yet */
	if (relid == InvalidOid || relid == location.relid || !location.valid)
	{
		location.valid = false;
		location_invalidations++;
	}
}

static void
forget_location_on_schema_change(Datum arg, int cacheid, uint32 hashvalue)
{
	location.valid = false;
	location_invalidations++;
}

static Oid
extension_schema(void)
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

/*
 * Dropping the extension drops payouts and renaming the table touches its
 * pg_class row, both of which invalidate its relcache entry; renaming the
 * schema touches pg_namespace.  Either way the location is looked up again.
 */
static PayoutsLocation *
payouts_location(void)
{
	static bool callback_registered = false;
	Oid			schema;
	Oid			relid;
	char	   *name;
	uint64		seen;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_location, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, forget_location_on_schema_change, (Datum) 0);
		callback_registered = true;
	}

	/* the catalog reads below may process invalidations: look again if one came */
	while (!location.valid)
	{
		seen = location_invalidations;
		schema = extension_schema();
		relid = get_relname_relid("payouts", schema);
		if (!OidIsValid(relid))
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_TABLE),
					errmsg("table \"payouts\" of extension \"moneroo\" is missing"));
		name = MemoryContextStrdup(TopMemoryContext,
								   psprintf("%s.payouts",
											quote_identifier(get_namespace_name(schema))));
		if (location.qualified_name)
			pfree(location.qualified_name);
		location.schema = schema;
		location.relid = relid;
		location.qualified_name = name;
		location.valid = location_invalidations == seen;
	}
	return &location;
}

Oid
payout_store_schema(void)
{
	return payouts_location()->schema;
}

/* "schema".payouts, for building statements. */
static const char *
payouts_table(void)
{
	return payouts_location()->qualified_name;
}

static Oid
payouts_relid(void)
{
	return payouts_location()->relid;
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
		rc = moneroo_execute_as_owner(sql, nargs, types, values, nulls, read_only,
									  InvalidSnapshot, payouts_relid());
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

PayoutWork *
payout_store_insert_sending(Jsonb *request, const char *reference)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2] = {JsonbPGetDatum(request), CStringGetTextDatum(reference)};
	MemoryContext caller = CurrentMemoryContext;
	PayoutWork *work;
	bool		isnull;

	SPI_connect();
	execute_internal(psprintf("INSERT INTO %s (request, reference, status, attempts) "
							  "VALUES ($1, $2::uuid, 'sending', 1) RETURNING id",
							  payouts_table()),
					 2, types, values, NULL, false);
	work = MemoryContextAllocZero(caller, sizeof(PayoutWork));
	work->transfer_slot = -1;
	work->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	work->reference = MemoryContextStrdup(caller, reference);
	/* built in SPI's memory, which dies with SPI_finish: only the text is kept */
	work->request_body = MemoryContextStrdup(caller, moneroo_initialize_body(request, reference));
	SPI_finish();
	return work;
}

/*
 * The rows a claim or a lease returned, as PayoutWork in the caller's
 * memory: (id, reference, request) to send, or (id, moneroo_id,
 * verifications) to verify.  The initialize body is built in SPI's memory;
 * only its text is kept.
 */
static List *
work_from_rows(MemoryContext caller, bool to_send)
{
	List	   *works = NIL;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *text = SPI_getvalue(row, desc, 2);
		char	   *body = NULL;
		MemoryContext spi;
		PayoutWork *work;

		if (to_send)
			body = moneroo_initialize_body(DatumGetJsonbP(SPI_getbinval(row, desc, 3, &isnull)),
										   text);
		spi = MemoryContextSwitchTo(caller);
		work = palloc0(sizeof(PayoutWork));
		work->transfer_slot = -1;
		work->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		if (to_send)
		{
			work->reference = pstrdup(text);
			work->request_body = pstrdup(body);
		}
		else
		{
			work->moneroo_id = pstrdup(text);
			work->verifications = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		}
		works = lappend(works, work);
		MemoryContextSwitchTo(spi);
	}
	return works;
}

List *
payout_store_claim(int n)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(n)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *claimed;

	SPI_connect();

	/*
	 * SKIP LOCKED: a row an operator or another claimer holds is simply
	 * someone else's.  The claim commits before any request leaves.
	 */
	execute_internal(psprintf("WITH due AS ("
							  "  SELECT id FROM %1$s"
							  "  WHERE status = 'pending'"
							  "    AND (next_attempt_at IS NULL OR next_attempt_at <= now())"
							  "  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
							  "UPDATE %1$s p SET status = 'sending', attempts = p.attempts + 1 "
							  "FROM due WHERE p.id = due.id "
							  "RETURNING p.id, p.reference::text, p.request",
							  payouts_table()),
					 1, types, values, NULL, false);
	claimed = work_from_rows(caller, true);
	SPI_finish();
	return claimed;
}

List *
payout_store_lease_verifications(int n, int lease_ms)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(n), Int32GetDatum(lease_ms)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *leased;

	SPI_connect();
	execute_internal(psprintf("WITH due AS ("
							  "  SELECT id FROM %1$s"
							  "  WHERE status = 'sent' AND next_attempt_at <= now()"
							  "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
							  "UPDATE %1$s p SET next_attempt_at = now() + $2 * interval '1 millisecond' "
							  "FROM due WHERE p.id = due.id "
							  "RETURNING p.id, p.moneroo_id, p.verifications",
							  payouts_table()),
					 2, types, values, NULL, false);
	leased = work_from_rows(caller, false);
	SPI_finish();
	return leased;
}

long
payout_store_next_due_ms(void)
{
	long		due_ms = -1;
	bool		isnull;
	Datum		ms;

	SPI_connect();
	execute_internal(psprintf("SELECT ceil(extract(epoch FROM least("
							  "  (SELECT min(next_attempt_at) FROM %1$s WHERE status = 'sent'),"
							  "  (SELECT min(next_attempt_at) FROM %1$s WHERE status = 'pending'))"
							  "  - clock_timestamp()) * 1000)::int8",
							  payouts_table()),
					 0, NULL, NULL, NULL, true);
	ms = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		due_ms = Max(DatumGetInt64(ms), 0);
	SPI_finish();
	return due_ms;
}

uint64
payout_store_settle_orphans(void)
{
	uint64		settled;

	SPI_connect();
	execute_internal(psprintf("UPDATE %s SET status = 'unknown', "
							  "last_error = 'the worker stopped while this payout was being sent; "
							  "check Moneroo for its reference before retrying' "
							  "WHERE status = 'sending'",
							  payouts_table()),
					 0, NULL, NULL, NULL, false);
	settled = SPI_processed;
	SPI_finish();
	return settled;
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

SendVerdict
payout_store_record_send(int64 id, const char *reference, SendVerdict verdict,
						 MonerooAnswer *answer, int retry_after_ms, bool requeue)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	const char *sql = NULL;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	if (verdict == SEND_ACCEPTED && moneroo_id_taken(answer->moneroo_id, id))
	{
		answer->error = MemoryContextStrdup(caller,
											psprintf("Moneroo answered with id \"%s\", which another payout already carries",
													 answer->moneroo_id));
		verdict = SEND_UNKNOWN;
	}

	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(verdict == SEND_ACCEPTED ? answer->moneroo_id : NULL, &nulls[1]);
	values[2] = text_or_null(answer->error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	/* a sent payout is first verified on the verification schedule */
	values[4] = Int32GetDatum(verdict == SEND_ACCEPTED ? moneroo_verify_backoff_ms(0) : retry_after_ms);
	/* the reference too: ids start again if the extension is recreated */
	values[5] = CStringGetTextDatum(reference);

	switch (verdict)
	{
		case SEND_ACCEPTED:
			sql = "UPDATE %s SET status = 'sent', moneroo_id = $2, moneroo_status = 'initiated', "
				"last_error = $3, response = $4, sent_at = now(), verifications = 0, "
				"next_attempt_at = now() + $5 * interval '1 millisecond' "
				"WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'";
			break;
		case SEND_REFUSED:
			sql = "UPDATE %s SET status = 'rejected', last_error = $3, response = $4, "
				"completed_at = now(), next_attempt_at = NULL, moneroo_id = $2 "
				"WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'";
			break;
		case SEND_NOT_SENT:
			if (requeue)
				sql = "UPDATE %s SET status = 'pending', last_error = $3, response = $4, "
					"next_attempt_at = now() + $5 * interval '1 millisecond', moneroo_id = $2 "
					"WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'";
			else
				sql = "UPDATE %s SET status = 'rejected', "
					"last_error = 'not sent, moneroo_transfer raised an error: ' || $3, "
					"response = $4, completed_at = now(), next_attempt_at = NULL, moneroo_id = $2 "
					"WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'";
			break;
		case SEND_UNKNOWN:
			sql = "UPDATE %s SET status = 'unknown', last_error = $3, response = $4, "
				"next_attempt_at = NULL, moneroo_id = $2 "
				"WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'";
			break;
	}
	execute_internal(psprintf(sql, payouts_table()), 6, types, values, nulls, false);
	if (SPI_processed != 1)
		ereport(WARNING,
				errcode(ERRCODE_INTERNAL_ERROR),
				errmsg("payout %lld was no longer in state \"sending\" when its result came back",
					   (long long) id),
				errdetail("The result was: %s%s%s.", send_verdict_name(verdict),
						  verdict == SEND_ACCEPTED ? ", Moneroo id " : "",
						  verdict == SEND_ACCEPTED ? answer->moneroo_id : ""));
	SPI_finish();
	return verdict;
}

void
payout_store_record_verify(int64 id, const char *moneroo_id, bool ok, MonerooAnswer *answer,
						   int next_check_ms)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	const char *sql;

	SPI_connect();
	values[5] = CStringGetTextDatum(moneroo_id);
	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(ok ? answer->moneroo_status : NULL, &nulls[1]);
	values[2] = text_or_null(ok ? NULL : answer->error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	values[4] = Int32GetDatum(next_check_ms);

	/*
	 * Only a sent payout moves: a final one stays final, so that a verify
	 * answer that lost a race with a webhook cannot take it backwards.
	 */
	if (ok)
		sql = "UPDATE %s SET moneroo_status = $2, last_error = NULL, response = $4, "
			"verifications = verifications + 1, "
			"status = CASE WHEN $2 IN ('success', 'failed') THEN $2 ELSE 'sent' END, "
			"completed_at = CASE WHEN $2 IN ('success', 'failed') THEN now() END, "
			"next_attempt_at = CASE WHEN $2 IN ('success', 'failed') THEN NULL "
			"                  ELSE now() + $5 * interval '1 millisecond' END "
			"WHERE id = $1 AND moneroo_id = $6 AND status = 'sent'";
	else
		sql = "UPDATE %s SET last_error = $3, verifications = verifications + 1, "
			"next_attempt_at = now() + $5 * interval '1 millisecond' "
			"WHERE id = $1 AND moneroo_id = $6 AND status = 'sent'";
	execute_internal(psprintf(sql, payouts_table()), 6, types, values, nulls, false);
	SPI_finish();
}

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
	if (moneroo_execute_as_owner(psprintf("SELECT p FROM %s p WHERE %s", payouts_table(), condition),
								 1, &type, &value, NULL, true, GetLatestSnapshot(),
								 payouts_relid()) != SPI_OK_SELECT)
		elog(ERROR, "could not look up a payout");
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
payout_store_fetch(int64 id)
{
	Datum		row = (Datum) 0;

	if (!fetch_row("id = $1", INT8OID, Int64GetDatum(id), &row))
		payout_not_found(id);
	return row;
}

bool
payout_store_fetch_by_reference(const char *reference, Datum *row)
{
	return fetch_row("reference = $1::uuid", TEXTOID, CStringGetTextDatum(reference), row);
}

void
payout_store_lookup(int64 id, bool for_update, char **status, char **moneroo_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	char	   *found_status;
	char	   *found_id;

	SPI_connect();
	execute_internal(psprintf("SELECT status, moneroo_id FROM %s WHERE id = $1%s",
							  payouts_table(), for_update ? " FOR UPDATE" : ""),
					 1, types, values, NULL, !for_update);
	if (SPI_processed != 1)
		payout_not_found(id);
	found_status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	found_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*status = MemoryContextStrdup(caller, found_status);
	*moneroo_id = found_id ? MemoryContextStrdup(caller, found_id) : NULL;
	SPI_finish();
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

void
payout_store_schedule_verification(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	SPI_connect();
	execute_internal(psprintf("UPDATE %s SET next_attempt_at = now() "
							  "WHERE id = $1 AND status = 'sent'",
							  payouts_table()),
					 1, types, values, NULL, false);
	SPI_finish();
}

bool
payout_store_find_by_moneroo_id(const char *moneroo_id, int64 *id, char **status)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(moneroo_id)};
	MemoryContext caller = CurrentMemoryContext;
	bool		found;
	bool		isnull;

	SPI_connect();
	execute_internal(psprintf("SELECT id, status FROM %s WHERE moneroo_id = $1",
							  payouts_table()),
					 1, types, values, NULL, true);
	found = SPI_processed == 1;
	if (found)
	{
		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*status = MemoryContextStrdup(caller,
									  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	SPI_finish();
	return found;
}
