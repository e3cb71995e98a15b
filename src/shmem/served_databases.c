/*
 * served_databases.c
 *		The entries of the served databases in shared memory, from the
 *		launcher's, the workers' and the backends' side.
 *
 * Every field is read and written under the part's own mutex, and only
 * here.  An entry belongs to the launcher, which takes and forgets it; its
 * worker fills in what it shows; backends only wake, flag and read.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/wait_events.h"
#include "shmem/served_databases.h"
#include "shmem/shared_state.h"


/* The served databases' part of shared memory, and the launcher's address. */
typedef struct ServedShared
{
	slock_t		mutex;			/* protects every field below */
	pid_t		launcher_pid;	/* 0 when the launcher does not run */
	Latch	   *launcher_latch;
	ServedDatabase entries[SERVED_DATABASES_MAX];
} ServedShared;

static ServedShared *served_shared = NULL;

void
served_databases_shmem(void)
{
	MONEROO_SHARED_PART("moneroo served databases", ServedShared, &served_shared);
}

/* The entry this process works for, when it is a worker. */
static int	my_entry = -1;

static ServedDatabase *
entry_at(int i)
{
	return &served_shared->entries[i];
}

/* The entry of database; NULL if it has none.  Hold the mutex. */
static ServedDatabase *
entry_of(Oid database)
{
	for (int i = 0; i < SERVED_DATABASES_MAX; i++)
		if (entry_at(i)->database == database)
			return entry_at(i);
	return NULL;
}

/* ---- any process ---- */

static void
set_latch_of(Latch **latch)
{
	Latch	   *set = NULL;

	SpinLockAcquire(&served_shared->mutex);
	set = *latch;
	SpinLockRelease(&served_shared->mutex);
	if (set)
		SetLatch(set);
}

void
moneroo_wake_worker(void)
{
	ServedDatabase *entry;
	Latch	   *latch = NULL;

	if (served_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry && entry->worker_pid != 0)
		latch = entry->worker_latch;
	SpinLockRelease(&served_shared->mutex);
	if (latch)
		SetLatch(latch);
}

void
moneroo_note_error(const char *error)
{
	char		clipped[LAST_ERROR_BYTES];
	ServedDatabase *entry;

	if (served_shared == NULL || error == NULL)
		return;
	text_clip_copy(clipped, error, LAST_ERROR_BYTES);
	SpinLockAcquire(&served_shared->mutex);
	entry = my_entry >= 0 ? entry_at(my_entry) : entry_of(MyDatabaseId);
	if (entry)
	{
		memcpy(entry->last_error, clipped, LAST_ERROR_BYTES);
		entry->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&served_shared->mutex);
}

bool
served_worker_running(void)
{
	ServedDatabase *entry;
	bool		running;

	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(MyDatabaseId);
	running = entry != NULL && entry->worker_pid != 0;
	SpinLockRelease(&served_shared->mutex);
	return running;
}

void
served_worker_info(ServedWorkerInfo *info)
{
	ServedDatabase *entry;

	memset(info, 0, sizeof(*info));
	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry)
	{
		info->worker_pid = entry->worker_pid;
		info->in_flight = entry->worker_pid != 0 ? entry->in_flight : 0;
		memcpy(info->last_error, entry->last_error, LAST_ERROR_BYTES);
		info->last_error_at = entry->last_error_at;
	}
	SpinLockRelease(&served_shared->mutex);
}

void
served_wake_launcher(void)
{
	set_latch_of(&served_shared->launcher_latch);
}

void
served_note_extension_change(void)
{
	ServedDatabase *entry;
	Latch	   *worker = NULL;

	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry)
	{
		entry->extension_absent = false;
		entry->extension_changed = true;
		worker = entry->worker_pid != 0 ? entry->worker_latch : NULL;
	}
	SpinLockRelease(&served_shared->mutex);
	if (worker)
		SetLatch(worker);
	served_wake_launcher();
}

