/*
 * worker.c
 *		The background worker: claims queued payouts, sends them, records
 *		what Moneroo said, and verifies sent payouts until they settle.
 *
 * Every request leaves outside any transaction, between two short ones:
 * the claim commits "sending" before the request goes, and the result is
 * written after it comes back.  A crash in between leaves the row in
 * "sending", which the next start turns into "unknown" -- never back into
 * "pending", since the request may have reached Moneroo.
 *
 * Requests run concurrently on one libcurl multi handle; a slot frees as
 * soon as its own request ends.  Wake-ups come from commits (see
 * commit_wakeup.c), from moneroo_transfer, from libcurl's sockets and from
 * the next due verification; moneroo.poll_interval is only a safety net.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "http_client.h"
#include "moneroo_api.h"
#include "payout_store.h"
#include "settings.h"
#include "shared_state.h"
#include "worker.h"

/* A payout that could not connect is retried after this long. */
#define CONNECT_RETRY_MS (10 * 1000)
/* A sent payout gets a verification once in this many sends under load. */
#define SENDS_PER_VERIFICATION 10
/* After a configuration error (no key, say), look again this much later. */
#define CONFIG_RETRY_MS (5 * 1000)
/* Due rows someone else holds locked are looked at again this often. */
#define LOCKED_BACKOFF_MIN_MS 100
#define LOCKED_BACKOFF_MAX_MS 1000
#define RECORD_RETRY_MIN_MS 500
#define RECORD_RETRY_MAX_MS (30 * 1000)

typedef enum CallPurpose
{
	PURPOSE_SEND,
	PURPOSE_VERIFY
} CallPurpose;

typedef struct WorkerState
{
	HttpPool   *pool;
	MemoryContext work_context; /* PayoutWork of claimed and in-flight rows */
	List	   *ready;			/* claimed sends waiting for the rate limiter */
	List	   *unrecorded;		/* finished calls whose result is not yet written */
	bool		more_pending;	/* a claim may find rows */
	bool		more_to_verify; /* a lease may find rows */
	int			sends_since_verification;
	int			record_failures;
	TimestampTz next_record_retry;
	TimestampTz paused_until;	/* after a configuration error: send nothing */
	long		locked_backoff_ms;	/* due rows that others hold locked */
} WorkerState;

static WorkerState state;

void
moneroo_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "moneroo", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "moneroo_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "moneroo worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "moneroo worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

static void
forget_worker(int code, Datum arg)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	if (moneroo_shared->worker_pid == MyProcPid)
	{
		moneroo_shared->worker_pid = 0;
		moneroo_shared->worker_latch = NULL;
		moneroo_shared->in_flight = 0;
	}
	SpinLockRelease(&moneroo_shared->mutex);
}

static void
publish_in_flight(void)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	moneroo_shared->in_flight = http_pool_in_flight(state.pool) + list_length(state.ready);
	SpinLockRelease(&moneroo_shared->mutex);
}

/*
 * Runs fn in its own short transaction.  An error is logged and reported
 * as false; the worker goes on, and what fn was doing is retried later.
 */
static bool
in_transaction(void (*fn) (void *), void *arg, const char *activity)
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
		ereport(WARNING,
				errcode(error->sqlerrcode),
				errmsg("moneroo worker could not %s: %s", activity, error->message),
				error->detail ? errdetail("%s", error->detail) : 0);
		moneroo_note_error(error->message);
		FreeErrorData(error);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * Whether the extension exists, and stays so until this transaction ends:
 * DROP EXTENSION locks the extension object, so holding a share lock on it
 * makes a drop wait for this transaction, or this one see the drop done,
 * rather than have the table vanish under a statement half-way through.
 */
static bool
extension_installed(void)
{
	Oid			extension = get_extension_oid("moneroo", true);

	if (!OidIsValid(extension))
		return false;
	/* taking the lock processes the invalidations of a drop we waited for */
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	return get_extension_oid("moneroo", true) == extension;
}

static void
free_work(PayoutWork *work)
{
	if (work->reference)
		pfree(work->reference);
	if (work->request_body)
		pfree(work->request_body);
	if (work->moneroo_id)
		pfree(work->moneroo_id);
	pfree(work);
}

