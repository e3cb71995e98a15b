/*
 * audit_trail.c
 *		payout_events, the history of every payout, and its guard.
 *
 * The payouts row guard calls audit_record for every state change, inside
 * the statement that makes it, so that the change and its event commit or
 * roll back together.  The event is written as the table's owner; its
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

#include "audit_trail.h"
#include "message_text.h"
#include "payout_guard.h"
#include "run_as_owner.h"

PG_FUNCTION_INFO_V1(moneroo_payout_events_guard);

/* An event's detail says why in a few words, not the whole answer. */
#define AUDIT_DETAIL_BYTES 300

static const char *actor_override = NULL;
static char *current_action = NULL;	/* in TopMemoryContext */
static SubTransactionId action_subxact = InvalidSubTransactionId;

/* True while audit_record inserts: the only inserts the guard lets in. */
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

void
audit_record(Relation payouts, int64 payout_id, const char *status,
			 const char *previous_status, const char *detail)
{
	Oid			events = get_relname_relid("payout_events", RelationGetNamespace(payouts));
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = "     ";
	char	   *why;
	char		clipped[AUDIT_DETAIL_BYTES];
	int			rc;

	/* a database still at 1.1 has no history to keep */
	if (!OidIsValid(events))
		return;

	if (current_action != NULL)
		why = detail ? psprintf("%s: %s", current_action, detail) : current_action;
	else
		why = (char *) detail;

	values[0] = Int64GetDatum(payout_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = previous_status ? CStringGetTextDatum(previous_status) : (Datum) 0;
	nulls[2] = previous_status ? ' ' : 'n';
	values[3] = CStringGetTextDatum(audit_actor());
	if (why != NULL)
	{
		text_clip_copy(clipped, why, sizeof(clipped));
		values[4] = CStringGetTextDatum(clipped);
	}
	nulls[4] = why ? ' ' : 'n';

	SPI_connect();
	PG_TRY();
	{
		writing_event = true;
		rc = moneroo_execute_as_owner(psprintf("INSERT INTO %s.payout_events "
											   "(payout_id, status, previous_status, actor, detail) "
											   "VALUES ($1, $2, $3, $4, $5)",
											   quote_identifier(get_namespace_name(RelationGetNamespace(payouts)))),
									  5, types, values, nulls, false, InvalidSnapshot, events);
	}
	PG_FINALLY();
	{
		writing_event = false;
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the event of payout %lld: %s",
			 (long long) payout_id, SPI_result_code_string(rc));
	SPI_finish();
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
