/*
 * dispatch.c
 *		The worker taking work and starting its requests.
 *
 * Every request leaves outside any transaction, after the one that took
 * it: the claim commits "sending" before the request goes, so that a crash
 * in between leaves the row "sending" (and then "unknown"), never
 * "pending", since the request may have reached Moneroo.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "moneroo/moneroo_api.h"
#include "shmem/account_health.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "shmem/standby_wait.h"
#include "shmem/transfer_slots.h"
#include "table/audit_trail.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "worker/dispatch.h"
#include "worker/worker_transaction.h"

/*
 * max_concurrency is the account's: the requests of every database's
 * worker count against it.
 */
static int
requests_elsewhere(WorkerState *ws)
{
	return Max(0, served_requests_in_flight() - http_pool_in_flight(ws->pool));
}

int
dispatch_send_capacity(WorkerState *ws)
{
	return account_send_allowance(http_pool_in_flight(ws->pool) + requests_elsewhere(ws),
								  moneroo_max_concurrency);
}

int
dispatch_verify_capacity(WorkerState *ws)
{
	return account_verify_allowance(http_pool_in_flight(ws->pool) + requests_elsewhere(ws),
									moneroo_max_concurrency);
}

/*
 * A place for one request under max_concurrency (every worker's requests
 * counted, taken under one lock so that two workers cannot both take the
 * last one) and under the rate limit.  While the account is paused only
 * the probe has one.
 */
bool
dispatch_take_request_place(WorkerState *ws, CallPurpose purpose)
{
	int			limit = purpose == PURPOSE_SEND ? account_send_allowance(0, moneroo_max_concurrency) :
		purpose == PURPOSE_VERIFY ? account_verify_allowance(0, moneroo_max_concurrency) :
		moneroo_max_concurrency;

	if (!served_take_request_place(limit))
		return false;
	if (moneroo_rate_acquire() == 0)
		return true;
	ws->rate_refused = true;
	dispatch_publish_in_flight(ws);	/* the place goes back */
	return false;
}

int
dispatch_rate_allowance(void)
{
	if (moneroo_rate_wait_ms() > 0)
		return 0;
	if (moneroo_rate_limit == 0)
		return INT_MAX;
	return Max(1, moneroo_rate_limit / 600);
}

void
dispatch_publish_in_flight(WorkerState *ws)
{
	served_publish_in_flight(http_pool_in_flight(ws->pool),
							 http_pool_in_flight(ws->pool) + list_length(ws->ready));
}

/*
 * Work is taken under the round's context, so that a transaction that
 * fails leaves nothing behind once the round ends; what is kept moves under
 * the worker's context here, once it is safely taken.
 */
void
dispatch_keep_work(WorkerState *ws, PayoutWork *work)
{
	MemoryContextSetParent(work->context, ws->work_context);
}

/*
 * After a failed claim, lease or request start (a read-only database, a key
 * file gone): no new work for a while, rather than fail again at once.
 * Returns how long.
 */
long
dispatch_pause_after_failure(WorkerState *ws)
{
	ws->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), WORKER_FAILURE_PAUSE_MS);
	return WORKER_FAILURE_PAUSE_MS;
}

/*
 * A waiting moneroo_transfer may still be withdrawn by its caller until its
 * request leaves; a withdrawn one is recorded as never sent.
 */
static bool
transfer_may_leave(PayoutWork *work)
{
	MonerooAnswer answer = {.error = "withdrawn: its caller was interrupted before it was sent"};

	if (work->transfer_slot < 0 || transfer_slot_start_sending(work->transfer_slot))
		return true;
	/* the slot is free again, or another caller's: only the row is ours to write */
	payout_store_record_send(work->id, work->reference, SEND_NOT_SENT, &answer, 0, false);
	return false;
}

/* ---- starting requests ---- */

