/*
 * audit_trail.h
 *		payout_events: one row for every state change of every payout.
 */
#ifndef MONEROO_AUDIT_TRAIL_H
#define MONEROO_AUDIT_TRAIL_H

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

extern void audit_register_callbacks(void);

#endif
