/*
 * database_events.c
 *		Tells the launcher and the workers of the statements that change
 *		what they serve.
 *
 * CREATE EXTENSION moneroo and DROP EXTENSION moneroo are told at commit,
 * never before: a launcher told earlier would start a worker that finds
 * no extension yet, and one rolled back changes nothing.  DROP DATABASE of
 * a served database first stops its worker, whose connection would make
 * the drop fail, and keeps it stopped until the drop is over (the worker
 * comes back if the drop failed).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "common/settings.h"
#include "compat/compat.h"
#include "shmem/database_events.h"
#include "shmem/served_databases.h"

/* The worker may take this long past its requests' timeout to stop. */
#define DROP_WAIT_EXTRA_MS 5000

static ProcessUtility_hook_type previous_process_utility = NULL;
static bool extension_changed_in_this_transaction = false;
/* the database this transaction's DROP DATABASE stopped the worker of */
static Oid	database_dropped_in_this_transaction = InvalidOid;

static bool
names_moneroo(Node *parsetree)
{
	if (IsA(parsetree, CreateExtensionStmt))
		return strcmp(((CreateExtensionStmt *) parsetree)->extname, "moneroo") == 0;
	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
			if (strcmp(strVal(lfirst(lc)), "moneroo") == 0)
				return true;
	}
	return false;
}

static void
run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (previous_process_utility)
		previous_process_utility(pstmt, queryString, readOnlyTree, context, params,
								 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Only the database's owner may drop it: nobody else stops its worker. */
static Oid
served_database_to_drop(DropdbStmt *stmt)
{
	Oid			database = get_database_oid(stmt->dbname, true);

	if (!OidIsValid(database) || !object_ownercheck(DatabaseRelationId, database, GetUserId()))
		return InvalidOid;
	return database;
}

static void
moneroo_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						ProcessUtilityContext context, ParamListInfo params,
						QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dropped = InvalidOid;

	if (IsA(parsetree, DropdbStmt))
		dropped = served_database_to_drop((DropdbStmt *) parsetree);
	if (!OidIsValid(dropped))
	{
		run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		if (names_moneroo(parsetree))
			extension_changed_in_this_transaction = true;
		return;
	}

	/*
	 * Its worker stays stopped until the drop commits (the launcher then
	 * finds the database gone) or fails: told any earlier, the launcher
	 * would start a worker for a database about to vanish.
	 */
	database_dropped_in_this_transaction = dropped;
	served_stop_for_drop(dropped, moneroo_request_timeout_ms + DROP_WAIT_EXTRA_MS);
	run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

static void
end_of_drop(void)
{
	if (OidIsValid(database_dropped_in_this_transaction))
		served_drop_finished(database_dropped_in_this_transaction);
	database_dropped_in_this_transaction = InvalidOid;
}

static void
tell_at_commit(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (extension_changed_in_this_transaction)
				served_note_extension_change();
			extension_changed_in_this_transaction = false;
			end_of_drop();
			break;
		case XACT_EVENT_ABORT:
			end_of_drop();
			extension_changed_in_this_transaction = false;
			break;
		case XACT_EVENT_PREPARE:
			/* a prepared CREATE EXTENSION is found by the launcher's next look (launcher.c) */
			extension_changed_in_this_transaction = false;
			break;
		default:
			break;
	}
}

void
moneroo_register_database_events(void)
{
	previous_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = moneroo_process_utility;
	RegisterXactCallback(tell_at_commit, NULL);
}
