/*
 * rate_limit.c
 *		The rate limiter: Moneroo's requests-per-minute allowance.
 *
 * Moneroo allows 120 requests a minute per account, counting every route,
 * so the limiter lives in shared memory where the workers of every served
 * database and every backend calling moneroo_verify draw from the same
 * allowance.  Requests are spaced
 * evenly rather than burst, with a small margin: a 300-payout queue drains
 * at just under 2 per second, and no window of 60 seconds, however it is
 * placed, holds more than the limit.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "shmem/shared_state.h"


/*
 * One worker's turn at the limiter, kept at its served_databases.c index:
 * one database's backlog must not hold another's payout back for long, so
 * when a place frees, the worker that has waited longest takes it.  The
 * backends (moneroo_verify, webhooks) take turns with them as one more
 * participant, at BACKENDS_TURN: a flood of webhooks must not take every
 * place that frees ahead of the workers.
 */
typedef struct RateTurn
{
	pid_t		pid;			/* the worker the turn is of */
	TimestampTz waiting_since;	/* refused by the limiter since; 0: not */
	TimestampTz asked_at;		/* last asked the limiter */
} RateTurn;

/* The limiter's part of shared memory: one account, one allowance. */
typedef struct RateShared
{
	slock_t		mutex;			/* protects every field below */
	RateLimiter rate;
	RateTurn	turns[SERVED_DATABASES_MAX + 1];
} RateShared;

#define BACKENDS_TURN SERVED_DATABASES_MAX

static RateShared *rate_shared = NULL;

void
moneroo_rate_limit_shmem(void)
{
	MONEROO_SHARED_PART("moneroo rate limit", RateShared, &rate_shared);
}

/* Requests leave this many percent of 60 s / moneroo.rate_limit apart. */
#define RATE_MARGIN_PERCENT 101
/* A worker waiting its turn asks again within this long of a place freeing. */
#define RATE_TURN_ASKS_US (200 * 1000)

static void
count_request(RateLimiter *rate, TimestampTz now)
{
	int64		second = now / USECS_PER_SEC;
	int			bucket = second % 60;

	if (rate->second_of_bucket[bucket] != second)
	{
		rate->second_of_bucket[bucket] = second;
		rate->requests_in_bucket[bucket] = 0;
	}
	rate->requests_in_bucket[bucket]++;
}

/* Caller holds the mutex. */
static long
rate_wait_locked(RateLimiter *rate, TimestampTz now)
{
	if (rate->paused_until > now)
		return (rate->paused_until - now) / 1000 + 1;
	if (moneroo_rate_limit > 0 && rate->next_request_at > now)
		return (rate->next_request_at - now) / 1000 + 1;
	return 0;
}

long
moneroo_rate_wait_ms(void)
{
	long		wait_ms;

	if (rate_shared == NULL)
		return 0;
	SpinLockAcquire(&rate_shared->mutex);
	wait_ms = rate_wait_locked(&rate_shared->rate, GetCurrentTimestamp());
	SpinLockRelease(&rate_shared->mutex);
	return wait_ms;
}

/*
 * Moneroo counts requests as they arrive, not as they leave: one held up
 * on the way (a slow connect, a retransmission) arrives closer to those
 * after it than it left.  Spacing requests 1% wider than 60/limit seconds
 * lets any request of a minute arrive up to 0.6 s late before the window
 * of Moneroo's clock could hold limit + 1 of them.
 */
static int64
rate_spacing_us(int limit)
{
	return (USECS_PER_SEC * 60 * RATE_MARGIN_PERCENT) / (100 * (int64) limit) + 1;
}

/*
 * Hold the mutex.  Whether a worker (or the backends) other than mine has
 * waited longer and still asks: one that stopped asking (it found other
 * work, or stopped) loses its turn after still_asking_us.
 */
