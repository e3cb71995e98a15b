/*
 * transfer_slots.c
 *		Every transition of a moneroo_transfer slot, from both sides; the
 *		state diagram is in transfer_slots.h.
 *
 * A slot's state changes only under the slots' own mutex, and only here.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/spin.h"
#include "utils/wait_event.h"

#include "common/wait_events.h"
#include "shmem/served_databases.h"
#include "shmem/shared_state.h"
#include "shmem/transfer_slots.h"


/* The slots' part of shared memory. */
typedef struct SlotsShared
{
	slock_t		mutex;			/* protects every slot's state */
	TransferSlot slots[TRANSFER_SLOTS];
} SlotsShared;

static SlotsShared *slots_shared = NULL;

void
transfer_slots_shmem(void)
{
	MONEROO_SHARED_PART("moneroo transfer slots", SlotsShared, &slots_shared);
}

/* The slot this backend waits on, so that leaving by any road frees it. */
static int	my_slot = -1;

static TransferSlot *
slot_at(int i)
{
	return &slots_shared->slots[i];
}

static void
leave_slot_at_exit(int code, Datum arg)
{
	(void) transfer_slot_leave();
}

/* Takes a free slot for this backend; NULL when all are taken. */
static TransferSlot *
reserve_free_slot(void)
{
	TransferSlot *slot = NULL;

	SpinLockAcquire(&slots_shared->mutex);
	for (int i = 0; i < TRANSFER_SLOTS && slot == NULL; i++)
	{
		if (slot_at(i)->state == SLOT_FREE)
		{
			slot = slot_at(i);
			slot->state = SLOT_RESERVED;
			my_slot = i;
		}
	}
	SpinLockRelease(&slots_shared->mutex);
	return slot;
}

static void
set_slot_state(TransferSlot *slot, TransferSlotState state)
{
	SpinLockAcquire(&slots_shared->mutex);
	slot->state = state;
	SpinLockRelease(&slots_shared->mutex);
}

TransferSlot *
transfer_slot_submit(const char *reference, const char *request, const char *created_by,
					 const char *idempotency_key)
{
	static bool exit_callback_registered = false;
	TransferSlot *slot;

	if (!exit_callback_registered)
	{
		before_shmem_exit(leave_slot_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	while ((slot = reserve_free_slot()) == NULL)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, moneroo_wait_event(MONEROO_WAIT_TRANSFER_SLOT));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* RESERVED: nobody else reads the slot until it is submitted */
	slot->database = MyDatabaseId;
	slot->backend_latch = MyLatch;
	strlcpy(slot->reference, reference, REFERENCE_BYTES);
	strlcpy(slot->request, request, TRANSFER_REQUEST_BYTES);
	strlcpy(slot->created_by, created_by, NAMEDATALEN);
	slot->has_idempotency_key = idempotency_key != NULL;
	strlcpy(slot->idempotency_key, idempotency_key ? idempotency_key : "", IDEMPOTENCY_KEY_BYTES);
	slot->error[0] = '\0';
	slot->detail[0] = '\0';
	set_slot_state(slot, SLOT_SUBMITTED);
	moneroo_wake_worker();
	return slot;
}

TransferSlotState
transfer_slot_state(TransferSlot *slot)
{
	TransferSlotState state;

	SpinLockAcquire(&slots_shared->mutex);
	state = slot->state;
	SpinLockRelease(&slots_shared->mutex);
	return state;
}

TransferSlotState
transfer_slot_leave(void)
{
	TransferSlot *slot;
	TransferSlotState found;

	if (my_slot < 0)
		return SLOT_FREE;
	slot = slot_at(my_slot);
	SpinLockAcquire(&slots_shared->mutex);
	found = slot->state;
	switch (found)
	{
		case SLOT_RESERVED:
		case SLOT_SUBMITTED:
		case SLOT_DONE:
			slot->state = SLOT_FREE;
			break;
		case SLOT_CLAIMED:
			slot->state = SLOT_WITHDRAWN;
			break;
		case SLOT_SENDING:
			slot->state = SLOT_ABANDONED;
			break;
		default:
			break;
	}
	SpinLockRelease(&slots_shared->mutex);
	my_slot = -1;
	return found;
}

bool
transfer_slots_any_submitted(void)
{
	/* an unlocked glance: a slot submitted meanwhile also sets our latch */
	for (int i = 0; i < TRANSFER_SLOTS; i++)
		if (slot_at(i)->state == SLOT_SUBMITTED && slot_at(i)->database == MyDatabaseId)
			return true;
	return false;
}

bool
transfer_slot_take(int i)
{
	bool		taken = false;

	SpinLockAcquire(&slots_shared->mutex);
	if (slot_at(i)->state == SLOT_SUBMITTED && slot_at(i)->database == MyDatabaseId)
	{
		slot_at(i)->state = SLOT_CLAIMED;
		taken = true;
	}
	SpinLockRelease(&slots_shared->mutex);
	return taken;
}

const TransferSlot *
transfer_slot_at(int i)
{
	return slot_at(i);
}

bool
transfer_slot_start_sending(int i)
{
	bool		claimed;

	SpinLockAcquire(&slots_shared->mutex);
	claimed = slot_at(i)->state == SLOT_CLAIMED;
	if (claimed)
		slot_at(i)->state = SLOT_SENDING;
	else if (slot_at(i)->state == SLOT_WITHDRAWN)
		slot_at(i)->state = SLOT_FREE;
	SpinLockRelease(&slots_shared->mutex);
	return claimed;
}

void
transfer_slot_note_result(int i, SendVerdict verdict, long http_status,
						  const char *error, const char *detail, bool worker_lost)
{
	TransferSlot *slot = slot_at(i);

	slot->verdict = verdict;
	slot->http_status = http_status;
	slot->worker_lost = worker_lost;
	text_clip_copy(slot->error, error ? error : "", LAST_ERROR_BYTES);
	text_clip_copy(slot->detail, detail ? detail : "", DETAIL_BYTES);
}

void
transfer_slot_release(int i)
{
	TransferSlot *slot = slot_at(i);
	Latch	   *latch = NULL;

	SpinLockAcquire(&slots_shared->mutex);
	if (slot->state == SLOT_ABANDONED || slot->state == SLOT_WITHDRAWN)
		slot->state = SLOT_FREE;
	else
	{
		slot->state = SLOT_DONE;
		latch = slot->backend_latch;
	}
	SpinLockRelease(&slots_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * The waiting backend looks its row up by reference, and finds none if
 * the previous worker's insert never committed.
 */
void
transfer_slots_release_orphans(void)
{
	for (int i = 0; i < TRANSFER_SLOTS; i++)
	{
		TransferSlotState found = transfer_slot_state(slot_at(i));

		if (slot_at(i)->database != MyDatabaseId)
			continue;
		if (found == SLOT_CLAIMED || found == SLOT_SENDING ||
			found == SLOT_ABANDONED || found == SLOT_WITHDRAWN)
		{
			transfer_slot_note_result(i, SEND_UNKNOWN, 0, NULL, NULL, true);
			transfer_slot_release(i);
		}
	}
}
