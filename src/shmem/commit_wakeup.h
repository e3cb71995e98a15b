/*
 * commit_wakeup.h
 *		Wakes the worker when a transaction that queued payouts commits.
 */
#ifndef MONEROO_COMMIT_WAKEUP_H
#define MONEROO_COMMIT_WAKEUP_H

/* Called for each queued row; the wake itself happens at commit. */
extern void moneroo_wake_worker_at_commit(void);

extern void moneroo_register_commit_wakeup(void);

#endif
