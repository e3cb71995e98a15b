/*
 * payout_guard.c
 *		BEFORE INSERT/UPDATE/DELETE row trigger on payouts.
 *
 * The table is both the queue and the ledger, and applications write to it
 * directly.  This trigger is what makes that safe: every request is
 * validated by the same code as moneroo_transfer, only the extension moves
 * a payout between states, a request is frozen once it may have been sent,
 * and no row that may have moved money can be deleted.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "commit_wakeup.h"
#include "payout_guard.h"
#include "payouts_table.h"
#include "request_validator.h"

PG_FUNCTION_INFO_V1(moneroo_payouts_guard);

/* Columns only the extension writes. */
static const char *const state_columns[] = {
	"status", "moneroo_id", "moneroo_status", "attempts", "last_error",
	"response", "sent_at", "completed_at", "next_attempt_at", "verifications",
	"created_at",
};

/* Columns nobody changes once the row exists. */
static const char *const identity_columns[] = {"id", "reference"};

/*
 * The triggers the extension creates on payouts (sql/): any other would run
 * with the owner's rights during the extension's writes.
 */
static const char *const own_triggers[] = {"payouts_guard", "payouts_refuse_truncate"};

void
moneroo_refuse_foreign_triggers(Relation rel)
{
	TriggerDesc *triggers = rel->trigdesc;

	for (int i = 0; triggers != NULL && i < triggers->numtriggers; i++)
	{
		Trigger    *t = &triggers->triggers[i];
		bool		own = t->tgisinternal;

		for (int j = 0; j < lengthof(own_triggers) && !own; j++)
			own = strcmp(t->tgname, own_triggers[j]) == 0;
		if (own)
			continue;
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("%s has a trigger the moneroo extension did not create: \"%s\"",
					   RelationGetRelationName(rel), t->tgname),
				errdetail("The extension writes this table with its owner's privileges, which such a trigger would share."),
				errhint("Drop the trigger; react to payouts from another table or with LISTEN/NOTIFY instead."));
	}
}

static int
column_number(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "payouts has no column \"%s\"", name);
	return attnum;
}

static bool
column_changed(TupleDesc desc, HeapTuple old_row, HeapTuple new_row, const char *name)
{
	int			attnum = column_number(desc, name);
	Form_pg_attribute attr = TupleDescAttr(desc, attnum - 1);
	bool		old_null;
	bool		new_null;
	Datum		old_value = heap_getattr(old_row, attnum, desc, &old_null);
	Datum		new_value = heap_getattr(new_row, attnum, desc, &new_null);

	if (old_null || new_null)
		return old_null != new_null;
	return !datum_image_eq(old_value, new_value, attr->attbyval, attr->attlen);
}

static char *
text_column(TupleDesc desc, HeapTuple row, const char *name)
{
	return SPI_getvalue(row, desc, column_number(desc, name));
}

static int64
row_id(TupleDesc desc, HeapTuple row)
{
	bool		isnull;
	Datum		id = heap_getattr(row, column_number(desc, "id"), desc, &isnull);

	return isnull ? 0 : DatumGetInt64(id);
}

/* Validates the request column; NULL is left to the NOT NULL constraint. */
static void
validate_row(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		request = heap_getattr(row, column_number(desc, "request"), desc, &isnull);

	if (!isnull)
		moneroo_validate_request(DatumGetJsonbP(request), RelationGetNamespace(rel));
}

static pg_attribute_noreturn() void
refuse_state_change(const char *column)
{
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("column \"%s\" of payouts is maintained by the moneroo extension", column),
			errdetail("Applications insert requests; the extension records what happened to them."),
			errhint("Use moneroo_retry() to requeue an unknown payout and moneroo_verify() to refresh one."));
}

/*
 * pg_restore brings payouts back in every state with COPY, run by a
 * superuser; nothing else may insert a payout that is not pending.
 */
static bool
restoring_from_dump(void)
{
	const char *query = debug_query_string;

	if (!superuser() || query == NULL)
		return false;
	while (*query == ' ' || *query == '\t' || *query == '\n' || *query == '\r')
		query++;
	return pg_strncasecmp(query, "COPY", 4) == 0;
}

/*
 * A payout dumped while it was being sent may have reached Moneroo since:
 * it comes back unknown, as it would after a crash.
 */