/* ---- moneroo_transfer's slots ---- */

static TransferSlot *
slot_at(int i)
{
	return &moneroo_shared->transfers[i];
}

/*
 * Writes a transfer's result into its slot; the worker owns a claimed slot,
 * so no lock is needed until the hand-over in release_transfer.
 */
static void
note_transfer_result(int i, SendVerdict verdict, MonerooAnswer *answer,
					 long http_status, bool worker_lost)
{
	TransferSlot *slot = slot_at(i);

	slot->verdict = verdict;
	slot->http_status = http_status;
	slot->worker_lost = worker_lost;
	moneroo_clip_copy(slot->error, answer && answer->error ? answer->error : "", LAST_ERROR_BYTES);
	moneroo_clip_copy(slot->detail, answer && answer->detail ? answer->detail : "", DETAIL_BYTES);
}

/* Hands the slot back to its backend, or frees it if the backend left. */
static void
release_transfer(int i)
{
	TransferSlot *slot = slot_at(i);
	Latch	   *latch = NULL;

	SpinLockAcquire(&moneroo_shared->mutex);
	if (slot->state == SLOT_ABANDONED || slot->state == SLOT_WITHDRAWN)
		slot->state = SLOT_FREE;
	else
	{
		slot->state = SLOT_DONE;
		latch = slot->backend_latch;
	}
	SpinLockRelease(&moneroo_shared->mutex);
	if (latch)
		SetLatch(latch);
}

typedef struct TransferInsert
{
	int			slot;
	PayoutWork *work;
} TransferInsert;

static void
insert_transfer(void *arg)
{
	TransferInsert *insert = (TransferInsert *) arg;
	TransferSlot *slot = slot_at(insert->slot);
	Jsonb	   *request = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(slot->request)));
	MemoryContext txn = MemoryContextSwitchTo(state.work_context);

	insert->work = payout_store_insert_sending(request, slot->reference);
	insert->work->transfer_slot = insert->slot;
	MemoryContextSwitchTo(txn);
}

/*
 * Records each submitted transfer as a sending row, in its own transaction
 * so that one bad request cannot hold up another, and puts it first in
 * line: a user is waiting for it.
 */
static void
take_transfers(void)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
	{
		TransferInsert insert = {.slot = i};
		bool		mine = false;

		SpinLockAcquire(&moneroo_shared->mutex);
		if (slot_at(i)->state == SLOT_SUBMITTED)
		{
			slot_at(i)->state = SLOT_CLAIMED;
			mine = true;
		}
		SpinLockRelease(&moneroo_shared->mutex);
		if (!mine)
			continue;

		if (in_transaction(insert_transfer, &insert, "record a moneroo_transfer payout"))
		{
			MemoryContext old = MemoryContextSwitchTo(state.work_context);

			state.ready = lcons(insert.work, state.ready);
			MemoryContextSwitchTo(old);
		}
		else
		{
			/* nothing was recorded, so nothing will be sent */
			MonerooAnswer answer = {.error = moneroo_shared->last_error};

			note_transfer_result(i, SEND_NOT_SENT, &answer, 0, false);
			release_transfer(i);
		}
	}
}

/* ---- starting requests ---- */

/*
 * The last moment a waiting moneroo_transfer can be withdrawn: once its
 * slot says SENDING, its caller will be told the request left.  Returns
 * false for a withdrawn one, which is then recorded as never sent.
 */
static bool
transfer_may_leave(PayoutWork *work)
{
	TransferSlot *slot;
	bool		withdrawn;

	if (work->transfer_slot < 0)
		return true;
	slot = slot_at(work->transfer_slot);
	SpinLockAcquire(&moneroo_shared->mutex);
	withdrawn = slot->state == SLOT_WITHDRAWN;
	if (!withdrawn)
		slot->state = SLOT_SENDING;
	SpinLockRelease(&moneroo_shared->mutex);
	if (withdrawn)
	{
		MonerooAnswer answer = {.error = "withdrawn: its caller was interrupted before it was sent"};

		payout_store_record_send(work->id, work->reference, SEND_NOT_SENT, &answer, 0, false);
		release_transfer(work->transfer_slot);
	}
	return !withdrawn;
}

