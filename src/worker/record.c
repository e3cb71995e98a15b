/*
 * record.c
 *		The worker writing what Moneroo answered into payouts.
 *
 * An answer is the only record that a payout exists at Moneroo: it is
 * never dropped because the database refused to take it once.  Finished
 * calls are written all in one transaction when possible, each alone when
 * not, and those that still fail are kept and retried with a growing delay.
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "moneroo/moneroo_api.h"
#include "shmem/account_health.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "shmem/transfer_slots.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "table/verify_schedule.h"
#include "worker/record.h"
#include "worker/worker_transaction.h"

/* A payout that could not connect is retried after this long. */
#define CONNECT_RETRY_MS (10 * 1000)
/* After a refused connection, do not hammer an API that is down. */
#define NEVER_CONNECTED_PAUSE_MS 1000

/* When a payout that provably never reached Moneroo may be claimed again. */
static int
retry_delay_ms(MonerooAnswer *answer)
{
	if (answer->key_refused)
		return 0;				/* as soon as the key works: account_health.c decides */
	return answer->rate_limited ? RATE_LIMIT_PAUSE_MS : CONNECT_RETRY_MS;
}

static void
record_send(HttpCall *call, PayoutWork *work, MonerooAnswer *answer)
{
	SendVerdict verdict = moneroo_read_initialize(call, answer);

	account_note_send(call, verdict);
	verdict = payout_store_record_send(work->id, work->reference, verdict, answer,
									   verdict == SEND_ACCEPTED ? verify_delay_ms(work->method, 0) :
									   retry_delay_ms(answer),
									   work->transfer_slot < 0);
	if (verdict != SEND_ACCEPTED)
		moneroo_note_error(answer->error);
	if (work->transfer_slot >= 0)
		transfer_slot_note_result(work->transfer_slot, verdict, call->status,
								  answer->error, answer->detail, false);
}

static void
record_verification(HttpCall *call, PayoutWork *work, MonerooAnswer *answer)
{
	bool		ok = moneroo_read_verify(call, work->moneroo_id, answer);

	account_note_verify(call);
	payout_store_record_verify(work->id, work->moneroo_id, ok, answer,
							   verify_delay_ms(work->method, work->verifications + 1));
	if (!ok)
		moneroo_note_error(answer->error);
}

/* Writes one finished call into payouts; runs inside a transaction. */
static void
record_call(HttpCall *call)
{
	PayoutWork *work = (PayoutWork *) call->owner;
	MonerooAnswer answer;

	memset(&answer, 0, sizeof(answer));
	if (call->purpose == PURPOSE_SEND)
		record_send(call, work, &answer);
	else if (call->purpose == PURPOSE_VERIFY)
		record_verification(call, work, &answer);
	else
	{
		/* the probe that ends a pause: what it says of the account is all it is for */
		account_note_probe(call);
		answer.rate_limited = call->outcome == HTTP_ANSWERED && call->status == 429;
	}
	if (answer.rate_limited)
		moneroo_rate_limited();
	else if (call->outcome == HTTP_NEVER_CONNECTED)
		moneroo_rate_pause(NEVER_CONNECTED_PAUSE_MS);
}

static void
record_calls(void *arg)
{
	List	   *calls = (List *) arg;
	ListCell   *lc;

	if (!moneroo_extension_locked())
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

/*
 * After the result is committed: answer the waiting backend, and free the
 * payout with its call.
 */
static void
release_call(HttpCall *call)
{
	PayoutWork *work = (PayoutWork *) call->owner;

	if (call->purpose == PURPOSE_SEND && work->transfer_slot >= 0)
		transfer_slot_release(work->transfer_slot);
	payout_work_free(work);
}

static void
schedule_retry(WorkerState *ws)
{
	long		delay = RECORD_RETRY_MIN_MS;

	for (int i = 0; i < ws->record_failures && delay < RECORD_RETRY_MAX_MS; i++)
		delay *= 2;
	ws->record_failures++;
	ws->next_record_retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														Min(delay, RECORD_RETRY_MAX_MS));
}

/*
 * Kept results are written again when their retry is due, with what just
 * finished.  One that failed because another transaction keeps its row
 * locked (lock_timeout) is an obstacle of that row alone: it waits for its
 * retry without holding up new work, which a database that refuses every
 * write does (record_pending).
 */
void
record_finished(WorkerState *ws)
{
	HttpCall   *call;
	List	   *batch;
	List	   *kept;
	List	   *failed = NIL;
	bool		retry_due = GetCurrentTimestamp() >= ws->next_record_retry;
	bool		blocked = false;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(ws->round_context);

	batch = retry_due ? list_copy(ws->unrecorded) : NIL;
	kept = retry_due ? NIL : list_copy(ws->unrecorded);
	list_free(ws->unrecorded);
	ws->unrecorded = NIL;
	while ((call = http_pool_next_done(ws->pool)) != NULL)
		batch = lappend(batch, call);

	if (batch != NIL &&
		worker_transaction(record_calls, batch, "record results from Moneroo"))
	{
		foreach(lc, batch)
			release_call(lfirst(lc));
	}
	else
	{
		foreach(lc, batch)
		{
			if (worker_transaction(record_calls, list_make1(lfirst(lc)),
								   "record a result from Moneroo"))
				release_call(lfirst(lc));
			else
			{
				failed = lappend(failed, lfirst(lc));
				blocked |= !worker_transaction_lock_timed_out();
			}
		}
	}
	MemoryContextSwitchTo(ws->work_context);
	ws->unrecorded = list_concat(list_copy(kept), failed);
	MemoryContextSwitchTo(old);

	if (batch == NIL)
		return;
	ws->record_blocked = (!retry_due && ws->record_blocked) || blocked;
	if (failed != NIL)
		schedule_retry(ws);
	else if (retry_due)
		ws->record_failures = 0;
}

bool
record_pending(WorkerState *ws)
{
	return ws->unrecorded != NIL && ws->record_blocked;
}

long
record_retry_wait_ms(WorkerState *ws)
{
	TimestampTz now = GetCurrentTimestamp();

	if (ws->unrecorded == NIL || now >= ws->next_record_retry)
		return 0;
	return Max(1, TimestampDifferenceMilliseconds(now, ws->next_record_retry));
}
