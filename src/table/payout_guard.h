/*
 * payout_guard.h
 *		The row trigger on payouts: validation and state-machine guard.
 */
#ifndef MONEROO_PAYOUT_GUARD_H
#define MONEROO_PAYOUT_GUARD_H

#include "utils/relcache.h"

#endif
