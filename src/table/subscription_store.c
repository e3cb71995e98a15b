/*
 * subscription_store.c
 *		moneroo_subscribers: the application's subscriptions to the events
 *		of payouts, and what a handler must be.
 *
 * One row per subscription: its handler (kept as the text of its signature,
 * schema-qualified, so that a dump and pg_upgrade keep it: a function's oid
 * does not survive them), the role that subscribed, the statuses it wants,
 * its position (the id of the last event it is done with) and its
 * failures.  The extension reads and writes it as its owner; the SQL
 * functions (functions/subscriptions.c) check who may, the worker
 * (worker/subscription_runner.c) delivers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "common/payout_status.h"
#include "compat/compat.h"
#include "table/audit_trail.h"
#include "table/payouts_table.h"
#include "table/run_as_owner.h"
#include "table/subscription_store.h"

#define HANDLER_HINT "Declare the handler as a function (event payout_events, payout payouts) RETURNS void."

static Oid
relation_here(const char *name)
{
	Oid			relid = get_relname_relid(name, payouts_schema());

	if (!OidIsValid(relid))
		elog(ERROR, "%s is missing", name);
	return relid;
}

void
subscription_check_handler(Oid handler)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	Form_pg_proc proc;
	Oid			wanted[2] = {get_rel_type_id(relation_here("payout_events")),
	get_rel_type_id(relation_here("payouts"))};

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("function with OID %u does not exist", handler),
				errhint(HANDLER_HINT));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("%s is not a plain function", format_procedure(handler)),
				errdetail("A subscription calls its handler as a function, once per event."),
				errhint(HANDLER_HINT));
	if (proc->pronargs != 2 || proc->proargtypes.values[0] != wanted[0] ||
		proc->proargtypes.values[1] != wanted[1])
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("function %s cannot handle payout events", format_procedure(handler)),
				errdetail("A handler takes exactly two arguments: the event (payout_events) and its payout (payouts)."),
				errhint(HANDLER_HINT));
	if (proc->prorettype != VOIDOID || proc->proretset)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("handler %s must return void", format_procedure(handler)),
				errdetail("It returns %s%s.", proc->proretset ? "SETOF " : "",
						  format_type_be(proc->prorettype)),
				errhint(HANDLER_HINT));
	ReleaseSysCache(tuple);
}

/* The statuses an event can carry: a payout's, or "deleted". */
static bool
event_status_known(const char *name)
{
	for (int s = PAYOUT_PENDING; s <= PAYOUT_HELD; s++)
		if (strcmp(payout_status_name((PayoutStatus) s), name) == 0)
			return true;
	return strcmp(name, AUDIT_DELETED) == 0;
}

void
subscription_check_statuses(Datum statuses)
{
	Datum	   *elements;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(statuses), TEXTOID, -1, false, TYPALIGN_INT,
					  &elements, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("statuses is empty"),
				errhint("Pass NULL to hear every change, or the statuses to hear, such as '{success,failed}'."));
	for (int i = 0; i < n; i++)
	{
		char	   *name = nulls[i] ? NULL : TextDatumGetCString(elements[i]);

		if (name == NULL || !event_status_known(name))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("unknown payout status in statuses: %s",
						   name ? quote_literal_cstr(name) : "NULL"),
					errhint("The statuses are held, pending, sending, sent, success, failed, rejected, unknown, cancelled and deleted."));
	}
}