static HeapTuple
restore_row(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *status = text_column(desc, row, "status");
	int			columns[2] = {column_number(desc, "status"), column_number(desc, "last_error")};
	Datum		values[2] = {CStringGetTextDatum("unknown"),
		CStringGetTextDatum("restored from a dump taken while this payout was being sent; "
							"check Moneroo for its reference before retrying")};
	bool		nulls[2] = {false, false};

	if (status != NULL && strcmp(status, "pending") == 0)
		moneroo_wake_worker_at_commit();
	if (status == NULL || strcmp(status, "sending") != 0)
		return row;
	return heap_modify_tuple_by_cols(row, desc, 2, columns, values, nulls);
}

static HeapTuple
guard_insert(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);

	validate_row(rel, row);
	if (!moneroo_internal_write)
	{
		char	   *status = text_column(desc, row, "status");

		if (restoring_from_dump())
			return restore_row(rel, row);
		if (status == NULL || strcmp(status, "pending") != 0)
			ereport(ERROR,
					errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					errmsg("a new payout must have status \"pending\", not \"%s\"",
						   status ? status : "null"),
					errhint("Insert only the request; the extension sets the status."));
		for (int i = 0; i < lengthof(state_columns); i++)
		{
			const char *column = state_columns[i];
			char	   *value = text_column(desc, row, column);

			if (strcmp(column, "status") == 0 || strcmp(column, "created_at") == 0)
				continue;
			if (value != NULL &&
				!((strcmp(column, "attempts") == 0 || strcmp(column, "verifications") == 0) &&
				  strcmp(value, "0") == 0))
				refuse_state_change(column);
		}
		moneroo_wake_worker_at_commit();
	}
	return row;
}

static HeapTuple
guard_update(Relation rel, HeapTuple old_row, HeapTuple new_row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *old_status = text_column(desc, old_row, "status");
	char	   *new_status = text_column(desc, new_row, "status");
	int			updated_at = column_number(desc, "updated_at");
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	bool		null = false;

	for (int i = 0; i < lengthof(identity_columns); i++)
		if (column_changed(desc, old_row, new_row, identity_columns[i]))
			ereport(ERROR,
					errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					errmsg("column \"%s\" of payouts cannot be changed", identity_columns[i]),
					errdetail("It identifies the payout at Moneroo."));

	if (column_changed(desc, old_row, new_row, "request"))
	{
		if (strcmp(old_status, "pending") != 0)
			ereport(ERROR,
					errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					errmsg("cannot change the request of payout %lld: it is %s",
						   (long long) row_id(desc, old_row), old_status),
					errdetail("Once a payout may have reached Moneroo, its request is the record of what was sent."),
					errhint("Insert a new payout instead."));
		validate_row(rel, new_row);
	}

	if (!moneroo_internal_write)
		for (int i = 0; i < lengthof(state_columns); i++)
			if (column_changed(desc, old_row, new_row, state_columns[i]))
				refuse_state_change(state_columns[i]);

	if (strcmp(new_status, "pending") == 0)
		moneroo_wake_worker_at_commit();

	return heap_modify_tuple_by_cols(new_row, desc, 1, &updated_at, &now, &null);
}

static void
guard_delete(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *status = text_column(desc, row, "status");

	if (strcmp(status, "pending") != 0 && strcmp(status, "rejected") != 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("cannot delete payout %lld: it is %s",
					   (long long) row_id(desc, row), status),
				errdetail("A payout that may have moved money stays on record."),
				errhint("Only pending and rejected payouts can be deleted."));
}

Datum
moneroo_payouts_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigger->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("moneroo_payouts_guard must be a BEFORE ROW trigger"));

	moneroo_refuse_foreign_triggers(trigger->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(trigger->tg_event))
		return PointerGetDatum(guard_insert(trigger->tg_relation, trigger->tg_trigtuple));
	if (TRIGGER_FIRED_BY_UPDATE(trigger->tg_event))
		return PointerGetDatum(guard_update(trigger->tg_relation,
											trigger->tg_trigtuple,
											trigger->tg_newtuple));
	guard_delete(trigger->tg_relation, trigger->tg_trigtuple);
	return PointerGetDatum(trigger->tg_trigtuple);
}
