/*
 * served_databases.c
 *		The entries of the served databases in shared memory, from the
 *		launcher's, the workers' and the backends' side.
 *
 * Every field is read and written under MonerooShared's mutex, and only
 * here.  An entry belongs to the launcher, which takes and forgets it; its
 * worker fills in what it shows; backends only wake, flag and read.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "served_databases.h"
#include "shared_state.h"
#include "wait_events.h"

/* The entry this process works for, when it is a worker. */
static int	my_entry = -1;

static ServedDatabase *
entry_at(int i)
{
	return &moneroo_shared->served[i];
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

	SpinLockAcquire(&moneroo_shared->mutex);
	set = *latch;
	SpinLockRelease(&moneroo_shared->mutex);
	if (set)
		SetLatch(set);
}

void
moneroo_wake_worker(void)
{
	ServedDatabase *entry;
	Latch	   *latch = NULL;

	if (moneroo_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry && entry->worker_pid != 0)
		latch = entry->worker_latch;
	SpinLockRelease(&moneroo_shared->mutex);
	if (latch)
		SetLatch(latch);
}

void
moneroo_note_error(const char *error)
{
	char		clipped[LAST_ERROR_BYTES];
	ServedDatabase *entry;

	if (moneroo_shared == NULL || error == NULL)
		return;
	text_clip_copy(clipped, error, LAST_ERROR_BYTES);
	SpinLockAcquire(&moneroo_shared->mutex);
	entry = my_entry >= 0 ? entry_at(my_entry) : entry_of(MyDatabaseId);
	if (entry)
	{
		memcpy(entry->last_error, clipped, LAST_ERROR_BYTES);
		entry->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&moneroo_shared->mutex);
}

bool
served_worker_running(void)
{
	ServedDatabase *entry;
	bool		running;

	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(MyDatabaseId);
	running = entry != NULL && entry->worker_pid != 0;
	SpinLockRelease(&moneroo_shared->mutex);
	return running;
}

void
served_worker_info(ServedWorkerInfo *info)
{
	ServedDatabase *entry;

	memset(info, 0, sizeof(*info));
	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry)
	{
		info->worker_pid = entry->worker_pid;
		info->in_flight = entry->worker_pid != 0 ? entry->in_flight : 0;
		memcpy(info->last_error, entry->last_error, LAST_ERROR_BYTES);
		info->last_error_at = entry->last_error_at;
	}
	SpinLockRelease(&moneroo_shared->mutex);
}

void
served_wake_launcher(void)
{
	set_latch_of(&moneroo_shared->launcher_latch);
}

void
served_note_extension_change(void)
{
	ServedDatabase *entry;
	Latch	   *worker = NULL;

	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(MyDatabaseId);
	if (entry)
	{
		entry->extension_absent = false;
		entry->extension_changed = true;
		worker = entry->worker_pid != 0 ? entry->worker_latch : NULL;
	}
	SpinLockRelease(&moneroo_shared->mutex);
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

	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(database);
	if (entry)
	{
		entry->being_dropped = true;
		pid = entry->worker_pid;
	}
	SpinLockRelease(&moneroo_shared->mutex);
	if (pid == 0)
		return;

	/* SIGTERM: it sees its requests in flight through and records them */
	(void) kill(pid, SIGTERM);
	while (GetCurrentTimestamp() < deadline)
	{
		SpinLockAcquire(&moneroo_shared->mutex);
		pid = entry->database == database ? entry->worker_pid : 0;
		SpinLockRelease(&moneroo_shared->mutex);
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

	SpinLockAcquire(&moneroo_shared->mutex);
	entry = entry_of(database);
	if (entry)
		entry->being_dropped = false;
	SpinLockRelease(&moneroo_shared->mutex);
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
	SpinLockRelease(&moneroo_shared->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(waiting[i]);
}

static void
detach_worker(int code, Datum arg)
{
	ServedDatabase *entry = entry_at(my_entry);

	SpinLockAcquire(&moneroo_shared->mutex);
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

	SpinLockAcquire(&moneroo_shared->mutex);
	if (entry->worker_pid != 0)
	{
		SpinLockRelease(&moneroo_shared->mutex);
		return InvalidOid;
	}
	database = entry->database;
	entry->worker_pid = MyProcPid;
	entry->worker_latch = MyLatch;
	entry->worker_ready = false;
	entry->extension_changed = false;
	entry->requests = 0;
	entry->in_flight = 0;
	SpinLockRelease(&moneroo_shared->mutex);
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
	SpinLockAcquire(&moneroo_shared->mutex);
	entry_at(my_entry)->worker_ready = true;
	SpinLockRelease(&moneroo_shared->mutex);
}

void
served_worker_found_no_extension(void)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	/* unless a CREATE EXTENSION committed since it looked */
	if (!entry_at(my_entry)->extension_changed)
		entry_at(my_entry)->extension_absent = true;
	SpinLockRelease(&moneroo_shared->mutex);
}

bool
served_worker_take_extension_change(void)
{
	bool		changed;

	SpinLockAcquire(&moneroo_shared->mutex);
	changed = entry_at(my_entry)->extension_changed;
	entry_at(my_entry)->extension_changed = false;
	SpinLockRelease(&moneroo_shared->mutex);
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

	SpinLockAcquire(&moneroo_shared->mutex);
	taken = requests_locked() < limit;
	if (taken)
		entry_at(my_entry)->requests++;
	else
		entry_at(my_entry)->waiting_for_place = true;
	SpinLockRelease(&moneroo_shared->mutex);
	return taken;
}

void
served_wait_for_place(void)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	entry_at(my_entry)->waiting_for_place = true;
	SpinLockRelease(&moneroo_shared->mutex);
}