static void
require_select(Oid role, const char *table)
{
	if (pg_class_aclcheck(relation_here(table), role, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("role \"%s\" may not read %s", GetUserNameFromId(role, false), table),
				errdetail("A handler is given every matching event and its payout's row."),
				errhint("GRANT SELECT ON payouts, payout_events TO %s;",
						quote_identifier(GetUserNameFromId(role, false))));
}

void
subscription_check_privileges(Oid role, Oid handler)
{
	if (object_aclcheck(ProcedureRelationId, handler, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("role \"%s\" may not execute %s", GetUserNameFromId(role, false),
					   format_procedure(handler)),
				errdetail("A handler runs as the role that subscribed it."),
				errhint("Grant EXECUTE on the handler to that role, or subscribe as a role that may run it."));
	require_select(role, "payouts");
	require_select(role, "payout_events");
}

/* Runs one statement on moneroo_subscribers as its owner; SPI is connected. */
static void
subscribers_execute(const char *format, int nargs, Oid *types, Datum *values,
					const char *nulls, bool read_only)
{
	const char *schema = quote_identifier(get_namespace_name(payouts_schema()));
	int			rc = moneroo_execute_as_owner(psprintf(format, schema), nargs, types, values, nulls,
											  read_only, InvalidSnapshot,
											  relation_here("moneroo_subscribers"));

	if (rc < 0)
		elog(ERROR, "could not use moneroo_subscribers: %s", SPI_result_code_string(rc));
}

bool
subscription_store_add(const char *name, Oid handler, Oid subscriber,
					   Datum statuses, bool statuses_null, int64 position)
{
	Oid			types[5] = {TEXTOID, TEXTOID, REGROLEOID, TEXTARRAYOID, INT8OID};
	Datum		values[5] = {CStringGetTextDatum(name),
		CStringGetTextDatum(format_procedure_qualified(handler)),
		ObjectIdGetDatum(subscriber), statuses, Int64GetDatum(position)};
	char		nulls[5] = {' ', ' ', ' ', statuses_null ? 'n' : ' ', ' '};
	bool		added;

	SPI_connect();
	subscribers_execute("INSERT INTO %s.moneroo_subscribers (name, handler, subscriber, statuses, position) "
						"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
						5, types, values, nulls, false);
	added = SPI_processed == 1;
	SPI_finish();
	return added;
}

Oid
subscription_store_lock(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			subscriber;

	SPI_connect();
	subscribers_execute("SELECT subscriber FROM %s.moneroo_subscribers WHERE name = $1 FOR UPDATE",
						1, types, values, NULL, false);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("subscription \"%s\" does not exist", name),
				errhint("SELECT name FROM moneroo_subscriptions lists them."));
	subscriber = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return subscriber;
}

void
subscription_store_remove(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	SPI_connect();
	subscribers_execute("DELETE FROM %s.moneroo_subscribers WHERE name = $1", 1, types, values, NULL, false);
	SPI_finish();
}

void
subscription_store_set_paused(const char *name, bool paused)
{
	Oid			types[2] = {TEXTOID, BOOLOID};
	Datum		values[2] = {CStringGetTextDatum(name), BoolGetDatum(paused)};

	SPI_connect();
	/* resumed: tried again at once */
	subscribers_execute("UPDATE %s.moneroo_subscribers SET paused = $2, "
						"  retry_at = CASE WHEN $2 THEN retry_at END "
						"WHERE name = $1", 2, types, values, NULL, false);
	SPI_finish();
}

List *
subscription_store_active(void)
{
	List	   *active = NIL;
	MemoryContext caller = CurrentMemoryContext;

	/* a database still at 1.2 has none */
	if (!OidIsValid(get_relname_relid("moneroo_subscribers", payouts_schema())))
		return NIL;
	SPI_connect();
	subscribers_execute("SELECT name, position, retry_at FROM %s.moneroo_subscribers "
						"WHERE NOT paused ORDER BY name", 0, NULL, NULL, NULL, true);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		SubscriptionDue *s = palloc(sizeof(SubscriptionDue));
		Datum		retry_at;

		s->name = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
		s->position = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		retry_at = SPI_getbinval(row, desc, 3, &isnull);
		s->retry_at = isnull ? 0 : DatumGetTimestampTz(retry_at);
		active = lappend(active, s);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return active;
}

bool
subscription_store_next(const char *name, int64 horizon, SubscriptionEvent *next)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int64GetDatum(horizon)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		event;

	SPI_connect();

	/*
	 * The first matching event after the position, up to the horizon, with
	 * its payout (none when it was deleted).  Locked, so that an
	 * unsubscribe or a pause waits for the delivery; skipped while one of
	 * them holds it.
	 */
	subscribers_execute("SELECT s.handler, pg_catalog.to_regprocedure(s.handler), s.subscriber, s.failures, "
						"       ev.e, p "
						"FROM %1$s.moneroo_subscribers s "
						"LEFT JOIN LATERAL ("
						"  SELECT e FROM %1$s.payout_events e "
						"  WHERE e.id > s.position AND e.id <= $2 "
						"    AND (s.statuses IS NULL OR e.status = ANY (s.statuses)) "
						"  ORDER BY e.id LIMIT 1) AS ev ON true "
						"LEFT JOIN %1$s.payouts p ON p.id = (ev.e).payout_id "
						"WHERE s.name = $1 AND NOT s.paused AND s.position < $2 "
						"FOR UPDATE OF s SKIP LOCKED",
						2, types, values, NULL, false);
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	next->handler_name = TextDatumGetCString(SPI_datumTransfer(SPI_getbinval(row, desc, 1, &isnull),
															   false, -1));
	next->handler = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
	if (isnull)
		next->handler = InvalidOid;
	next->subscriber = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	next->failures = DatumGetInt32(SPI_getbinval(row, desc, 4, &isnull));
	event = SPI_getbinval(row, desc, 5, &isnull);
	next->event_id = 0;
	if (!isnull)
	{
		bool		id_null;

		next->event_id = DatumGetInt64(GetAttributeByName(DatumGetHeapTupleHeader(event), "id",
														   &id_null));
		next->event = SPI_datumTransfer(event, false, -1);
	}
	next->payout = SPI_getbinval(row, desc, 6, &next->payout_null);
	if (!next->payout_null)
		next->payout = SPI_datumTransfer(next->payout, false, -1);
	SPI_finish();
	return true;
}

void
subscription_store_advance(const char *name, int64 event_id, bool delivered)
{
	Oid			types[3] = {TEXTOID, INT8OID, BOOLOID};
	Datum		values[3] = {CStringGetTextDatum(name), Int64GetDatum(event_id), BoolGetDatum(delivered)};

	SPI_connect();
	subscribers_execute("UPDATE %s.moneroo_subscribers SET position = $2, failures = 0, "
						"  last_error = NULL, retry_at = NULL, "
						"  delivered_at = CASE WHEN $3 THEN pg_catalog.now() ELSE delivered_at END "
						"WHERE name = $1", 3, types, values, NULL, false);
	SPI_finish();
}

void
subscription_store_failed(const char *name, const char *error, double retry_seconds)
{
	Oid			types[3] = {TEXTOID, TEXTOID, FLOAT8OID};
	Datum		values[3] = {CStringGetTextDatum(name), CStringGetTextDatum(error),
	Float8GetDatum(retry_seconds)};

	SPI_connect();
	subscribers_execute("UPDATE %s.moneroo_subscribers SET failures = failures + 1, "
						"  last_error = $2, failed_at = pg_catalog.now(), "
						"  retry_at = pg_catalog.now() + pg_catalog.make_interval(secs => $3) "
						"WHERE name = $1", 3, types, values, NULL, false);
	SPI_finish();
}
