/*
 * record.h
 *		The worker writing what Moneroo answered into payouts.
 */
#ifndef MONEROO_RECORD_H
#define MONEROO_RECORD_H

#include "worker/worker_state.h"

/*
 * Writes every finished call.  Those the database refuses to take are
 * kept and retried with a growing delay; those whose row another
 * transaction keeps locked too, but they do not stop new work.
 */
extern void record_finished(WorkerState *ws);

/*
 * Milliseconds until kept results may be written again; 0 when none wait
 * or they may be written now.
 */
extern long record_retry_wait_ms(WorkerState *ws);

/*
 * Whether results wait to be written for a reason beyond a locked row: no
 * new work is taken until they are.
 */
extern bool record_pending(WorkerState *ws);

/* The backoff between two attempts at writing kept results, shortest first. */
#define RECORD_RETRY_MIN_MS 500
#define RECORD_RETRY_MAX_MS (30 * 1000)

#endif
