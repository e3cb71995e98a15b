/*
 * operator_actions.c
 *		What an operator does to one payout by hand: moneroo_retry,
 *		moneroo_cancel, moneroo_resolve, moneroo_approve and
 *		moneroo_acknowledge.
 *
 * Each names the states it accepts and refuses any other with 55000,
 * naming the state the payout is in.  Each names itself in the events it
 * writes to payout_events.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "common/jsonb_fields.h"
#include "compat/compat.h"
#include "functions/verification.h"
#include "moneroo/moneroo_api.h"
#include "table/audit_trail.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "table/spending_limits.h"

PG_FUNCTION_INFO_V1(moneroo_retry);
PG_FUNCTION_INFO_V1(moneroo_cancel);
PG_FUNCTION_INFO_V1(moneroo_resolve);
PG_FUNCTION_INFO_V1(moneroo_approve);
PG_FUNCTION_INFO_V1(moneroo_acknowledge);

/* An acknowledgement's note, and its event's detail, stay short. */
#define ACKNOWLEDGEMENT_MAX_BYTES 255

/* The role that asked, before the extension switches to the table's owner. */
static const char *
calling_role(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

pg_noreturn static void
wrong_state(int64 id, PayoutStatus status, const char *wanted, const char *detail,
			const char *hint)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("payout %lld is %s, not %s", (long long) id, payout_status_name(status), wanted),
			errdetail("%s", detail),
			errhint("%s", hint));
}

/* unknown -> pending, once an operator has checked that Moneroo lacks it */
Datum
moneroo_retry(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	PayoutKeys	keys = payout_lookup_keys(id, true);

	if (keys.status != PAYOUT_UNKNOWN)
		wrong_state(id, keys.status, "unknown",
					"Only a payout whose fate is unknown can be put back in the queue.",
					keys.status == PAYOUT_PENDING ? "It is already queued." :
					"Insert a new payout to pay again.");
	audit_set_action("moneroo_retry");
	payout_store_requeue(id);
	audit_set_action(NULL);
	PG_RETURN_DATUM(payout_lookup_row(id));
}

/*
 * pending, held or unknown -> cancelled.  The row lock makes it exact
 * against the worker: a claim skips a locked row, and a claimed one is
 * sending.
 */
Datum
moneroo_cancel(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	PayoutKeys	keys = payout_lookup_keys(id, true);

	if (keys.status != PAYOUT_PENDING && keys.status != PAYOUT_HELD &&
		keys.status != PAYOUT_UNKNOWN)
		wrong_state(id, keys.status, "pending, held or unknown",
					"Only a payout that has not left (pending or held) or that Moneroo never created (unknown) can be cancelled.",
					keys.status == PAYOUT_SENDING ?
					"Its request is on its way; wait for its outcome." :
					"A payout Moneroo has, or that is final, cannot be cancelled.");
	audit_set_action("moneroo_cancel");
	if (!payout_store_cancel(id, keys.status, calling_role()))
		elog(ERROR, "payout %lld changed while locked", (long long) id);
	audit_set_action(NULL);
	PG_RETURN_DATUM(payout_lookup_row(id));
}

/*
 * unknown -> what Moneroo says, once an operator found the payout in
 * Moneroo's dashboard: only if the payout there carries this row's
 * reference, so that no row can take another's id.
 */
Datum
moneroo_resolve(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *moneroo_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PayoutKeys	keys;
	MonerooAnswer answer;
	VerifyAsk	asked;

	if (!moneroo_id_text_is_well_formed(moneroo_id))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" is not a Moneroo payout id", moneroo_id),
				errhint("Copy the transaction id from Moneroo's dashboard: letters, digits, '-', '_' or '.'."));

	/* no row lock through the request: it is taken again before writing */
	keys = payout_lookup_keys(id, false);
	if (keys.status != PAYOUT_UNKNOWN)
		wrong_state(id, keys.status, "unknown",
					"Only a payout whose fate is unknown can be resolved.",
					"A payout that has a Moneroo id is settled by verification: use moneroo_verify().");

	asked = moneroo_ask(moneroo_id, true, &answer);
	if (asked == ASK_UNKNOWN_ID)
		ereport(ERROR,
				errcode(ERRCODE_NO_DATA_FOUND),
				errmsg("Moneroo knows no payout \"%s\"", moneroo_id),
				errdetail("%s", answer.error),
				errhint("Check the id in Moneroo's dashboard; payout %lld is unchanged.", (long long) id));
	if (asked != ASK_ANSWERED)
		ereport(ERROR,
				errcode(ERRCODE_CONNECTION_FAILURE),
				errmsg("could not verify Moneroo payout \"%s\"", moneroo_id),
				errdetail("%s", answer.error),
				errhint("Payout %lld is unchanged; try again later.", (long long) id));
	if (answer.payout_reference == NULL || strcmp(answer.payout_reference, keys.reference) != 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("Moneroo payout \"%s\" is not payout %lld", moneroo_id, (long long) id),
				answer.payout_reference ?
				errdetail("It carries metadata.payout_reference %s; payout %lld has reference %s.",
						  answer.payout_reference, (long long) id, keys.reference) :
				errdetail("It carries no metadata.payout_reference; payout %lld has reference %s.",
						  (long long) id, keys.reference),
				errhint("Look the payout up in Moneroo's dashboard by its reference, %s.", keys.reference));

	keys = payout_lookup_keys(id, true);
	audit_set_action("moneroo_resolve");
	if (keys.status != PAYOUT_UNKNOWN ||
		!payout_store_adopt(id, PAYOUT_UNKNOWN, moneroo_id, &answer,
							psprintf("resolved by %s: Moneroo has it as %s", calling_role(), moneroo_id)))
		wrong_state(id, keys.status, "unknown", "It changed while Moneroo was being asked.",
					"Look at the payout again.");
	audit_set_action(NULL);
	PG_RETURN_DATUM(payout_lookup_row(id));
}

