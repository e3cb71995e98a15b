/*
 * shared_state.h
 *		What the worker and the backends share: the worker's latch, the
 *		rate limiter, what moneroo_status shows and the transfer slots.
 */
#ifndef MONEROO_SHARED_STATE_H
#define MONEROO_SHARED_STATE_H

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "account_health.h"
#include "message_text.h"
#include "rate_limit.h"
#include "transfer_slots.h"

typedef struct MonerooShared
{
	slock_t		mutex;			/* protects every field below */
	pid_t		worker_pid;		/* 0 when no worker runs */
	Latch	   *worker_latch;

	RateLimiter rate;			/* see rate_limit.c */
	AccountHealth account;		/* see account_health.c */

	int32		in_flight;		/* requests the worker has started or readied */
	char		last_error[LAST_ERROR_BYTES];
	TimestampTz last_error_at;
	TimestampTz last_webhook_at;	/* see verify_schedule.c */

	TransferSlot transfers[TRANSFER_SLOTS]; /* see transfer_slots.c */
} MonerooShared;

extern MonerooShared *moneroo_shared;

extern void moneroo_request_shared_memory(void);
extern void moneroo_init_shared_memory(void);

/* Sets the worker's latch, if a worker runs. */
extern void moneroo_wake_worker(void);

/* Keeps error as moneroo_status's last_error. */
extern void moneroo_note_error(const char *error);

#endif