static void
start_send(PayoutWork *work)
{
	HttpCall   *call = http_call_new("/v1/payouts/initialize", work->request_body);

	call->purpose = PURPOSE_SEND;
	call->owner = work;
	call->payout_id = work->id;
	PG_TRY();
	{
		http_pool_add(state.pool, call);
	}
	PG_CATCH();
	{
		http_call_free(call);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(work->request_body);
	work->request_body = NULL;
	state.sends_since_verification++;
}

static void
start_verification(PayoutWork *work)
{
	char	   *path = moneroo_verify_path(work->moneroo_id);
	HttpCall   *call = http_call_new(path, NULL);

	pfree(path);
	call->purpose = PURPOSE_VERIFY;
	call->owner = work;
	call->payout_id = work->id;
	http_pool_add(state.pool, call);
	state.sends_since_verification = 0;
}

static int
free_capacity(void)
{
	return moneroo_max_concurrency - http_pool_in_flight(state.pool);
}

/* How many requests the limiter lets through in the next 100 ms. */
static int
rate_allowance(void)
{
	if (moneroo_rate_wait_ms() > 0)
		return 0;
	if (moneroo_rate_limit == 0)
		return INT_MAX;
	return Max(1, moneroo_rate_limit / 600);
}

static void
start_sends(void *unused)
{
	while (state.ready != NIL && free_capacity() > 0 && moneroo_rate_acquire() == 0)
	{
		PayoutWork *work = linitial(state.ready);

		/* started before it leaves the list: a failed start keeps it queued */
		if (transfer_may_leave(work))
			start_send(work);
		else
			free_work(work);
		state.ready = list_delete_first(state.ready);
	}
}

/*
 * Starts the connects of the requests just added, now that the transaction
 * that added them is over, rather than after the rest of the round's table
 * work: a request should not wait for the next claim or lease.
 */
static void
let_requests_leave(void)
{
	(void) http_pool_wait(state.pool, 0, PG_WAIT_EXTENSION);
}

/*
 * Requests are prepared inside a transaction only so that a configuration
 * error (a key file gone, say) is caught like any other: the payouts stay
 * claimed in memory and the worker pauses instead of dying with them.
 */
static void
start_ready_sends(void)
{
	if (state.ready != NIL && free_capacity() > 0)
	{
		if (!in_transaction(start_sends, NULL, "prepare requests to Moneroo"))
			state.paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 CONFIG_RETRY_MS);
		let_requests_leave();
	}
	publish_in_flight();
}

typedef struct Claim
{
	int			wanted;
	List	   *claimed;		/* in work_context */
} Claim;

/* The claimed rows join the ready list only once the claim has committed. */
static void
claim_pending(void *arg)
{
	Claim	   *claim = (Claim *) arg;
	MemoryContext txn;

	if (!extension_installed())
		return;
	txn = MemoryContextSwitchTo(state.work_context);
	claim->claimed = payout_store_claim(claim->wanted);
	MemoryContextSwitchTo(txn);
}

static void
lease_verifications(void *arg)
{
	int			n = *(int *) arg;
	List	   *leased;
	MemoryContext txn;
	ListCell   *lc;

	if (!extension_installed())
	{
		state.more_to_verify = false;
		return;
	}
	txn = MemoryContextSwitchTo(state.work_context);
	leased = payout_store_lease_verifications(n, moneroo_request_timeout_ms + 60 * 1000);
	MemoryContextSwitchTo(txn);
	state.more_to_verify = list_length(leased) == n;
	foreach(lc, leased)
	{
		PayoutWork *work = lfirst(lc);

		if (moneroo_rate_acquire() == 0)
			start_verification(work);
		else
			free_work(work);	/* its lease expires and it comes round again */
	}
	list_free(leased);
}

/* ---- recording results ---- */

static int
retry_delay_ms(MonerooAnswer *answer)
{
	return answer->rate_limited ? RATE_LIMIT_PAUSE_MS : CONNECT_RETRY_MS;
}

