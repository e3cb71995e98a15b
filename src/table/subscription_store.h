/*
 * subscription_store.h
 *		moneroo_subscribers: the application's subscriptions to the events
 *		of payouts, and what a handler must be.
 */
#ifndef MONEROO_SUBSCRIPTION_STORE_H
#define MONEROO_SUBSCRIPTION_STORE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/*
 * Raises an error unless handler is a function (event payout_events, payout
 * payouts) RETURNS void: 42883 for other arguments, 42804 for another result,
 * 42809 for a procedure or an aggregate.
 */
extern void subscription_check_handler(Oid handler);

/* Raises 22023 unless every element of statuses names a payout_events status. */
extern void subscription_check_statuses(Datum statuses);

/*
 * Raises 42501 unless role may run handler and read what it is given:
 * EXECUTE on it, SELECT on payouts and payout_events.
 */
extern void subscription_check_privileges(Oid role, Oid handler);

/* Adds a subscription; false when the name is in use. */
extern bool subscription_store_add(const char *name, Oid handler, Oid subscriber,
								   Datum statuses, bool statuses_null, int64 position);

/*
 * Locks the subscription of that name until the transaction ends and
 * returns its subscriber; raises 42704 when there is none.
 */
extern Oid	subscription_store_lock(const char *name);
extern void subscription_store_remove(const char *name);
extern void subscription_store_set_paused(const char *name, bool paused);

/* A subscription the worker delivers to. */
typedef struct SubscriptionDue
{
	char	   *name;
	int64		position;		/* the last event it is done with */
	TimestampTz retry_at;		/* after a failure: not before; else 0 */
} SubscriptionDue;

/* The subscriptions not paused (SubscriptionDue *), in the current memory context. */
extern List *subscription_store_active(void);

/* A subscription's next event, as the worker takes it. */
typedef struct SubscriptionEvent
{
	Oid			handler;		/* InvalidOid: the function is gone */
	char	   *handler_name;
	Oid			subscriber;
	int			failures;		/* in a row, before this try */
	int64		event_id;		/* 0: no matching event up to the horizon */
	Datum		event;			/* payout_events */
	Datum		payout;			/* payouts, unless payout_null (a deleted payout) */
	bool		payout_null;
} SubscriptionEvent;

/*
 * Locks the subscription (skipping it while someone else holds it) and
 * reads its first matching event after its position up to horizon, into
 * the current memory context.  False when it is locked, paused, gone or not
 * behind horizon.
 */
extern bool subscription_store_next(const char *name, int64 horizon, SubscriptionEvent *next);

/*
 * Moves the position to event_id: the event was delivered (delivered) or
 * none up to it matches.  The failures in a row start again from 0.
 */
extern void subscription_store_advance(const char *name, int64 event_id, bool delivered);

/* A failed try: one more failure in a row, its error, and when to try again. */
extern void subscription_store_failed(const char *name, const char *error, double retry_seconds);

#endif
