/*
 * recent_asks.c
 *		The Moneroo ids a webhook had Moneroo asked about lately.
 *
 * A signed webhook body has no timestamp and no nonce: whoever sees
 * deliveries can replay one as often as they like, and each delivery for
 * an unsettled payout or an id no row holds used to cost a request from
 * the one allowance of the account.  The ids asked about in the last
 * RECENT_ASK_MS are kept here (by a hash of the id: a collision only makes
 * one delivery wait for the worker's verification), so that the same id
 * is asked about at most once in that time, however many backends it is
 * delivered to at once.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "shmem/recent_asks.h"
#include "shmem/shared_state.h"

/* More distinct ids than this asked about within RECENT_ASK_MS are asked again. */
#define RECENT_ASKS 256

typedef struct RecentAsk
{
	uint64		id_hash;
	TimestampTz asked_at;
} RecentAsk;

typedef struct RecentAsksShared
{
	slock_t		mutex;			/* protects every field below */
	int			next;			/* the oldest slot, written next */
	RecentAsk	asks[RECENT_ASKS];
} RecentAsksShared;

static RecentAsksShared *recent = NULL;

void
recent_asks_shmem(void)
{
	MONEROO_SHARED_PART("moneroo recent asks", RecentAsksShared, &recent);
}

static uint64
id_hash(const char *moneroo_id)
{
	return hash_bytes_extended((const unsigned char *) moneroo_id, (int) strlen(moneroo_id), 0);
}

/* Hold the mutex.  The slot of a recent ask about hash, or NULL. */
static RecentAsk *
find_locked(uint64 hash, TimestampTz since)
{
	for (int i = 0; i < RECENT_ASKS; i++)
		if (recent->asks[i].id_hash == hash && recent->asks[i].asked_at > since)
			return &recent->asks[i];
	return NULL;
}

bool
recent_ask_claim(const char *moneroo_id, TimestampTz *asked_at)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		hash = id_hash(moneroo_id);
	RecentAsk  *ask;

	if (recent == NULL)
		return true;
	SpinLockAcquire(&recent->mutex);
	ask = find_locked(hash, TimestampTzPlusMilliseconds(now, -RECENT_ASK_MS));
	if (ask != NULL)
		*asked_at = ask->asked_at;
	else
	{
		recent->asks[recent->next] = (RecentAsk) {hash, now};
		recent->next = (recent->next + 1) % RECENT_ASKS;
	}
	SpinLockRelease(&recent->mutex);
	return ask == NULL;
}

void
recent_ask_forget(const char *moneroo_id)
{
	uint64		hash = id_hash(moneroo_id);
	RecentAsk  *ask;

	if (recent == NULL)
		return;
	SpinLockAcquire(&recent->mutex);
	ask = find_locked(hash, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -RECENT_ASK_MS));
	if (ask != NULL)
		ask->asked_at = 0;
	SpinLockRelease(&recent->mutex);
}