/* Writes one finished call into payouts; runs inside a transaction. */
static void
record_call(HttpCall *call)
{
	PayoutWork *work = (PayoutWork *) call->owner;
	MonerooAnswer answer;

	if (call->purpose == PURPOSE_SEND)
	{
		SendVerdict verdict = moneroo_read_initialize(call, &answer);

		verdict = payout_store_record_send(work->id, work->reference, verdict, &answer,
										   retry_delay_ms(&answer), work->transfer_slot < 0);
		if (verdict != SEND_ACCEPTED)
			moneroo_note_error(answer.error);
		if (work->transfer_slot >= 0)
			note_transfer_result(work->transfer_slot, verdict, &answer, call->status, false);
	}
	else
	{
		bool		ok = moneroo_read_verify(call, work->moneroo_id, &answer);

		payout_store_record_verify(work->id, work->moneroo_id, ok, &answer,
								   moneroo_verify_backoff_ms(work->verifications + 1));
		if (!ok)
			moneroo_note_error(answer.error);
	}
	if (answer.rate_limited)
		moneroo_rate_pause(RATE_LIMIT_PAUSE_MS);
	else if (call->outcome == HTTP_NEVER_CONNECTED)
		moneroo_rate_pause(1000);	/* do not hammer an API that is down */
}

static void
record_calls(void *arg)
{
	List	   *calls = (List *) arg;
	ListCell   *lc;

	if (!extension_installed())
	{
		/* dropped under us: nowhere to write, so the log is the record */
		foreach(lc, calls)
		{
			HttpCall   *call = lfirst(lc);

			ereport(WARNING,
					errcode(ERRCODE_UNDEFINED_OBJECT),
					errmsg("extension \"moneroo\" was dropped while payout %lld was in flight",
						   (long long) call->payout_id),
					errdetail("Its request ended as: %s, HTTP %ld.",
							  http_outcome_name(call->outcome), call->status));
		}
		return;
	}
	foreach(lc, calls)
		record_call(lfirst(lc));
}

/* After the result is committed: answer the waiting backend, free memory. */
static void
release_call(HttpCall *call)
{
	PayoutWork *work = (PayoutWork *) call->owner;

	if (call->purpose == PURPOSE_SEND && work->transfer_slot >= 0)
		release_transfer(work->transfer_slot);
	free_work(work);
	http_call_free(call);
}

/*
 * Writes every finished call, all in one transaction when possible.  When
 * that fails, each is tried alone, and those that still fail are kept and
 * retried with a growing delay: a result is never dropped because the
 * database refused to take it once.
 */
static void
record_finished(void)
{
	HttpCall   *call;
	List	   *batch = state.unrecorded;
	List	   *failed = NIL;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(state.work_context);

	state.unrecorded = NIL;
	while ((call = http_pool_next_done(state.pool)) != NULL)
		batch = lappend(batch, call);
	MemoryContextSwitchTo(old);
	if (batch == NIL)
		return;

	if (in_transaction(record_calls, batch, "record results from Moneroo"))
	{
		foreach(lc, batch)
			release_call(lfirst(lc));
	}
	else
	{
		foreach(lc, batch)
		{
			List	   *one = list_make1(lfirst(lc));

			if (in_transaction(record_calls, one, "record a result from Moneroo"))
				release_call(lfirst(lc));
			else
			{
				MemoryContext loop = MemoryContextSwitchTo(state.work_context);

				failed = lappend(failed, lfirst(lc));
				MemoryContextSwitchTo(loop);
			}
			list_free(one);
		}
	}
	list_free(batch);

	state.unrecorded = failed;
	if (failed == NIL)
		state.record_failures = 0;
	else
	{
		long		delay = RECORD_RETRY_MIN_MS;

		for (int i = 0; i < state.record_failures && delay < RECORD_RETRY_MAX_MS; i++)
			delay *= 2;
		state.record_failures++;
		state.next_record_retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  Min(delay, RECORD_RETRY_MAX_MS));
	}
}

/* ---- start-up and the loop ---- */

static void
settle_orphans(void *arg)
{
	uint64		settled;

	if (!extension_installed())
		return;
	settled = payout_store_settle_orphans();
	if (settled > 0)
		ereport(LOG,
				errmsg("moneroo worker marked %llu payouts left in \"sending\" as unknown",
					   (unsigned long long) settled),
				errdetail("They were being sent when the previous worker stopped; Moneroo may or may not have created them."),
				errhint("Check each one's reference in Moneroo's dashboard, then use moneroo_retry() for those that do not exist."));
}

