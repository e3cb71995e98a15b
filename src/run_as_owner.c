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

#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

#include "access/table.h"
#include "commands/trigger.h"
#include "utils/guc.h"

#include "run_as_owner.h"

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

/*
 * The extension runs a handful of fixed statements over and over; parsing
 * and planning each anew cost the worker more than the rest of a payout.
 * Their plans are kept for the life of the backend, keyed by their text
 * (which names the schema).  PostgreSQL's plan cache revalidates them when
 * the table changes or the extension is dropped and created again, and the
 * search_path they are planned under is always the same.
 */
typedef struct KeptPlan
{
	char	   *sql;
	SPIPlanPtr	plan;
} KeptPlan;

static List *kept_plans = NIL;

static SPIPlanPtr
kept_plan(const char *sql, int nargs, Oid *types)
{
	ListCell   *lc;
	SPIPlanPtr	plan;
	KeptPlan   *kept;
	MemoryContext old;

	foreach(lc, kept_plans)
	{
		kept = lfirst(lc);
		if (strcmp(kept->sql, sql) == 0)
			return kept->plan;
	}

	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "moneroo could not prepare \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	/* the list and its entries outlive SPI and the transaction */
	old = MemoryContextSwitchTo(TopMemoryContext);
	kept = palloc(sizeof(KeptPlan));
	kept->sql = pstrdup(sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "moneroo could not keep the plan of \"%s\"", sql);
	kept->plan = plan;
	kept_plans = lappend(kept_plans, kept);
	MemoryContextSwitchTo(old);
	return plan;
}

void
moneroo_refuse_foreign_triggers(Relation rel)
{
	TriggerDesc *triggers = rel->trigdesc;

	for (int i = 0; triggers != NULL && i < triggers->numtriggers; i++)
	{
		Trigger    *t = &triggers->triggers[i];

		if (t->tgisinternal || strcmp(t->tgname, "payouts_guard") == 0 ||
			strcmp(t->tgname, "payouts_refuse_truncate") == 0)
			continue;
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("%s has a trigger the moneroo extension did not create: \"%s\"",
					   RelationGetRelationName(rel), t->tgname),
				errdetail("The extension writes this table with its owner's privileges, which such a trigger would share."),
				errhint("Drop the trigger; react to payouts from another table or with LISTEN/NOTIFY instead."));
	}
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

	/* checked before anything runs with the owner's rights, not from inside */
	if (!read_only)
	{
		Relation	rel = table_open(relid, AccessShareLock);

		moneroo_refuse_foreign_triggers(rel);
		table_close(rel, NoLock);
	}

	GetUserIdAndSecContext(&saved_user, &saved_context);
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
		rc = SPI_execute_snapshot(kept_plan(sql, nargs, types), values, nulls, snapshot,
								  InvalidSnapshot, read_only, false, 0);
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(false, guc_level);
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
	return rc;
}
