/*
 * jsonb_fields.c
 *		Reading jsonb values, and parsing JSON that came from outside.
 */
#include "postgres.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "common/jsonapi.h"
#include "common/jsonb_fields.h"
#include "compat/compat.h"

/* Deepest nesting accepted from outside: the JSON parsers recurse. */
#define JSON_MAX_DEPTH 64

JsonbValue *
jsonb_field(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

JsonbContainer *
jsonb_object_of(JsonbValue *value)
{
	return jsonb_is_object(value) ? value->val.binary.data : NULL;
}

bool
jsonb_is_object(JsonbValue *value)
{
	return value != NULL && value->type == jbvBinary &&
		JsonContainerIsObject(value->val.binary.data);
}

bool
jsonb_string_is(JsonbValue *value, const char *s)
{
	return value != NULL && value->type == jbvString &&
		value->val.string.len == strlen(s) &&
		memcmp(value->val.string.val, s, value->val.string.len) == 0;
}

const char *
jsonb_type_name(JsonbValue *value)
{
	switch (value->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(value->val.binary.data) ? "an array" : "an object";
		default:
			return "an unsupported value";
	}
}

char *
jsonb_digits_of(JsonbValue *value)
{
	char	   *s;

	if (value->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(value->val.numeric)));
	else if (value->type == jbvString)
		s = pnstrdup(value->val.string.val, value->val.string.len);
	else
		return NULL;

	if (s[0] == '\0')
		return NULL;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return s;
}

/*
 * Depth of the deepest array or object, so that a hostile text cannot
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
		JsonLexContext *lex = compat_json_lex_cstring(copy, len, GetDatabaseEncoding(), true);

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
jsonb_parse_untrusted(const char *text, size_t len)
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

int64
jsonb_int64_of(JsonbValue *value)
{
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(value->val.numeric)));
}
