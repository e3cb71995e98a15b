/*
 * shared_state.c
 *		The extension's shared memory, set up at server start, one part per
 *		module (see shared_state.h).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "shmem/shared_state.h"

/* More than the modules that own a part: a new one fails loudly at start. */
#define SHARED_PARTS_MAX 8

typedef struct SharedPart
{
	const char *name;
	Size		size;
	Size		mutex_offset;
	void	  **location;
} SharedPart;

static SharedPart parts[SHARED_PARTS_MAX];
static int	n_parts = 0;

static shmem_request_hook_type previous_shmem_request = NULL;
static shmem_startup_hook_type previous_shmem_startup = NULL;

void
moneroo_shared_part(const char *name, Size size, Size mutex_offset, void **location)
{
	if (!process_shared_preload_libraries_in_progress)
		elog(ERROR, "shared memory part \"%s\" requested outside shared_preload_libraries", name);
	if (n_parts >= SHARED_PARTS_MAX)
		elog(ERROR, "too many shared memory parts (at most %d)", SHARED_PARTS_MAX);
	parts[n_parts++] = (SharedPart) {name, size, mutex_offset, location};
}

static void
request_shmem(void)
{
	Size		total = 0;

	if (previous_shmem_request)
		previous_shmem_request();
	for (int i = 0; i < n_parts; i++)
		total = add_size(total, MAXALIGN(parts[i].size));
	RequestAddinShmemSpace(total);
}

static void
startup_shmem(void)
{
	if (previous_shmem_startup)
		previous_shmem_startup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < n_parts; i++)
	{
		bool		found;
		void	   *part = ShmemInitStruct(parts[i].name, parts[i].size, &found);

		if (!found)
		{
			memset(part, 0, parts[i].size);
			SpinLockInit((slock_t *) ((char *) part + parts[i].mutex_offset));
		}
		*parts[i].location = part;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
moneroo_shared_memory_hooks(void)
{
	previous_shmem_request = shmem_request_hook;
	shmem_request_hook = request_shmem;
	previous_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}
