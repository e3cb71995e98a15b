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

#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "account_health.h"
#include "audit_trail.h"
#include "dispatch.h"
#include "moneroo_api.h"
#include "payout_lookup.h"
#include "payout_store.h"
#include "payouts_table.h"
#include "rate_limit.h"
#include "settings.h"
#include "shared_state.h"
#include "standby_wait.h"
#include "wait_events.h"
#include "worker_transaction.h"

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
static bool
take_request_place(WorkerState *ws, CallPurpose purpose)
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
static void
keep_work(WorkerState *ws, PayoutWork *work)
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

/* What claim_standbys waits for: the claim's commit, just made. */
static void
note_claim_commit(PayoutWork *work)
{
	work->claim_lsn = XactLastCommitEnd;
	work->claimed_at = GetCurrentTimestamp();
}

/* ---- moneroo_transfer hand-offs ---- */

typedef struct TransferInsert
{
	WorkerState *ws;
	int			slot;
	PayoutWork *work;
} TransferInsert;

static void
insert_transfer(void *arg)
{
	TransferInsert *insert = (TransferInsert *) arg;
	const TransferSlot *slot = transfer_slot_at(insert->slot);
	Jsonb	   *request = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(slot->request)));
	const char *worker = audit_set_actor(slot->created_by);

	/* the row is the caller's: it is created by, and its history starts with, them */
	PG_TRY();
	{
		insert->work = payout_store_insert_sending(request, slot->reference,
												   slot->has_idempotency_key ? slot->idempotency_key : NULL,
												   insert->ws->round_context);
	}
	PG_FINALLY();
	{
		(void) audit_set_actor(worker);
	}
	PG_END_TRY();
	insert->work->transfer_slot = insert->slot;
}

/* Each in its own transaction, so that one bad request cannot hold up another. */
void
dispatch_take_transfers(WorkerState *ws)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
	{
		TransferInsert insert = {.ws = ws, .slot = i};

		if (!transfer_slot_take(i))
			continue;
		if (worker_transaction(insert_transfer, &insert, "record a moneroo_transfer payout"))
		{
			MemoryContext old = MemoryContextSwitchTo(ws->work_context);

			keep_work(ws, insert.work);
			note_claim_commit(insert.work);
			ws->ready = lcons(insert.work, ws->ready);	/* a user waits for it */
			MemoryContextSwitchTo(old);
		}
		else
		{
			ServedWorkerInfo info;

			/* nothing was recorded, so nothing will be sent; why is the last error */
			served_worker_info(&info);
			transfer_slot_note_result(i, SEND_NOT_SENT, 0, info.last_error, NULL, false);
			transfer_slot_release(i);
		}
	}
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

static void
start_verification(WorkerState *ws, PayoutWork *work)
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
		   dispatch_send_capacity(ws) > 0 && take_request_place(ws, PURPOSE_SEND))
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
static void
let_requests_leave(WorkerState *ws)
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
		let_requests_leave(ws);
	}
	give_up_on_standbys(ws);
	dispatch_publish_in_flight(ws);
}

/* ---- claims and leases ---- */

typedef struct Take
{
	WorkerState *ws;
	int			wanted;
	List	   *taken;			/* in the round's context */
} Take;

static void
claim_pending(void *arg)
{
	Take	   *claim = (Take *) arg;
	MemoryContext round = claim->ws->round_context;
	MemoryContext txn;

	if (!moneroo_extension_locked())
		return;
	txn = MemoryContextSwitchTo(round);
	claim->taken = payout_store_claim(claim->wanted, round);
	MemoryContextSwitchTo(txn);
}

/*
 * Under moneroo.rate_limit a round's claim takes the limiter's one place,
 * and the verifications leased after it find none: while sends wait, no
 * verification would ever leave.  So once in every
 * DISPATCH_SENDS_PER_VERIFICATION sends a due verification, if there is
 * one, goes in the claim's place.
 */
static bool
verification_turn(WorkerState *ws)
{
	return moneroo_rate_limit > 0 && ws->more_to_verify &&
		ws->sends_since_verification >= DISPATCH_SENDS_PER_VERIFICATION;
}

