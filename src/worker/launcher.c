/*
 * launcher.c
 *		The launcher: one static background worker per cluster that keeps a
 *		moneroo worker running for every database moneroo.database serves.
 *
 * It connects to no database: it reads pg_database, a shared catalog,
 * and gives every served database an entry in shared memory (see
 * served_databases.c) and a dynamic worker.  It looks again on a reload,
 * when a worker stops (bgw_notify_pid sets its latch), when a CREATE or
 * DROP EXTENSION or a DROP DATABASE commits somewhere (served_databases.c
 * sets its latch), and every LAUNCHER_SCAN_MS for new databases.
 *
 * A worker that stops is started again: after WORKER_RESTART_MS if it had
 * come up, and after a delay doubling up to WORKER_RESTART_MAX_MS if it
 * failed on the way (a database that refuses connections, say), so that a
 * broken database costs a line in the log every few minutes, not every
 * few seconds.  Like the workers it only starts once recovery is over:
 * nothing is ever sent from a standby, and a promotion starts it.
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "shmem/served_databases.h"
#include "worker/launcher.h"
#include "worker/worker.h"

/* How often pg_database is read for databases created since. */
#define LAUNCHER_SCAN_MS (5 * 1000)
#define WORKER_RESTART_MS (5 * 1000)
#define WORKER_RESTART_MAX_MS (5 * 60 * 1000)
/*
 * With '*', a database whose worker found no extension is looked at again
 * this often, for an extension nobody told the launcher of (created in a
 * prepared transaction, say); a CREATE EXTENSION that commits tells it.
 */
#define NO_EXTENSION_LOOK_MS (5 * 60 * 1000)

/* What the launcher alone knows of each entry's worker. */
typedef struct Launched
{
	BackgroundWorkerHandle *handle; /* NULL: none started by this launcher */
	TimestampTz start_after;
	int			failures;		/* stops in a row before coming up */
	bool		no_extension;	/* it stopped: '*' and no extension there */
	bool		warned;			/* that it could not be started */
} Launched;

typedef struct DatabaseRow
{
	Oid			oid;
	char		name[NAMEDATALEN];
	bool		served;			/* listed (or '*'), and open to connections */
} DatabaseRow;

static Launched launched[SERVED_DATABASES_MAX];
static MemoryContext scan_context;
/* names of moneroo.database warned about since the last reload */
static List *warned_names = NIL;
static bool warned_full = false;

void
moneroo_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "moneroo", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "moneroo_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "moneroo launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "moneroo launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Every database of the cluster, in scan_context. */
static List *
read_pg_database(void)
{
	List	   *rows = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		MemoryContext old = MemoryContextSwitchTo(scan_context);
		DatabaseRow *row = palloc0(sizeof(DatabaseRow));

		row->oid = db->oid;
		strlcpy(row->name, NameStr(db->datname), NAMEDATALEN);
		row->served = db->datallowconn && !db->datistemplate &&
			moneroo_database_listed(row->name);
		rows = lappend(rows, row);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return rows;
}