/*
 * Transfers the previous worker had taken are finished as unknown, after
 * their rows were settled: the waiting backend looks its row up by
 * reference, and finds none if the insert never committed.
 */
static void
release_orphaned_transfers(void)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
	{
		TransferSlotState found = slot_at(i)->state;

		if (found == SLOT_CLAIMED || found == SLOT_SENDING ||
			found == SLOT_ABANDONED || found == SLOT_WITHDRAWN)
		{
			note_transfer_result(i, SEND_UNKNOWN, NULL, 0, true);
			release_transfer(i);
		}
	}
}

static bool
transfers_submitted(void)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
		if (slot_at(i)->state == SLOT_SUBMITTED)
			return true;
	return false;
}

static void
find_next_due(void *arg)
{
	*(long *) arg = extension_installed() ? payout_store_next_due_ms() : -1;
}

/*
 * A claim or lease that failed (a read-only database, a constraint someone
 * added) would fail again at once: look again a little later instead of
 * spinning and flooding the log.
 */
static long
pause_after_failure(void)
{
	state.paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CONFIG_RETRY_MS);
	return CONFIG_RETRY_MS;
}

/*
 * One round of work.  Returns how long the worker may sleep before the
 * next one, unless something wakes it first.
 */
static long
work_once(void)
{
	long		sleep_ms = moneroo_poll_interval_ms;
	int			n;
	TimestampTz now = GetCurrentTimestamp();

	if (state.paused_until > now)
	{
		record_finished();
		return Max(1, TimestampDifferenceMilliseconds(now, state.paused_until));
	}
	if (state.unrecorded != NIL &&
		GetCurrentTimestamp() < state.next_record_retry)
		return Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													  state.next_record_retry));
	record_finished();
	if (state.unrecorded != NIL)
		return RECORD_RETRY_MIN_MS;		/* take no new work until results are safe */

	if (transfers_submitted())
		take_transfers();
	start_ready_sends();

	n = Min(free_capacity(), rate_allowance());
	if (state.ready == NIL && state.more_pending && n > 0)
	{
		Claim		claim = {.wanted = n};

		if (in_transaction(claim_pending, &claim, "claim pending payouts"))
		{
			MemoryContext old = MemoryContextSwitchTo(state.work_context);

			state.more_pending = list_length(claim.claimed) == n;
			state.ready = list_concat(state.ready, claim.claimed);
			list_free(claim.claimed);
			MemoryContextSwitchTo(old);
			start_ready_sends();
		}
		else
		{
			/* the claim never committed: nothing was taken, nothing may leave */
			list_free_deep(claim.claimed);
			return pause_after_failure();
		}
	}

	n = Min(free_capacity(), rate_allowance());
	if (state.more_to_verify && n > 0 && state.ready == NIL &&
		(!state.more_pending || state.sends_since_verification >= SENDS_PER_VERIFICATION))
	{
		if (!in_transaction(lease_verifications, &n, "lease payouts to verify"))
			return pause_after_failure();
		let_requests_leave();
	}

	if (free_capacity() <= 0)
		sleep_ms = moneroo_poll_interval_ms;	/* a finishing request wakes us */
	else if (state.ready != NIL || rate_allowance() == 0)
		sleep_ms = Max(1, moneroo_rate_wait_ms());
	else if (state.more_pending || state.more_to_verify)
		sleep_ms = 0;
	else
	{
		long		next_due = -1;

		if (in_transaction(find_next_due, &next_due, "find the next due payout") &&
			next_due >= 0)
		{
			/*
			 * Due already, yet nothing could be claimed: another transaction
			 * holds those rows.  Look again later, backing off, rather than
			 * spin until it lets go; a commit that requeues them wakes us.
			 */
			if (next_due == 0)
			{
				next_due = state.locked_backoff_ms;
				state.locked_backoff_ms = Min(state.locked_backoff_ms * 2,
											  LOCKED_BACKOFF_MAX_MS);
			}
			else
				state.locked_backoff_ms = LOCKED_BACKOFF_MIN_MS;
			sleep_ms = Min(sleep_ms, Max(next_due, 1));
		}
	}
	/*
	 * A call can finish while new ones are being started (a refused
	 * connection does at once): record it now, not after the sleep.
	 */
	if (http_pool_has_finished(state.pool))
		sleep_ms = 0;
	publish_in_flight();
	return sleep_ms;
}

