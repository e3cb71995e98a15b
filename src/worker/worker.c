/*
 * worker.c
 *		The background worker: the process, its start and stop, and the loop
 *		that sends queued payouts and follows them to their final state.
 *
 * One round of the loop reads as its steps: record what finished, take
 * moneroo_transfer hand-offs, start ready sends, claim queued payouts,
 * lease due verifications, call the application's handlers with new
 * events, and work out how long it may sleep.  Taking work and starting
 * requests is dispatch.c; writing results is record.c; handlers are
 * subscription_runner.c.
 *
 * Wake-ups come from commits (see commit_wakeup.c), from moneroo_transfer,
 * from libcurl's sockets and from the next due time; moneroo.poll_interval
 * is only a safety net.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "shmem/account_health.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "shmem/transfer_slots.h"
#include "table/audit_trail.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "table/state_counts.h"
#include "table/verify_schedule.h"
#include "worker/dispatch.h"
#include "worker/record.h"
#include "worker/subscription_runner.h"
#include "worker/take_work.h"
#include "worker/worker.h"
#include "worker/worker_state.h"
#include "worker/worker_transaction.h"

/* While paused, the key file and a lost probe are looked at this often. */
#define ACCOUNT_LOOK_MS 1000
/* While claims wait for moneroo.claim_standbys, the standbys are looked at this often. */
#define STANDBY_LOOK_MS 1
/* While fewer standbys stream than moneroo.claim_standbys, they are counted this often. */
#define STANDBY_COUNT_MS 1000
/* Due rows someone else holds locked are looked at again this often. */
#define LOCKED_BACKOFF_MIN_MS 100
#define LOCKED_BACKOFF_MAX_MS 1000

static WorkerState state;

/*
 * Started by the launcher, which restarts it (the worker is never
 * restarted by the postmaster) and hears of its stop through
 * bgw_notify_pid.
 */
