/*
 * webhook.c
 *		moneroo_webhook: settle a payout from a Moneroo webhook delivery.
 *
 * The application that receives Moneroo's webhook passes the raw body and
 * the X-Moneroo-Signature header through.  The signature proves the body
 * came from Moneroo; even so the body is only a hint: the payout is
 * settled by asking Moneroo (verify), as Moneroo's documentation advises,
 * so a replayed or reordered delivery cannot move a payout backwards.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "common/hmac.h"
#include "common/jsonb_fields.h"
#include "common/message_text.h"
#include "common/settings.h"
#include "common/sha2.h"
#include "compat/compat.h"
#include "functions/verification.h"
#include "moneroo/moneroo_api.h"
#include "shmem/commit_wakeup.h"
#include "shmem/recent_asks.h"
#include "table/audit_trail.h"
#include "table/payout_lookup.h"
#include "table/payout_store.h"
#include "table/verify_schedule.h"

PG_FUNCTION_INFO_V1(moneroo_webhook);

#define SIGNATURE_HEX_LENGTH (PG_SHA256_DIGEST_LENGTH * 2)

static void
expected_signature(const char *body, size_t len, char *hex)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	static const char digits[] = "0123456789abcdef";

	if (ctx == NULL ||
		pg_hmac_init(ctx, (const uint8 *) moneroo_webhook_secret,
					 strlen(moneroo_webhook_secret)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) body, len) < 0 ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_hmac_free(ctx);
		ereport(ERROR,
				errcode(ERRCODE_INTERNAL_ERROR),
				errmsg("could not compute the webhook signature"));
	}
	pg_hmac_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	hex[SIGNATURE_HEX_LENGTH] = '\0';
}

/*
 * Refuses unless the signature is the lowercase hex HMAC-SHA256 of the raw
 * body, compared in constant time so that its bytes cannot be guessed one
 * at a time from response times.
 */
static void
check_signature(const char *body, size_t len, const char *signature)
{
	char		expected[SIGNATURE_HEX_LENGTH + 1];

	if (moneroo_webhook_secret == NULL || moneroo_webhook_secret[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_CONFIG_FILE_ERROR),
				errmsg("moneroo.webhook_secret is not set"),
				errhint("Set moneroo.webhook_secret to the signing secret of the webhook in Moneroo's dashboard and restart the server."));

	expected_signature(body, len, expected);
	if (signature == NULL || strlen(signature) != SIGNATURE_HEX_LENGTH ||
		timingsafe_bcmp(expected, signature, SIGNATURE_HEX_LENGTH) != 0)
	{
		explicit_bzero(expected, sizeof(expected));
		ereport(ERROR,
				errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				errmsg("invalid Moneroo webhook signature"),
				errdetail("X-Moneroo-Signature must be the lowercase hex HMAC-SHA256 of the raw request body."),
				errhint("Pass the body exactly as received, before any JSON parsing, and answer the delivery with 403."));
	}
	explicit_bzero(expected, sizeof(expected));
}

pg_noreturn static void
malformed(const char *detail)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("malformed Moneroo webhook body"),
			errdetail("%s", detail),
			errhint("Pass the request body exactly as received; answer deliveries that are not payout events with 200."));
}

/* The Moneroo id a payout event is about. */
static char *
payout_id_of(const char *body, size_t len)
{
	Jsonb	   *event = jsonb_parse_untrusted(body, len);
	JsonbContainer *root;
	JsonbContainer *data;
	JsonbValue *type;
	JsonbValue *id;

	if (event == NULL || !JB_ROOT_IS_OBJECT(event) || JB_ROOT_IS_SCALAR(event))
		malformed("The body is not a JSON object.");
	root = &event->root;
	type = jsonb_field(root, "event");
	if (type == NULL || type->type != jbvString)
		malformed("The body has no \"event\" string.");
	if (type->val.string.len < 7 || strncmp(type->val.string.val, "payout.", 7) != 0)
		malformed(psprintf("\"%s\" is not a payout event.",
						   text_for_message(type->val.string.val, type->val.string.len,
											ECHO_MAX_BYTES, TEXT_CONTROLS_AS_SPACES)));
	data = jsonb_object_of(jsonb_field(root, "data"));
	if (data == NULL)
		malformed("The body has no \"data\" object.");
	id = jsonb_field(data, "id");
	if (!moneroo_id_is_well_formed(id))
		malformed("The body has no \"data.id\" string.");
	return pnstrdup(id->val.string.val, id->val.string.len);
}

pg_noreturn static void
no_payout_carries(const char *moneroo_id, const char *detail)
{
	ereport(ERROR,
			errcode(ERRCODE_NO_DATA_FOUND),
			errmsg("no payout carries Moneroo id \"%s\"", moneroo_id),
			errdetail("%s", detail),
			errhint("Answer the delivery with 200 if the payout is not yours; Moneroo retries failed deliveries."));
}

/*
 * An event for an id no row carries may be about a payout whose answer
 * never came back (unknown): Moneroo's verify answer names the reference it
 * was sent under, and that row takes the id.  A row still sending is the
 * worker's to record.  A pending row with that reference (an unknown one an
 * operator requeued) takes it too: sending it again would pay twice.
 */