/*
 * With fewer standbys streaming than moneroo.claim_standbys asks for, a
 * claim could only wait out claim_standbys_timeout and go back to pending
 * (and one caught in "sending" by a crash meanwhile would be unknown for
 * nothing): nothing is claimed, and moneroo_status says why.  A standby
 * that streams but has not flushed a claim is waited for
 * (give_up_on_standbys).  Checked before every claim: the worker sends
 * again within a second of a standby streaming (worker.c counts them).
 */
static bool
too_few_standbys(WorkerState *ws)
{
	int			streaming;
	bool		was_short = ws->too_few_standbys;
	char	   *why;

	ws->too_few_standbys = standbys_too_few(&streaming);
	if (!ws->too_few_standbys)
	{
		if (was_short && moneroo_claim_standbys > 0)
			ereport(LOG, errmsg("moneroo worker is claiming payouts again: %d standbys stream", streaming));
		else if (was_short)
			ereport(LOG, errmsg("moneroo worker is claiming payouts again: moneroo.claim_standbys is 0"));
		return false;
	}
	why = psprintf("not claiming: %d standbys stream, moneroo.claim_standbys requires %d",
				   streaming, moneroo_claim_standbys);
	moneroo_note_error(why);
	if (!was_short)
		ereport(WARNING,
				errmsg("moneroo worker is not sending: too few standbys stream"),
				errdetail("Payouts stay pending: %s.", why),
				errhint("They are sent once enough standbys stream; check the standbys, or lower moneroo.claim_standbys."));
	return true;
}

/* The claimed rows join the ready list only once the claim has committed. */
bool
dispatch_claim(WorkerState *ws, int n)
{
	Take		claim = {.ws = ws, .wanted = n};
	MemoryContext old;
	ListCell   *lc;

	if (too_few_standbys(ws))
		return true;			/* nothing to claim for: not a failure */
	if (verification_turn(ws))
	{
		if (!dispatch_lease_verifications(ws, 1))
			return false;
		if (ws->sends_since_verification == 0)
			return true;		/* one left: it had the round's place */
	}
	/* a claim that never committed took nothing: its work goes with the round */
	if (!worker_transaction(claim_pending, &claim, "claim pending payouts"))
		return false;
	foreach(lc, claim.taken)
	{
		keep_work(ws, lfirst(lc));
		note_claim_commit(lfirst(lc));
	}
	ws->more_pending = list_length(claim.taken) == n;
	old = MemoryContextSwitchTo(ws->work_context);
	ws->ready = list_concat(ws->ready, claim.taken);
	MemoryContextSwitchTo(old);
	dispatch_start_ready_sends(ws);
	return true;
}

static void
lease_verifications(void *arg)
{
	Take	   *lease = (Take *) arg;
	WorkerState *ws = lease->ws;
	MemoryContext txn;
	ListCell   *lc;

	if (!moneroo_extension_locked())
	{
		ws->more_to_verify = false;
		return;
	}
	txn = MemoryContextSwitchTo(ws->round_context);
	lease->taken = payout_store_lease_verifications(lease->wanted,
													moneroo_request_timeout_ms + 60 * 1000,
													ws->round_context);
	MemoryContextSwitchTo(txn);
	ws->more_to_verify = list_length(lease->taken) == lease->wanted;

	/*
	 * Another database's worker may have taken the last place since the
	 * round counted them: what finds none is due again at once, in the same
	 * transaction, rather than wait for its lease to expire.
	 */
	foreach(lc, lease->taken)
	{
		PayoutWork *work = lfirst(lc);

		if (take_request_place(ws, PURPOSE_VERIFY))
		{
			keep_work(ws, work);
			start_verification(ws, work);
		}
		else
		{
			payout_store_unlease(work->id);
			ws->more_to_verify = true;
		}
	}
}

bool
dispatch_lease_verifications(WorkerState *ws, int n)
{
	Take		lease = {.ws = ws, .wanted = n};

	if (!worker_transaction(lease_verifications, &lease, "lease payouts to verify"))
		return false;
	let_requests_leave(ws);
	return true;
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
	keep_work(ws, work);
}

void
dispatch_probe(WorkerState *ws)
{
	if (moneroo_rate_wait_ms() > 0 || !account_take_probe())
		return;
	if (take_request_place(ws, PURPOSE_PROBE) &&
		worker_transaction(start_probe, ws, "probe Moneroo"))
		let_requests_leave(ws);
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
