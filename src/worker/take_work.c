/*
 * take_work.c
 *		The worker taking work: moneroo_transfer hand-offs, claims of queued
 *		payouts, leases of due verifications (dispatch.c starts them).
 *
 * What is taken is taken in a transaction of its own and joins the
 * worker's lists only once that transaction has committed: a claim commits
 * "sending" before its request goes (see dispatch.c).
 */
#include "postgres.h"

#include "access/xlog.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "shmem/served_databases.h"
#include "shmem/standby_wait.h"
#include "shmem/transfer_slots.h"
#include "table/audit_trail.h"
#include "table/database_identity.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "worker/dispatch.h"
#include "worker/take_work.h"
#include "worker/worker_transaction.h"

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
take_transfers(WorkerState *ws)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
	{
		TransferInsert insert = {.ws = ws, .slot = i};

		if (!transfer_slot_take(i))
			continue;
		if (worker_transaction(insert_transfer, &insert, "record a moneroo_transfer payout"))
		{
			MemoryContext old = MemoryContextSwitchTo(ws->work_context);

			dispatch_keep_work(ws, insert.work);
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

/* ---- claims and leases ---- */

typedef struct Take
{
	WorkerState *ws;
	int			wanted;
	List	   *taken;			/* in the round's context */
	char	   *copy_of;		/* a claim: the database is a copy, nothing taken */
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
	/* read in the claim's own transaction: an adoption that committed counts */
	claim->copy_of = database_identity_copy_of();
	if (claim->copy_of == NULL)
		claim->taken = payout_store_claim(claim->wanted, round);
	MemoryContextSwitchTo(txn);
}

/*
 * A copied or restored database (database_identity.c) pays nothing until
 * an operator adopts it: its payouts stay pending, and moneroo_status and
 * the log say why, once.
 */
static void
note_copy(WorkerState *ws, const char *copy_of)
{
	bool		was_copy = ws->copy_not_adopted;

	ws->copy_not_adopted = copy_of != NULL;
	if (copy_of == NULL)
	{
		if (was_copy)
			ereport(LOG, errmsg("moneroo worker is claiming payouts again: database \"%s\" was adopted",
								served_worker_database_name()));
		return;
	}
	moneroo_note_error(psprintf("not claiming: this database is a copy or a restore of %s; "
								"run SELECT moneroo_adopt_database() to let it pay", copy_of));
	if (!was_copy)
		ereport(WARNING,
				errmsg("moneroo worker is not sending: database \"%s\" is a copy or a restore",
					   served_worker_database_name()),
				errdetail("Its payouts were recorded as those of %s, which may have paid them or still pay them.",
						  copy_of),
				errhint("Payouts stay pending. Check them against Moneroo's dashboard (by reference), cancel those already paid, then have the extension's owner or a superuser run SELECT moneroo_adopt_database()."));
}

/*
 * Under moneroo.rate_limit a round's claim takes the limiter's one place,
 * and the verifications leased after it find none: while sends wait, no
 * verification would ever leave.  So once in every
 * TAKE_SENDS_PER_VERIFICATION sends a due verification, if there is
 * one, goes in the claim's place.
 */
static bool
verification_turn(WorkerState *ws)
{
	return moneroo_rate_limit > 0 && ws->more_to_verify &&
		ws->sends_since_verification >= TAKE_SENDS_PER_VERIFICATION;
}

static void
find_due_to_send(void *arg)
{
	*(bool *) arg = moneroo_extension_locked() && payout_lookup_any_due_to_send();
}

/*
 * With fewer standbys streaming than moneroo.claim_standbys asks for, a
 * claim could only wait out claim_standbys_timeout and go back to pending
 * (and one caught in "sending" by a crash meanwhile would be unknown for
 * nothing): nothing is claimed, and moneroo_status says why, once a payout
 * waits for it (an empty queue waits for nothing: no warning).  A standby
 * that streams but has not flushed a claim is waited for
 * (give_up_on_standbys).  Checked before every claim: the worker sends
 * again within a second of a standby streaming (worker.c counts them).
 */
static bool
too_few_standbys(WorkerState *ws)
{
	int			streaming;
	bool		due = false;
	char	   *why;

	ws->too_few_standbys = standbys_too_few(&streaming);
	if (!ws->too_few_standbys)
	{
		if (ws->standbys_warned && moneroo_claim_standbys > 0)
			ereport(LOG, errmsg("moneroo worker is claiming payouts again: %d standbys stream", streaming));
		else if (ws->standbys_warned)
			ereport(LOG, errmsg("moneroo worker is claiming payouts again: moneroo.claim_standbys is 0"));
		ws->standbys_warned = false;
		return false;
	}
	if (!worker_transaction(find_due_to_send, &due, "look for payouts due to be sent") || !due)
	{
		ws->more_pending = false;	/* a commit that queues one wakes the worker */
		return true;
	}
	why = psprintf("not claiming: %d standbys stream, moneroo.claim_standbys requires %d",
				   streaming, moneroo_claim_standbys);
	moneroo_note_error(why);
	if (!ws->standbys_warned)
		ereport(WARNING,
				errmsg("moneroo worker is not sending: too few standbys stream"),
				errdetail("Payouts stay pending: %s.", why),
				errhint("They are sent once enough standbys stream; check the standbys, or lower moneroo.claim_standbys."));
	ws->standbys_warned = true;
	return true;
}

/* The claimed rows join the ready list only once the claim has committed. */
bool
take_claim(WorkerState *ws, int n)
{
	Take		claim = {.ws = ws, .wanted = n};
	MemoryContext old;
	ListCell   *lc;

	if (too_few_standbys(ws))
		return true;			/* nothing to claim for: not a failure */
	if (verification_turn(ws))
	{
		if (!take_verifications(ws, 1))
			return false;
		if (ws->sends_since_verification == 0)
			return true;		/* one left: it had the round's place */
	}
	/* a claim that never committed took nothing: its work goes with the round */
	if (!worker_transaction(claim_pending, &claim, "claim pending payouts"))
		return false;
	note_copy(ws, claim.copy_of);
	foreach(lc, claim.taken)
	{
		dispatch_keep_work(ws, lfirst(lc));
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

		if (dispatch_take_request_place(ws, PURPOSE_VERIFY))
		{
			dispatch_keep_work(ws, work);
			dispatch_start_verification(ws, work);
		}
		else
		{
			payout_store_unlease(work->id);
			ws->more_to_verify = true;
		}
	}
}

bool
take_verifications(WorkerState *ws, int n)
{
	Take		lease = {.ws = ws, .wanted = n};

	if (!worker_transaction(lease_verifications, &lease, "lease payouts to verify"))
		return false;
	dispatch_let_requests_leave(ws);
	return true;
}
