/*
 * event_horizon.h
 *		How far payout_events can be read in id order without missing an
 *		event that commits later.
 */
#ifndef MONEROO_EVENT_HORIZON_H
#define MONEROO_EVENT_HORIZON_H

#include "storage/lock.h"

typedef struct EventHorizon
{
	int64		last_id;		/* the last event id given out when it was taken */
	int			nwriters;
	VirtualTransactionId *writers;	/* the transactions then writing events */
} EventHorizon;

/*
 * Takes a horizon now (in a transaction, in the extension's schema): the
 * last id given out, and the transactions that may hold an id up to it
 * uncommitted.  Allocated in cxt.
 */
extern EventHorizon *event_horizon_take(Oid schema, MemoryContext cxt);

/*
 * Whether every writer of the horizon has ended, without waiting: then every
 * event up to last_id has committed or will never exist.  Needs a
 * transaction.
 */
extern bool event_horizon_reached(EventHorizon *horizon);

/* Takes a horizon and waits for its writers: the events up to it are final. */
extern int64 event_horizon_wait(Oid schema);

/* The last event id given out (0: none yet); needs a transaction. */
extern int64 event_horizon_last_id(Oid schema);

#endif
