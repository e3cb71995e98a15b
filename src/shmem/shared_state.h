/*
 * shared_state.h
 *		What the launcher, the workers and the backends share: the served
 *		databases, the rate limiter and the account's state (one Moneroo
 *		account for every worker) and the transfer slots.
 */
#ifndef MONEROO_SHARED_STATE_H
#define MONEROO_SHARED_STATE_H

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "shmem/account_health.h"
#include "common/message_text.h"
#include "shmem/rate_limit.h"
#include "shmem/served_databases.h"
#include "shmem/transfer_slots.h"

typedef struct MonerooShared
{
	slock_t		mutex;			/* protects every field below */
	pid_t		launcher_pid;	/* 0 when the launcher does not run */
	Latch	   *launcher_latch;
	ServedDatabase served[SERVED_DATABASES_MAX];	/* see served_databases.c */

	RateLimiter rate;			/* see rate_limit.c */
	AccountHealth account;		/* see account_health.c */
	TimestampTz last_webhook_at;	/* see verify_schedule.c */

	TransferSlot transfers[TRANSFER_SLOTS]; /* see transfer_slots.c */
} MonerooShared;

extern MonerooShared *moneroo_shared;

extern void moneroo_request_shared_memory(void);
extern void moneroo_init_shared_memory(void);

#endif
