/*
 * request_validator.h
 *		The one validator of payout requests, shared by moneroo_transfer and
 *		the payouts table's trigger.
 */
#ifndef MONEROO_REQUEST_VALIDATOR_H
#define MONEROO_REQUEST_VALIDATOR_H

#include "utils/jsonb.h"

/*
 * Raises ERROR with SQLSTATE 22023 naming the first offending field, or
 * returns when the request may be sent.  method_schema is the schema that
 * holds moneroo_payout_methods (and moneroo_limits).  check_limits is false
 * only for a row brought back from a dump, which was judged by the limits
 * of its day.
 */
extern void moneroo_validate_request(Jsonb *request, Oid method_schema, bool check_limits);

#endif
