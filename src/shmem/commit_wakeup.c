/*
 * commit_wakeup.c
 *		Wakes the worker when a transaction that queued payouts commits.
 *
 * The worker must see a payout the moment its transaction commits, not at
 * its next poll, and never before: a wake at insert time would find
 * nothing visible, and a rolled-back insert must send nothing.  The row
 * guard notes that this transaction queued something; the transaction
 * callback sets the worker's latch once, at commit.
 */
#include "postgres.h"

#include "access/xact.h"

#include "shmem/commit_wakeup.h"
#include "shmem/served_databases.h"

static bool queued_in_this_transaction = false;

void
moneroo_wake_worker_at_commit(void)
{
	queued_in_this_transaction = true;
}

static void
wake_on_commit(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (queued_in_this_transaction)
				moneroo_wake_worker();
			queued_in_this_transaction = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction wakes nobody; the poll finds it later */
			queued_in_this_transaction = false;
			break;
		default:
			break;
	}
}

void
moneroo_register_commit_wakeup(void)
{
	RegisterXactCallback(wake_on_commit, NULL);
}