/*
 * Claimed payouts that never left are provably unsent: back to the queue,
 * or, for a waiting moneroo_transfer, refused so its caller gets an error.
 */
static void
return_unsent(void *arg)
{
	ListCell   *lc;
	MonerooAnswer answer = {.error = "the moneroo worker stopped before sending it"};

	foreach(lc, state.ready)
	{
		PayoutWork *work = lfirst(lc);

		payout_store_record_send(work->id, work->reference, SEND_NOT_SENT, &answer, 0,
								 work->transfer_slot < 0);
		if (work->transfer_slot >= 0)
		{
			note_transfer_result(work->transfer_slot, SEND_NOT_SENT, &answer, 0, false);
			release_transfer(work->transfer_slot);
		}
	}
}

/*
 * On shutdown no new request leaves, but those in flight are seen through
 * and recorded: cutting them off would only turn answers into unknowns.
 */
static void
finish_in_flight(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   moneroo_request_timeout_ms + 5000);

	while (http_pool_in_flight(state.pool) > 0 && GetCurrentTimestamp() < deadline)
		(void) http_pool_wait(state.pool, 100, PG_WAIT_EXTENSION);
	record_finished();
	in_transaction(return_unsent, NULL, "return unsent payouts to the queue");
}

void
moneroo_worker_main(Datum arg)
{
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* a cancel would abandon requests in flight: the worker has none to cancel */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(moneroo_database, NULL, 0);
	SetConfigOption("application_name", "moneroo worker", PGC_USERSET, PGC_S_SESSION);

	/*
	 * Whatever ALTER DATABASE or ALTER ROLE set: a claim must be durable
	 * before its request leaves, and a lock held by someone else must not
	 * freeze the loop that drives the requests in flight.  (A database made
	 * read-only stays so: the worker then claims nothing and waits.)
	 */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "1s", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("moneroo worker");

	SpinLockAcquire(&moneroo_shared->mutex);
	moneroo_shared->worker_pid = MyProcPid;
	moneroo_shared->worker_latch = MyLatch;
	SpinLockRelease(&moneroo_shared->mutex);
	before_shmem_exit(forget_worker, 0);

	state.pool = http_pool_create();
	state.work_context = AllocSetContextCreate(TopMemoryContext, "moneroo worker payouts",
											   ALLOCSET_DEFAULT_SIZES);
	state.more_pending = true;
	state.more_to_verify = true;
	state.locked_backoff_ms = LOCKED_BACKOFF_MIN_MS;

	if (!in_transaction(settle_orphans, NULL, "settle payouts left in sending"))
		proc_exit(1);			/* try again after bgw_restart_time */
	release_orphaned_transfers();
	ereport(LOG,
			errmsg("moneroo worker started for database \"%s\"", moneroo_database));

	while (!ShutdownRequestPending)
	{
		long		sleep_ms;
		int			woke;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		sleep_ms = work_once();

		/*
		 * Statistics are flushed at most once a second; before a long
		 * idle sleep, flush what is left, so that autovacuum and anyone
		 * watching pg_stat_user_tables see the worker's last updates now.
		 */
		if (sleep_ms >= 1000 && http_pool_in_flight(state.pool) == 0)
			pgstat_report_stat(true);
		woke = http_pool_wait(state.pool, sleep_ms, PG_WAIT_EXTENSION);
		if (woke == 0 || (woke & WL_LATCH_SET))
		{
			/* a commit, a transfer or a due time: look at the table again */
			state.more_pending = true;
			state.more_to_verify = true;
		}
		CHECK_FOR_INTERRUPTS();
	}

	finish_in_flight();
	ereport(LOG, errmsg("moneroo worker stopping"));
	proc_exit(1);				/* non-zero: restart unless the server is stopping */
}
