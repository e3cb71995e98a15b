/*
 * payout_lookup.h
 *		Every read the extension makes of the payouts table.
 */
#ifndef MONEROO_PAYOUT_LOOKUP_H
#define MONEROO_PAYOUT_LOOKUP_H

#include "payout_status.h"

/* The whole row as a payouts composite, read with the latest snapshot. */
extern Datum payout_lookup_row(int64 id);
extern bool payout_lookup_row_by_reference(const char *reference, Datum *row);

/*
 * Status and Moneroo id (NULL when it has none) of a row, locked FOR
 * UPDATE if asked; an error if there is no such payout.
 */
extern PayoutStatus payout_lookup_status(int64 id, bool for_update, char **moneroo_id);

/* Id and status of the payout that carries this Moneroo id; false if none does. */
extern bool payout_lookup_by_moneroo_id(const char *moneroo_id, int64 *id,
										PayoutStatus *status);

/* Milliseconds until the next retry or verification falls due; -1: none. */
extern long payout_lookup_next_due_ms(void);

#endif
