/*
 * wait_events.c
 *		The names of moneroo's wait events (see wait_events.h).
 */
#include "postgres.h"

#include "utils/wait_event.h"

#include "compat/compat.h"
#include "common/wait_events.h"

static const char *const wait_event_names[MONEROO_WAIT_COUNT] = {
	[MONEROO_WAIT_LAUNCHER] = "MonerooLauncherMain",
	[MONEROO_WAIT_WORKER] = "MonerooWorkerMain",
	[MONEROO_WAIT_ANSWERS] = "MonerooWorkerAnswers",
	[MONEROO_WAIT_WORKER_STOP] = "MonerooWorkerStop",
	[MONEROO_WAIT_DROP_DATABASE] = "MonerooDropDatabase",
	[MONEROO_WAIT_TRANSFER_SLOT] = "MonerooTransferSlot",
	[MONEROO_WAIT_TRANSFER] = "MonerooTransfer",
	[MONEROO_WAIT_RATE_LIMIT] = "MonerooRateLimit",
	[MONEROO_WAIT_REQUEST] = "MonerooRequest",
};

/*
 * Each backend learns an event's number once: WaitEventExtensionNew looks
 * the name up in shared memory under a lock, too dear for every wait.  0 is
 * never an extension wait event's number (its class is in the high byte).
 */
static uint32 wait_event_info[MONEROO_WAIT_COUNT];

uint32
moneroo_wait_event(MonerooWait wait)
{
	Assert(wait >= 0 && wait < MONEROO_WAIT_COUNT);
	if (wait_event_info[wait] == 0)
		wait_event_info[wait] = WaitEventExtensionNew(wait_event_names[wait]);
	return wait_event_info[wait];
}
