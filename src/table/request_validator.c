/*
 * request_validator.c
 *		Checks a payout request before anything can be sent.
 *
 * Moneroo's own validation happens after the request has left; a refusal
 * there costs a request from the rate limit and leaves the payout rejected.
 * Everything we can know in advance is checked here, with a message that
 * names the field, so that a bad request never reaches Moneroo and never
 * leaves a half-written row.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "common/jsonb_fields.h"
#include "common/message_text.h"
#include "table/payout_methods.h"
#include "table/request_problems.h"
#include "table/request_validator.h"
#include "table/spending_limits.h"

/* Moneroo's former SDK limits, in characters. */
#define DESCRIPTION_MAX_CHARS 155
#define NAME_MAX_CHARS 100
#define ADDRESS_MAX_CHARS 200
#define PLACE_MAX_CHARS 100
#define EMAIL_MAX_CHARS 254
#define METADATA_MAX_ENTRIES 10
#define METADATA_KEY_MAX_CHARS 64
#define METADATA_VALUE_MAX_CHARS 500
/* 15 digits stay below 2^53, the largest integer every JSON parser keeps. */
#define AMOUNT_MAX_DIGITS 15

/* The 249 officially assigned ISO 3166-1 alpha-2 codes, each followed by a space. */
static const char iso_3166_countries[] =
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ "
	"BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR "
	"CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR "
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU "
	"ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ "
	"LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
	"MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF "
	"PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI "
	"SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR "
	"TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW ";

static const FieldRule top_level_fields[] = {
	{"amount", 0, true},
	{"currency", 0, true},
	{"description", DESCRIPTION_MAX_CHARS, true},
	{"method", 0, true},
	{"customer", 0, true},
	{"recipient", 0, true},
	{"metadata", 0, false},
};

static const FieldRule customer_fields[] = {
	{"email", EMAIL_MAX_CHARS, true},
	{"first_name", NAME_MAX_CHARS, true},
	{"last_name", NAME_MAX_CHARS, true},
	{"phone", 0, false},
	{"address", ADDRESS_MAX_CHARS, false},
	{"city", PLACE_MAX_CHARS, false},
	{"state", PLACE_MAX_CHARS, false},
	{"country", 0, false},
	{"zip", PLACE_MAX_CHARS, false},
};

/*
 * A free-text field: a string of 1 to max_chars characters, not blank,
 * without control characters (they break receipts and SMS notifications).
 */
static bool
check_text(const char *field, JsonbValue *value, int max_chars)
{
	const char *s;
	int			len;
	int			nchars;
	bool		blank = true;

	if (value->type != jbvString)
		return reject_type(field, "a string", value);
	s = value->val.string.val;
	len = value->val.string.len;
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7f)
			return reject(field, "The text contains a control character.", NULL);
		if (c != ' ')
			blank = false;
	}
	if (blank)
		return reject(field, "The text must not be empty or blank.", NULL);
	nchars = pg_mbstrlen_with_len(s, len);
	if (nchars > max_chars)
		return reject(field,
					  psprintf("The text is %d characters long; at most %d are allowed.",
							   nchars, max_chars),
					  NULL);
	return true;
}

/* NULL unless value is a string of exactly n uppercase ASCII letters. */
static char *
uppercase_code(JsonbValue *value, int n)
{
	if (value->type != jbvString || value->val.string.len != n)
		return NULL;
	for (int i = 0; i < n; i++)
		if (value->val.string.val[i] < 'A' || value->val.string.val[i] > 'Z')
			return NULL;
	return pnstrdup(value->val.string.val, n);
}

static bool
is_assigned_country(const char *code)
{
	for (const char *p = iso_3166_countries; *p; p += 3)
		if (p[0] == code[0] && p[1] == code[1])
			return true;
	return false;
}

static bool
check_amount(JsonbValue *value)
{
	char	   *digits;

	if (value->type != jbvNumeric)
		return reject("amount",
					  psprintf("The amount must be a JSON integer, not %s.", jsonb_type_name(value)),
					  "Give the amount as a whole number in the currency's main unit, for example 1000.");
	digits = jsonb_digits_of(value);
	if (digits == NULL)
		return reject("amount",
					  "The amount must be a positive whole number; fractions and negative amounts are refused.",
					  "Moneroo takes amounts in the currency's main unit, without decimals.");
	if (strspn(digits, "0") == strlen(digits))
		return reject("amount", "The amount must be greater than zero.", NULL);
	while (*digits == '0')
		digits++;
	if (strlen(digits) > AMOUNT_MAX_DIGITS)
		return reject("amount",
					  psprintf("The amount has %d digits; at most %d are allowed.",
							   (int) strlen(digits), AMOUNT_MAX_DIGITS),
					  NULL);
	return true;
}

