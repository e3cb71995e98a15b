/*
 * payout_guard.c
 *		BEFORE INSERT/UPDATE/DELETE row trigger on payouts.
 *
 * The table is both the queue and the ledger, and applications write to it
 * directly.  This trigger is what makes that safe: every request is
 * validated by the same code as moneroo_transfer, only the extension moves
 * a payout between states, a request is frozen once it may have been sent,
 * and no row that may have moved money can be deleted.  It also holds a
 * payout that a limit says needs a second person, and notes every change
 * of state, and every acknowledgement, for payout_events (audit_trail.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "compat/compat.h"
#include "shmem/commit_wakeup.h"
#include "table/audit_trail.h"
#include "table/payout_guard.h"
#include "table/payouts_table.h"
#include "table/request_validator.h"
#include "table/run_as_owner.h"
#include "table/spending_limits.h"

PG_FUNCTION_INFO_V1(moneroo_payouts_guard);

/* Columns only the extension writes. */
static const char *const state_columns[] = {
	"status", "moneroo_id", "moneroo_status", "attempts", "last_error",
	"response", "sent_at", "completed_at", "next_attempt_at", "verifications",
	"created_at", "created_by", "acknowledged_at", "acknowledged_by", "acknowledgement",
};

/* Columns nobody changes once the row exists. */
static const char *const identity_columns[] = {"id", "reference", "created_by", "idempotency_key"};

/*
 * A column's number, or 0 for one that a schema older than the library
 * lacks (columns added in 1.2, until ALTER EXTENSION UPDATE).
 */
static int
column_number_if_any(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	return attnum > 0 ? attnum : 0;
}

static int
column_number(TupleDesc desc, const char *name)
{
	int			attnum = column_number_if_any(desc, name);

	if (attnum == 0)
		elog(ERROR, "payouts has no column \"%s\"", name);
	return attnum;
}

static bool
column_changed(TupleDesc desc, HeapTuple old_row, HeapTuple new_row, const char *name)
{
	int			attnum = column_number_if_any(desc, name);
	Form_pg_attribute attr;
	bool		old_null;
	bool		new_null;
	Datum		old_value;
	Datum		new_value;

	if (attnum == 0)
		return false;
	attr = TupleDescAttr(desc, attnum - 1);
	old_value = heap_getattr(old_row, attnum, desc, &old_null);
	new_value = heap_getattr(new_row, attnum, desc, &new_null);
	if (old_null || new_null)
		return old_null != new_null;
	return !datum_image_eq(old_value, new_value, attr->attbyval, attr->attlen);
}

/* A column's value as text; NULL when it is null or absent. */
static char *
text_column(TupleDesc desc, HeapTuple row, const char *name)
{
	int			attnum = column_number_if_any(desc, name);

	return attnum ? SPI_getvalue(row, desc, attnum) : NULL;
}

static int64
row_id(TupleDesc desc, HeapTuple row)
{
	bool		isnull;
	Datum		id = heap_getattr(row, column_number(desc, "id"), desc, &isnull);

	return isnull ? 0 : DatumGetInt64(id);
}

/*
 * Validates the request column; NULL is left to the NOT NULL constraint.
 * A restored row was judged by the limits of its day.
 */
static void
validate_row(Relation rel, HeapTuple row, bool restoring)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		request = heap_getattr(row, column_number(desc, "request"), desc, &isnull);

	if (!isnull)
		moneroo_validate_request(DatumGetJsonbP(request), RelationGetNamespace(rel), !restoring);
}

/*
 * The changes the guard itself makes to a row, gathered and applied in one
 * heap_modify_tuple_by_cols.
 */
typedef struct RowChanges
{
	int			n;
	int			columns[5];
	Datum		values[5];
	bool		nulls[5];
} RowChanges;

static void
change_column(RowChanges *changes, TupleDesc desc, const char *name, Datum value, bool isnull)
{
	int			attnum = column_number_if_any(desc, name);

	if (attnum == 0)
		return;
	Assert(changes->n < lengthof(changes->columns));
	changes->columns[changes->n] = attnum;
	changes->values[changes->n] = value;
	changes->nulls[changes->n] = isnull;
	changes->n++;
}

static void
change_text_column(RowChanges *changes, TupleDesc desc, const char *name, const char *value)
{
	change_column(changes, desc, name, value ? CStringGetTextDatum(value) : (Datum) 0,
				  value == NULL);
}

static HeapTuple
apply_changes(HeapTuple row, TupleDesc desc, RowChanges *changes)
{
	if (changes->n == 0)
		return row;
	return heap_modify_tuple_by_cols(row, desc, changes->n, changes->columns,
									 changes->values, changes->nulls);
}

/*
 * send_at, checked: the worker sleeps until the earliest due time, which
 * an infinite one would not give it.
 */
static Datum
send_at_of(TupleDesc desc, HeapTuple row, bool *isnull)
{
	Datum		send_at = heap_getattr(row, column_number(desc, "send_at"), desc, isnull);

	if (!*isnull && TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(send_at)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("send_at of a payout must be a finite time"),
				errhint("Give the time it may be sent, or NULL to send it right after commit; moneroo_cancel() stops a payout for good."));
	return send_at;
}

