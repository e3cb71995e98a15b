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

#include "access/xact.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "moneroo_api.h"
#include "request_validator.h"

#define MONEROO_ID_MAX_BYTES 64
#define MESSAGE_MAX_BYTES 500
#define JSON_MAX_DEPTH 64

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
				char	   *digits = moneroo_digits_of(&v);

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
				if (v.val.string.len == 8 && memcmp(v.val.string.val, "customer", 8) == 0)
					rewrite = PHONE_AS_INTEGER;
				else if (v.val.string.len == 9 && memcmp(v.val.string.val, "recipient", 9) == 0)
					rewrite = DIGITS_AS_STRING;
				else if (v.val.string.len == 8 && memcmp(v.val.string.val, "metadata", 8) == 0)
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

/*
 * Depth of the deepest array or object, so that a hostile answer cannot
 * exhaust the stack of the recursive JSON parser.
 */
static int
json_depth(const char *text, size_t len)
{
	int			depth = 0;
	int			deepest = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = text[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
			deepest = Max(deepest, ++depth);
		else if (c == '}' || c == ']')
			depth--;
	}
	return deepest;
}

/*
 * The parsers raise errors on some valid JSON (a number beyond numeric's
 * range, an escape the database encoding cannot hold).  An answer must
 * never stop the worker, so they run in a subtransaction whose failure
 * only means "unusable".
 */
static Jsonb *
parse_in_subtransaction(char *copy, size_t len)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		JsonLexContext *lex = makeJsonLexContextCstringLen(copy, len, GetDatabaseEncoding(), true);

		if (pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS)
			result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(copy)));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		result = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	return result;
}

Jsonb *
moneroo_parse_json(const char *text, size_t len)
{
	if (text == NULL || len == 0 || memchr(text, '\0', len) != NULL)
		return NULL;
	if (json_depth(text, len) > JSON_MAX_DEPTH)
		return NULL;
	if (!pg_verify_mbstr(PG_UTF8, text, len, true))
		return NULL;
	/* The database may not be UTF-8: refuse what it cannot hold. */
	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		for (size_t i = 0; i < len; i++)
			if ((unsigned char) text[i] >= 0x80)
				return NULL;
	}
	return parse_in_subtransaction(pnstrdup(text, len), len);
}

static JsonbValue *
object_field(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

static JsonbContainer *
object_of(JsonbValue *value)
{
	if (value != NULL && value->type == jbvBinary &&
		JsonContainerIsObject(value->val.binary.data))
		return value->val.binary.data;
	return NULL;
}

/* Untrusted text made safe for a log line and a column: bounded, printable. */
static char *
sanitized(const char *s, size_t len)
{
	StringInfoData out;

	size_t		kept = len > MESSAGE_MAX_BYTES ? pg_mbcliplen(s, len, MESSAGE_MAX_BYTES) : len;

	initStringInfo(&out);
	for (size_t i = 0; i < kept; i++)
	{
		unsigned char c = (unsigned char) s[i];

		appendStringInfoChar(&out, (c < 0x20 || c == 0x7f) ? ' ' : (char) c);
	}
	if (kept < len)
		appendStringInfoString(&out, "...");
	return out.data;
}

static char *
string_field(JsonbContainer *object, const char *key)
{
	JsonbValue *v = object_field(object, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return sanitized(v->val.string.val, v->val.string.len);
}

/* Moneroo's message and Laravel-style field errors, for errdetail. */
static char *
describe_refusal(JsonbContainer *root)
{
	StringInfoData out;
	char	   *message = string_field(root, "message");
	JsonbValue *errors = object_field(root, "errors");

	initStringInfo(&out);
	if (message)
		appendStringInfoString(&out, message);
	if (errors != NULL && errors->type == jbvBinary)
	{
		char	   *text = JsonbToCString(NULL, errors->val.binary.data, 256);

		appendStringInfo(&out, "%sErrors: %s", out.len ? " " : "",
						 sanitized(text, strlen(text)));
	}
	return out.len ? out.data : NULL;
}

static bool
id_is_well_formed(JsonbValue *id)
{
	if (id == NULL || id->type != jbvString ||
		id->val.string.len == 0 || id->val.string.len > MONEROO_ID_MAX_BYTES)
		return false;
	for (int i = 0; i < id->val.string.len; i++)
	{
		char		c = id->val.string.val[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

bool
moneroo_status_is_final(const char *moneroo_status)
{
	return strcmp(moneroo_status, "success") == 0 ||
		strcmp(moneroo_status, "failed") == 0;
}

static bool
status_is_documented(const char *s)
{
	return strcmp(s, "initiated") == 0 || strcmp(s, "pending") == 0 ||
		moneroo_status_is_final(s);
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
	answer->body = moneroo_parse_json(call->response, call->response_len);
	answer->rate_limited = call->status == 429;
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
		JsonbValue *id = object_field(object_of(object_field(answer->body ? &answer->body->root : NULL, "data")), "id");

		if (answer->body != NULL && call->error == NULL && id_is_well_formed(id))
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
	data = object_of(object_field(answer->body ? &answer->body->root : NULL, "data"));
	id = object_field(data, "id");
	status = string_field(data, "status");
	if (data == NULL || !id_is_well_formed(id) ||
		strlen(moneroo_id) != id->val.string.len ||
		memcmp(moneroo_id, id->val.string.val, id->val.string.len) != 0)
	{
		answer->error = http_error(call, answer,
								   "Moneroo's verify answer does not describe the payout asked about");
		return false;
	}
	if (status == NULL || !status_is_documented(status))
	{
		answer->error = psprintf("Moneroo reported an undocumented payout status \"%s\"",
								 status ? status : "(none)");
		return false;
	}
	answer->moneroo_status = status;
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
