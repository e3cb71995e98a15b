/*
 * payout_methods.c
 *		What moneroo_payout_methods says of a method, and the recipient's
 *		rules that follow from it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "common/jsonb_fields.h"
#include "common/statement_key.h"
#include "table/payout_methods.h"
#include "table/request_problems.h"
#include "table/run_as_owner.h"

static PayoutMethod *
read_method(const char *code, Oid method_schema, MemoryContext context)
{
	PayoutMethod *method = NULL;
	char	   *query;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	query = psprintf("SELECT currency, country, recipient_field, dial_code "
					 "FROM %s.moneroo_payout_methods WHERE code = $1",
					 quote_identifier(get_namespace_name(method_schema)));
	args[0] = CStringGetTextDatum(code);

	/*
	 * Read as the table's owner: a role allowed to queue payouts need not
	 * be granted the catalogue of methods to have its requests checked.
	 */
	SPI_connect();
	if (moneroo_execute_as_owner(query, 1, argtypes, args, NULL, true, InvalidSnapshot,
								 get_relname_relid("moneroo_payout_methods", method_schema)) != SPI_OK_SELECT)
		elog(ERROR, "could not read moneroo_payout_methods");
	if (SPI_processed == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_context = MemoryContextSwitchTo(context);
		char	   *dial_code = SPI_getvalue(row, desc, 4);

		method = palloc(sizeof(PayoutMethod));
		method->currency = pstrdup(SPI_getvalue(row, desc, 1));
		method->country = pstrdup(SPI_getvalue(row, desc, 2));
		method->recipient_field = pstrdup(SPI_getvalue(row, desc, 3));
		method->dial_code = dial_code ? pstrdup(dial_code) : NULL;
		MemoryContextSwitchTo(spi_context);
	}
	SPI_finish();
	return method;
}

/*
 * The methods one statement looked up (found or not), since a statement
 * that queues a payroll asks for the same few for every row
 * (statement_key.h).
 */
typedef struct MethodSeen
{
	char	   *code;
	Oid			schema;
	PayoutMethod *method;		/* NULL: no such method */
} MethodSeen;

static StatementKey methods_key;
static List *methods_seen = NIL;
static MemoryContext methods_context = NULL;

PayoutMethod *
find_payout_method(const char *code, Oid method_schema)
{
	ListCell   *lc;
	MethodSeen *seen;
	MemoryContext old;

	if (methods_context == NULL)
		methods_context = AllocSetContextCreate(TopMemoryContext, "moneroo payout methods seen",
												ALLOCSET_SMALL_SIZES);
	if (!statement_key_is_current(&methods_key))
	{
		MemoryContextReset(methods_context);
		methods_seen = NIL;
	}
	foreach(lc, methods_seen)
	{
		seen = lfirst(lc);
		if (seen->schema == method_schema && strcmp(seen->code, code) == 0)
			return seen->method;
	}

	seen = MemoryContextAlloc(methods_context, sizeof(MethodSeen));
	seen->method = read_method(code, method_schema, methods_context);
	seen->code = MemoryContextStrdup(methods_context, code);
	seen->schema = method_schema;
	old = MemoryContextSwitchTo(methods_context);
	methods_seen = lappend(methods_seen, seen);
	MemoryContextSwitchTo(old);
	return seen->method;
}

void
check_recipient(JsonbValue *recipient, PayoutMethod *method, const char *method_code)
{
	FieldRule	rule = {method->recipient_field, 0, true};
	char	   *field = psprintf("recipient.%s", method->recipient_field);
	JsonbValue *value;
	char	   *digits;
	int			n;

	reject_unknown_keys(recipient->val.binary.data, &rule, 1, "recipient.");

	value = jsonb_field(recipient->val.binary.data, method->recipient_field);
	if (value == NULL || value->type == jbvNull)
	{
		reject_missing(field);
		return;
	}

	digits = jsonb_digits_of(value);
	if (digits == NULL)
	{
		reject(field,
			   "The recipient number must be an integer or a string of digits, in international format without \"+\" or spaces.",
			   "Write +229 51 34 50 20 as \"22951345020\".");
		return;
	}
	n = strlen(digits);
	if (n < PHONE_MIN_DIGITS || n > PHONE_MAX_DIGITS)
		reject(field,
			   psprintf("The recipient number has %d digits; an E.164 number has %d to %d.",
						n, PHONE_MIN_DIGITS, PHONE_MAX_DIGITS),
			   NULL);
	else if (method->dial_code != NULL &&
			 strncmp(digits, method->dial_code, strlen(method->dial_code)) != 0)
		reject(field,
			   psprintf("Method %s pays numbers in %s, which start with the dial code %s.",
						method_code, method->country, method->dial_code),
			   "Write the number in international format, starting with the country code.");
}
