/*
 * spending_limits.h
 *		moneroo_limits: what a currency may pay, and what waits for a
 *		second person.
 */
#ifndef MONEROO_SPENDING_LIMITS_H
#define MONEROO_SPENDING_LIMITS_H

#include "utils/jsonb.h"

#include "compat/compat.h"

/* One currency's row of moneroo_limits; a limit that is NULL is absent. */
typedef struct CurrencyLimits
{
	bool		has_max_amount;
	bool		has_approval_above;
	bool		has_daily_limit;
	int64		max_amount;
	int64		approval_above;
	int64		daily_limit;
} CurrencyLimits;

/*
 * The limits of currency in the extension's schema (none where the schema
 * predates moneroo_limits), read as the table's owner.
 */
extern CurrencyLimits limits_of_currency(Oid schema, const char *currency);

/*
 * Why a payout of this (valid) request must be held, or NULL when it may go.
 *
 * To be exact against concurrent payouts the daily limit is judged under a
 * lock on the currency held until the transaction ends, against the usage
 * read once under it plus what this transaction added since; a payout that
 * goes is added.  peek judges without the lock and adds nothing: an early
 * answer for moneroo_transfer, whose row is judged again when the worker
 * records it.
 */
extern char *limits_hold_reason(Oid schema, Jsonb *request, bool peek);

/* moneroo_transfer's ERROR (55000) for a payout that would be held. */
pg_noreturn extern void limits_refuse_to_send_held(const char *reason);

/*
 * An approved payout now counts against the daily limit: under the same
 * lock, so that no concurrent transaction judges with a usage that lacks it.
 */
extern void limits_count_approved(Oid schema, const char *currency, int64 amount);

extern void limits_register_callbacks(void);

#endif