/*
 * One database's backlog must not hold another's payout back for long:
 * when a place at the limiter frees, the worker that has waited longest
 * takes it.  One that stopped asking (it found other work, or stopped)
 * loses its turn after still_asking_us.
 */
bool
served_rate_turn_of_another_locked(TimestampTz now, int64 still_asking_us)
{
	TimestampTz mine;

	if (my_entry < 0)
		return false;
	mine = entry_at(my_entry)->rate_waiting_since;
	for (int i = 0; i < SERVED_DATABASES_MAX; i++)
	{
		ServedDatabase *other = entry_at(i);

		if (i == my_entry || other->worker_pid == 0 || other->rate_waiting_since == 0 ||
			other->rate_asked_at < now - still_asking_us)
			continue;
		if (mine == 0 || other->rate_waiting_since < mine)
			return true;
	}
	return false;
}

void
served_rate_asked_locked(TimestampTz now, bool granted)
{
	ServedDatabase *entry;

	if (my_entry < 0)
		return;
	entry = entry_at(my_entry);
	entry->rate_asked_at = now;
	if (granted)
		entry->rate_waiting_since = 0;
	else if (entry->rate_waiting_since == 0)
		entry->rate_waiting_since = now;
}

void
served_publish_in_flight(int requests, int shown)
{
	bool		gave_back;

	SpinLockAcquire(&moneroo_shared->mutex);
	gave_back = requests < entry_at(my_entry)->requests;
	entry_at(my_entry)->requests = requests;
	entry_at(my_entry)->in_flight = shown;
	if (gave_back)
		release_and_wake_waiting();
	else
		SpinLockRelease(&moneroo_shared->mutex);
}

int
served_requests_in_flight(void)
{
	int			total;

	SpinLockAcquire(&moneroo_shared->mutex);
	total = requests_locked();
	SpinLockRelease(&moneroo_shared->mutex);
	return total;
}

/* ---- the launcher ---- */

int
served_entry_for(Oid database, const char *name)
{
	int			found = -1;

	SpinLockAcquire(&moneroo_shared->mutex);
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
	SpinLockRelease(&moneroo_shared->mutex);
	return found;
}

void
served_entry_copy(int entry, ServedDatabase *copy)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	memcpy(copy, entry_at(entry), sizeof(ServedDatabase));
	SpinLockRelease(&moneroo_shared->mutex);
}

void
served_entry_forget(int entry)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	memset(entry_at(entry), 0, sizeof(ServedDatabase));
	SpinLockRelease(&moneroo_shared->mutex);
}

void
served_entry_starting(int entry)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	entry_at(entry)->worker_ready = false;
	SpinLockRelease(&moneroo_shared->mutex);
}

static void
detach_launcher(int code, Datum arg)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	if (moneroo_shared->launcher_pid == MyProcPid)
	{
		moneroo_shared->launcher_pid = 0;
		moneroo_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&moneroo_shared->mutex);
}

void
served_launcher_attach(void)
{
	SpinLockAcquire(&moneroo_shared->mutex);
	moneroo_shared->launcher_pid = MyProcPid;
	moneroo_shared->launcher_latch = MyLatch;
	SpinLockRelease(&moneroo_shared->mutex);
	before_shmem_exit(detach_launcher, (Datum) 0);
}