static void
start_call(WorkerState *ws, PayoutWork *work, CallPurpose purpose, const char *path,
		   const char *body)
{
	HttpCall   *call = http_call_new(work->context, path, body);

	call->purpose = purpose;
	call->owner = work;
	call->payout_id = work->id;
	PG_TRY();
	{
		http_pool_add(ws->pool, call);
	}
	PG_CATCH();
	{
		http_call_free(call);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
start_send(WorkerState *ws, PayoutWork *work)
{
	start_call(ws, work, PURPOSE_SEND, MONEROO_INITIALIZE_PATH, work->request_body);
	ws->sends_since_verification++;
}

void
dispatch_start_verification(WorkerState *ws, PayoutWork *work)
{
	start_call(ws, work, PURPOSE_VERIFY, moneroo_verify_path(work->moneroo_id), NULL);
	ws->sends_since_verification = 0;
}

static bool
claim_on_standbys(PayoutWork *work)
{
	return moneroo_claim_standbys == 0 ||
		standbys_flushed(work->claim_lsn, NULL) >= moneroo_claim_standbys;
}

bool
dispatch_waiting_for_standbys(WorkerState *ws)
{
	return ws->ready != NIL && !claim_on_standbys(linitial(ws->ready));
}

/*
 * A commit that waits for a synchronous standby stops waiting when the
 * postmaster dies (PostgreSQL then sets ProcDiePending) or the worker is
 * asked to stop (worker_transaction.c): it is committed here but perhaps not
 * on the standby.  A claim the standby may lack must never leave: after the
 * failover it is pending there, and would be sent again.  The worker exits
 * at its next wait, or stops and returns its unsent claims.
 */
static bool
claims_may_be_unreplicated(void)
{
	return ProcDiePending || ShutdownRequestPending || !PostmasterIsAlive();
}

static void
start_sends(void *arg)
{
	WorkerState *ws = (WorkerState *) arg;

	while (ws->ready != NIL && !claims_may_be_unreplicated() && claim_on_standbys(linitial(ws->ready)) &&
		   dispatch_send_capacity(ws) > 0 && dispatch_take_request_place(ws, PURPOSE_SEND))
	{
		PayoutWork *work = linitial(ws->ready);

		/* started before it leaves the list: a failed start keeps it queued */
		if (transfer_may_leave(work))
			start_send(ws, work);
		else
			payout_work_free(work);
		ws->ready = list_delete_first(ws->ready);
	}
}

/*
 * Starts the connects of the requests just added, now that the transaction
 * that added them is over, rather than after the rest of the round's table
 * work: a request should not wait for the next claim or lease.
 */
void
dispatch_let_requests_leave(WorkerState *ws)
{
	(void) http_pool_wait(ws->pool, 0, moneroo_wait_event(MONEROO_WAIT_ANSWERS));
}

/*
 * Claims the standbys have not flushed within claim_standbys_timeout are
 * never sent: they go back to pending, and no new claim is made for a
 * while.  Sending them would risk a second payment after a failover.
 */
static void
give_up_on_standbys(WorkerState *ws)
{
	PayoutWork *first;
	int			connected;
	int			flushed;
	char	   *why;

	if (!dispatch_waiting_for_standbys(ws))
		return;
	first = linitial(ws->ready);
	if (GetCurrentTimestamp() <
		TimestampTzPlusMilliseconds(first->claimed_at, moneroo_claim_standbys_timeout_ms))
		return;
	flushed = standbys_flushed(first->claim_lsn, &connected);
	why = psprintf("not sent: %d of the %d standbys moneroo.claim_standbys requires flushed its claim "
				   "within moneroo.claim_standbys_timeout (%d ms); %d standbys stream",
				   flushed, moneroo_claim_standbys, moneroo_claim_standbys_timeout_ms, connected);
	ereport(WARNING,
			errmsg("moneroo worker is not sending: too few standbys have flushed its claims"),
			errdetail("The payouts are pending again, %s.", why),
			errhint("They are sent once enough standbys stream; check the standbys, or lower moneroo.claim_standbys."));
	dispatch_return_unsent(ws, why, true);
	moneroo_note_error(why);
	(void) dispatch_pause_after_failure(ws);
}

/*
 * Requests are prepared inside a transaction only so that a configuration
 * error (a key file gone, say) is caught like any other: the payouts stay
 * claimed in memory and the worker pauses instead of dying with them.
 */
void
dispatch_start_ready_sends(WorkerState *ws)
{
	if (ws->ready != NIL && dispatch_send_capacity(ws) > 0 && !dispatch_waiting_for_standbys(ws))
	{
		if (!worker_transaction(start_sends, ws, "prepare requests to Moneroo"))
			(void) dispatch_pause_after_failure(ws);
		dispatch_let_requests_leave(ws);
	}
	give_up_on_standbys(ws);
	dispatch_publish_in_flight(ws);
}

/* ---- the probe that ends a pause ---- */

/* An id Moneroo cannot know: its verify answers 404 when the key and Moneroo work. */
#define PROBE_UNKNOWN_ID "moneroo-pg-probe"

static void
start_probe(void *arg)
{
	WorkerState *ws = (WorkerState *) arg;
	PayoutWork *work = payout_work_new(ws->round_context);

	/* a verify creates nothing: of a payout Moneroo knows, or of none */
	if (moneroo_extension_locked())
		work->moneroo_id = payout_lookup_any_moneroo_id(work->context);
	if (work->moneroo_id == NULL)
		work->moneroo_id = PROBE_UNKNOWN_ID;
	start_call(ws, work, PURPOSE_PROBE, moneroo_verify_path(work->moneroo_id), NULL);
	dispatch_keep_work(ws, work);
}

void
dispatch_probe(WorkerState *ws)
{
	if (moneroo_rate_wait_ms() > 0 || !account_take_probe())
		return;
	if (dispatch_take_request_place(ws, PURPOSE_PROBE) &&
		worker_transaction(start_probe, ws, "probe Moneroo"))
		dispatch_let_requests_leave(ws);
	else
		account_probe_not_sent();
}

/* ---- returning what never left ---- */

typedef struct Unsent
{
	WorkerState *ws;
	MonerooAnswer answer;
} Unsent;

static void
return_unsent(void *arg)
{
	Unsent	   *unsent = (Unsent *) arg;
	ListCell   *lc;

	foreach(lc, unsent->ws->ready)
	{
		PayoutWork *work = lfirst(lc);

		payout_store_record_send(work->id, work->reference, SEND_NOT_SENT, &unsent->answer, 0,
								 work->transfer_slot < 0);
	}
}

/*
 * The waiting callers are answered only once their rows are recorded: a
 * caller told "not sent" must find nothing that will be sent later.
 */
void
dispatch_return_unsent(WorkerState *ws, const char *why, bool uncounted)
{
	Unsent		unsent = {.ws = ws, .answer = {.error = (char *) why, .uncounted = uncounted}};
	ListCell   *lc;

	if (ws->ready == NIL ||
		!worker_transaction(return_unsent, &unsent, "return unsent payouts to the queue"))
		return;
	foreach(lc, ws->ready)
	{
		PayoutWork *work = lfirst(lc);

		if (work->transfer_slot >= 0)
		{
			transfer_slot_note_result(work->transfer_slot, SEND_NOT_SENT, 0, why, NULL, false);
			transfer_slot_release(work->transfer_slot);
		}
		payout_work_free(work);
	}
	list_free(ws->ready);
	ws->ready = NIL;
}
