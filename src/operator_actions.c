/*
 * operator_actions.c
 *		What an operator does to one payout by hand: moneroo_retry.
 */
#include "postgres.h"

#include "fmgr.h"

#include "payout_lookup.h"
#include "payout_store.h"

PG_FUNCTION_INFO_V1(moneroo_retry);

/* unknown -> pending, once an operator has checked that Moneroo lacks it */
Datum
moneroo_retry(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *moneroo_id;
	PayoutStatus status = payout_lookup_status(id, true, &moneroo_id);

	if (status != PAYOUT_UNKNOWN)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld is %s, not unknown", (long long) id,
					   payout_status_name(status)),
				errdetail("Only a payout whose fate is unknown can be put back in the queue."),
				status == PAYOUT_PENDING ?
				errhint("It is already queued.") :
				errhint("Insert a new payout to pay again."));

	payout_store_requeue(id);
	PG_RETURN_DATUM(payout_lookup_row(id));
}
