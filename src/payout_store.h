/*
 * payout_store.h
 *		Every write the extension makes to the payouts table.
 */
#ifndef MONEROO_PAYOUT_STORE_H
#define MONEROO_PAYOUT_STORE_H

#include "nodes/pg_list.h"

#include "moneroo_api.h"

/*
 * True while the extension itself writes payouts: the row guard lets only
 * these writes move a payout between states.
 */
extern bool moneroo_internal_write;

/* Schema of the moneroo extension, where payouts lives. */
extern Oid	payout_store_schema(void);

/* A payout the worker is about to send or verify. */
typedef struct PayoutWork
{
	int64		id;
	char	   *reference;
	char	   *request_body;	/* the initialize body, for a send */
	char	   *moneroo_id;		/* for a verification */
	int			verifications;
	int			transfer_slot;	/* moneroo_transfer's slot, or -1 for the queue */
} PayoutWork;

/*
 * A new row for moneroo_transfer, already claimed (status sending,
 * attempts 1), under the reference the caller chose.
 */
extern PayoutWork *payout_store_insert_sending(Jsonb *request, const char *reference);

/* Claims up to n due pending payouts: they are sending once committed. */
extern List *payout_store_claim(int n);

/*
 * Leases up to n sent payouts due for verification, pushing their next
 * check past the request's timeout so no one verifies them twice at once.
 */
extern List *payout_store_lease_verifications(int n, int lease_ms);

/* Milliseconds until the next retry or verification falls due; -1: none. */
extern long payout_store_next_due_ms(void);

/* After a crash: every row left sending becomes unknown. Returns how many. */
extern uint64 payout_store_settle_orphans(void);

/*
 * Records an initialize exchange.  A payout that provably never reached
 * Moneroo goes back to pending, retried after retry_after_ms, when requeue
 * is true (the queue), and to rejected otherwise (moneroo_transfer raised
 * an error: nothing may be sent behind the caller's back).  A sent payout
 * is scheduled for its first verification.  Returns the verdict recorded:
 * an "accepted" whose Moneroo id another payout carries is recorded unknown.
 */
extern SendVerdict payout_store_record_send(int64 id, const char *reference,
											SendVerdict verdict, MonerooAnswer *answer,
											int retry_after_ms, bool requeue);
/* Records a verification of a sent payout; final payouts stay as they are. */
extern void payout_store_record_verify(int64 id, const char *moneroo_id, bool ok,
									   MonerooAnswer *answer, int next_check_ms);

/* The whole row as a payouts composite, read with the latest snapshot. */
extern Datum payout_store_fetch(int64 id);
extern bool payout_store_fetch_by_reference(const char *reference, Datum *row);

/* Status and Moneroo id of a row, locked FOR UPDATE if asked; an error if absent. */
extern void payout_store_lookup(int64 id, bool for_update, char **status, char **moneroo_id);

/* Asks the worker to verify a sent payout at its next round. */
extern void payout_store_schedule_verification(int64 id);

/* Id of the payout that carries this Moneroo id; false if none does. */
extern bool payout_store_find_by_moneroo_id(const char *moneroo_id, int64 *id,
											char **status);

/* unknown -> pending, for moneroo_retry */
extern void payout_store_requeue(int64 id);

#endif
