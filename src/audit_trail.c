/*
 * audit_trail.c
 *		payout_events, the history of every payout, and its guard.
 *
 * Statement triggers on payouts turn every state change into an event,
 * inside the statement that makes it, so that the change and its event
 * commit or roll back together; one INSERT per statement, reading the
 * statement's rows from its transition tables, costs far less than one per
 * row.  The event is written as the table's owner; its
 * actor is the role that called the extension, captured before the switch
 * (run_as_owner.c), or the worker.  The table's own trigger lets nothing
 * else in, and nothing out: no UPDATE, DELETE or TRUNCATE, for any role.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "audit_trail.h"
#include "payout_guard.h"
#include "run_as_owner.h"

PG_FUNCTION_INFO_V1(moneroo_payout_events_guard);
PG_FUNCTION_INFO_V1(moneroo_payouts_record_events);

static const char *actor_override = NULL;
static char *current_action = NULL;	/* in TopMemoryContext */
static SubTransactionId action_subxact = InvalidSubTransactionId;

/* True while the history is written: the only inserts the guard lets in. */
static bool writing_event = false;

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

static void
forget_action_at_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		forget_action();
}

static void
forget_action_of_subxact(SubXactEvent event, SubTransactionId subid,
						 SubTransactionId parent, void *arg)
{
	/* a subtransaction that began later is one nested in this one */
	if (event == SUBXACT_EVENT_ABORT_SUB && action_subxact >= subid)
		forget_action();
}

void
audit_register_callbacks(void)
{
	RegisterXactCallback(forget_action_at_end, NULL);
	RegisterSubXactCallback(forget_action_of_subxact, NULL);
}

/*
 * The few words of payout_events.detail of a change from o.status to
 * n.status, read from the row as written; $2 is the SQL function that
 * caused it, if any.
 */
#define EVENT_DETAIL_SQL \
	"left(CASE WHEN $2 IS NULL THEN d.why ELSE $2 || coalesce(': ' || d.why, '') END, 300)"
#define EVENT_WHY_SQL \
	"LATERAL (SELECT CASE" \
	" WHEN o.status IS NULL AND n.status = 'sending' THEN 'moneroo_transfer'" \
	" WHEN o.status IS NULL AND n.status = 'pending' THEN" \
	"   'queued' || coalesce(', not to be sent before ' || n.send_at::text, '')" \
	" WHEN n.status = 'sending' THEN 'claimed, attempt ' || n.attempts::text" \
	" WHEN n.status = 'sent' AND o.status = 'sending' THEN 'accepted by Moneroo as ' || n.moneroo_id" \
	" WHEN n.status IN ('success', 'failed') THEN 'Moneroo reports ' || n.moneroo_status" \
	" ELSE n.last_error END AS why) d"

/* The statement that turns one statement's rows into events, by its kind. */
static char *
events_sql(TriggerEvent event, const char *schema)
{
	const char *insert = psprintf("INSERT INTO %s.payout_events "
								  "(payout_id, status, previous_status, actor, detail) ",
								  schema);

	if (TRIGGER_FIRED_BY_INSERT(event))
		return psprintf("%sSELECT n.id, n.status, NULL, $1, " EVENT_DETAIL_SQL
						" FROM new_rows n CROSS JOIN LATERAL (SELECT NULL::text AS status) o, "
						EVENT_WHY_SQL " ORDER BY n.id", insert);
	if (TRIGGER_FIRED_BY_UPDATE(event))
		return psprintf("%sSELECT n.id, n.status, o.status, $1, " EVENT_DETAIL_SQL
						" FROM new_rows n JOIN old_rows o ON o.id = n.id, " EVENT_WHY_SQL
						" WHERE n.status <> o.status ORDER BY n.id", insert);
	/* a deleted payout (pending or rejected) keeps its history, ending here */
	return psprintf("%sSELECT o.id, 'deleted', o.status, $1, $2 FROM old_rows o ORDER BY o.id",
					insert);
}

/*
 * AFTER INSERT, UPDATE and DELETE FOR EACH STATEMENT on payouts, with the
 * statement's rows as transition tables: one INSERT into payout_events per
 * statement, however many rows it changed, in the statement itself.
 */
Datum
moneroo_payouts_record_events(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;
	Relation	payouts;
	Tuplestorestate *rows;
	Oid			events;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = "  ";
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigger->tg_event) ||
		TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("moneroo_payouts_record_events must be an AFTER STATEMENT trigger"));

	/* pg_restore brings the history back from the dump of payout_events */
	rows = TRIGGER_FIRED_BY_DELETE(trigger->tg_event) ? trigger->tg_oldtable : trigger->tg_newtable;
	if (rows == NULL || tuplestore_tuple_count(rows) == 0 || moneroo_restoring_from_dump())
		return PointerGetDatum(NULL);
	payouts = trigger->tg_relation;
	events = get_relname_relid("payout_events", RelationGetNamespace(payouts));
	if (!OidIsValid(events))
		elog(ERROR, "payout_events is missing");

	values[0] = CStringGetTextDatum(audit_actor());
	values[1] = current_action ? CStringGetTextDatum(current_action) : (Datum) 0;
	nulls[1] = current_action ? ' ' : 'n';

	SPI_connect();
	if (SPI_register_trigger_data(trigger) != SPI_OK_TD_REGISTER)
		elog(ERROR, "could not register the transition tables of payouts");
	PG_TRY();
	{
		writing_event = true;
		rc = moneroo_execute_as_owner(events_sql(trigger->tg_event,
												 quote_identifier(get_namespace_name(RelationGetNamespace(payouts)))),
									  2, types, values, nulls, false, InvalidSnapshot, events);
	}
	PG_FINALLY();
	{
		writing_event = false;
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the history of payouts: %s", SPI_result_code_string(rc));
	SPI_finish();
	return PointerGetDatum(NULL);
}

static pg_attribute_noreturn() void
refuse(const char *what)
{
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("cannot %s payout_events", what),
			errdetail("payout_events is the history of every payout: the moneroo extension appends to it, and nobody, its owner included, changes or removes a row."),
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
	/* pg_restore brings the history back with COPY */
	if (!writing_event && !moneroo_restoring_from_dump())
		refuse("insert into");
	return PointerGetDatum(trigger->tg_trigtuple);
}
