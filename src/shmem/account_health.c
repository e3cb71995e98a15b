/*
 * account_health.c
 *		The worst day of an account: a refused key, Moneroo down.
 *
 * A key Moneroo refuses (401, 403) creates nothing: payouts go back to the
 * queue and every request of the worker pauses, one minute at first,
 * doubling to ten; a reload or a new key file ends the pause at once.
 *
 * Initializes that Moneroo leaves unknown (5xx, a timeout or reset after
 * sending, an unreadable answer) cannot be retried, so they are what a
 * failing Moneroo costs.  After moneroo.breaker_threshold (3) in a row the
 * breaker opens: nothing new leaves and requests in flight finish, so at
 * most max_concurrency + 2 payouts become unknown.  It pauses 30 seconds,
 * doubling to ten minutes.
 *
 * Every pause ends with one probe that creates nothing, a verify (of a
 * payout Moneroo knows, or of an id it cannot know: a 404 is as good an
 * answer), which tests the key and Moneroo alike.  After a good probe sends
 * resume one at a time, doubling with each good answer; a trial send that
 * fails pauses again at once, and longer, until the ramp is complete.
 * A 429 is Moneroo's own pause, not a failure (see rate_limit.c).
 */
#include "postgres.h"

#include "storage/spin.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "shmem/account_health.h"
#include "shmem/shared_state.h"


/* The account's part of shared memory: every worker and backend share it. */
typedef struct AccountShared
{
	slock_t		mutex;			/* protects health */
	AccountHealth health;
} AccountShared;

static AccountShared *account_shared = NULL;

void
account_health_shmem(void)
{
	MONEROO_SHARED_PART("moneroo account health", AccountShared, &account_shared);
}

#define KEY_PAUSE_MIN_MS (60 * 1000)
#define BREAKER_PAUSE_MIN_MS (30 * 1000)
#define PAUSE_MAX_MS (10 * 60 * 1000)

static bool
answered_refusing_key(HttpCall *call)
{
	return call->outcome == HTTP_ANSWERED && http_status_refuses_key(call->status);
}

const char *
account_pause_reason(AccountPause pause)
{
	switch (pause)
	{
		case ACCOUNT_OK:
			return NULL;
		case ACCOUNT_KEY_REFUSED:
			return "Moneroo refused the secret key (HTTP 401 or 403)";
		case ACCOUNT_MONEROO_FAILING:
			return "Moneroo is failing: initializes left unknown in a row opened the circuit breaker";
	}
	return NULL;
}

AccountPause
account_pause(TimestampTz *until)
{
	AccountPause pause;

	SpinLockAcquire(&account_shared->mutex);
	pause = account_shared->health.pause;
	if (until)
		*until = account_shared->health.paused_until;
	SpinLockRelease(&account_shared->mutex);
	return pause;
}

/*
 * Caller holds the mutex.  Enters a pause, or starts the next, longer one
 * when the answer is that of the request that tested the last; answers
 * still coming back from before a pause began leave it as it is.  The
 * doubling goes on until the account has fully recovered (see
 * recovered_locked): a trial that fails after a good probe pauses longer.
 */
static void
pause_locked(AccountHealth *health, AccountPause pause, long min_ms, TimestampTz now)
{
	int64		delay = min_ms;

	if (health->pause == pause && now < health->paused_until)
		return;
	for (int i = 0; i < health->pauses && delay < PAUSE_MAX_MS; i++)
		delay *= 2;
	health->pause = pause;
	health->pauses++;
	health->paused_until = TimestampTzPlusMilliseconds(now, Min(delay, PAUSE_MAX_MS));
	health->probe_at = 0;
	health->ramp = 0;
}

/*
 * Caller holds the mutex.  A probe came back good: sends resume, one at a
 * time, widening as their answers come back good.
 */
static void
resume_locked(AccountHealth *health)
{
	health->pause = ACCOUNT_OK;
	health->probe_at = 0;
	health->server_failures = 0;
	health->ramp = 1;
}

/* Caller holds the mutex.  A good send: widen, and forget the outage once wide. */
static void
recovered_locked(AccountHealth *health)
{
	health->server_failures = 0;
	if (health->ramp == 0)
		return;
	health->ramp *= 2;
	if (health->ramp >= moneroo_max_concurrency)
	{
		health->ramp = 0;
		health->pauses = 0;
	}
}