static bool
turn_of_another_locked(int mine, TimestampTz now, int64 still_asking_us)
{
	TimestampTz waited = rate_shared->turns[mine].waiting_since;

	for (int i = 0; i <= BACKENDS_TURN; i++)
	{
		RateTurn   *other = &rate_shared->turns[i];

		if (i == mine || other->waiting_since == 0 || other->asked_at < now - still_asking_us)
			continue;
		if (waited == 0 || other->waiting_since < waited)
			return true;
	}
	return false;
}

/*
 * Hold the mutex.  What my ask did; a new worker at the index starts
 * afresh (the backends' turn is all backends').
 */
static void
asked_locked(int mine, TimestampTz now, bool granted)
{
	RateTurn   *turn = &rate_shared->turns[mine];

	if (mine != BACKENDS_TURN && turn->pid != MyProcPid)
		*turn = (RateTurn) {MyProcPid, 0, 0};
	turn->asked_at = now;
	if (granted)
		turn->waiting_since = 0;
	else if (turn->waiting_since == 0)
		turn->waiting_since = now;
}

long
moneroo_rate_acquire(void)
{
	TimestampTz now = GetCurrentTimestamp();
	RateLimiter *rate;
	long		wait_ms;
	int			limit = moneroo_rate_limit;
	int			mine = served_my_index();

	if (rate_shared == NULL)
		return 0;

	if (mine < 0)
		mine = BACKENDS_TURN;
	rate = &rate_shared->rate;
	SpinLockAcquire(&rate_shared->mutex);
	wait_ms = rate_wait_locked(rate, now);
	/* the workers of several databases, and the backends, take turns */
	if (limit > 0)
	{
		int64		still_asking_us = rate_spacing_us(limit) + RATE_TURN_ASKS_US;

		/* one that stopped asking (a webhook that gave up) lost its turn */
		if (rate_shared->turns[mine].asked_at < now - still_asking_us)
			rate_shared->turns[mine].waiting_since = 0;
		if (wait_ms == 0 && turn_of_another_locked(mine, now, still_asking_us))
			wait_ms = 1;
	}
	if (wait_ms == 0)
	{
		if (limit > 0)
			rate->next_request_at = now + rate_spacing_us(limit);
		count_request(rate, now);
	}
	asked_locked(mine, now, wait_ms == 0);
	SpinLockRelease(&rate_shared->mutex);
	return wait_ms;
}

void
moneroo_rate_pause(long pause_ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause_ms);

	if (rate_shared == NULL)
		return;
	SpinLockAcquire(&rate_shared->mutex);
	if (rate_shared->rate.paused_until < until)
		rate_shared->rate.paused_until = until;
	SpinLockRelease(&rate_shared->mutex);
}

void
moneroo_rate_limited(void)
{
	if (rate_shared == NULL)
		return;
	SpinLockAcquire(&rate_shared->mutex);
	rate_shared->rate.rate_limited++;
	SpinLockRelease(&rate_shared->mutex);
	moneroo_rate_pause(RATE_LIMIT_PAUSE_MS);
}

int64
moneroo_rate_limited_count(TimestampTz *paused_until)
{
	int64		count;

	*paused_until = 0;
	if (rate_shared == NULL)
		return 0;
	SpinLockAcquire(&rate_shared->mutex);
	count = rate_shared->rate.rate_limited;
	if (rate_shared->rate.paused_until > GetCurrentTimestamp())
		*paused_until = rate_shared->rate.paused_until;
	SpinLockRelease(&rate_shared->mutex);
	return count;
}

int
moneroo_requests_last_minute(void)
{
	int64		now_second = GetCurrentTimestamp() / USECS_PER_SEC;
	RateLimiter *rate;
	int			total = 0;

	if (rate_shared == NULL)
		return 0;
	rate = &rate_shared->rate;
	SpinLockAcquire(&rate_shared->mutex);
	for (int i = 0; i < 60; i++)
		if (rate->second_of_bucket[i] > now_second - 60)
			total += rate->requests_in_bucket[i];
	SpinLockRelease(&rate_shared->mutex);
	return total;
}
