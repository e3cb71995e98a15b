/*
 * state_counts.h
 *		moneroo_state_counts: how many payouts are in each state, without
 *		counting them.
 */
#ifndef MONEROO_STATE_COUNTS_H
#define MONEROO_STATE_COUNTS_H

#include "utils/relcache.h"

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
