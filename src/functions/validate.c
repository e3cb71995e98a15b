/*
 * validate.c
 *		moneroo_validate(request): the validator alone, raising what an
 *		INSERT into payouts would, and sending nothing.
 */
#include "postgres.h"

#include "fmgr.h"

#include "table/payouts_table.h"
#include "table/request_validator.h"

PG_FUNCTION_INFO_V1(moneroo_validate_sql);

Datum
moneroo_validate_sql(PG_FUNCTION_ARGS)
{
	moneroo_validate_request(PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0), payouts_schema(), true);
	PG_RETURN_VOID();
}
