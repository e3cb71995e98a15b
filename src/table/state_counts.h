/*
 * state_counts.h
 *		moneroo_state_counts: how many payouts are in each state, without
 *		counting them.
 */
#ifndef MONEROO_STATE_COUNTS_H
#define MONEROO_STATE_COUNTS_H

#include "utils/relcache.h"

/*
 * The counts' half of the statement that records a statement's changes of
 * state (audit_trail.c): an INSERT of one row per state whose count the
 * changes move, read from the CTE named changes (columns status and
 * previous_status; status is deleted_status for a deleted payout, which
 * leaves its state and enters none).  Events and counts are written by one
 * statement: one round trip per statement of the caller.  Refuses a trigger
 * on moneroo_state_counts that the extension did not create, since the
 * statement runs with the owner's rights.
 */
extern char *state_counts_insert_sql(Oid schema, const char *changes,
									 const char *deleted_status);

/* After TRUNCATE payouts: no payout is left in any state. */
extern void state_counts_forget_all(Relation payouts);

/*
 * The worker: replaces the rows added since the last fold by one per
 * state, in one statement (one snapshot), so that a sum read at any moment
 * is the same before and after.  Runs inside a transaction.
 */
extern void state_counts_fold(void);

/*
 * The worker, as it starts: counts payouts again, in one statement, so that
 * rows written with triggers off (session_replication_role = replica) are
 * counted from the next start on.  Runs inside a transaction.
 */
extern void state_counts_recount(void);

#endif
