/*
 * subscription_runner.c
 *		The worker calling the application's handlers, once per event.
 *
 * A subscription's position is the id of the last event it is done with.
 * Each event is delivered in a transaction of its own that calls the
 * handler and moves the position past it: both commit, or neither does,
 * so what a handler writes in the database happens once per event,
 * whatever crashes, stops or failovers come in between.  Events are read
 * in id order up to the horizon (table/event_horizon.c), below which no
 * event can still commit late: none is ever skipped.
 *
 * A handler runs as the role that subscribed, which cannot switch roles
 * meanwhile (SECURITY_LOCAL_USERID_CHANGE), with search_path pinned to
 * pg_catalog, pg_temp and a statement_timeout of moneroo.subscription_timeout.
 * One that fails is rolled back with its transaction; the failure is
 * written in another one, and the subscription waits, 1 s after its first
 * failure in a row, doubling up to 10 minutes, before the same event is
 * tried again.  Others go on meanwhile.
 *
 * The worker runs handlers after recording Moneroo's answers and taking
 * new work, for at most ROUND_BUDGET_MS a round (and one event per
 * subscription in turn), so that a payout waits for at most one handler's
 * call.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "common/message_text.h"
#include "common/settings.h"
#include "table/audit_trail.h"
#include "table/event_horizon.h"
#include "table/payouts_table.h"
#include "table/subscription_store.h"
#include "worker/subscription_runner.h"
#include "worker/worker_transaction.h"

/* The time handlers may take in one round of the worker. */
#define ROUND_BUDGET_MS 20
/* Without subscriptions, the table is looked at this often. */
#define LOOK_MS 1000
/* While the horizon waits for writers of events: looked at again after 10 ms, doubling to 1 s. */
#define HORIZON_LOOK_MIN_MS 10
#define HORIZON_LOOK_MAX_MS 1000
/* The wait after a failure: 1 s, doubling up to 10 minutes. */
#define RETRY_MAX_SECONDS 600

/* Every event up to it has committed or will never exist. */
static int64 horizon = 0;
/* A horizon taken whose writers have not all ended yet; in runner_context. */
static EventHorizon *next_horizon = NULL;
static MemoryContext runner_context = NULL;
static TimestampTz next_look = 0;
static long horizon_look_ms = HORIZON_LOOK_MIN_MS;

typedef struct Look
{
	MemoryContext cxt;			/* where the list goes */
	List	   *active;			/* SubscriptionDue * */
} Look;

static void
look(void *arg)
{
	Look	   *l = arg;
	MemoryContext old;

	if (!moneroo_extension_locked())
		return;
	old = MemoryContextSwitchTo(l->cxt);
	l->active = subscription_store_active();
	MemoryContextSwitchTo(old);
	if (l->active == NIL)
		return;
	if (next_horizon != NULL && event_horizon_reached(next_horizon))
	{
		horizon = next_horizon->last_id;
		MemoryContextReset(runner_context);
		next_horizon = NULL;
	}
	if (next_horizon == NULL)
	{
		next_horizon = event_horizon_take(payouts_schema(), runner_context);
		if (event_horizon_reached(next_horizon))
		{
			horizon = next_horizon->last_id;
			MemoryContextReset(runner_context);
			next_horizon = NULL;
		}
	}
}

typedef struct Delivery
{
	const char *name;
	bool		taken;			/* the subscription was locked: a failure is its own */
	bool		done;			/* nothing more up to the horizon */
	int64		event_id;
	int			failures;
} Delivery;

