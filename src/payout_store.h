/*
 * payout_store.h
 *		Every write the extension makes to the payouts table.
 */
#ifndef MONEROO_PAYOUT_STORE_H
#define MONEROO_PAYOUT_STORE_H

#include "moneroo_api.h"

/*
 * True while the extension itself writes payouts: the row guard lets only
 * these writes move a payout between states.
 */
extern bool moneroo_internal_write;

/* Schema of the moneroo extension, where payouts lives. */
extern Oid	payout_store_schema(void);

/* A new row, already claimed (status sending, attempts 1). */
extern int64 payout_store_insert_sending(Jsonb *request, char **reference);

extern void payout_store_record_send(int64 id, SendVerdict verdict,
									 MonerooAnswer *answer, int retry_after_ms);
extern void payout_store_record_verify(int64 id, bool ok, MonerooAnswer *answer,
									   int next_check_ms);

/* The whole row as a payouts composite, read with the latest snapshot. */
extern Datum payout_store_fetch(int64 id);

/* Status and Moneroo id of a row locked FOR UPDATE; false if absent. */
extern bool payout_store_lock(int64 id, char **status, char **moneroo_id);

/* unknown -> pending, for moneroo_retry */
extern void payout_store_requeue(int64 id);

#endif
