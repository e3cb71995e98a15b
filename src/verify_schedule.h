/*
 * verify_schedule.h
 *		When the worker next asks Moneroo about a sent payout.
 */
#ifndef MONEROO_VERIFY_SCHEDULE_H
#define MONEROO_VERIFY_SCHEDULE_H

#include "datatype/timestamp.h"

/*
 * Webhooks are "arriving" while a signed one came in this recently: a quiet
 * account (a payout a day) falls back to polling on its own.
 */
#define WEBHOOKS_RECENT_MS (15 * 60 * 1000)

/*
 * Delay before the next verification of a payout verified n times.  While
 * webhooks arrive, each one triggers its payout's verification, and polls
 * are only the safety net: moneroo.verify_max_interval.  Otherwise
 * moneroo.verify_min_interval, doubling up to moneroo.verify_max_interval.
 */
extern int	verify_delay_ms(int verifications);

/* moneroo_webhook: a delivery with a valid signature came in. */
extern void verify_schedule_note_webhook(void);

/* When the last signed webhook came in (0: none since the server started). */
extern TimestampTz verify_schedule_last_webhook(void);

#endif