/* Calls the handler as the subscriber, within its limits. */
static void
call_handler(SubscriptionEvent *next)
{
	LOCAL_FCINFO(fcinfo, 2);
	FmgrInfo	flinfo;
	Oid			saved_user;
	int			saved_context;
	int			guc_level;
	const char *actor;

	if (!OidIsValid(next->handler))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("handler %s does not exist", next->handler_name),
				errhint("Create the function again, or moneroo_unsubscribe() the subscription."));
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(next->subscriber)))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("the role that subscribed no longer exists"),
				errhint("Unsubscribe, and subscribe again as an existing role."));
	/* the function or the grants may have changed since the subscription */
	subscription_check_handler(next->handler);
	subscription_check_privileges(next->subscriber, next->handler);

	fmgr_info(next->handler, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = next->event;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = next->payout;
	fcinfo->args[1].isnull = next->payout_null;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(next->subscriber, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	/* what the handler changes in payouts is the subscriber's doing */
	actor = audit_set_actor(NULL);
	/* whatever the handler SETs, even for the session, ends with it */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	enable_timeout_after(STATEMENT_TIMEOUT, moneroo_subscription_timeout_ms);
	PG_TRY();
	{
		(void) FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		AtEOXact_GUC(false, guc_level);
		(void) audit_set_actor(actor);
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

static void
deliver(void *arg)
{
	Delivery   *d = arg;
	SubscriptionEvent next;

	if (!moneroo_extension_locked() || !subscription_store_next(d->name, horizon, &next))
	{
		d->done = true;
		return;
	}
	d->taken = true;
	d->failures = next.failures;
	if (next.event_id == 0)
	{
		/* none of the events up to the horizon is for it */
		subscription_store_advance(d->name, horizon, false);
		d->done = true;
		return;
	}
	d->event_id = next.event_id;
	call_handler(&next);
	subscription_store_advance(d->name, next.event_id, true);
}

typedef struct Failure
{
	const char *name;
	char		error[LAST_ERROR_BYTES];
	double		retry_seconds;
} Failure;

static void
record_failure(void *arg)
{
	Failure    *f = arg;

	if (moneroo_extension_locked())
		subscription_store_failed(f->name, f->error, f->retry_seconds);
}

/* Delivers one event to s; false when s is done for this round. */
static bool
deliver_one(SubscriptionDue *s)
{
	Delivery	d = {.name = s->name};
	ErrorData  *error;
	Failure		f = {.name = s->name};

	if (worker_transaction_try(deliver, &d, "deliver an event to a subscription", true, &error))
		return !d.done;
	/* a stop cancels a handler: no failure of its own, tried again after the restart */
	if (d.taken && !ShutdownRequestPending)
	{
		text_clip_copy(f.error, error->message, LAST_ERROR_BYTES);
		f.retry_seconds = Min((double) (1L << Min(d.failures, 10)), RETRY_MAX_SECONDS);
		ereport(LOG,
				errmsg("moneroo subscription \"%s\" failed on event %lld, tried again in %.0f s",
					   s->name, (long long) d.event_id, f.retry_seconds),
				errdetail("%s", error->message));
		(void) worker_transaction(record_failure, &f, "record a subscription's failure");
	}
	else if (!ShutdownRequestPending)
		ereport(WARNING,
				errmsg("moneroo worker could not deliver to subscription \"%s\": %s",
					   s->name, error->message));
	FreeErrorData(error);
	return false;
}

long
subscriptions_deliver(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline = TimestampTzPlusMilliseconds(now, ROUND_BUDGET_MS);
	Look		l = {.cxt = CurrentMemoryContext};
	List	   *turns = NIL;
	long		wait_ms = -1;
	ListCell   *lc;

	if (now < next_look)
		return TimestampDifferenceMilliseconds(now, next_look);
	if (runner_context == NULL)
		runner_context = AllocSetContextCreate(TopMemoryContext, "moneroo subscriptions",
											   ALLOCSET_SMALL_SIZES);
	if (!worker_transaction(look, &l, "look for events to deliver to subscriptions"))
		return LOOK_MS;
	if (l.active == NIL)
	{
		next_look = TimestampTzPlusMilliseconds(now, LOOK_MS);
		return -1;
	}
	next_look = 0;

	foreach(lc, l.active)
	{
		SubscriptionDue *s = lfirst(lc);

		if (s->position >= horizon)
			continue;
		if (s->retry_at > now)
		{
			long		retry_ms = TimestampDifferenceMilliseconds(now, s->retry_at);

			wait_ms = wait_ms < 0 ? retry_ms : Min(wait_ms, retry_ms);
			continue;
		}
		turns = lappend(turns, s);
	}

	/* one event to each in turn, until all are done or the round's time is up */
	while (turns != NIL && !ShutdownRequestPending && GetCurrentTimestamp() < deadline)
		foreach(lc, turns)
			if (!deliver_one(lfirst(lc)))
				turns = foreach_delete_current(turns, lc);
	if (turns != NIL)
		return 0;

	/* the horizon waits for writers of events: look again soon, then less often */
	if (next_horizon != NULL)
	{
		wait_ms = wait_ms < 0 ? horizon_look_ms : Min(wait_ms, horizon_look_ms);
		horizon_look_ms = Min(horizon_look_ms * 2, HORIZON_LOOK_MAX_MS);
	}
	else
		horizon_look_ms = HORIZON_LOOK_MIN_MS;
	return wait_ms;
}
