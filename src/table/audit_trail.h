/*
 * audit_trail.h
 *		payout_events: one row for every state change of every payout.
 */
#ifndef MONEROO_AUDIT_TRAIL_H
#define MONEROO_AUDIT_TRAIL_H

#include "utils/relcache.h"

/* The channel of the NOTIFY sent for every event (1.3). */
#define AUDIT_CHANNEL "moneroo_payouts"

/* The actor of the worker's own changes. */
#define AUDIT_WORKER_ACTOR "moneroo worker"

/*
 * The actor of the changes that follow, instead of the calling role: the
 * worker names itself, and names the caller of a moneroo_transfer while it
 * records that caller's row.  NULL: the calling role again.  Returns the
 * previous one.
 */
extern const char *audit_set_actor(const char *actor);

/*
 * Who is changing payouts now: the actor set above, else the role that
 * called the extension (before it switched to the table's owner).
 */
extern const char *audit_actor(void);

/*
 * What the SQL function now running is called ("moneroo_approve", "webhook"):
 * it opens the detail of the events it causes.  NULL when it returns; an
 * error makes the end of the (sub)transaction forget it, so that no later
 * statement inherits it.
 */
extern void audit_set_action(const char *action);

/*
 * Notes one change of the payout in payouts (rel) for payout_events: its
 * new status, the one before (NULL for an INSERT) and a few words of why.
 * The statement's trigger writes it.  Nothing where the extension's schema
 * predates payout_events.
 */
extern void audit_note_change(Relation payouts, int64 payout_id, const char *status,
							  const char *previous_status, const char *detail);

/* The status of a DELETE's note: the payout is gone from every state. */
#define AUDIT_DELETED "deleted"

/*
 * Notes a row pg_restore brings back (with its history, from the dump of
 * payout_events): counted in its state, no event.
 */
extern void audit_note_restored(Relation payouts, int64 payout_id, const char *status);

extern void audit_register_callbacks(void);

#endif