/* Why a valid request must be held (moneroo_limits), or NULL. */
static char *
hold_reason(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		request = heap_getattr(row, column_number(desc, "request"), desc, &isnull);

	/* a NULL request is left to the NOT NULL constraint, like validation */
	if (isnull)
		return NULL;
	return limits_hold_reason(RelationGetNamespace(rel), DatumGetJsonbP(request), false);
}

/*
 * The few words of payout_events.detail for a change into status, read
 * from the row as it will be written.
 */
static char *
change_detail(TupleDesc desc, HeapTuple row, const char *status, const char *previous)
{
	char	   *send_at = text_column(desc, row, "send_at");

	/* the one event that keeps the status: moneroo_acknowledge's note */
	if (previous != NULL && strcmp(status, previous) == 0)
		return text_column(desc, row, "acknowledgement");
	if (previous == NULL && strcmp(status, "sending") == 0)
		return "moneroo_transfer";
	if (previous == NULL && strcmp(status, "pending") == 0)
		return send_at ? psprintf("queued, not to be sent before %s", send_at) : "queued";
	if (strcmp(status, "sending") == 0)
		return psprintf("claimed, attempt %s", text_column(desc, row, "attempts"));
	if (strcmp(status, "sent") == 0 && strcmp(previous, "sending") == 0)
		return psprintf("accepted by Moneroo as %s", text_column(desc, row, "moneroo_id"));
	if (strcmp(status, "success") == 0 || strcmp(status, "failed") == 0)
		return psprintf("Moneroo reports %s", text_column(desc, row, "moneroo_status"));
	return text_column(desc, row, "last_error");
}

static void
note_change(Relation rel, HeapTuple row, const char *status, const char *previous)
{
	TupleDesc	desc = RelationGetDescr(rel);

	audit_note_change(rel, row_id(desc, row), status, previous,
					  change_detail(desc, row, status, previous));
}

/* Hints: an UPDATE of a state column, and an INSERT of one (a dump's row). */
#define STATE_CHANGE_HINT "Use moneroo_retry() to requeue an unknown payout and moneroo_verify() to refresh one."
#define STATE_INSERT_HINT "Insert only the request; the extension sets the status. " MONEROO_RESTORING_HINT

pg_noreturn static void
refuse_state_change(const char *column, const char *hint)
{
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("column \"%s\" of payouts is maintained by the moneroo extension", column),
			errdetail("Applications insert requests; the extension records what happened to them."),
			errhint("%s", hint));
}

/*
 * A payout dumped while it was being sent may have reached Moneroo since:
 * it comes back unknown, as it would after a crash.  Its history comes
 * back from the dump of payout_events; this last change is in last_error.
 */
static HeapTuple
restore_row(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *status = text_column(desc, row, "status");
	RowChanges	changes = {0};

	if (status != NULL && strcmp(status, "pending") == 0)
		moneroo_wake_worker_at_commit();
	if (status != NULL && strcmp(status, "sending") == 0)
	{
		status = "unknown";
		change_text_column(&changes, desc, "status", status);
		change_text_column(&changes, desc, "last_error",
						   "restored from a dump taken while this payout was being sent; "
						   "check Moneroo for its reference before retrying");
		row = apply_changes(row, desc, &changes);
	}
	if (status != NULL)
		audit_note_restored(rel, row_id(desc, row), status);
	return row;
}

/* An application's INSERT: only a request, pending, maybe scheduled or keyed. */
static void
check_new_row_from_caller(TupleDesc desc, HeapTuple row)
{
	char	   *status = text_column(desc, row, "status");

	if (status == NULL || strcmp(status, "pending") != 0)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("a new payout must have status \"pending\", not \"%s\"",
					   status ? status : "null"),
				errhint("%s", STATE_INSERT_HINT));
	for (int i = 0; i < lengthof(state_columns); i++)
	{
		const char *column = state_columns[i];
		char	   *value = text_column(desc, row, column);

		if (strcmp(column, "status") == 0)
			continue;
		if (strcmp(column, "created_at") == 0)
		{
			/*
			 * Its default, now(): a payout queued "yesterday" would be
			 * outside the daily limit's 24 hours, and out of the reports.
			 */
			bool		isnull;
			Datum		created_at = heap_getattr(row, column_number(desc, column), desc, &isnull);

			if (isnull || DatumGetTimestampTz(created_at) != GetCurrentTransactionStartTimestamp())
				refuse_state_change(column, STATE_INSERT_HINT);
			continue;
		}
		if (value != NULL &&
			!((strcmp(column, "attempts") == 0 || strcmp(column, "verifications") == 0) &&
			  strcmp(value, "0") == 0))
			refuse_state_change(column, STATE_INSERT_HINT);
	}
}

