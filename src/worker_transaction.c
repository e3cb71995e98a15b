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
#include "pgstat.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "shared_state.h"
#include "worker_transaction.h"

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
worker_transaction(void (*fn) (void *), void *arg, const char *activity)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		fn(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		moneroo_note_error(error->message);
		log_as_warning(error, activity);
		FreeErrorData(error);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}
