/*
 * moneroo_api.c
 *		Builds Moneroo requests and reads its answers.
 *
 * Success is decided by the HTTP status, as the official SDKs do; the body
 * only supplies the id, the status and the words for a human.  Anything the
 * body lacks or garbles after a 2xx leaves the payout unknown, never
 * successful: a wrong "success" would pay someone twice after a retry.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "common/jsonb_fields.h"
#include "common/message_text.h"
#include "moneroo/moneroo_api.h"

#define MONEROO_ID_MAX_BYTES 64

typedef enum NestedRewrite
{
	KEEP_AS_IS,
	PHONE_AS_INTEGER,			/* customer: phone sent as an integer */
	DIGITS_AS_STRING,			/* recipient: numbers sent as digit strings */
	ADD_REFERENCE				/* metadata: plus payout_reference */
} NestedRewrite;

static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

static void
push_string(JsonbParseState **state, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_object(JsonbParseState **state, JsonbValue *object, NestedRewrite rewrite,
			const char *reference)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	if (object != NULL && object->type == jbvBinary)
	{
		it = JsonbIteratorInit(object->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				key = pnstrdup(v.val.string.val, v.val.string.len);
				pushJsonbValue(state, WJB_KEY, &v);
			}
			else if (tok == WJB_VALUE)
			{
				char	   *digits = jsonb_digits_of(&v);

				if (rewrite == DIGITS_AS_STRING && digits != NULL)
					push_string(state, digits);
				else if (rewrite == PHONE_AS_INTEGER && digits != NULL &&
						 strcmp(key, "phone") == 0)
				{
					JsonbValue	n;

					n.type = jbvNumeric;
					n.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																		CStringGetDatum(digits),
																		ObjectIdGetDatum(InvalidOid),
																		Int32GetDatum(-1)));
					pushJsonbValue(state, WJB_VALUE, &n);
				}
				else
					pushJsonbValue(state, WJB_VALUE, &v);
			}
		}
	}
	if (rewrite == ADD_REFERENCE)
	{
		push_key(state, "payout_reference");
		push_string(state, reference);
	}
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

char *
moneroo_initialize_body(Jsonb *request, const char *reference)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(&request->root);
	JsonbValue	v;
	JsonbValue *result;
	JsonbIteratorToken tok;
	NestedRewrite rewrite = KEEP_AS_IS;
	bool		has_metadata = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
				pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
				break;
			case WJB_KEY:
				rewrite = KEEP_AS_IS;
				if (jsonb_string_is(&v, "customer"))
					rewrite = PHONE_AS_INTEGER;
				else if (jsonb_string_is(&v, "recipient"))
					rewrite = DIGITS_AS_STRING;
				else if (jsonb_string_is(&v, "metadata"))
				{
					rewrite = ADD_REFERENCE;
					has_metadata = true;
				}
				pushJsonbValue(&state, WJB_KEY, &v);
				break;
			case WJB_VALUE:
				if (rewrite == KEEP_AS_IS)
					pushJsonbValue(&state, WJB_VALUE, &v);
				else
					push_object(&state, &v, rewrite, reference);
				break;
			case WJB_END_OBJECT:
				if (!has_metadata)
				{
					push_key(&state, "metadata");
					push_object(&state, NULL, ADD_REFERENCE, reference);
				}
				result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
				return JsonbToCString(NULL, &JsonbValueToJsonb(result)->root, VARSIZE(request));
			default:
				elog(ERROR, "payout request is not a JSON object");
		}
	}
	elog(ERROR, "payout request is not a JSON object");
}

char *
moneroo_verify_path(const char *moneroo_id)
{
	char	   *escaped = curl_easy_escape(NULL, moneroo_id, 0);
	char	   *path = psprintf("/v1/payouts/%s/verify", escaped);

	curl_free(escaped);
	return path;
}

