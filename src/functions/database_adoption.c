/*
 * database_adoption.c
 *		moneroo_copy_of and moneroo_adopt_database: whether this database is
 *		a copy or a restore that must not pay yet, and an operator's word
 *		that it may.
 */
#include "postgres.h"

#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "compat/compat.h"
#include "shmem/commit_wakeup.h"
#include "table/database_identity.h"

PG_FUNCTION_INFO_V1(moneroo_copy_of);
PG_FUNCTION_INFO_V1(moneroo_adopt_database);

/* moneroo_status's copy_of: NULL, or whose payouts this database holds. */
Datum
moneroo_copy_of(PG_FUNCTION_ARGS)
{
	char	   *copy_of = database_identity_copy_of();

	if (copy_of == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(copy_of));
}

/*
 * Returns what was recorded before, NULL if it was this database already.
 * Only the extension's owner (or a superuser): adopting lets the worker pay
 * every pending payout of the copy, and that is the owner's decision, even
 * for a role that was granted EXECUTE.
 */
Datum
moneroo_adopt_database(PG_FUNCTION_ARGS)
{
	char	   *before;

	if (!object_ownercheck(ExtensionRelationId, get_extension_oid("moneroo", false), GetUserId()))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to adopt database \"%s\" for moneroo",
					   get_database_name(MyDatabaseId)),
				errdetail("Only the owner of extension moneroo or a superuser may adopt a database."));
	before = database_identity_adopt();
	if (before != NULL)
	{
		ereport(LOG,
				errmsg("moneroo: database \"%s\" adopted by role \"%s\": its worker sends its payouts from now on",
					   get_database_name(MyDatabaseId), GetUserNameFromId(GetUserId(), false)),
				errdetail("Its payouts were recorded as those of %s.", before));
		moneroo_wake_worker_at_commit();	/* its pending payouts are due */
	}
	if (before == NULL)
		PG_RETURN_NULL();		/* it was this database's already */
	PG_RETURN_TEXT_P(cstring_to_text(before));
}
