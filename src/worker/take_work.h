/*
 * take_work.h
 *		The worker taking work: moneroo_transfer hand-offs, claims of queued
 *		payouts, leases of due verifications.
 */
#ifndef MONEROO_TAKE_WORK_H
#define MONEROO_TAKE_WORK_H

#include "worker/worker_state.h"

/*
 * Records each submitted moneroo_transfer as a sending row and puts it
 * first in line: a user is waiting for it.
 */
extern void take_transfers(WorkerState *ws);

/* While sends wait, a due verification gets one request in this many sends. */
#define TAKE_SENDS_PER_VERIFICATION 10

/*
 * Claims up to n pending payouts and starts what it can of them, unless a
 * due verification has its turn (see TAKE_SENDS_PER_VERIFICATION).
 * False when the claim failed: then nothing was taken.
 */
extern bool take_claim(WorkerState *ws, int n);

/* Leases up to n due verifications and starts them; false when the lease failed. */
extern bool take_verifications(WorkerState *ws, int n);

#endif
