/*
 * transfer_slots.h
 *		The hand-off of a moneroo_transfer request from its backend to the
 *		worker, through slots in shared memory.
 *
 * The worker writes the row in its own transaction, so the record of a
 * payout survives the caller's rollback.  A slot's life:
 *
 *   backend                          worker
 *   FREE -reserve-> RESERVED
 *        -submit-> SUBMITTED  ------take------> CLAIMED (row being recorded)
 *                                   -start_sending-> SENDING (request left)
 *                                   -release-> DONE (result in the slot)
 *   DONE -leave-> FREE
 *
 * A caller that leaves early (cancel, timeout, exit) turns CLAIMED into
 * WITHDRAWN, which the worker must not send (the caller got an error), and
 * SENDING into ABANDONED (the request has left: the worker records it and
 * frees the slot).  RESERVED, SUBMITTED and DONE it simply frees.
 */
#ifndef MONEROO_TRANSFER_SLOTS_H
#define MONEROO_TRANSFER_SLOTS_H

#include "storage/latch.h"

#include "common/message_text.h"
#include "moneroo/moneroo_api.h"

#define TRANSFER_SLOTS 64
/*
 * A validated request is smaller: its strings are all bounded.  The worst
 * case is ten metadata values of 500 control characters, each escaped in
 * six bytes: about 34 kB.
 */
#define TRANSFER_REQUEST_BYTES 65536
#define REFERENCE_BYTES 37
/* payouts.idempotency_key has at most 255 bytes (its CHECK) */
#define IDEMPOTENCY_KEY_BYTES 256

typedef enum TransferSlotState
{
	SLOT_FREE = 0,
	SLOT_RESERVED,				/* a backend is copying its request in */
	SLOT_SUBMITTED,				/* the backend waits; the worker has not begun */
	SLOT_CLAIMED,				/* the worker is recording it; not sent yet */
	SLOT_SENDING,				/* its request has left */
	SLOT_DONE,					/* the result is in the slot */
	SLOT_WITHDRAWN,				/* the caller left before it was sent */
	SLOT_ABANDONED				/* the caller left while it was being sent */
} TransferSlotState;

typedef struct TransferSlot
{
	TransferSlotState state;
	Oid			database;		/* whose worker takes it */
	Latch	   *backend_latch;
	char		reference[REFERENCE_BYTES];	/* chosen by the backend */
	char		created_by[NAMEDATALEN];	/* the calling role */
	bool		has_idempotency_key;
	char		idempotency_key[IDEMPOTENCY_KEY_BYTES];
	SendVerdict verdict;		/* once done */
	long		http_status;
	bool		worker_lost;	/* the worker restarted while sending */
	char		error[LAST_ERROR_BYTES];
	char		detail[DETAIL_BYTES];
	char		request[TRANSFER_REQUEST_BYTES];	/* jsonb as text */
} TransferSlot;

/* ---- the backend's side ---- */

/*
 * Waits, interruptibly, for a free slot, fills it with the request, the
 * calling role and the idempotency key (or NULL) and hands it to the worker.  The backend owns one slot at a time.
 */
extern TransferSlot *transfer_slot_submit(const char *reference, const char *request,
										  const char *created_by,
										  const char *idempotency_key);

extern TransferSlotState transfer_slot_state(TransferSlot *slot);

/*
 * Leaves the backend's slot, whatever the reason (see above).  Returns the
 * state it found; SLOT_FREE when it held none.
 */
extern TransferSlotState transfer_slot_leave(void);

/* ---- the worker's side ---- */

/* Only the slots of the worker's own database are its to take. */
extern bool transfer_slots_any_submitted(void);

/* SUBMITTED -> CLAIMED: true when slot i was waiting for this worker and is now its. */
extern bool transfer_slot_take(int i);

extern const TransferSlot *transfer_slot_at(int i);

/*
 * CLAIMED -> SENDING, the last moment its caller can withdraw: once the
 * slot says SENDING the caller is told the request left.  False when the
 * slot is no longer the worker's to send (withdrawn, which it frees, or
 * anything else): that request must never leave.
 */
extern bool transfer_slot_start_sending(int i);

/*
 * Writes the result into slot i, which the worker owns until it releases
 * it: no lock is needed.  error and detail may be NULL.
 */
extern void transfer_slot_note_result(int i, SendVerdict verdict, long http_status,
									  const char *error, const char *detail,
									  bool worker_lost);

/* Hands slot i back to its backend, or frees it if the backend left. */
extern void transfer_slot_release(int i);

/*
 * At the worker's start: the slots a previous worker of its database had
 * taken are finished as unknown.  Call once their rows are settled.
 */
extern void transfer_slots_release_orphans(void);

/* Registers the slots' shared memory; from _PG_init. */
extern void transfer_slots_shmem(void);

#endif