/*
 * held -> pending, by a second person: four eyes.  The approval overrides
 * the limit that held the payout, and from now on it counts against the
 * currency's daily limit.
 */
Datum
moneroo_approve(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	PayoutKeys	keys = payout_lookup_keys(id, true);
	const char *approver = calling_role();
	HeldPayout	held;

	if (keys.status != PAYOUT_HELD)
		wrong_state(id, keys.status, "held",
					"Only a payout held by a limit waits for approval.",
					keys.status == PAYOUT_PENDING ? "It is already queued to be sent." :
					"There is nothing to approve.");
	held = payout_lookup_held(id);
	if (held.created_by != NULL && strcmp(held.created_by, approver) == 0)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("payout %lld cannot be approved by %s, who queued it", (long long) id, approver),
				errdetail("A held payout is approved by a second person: a role other than its created_by."),
				errhint("Ask another role that may run moneroo_approve to approve it."));

	limits_count_approved(payouts_schema(), held.currency, held.amount);
	audit_set_action("moneroo_approve");
	if (!payout_store_approve(id, approver))
		elog(ERROR, "payout %lld changed while locked", (long long) id);
	audit_set_action(NULL);
	PG_RETURN_DATUM(payout_lookup_row(id));
}

/*
 * A final payout that went wrong (rejected, failed or cancelled), once an
 * operator has dealt with it: the note says how.  The payout keeps its
 * state; it leaves moneroo_needs_attention, and the acknowledgement is an
 * event of its own.  Not STRICT: a missing note is an error, not a NULL.
 */
Datum
moneroo_acknowledge(PG_FUNCTION_ARGS)
{
	int64		id;
	char	   *note;
	PayoutKeys	keys;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("payout id must not be null"));
	id = PG_GETARG_INT64(0);
	note = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (note == NULL || note[strspn(note, " \t\r\n")] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("an acknowledgement needs a note"),
				errdetail("The note is what the audit trail keeps of how payout %lld was dealt with.",
						  (long long) id),
				errhint("Say what was done, for example: 'customer refunded by bank transfer, ticket 4711'."));
	if (strlen(note) > ACKNOWLEDGEMENT_MAX_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("the note of an acknowledgement is limited to %d bytes", ACKNOWLEDGEMENT_MAX_BYTES),
				errhint("Refer to a ticket or a document for the long story."));

	keys = payout_lookup_keys(id, true);
	if (keys.status != PAYOUT_REJECTED && keys.status != PAYOUT_FAILED &&
		keys.status != PAYOUT_CANCELLED)
		wrong_state(id, keys.status, "rejected, failed or cancelled",
					"Only a payout that ended unpaid is acknowledged.",
					keys.status == PAYOUT_SUCCESS ? "It was paid: there is nothing to acknowledge." :
					keys.status == PAYOUT_UNKNOWN ?
					"Settle it first: moneroo_resolve(), moneroo_retry() or moneroo_cancel()." :
					keys.status == PAYOUT_HELD ?
					"Approve it with moneroo_approve() or drop it with moneroo_cancel()." :
					"It is not final yet; wait for its outcome.");
	audit_set_action("moneroo_acknowledge");
	if (!payout_store_acknowledge(id, keys.status, calling_role(), note))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout %lld is already acknowledged", (long long) id),
				errdetail("Its acknowledged_by, acknowledged_at and acknowledgement say by whom, when and how."),
				errhint("An acknowledgement is recorded once; payout_events keeps it."));
	audit_set_action(NULL);
	PG_RETURN_DATUM(payout_lookup_row(id));
}
