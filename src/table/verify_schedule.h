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
 * Delay before the next verification of a payout of this method (NULL: not
 * known) verified n times.  While webhooks arrive, each one triggers its
 * payout's verification, and polls are only the safety net:
 * moneroo.verify_max_interval.  Otherwise, where the worker has learned how
 * long the method's payouts take to settle, at the times by which 75 %,
 * 95 % and all of them had settled (those closer than verify_min_interval
 * to the one before left out), then at intervals doubling from the last of
 * them; where it has not, verify_min_interval doubling from the start.
 * Always within verify_min_interval and verify_max_interval.
 */
extern int	verify_delay_ms(const char *method, int verifications);

/*
 * The worker: learns, from the last few hundred settled payouts, how long
 * each method's took to settle (by Moneroo's own success_at / failed_at,
 * not by when the worker happened to look).  Runs inside a transaction.
 */
extern void verify_schedule_learn(void);

/* moneroo_webhook: a delivery with a valid signature came in. */
extern void verify_schedule_note_webhook(void);

/* Registers the last webhook's shared memory; from _PG_init. */
extern void verify_schedule_shmem(void);

#endif
