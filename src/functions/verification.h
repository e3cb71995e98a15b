/*
 * verification.h
 *		Asking Moneroo now for a payout's status, for moneroo_verify and
 *		moneroo_webhook.
 */
#ifndef MONEROO_VERIFICATION_H
#define MONEROO_VERIFICATION_H

#include "postgres.h"

#include "moneroo/moneroo_api.h"

/*
 * Verifies payout id with Moneroo and returns its updated row.  When
 * may_wait is false and the rate limiter has no room right now, the
 * verification is left to the worker, woken for it, and the row returned
 * as it is.
 */
extern Datum moneroo_verify_now(int64 id, bool may_wait);

/* What asking Moneroo about a payout came to. */
typedef enum VerifyAsk
{
	ASK_NO_ROOM,				/* the rate limiter had no room and we may not wait */
	ASK_ANSWERED,				/* a verify answer for that id, in answer */
	ASK_UNKNOWN_ID,				/* Moneroo knows no payout of that id (404) */
	ASK_FAILED					/* no usable answer; answer->error says why */
} VerifyAsk;

/*
 * Asks Moneroo now about moneroo_id, under the rate limiter, waiting for
 * room (interruptibly) when may_wait.
 */
extern VerifyAsk moneroo_ask(const char *moneroo_id, bool may_wait, MonerooAnswer *answer);

#endif
