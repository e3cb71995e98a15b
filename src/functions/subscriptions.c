/*
 * subscriptions.c
 *		The application hears the outcomes: moneroo_events_since for a
 *		listener catching up, and moneroo_subscribe, moneroo_unsubscribe and
 *		moneroo_subscription_pause for handlers the worker calls.
 *
 * A subscription belongs to the role that made it (current_user): its
 * handler runs as that role, which must be allowed to run it and to read
 * what it is given; only that role (or one with its privileges) may drop or
 * pause it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "common/plan_cache.h"
#include "shmem/commit_wakeup.h"
#include "table/event_horizon.h"
#include "table/payouts_table.h"
#include "table/subscription_store.h"

PG_FUNCTION_INFO_V1(moneroo_events_since);
PG_FUNCTION_INFO_V1(moneroo_subscribe);
PG_FUNCTION_INFO_V1(moneroo_unsubscribe);
PG_FUNCTION_INFO_V1(moneroo_subscription_pause);

/*
 * Events are returned up to the horizon only: an event that commits after
 * a later one was read is waited for, not skipped (table/event_horizon.c).
 * They are read with the caller's privileges, in a snapshot taken after
 * the wait, so that the events waited for are seen even in a REPEATABLE
 * READ transaction.
 */
Datum
moneroo_events_since(PG_FUNCTION_ARGS)
{
	int64		after = PG_GETARG_INT64(0);
	int32		max_events = PG_GETARG_INT32(1);
	Oid			schema = payouts_schema();
	Oid			events = get_relname_relid("payout_events", schema);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[3] = {INT8OID, INT8OID, INT4OID};
	Datum		values[3];
	int			rc;

	if (max_events <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_events must be positive"),
				errhint("Ask for up to 1000 events at a time, the default."));
	if (pg_class_aclcheck(events, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "payout_events");

	values[0] = Int64GetDatum(after);
	values[1] = Int64GetDatum(event_horizon_wait(schema));
	values[2] = Int32GetDatum(max_events);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	/* the plan is kept for every role of the session: no caller's operator */
	rc = SPI_execute_snapshot(plan_cache_get(psprintf("SELECT e.* FROM %s.payout_events e "
													  "WHERE e.id OPERATOR(pg_catalog.>) $1 "
													  "  AND e.id OPERATOR(pg_catalog.<=) $2 "
													  "ORDER BY e.id LIMIT $3",
													  quote_identifier(get_namespace_name(schema))),
											 3, types),
							  values, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read payout_events: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}

static char *
name_argument(FunctionCallInfo fcinfo)
{
	char	   *name;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("a subscription's name must not be NULL"));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("a subscription's name must have 1 to %d bytes", NAMEDATALEN - 1));
	return name;
}

Datum
moneroo_subscribe(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);
	Oid			subscriber = GetUserId();
	Oid			handler;
	int64		position;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("a subscription's handler must not be NULL"));
	handler = PG_GETARG_OID(1);
	subscription_check_handler(handler);
	if (!PG_ARGISNULL(2))
		subscription_check_statuses(PG_GETARG_DATUM(2));
	subscription_check_privileges(subscriber, handler);
	if (PG_ARGISNULL(3))
		position = event_horizon_last_id(payouts_schema());	/* changes after now */
	else if (PG_GETARG_INT64(3) < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("from_event must be an event id, 1 or more"),
				errhint("Pass 1 to hear every event payout_events holds, or NULL for the changes after now."));
	else
		position = PG_GETARG_INT64(3) - 1;

	if (!subscription_store_add(name, handler, subscriber, PG_GETARG_DATUM(2), PG_ARGISNULL(2),
								position))
		ereport(ERROR,
				errcode(ERRCODE_DUPLICATE_OBJECT),
				errmsg("subscription \"%s\" already exists", name),
				errhint("Choose another name, or moneroo_unsubscribe('%s') first.", name));
	moneroo_wake_worker_at_commit();
	PG_RETURN_VOID();
}

/* Locks the subscription and refuses a role that may not act for its subscriber. */
static void
lock_own_subscription(const char *name)
{
	Oid			subscriber = subscription_store_lock(name);

	if (!has_privs_of_role(GetUserId(), subscriber))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("subscription \"%s\" belongs to role \"%s\"", name,
					   GetUserNameFromId(subscriber, true) ? GetUserNameFromId(subscriber, true) : "(dropped)"),
				errhint("Only that role, a member of it or a superuser may change it."));
}

Datum
moneroo_unsubscribe(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);

	lock_own_subscription(name);
	subscription_store_remove(name);
	PG_RETURN_VOID();
}

Datum
moneroo_subscription_pause(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("paused must be true or false"));
	lock_own_subscription(name);
	subscription_store_set_paused(name, PG_GETARG_BOOL(1));
	moneroo_wake_worker_at_commit();
	PG_RETURN_VOID();
}
