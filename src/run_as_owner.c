/*
 * run_as_owner.c
 *		Running the extension's own statements as the owner of its tables.
 *
 * The statements are fixed text with parameters, so running them with the
 * owner's rights gives a caller nothing beyond what the SQL function it was
 * granted does -- the same reasoning as a SECURITY DEFINER function, with
 * SECURITY_LOCAL_USERID_CHANGE so that nothing run meanwhile can SET ROLE.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

#include "run_as_owner.h"

static Oid
owner_of(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

int
moneroo_execute_as_owner(const char *sql, int nargs, Oid *types, Datum *values,
						 const char *nulls, bool read_only, Snapshot snapshot,
						 Oid relid)
{
	Oid			saved_user;
	int			saved_context;
	int			rc;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(owner_of(relid), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL)
			elog(ERROR, "moneroo could not prepare \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot,
								  read_only, false, 0);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
	return rc;
}