/*
 * Plausible, not RFC 5322 complete: one @, a non-empty local part without
 * spaces, and a dotted domain of letters, digits and hyphens.
 */
static bool
email_is_plausible(const char *s, int len)
{
	const char *at = memchr(s, '@', len);
	const char *domain;
	int			domain_len;
	int			label_len = 0;
	bool		has_dot = false;

	if (at == NULL || at == s || at - s > 64)
		return false;
	if (memchr(at + 1, '@', len - (at - s) - 1) != NULL)
		return false;
	for (const char *p = s; p < at; p++)
		if ((unsigned char) *p <= ' ' || *p == '"' || *p == '(' || *p == ')' ||
			*p == ',' || *p == ':' || *p == ';' || *p == '<' || *p == '>' ||
			*p == '[' || *p == ']' || *p == '\\' || (unsigned char) *p >= 0x7f)
			return false;
	if (s[0] == '.' || at[-1] == '.')
		return false;

	domain = at + 1;
	domain_len = len - (domain - s);
	if (domain_len < 3)
		return false;
	for (int i = 0; i < domain_len; i++)
	{
		char		c = domain[i];

		if (c == '.')
		{
			if (label_len == 0 || domain[i - 1] == '-')
				return false;
			has_dot = true;
			label_len = 0;
		}
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || (c == '-' && label_len > 0))
			label_len++;
		else
			return false;
	}
	/* the last label is a top-level domain: two letters or more */
	return has_dot && label_len >= 2 && domain[domain_len - 1] != '-';
}

/* customer.phone: E.164 digits, as an integer or a string */
static bool
check_phone(const char *field, JsonbValue *value)
{
	char	   *digits = jsonb_digits_of(value);
	int			n;

	if (digits == NULL)
		return reject(field,
					  "The phone number must be an integer or a string of digits, in international format without \"+\".",
					  "Write +229 51 34 50 20 as 22951345020.");
	if (digits[0] == '0')
		return reject(field,
					  "An E.164 phone number starts with its country code, never with 0.",
					  "Write 00229 51 34 50 20 as 22951345020.");
	n = strlen(digits);
	if (n < PHONE_MIN_DIGITS || n > PHONE_MAX_DIGITS)
		return reject(field,
					  psprintf("An E.164 phone number has %d to %d digits and starts with a country code; got %d digits.",
							   PHONE_MIN_DIGITS, PHONE_MAX_DIGITS, n),
					  NULL);
	return true;
}

static void
check_customer(JsonbValue *customer)
{
	JsonbContainer *object;
	int			nfields = lengthof(customer_fields);

	if (!jsonb_is_object(customer))
	{
		reject_type("customer", "an object", customer);
		return;
	}
	object = customer->val.binary.data;
	reject_unknown_keys(object, customer_fields, nfields, "customer.");

	for (int i = 0; i < nfields; i++)
	{
		const FieldRule *rule = &customer_fields[i];
		char	   *field = psprintf("customer.%s", rule->name);
		JsonbValue *value = jsonb_field(object, rule->name);

		if (value == NULL || value->type == jbvNull)
		{
			if (rule->required)
				reject_missing(field);
		}
		else if (strcmp(rule->name, "phone") == 0)
			check_phone(field, value);
		else if (strcmp(rule->name, "country") == 0)
		{
			char	   *code = uppercase_code(value, 2);

			if (code == NULL || !is_assigned_country(code))
				reject(field,
					   "The country must be an assigned ISO 3166-1 alpha-2 code in capitals, such as \"BJ\".",
					   NULL);
		}
		else if (check_text(field, value, rule->max_chars) &&
				 strcmp(rule->name, "email") == 0 &&
				 !email_is_plausible(value->val.string.val, value->val.string.len))
			reject(field, "The email address is not plausible.",
				   "Give an address such as jane@example.com.");
	}
}

static void
check_metadata(JsonbValue *metadata)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			entries = 0;
	char	   *key = NULL;

	if (!jsonb_is_object(metadata))
	{
		reject_type("metadata", "an object of string values", metadata);
		return;
	}

	it = JsonbIteratorInit(metadata->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = text_for_message(v.val.string.val, v.val.string.len,
							   ECHO_MAX_BYTES, TEXT_KEEP_CONTROLS);
			if (++entries == METADATA_MAX_ENTRIES + 1)
				reject("metadata",
					   psprintf("Metadata holds at most %d entries.", METADATA_MAX_ENTRIES),
					   NULL);
			if (strcmp(key, "payout_reference") == 0)
				reject("metadata.payout_reference",
					   "The key payout_reference is reserved: the extension sends the payout's reference under it.",
					   "Use another key name; the reference is in the payouts.reference column.");
			else if (v.val.string.len == 0 ||
					 pg_mbstrlen_with_len(v.val.string.val, v.val.string.len) > METADATA_KEY_MAX_CHARS)
				reject("metadata",
					   psprintf("Metadata keys have 1 to %d characters.", METADATA_KEY_MAX_CHARS),
					   NULL);
		}
		else if (tok == WJB_VALUE)
		{
			char	   *field = psprintf("metadata.%s", key);

			if (v.type != jbvString)
				reject(field,
					   psprintf("Metadata values must be strings, not %s.", jsonb_type_name(&v)),
					   "Quote the value, for example \"123\".");
			else if (pg_mbstrlen_with_len(v.val.string.val, v.val.string.len) > METADATA_VALUE_MAX_CHARS)
				reject(field,
					   psprintf("Metadata values have at most %d characters.", METADATA_VALUE_MAX_CHARS),
					   NULL);
		}
	}
}

