/*
 * transfer.c
 *		moneroo_transfer: send one payout now, through the worker.
 *
 * The calling backend hands the request to the worker and waits.  The
 * worker records the payout in its own transaction before sending it, so
 * the row (with Moneroo's id, or as unknown) survives a rollback of the
 * caller: a payout that may have moved money is never unrecorded.
 *
 * An ERROR is raised only where no money moved, so that the caller can try
 * again with a clear conscience.  Where the outcome is unknown the row is
 * returned with a WARNING instead: an error would invite a retry that could
 * pay twice.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "common/settings.h"
#include "common/wait_events.h"
#include "compat/compat.h"
#include "moneroo/moneroo_api.h"
#include "shmem/account_health.h"
#include "shmem/served_databases.h"
#include "shmem/standby_wait.h"
#include "shmem/transfer_slots.h"
#include "table/database_identity.h"
#include "table/payout_lookup.h"
#include "table/payouts_table.h"
#include "table/request_validator.h"
#include "table/spending_limits.h"

PG_FUNCTION_INFO_V1(moneroo_transfer);

/* How long a request may wait for a worker that is not running. */
#define NO_WORKER_PATIENCE_MS 5000

static void
check_worker_serves_this_database(void)
{
	char	   *database = get_database_name(MyDatabaseId);

	if (!moneroo_database_listed(database))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("no moneroo worker serves database \"%s\"", database),
				errdetail("moneroo.database is \"%s\".", moneroo_database),
				errhint("Add \"%s\" to moneroo.database, or set it to '*', and reload the configuration.",
						database));
}

/* A copied or restored database pays nothing until adopted (database_identity.c). */
static void
check_database_adopted(void)
{
	char	   *copy_of = database_identity_copy_of();

	if (copy_of != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout was not sent: database \"%s\" is a copy or a restore that was not adopted",
					   get_database_name(MyDatabaseId)),
				errdetail("Its payouts were recorded as those of %s.", copy_of),
				errhint("Nothing was paid. Once its pending payouts are checked against Moneroo, the extension's owner or a superuser runs SELECT moneroo_adopt_database()."));
}

static char *
new_reference(void)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out,
											   DirectFunctionCall1(gen_random_uuid, (Datum) 0)));
}

/*
 * Waits for the worker's answer.  A cancel, a statement_timeout or any
 * other error leaves the slot on the way out (see transfer_slot_leave).
 */
static void
wait_for_worker(TransferSlot *slot, const char *reference)
{
	TimestampTz submitted = GetCurrentTimestamp();

	PG_TRY();
	{
		for (;;)
		{
			TransferSlotState state = transfer_slot_state(slot);

			if (state == SLOT_DONE)
				break;

			if ((QueryCancelPending || ProcDiePending) && state == SLOT_SENDING)
				ereport(WARNING,
						errcode(ERRCODE_WARNING),
						errmsg("moneroo_transfer was interrupted while payout %s was being sent",
							   reference),
						errdetail("The request has left; the worker still records its outcome."),
						errhint("Look for reference %s in the payouts table before paying again.",
								reference));
			CHECK_FOR_INTERRUPTS();

			if (state == SLOT_SUBMITTED && !served_worker_running() &&
				TimestampDifferenceExceeds(submitted, GetCurrentTimestamp(), NO_WORKER_PATIENCE_MS))
				ereport(ERROR,
						errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("the moneroo background worker is not running"),
						errdetail("Nothing was sent."),
						errhint("Check the server log for why the worker stopped; it restarts on its own within seconds."));

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000, moneroo_wait_event(MONEROO_WAIT_TRANSFER));
			ResetLatch(MyLatch);
		}
	}
	PG_CATCH();
	{
		(void) transfer_slot_leave();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

pg_noreturn static void
key_refused_error(const char *detail)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			errmsg("payout was not sent: Moneroo refused the secret key"),
			errdetail("%s", detail),
			errhint("Nothing was paid. Put a valid key in moneroo.secret_key_file (or moneroo.secret_key) and reload; queued payouts wait and are sent then."));
}

