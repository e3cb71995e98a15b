/*
 * shared_state.c
 *		The extension's shared memory: set up at server start, and the few
 *		things every process does with it.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "shared_state.h"

MonerooShared *moneroo_shared = NULL;

static shmem_request_hook_type previous_shmem_request = NULL;
static shmem_startup_hook_type previous_shmem_startup = NULL;

static void
request_shmem(void)
{
	if (previous_shmem_request)
		previous_shmem_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(MonerooShared)));
}

static void
startup_shmem(void)
{
	bool		found;

	if (previous_shmem_startup)
		previous_shmem_startup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	moneroo_shared = ShmemInitStruct("moneroo", sizeof(MonerooShared), &found);
	if (!found)
	{
		memset(moneroo_shared, 0, sizeof(MonerooShared));
		SpinLockInit(&moneroo_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
moneroo_request_shared_memory(void)
{
	previous_shmem_request = shmem_request_hook;
	shmem_request_hook = request_shmem;
}

void
moneroo_init_shared_memory(void)
{
	previous_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

void
moneroo_wake_worker(void)
{
	Latch	   *latch = NULL;

	if (moneroo_shared == NULL)
		return;
	SpinLockAcquire(&moneroo_shared->mutex);
	if (moneroo_shared->worker_pid != 0)
		latch = moneroo_shared->worker_latch;
	SpinLockRelease(&moneroo_shared->mutex);
	if (latch)
		SetLatch(latch);
}

void
moneroo_note_error(const char *error)
{
	char		clipped[LAST_ERROR_BYTES];

	if (moneroo_shared == NULL || error == NULL)
		return;
	text_clip_copy(clipped, error, LAST_ERROR_BYTES);
	SpinLockAcquire(&moneroo_shared->mutex);
	memcpy(moneroo_shared->last_error, clipped, LAST_ERROR_BYTES);
	moneroo_shared->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&moneroo_shared->mutex);
}
