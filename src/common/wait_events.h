/*
 * wait_events.h
 *		What moneroo's processes wait for, as pg_stat_activity shows it.
 */
#ifndef MONEROO_WAIT_EVENTS_H
#define MONEROO_WAIT_EVENTS_H

typedef enum MonerooWait
{
	MONEROO_WAIT_LAUNCHER,		/* the launcher, between two reads of pg_database */
	MONEROO_WAIT_WORKER,		/* a worker with no answer to wait for */
	MONEROO_WAIT_ANSWERS,		/* a worker waiting for Moneroo's answers */
	MONEROO_WAIT_WORKER_STOP,	/* a worker seeing its requests through before it exits */
	MONEROO_WAIT_DROP_DATABASE, /* DROP DATABASE waiting for the database's worker to exit */
	MONEROO_WAIT_TRANSFER_SLOT, /* moneroo_transfer waiting for a free slot */
	MONEROO_WAIT_TRANSFER,		/* moneroo_transfer waiting for the worker to send its payout */
	MONEROO_WAIT_RATE_LIMIT,	/* a verification waiting for the rate limit */
	MONEROO_WAIT_REQUEST,		/* a backend waiting for the answer to its own request */
	MONEROO_WAIT_COUNT
} MonerooWait;

/*
 * The wait_event_info to pass to WaitLatch and the like: on PostgreSQL 17
 * and later a named event (wait_event_type Extension, wait_event
 * MonerooTransfer...), before 17 the one "Extension" event.
 */
extern uint32 moneroo_wait_event(MonerooWait wait);

#endif							/* MONEROO_WAIT_EVENTS_H */
