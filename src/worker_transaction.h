/*
 * worker_transaction.h
 *		The worker's short transactions.
 */
#ifndef MONEROO_WORKER_TRANSACTION_H
#define MONEROO_WORKER_TRANSACTION_H

/*
 * Runs fn(arg) in its own transaction.  An error is logged as a WARNING,
 * with its SQLSTATE, detail, hint and context and a line naming the
 * activity, kept as moneroo_status's last_error, and reported as false:
 * the worker goes on, and what fn was doing is retried later.
 */
extern bool worker_transaction(void (*fn) (void *), void *arg, const char *activity);

#endif
