/*
 * standby_wait.c
 *		How many standbys have a claim, read from the walsenders.
 *
 * PostgreSQL's own synchronous replication waits only for the standbys
 * synchronous_standby_names names, and a failover to any other standby
 * loses what it had not received.  A payout whose claim a standby lacks
 * would, after a failover to it, be pending again and sent a second time.
 * So the worker compares the end of its claim's commit record with the
 * flush position each walsender's standby last reported: a claim that
 * moneroo.claim_standbys standbys have flushed survives the failover to
 * any of them.
 *
 * Logical walsenders are left out: a subscriber that has a change is not a
 * standby that could be promoted.  They are the walsenders connected to a
 * database; a physical one has none.
 */
#include "postgres.h"

#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"

#include "common/settings.h"
#include "shmem/standby_wait.h"

static bool
is_physical(pid_t pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != NULL && !OidIsValid(proc->databaseId);
}

int
standbys_flushed(XLogRecPtr lsn, int *connected)
{
	int			flushed = 0;
	int			streaming = 0;

	for (int i = 0; WalSndCtl != NULL && i < max_wal_senders; i++)
	{
		WalSnd	   *sender = &WalSndCtl->walsnds[i];
		pid_t		pid;
		WalSndState state;
		XLogRecPtr	flush;

		SpinLockAcquire(&sender->mutex);
		pid = sender->pid;
		state = sender->state;
		flush = sender->flush;
		SpinLockRelease(&sender->mutex);

		if (pid == 0 || (state != WALSNDSTATE_STREAMING && state != WALSNDSTATE_CATCHUP) ||
			!is_physical(pid))
			continue;
		streaming++;
		if (flush != InvalidXLogRecPtr && flush >= lsn)
			flushed++;
	}
	if (connected)
		*connected = streaming;
	return flushed;
}

bool
standbys_too_few(int *streaming)
{
	*streaming = 0;
	if (moneroo_claim_standbys == 0)
		return false;
	(void) standbys_flushed(InvalidXLogRecPtr, streaming);
	return *streaming < moneroo_claim_standbys;
}