/* Moneroo's text under key, made fit for a message; NULL if not a string. */
static char *
string_field(JsonbContainer *object, const char *key)
{
	JsonbValue *v = jsonb_field(object, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return text_for_message(v->val.string.val, v->val.string.len,
							MONEROO_TEXT_MAX_BYTES, TEXT_CONTROLS_AS_SPACES);
}

bool
http_status_refuses_key(long http_status)
{
	return http_status == 401 || http_status == 403;
}

/* Moneroo's message and Laravel-style field errors, for errdetail. */
static char *
describe_refusal(JsonbContainer *root)
{
	StringInfoData out;
	char	   *message = string_field(root, "message");
	JsonbValue *errors = jsonb_field(root, "errors");

	initStringInfo(&out);
	if (message)
		appendStringInfoString(&out, message);
	if (errors != NULL && errors->type == jbvBinary)
	{
		char	   *text = JsonbToCString(NULL, errors->val.binary.data, 256);

		appendStringInfo(&out, "%sErrors: %s", out.len ? " " : "",
						 text_for_message(text, strlen(text),
										  MONEROO_TEXT_MAX_BYTES, TEXT_CONTROLS_AS_SPACES));
	}
	return out.len ? out.data : NULL;
}

static bool
id_chars_are_well_formed(const char *s, int len)
{
	if (len == 0 || len > MONEROO_ID_MAX_BYTES)
		return false;
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

bool
moneroo_id_is_well_formed(JsonbValue *id)
{
	return id != NULL && id->type == jbvString &&
		id_chars_are_well_formed(id->val.string.val, id->val.string.len);
}

bool
moneroo_id_text_is_well_formed(const char *id)
{
	return id_chars_are_well_formed(id, strlen(id));
}

/* The "data" object of Moneroo's envelope; NULL when the answer has none. */
static JsonbContainer *
answer_data(MonerooAnswer *answer)
{
	return jsonb_object_of(jsonb_field(answer->body ? &answer->body->root : NULL, "data"));
}

/* Fills body, detail and the flags shared by every answer. */
static void
read_common(HttpCall *call, MonerooAnswer *answer)
{
	memset(answer, 0, sizeof(MonerooAnswer));
	if (call->outcome != HTTP_ANSWERED)
	{
		answer->error = pstrdup(call->error);
		return;
	}
	answer->body = jsonb_parse_untrusted(call->response, call->response_len);
	answer->rate_limited = call->status == 429;
	answer->key_refused = http_status_refuses_key(call->status);
	if (answer->body != NULL)
		answer->detail = describe_refusal(&answer->body->root);
}

static char *
http_error(HttpCall *call, MonerooAnswer *answer, const char *what)
{
	if (call->error)
		return psprintf("%s: %s", what, call->error);
	if (answer->body == NULL)
		return psprintf("%s: HTTP %ld with a body that is not JSON", what, call->status);
	return psprintf("%s: HTTP %ld%s%s", what, call->status,
					answer->detail ? ": " : "", answer->detail ? answer->detail : "");
}

SendVerdict
moneroo_read_initialize(HttpCall *call, MonerooAnswer *answer)
{
	long		status = call->status;

	read_common(call, answer);
	if (call->outcome == HTTP_NEVER_CONNECTED)
		return SEND_NOT_SENT;
	if (call->outcome == HTTP_NO_ANSWER)
		return SEND_UNKNOWN;

	if (status == 200 || status == 201 || status == 202)
	{
		JsonbValue *id = jsonb_field(answer_data(answer), "id");

		if (answer->body != NULL && call->error == NULL && moneroo_id_is_well_formed(id))
		{
			answer->moneroo_id = pnstrdup(id->val.string.val, id->val.string.len);
			return SEND_ACCEPTED;
		}
		answer->error = http_error(call, answer,
								   "Moneroo accepted the payout but its answer carries no usable id");
		return SEND_UNKNOWN;
	}
	if (status == 429)
	{
		answer->error = http_error(call, answer, "rate limited by Moneroo, nothing was created");
		return SEND_NOT_SENT;
	}
	if (answer->key_refused)
	{
		/* never the key itself: only that Moneroo would not take it */
		answer->error = http_error(call, answer,
								   "Moneroo refused the secret key, nothing was created");
		answer->uncounted = true;
		return SEND_NOT_SENT;
	}
	/* 408: the server gave up reading; whether it acted is not ours to know */
	if (status >= 400 && status < 500 && status != 408)
	{
		answer->error = http_error(call, answer, "Moneroo refused the payout");
		return SEND_REFUSED;
	}
	answer->error = http_error(call, answer, "Moneroo's answer leaves the payout's fate unknown");
	return SEND_UNKNOWN;
}

bool
moneroo_read_verify(HttpCall *call, const char *moneroo_id, MonerooAnswer *answer)
{
	JsonbContainer *data;
	JsonbValue *id;
	char	   *status;

	read_common(call, answer);
	if (call->outcome != HTTP_ANSWERED)
		return false;
	if (call->status != 200)
	{
		answer->error = http_error(call, answer, "could not verify the payout");
		return false;
	}
	data = answer_data(answer);
	id = jsonb_field(data, "id");
	status = string_field(data, "status");
	if (data == NULL || !moneroo_id_is_well_formed(id) || !jsonb_string_is(id, moneroo_id))
	{
		answer->error = http_error(call, answer,
								   "Moneroo's verify answer does not describe the payout asked about");
		return false;
	}
	if (status == NULL || !moneroo_status_parse(status, &answer->moneroo_status))
	{
		answer->error = psprintf("Moneroo reported an undocumented payout status \"%s\"",
								 status ? status : "(none)");
		return false;
	}
	answer->payout_reference = string_field(jsonb_object_of(jsonb_field(data, "metadata")),
											"payout_reference");
	return true;
}

const char *
send_verdict_name(SendVerdict verdict)
{
	switch (verdict)
	{
		case SEND_ACCEPTED:
			return "accepted";
		case SEND_REFUSED:
			return "refused";
		case SEND_NOT_SENT:
			return "not sent";
		case SEND_UNKNOWN:
			return "unknown";
	}
	return "?";
}
