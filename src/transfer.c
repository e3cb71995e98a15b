/*
 * transfer.c
 *		moneroo_transfer: send one payout now, through the worker.
 *
 * The calling backend hands the request to the worker and waits.  The
 * worker records the payout in its own transaction before sending it, so
 * the row (with Moneroo's id, or as unknown) survives a rollback of the
 * caller: a payout that may have moved money is never unrecorded.
 *
 * An ERROR is raised only where no money moved, so that the caller can try
 * again with a clear conscience.  Where the outcome is unknown the row is
 * returned with a WARNING instead: an error would invite a retry that could
 * pay twice.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "moneroo_api.h"
#include "payout_store.h"
#include "settings.h"
#include "shared_state.h"
#include "transfer.h"

/* How long a request may wait for a worker that is not running. */
#define NO_WORKER_PATIENCE_MS 5000

static bool
worker_running(void)
{
	bool		running;

	SpinLockAcquire(&moneroo_shared->mutex);
	running = moneroo_shared->worker_pid != 0;
	SpinLockRelease(&moneroo_shared->mutex);
	return running;
}

static void
check_worker_serves_this_database(void)
{
	char	   *database = get_database_name(MyDatabaseId);

	if (strcmp(database, moneroo_database) != 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("the moneroo worker serves database \"%s\", not \"%s\"",
					   moneroo_database, database),
				errhint("Set moneroo.database to \"%s\" and restart the server, or call moneroo_transfer in \"%s\".",
						database, moneroo_database));
}

static char *
new_reference(void)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out,
											   DirectFunctionCall1(gen_random_uuid, (Datum) 0)));
}

/* The slot this backend waits on, so that leaving by any road frees it. */
static int	my_slot = -1;
static bool exit_callback_registered = false;

/*
 * Leaves our slot, whatever the reason: a request the worker has not sent
 * is withdrawn (the caller gets an error, so it must never be sent); one
 * already sent goes on and is recorded.  Returns the state it found.
 */
static TransferSlotState
leave_slot(void)
{
	TransferSlot *slot;
	TransferSlotState found;

	if (my_slot < 0)
		return SLOT_FREE;
	slot = &moneroo_shared->transfers[my_slot];
	SpinLockAcquire(&moneroo_shared->mutex);
	found = slot->state;
	switch (found)
	{
		case SLOT_RESERVED:
		case SLOT_SUBMITTED:
		case SLOT_DONE:
			slot->state = SLOT_FREE;
			break;
		case SLOT_CLAIMED:
			slot->state = SLOT_WITHDRAWN;
			break;
		case SLOT_SENDING:
			slot->state = SLOT_ABANDONED;
			break;
		default:
			break;
	}
	SpinLockRelease(&moneroo_shared->mutex);
	my_slot = -1;
	return found;
}

static void
leave_slot_at_exit(int code, Datum arg)
{
	(void) leave_slot();
}

