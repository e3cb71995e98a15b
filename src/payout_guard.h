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

#endif
