/*
 * audit_trail.c
 *		payout_events, the history of every payout, and its guard.
 *
 * The payouts row guard notes every state change; a statement trigger on
 * payouts writes the statement's changes as events in one INSERT, inside
 * the statement, so that a change and its event commit or roll back
 * together, and a payroll of 1,000 rows costs one INSERT of events, not
 * 1,000.  The same statement adds what the changes do to the number of
 * payouts in each state to moneroo_state_counts (state_counts.h), which
 * moneroo_status sums instead of counting payouts.  The event is written
 * as the table's owner; its actor is the role that called the extension,
 * captured before the switch (run_as_owner.c), or the worker.  The table's own trigger lets nothing else in, and nothing
 * out: no UPDATE, DELETE or TRUNCATE, for any role.
 *
 * (1.3) The same statement sends one NOTIFY per event on the channel
 * moneroo_payouts, from the rows it inserts: heard at commit, never for a
 * change rolled back, at no extra round trip.  The payload names the event
 * and its payout (ids, reference, statuses, batch, idempotency key), never
 * the request: batch and idempotency_key are at most 255 bytes each
 * (payouts' CHECKs), so even escaped in JSON the payload stays far below
 * PostgreSQL's 8000 bytes.  A restore (moneroo.restoring) writes no event,
 * so it notifies nothing: its history is the dump's.  A commit of events
 * by anyone but a worker wakes the database's worker, whose subscriptions
 * have new events to deliver.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "common/message_text.h"
#include "common/settings.h"
#include "compat/compat.h"
#include "shmem/commit_wakeup.h"
#include "table/audit_trail.h"
#include "table/run_as_owner.h"
#include "table/state_counts.h"

PG_FUNCTION_INFO_V1(moneroo_payout_events_guard);
PG_FUNCTION_INFO_V1(moneroo_payouts_record_events);

static const char *actor_override = NULL;
static char *current_action = NULL;	/* in TopMemoryContext */
static SubTransactionId action_subxact = InvalidSubTransactionId;

/* An event's detail says why in a few words, not the whole answer. */
#define AUDIT_DETAIL_BYTES 300

/* True while the history is written: the only inserts the guard lets in. */
static bool writing_event = false;

/*
 * The changes noted and not yet written.  Each carries the subtransaction
 * it was noted in: a statement trigger writes those of its own
 * subtransaction and of those nested in it (which have larger ids), so
 * that a statement run inside another cannot write the outer one's events
 * in a subtransaction that may yet roll back; a subtransaction that aborts
 * drops its own.  In pending_context, under TopTransactionContext, emptied
 * whenever nothing is pending, so that a long transaction does not keep
 * what it already wrote.
 */
typedef struct PendingEvent
{
	SubTransactionId subxact;
	int64		payout_id;
	char	   *status;
	char	   *previous_status;
	char	   *actor;
	char	   *detail;
	bool		count_only;		/* a restored row: counted, its history is restored too */
} PendingEvent;

static List *pending_events = NIL;
static MemoryContext pending_context = NULL;

const char *
audit_set_actor(const char *actor)
{
	const char *previous = actor_override;

	actor_override = actor;
	return previous;
}

const char *
audit_actor(void)
{
	if (actor_override != NULL)
		return actor_override;
	return GetUserNameFromId(moneroo_calling_role(), false);
}

static void
forget_action(void)
{
	if (current_action != NULL)
		pfree(current_action);
	current_action = NULL;
	action_subxact = InvalidSubTransactionId;
}

void
audit_set_action(const char *action)
{
	forget_action();
	if (action == NULL)
		return;
	current_action = MemoryContextStrdup(TopMemoryContext, action);
	action_subxact = GetCurrentSubTransactionId();
}

/* The memory of the pending events went with TopTransactionContext. */
static void
forget_action_at_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		forget_action();
		pending_events = NIL;
		pending_context = NULL;
	}
}

/* A subtransaction that began later is one nested in this one. */
static void
forget_action_of_subxact(SubXactEvent event, SubTransactionId subid,
						 SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	if (action_subxact >= subid)
		forget_action();
	foreach(lc, pending_events)
		if (((PendingEvent *) lfirst(lc))->subxact >= subid)
			pending_events = foreach_delete_current(pending_events, lc);
}

void
audit_register_callbacks(void)
{
	RegisterXactCallback(forget_action_at_end, NULL);
	RegisterSubXactCallback(forget_action_of_subxact, NULL);
}