static HeapTuple
guard_insert(Relation rel, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	RowChanges	changes = {0};
	char	   *held;
	const char *status;
	bool		isnull;
	Datum		send_at;
	bool		restoring = !moneroo_internal_write && moneroo_restoring;

	validate_row(rel, row, restoring);
	if (restoring)
		return restore_row(rel, row);
	if (!moneroo_internal_write)
		check_new_row_from_caller(desc, row);

	/* the extension's own insert is moneroo_transfer's row, about to be sent */
	status = moneroo_internal_write ? text_column(desc, row, "status") : "pending";
	change_column(&changes, desc, "created_by",
				  DirectFunctionCall1(namein, CStringGetDatum(audit_actor())), false);
	if (column_number_if_any(desc, "send_at"))
	{
		send_at = send_at_of(desc, row, &isnull);
		change_column(&changes, desc, "next_attempt_at", send_at, isnull);
	}

	held = hold_reason(rel, row);
	if (held != NULL && moneroo_internal_write)
		limits_refuse_to_send_held(held);
	if (held != NULL)
	{
		status = "held";
		change_text_column(&changes, desc, "status", status);
		change_text_column(&changes, desc, "last_error", held);
	}
	row = apply_changes(row, desc, &changes);
	note_change(rel, row, status, NULL);
	if (strcmp(status, "pending") == 0)
		moneroo_wake_worker_at_commit();
	return row;
}

/*
 * A caller's change to a payout that has not left: a new request is
 * judged again like a new payout (an approval does not carry over to a
 * request nobody approved), a new send_at reschedules it, a new batch
 * moves it to another run.  Once it may have reached Moneroo, no caller
 * updates it: the three are the record of what was sent, when and in which
 * run (moneroo_batches reports a run as it went).
 */
static HeapTuple
guard_change_before_sending(Relation rel, HeapTuple old_row, HeapTuple new_row,
							const char *old_status)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		request_changed = column_changed(desc, old_row, new_row, "request");
	bool		send_at_changed = column_changed(desc, old_row, new_row, "send_at");
	bool		batch_changed = column_changed(desc, old_row, new_row, "batch");
	RowChanges	changes = {0};

	if (strcmp(old_status, "pending") != 0 && strcmp(old_status, "held") != 0)
	{
		/*
		 * Even an UPDATE that changes nothing locks the row: on a payout
		 * the worker is sending or following, it would make the worker's
		 * write of Moneroo's answer wait for the caller's transaction.
		 */
		if (!request_changed && !send_at_changed && !batch_changed)
			ereport(ERROR,
					errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					errmsg("cannot update payout %lld: it is %s",
						   (long long) row_id(desc, old_row), old_status),
					errdetail("Once a payout may have reached Moneroo, only the extension writes its row."),
					errhint("Only pending and held payouts can be updated; leave the others out of the UPDATE's WHERE clause."));
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("cannot change the %s of payout %lld: it is %s",
					   request_changed ? "request" : send_at_changed ? "send_at" : "batch",
					   (long long) row_id(desc, old_row), old_status),
				errdetail("Once a payout may have reached Moneroo, its request is the record of what was sent."),
				errhint("Insert a new payout instead."));
	}
	if (!request_changed && !send_at_changed && !batch_changed)
		return new_row;

	if (request_changed)
	{
		char	   *held;

		validate_row(rel, new_row, false);
		held = hold_reason(rel, new_row);
		change_text_column(&changes, desc, "status", held ? "held" : "pending");
		change_text_column(&changes, desc, "last_error", held);
	}
	if (send_at_changed)
	{
		bool		isnull;
		Datum		send_at = send_at_of(desc, new_row, &isnull);

		change_column(&changes, desc, "next_attempt_at", send_at, isnull);
	}
	return apply_changes(new_row, desc, &changes);
}

static HeapTuple
guard_update(Relation rel, HeapTuple old_row, HeapTuple new_row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *old_status = text_column(desc, old_row, "status");
	char	   *new_status;
	RowChanges	changes = {0};

	for (int i = 0; i < lengthof(identity_columns); i++)
		if (column_changed(desc, old_row, new_row, identity_columns[i]))
			ereport(ERROR,
					errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					errmsg("column \"%s\" of payouts cannot be changed", identity_columns[i]),
					errdetail("It identifies the payout and who queued it."));

	if (!moneroo_internal_write)
	{
		for (int i = 0; i < lengthof(state_columns); i++)
			if (column_changed(desc, old_row, new_row, state_columns[i]))
				refuse_state_change(state_columns[i], STATE_CHANGE_HINT);
		new_row = guard_change_before_sending(rel, old_row, new_row, old_status);
	}
	else if (column_changed(desc, old_row, new_row, "request"))
		elog(ERROR, "the moneroo extension never changes a request");

	new_status = text_column(desc, new_row, "status");
	if (strcmp(new_status, old_status) != 0 ||
		column_changed(desc, old_row, new_row, "acknowledged_at"))
		note_change(rel, new_row, new_status, old_status);
	if (strcmp(new_status, "pending") == 0)
		moneroo_wake_worker_at_commit();

	change_column(&changes, desc, "updated_at",
				  TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	return apply_changes(new_row, desc, &changes);
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
	/* its history stays, and ends with who deleted it */
	audit_note_change(rel, row_id(desc, row), AUDIT_DELETED, status, NULL);
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
