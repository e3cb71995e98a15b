/*
 * payout_methods.h
 *		The payout methods of moneroo_payout_methods, as the validator needs
 *		them.
 */
#ifndef MONEROO_PAYOUT_METHODS_H
#define MONEROO_PAYOUT_METHODS_H

#include "utils/jsonb.h"

/* E.164: at most 15 digits; shorter than 7 is no phone number anywhere. */
#define PHONE_MIN_DIGITS 7
#define PHONE_MAX_DIGITS 15

/* What moneroo_payout_methods says about the requested method. */
typedef struct PayoutMethod
{
	char	   *currency;
	char	   *country;
	char	   *recipient_field;
	char	   *dial_code;		/* NULL: exempt from the dial-code check */
} PayoutMethod;

/*
 * The method code of the schema's moneroo_payout_methods, read as the
 * table's owner once per statement; NULL when there is no such method.
 */
extern PayoutMethod *find_payout_method(const char *code, Oid method_schema);

/* Notes what is wrong with recipient, whose field and dial code the method gives. */
extern void check_recipient(JsonbValue *recipient, PayoutMethod *method, const char *method_code);

#endif
