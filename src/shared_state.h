/*
 * shared_state.h
 *		What the worker and the backends share: the worker's latch, the
 *		rate limiter, counters for moneroo_status and the transfer slots.
 */
#ifndef MONEROO_SHARED_STATE_H
#define MONEROO_SHARED_STATE_H

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

/* After a 429 Moneroo asks for 60 seconds of silence. */
#define RATE_LIMIT_PAUSE_MS (60 * 1000)

#define LAST_ERROR_BYTES 512
#define DETAIL_BYTES 1024

/*
 * moneroo_transfer hands its request to the worker through one of these
 * slots and waits: the worker writes the row in its own transaction, so
 * the record of a payout survives the caller's rollback.
 */
#define TRANSFER_SLOTS 64
/*
 * A validated request is smaller: its strings are all bounded.  The worst
 * case is ten metadata values of 500 control characters, each escaped in
 * six bytes: about 34 kB.
 */
#define TRANSFER_REQUEST_BYTES 65536
#define REFERENCE_BYTES 37

/*
 * A slot's life.  The backend owns FREE -> RESERVED -> SUBMITTED and reads
 * DONE; the worker moves SUBMITTED -> CLAIMED -> SENDING -> DONE.  A caller
 * that leaves early turns CLAIMED into WITHDRAWN (the worker must not send
 * it: the caller got an error) and SENDING into ABANDONED (the request has
 * left: the worker records it and frees the slot).
 */
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
	Latch	   *backend_latch;
	char		reference[REFERENCE_BYTES];	/* chosen by the backend */
	int			verdict;		/* a SendVerdict once done */
	long		http_status;
	bool		worker_lost;	/* the worker restarted while sending */
	char		error[LAST_ERROR_BYTES];
	char		detail[DETAIL_BYTES];
	char		request[TRANSFER_REQUEST_BYTES];	/* jsonb as text */
} TransferSlot;

typedef struct MonerooShared
{
	slock_t		mutex;			/* protects every field below */
	pid_t		worker_pid;		/* 0 when no worker runs */
	Latch	   *worker_latch;

	/* the rate limiter: the earliest moment the next request may leave */
	TimestampTz next_request_at;
	TimestampTz paused_until;	/* after a 429, nobody sends until then */

	/* requests sent per second over the last minute, for moneroo_status */
	int64		second_of_bucket[60];
	int32		requests_in_bucket[60];

	int32		in_flight;
	char		last_error[LAST_ERROR_BYTES];
	TimestampTz last_error_at;

	TransferSlot transfers[TRANSFER_SLOTS];
} MonerooShared;

extern MonerooShared *moneroo_shared;

extern void moneroo_request_shared_memory(void);
extern void moneroo_init_shared_memory(void);

/* Sets the worker's latch, if a worker runs. */
extern void moneroo_wake_worker(void);

/* Milliseconds until a request may leave, without taking the place. */
extern long moneroo_rate_wait_ms(void);

/*
 * Takes a place for one request under moneroo.rate_limit and any 429
 * pause.  Returns 0 when the request may leave now (and counts it), or the
 * milliseconds to wait before asking again.
 */
extern long moneroo_rate_acquire(void);

/* After a 429: no request leaves for the next pause_ms. */
extern void moneroo_rate_pause(long pause_ms);

extern int	moneroo_requests_last_minute(void);
extern void moneroo_note_error(const char *error);

/* strlcpy that never cuts a multibyte character in two */
extern void moneroo_clip_copy(char *dst, const char *src, size_t size);

#endif