/*
 * While paused nothing of the worker's leaves but the probe; once resumed,
 * sends are capped by the ramp.
 */
static int
allowance(int in_flight, int max, bool for_send)
{
	AccountHealth *health = &account_shared->health;
	int			allowed = 0;

	SpinLockAcquire(&account_shared->mutex);
	if (health->pause == ACCOUNT_OK)
		allowed = (for_send && health->ramp > 0 ? health->ramp : max) - in_flight;
	SpinLockRelease(&account_shared->mutex);
	return Max(allowed, 0);
}

int
account_send_allowance(int in_flight, int max)
{
	return allowance(in_flight, max, true);
}

int
account_verify_allowance(int in_flight, int max)
{
	return allowance(in_flight, max, false);
}

bool
account_take_probe(void)
{
	AccountHealth *health = &account_shared->health;
	TimestampTz now = GetCurrentTimestamp();
	bool		take;

	SpinLockAcquire(&account_shared->mutex);
	take = health->pause != ACCOUNT_OK && now >= health->paused_until &&
		(health->probe_at == 0 ||
		 TimestampDifferenceExceeds(health->probe_at, now, moneroo_request_timeout_ms + 5000));
	if (take)
		health->probe_at = now;
	SpinLockRelease(&account_shared->mutex);
	return take;
}

void
account_probe_not_sent(void)
{
	SpinLockAcquire(&account_shared->mutex);
	account_shared->health.probe_at = 0;
	SpinLockRelease(&account_shared->mutex);
}

/*
 * A verify answers 404 for an id Moneroo does not know, 401/403 for a key
 * it refuses, 5xx when it fails: any answer below 500 but those shows both
 * the key and Moneroo at work.
 */
void
account_note_probe(HttpCall *call)
{
	AccountHealth *health = &account_shared->health;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&account_shared->mutex);
	if (answered_refusing_key(call))
		pause_locked(health, ACCOUNT_KEY_REFUSED, KEY_PAUSE_MIN_MS, now);
	else if (call->outcome == HTTP_ANSWERED && call->status == 429)
		health->probe_at = 0;	/* no word on the account: ask again */
	else if (call->outcome == HTTP_ANSWERED && call->status < 500 && call->status != 408)
		resume_locked(health);
	else
		pause_locked(health, ACCOUNT_MONEROO_FAILING, BREAKER_PAUSE_MIN_MS, now);
	SpinLockRelease(&account_shared->mutex);
}

void
account_note_send(HttpCall *call, SendVerdict verdict)
{
	AccountHealth *health = &account_shared->health;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&account_shared->mutex);
	if (answered_refusing_key(call))
		pause_locked(health, ACCOUNT_KEY_REFUSED, KEY_PAUSE_MIN_MS, now);
	else if (verdict == SEND_UNKNOWN)
	{
		health->server_failures++;
		/* a trial send after a pause that fails pauses again at once */
		if (health->pause == ACCOUNT_OK && moneroo_breaker_threshold > 0 &&
			(health->ramp > 0 || health->server_failures >= moneroo_breaker_threshold))
			pause_locked(health, ACCOUNT_MONEROO_FAILING, BREAKER_PAUSE_MIN_MS, now);
	}
	else if ((verdict == SEND_ACCEPTED || verdict == SEND_REFUSED) && health->pause == ACCOUNT_OK)
		recovered_locked(health);
	SpinLockRelease(&account_shared->mutex);
}

/* A verification (the worker's or a backend's) that the key was refused, or that it works. */
void
account_note_verify(HttpCall *call)
{
	AccountHealth *health = &account_shared->health;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&account_shared->mutex);
	if (answered_refusing_key(call))
		pause_locked(health, ACCOUNT_KEY_REFUSED, KEY_PAUSE_MIN_MS, now);
	else if (call->outcome == HTTP_ANSWERED && call->status < 400 &&
			 health->pause == ACCOUNT_KEY_REFUSED)
		resume_locked(health);
	SpinLockRelease(&account_shared->mutex);
}

void
account_key_may_work(void)
{
	AccountHealth *health = &account_shared->health;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&account_shared->mutex);
	if (health->pause == ACCOUNT_KEY_REFUSED)
	{
		health->paused_until = now;
		health->probe_at = 0;
	}
	SpinLockRelease(&account_shared->mutex);
}
