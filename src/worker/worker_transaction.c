/*
 * worker_transaction.c
 *		The worker's short transactions, and what becomes of their errors.
 *
 * A worker that died on every error would lose the requests it has in
 * flight; one that swallowed them would hide why payouts wait.  An error
 * is re-thrown as a WARNING, whole, under a context line that says what
 * the worker was doing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "shmem/served_databases.h"
#include "worker/worker_transaction.h"

/*
 * What a signal may cut short depends on where the worker is.
 *
 * SIGINT is how PostgreSQL ends a wait past lock_timeout (it signals itself),
 * and how pg_cancel_backend() asks.  Inside a transaction's work it cancels
 * that transaction, whose work is retried later: the worker never freezes
 * behind a row someone else keeps locked.  Anywhere else it is ignored:
 * between transactions a cancel would be an ERROR with nowhere to go, and
 * during a commit it would end the commit's wait for the synchronous
 * standbys, leaving a claim here that the standby lacks.
 *
 * SIGTERM during a commit does end that wait, as PostgreSQL ends it for its
 * own backends on a fast shutdown: a stop must not hang on a standby that is
 * gone.  What was committed so may be missing on the standby, so nothing is
 * sent once a stop is asked for (dispatch.c), and the commits after it do
 * not wait at all (worker_transaction_stop_waiting).
 */
typedef enum TransactionPhase
{
	PHASE_NONE,
	PHASE_WORKING,
	PHASE_COMMITTING
} TransactionPhase;

static volatile sig_atomic_t phase = PHASE_NONE;

/* A subscription's handler is running: a stop cancels it (worker_transaction_try). */
static volatile sig_atomic_t cancel_on_stop = false;

/* The SQLSTATE of the last worker_transaction that failed. */
static int	last_failure = 0;

void
worker_transaction_sigint(SIGNAL_ARGS)
{
	if (phase == PHASE_WORKING)
		StatementCancelHandler(postgres_signal_arg);
}

void
worker_transaction_sigterm(SIGNAL_ARGS)
{
	if ((phase == PHASE_COMMITTING && SyncRepRequested()) ||
		(phase == PHASE_WORKING && cancel_on_stop))
		StatementCancelHandler(postgres_signal_arg);
	SignalHandlerForShutdownRequest(postgres_signal_arg);
}

static void
set_phase(TransactionPhase next)
{
	phase = next;
	/* a cancel meant for the phase before, and not acted on, goes with it */
	QueryCancelPending = false;
	/* a stop asked for just before the commit: its wait is cut short too */
	if (next == PHASE_COMMITTING && ShutdownRequestPending && SyncRepRequested())
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
}

void
worker_transaction_stop_waiting(void)
{
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
}

static void
activity_context(void *arg)
{
	errcontext("moneroo worker: %s", (const char *) arg);
}

/* Logs a caught error as a WARNING that keeps everything it said. */
static void
log_as_warning(ErrorData *error, const char *activity)
{
	ErrorContextCallback callback = {
		.callback = activity_context,
		.arg = (void *) activity,
		.previous = error_context_stack,
	};

	error->elevel = WARNING;
	error->message = psprintf("moneroo worker could not %s: %s", activity, error->message);
	error_context_stack = &callback;
	ThrowErrorData(error);
	error_context_stack = callback.previous;
}

bool
worker_transaction_try(void (*fn) (void *), void *arg, const char *activity,
					   bool stop_cancels, ErrorData **error)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = true;

	*error = NULL;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		cancel_on_stop = stop_cancels;
		set_phase(PHASE_WORKING);
		/* a stop asked for before the handler started cancels it too */
		if (stop_cancels && ShutdownRequestPending)
		{
			QueryCancelPending = true;
			InterruptPending = true;
		}
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		PopActiveSnapshot();
		cancel_on_stop = false;
		set_phase(PHASE_COMMITTING);
		CommitTransactionCommand();
		set_phase(PHASE_NONE);
	}
	PG_CATCH();
	{
		cancel_on_stop = false;
		set_phase(PHASE_NONE);
		MemoryContextSwitchTo(caller);
		*error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		last_failure = (*error)->sqlerrcode;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

bool
worker_transaction(void (*fn) (void *), void *arg, const char *activity)
{
	ErrorData  *error;

	if (worker_transaction_try(fn, arg, activity, false, &error))
		return true;
	moneroo_note_error(error->message);
	log_as_warning(error, activity);
	FreeErrorData(error);
	return false;
}

bool
worker_transaction_lock_timed_out(void)
{
	return last_failure == ERRCODE_LOCK_NOT_AVAILABLE;
}
