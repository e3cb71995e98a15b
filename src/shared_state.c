/*
 * shared_state.c
 *		Shared memory of the extension and the rate limiter in it.
 *
 * Moneroo allows 120 requests a minute per account, counting every route,
 * so the limiter lives here where the worker and every backend calling
 * moneroo_verify draw from the same allowance.  Requests are spaced evenly
 * rather than burst, with a small margin: a 300-payout queue drains at just
 * under 2 per second, and no window of 60 seconds, however it is placed,
 * holds more than the limit.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "shared_state.h"

/* Requests leave this many percent of 60 s / moneroo.rate_limit apart. */
#define RATE_MARGIN_PERCENT 101

MonerooShared *moneroo_shared = NULL;

static shmem_request_hook_type previous_shmem_request = NULL;
static shmem_startup_hook_type previous_shmem_startup = NULL;

static void
request_shmem(void)
{
	if (previous_shmem_request)
		previous_shmem_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(MonerooShared)));
}

static void
startup_shmem(void)
{
	bool		found;

	if (previous_shmem_startup)
		previous_shmem_startup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	moneroo_shared = ShmemInitStruct("moneroo", sizeof(MonerooShared), &found);
	if (!found)
	{
		memset(moneroo_shared, 0, sizeof(MonerooShared));
		SpinLockInit(&moneroo_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
moneroo_request_shared_memory(void)
{
	previous_shmem_request = shmem_request_hook;
	shmem_request_hook = request_shmem;
}

void
moneroo_init_shared_memory(void)
{
	previous_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

void
moneroo_wake_worker(void)
{
	Latch	   *latch = NULL;

	if (moneroo_shared == NULL)
		return;
	SpinLockAcquire(&moneroo_shared->mutex);
	if (moneroo_shared->worker_pid != 0)
		latch = moneroo_shared->worker_latch;
	SpinLockRelease(&moneroo_shared->mutex);
	if (latch)
		SetLatch(latch);
}

static void
count_request(TimestampTz now)
{
	int64		second = now / USECS_PER_SEC;
	int			bucket = second % 60;

	if (moneroo_shared->second_of_bucket[bucket] != second)
	{
		moneroo_shared->second_of_bucket[bucket] = second;
		moneroo_shared->requests_in_bucket[bucket] = 0;
	}
	moneroo_shared->requests_in_bucket[bucket]++;
}

/* Caller holds the mutex. */
static long
rate_wait_locked(TimestampTz now)
{
	if (moneroo_shared->paused_until > now)
		return (moneroo_shared->paused_until - now) / 1000 + 1;
	if (moneroo_rate_limit > 0 && moneroo_shared->next_request_at > now)
		return (moneroo_shared->next_request_at - now) / 1000 + 1;
	return 0;
}

long
moneroo_rate_wait_ms(void)
{
	long		wait_ms;

	if (moneroo_shared == NULL)
		return 0;
	SpinLockAcquire(&moneroo_shared->mutex);
	wait_ms = rate_wait_locked(GetCurrentTimestamp());
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
	long		wait_ms;
	int			limit = moneroo_rate_limit;

	if (moneroo_shared == NULL)
		return 0;

	SpinLockAcquire(&moneroo_shared->mutex);
	wait_ms = rate_wait_locked(now);
	if (wait_ms == 0)
	{
		if (limit > 0)
			moneroo_shared->next_request_at = now + rate_spacing_us(limit);
		count_request(now);
	}
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
	if (moneroo_shared->paused_until < until)
		moneroo_shared->paused_until = until;
	SpinLockRelease(&moneroo_shared->mutex);
}

int
moneroo_requests_last_minute(void)
{
	int64		now_second = GetCurrentTimestamp() / USECS_PER_SEC;
	int			total = 0;

	if (moneroo_shared == NULL)
		return 0;
	SpinLockAcquire(&moneroo_shared->mutex);
	for (int i = 0; i < 60; i++)
		if (moneroo_shared->second_of_bucket[i] > now_second - 60)
			total += moneroo_shared->requests_in_bucket[i];
	SpinLockRelease(&moneroo_shared->mutex);
	return total;
}

void
moneroo_note_error(const char *error)
{
	char		clipped[LAST_ERROR_BYTES];

	if (moneroo_shared == NULL || error == NULL)
		return;
	moneroo_clip_copy(clipped, error, LAST_ERROR_BYTES);
	SpinLockAcquire(&moneroo_shared->mutex);
	memcpy(moneroo_shared->last_error, clipped, LAST_ERROR_BYTES);
	moneroo_shared->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&moneroo_shared->mutex);
}

void
moneroo_clip_copy(char *dst, const char *src, size_t size)
{
	int			len = pg_mbcliplen(src, strlen(src), size - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}
