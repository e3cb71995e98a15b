/*
 * plan_cache.c
 *		Kept plans of the extension's own statements.
 *
 * The extension runs a handful of fixed statements over and over; parsing
 * and planning each anew cost the worker more than the rest of a payout.
 * Their plans are kept for the life of the backend, keyed by their text
 * (which names the schema).  PostgreSQL's plan cache revalidates them when
 * the table changes or the extension is dropped and created again, and the
 * search_path they are planned under is always the same (run_as_owner.c).
 */
#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "common/plan_cache.h"

typedef struct KeptPlan
{
	char	   *sql;
	SPIPlanPtr	plan;
} KeptPlan;

static List *kept_plans = NIL;

SPIPlanPtr
plan_cache_get(const char *sql, int nargs, Oid *types)
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