static Datum
adopt_by_reference(const char *moneroo_id)
{
	MonerooAnswer answer;
	PayoutKeys	keys;
	VerifyAsk	asked;

	/* Moneroo waits 3 seconds for the answer: never sleep on the limiter. */
	asked = moneroo_ask(moneroo_id, false, &answer);

	if (asked == ASK_NO_ROOM)
		ereport(ERROR,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("cannot verify Moneroo payout \"%s\" now: the rate limit has no room", moneroo_id),
				errdetail("No payout carries that id yet; Moneroo must be asked whose it is."),
				errhint("Answer the delivery with 503: Moneroo delivers it again later."));
	if (asked == ASK_UNKNOWN_ID)
		no_payout_carries(moneroo_id, "Moneroo knows no payout of that id either.");
	if (asked == ASK_FAILED)
		ereport(ERROR,
				errcode(ERRCODE_CONNECTION_FAILURE),
				errmsg("could not verify Moneroo payout \"%s\"", moneroo_id),
				errdetail("%s", answer.error),
				errhint("Answer the delivery with 503: Moneroo delivers it again later."));
	if (answer.payout_reference == NULL ||
		!payout_lookup_keys_by_reference(answer.payout_reference, &keys))
		no_payout_carries(moneroo_id, "The webhook is about a payout this database did not send.");

	/* the worker's to record, or recorded by it since the first lookup */
	if (keys.status == PAYOUT_SENDING ||
		(keys.moneroo_id != NULL && strcmp(keys.moneroo_id, moneroo_id) == 0))
		return payout_lookup_row(keys.id);
	if (keys.status == PAYOUT_CANCELLED)
		ereport(WARNING,
				errcode(ERRCODE_WARNING),
				errmsg("Moneroo has payout \"%s\" under the reference of cancelled payout %lld",
					   moneroo_id, (long long) keys.id),
				errdetail("Moneroo reports it %s; the payout was cancelled as never created.",
						  moneroo_status_name(answer.moneroo_status)),
				errhint("Check the payout in Moneroo's dashboard: money may have moved."));
	if ((keys.status != PAYOUT_UNKNOWN && keys.status != PAYOUT_PENDING) ||
		!payout_store_adopt(keys.id, keys.status, moneroo_id, &answer,
							psprintf("Moneroo's id %s came with a webhook; the payout was %s",
									 moneroo_id, payout_status_name(keys.status))))
		no_payout_carries(moneroo_id,
						  psprintf("Payout %lld was sent under that reference, but it is %s.",
								   (long long) keys.id, payout_status_name(keys.status)));
	ereport(LOG,
			errmsg("moneroo: payout %lld (%s) takes Moneroo id \"%s\" from a webhook",
				   (long long) keys.id, payout_status_name(keys.status), moneroo_id),
			errdetail("Moneroo reports it %s under the payout's reference %s.",
					  moneroo_status_name(answer.moneroo_status), keys.reference));
	return payout_lookup_row(keys.id);
}

/*
 * Asks Moneroo about moneroo_id for this delivery (id 0: no row carries
 * it).  What it answered is remembered (recent_asks.c); an ask that got no
 * answer (no room, Moneroo failing) is not, so that the next delivery asks.
 */
static Datum
ask_for_delivery(int64 id, const char *moneroo_id)
{
	volatile Datum row = (Datum) 0;

	PG_TRY();
	{
		/* Moneroo waits 3 seconds for the answer: never sleep on the limiter. */
		row = id == 0 ? adopt_by_reference(moneroo_id) : moneroo_verify_now(id, false);
	}
	PG_CATCH();
	{
		if (geterrcode() != ERRCODE_NO_DATA_FOUND)
			recent_ask_forget(moneroo_id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return row;
}

Datum
moneroo_webhook(PG_FUNCTION_ARGS)
{
	text	   *body;
	char	   *signature;
	char	   *moneroo_id;
	int64		id;
	PayoutStatus status;
	TimestampTz asked_at;
	Datum		row;

	if (PG_ARGISNULL(0))
		malformed("The body is null.");
	body = PG_GETARG_TEXT_PP(0);
	signature = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	check_signature(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), signature);
	/* Moneroo's webhooks reach us: from now on polls are the safety net */
	verify_schedule_note_webhook();
	moneroo_id = payout_id_of(text_to_cstring(body), VARSIZE_ANY_EXHDR(body));
	audit_set_action("webhook");

	if (!payout_lookup_by_moneroo_id(moneroo_id, &id, &status))
	{
		if (!recent_ask_claim(moneroo_id, &asked_at))
			ereport(ERROR,
					errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					errmsg("Moneroo payout \"%s\" was asked about less than %d seconds ago",
						   moneroo_id, RECENT_ASK_MS / 1000),
					errdetail("No payout carries that id; a delivery of it is not asked about again so soon."),
					errhint("Answer the delivery with 503: Moneroo delivers it again later."));
		row = ask_for_delivery(0, moneroo_id);
	}
	/* A duplicate delivery for a settled payout costs nothing. */
	else if (payout_status_is_final(status))
		row = payout_lookup_row(id);
	/*
	 * Nor does one for a payout asked about a moment ago: the worker
	 * verifies it once that moment is past, at its turn, and a delivery
	 * that brought news (payout.success right after payout.initiated)
	 * settles it then.
	 */
	else if (!recent_ask_claim(moneroo_id, &asked_at))
	{
		payout_store_schedule_verification(id, TimestampTzPlusMilliseconds(asked_at, RECENT_ASK_MS));
		moneroo_wake_worker_at_commit();
		row = payout_lookup_row(id);
	}
	else
		row = ask_for_delivery(id, moneroo_id);
	audit_set_action(NULL);
	PG_RETURN_DATUM(row);
}