/* Waits, interruptibly, for a free slot, and reserves it. */
static TransferSlot *
reserve_slot(void)
{
	if (!exit_callback_registered)
	{
		before_shmem_exit(leave_slot_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	for (;;)
	{
		SpinLockAcquire(&moneroo_shared->mutex);
		for (int i = 0; i < TRANSFER_SLOTS; i++)
		{
			if (moneroo_shared->transfers[i].state == SLOT_FREE)
			{
				moneroo_shared->transfers[i].state = SLOT_RESERVED;
				my_slot = i;
				SpinLockRelease(&moneroo_shared->mutex);
				return &moneroo_shared->transfers[i];
			}
		}
		SpinLockRelease(&moneroo_shared->mutex);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static TransferSlotState
slot_state(TransferSlot *slot)
{
	TransferSlotState state;

	SpinLockAcquire(&moneroo_shared->mutex);
	state = slot->state;
	SpinLockRelease(&moneroo_shared->mutex);
	return state;
}

static void
set_slot_state(TransferSlot *slot, TransferSlotState state)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	slot->state = state;
	SpinLockRelease(&moneroo_shared->mutex);
}

/*
 * Waits for the worker's answer.  A cancel, a statement_timeout or any
 * other error leaves the slot on the way out (see leave_slot).
 */
static void
wait_for_worker(TransferSlot *slot, const char *reference)
{
	TimestampTz submitted = GetCurrentTimestamp();

	PG_TRY();
	{
		for (;;)
		{
			TransferSlotState state = slot_state(slot);

			if (state == SLOT_DONE)
				break;

			if ((QueryCancelPending || ProcDiePending) && state == SLOT_SENDING)
				ereport(WARNING,
						errcode(ERRCODE_WARNING),
						errmsg("moneroo_transfer was interrupted while payout %s was being sent",
							   reference),
						errdetail("The request has left; the worker still records its outcome."),
						errhint("Look for reference %s in the payouts table before paying again.",
								reference));
			CHECK_FOR_INTERRUPTS();

			if (state == SLOT_SUBMITTED && !worker_running() &&
				TimestampDifferenceExceeds(submitted, GetCurrentTimestamp(), NO_WORKER_PATIENCE_MS))
				ereport(ERROR,
						errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("the moneroo background worker is not running"),
						errdetail("Nothing was sent."),
						errhint("Check the server log for why the worker stopped; it restarts on its own within seconds."));

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	PG_CATCH();
	{
		(void) leave_slot();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static int
refusal_errcode(long http_status)
{
	if (http_status == 401 || http_status == 403)
		return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	if (http_status == 400 || http_status == 422)
		return ERRCODE_INVALID_PARAMETER_VALUE;
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

/* Turns the worker's verdict into the caller's row, warning or error. */
static Datum
report_outcome(TransferSlot *slot, SendVerdict verdict)
{
	Datum		row = (Datum) 0;
	bool		recorded = payout_store_fetch_by_reference(slot->reference, &row);
	const char *detail = slot->detail[0] ? slot->detail : slot->error;

	if (!recorded)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout was not sent: the moneroo worker could not record it"),
				errdetail("%s", slot->error[0] ? slot->error : "The worker stopped before recording it."),
				errhint("Nothing was sent; see the server log, then try again."));

	switch (verdict)
	{
		case SEND_ACCEPTED:
			break;
		case SEND_UNKNOWN:
			ereport(WARNING,
					errcode(ERRCODE_WARNING),
					errmsg("outcome of payout %s is unknown", slot->reference),
					errdetail("%s", slot->worker_lost ?
							  "The moneroo worker stopped while the payout was being sent." :
							  slot->error),
					errhint("Do not pay again until you have checked Moneroo for this reference; then use moneroo_retry() if the payout does not exist."));
			break;
		case SEND_REFUSED:
			ereport(ERROR,
					errcode(refusal_errcode(slot->http_status)),
					errmsg("Moneroo refused the payout (HTTP %ld)", slot->http_status),
					errdetail("%s", detail),
					slot->http_status == 401 || slot->http_status == 403 ?
					errhint("Check moneroo.secret_key: Moneroo did not accept it. Nothing was paid.") :
					errhint("Correct the request and send it again; nothing was paid."));
			break;
		case SEND_NOT_SENT:
			ereport(ERROR,
					errcode(slot->http_status == 429 ? ERRCODE_CONFIGURATION_LIMIT_EXCEEDED :
							ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					errmsg("payout was not sent: %s",
						   slot->http_status == 429 ? "Moneroo's rate limit was reached" :
						   "could not reach Moneroo"),
					errdetail("%s", slot->error),
					errhint("Nothing was paid; try again later. Check moneroo.api_url if this persists."));
			break;
	}
	return row;
}

Datum
moneroo_transfer_now(Jsonb *request)
{
	char	   *text = JsonbToCString(NULL, &request->root, VARSIZE(request));
	char	   *reference;
	TransferSlot *slot;
	volatile Datum row = (Datum) 0;

	check_worker_serves_this_database();
	if (strlen(text) >= TRANSFER_REQUEST_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("payout request is too large: %zu bytes", strlen(text)),
				errdetail("moneroo_transfer takes requests of up to %d bytes.", TRANSFER_REQUEST_BYTES - 1),
				errhint("Shorten the metadata values, or queue the payout with INSERT INTO payouts."));

	reference = new_reference();
	slot = reserve_slot();
	slot->backend_latch = MyLatch;
	strlcpy(slot->reference, reference, REFERENCE_BYTES);
	strlcpy(slot->request, text, TRANSFER_REQUEST_BYTES);
	slot->error[0] = '\0';
	slot->detail[0] = '\0';
	set_slot_state(slot, SLOT_SUBMITTED);
	moneroo_wake_worker();

	wait_for_worker(slot, reference);

	/* the slot's contents stay ours to read until we leave it */
	PG_TRY();
	{
		row = report_outcome(slot, (SendVerdict) slot->verdict);
	}
	PG_FINALLY();
	{
		(void) leave_slot();
	}
	PG_END_TRY();
	return row;
}