static void
note_pending(Relation payouts, int64 payout_id, const char *status,
			 const char *previous_status, const char *detail, bool count_only)
{
	MemoryContext old;
	PendingEvent *event;
	char	   *why = (char *) detail;

	/* a database still at 1.1 has no history to keep, nor counts */
	if (!OidIsValid(get_relname_relid("payout_events", RelationGetNamespace(payouts))))
		return;
	if (current_action != NULL)
		why = detail ? psprintf("%s: %s", current_action, detail) : current_action;

	if (pending_context == NULL)
		pending_context = AllocSetContextCreate(TopTransactionContext, "moneroo pending events",
												ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(pending_context);
	event = palloc(sizeof(PendingEvent));
	event->subxact = GetCurrentSubTransactionId();
	event->payout_id = payout_id;
	event->status = pstrdup(status);
	event->previous_status = previous_status ? pstrdup(previous_status) : NULL;
	event->actor = pstrdup(audit_actor());
	event->count_only = count_only;
	event->detail = NULL;
	if (why != NULL)
	{
		event->detail = palloc(AUDIT_DETAIL_BYTES);
		text_clip_copy(event->detail, why, AUDIT_DETAIL_BYTES);
	}
	pending_events = lappend(pending_events, event);
	MemoryContextSwitchTo(old);
}

void
audit_note_change(Relation payouts, int64 payout_id, const char *status,
				  const char *previous_status, const char *detail)
{
	note_pending(payouts, payout_id, status, previous_status, detail, false);
}

void
audit_note_restored(Relation payouts, int64 payout_id, const char *status)
{
	note_pending(payouts, payout_id, status, NULL, NULL, true);
}

static Datum
text_array(Datum *values, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/*
 * The part of the events statement that records a restore in
 * moneroo_restores (1.3): one row per statement that restored payouts, by
 * status.  Empty for a schema older than 1.3, which has no such table.
 */
static const char *
restores_cte(Relation payouts, const char *schema)
{
	Oid			restores = get_relname_relid("moneroo_restores", RelationGetNamespace(payouts));

	if (!OidIsValid(restores))
		return "";
	moneroo_refuse_foreign_triggers_of(restores);
	return psprintf(", restored AS ("
					"  INSERT INTO %s.moneroo_restores (restored_by, payouts, statuses) "
					"  SELECT min(r.actor)::name, sum(r.n), jsonb_object_agg(r.status, r.n) "
					"  FROM (SELECT status, min(actor) AS actor, count(*) AS n "
					"        FROM e WHERE count_only GROUP BY status) AS r "
					"  HAVING count(*) > 0)", schema);
}

/* Writes the events this subtransaction may write, in one INSERT. */
static void
write_pending_events(Relation payouts)
{
	SubTransactionId here = GetCurrentSubTransactionId();
	int			n = 0;
	int			max = list_length(pending_events);
	Datum	   *ids = palloc(sizeof(Datum) * max);
	Datum	   *count_only = palloc(sizeof(Datum) * max);
	Datum	   *columns[4];
	bool	   *nulls[4];
	Oid			types[6] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	BOOLARRAYOID};
	Datum		values[6];
	ListCell   *lc;
	Oid			events = get_relname_relid("payout_events", RelationGetNamespace(payouts));
	const char *schema;
	bool		restored = false;
	int			rc;

	for (int c = 0; c < 4; c++)
	{
		columns[c] = palloc(sizeof(Datum) * max);
		nulls[c] = palloc0(sizeof(bool) * max);
	}
	foreach(lc, pending_events)
	{
		PendingEvent *e = lfirst(lc);
		const char *texts[4] = {e->status, e->previous_status, e->actor, e->detail};

		if (e->subxact < here)
			continue;
		ids[n] = Int64GetDatum(e->payout_id);
		count_only[n] = BoolGetDatum(e->count_only);
		for (int c = 0; c < 4; c++)
		{
			nulls[c][n] = texts[c] == NULL;
			columns[c][n] = texts[c] ? CStringGetTextDatum(texts[c]) : (Datum) 0;
		}
		n++;
		pending_events = foreach_delete_current(pending_events, lc);
	}
	/* the texts are copied: what was written is let go */
	if (pending_events == NIL)
		MemoryContextReset(pending_context);
	if (n == 0)
		return;
	if (!OidIsValid(events))
		elog(ERROR, "payout_events is missing");

	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
	for (int c = 0; c < 4; c++)
		values[c + 1] = text_array(columns[c], nulls[c], n);
	values[5] = PointerGetDatum(construct_array(count_only, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	for (int i = 0; i < n && !restored; i++)
		restored = DatumGetBool(count_only[i]);

	schema = quote_identifier(get_namespace_name(RelationGetNamespace(payouts)));
	SPI_connect();
	PG_TRY();
	{
		writing_event = true;
		/*
		 * The row guard runs before INSERT ... ON CONFLICT knows whether a
		 * row goes in: a first event whose row is not there was skipped.
		 * Each change counts one payout into its state and one out of the
		 * state before (a deletion: out only).
		 */
		rc = moneroo_execute_as_owner(psprintf("WITH e AS ("
											   "  SELECT * FROM unnest($1, $2, $3, $4, $5, $6) "
											   "    AS e(payout_id, status, previous_status, actor, detail, count_only) "
											   "  WHERE e.previous_status IS NOT NULL "
											   "     OR EXISTS (SELECT FROM %1$s.payouts p WHERE p.id = e.payout_id)), "
											   "history AS ("
											   "  INSERT INTO %1$s.payout_events AS h "
											   "    (payout_id, status, previous_status, actor, detail) "
											   "  SELECT payout_id, status, previous_status, actor, detail "
											   "  FROM e WHERE NOT count_only "
											   "  RETURNING pg_catalog.pg_notify('" AUDIT_CHANNEL "', ("
											   "    SELECT pg_catalog.json_build_object("
											   "      'event_id', h.id, 'payout_id', h.payout_id, "
											   "      'reference', p.reference, 'status', h.status, "
											   "      'previous_status', h.previous_status, "
											   "      'batch', p.batch, 'idempotency_key', p.idempotency_key)::text "
											   "    FROM (SELECT) AS one LEFT JOIN %1$s.payouts p ON p.id = h.payout_id)))%3$s "
											   "%2$s",
											   schema,
											   state_counts_insert_sql(RelationGetNamespace(payouts), "e", AUDIT_DELETED),
											   restored ? restores_cte(payouts, schema) : ""),
									  6, types, values, NULL, false, InvalidSnapshot, events);
	}
	PG_FINALLY();
	{
		writing_event = false;
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the history of payouts: %s", SPI_result_code_string(rc));
	SPI_finish();
	/* the worker's own events are delivered in its round */
	if (!AmBackgroundWorkerProcess())
		moneroo_wake_worker_at_commit();
}

/*
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT on
 * payouts: the changes the row guard noted during the statement become
 * events and counts in one statement, still inside the statement.  A
 * TRUNCATE (refused while any payout may have moved money) leaves nothing
 * to count.
 */
Datum
moneroo_payouts_record_events(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigger->tg_event) ||
		TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("moneroo_payouts_record_events must be an AFTER STATEMENT trigger"));
	if (TRIGGER_FIRED_BY_TRUNCATE(trigger->tg_event))
		state_counts_forget_all(trigger->tg_relation);
	else if (pending_events != NIL)
		write_pending_events(trigger->tg_relation);
	return PointerGetDatum(NULL);
}

pg_noreturn static void
refuse(const char *what)
{
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("cannot %s payout_events", what),
			errdetail("payout_events is the history of every payout: the moneroo extension appends to it, and nobody, its owner included, changes or removes a row."),
			strcmp(what, "insert into") == 0 ?
			errhint("Read it with SELECT; the extension records every change of payouts by itself. %s",
					MONEROO_RESTORING_HINT) :
			errhint("Read it with SELECT; the extension records every change of payouts by itself."));
}

/* BEFORE ROW INSERT/UPDATE/DELETE and BEFORE TRUNCATE on payout_events */
Datum
moneroo_payout_events_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigger->tg_event))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("moneroo_payout_events_guard must be a BEFORE trigger"));

	if (TRIGGER_FIRED_BY_TRUNCATE(trigger->tg_event))
		refuse("truncate");
	if (TRIGGER_FIRED_BY_UPDATE(trigger->tg_event))
		refuse("update");
	if (TRIGGER_FIRED_BY_DELETE(trigger->tg_event))
		refuse("delete from");
	/* a restore brings the history back as it was */
	if (!writing_event && !moneroo_restoring)
		refuse("insert into");
	return PointerGetDatum(trigger->tg_trigtuple);
}
