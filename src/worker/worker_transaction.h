/*
 * worker_transaction.h
 *		The worker's short transactions.
 */
#ifndef MONEROO_WORKER_TRANSACTION_H
#define MONEROO_WORKER_TRANSACTION_H

#include "utils/elog.h"

/*
 * Runs fn(arg) in its own transaction.  An error is logged as a WARNING,
 * with its SQLSTATE, detail, hint and context and a line naming the
 * activity, kept as moneroo_status's last_error, and reported as false:
 * the worker goes on, and what fn was doing is retried later.
 */
extern bool worker_transaction(void (*fn) (void *), void *arg, const char *activity);

/*
 * The same, but an error is neither logged nor kept: it is returned in
 * *error (in the caller's memory context) for the caller to deal with.
 * With stop_cancels, a stop asked for (SIGTERM) cancels fn like
 * pg_cancel_backend() does: for code that may run long, a subscription's
 * handler, whose transaction is simply run again later.
 */
extern bool worker_transaction_try(void (*fn) (void *), void *arg, const char *activity,
								   bool stop_cancels, ErrorData **error);

/*
 * Whether the last worker_transaction that failed waited past lock_timeout
 * for a row someone else keeps locked: an obstacle of that row, not of the
 * database.
 */
extern bool worker_transaction_lock_timed_out(void);

/*
 * The worker's signals.  SIGINT (lock_timeout's, pg_cancel_backend's)
 * cancels the transaction being worked on, and nothing else; SIGTERM asks
 * the worker to stop and also ends a commit's wait for the synchronous
 * standbys, the commit made on this server only.
 */
extern void worker_transaction_sigint(SIGNAL_ARGS);
extern void worker_transaction_sigterm(SIGNAL_ARGS);

/* From now on the worker's commits do not wait for the standbys (on shutdown). */
extern void worker_transaction_stop_waiting(void);

#endif
