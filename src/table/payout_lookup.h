/*
 * payout_lookup.h
 *		Every read the extension makes of the payouts table.
 */
#ifndef MONEROO_PAYOUT_LOOKUP_H
#define MONEROO_PAYOUT_LOOKUP_H

#include "utils/jsonb.h"

#include "common/payout_status.h"

/* The whole row as a payouts composite, read with the latest snapshot. */
extern Datum payout_lookup_row(int64 id);
extern bool payout_lookup_row_by_reference(const char *reference, Datum *row);

/*
 * The payout queued with this idempotency key, read with the latest
 * snapshot; false if none was.  same_request says whether it was queued
 * with this request (jsonb equality: the order of keys does not matter).
 */
extern bool payout_lookup_row_by_idempotency_key(const char *key, Jsonb *request,
												 Datum *row, bool *same_request);

/* What identifies a payout here and at Moneroo, and where it stands. */
typedef struct PayoutKeys
{
	int64		id;
	PayoutStatus status;
	char	   *reference;
	char	   *moneroo_id;		/* NULL when it has none */
} PayoutKeys;

/* The row's keys, locked FOR UPDATE if asked; an error if there is no such payout. */
extern PayoutKeys payout_lookup_keys(int64 id, bool for_update);

/* What approving a held payout needs to know of it. */
typedef struct HeldPayout
{
	char	   *created_by;		/* NULL for a payout older than 1.2 */
	char	   *currency;
	int64		amount;
} HeldPayout;

extern HeldPayout payout_lookup_held(int64 id);

/* The keys of the payout with this reference, locked FOR UPDATE; false if none has it. */
extern bool payout_lookup_keys_by_reference(const char *reference, PayoutKeys *keys);

/* Id and status of the payout that carries this Moneroo id; false if none does. */
extern bool payout_lookup_by_moneroo_id(const char *moneroo_id, int64 *id,
										PayoutStatus *status);

/*
 * The Moneroo id of the most recent payout that has one, copied into
 * context; NULL when none has.  For a probe that creates nothing.
 */
extern char *payout_lookup_any_moneroo_id(MemoryContext context);

/* Milliseconds until the next retry or verification falls due; -1: none. */
extern long payout_lookup_next_due_ms(void);

/* Whether a pending payout is due to be sent now (what a claim would take). */
extern bool payout_lookup_any_due_to_send(void);

#endif
