/*
 * payout_store.h
 *		Every write the extension makes to the payouts table.
 */
#ifndef MONEROO_PAYOUT_STORE_H
#define MONEROO_PAYOUT_STORE_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "moneroo/moneroo_api.h"

/*
 * A payout the worker is about to send or verify.  It lives in a memory
 * context of its own, with its strings and its HttpCall: freeing it is one
 * call.
 */
typedef struct PayoutWork
{
	MemoryContext context;
	int64		id;
	char	   *reference;
	char	   *request_body;	/* the initialize body, for a send */
	char	   *moneroo_id;		/* for a verification */
	char	   *method;			/* its payout method: the verification schedule learns per method */
	int			verifications;
	int			transfer_slot;	/* moneroo_transfer's slot, or -1 for the queue */
	XLogRecPtr	claim_lsn;		/* the end of its claim's commit (claim_standbys) */
	TimestampTz claimed_at;
} PayoutWork;

extern PayoutWork *payout_work_new(MemoryContext parent);
extern void payout_work_free(PayoutWork *work);

/*
 * A new row for moneroo_transfer, already claimed (status sending,
 * attempts 1), under the reference and idempotency key (or NULL) the
 * caller chose.  Its work is made under parent.
 */
extern PayoutWork *payout_store_insert_sending(Jsonb *request, const char *reference,
											   const char *idempotency_key,
											   MemoryContext parent);

/*
 * Claims up to n due pending payouts: they are sending once committed.
 * The list is in the current context, each work under parent.
 */
extern List *payout_store_claim(int n, MemoryContext parent);

/*
 * Leases up to n sent payouts due for verification, pushing their next
 * check past the request's timeout so no one verifies them twice at once.
 */
extern List *payout_store_lease_verifications(int n, int lease_ms, MemoryContext parent);

/*
 * Gives back the lease of a payout whose verification could not leave
 * (max_concurrency or the rate limit had no place after all): due again now,
 * rather than when the lease would have expired.
 */
extern void payout_store_unlease(int64 id);

/* After a crash: every row left sending becomes unknown. Returns how many. */
extern uint64 payout_store_settle_orphans(void);

/*
 * Records an initialize exchange.  A payout that provably never reached
 * Moneroo goes back to pending, retried after next_attempt_ms, when requeue
 * is true (the queue), and to rejected otherwise (moneroo_transfer raised
 * an error: nothing may be sent behind the caller's back).  A sent payout
 * is first verified after next_attempt_ms.  Returns the verdict recorded:
 * an "accepted" whose Moneroo id another payout carries is recorded unknown.
 */
extern SendVerdict payout_store_record_send(int64 id, const char *reference,
											SendVerdict verdict, MonerooAnswer *answer,
											int next_attempt_ms, bool requeue);

/* Records a verification of a sent payout; final payouts stay as they are. */
extern void payout_store_record_verify(int64 id, const char *moneroo_id, bool ok,
									   MonerooAnswer *answer, int next_check_ms);

/* Asks the worker to verify a sent payout at its first round after at. */
extern void payout_store_schedule_verification(int64 id, TimestampTz at);

/* unknown -> pending, for moneroo_retry */
extern void payout_store_requeue(int64 id);

/* held -> pending, by approver; false when the row was no longer held. */
extern bool payout_store_approve(int64 id, const char *approver);

/* from -> cancelled, by actor; false when the row was no longer in from. */
extern bool payout_store_cancel(int64 id, PayoutStatus from, const char *actor);

/*
 * A final payout in status, marked as dealt with by actor, who says how
 * in note (its event: the row guard).  False when the row was no longer
 * in status or was already acknowledged.
 */
extern bool payout_store_acknowledge(int64 id, PayoutStatus status, const char *actor,
									 const char *note);

/*
 * from -> what Moneroo's verify answer says (sent, success, failed): the
 * row takes Moneroo's id and status, for a payout Moneroo turned out to
 * have.  why goes into last_error.  False when the row was no longer in
 * from.
 */
extern bool payout_store_adopt(int64 id, PayoutStatus from, const char *moneroo_id,
							   MonerooAnswer *answer, const char *why);

#endif