bool
worker_launch(int entry, const char *database, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "moneroo", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "moneroo_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "moneroo worker for database %s", database);
	strlcpy(worker.bgw_type, "moneroo worker", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(entry);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/* ---- start-up ---- */

static void
settle_orphans(void *arg)
{
	uint64		settled;

	if (!(state.extension_here = moneroo_extension_locked()))
		return;
	settled = payout_store_settle_orphans();
	state_counts_recount();
	if (settled > 0)
		ereport(LOG,
				errmsg("moneroo worker marked %llu payouts left in \"sending\" as unknown",
					   (unsigned long long) settled),
				errdetail("They were being sent when the previous worker stopped; Moneroo may or may not have created them."),
				errhint("Check each one's reference in Moneroo's dashboard, then use moneroo_retry() for those that do not exist."));
}

/* ---- the loop ---- */

/* A refused key is tried again at once when its file changes. */
static void
watch_for_new_key(void)
{
	if (account_pause(NULL) == ACCOUNT_KEY_REFUSED && moneroo_secret_key_file_changed())
		account_key_may_work();
}

static void
find_next_due(void *arg)
{
	*(long *) arg = moneroo_extension_locked() ? payout_lookup_next_due_ms() : -1;
}

/* Nothing to start now: sleep until the next payout falls due. */
static long
sleep_until_due(long sleep_ms)
{
	long		next_due = -1;

	if (!worker_transaction(find_next_due, &next_due, "find the next due payout") ||
		next_due < 0)
		return sleep_ms;

	/*
	 * Due already, yet nothing could be claimed: another transaction holds
	 * those rows.  Look again later, backing off, rather than spin until it
	 * lets go; a commit that requeues them wakes us.
	 */
	if (next_due == 0)
	{
		next_due = state.locked_backoff_ms;
		state.locked_backoff_ms = Min(state.locked_backoff_ms * 2, LOCKED_BACKOFF_MAX_MS);
	}
	else
		state.locked_backoff_ms = LOCKED_BACKOFF_MIN_MS;
	return Min(sleep_ms, Max(next_due, 1));
}

static void
keep_up(void *arg)
{
	if (!(state.extension_here = moneroo_extension_locked()))
		return;
	state_counts_fold();
}

static void
learn_settle_times(void *arg)
{
	if (moneroo_extension_locked())
		verify_schedule_learn();
}

/*
 * In a transaction of its own: what the settled payouts teach is an
 * optimisation, and a row it cannot read must not stop the worker's start
 * or its folding of the counts; the schedule then keeps what it knew.
 */
static void
learn(void)
{
	(void) worker_transaction(learn_settle_times, NULL, "learn settle times");
}

/*
 * Every few seconds while the worker is awake: the rows of changes of
 * moneroo_state_counts folded (moneroo_status sums a handful of rows,
 * whatever the traffic), and what the recent settled payouts teach the
 * verification schedule.  (New payouts wake the worker; an idle worker has
 * nothing new to fold or learn.)
 */
static void
keep_up_when_due(TimestampTz now)
{
	/* a CREATE or DROP EXTENSION here: look at once */
	if (now < state.next_upkeep && !served_worker_take_extension_change())
		return;
	state.next_upkeep = TimestampTzPlusMilliseconds(now, WORKER_UPKEEP_MS);
	(void) worker_transaction(keep_up, NULL, "fold moneroo_state_counts");
	learn();
}

/*
 * Verifications wait while sends are queued, but get one in every so many
 * sends; while nothing can be claimed for want of standbys, nothing waits
 * for them.
 */
static bool
verification_due(void)
{
	return state.more_to_verify && state.ready == NIL &&
		(!state.more_pending || state.too_few_standbys ||
		 state.sends_since_verification >= TAKE_SENDS_PER_VERIFICATION);
}

/*
 * While the account is paused: until the pause ends, and then, while the
 * probe that ends it is out, a second at a time (its answer wakes the
 * worker; a lost probe is sent again); while the key is refused, a new key
 * file is looked for every second.  -1: not paused.
 */
static long
account_pause_ms(void)
{
	TimestampTz until;
	AccountPause pause = account_pause(&until);
	long		wait_ms;

	if (pause == ACCOUNT_OK)
		return -1;
	wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
	if (wait_ms <= 0)
		return ACCOUNT_LOOK_MS;	/* the probe is out */
	return pause == ACCOUNT_KEY_REFUSED ? Min(wait_ms, ACCOUNT_LOOK_MS) : wait_ms;
}

/*
 * max_concurrency is full: a finishing request wakes the worker, its own
 * or (once it says it waits) another database's worker's.  Looked at again
 * after saying so, in case a place freed in between.
 */
static long
wait_for_place(void)
{
	served_wait_for_place();
	if (dispatch_send_capacity(&state) > 0 || dispatch_verify_capacity(&state) > 0)
		return 0;
	return moneroo_poll_interval_ms;
}

/* How long the worker may sleep after a round, unless something wakes it. */
static long
next_sleep_ms(void)
{
	long		sleep_ms = moneroo_poll_interval_ms;
	long		paused_ms = account_pause_ms();
	bool		can_send = dispatch_send_capacity(&state) > 0;
	bool		can_verify = dispatch_verify_capacity(&state) > 0;

	if (!can_send && !can_verify)
		sleep_ms = wait_for_place();
	else if (dispatch_waiting_for_standbys(&state))
		sleep_ms = STANDBY_LOOK_MS; /* walsenders wake nobody */
	else if ((can_send && state.ready != NIL) || state.rate_refused || dispatch_rate_allowance() == 0)
		sleep_ms = Max(1, moneroo_rate_wait_ms());
	else if (state.too_few_standbys)
		/* due payouts cannot be claimed: a standby that connects wakes nobody */
		sleep_ms = (can_verify && verification_due()) ? 0 : STANDBY_COUNT_MS;
	else if ((can_send && state.more_pending) || (can_verify && verification_due()))
		sleep_ms = 0;
	else
		sleep_ms = sleep_until_due(sleep_ms);
	if (paused_ms >= 0)
		sleep_ms = Min(sleep_ms, paused_ms);
	/* a result kept because its row was locked is written again on time */
	if (record_retry_wait_ms(&state) > 0)
		sleep_ms = Min(sleep_ms, record_retry_wait_ms(&state));

	/*
	 * A call can finish while new ones are being started (a refused
	 * connection does at once): record it now, not after the sleep.
	 */
	if (http_pool_has_finished(state.pool))
		sleep_ms = 0;
	return sleep_ms;
}

/*
 * One round of work.  Returns how long the worker may sleep before the
 * next one, unless something wakes it first.
 */
static long
work_once(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		retry_ms;
	long		sleep_ms;
	long		deliver_ms;
	int			n;

	MemoryContextReset(state.round_context);
	MemoryContextSwitchTo(state.round_context);
	state.rate_refused = false;

	if (state.paused_until > now)
	{
		record_finished(&state);
		return Max(1, TimestampDifferenceMilliseconds(now, state.paused_until));
	}
	if (record_pending(&state) && (retry_ms = record_retry_wait_ms(&state)) > 0)
		return retry_ms;
	record_finished(&state);
	if (record_pending(&state))
		return RECORD_RETRY_MIN_MS; /* take no new work until results are safe */
	if (ShutdownRequestPending)
		return 0;				/* a stop claims, takes and leases nothing more */

	if (transfer_slots_any_submitted())
		take_transfers(&state);
	if (account_pause(NULL) != ACCOUNT_OK)
	{
		/* nothing claimed waits out a pause in "sending": a crash would make it unknown */
		dispatch_return_unsent(&state, "not sent: requests to Moneroo are paused, see moneroo_status",
							   true);
		watch_for_new_key();
		dispatch_probe(&state);
	}
	dispatch_start_ready_sends(&state);
	if (state.paused_until > GetCurrentTimestamp())
		return WORKER_FAILURE_PAUSE_MS; /* it gave up on its claims: no new ones now */

	n = Min(dispatch_send_capacity(&state), dispatch_rate_allowance());
	if (state.ready == NIL && state.more_pending && n > 0 &&
		!take_claim(&state, n))
		return dispatch_pause_after_failure(&state);

	n = Min(dispatch_verify_capacity(&state), dispatch_rate_allowance());
	if (n > 0 && verification_due() && !take_verifications(&state, n))
		return dispatch_pause_after_failure(&state);

	keep_up_when_due(now);
	/* the application's handlers: after the payouts' own work, for a bounded time */
	deliver_ms = subscriptions_deliver();
	dispatch_publish_in_flight(&state);
	sleep_ms = next_sleep_ms();
	return deliver_ms >= 0 ? Min(sleep_ms, deliver_ms) : sleep_ms;
}

/* ---- shutdown ---- */

/*
 * On shutdown no new request leaves, but those in flight are seen through
 * and recorded: cutting them off would only turn answers into unknowns.
 */
static void
finish_in_flight(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   moneroo_request_timeout_ms + 5000);

	/*
	 * A result or a return kept only here is safe (it is unknown, or pending
	 * and never sent, on a standby that lacks it): a stop must not wait for
	 * a synchronous standby that may be gone.
	 */
	worker_transaction_stop_waiting();
	while (http_pool_in_flight(state.pool) > 0 && GetCurrentTimestamp() < deadline)
		(void) http_pool_wait(state.pool, 100, moneroo_wait_event(MONEROO_WAIT_WORKER_STOP));
	record_finished(&state);
	dispatch_return_unsent(&state, "the moneroo worker stopped before sending it", false);
}

/*
 * Whatever ALTER DATABASE or ALTER ROLE set: a claim must be durable
 * before its request leaves, and a lock held by someone else must not
 * freeze the loop that drives the requests in flight.  (A database made
 * read-only stays so: the worker then claims nothing and waits.)
 */
static void
pin_session_settings(void)
{
	SetConfigOption("application_name", "moneroo worker", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "1s", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("moneroo worker");
}

/*
 * With '*', a database without the extension has no worker: it stops, and
 * the launcher starts it again when a CREATE EXTENSION commits there.  A
 * database named in moneroo.database keeps its worker, which waits for the
 * extension.
 */
static void
stop_unless_served(void)
{
	if (state.extension_here || !moneroo_serves_every_database())
		return;
	served_worker_found_no_extension();
	ereport(DEBUG1,
			errmsg("moneroo worker stopping: database \"%s\" has no moneroo extension",
				   served_worker_database_name()));
	proc_exit(0);
}

void
moneroo_worker_main(Datum arg)
{
	Oid			database;

	pqsignal(SIGTERM, worker_transaction_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, worker_transaction_sigint);
	BackgroundWorkerUnblockSignals();

	database = served_worker_attach(DatumGetInt32(arg));
	if (!OidIsValid(database))
		proc_exit(0);			/* another worker serves it already */
	BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
	pin_session_settings();
	(void) audit_set_actor(AUDIT_WORKER_ACTOR);

	state.pool = http_pool_create();
	state.work_context = AllocSetContextCreate(TopMemoryContext, "moneroo worker payouts",
											   ALLOCSET_DEFAULT_SIZES);
	state.round_context = AllocSetContextCreate(TopMemoryContext, "moneroo worker round",
												ALLOCSET_DEFAULT_SIZES);
	state.more_pending = true;
	state.more_to_verify = true;
	state.locked_backoff_ms = LOCKED_BACKOFF_MIN_MS;

	if (!worker_transaction(settle_orphans, NULL, "settle payouts left in sending"))
		proc_exit(1);			/* the launcher tries again later */
	learn();
	stop_unless_served();
	transfer_slots_release_orphans();
	served_worker_ready();
	ereport(LOG,
			errmsg("moneroo worker started for database \"%s\"", served_worker_database_name()));

	while (!ShutdownRequestPending)
	{
		long		sleep_ms;
		int			woke;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			account_key_may_work(); /* the key, or its file, may have changed */
		}
		sleep_ms = work_once();
		stop_unless_served();

		/*
		 * Statistics are flushed at most once a second; before a long
		 * idle sleep, flush what is left, so that autovacuum and anyone
		 * watching pg_stat_user_tables see the worker's last updates now.
		 */
		if (sleep_ms >= 1000 && http_pool_in_flight(state.pool) == 0)
			pgstat_report_stat(true);
		woke = http_pool_wait(state.pool, sleep_ms,
							  moneroo_wait_event(http_pool_in_flight(state.pool) > 0 ?
												 MONEROO_WAIT_ANSWERS : MONEROO_WAIT_WORKER));
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
