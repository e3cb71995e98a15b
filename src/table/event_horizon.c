/*
 * event_horizon.c
 *		How far payout_events can be read in id order without missing an
 *		event that commits later.
 *
 * An event's id is given out when it is inserted, and transactions commit
 * in any order: event 7 may commit after event 8 has been read, and a
 * reader that goes on "after 8" skips 7 for ever.  Every id is given out
 * by a transaction that holds RowExclusiveLock on payout_events, which it
 * keeps until it ends.  So read the last id given out, L, and then list the
 * transactions holding that lock: once every one of them has ended, each
 * event up to L has committed or will never exist, and below L id order is
 * final.  The writers are the payout changes' own short transactions; no
 * other transaction of the server holds the horizon back.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"

#include "table/event_horizon.h"
#include "table/run_as_owner.h"

static Oid
events_of(Oid schema)
{
	Oid			events = get_relname_relid("payout_events", schema);

	if (!OidIsValid(events))
		elog(ERROR, "payout_events is missing");
	return events;
}

/* The last id given out (0: none yet), read as the table's owner. */
static int64
last_event_id(Oid schema, Oid events)
{
	Oid			sequence = get_relname_relid("payout_events_id_seq", schema);
	Oid			types[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(sequence)};
	bool		isnull;
	int64		last;

	if (!OidIsValid(sequence))
		elog(ERROR, "payout_events_id_seq is missing");
	SPI_connect();
	if (moneroo_execute_as_owner("SELECT pg_catalog.pg_sequence_last_value($1)", 1, types, values,
								 NULL, true, InvalidSnapshot, events) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read payout_events_id_seq");
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return isnull ? 0 : last;
}

static void
writers_tag(LOCKTAG *tag, Oid events)
{
	SET_LOCKTAG_RELATION(*tag, MyDatabaseId, events);
}

EventHorizon *
event_horizon_take(Oid schema, MemoryContext cxt)
{
	Oid			events = events_of(schema);
	EventHorizon *horizon = MemoryContextAlloc(cxt, sizeof(EventHorizon));
	LOCKTAG		tag;
	VirtualTransactionId *writers;

	/* first the id, then the writers: a writer of an id up to it holds the lock now */
	horizon->last_id = last_event_id(schema, events);
	writers_tag(&tag, events);
	writers = GetLockConflicts(&tag, ShareLock, &horizon->nwriters);
	horizon->writers = MemoryContextAlloc(cxt, sizeof(VirtualTransactionId) * Max(horizon->nwriters, 1));
	memcpy(horizon->writers, writers, sizeof(VirtualTransactionId) * horizon->nwriters);
	return horizon;
}

bool
event_horizon_reached(EventHorizon *horizon)
{
	while (horizon->nwriters > 0)
	{
		if (!VirtualXactLock(horizon->writers[horizon->nwriters - 1], false))
			return false;
		horizon->nwriters--;
	}
	return true;
}

int64
event_horizon_wait(Oid schema)
{
	Oid			events = events_of(schema);
	int64		last = last_event_id(schema, events);
	LOCKTAG		tag;

	writers_tag(&tag, events);
	WaitForLockers(tag, ShareLock, false);
	return last;
}

int64
event_horizon_last_id(Oid schema)
{
	return last_event_id(schema, events_of(schema));
}
