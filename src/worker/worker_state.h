/*
 * worker_state.h
 *		What the worker keeps between rounds, shared by its parts: worker.c
 *		(the process and its loop), dispatch.c (taking work and starting
 *		requests) and record.c (writing what came back).
 */
#ifndef MONEROO_WORKER_STATE_H
#define MONEROO_WORKER_STATE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "moneroo/http_pool.h"

/*
 * After a failed claim, lease or request start (a read-only database, a key
 * file gone), the worker takes no new work for this long rather than fail
 * again at once.
 */
#define WORKER_FAILURE_PAUSE_MS (5 * 1000)

/* How often the worker folds moneroo_state_counts and learns settle times. */
#define WORKER_UPKEEP_MS (10 * 1000)

/* What a request in the pool is for (HttpCall.purpose). */
typedef enum CallPurpose
{
	PURPOSE_SEND,
	PURPOSE_VERIFY,
	PURPOSE_PROBE				/* the circuit breaker's: creates nothing */
} CallPurpose;

typedef struct WorkerState
{
	HttpPool   *pool;

	/*
	 * Parent of every PayoutWork (each in a context of its own, with its
	 * HttpCall) and home of the lists below, which live across rounds.
	 */
	MemoryContext work_context;
	/* Reset at the start of every round: what one round needs. */
	MemoryContext round_context;

	List	   *ready;			/* claimed sends waiting for the rate limiter */
	List	   *unrecorded;		/* finished calls whose result is not yet written */
	bool		more_pending;	/* a claim may find rows */
	bool		more_to_verify; /* a lease may find rows */
	bool		rate_refused;	/* this round: the limiter gave another database's worker its turn */
	bool		too_few_standbys;	/* fewer stream than claim_standbys: nothing is claimed */
	bool		standbys_warned;	/* ... and a due payout waits for them: said once */
	bool		copy_not_adopted;	/* a copied or restored database: nothing is claimed */
	int			sends_since_verification;
	int			record_failures;
	bool		record_blocked; /* a kept result failed for more than a locked row */
	TimestampTz next_record_retry;
	/* after a failed claim, lease or request start: no new work until then */
	TimestampTz paused_until;
	long		locked_backoff_ms;	/* due rows that others hold locked */
	TimestampTz next_upkeep;	/* counts folded, settle times learned */
	bool		extension_here; /* as last seen */
} WorkerState;

#endif
