/*
 * shared_state.c
 *		The extension's shared memory, set up at server start.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "shmem/shared_state.h"

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