/*
 * While the account is paused nothing may wait in a slot to be sent later:
 * refuse before anything is recorded.
 */
static void
check_account_not_paused(void)
{
	TimestampTz until;
	AccountPause pause = account_pause(&until);

	if (pause == ACCOUNT_KEY_REFUSED)
		key_refused_error(psprintf("Requests to Moneroo are paused until %s; moneroo_status says why.",
								   timestamptz_to_str(until)));
	if (pause == ACCOUNT_MONEROO_FAILING)
		ereport(ERROR,
				errcode(ERRCODE_CONNECTION_FAILURE),
				errmsg("payout was not sent: Moneroo is failing and payouts are paused"),
				errdetail("%s; the next probe of Moneroo is due at %s.",
						  account_pause_reason(pause), timestamptz_to_str(until)),
				errhint("Nothing was paid. Try again once moneroo_status shows no pause, or queue the payout with INSERT INTO payouts: it is sent when Moneroo answers again."));
}

/*
 * The worker claims nothing while fewer standbys stream than
 * moneroo.claim_standbys asks for (dispatch.c): a call now would only wait
 * claim_standbys_timeout to be told so.
 */
static void
check_enough_standbys(void)
{
	int			streaming;

	if (standbys_too_few(&streaming))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout was not sent: too few standbys stream"),
				errdetail("moneroo.claim_standbys requires %d streaming standbys; %d stream.",
						  moneroo_claim_standbys, streaming),
				errhint("Nothing was paid. Try again once a standby streams, or queue the payout with INSERT INTO payouts: it is sent when one does."));
}

static int
refusal_errcode(long http_status)
{
	if (http_status == 401 || http_status == 403)
		return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	if (http_status == 400 || http_status == 422)
		return ERRCODE_INVALID_PARAMETER_VALUE;
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

/*
 * A call with an idempotency key that was used before answers with that
 * payout, as it is now, and sends nothing.
 */
static bool
earlier_payout_of_key(const char *key, Jsonb *request, Datum *row)
{
	bool		same_request;

	if (key == NULL || !payout_lookup_row_by_idempotency_key(key, request, row, &same_request))
		return false;
	if (!same_request)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("idempotency key \"%s\" was used for another payout request", key),
				errdetail("A payout was queued with this key and a different request; nothing was sent."),
				errhint("Use a new key for a new payout, or send the first request again to get its payout."));
	return true;
}

/* Turns the worker's verdict into the caller's row, warning or error. */
static Datum
report_outcome(TransferSlot *slot, SendVerdict verdict, const char *key, Jsonb *request)
{
	Datum		row = (Datum) 0;
	bool		recorded = payout_lookup_row_by_reference(slot->reference, &row);
	const char *detail = slot->detail[0] ? slot->detail : slot->error;

	/* a concurrent call with the same key recorded its payout first */
	if (!recorded && earlier_payout_of_key(key, request, &row))
		return row;
	if (!recorded)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("payout was not sent: the moneroo worker could not record it"),
				errdetail("%s", slot->error[0] ? slot->error : "The worker stopped before recording it."),
				errhint("Nothing was sent; see the server log, then try again."));

	switch (verdict)
	{
		case SEND_ACCEPTED:
			break;
		case SEND_UNKNOWN:
			ereport(WARNING,
					errcode(ERRCODE_WARNING),
					errmsg("outcome of payout %s is unknown", slot->reference),
					errdetail("%s", slot->worker_lost ?
							  "The moneroo worker stopped while the payout was being sent." :
							  slot->error),
					errhint("Do not pay again until you have checked Moneroo for this reference; then use moneroo_retry() if the payout does not exist."));
			break;
		case SEND_REFUSED:
			ereport(ERROR,
					errcode(refusal_errcode(slot->http_status)),
					errmsg("Moneroo refused the payout (HTTP %ld)", slot->http_status),
					errdetail("%s", detail),
					slot->http_status == 401 || slot->http_status == 403 ?
					errhint("Check moneroo.secret_key: Moneroo did not accept it. Nothing was paid.") :
					errhint("Correct the request and send it again; nothing was paid."));
			break;
		case SEND_NOT_SENT:
			if (http_status_refuses_key(slot->http_status))
				key_refused_error(slot->error);
			/* returned unsent by a pause that began after the call was admitted */
			if (slot->http_status == 0)
				check_account_not_paused();
			ereport(ERROR,
					errcode(slot->http_status == 429 ? ERRCODE_CONFIGURATION_LIMIT_EXCEEDED :
							ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					errmsg("payout was not sent: %s",
						   slot->http_status == 429 ? "Moneroo's rate limit was reached" :
						   "could not reach Moneroo"),
					errdetail("%s", slot->error),
					errhint("Nothing was paid; try again later. Check moneroo.api_url if this persists."));
			break;
	}
	return row;
}

