/*
 * verify_schedule.c
 *		When to ask Moneroo again about a sent payout.
 *
 * Every verification is a request of the same per-minute allowance the
 * payouts still waiting to leave need.  Without webhooks, polling is how a
 * payout settles: soon at first (most settle within seconds in the
 * sandbox), then less and less often.  Once Moneroo's webhooks are
 * arriving, each one has its payout verified at once (webhook.c), so polls
 * become the safety net Moneroo's documentation asks for ("never rely on
 * webhooks alone"): one late poll, moneroo.verify_max_interval after the
 * last, for the payout whose webhook never comes.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "settings.h"
#include "shared_state.h"
#include "verify_schedule.h"

void
verify_schedule_note_webhook(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (moneroo_shared == NULL)
		return;
	SpinLockAcquire(&moneroo_shared->mutex);
	moneroo_shared->last_webhook_at = now;
	SpinLockRelease(&moneroo_shared->mutex);
}

TimestampTz
verify_schedule_last_webhook(void)
{
	TimestampTz at;

	if (moneroo_shared == NULL)
		return 0;
	SpinLockAcquire(&moneroo_shared->mutex);
	at = moneroo_shared->last_webhook_at;
	SpinLockRelease(&moneroo_shared->mutex);
	return at;
}

static bool
webhooks_arriving(void)
{
	TimestampTz last = verify_schedule_last_webhook();

	return last != 0 &&
		!TimestampDifferenceExceeds(last, GetCurrentTimestamp(), WEBHOOKS_RECENT_MS);
}

int
verify_delay_ms(int verifications)
{
	int64		delay = moneroo_verify_min_interval_ms;

	if (webhooks_arriving())
		return moneroo_verify_max_interval_ms;
	for (int i = 0; i < verifications && delay < moneroo_verify_max_interval_ms; i++)
		delay *= 2;
	return (int) Min(delay, (int64) moneroo_verify_max_interval_ms);
}
