/*
 * jsonb_fields.h
 *		Reading jsonb values: the one field lookup, type name and parser of
 *		untrusted JSON that the validator, the API reader and the webhook
 *		share.
 */
#ifndef MONEROO_JSONB_FIELDS_H
#define MONEROO_JSONB_FIELDS_H

#include "utils/jsonb.h"

/* The value under key; NULL when object is NULL, not an object, or lacks it. */
extern JsonbValue *jsonb_field(JsonbContainer *object, const char *key);

/* The object a value holds; NULL for anything else (NULL included). */
extern JsonbContainer *jsonb_object_of(JsonbValue *value);

extern bool jsonb_is_object(JsonbValue *value);

/* Whether value is the JSON string s. */
extern bool jsonb_string_is(JsonbValue *value, const char *s);

/* "a string", "a number", "an object", ...: for messages. */
extern const char *jsonb_type_name(JsonbValue *value);

/*
 * Digits of a JSON integer or a JSON string of digits, NULL for anything
 * else (signs, fractions, exponents, spaces, empty strings).
 */
extern char *jsonb_digits_of(JsonbValue *value);

/* A JSON number already known to be an integer that fits, as an int64. */
extern int64 jsonb_int64_of(JsonbValue *value);

/*
 * Parses JSON that came from outside (Moneroo's answers, webhook bodies)
 * without ever raising an error: NULL when it is not usable JSON.
 */
extern Jsonb *jsonb_parse_untrusted(const char *text, size_t len);

#endif