/* Sends a validated request and returns its recorded payouts row. */
static Datum
transfer_now(Jsonb *request, const char *key)
{
	char	   *text = JsonbToCString(NULL, &request->root, VARSIZE(request));
	char	   *reference;
	TransferSlot *slot;
	volatile Datum row = (Datum) 0;

	check_worker_serves_this_database();
	check_database_adopted();
	check_account_not_paused();
	check_enough_standbys();
	if (strlen(text) >= TRANSFER_REQUEST_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("payout request is too large: %zu bytes", strlen(text)),
				errdetail("moneroo_transfer takes requests of up to %d bytes.", TRANSFER_REQUEST_BYTES - 1),
				errhint("Shorten the metadata values, or queue the payout with INSERT INTO payouts."));

	reference = new_reference();
	slot = transfer_slot_submit(reference, text, GetUserNameFromId(GetUserId(), false), key);
	wait_for_worker(slot, reference);

	/* the slot's contents stay ours to read until we leave it */
	PG_TRY();
	{
		row = report_outcome(slot, slot->verdict, key, request);
	}
	PG_FINALLY();
	{
		(void) transfer_slot_leave();
	}
	PG_END_TRY();
	return row;
}

static void
check_idempotency_key(const char *key)
{
	size_t		len = strlen(key);

	if (len == 0 || len >= IDEMPOTENCY_KEY_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid idempotency key: %s", len == 0 ? "it is empty" : "it is too long"),
				errdetail("An idempotency key has 1 to %d bytes; this one has %zu.",
						  IDEMPOTENCY_KEY_BYTES - 1, len),
				errhint("Use your own id for the payout, such as an order id or a salary line, or pass NULL for no key."));
}

/*
 * A payout the limits would hold cannot be sent now: refused before
 * anything is recorded.  The worker judges the row again, exactly, when it
 * records it.
 */
static void
check_not_held(Jsonb *request)
{
	char	   *held = limits_hold_reason(payouts_schema(), request, true);

	if (held != NULL)
		limits_refuse_to_send_held(held);
}

/*
 * moneroo_transfer(request) and moneroo_transfer(request, idempotency_key):
 * the key makes a repeated call answer with the first one's payout.
 */
Datum
moneroo_transfer(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	char	   *key = PG_NARGS() > 1 && !PG_ARGISNULL(1) ? text_to_cstring(PG_GETARG_TEXT_PP(1)) : NULL;
	Datum		row;

	if (key != NULL)
	{
		check_idempotency_key(key);
		if (earlier_payout_of_key(key, request, &row))
			PG_RETURN_DATUM(row);
	}
	moneroo_validate_request(request, payouts_schema(), true);
	moneroo_check_configuration();
	check_not_held(request);
	PG_RETURN_DATUM(transfer_now(request, key));
}
