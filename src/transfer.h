/*
 * transfer.h
 *		Sending one payout now, for moneroo_transfer.
 */
#ifndef MONEROO_TRANSFER_H
#define MONEROO_TRANSFER_H

#include "utils/jsonb.h"

/* Sends a validated request and returns its recorded payouts row. */
extern Datum moneroo_transfer_now(Jsonb *request);

#endif
