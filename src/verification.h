/*
 * verification.h
 *		Asking Moneroo now for a payout's status, for moneroo_verify and
 *		moneroo_webhook.
 */
#ifndef MONEROO_VERIFICATION_H
#define MONEROO_VERIFICATION_H

#include "postgres.h"

/*
 * Verifies payout id with Moneroo and returns its updated row.  When
 * may_wait is false and the rate limiter has no room right now, the
 * verification is left to the worker, woken for it, and the row returned
 * as it is.
 */
extern Datum moneroo_verify_now(int64 id, bool may_wait);

#endif
