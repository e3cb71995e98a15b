/*
 * payout_guard.h
 *		The row trigger on payouts: validation and state-machine guard.
 */
#ifndef MONEROO_PAYOUT_GUARD_H
#define MONEROO_PAYOUT_GUARD_H

#include "utils/relcache.h"

/*
 * Refuses to go on when rel carries a trigger the extension did not create:
 * it would run with the owner's rights during the extension's writes.
 */
extern void moneroo_refuse_foreign_triggers(Relation rel);

/* Whether this statement is pg_restore's COPY, which brings rows back as they were. */
extern bool moneroo_restoring_from_dump(void);

#endif
