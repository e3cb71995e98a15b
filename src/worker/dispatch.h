/*
 * dispatch.h
 *		The worker starting its requests: places under max_concurrency and
 *		the rate limit, sends, verifications and the probe, and what never
 *		left going back.
 */
#ifndef MONEROO_DISPATCH_H
#define MONEROO_DISPATCH_H

#include "worker/worker_state.h"

/*
 * Sends and verifications that may start now: moneroo.max_concurrency
 * less those in flight, or what the account's health allows.
 */
extern int	dispatch_send_capacity(WorkerState *ws);
extern int	dispatch_verify_capacity(WorkerState *ws);

/* How many requests the rate limiter lets through in the next 100 ms. */
extern int	dispatch_rate_allowance(void);

/* Starts the ready sends that capacity and the rate limiter allow. */
extern void dispatch_start_ready_sends(WorkerState *ws);

/* The first claimed send waits for moneroo.claim_standbys standbys. */
extern bool dispatch_waiting_for_standbys(WorkerState *ws);

/* When a pause of the account is over, sends the probe that ends it. */
extern void dispatch_probe(WorkerState *ws);

/*
 * Claimed payouts that never left go back to the queue, or, for a waiting
 * moneroo_transfer, are refused so its caller gets an error: at shutdown,
 * and when the account pauses (then the attempt does not count).
 */
extern void dispatch_return_unsent(WorkerState *ws, const char *why, bool uncounted);

/*
 * After a failed claim, lease or request start: the worker takes no new
 * work for WORKER_FAILURE_PAUSE_MS, which it returns.
 */
extern long dispatch_pause_after_failure(WorkerState *ws);

/*
 * A place for one request of purpose under max_concurrency (every worker's
 * requests counted) and the rate limit; false when there is none.
 */
extern bool dispatch_take_request_place(WorkerState *ws, CallPurpose purpose);

/* Work taken in the round's context is the worker's to keep from now on. */
extern void dispatch_keep_work(WorkerState *ws, PayoutWork *work);

/* Starts the verify request of work (inside the transaction that leased it). */
extern void dispatch_start_verification(WorkerState *ws, PayoutWork *work);

/* Starts the connects of the requests just added, without waiting for an answer. */
extern void dispatch_let_requests_leave(WorkerState *ws);

/* Tells moneroo_status how many requests the worker has in hand. */
extern void dispatch_publish_in_flight(WorkerState *ws);

#endif
