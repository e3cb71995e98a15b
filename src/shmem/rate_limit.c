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

#include "utils/timestamp.h"

#include "shmem/rate_limit.h"
#include "common/settings.h"
#include "shmem/shared_state.h"

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

	if (moneroo_shared == NULL)
		return 0;
	SpinLockAcquire(&moneroo_shared->mutex);
	wait_ms = rate_wait_locked(&moneroo_shared->rate, GetCurrentTimestamp());
	SpinLockRelease(&moneroo_shared->mutex);
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

long
moneroo_rate_acquire(void)
{
	TimestampTz now = GetCurrentTimestamp();
	RateLimiter *rate;
	long		wait_ms;
	int			limit = moneroo_rate_limit;

	if (moneroo_shared == NULL)
		return 0;

	rate = &moneroo_shared->rate;
	SpinLockAcquire(&moneroo_shared->mutex);
	wait_ms = rate_wait_locked(rate, now);
	/* the workers of several databases take turns (see served_databases.c) */
	if (wait_ms == 0 && limit > 0 &&
		served_rate_turn_of_another_locked(now, rate_spacing_us(limit) + RATE_TURN_ASKS_US))
		wait_ms = 1;
	if (wait_ms == 0)
	{
		if (limit > 0)
			rate->next_request_at = now + rate_spacing_us(limit);
		count_request(rate, now);
	}
	served_rate_asked_locked(now, wait_ms == 0);
	SpinLockRelease(&moneroo_shared->mutex);
	return wait_ms;
}

void
moneroo_rate_pause(long pause_ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause_ms);

	if (moneroo_shared == NULL)
		return;
	SpinLockAcquire(&moneroo_shared->mutex);
	if (moneroo_shared->rate.paused_until < until)
		moneroo_shared->rate.paused_until = until;
	SpinLockRelease(&moneroo_shared->mutex);
}

int
moneroo_requests_last_minute(void)
{
	int64		now_second = GetCurrentTimestamp() / USECS_PER_SEC;
	RateLimiter *rate;
	int			total = 0;

	if (moneroo_shared == NULL)
		return 0;
	rate = &moneroo_shared->rate;
	SpinLockAcquire(&moneroo_shared->mutex);
	for (int i = 0; i < 60; i++)
		if (rate->second_of_bucket[i] > now_second - 60)
			total += rate->requests_in_bucket[i];
	SpinLockRelease(&moneroo_shared->mutex);
	return total;
}