static bool
name_warned(const char *name)
{
	ListCell   *lc;

	foreach(lc, warned_names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/* A listed database that does not exist is said once, not at every scan. */
static void
warn_missing_databases(List *rows)
{
	ListCell   *name;

	foreach(name, moneroo_listed_databases())
	{
		bool		found = false;
		ListCell   *lc;

		foreach(lc, rows)
			found |= strcmp(((DatabaseRow *) lfirst(lc))->name, lfirst(name)) == 0;
		if (found || name_warned(lfirst(name)))
			continue;
		ereport(WARNING,
				errcode(ERRCODE_UNDEFINED_DATABASE),
				errmsg("moneroo.database names database \"%s\", which does not exist",
					   (char *) lfirst(name)),
				errdetail("Payouts are sent for the other databases it names."),
				errhint("Create the database, or remove it from moneroo.database and reload the configuration."));
		{
			/* the list outlives scan_context, which is reset at every look */
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			warned_names = lappend(warned_names, pstrdup(lfirst(name)));
			MemoryContextSwitchTo(old);
		}
	}
}

static bool
worker_running(int entry, const ServedDatabase *copy)
{
	pid_t		pid;

	if (launched[entry].handle != NULL &&
		GetBackgroundWorkerPid(launched[entry].handle, &pid) != BGWH_STOPPED)
		return true;
	/* started by a launcher before this one, which died */
	return copy->worker_pid != 0;
}

static void
stop_worker(int entry, const ServedDatabase *copy)
{
	if (launched[entry].handle != NULL)
		TerminateBackgroundWorker(launched[entry].handle);
	else if (copy->worker_pid != 0)
		(void) kill(copy->worker_pid, SIGTERM);
}

static void
forget_handle(int entry)
{
	if (launched[entry].handle != NULL)
		pfree(launched[entry].handle);
	launched[entry].handle = NULL;
}

/* A worker stopped: when may it start again? */
static void
note_stopped(int entry, const ServedDatabase *copy, TimestampTz now)
{
	long		delay = WORKER_RESTART_MS;

	forget_handle(entry);
	launched[entry].no_extension = copy->extension_absent;
	if (copy->extension_absent)
	{
		launched[entry].failures = 0;
		delay = NO_EXTENSION_LOOK_MS;
	}
	else if (copy->being_dropped)
	{
		/* stopped for a DROP DATABASE: back at once if the drop failed */
		launched[entry].failures = 0;
		delay = 0;
	}
	else if (copy->worker_ready)
		launched[entry].failures = 0;
	else
	{
		for (int i = 0; i < launched[entry].failures && delay < WORKER_RESTART_MAX_MS; i++)
			delay *= 2;
		launched[entry].failures++;
	}
	launched[entry].start_after = TimestampTzPlusMilliseconds(now, Min(delay, WORKER_RESTART_MAX_MS));
}

static void
start_worker(int entry, const ServedDatabase *copy, TimestampTz now)
{
	served_entry_starting(entry);
	if (worker_launch(entry, copy->name, &launched[entry].handle))
	{
		launched[entry].warned = false;
		return;
	}
	launched[entry].handle = NULL;
	launched[entry].start_after = TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS);
	if (!launched[entry].warned)
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("could not start the moneroo worker for database \"%s\"", copy->name),
				errdetail("Every background worker slot is taken; its payouts wait until one is free."),
				errhint("Raise max_worker_processes: moneroo needs one for its launcher and one per served database."));
	launched[entry].warned = true;
}

/* Makes the running workers match the served databases.  Returns the next due time. */
static TimestampTz
reconcile(List *rows)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = TimestampTzPlusMilliseconds(now, LAUNCHER_SCAN_MS);
	bool		wanted[SERVED_DATABASES_MAX] = {false};
	ListCell   *lc;

	foreach(lc, rows)
	{
		DatabaseRow *row = lfirst(lc);
		int			entry;

		if (!row->served)
			continue;
		entry = served_entry_for(row->oid, row->name);
		if (entry < 0)
		{
			if (!warned_full)
				ereport(WARNING,
						errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						errmsg("moneroo serves at most %d databases; database \"%s\" is not served",
							   SERVED_DATABASES_MAX, row->name),
						errhint("Name fewer databases in moneroo.database."));
			warned_full = true;
			continue;
		}
		wanted[entry] = true;
	}

	for (int entry = 0; entry < SERVED_DATABASES_MAX; entry++)
	{
		ServedDatabase copy;

		served_entry_copy(entry, &copy);
		if (!OidIsValid(copy.database))
			continue;
		if (worker_running(entry, &copy))
		{
			if (!wanted[entry])
				stop_worker(entry, &copy);	/* forgotten once it has stopped */
			continue;
		}
		if (launched[entry].handle != NULL)
			note_stopped(entry, &copy, now);
		if (!wanted[entry])
		{
			served_entry_forget(entry);
			launched[entry] = (Launched) {0};
			continue;
		}
		if (copy.being_dropped)
			continue;
		if (launched[entry].no_extension &&
			(!copy.extension_absent || !moneroo_serves_every_database()))
		{
			/* a CREATE EXTENSION committed there, or the database is now named */
			launched[entry].no_extension = false;
			launched[entry].start_after = now;
		}
		if (now >= launched[entry].start_after)
			start_worker(entry, &copy, now);
		else
			next = Min(next, launched[entry].start_after);
	}
	return next;
}

void
moneroo_launcher_main(Datum arg)
{
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* no database: pg_database is a shared catalog */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	served_launcher_attach();
	scan_context = AllocSetContextCreate(TopMemoryContext, "moneroo launcher scan",
										 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG, errmsg("moneroo launcher started"));

	while (!ShutdownRequestPending)
	{
		TimestampTz next;
		List	   *rows;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			list_free_deep(warned_names);
			warned_names = NIL;
			warned_full = false;
		}
		MemoryContextReset(scan_context);
		rows = read_pg_database();
		MemoryContextSwitchTo(scan_context);
		warn_missing_databases(rows);
		/* the handles of the workers it starts live as long as the launcher */
		MemoryContextSwitchTo(TopMemoryContext);
		next = reconcile(rows);
		pgstat_report_stat(false);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next)),
						 moneroo_wait_event(MONEROO_WAIT_LAUNCHER));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* the workers stop on their own: the postmaster signals each of them */
	proc_exit(0);
}
