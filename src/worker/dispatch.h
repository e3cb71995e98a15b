/*
 * dispatch.h
 *		The worker taking work and starting its requests: moneroo_transfer
 *		hand-offs, claims of queued payouts, leases of verifications.
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

/*
 * Records each submitted moneroo_transfer as a sending row and puts it
 * first in line: a user is waiting for it.
 */
extern void dispatch_take_transfers(WorkerState *ws);

/* Starts the ready sends that capacity and the rate limiter allow. */
extern void dispatch_start_ready_sends(WorkerState *ws);

/* The first claimed send waits for moneroo.claim_standbys standbys. */
extern bool dispatch_waiting_for_standbys(WorkerState *ws);

/* While sends wait, a due verification gets one request in this many sends. */
#define DISPATCH_SENDS_PER_VERIFICATION 10

/*
 * Claims up to n pending payouts and starts what it can of them, unless a
 * due verification has its turn (see DISPATCH_SENDS_PER_VERIFICATION).
 * False when the claim failed: then nothing was taken.
 */
extern bool dispatch_claim(WorkerState *ws, int n);

/* Leases up to n due verifications and starts them; false when the lease failed. */
extern bool dispatch_lease_verifications(WorkerState *ws, int n);

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

/* Tells moneroo_status how many requests the worker has in hand. */
extern void dispatch_publish_in_flight(WorkerState *ws);

#endif