/*
 * max_amount of moneroo_limits: the one limit that refuses a request
 * rather than hold it, since no approval should make it payable.
 */
static void
check_max_amount(JsonbValue *amount_value, const char *currency, Oid schema)
{
	CurrencyLimits limits;
	int64		amount;

	limits = limits_of_currency(schema, currency);
	if (!limits.has_max_amount)
		return;
	amount = jsonb_int64_of(amount_value);
	if (amount > limits.max_amount)
		note_problem(PROBLEM_INVALID, "amount",
					 psprintf("%lld %s is above max_amount (%lld)",
							  (long long) amount, currency, (long long) limits.max_amount),
					 psprintf("%lld %s is above max_amount: moneroo_limits allows payouts of at most %lld %s.",
							  (long long) amount, currency, (long long) limits.max_amount, currency),
					 psprintf("Split the payout, or have max_amount of %s raised in moneroo_limits.", currency));
}

/* The value of a top-level field, or NULL when it is absent or JSON null. */
static JsonbValue *
required_field(JsonbContainer *root, const char *name)
{
	JsonbValue *value = jsonb_field(root, name);

	return value == NULL || value->type == jbvNull ? NULL : value;
}

void
moneroo_validate_request(Jsonb *request, Oid method_schema, bool check_limits)
{
	JsonbContainer *root;
	JsonbValue *value;
	JsonbValue *amount;
	char	   *method_code = NULL;
	char	   *currency = NULL;
	PayoutMethod *method = NULL;
	bool		amount_ok = false;

	if (request == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("payout request must not be null"),
				errhint("Pass a JSON object with amount, currency, description, method, customer and recipient."));
	if (!JB_ROOT_IS_OBJECT(request) || JB_ROOT_IS_SCALAR(request))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("payout request must be a JSON object"),
				errhint("Pass a JSON object with amount, currency, description, method, customer and recipient."));

	/* a problem left by a check that raised another error is not ours */
	forget_problems();
	root = &request->root;
	reject_unknown_keys(root, top_level_fields, lengthof(top_level_fields), "");
	for (int i = 0; i < lengthof(top_level_fields); i++)
		if (top_level_fields[i].required && required_field(root, top_level_fields[i].name) == NULL)
			reject_missing(top_level_fields[i].name);

	amount = required_field(root, "amount");
	if (amount)
		amount_ok = check_amount(amount);

	value = required_field(root, "currency");
	if (value && (currency = uppercase_code(value, 3)) == NULL)
		reject("currency",
			   "The currency must be an ISO 4217 code of three capital letters, such as \"XOF\".",
			   NULL);

	value = required_field(root, "description");
	if (value)
		check_text("description", value, DESCRIPTION_MAX_CHARS);

	value = required_field(root, "method");
	if (value && value->type != jbvString)
		reject_type("method", "a string", value);
	else if (value)
	{
		method_code = pnstrdup(value->val.string.val, value->val.string.len);
		method = find_payout_method(method_code, method_schema);
		if (method == NULL)
			reject("method",
				   psprintf("\"%s\" is not a known payout method.",
							text_for_message(value->val.string.val, value->val.string.len,
											 ECHO_MAX_BYTES, TEXT_KEEP_CONTROLS)),
				   "The known methods are listed in the moneroo_payout_methods table.");
		else if (currency && strcmp(method->currency, currency) != 0)
		{
			reject("currency",
				   psprintf("Method %s pays in %s, not %s.", method_code, method->currency, currency),
				   NULL);
			currency = NULL;
		}
	}
	if (amount_ok && currency && method && check_limits)
		check_max_amount(amount, currency, method_schema);

	value = required_field(root, "customer");
	if (value)
		check_customer(value);

	value = jsonb_field(root, "metadata");
	if (value != NULL && value->type != jbvNull)
		check_metadata(value);

	/* which recipient field to look for is the method's to say */
	value = required_field(root, "recipient");
	if (value && !jsonb_is_object(value))
		reject_type("recipient", "an object", value);
	else if (value && method)
		check_recipient(value, method, method_code);

	raise_problems();
}
