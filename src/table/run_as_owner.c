/*
 * run_as_owner.c
 *		Running the extension's own statements as the owner of its tables.
 *
 * The statements are fixed text with parameters, so running them with the
 * owner's rights gives a caller nothing beyond what the SQL function it was
 * granted does -- the same reasoning as a SECURITY DEFINER function, with
 * SECURITY_LOCAL_USERID_CHANGE so that nothing run meanwhile can SET ROLE.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "commands/trigger.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "common/plan_cache.h"
#include "table/run_as_owner.h"

/*
 * The triggers the extension creates on its tables (moneroo--*.sql): any other would
 * run with the owner's rights during the extension's writes.
 */
static const char *const own_triggers[] = {
	"payouts_guard", "payouts_refuse_truncate",
	"payouts_history",
	"payout_events_guard", "payout_events_refuse_truncate",
};

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

void
moneroo_refuse_foreign_triggers_of(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);

	moneroo_refuse_foreign_triggers(rel);
	table_close(rel, NoLock);
}

/* The role that called the extension, while it runs as an owner. */
static Oid	calling_role = InvalidOid;

Oid
moneroo_calling_role(void)
{
	return OidIsValid(calling_role) ? calling_role : GetUserId();
}

static Oid
owner_of(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

int
moneroo_execute_as_owner(const char *sql, int nargs, Oid *types, Datum *values,
						 const char *nulls, bool read_only, Snapshot snapshot,
						 Oid relid)
{
	Oid			saved_user;
	int			saved_context;
	int			guc_level;
	volatile int rc = 0;
	Oid			outer_calling_role = calling_role;

	/* checked before anything runs with the owner's rights, not from inside */
	if (!read_only)
		moneroo_refuse_foreign_triggers_of(relid);

	GetUserIdAndSecContext(&saved_user, &saved_context);
	/* a statement run from inside another keeps the first caller */
	if (!OidIsValid(calling_role))
		calling_role = saved_user;
	SetUserIdAndSecContext(owner_of(relid), saved_context | SECURITY_LOCAL_USERID_CHANGE);

	/*
	 * The caller's search_path must not choose the operators, functions and
	 * types these statements use: pg_catalog first, pg_temp last, as a
	 * SECURITY DEFINER function would pin them.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		/* AFTER triggers fire at the end of the statement: payouts' history does */
		rc = SPI_execute_snapshot(plan_cache_get(sql, nargs, types), values, nulls, snapshot,
								  InvalidSnapshot, read_only, true, 0);
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(false, guc_level);
		SetUserIdAndSecContext(saved_user, saved_context);
		calling_role = outer_calling_role;
	}
	PG_END_TRY();
	return rc;
}