void
served_stop_for_drop(Oid database, long wait_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	ServedDatabase *entry;
	pid_t		pid = 0;

	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(database);
	if (entry)
	{
		entry->being_dropped = true;
		pid = entry->worker_pid;
	}
	SpinLockRelease(&served_shared->mutex);
	if (pid == 0)
		return;

	/* SIGTERM: it sees its requests in flight through and records them */
	(void) kill(pid, SIGTERM);
	while (GetCurrentTimestamp() < deadline)
	{
		SpinLockAcquire(&served_shared->mutex);
		pid = entry->database == database ? entry->worker_pid : 0;
		SpinLockRelease(&served_shared->mutex);
		if (pid == 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 moneroo_wait_event(MONEROO_WAIT_DROP_DATABASE));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
served_drop_finished(Oid database)
{
	ServedDatabase *entry;

	SpinLockAcquire(&served_shared->mutex);
	entry = entry_of(database);
	if (entry)
		entry->being_dropped = false;
	SpinLockRelease(&served_shared->mutex);
	served_wake_launcher();
}

/* ---- the worker ---- */

/*
 * Sets the latches of the workers waiting for a place under
 * max_concurrency, after this one gave places back.  Called with the mutex
 * held, which it releases: latches are set outside it.
 */
static void
release_and_wake_waiting(void)
{
	Latch	   *waiting[SERVED_DATABASES_MAX];
	int			n = 0;

	for (int i = 0; i < SERVED_DATABASES_MAX; i++)
	{
		ServedDatabase *other = entry_at(i);

		if (i == my_entry || !other->waiting_for_place || other->worker_pid == 0)
			continue;
		other->waiting_for_place = false;
		waiting[n++] = other->worker_latch;
	}
	SpinLockRelease(&served_shared->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(waiting[i]);
}

static void
detach_worker(int code, Datum arg)
{
	ServedDatabase *entry = entry_at(my_entry);

	SpinLockAcquire(&served_shared->mutex);
	if (entry->worker_pid == MyProcPid)
	{
		entry->worker_pid = 0;
		entry->worker_latch = NULL;
		entry->requests = 0;
		entry->in_flight = 0;
		entry->waiting_for_place = false;
	}
	release_and_wake_waiting();
	served_wake_launcher();
}

Oid
served_worker_attach(int entry_index)
{
	ServedDatabase *entry = entry_at(entry_index);
	Oid			database;

	SpinLockAcquire(&served_shared->mutex);
	if (entry->worker_pid != 0)
	{
		SpinLockRelease(&served_shared->mutex);
		return InvalidOid;
	}
	database = entry->database;
	entry->worker_pid = MyProcPid;
	entry->worker_latch = MyLatch;
	entry->worker_ready = false;
	entry->extension_changed = false;
	entry->requests = 0;
	entry->in_flight = 0;
	SpinLockRelease(&served_shared->mutex);
	my_entry = entry_index;
	before_shmem_exit(detach_worker, (Datum) 0);
	return database;
}

const char *
served_worker_database_name(void)
{
	return entry_at(my_entry)->name;	/* set before the worker started */
}

void
served_worker_ready(void)
{
	SpinLockAcquire(&served_shared->mutex);
	entry_at(my_entry)->worker_ready = true;
	SpinLockRelease(&served_shared->mutex);
}

void
served_worker_found_no_extension(void)
{
	SpinLockAcquire(&served_shared->mutex);
	/* unless a CREATE EXTENSION committed since it looked */
	if (!entry_at(my_entry)->extension_changed)
		entry_at(my_entry)->extension_absent = true;
	SpinLockRelease(&served_shared->mutex);
}

bool
served_worker_take_extension_change(void)
{
	bool		changed;

	SpinLockAcquire(&served_shared->mutex);
	changed = entry_at(my_entry)->extension_changed;
	entry_at(my_entry)->extension_changed = false;
	SpinLockRelease(&served_shared->mutex);
	return changed;
}

static int
requests_locked(void)
{
	int			total = 0;

	for (int i = 0; i < SERVED_DATABASES_MAX; i++)
		if (entry_at(i)->worker_pid != 0)
			total += entry_at(i)->requests;
	return total;
}

bool
served_take_request_place(int limit)
{
	bool		taken;

	SpinLockAcquire(&served_shared->mutex);
	taken = requests_locked() < limit;
	if (taken)
		entry_at(my_entry)->requests++;
	else
		entry_at(my_entry)->waiting_for_place = true;
	SpinLockRelease(&served_shared->mutex);
	return taken;
}

void
served_wait_for_place(void)
{
	SpinLockAcquire(&served_shared->mutex);
	entry_at(my_entry)->waiting_for_place = true;
	SpinLockRelease(&served_shared->mutex);
}

int
served_my_index(void)
{
	return my_entry;
}

void
served_publish_in_flight(int requests, int shown)
{
	bool		gave_back;

	SpinLockAcquire(&served_shared->mutex);
	gave_back = requests < entry_at(my_entry)->requests;
	entry_at(my_entry)->requests = requests;
	entry_at(my_entry)->in_flight = shown;
	if (gave_back)
		release_and_wake_waiting();
	else
		SpinLockRelease(&served_shared->mutex);
}

int
served_requests_in_flight(void)
{
	int			total;

	SpinLockAcquire(&served_shared->mutex);
	total = requests_locked();
	SpinLockRelease(&served_shared->mutex);
	return total;
}

/* ---- the launcher ---- */

int
served_entry_for(Oid database, const char *name)
{
	int			found = -1;

	SpinLockAcquire(&served_shared->mutex);
	for (int i = 0; i < SERVED_DATABASES_MAX && found < 0; i++)
		if (entry_at(i)->database == database)
			found = i;
	for (int i = 0; i < SERVED_DATABASES_MAX && found < 0; i++)
	{
		if (entry_at(i)->database == InvalidOid)
		{
			memset(entry_at(i), 0, sizeof(ServedDatabase));
			entry_at(i)->database = database;
			found = i;
		}
	}
	/* a rename keeps the database; the worker's messages use the new name */
	if (found >= 0)
		strlcpy(entry_at(found)->name, name, NAMEDATALEN);
	SpinLockRelease(&served_shared->mutex);
	return found;
}

void
served_entry_copy(int entry, ServedDatabase *copy)
{
	SpinLockAcquire(&served_shared->mutex);
	memcpy(copy, entry_at(entry), sizeof(ServedDatabase));
	SpinLockRelease(&served_shared->mutex);
}

void
served_entry_forget(int entry)
{
	SpinLockAcquire(&served_shared->mutex);
	memset(entry_at(entry), 0, sizeof(ServedDatabase));
	SpinLockRelease(&served_shared->mutex);
}

void
served_entry_starting(int entry)
{
	SpinLockAcquire(&served_shared->mutex);
	entry_at(entry)->worker_ready = false;
	SpinLockRelease(&served_shared->mutex);
}

static void
detach_launcher(int code, Datum arg)
{
	SpinLockAcquire(&served_shared->mutex);
	if (served_shared->launcher_pid == MyProcPid)
	{
		served_shared->launcher_pid = 0;
		served_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&served_shared->mutex);
}

void
served_launcher_attach(void)
{
	SpinLockAcquire(&served_shared->mutex);
	served_shared->launcher_pid = MyProcPid;
	served_shared->launcher_latch = MyLatch;
	SpinLockRelease(&served_shared->mutex);
	before_shmem_exit(detach_launcher, (Datum) 0);
}
