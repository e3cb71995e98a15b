/*
 * database_identity.c
 *		moneroo_database: the database whose payouts these are.
 *
 * A database copied with CREATE DATABASE ... TEMPLATE, or restored from a
 * dump, holds payouts that the original may have paid or may still pay,
 * under the same references.  Served as it is, it would pay them again.  So
 * the extension records its database when it is created (or updated to
 * 1.3), and a database is the one only while exactly one row names its own
 * OID: a copy has another OID, and a restore holds the dumped row beside
 * the one its CREATE EXTENSION wrote.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "table/database_identity.h"
#include "table/payouts_table.h"
#include "table/run_as_owner.h"

/* InvalidOid for a database still at 1.2 */
static Oid
identity_table(void)
{
	return get_relname_relid("moneroo_database", payouts_schema());
}

/*
 * Runs sql (with this database's OID as $1 and the calling role as $2) as
 * the table's owner; the result is the text of the first column of the
 * only row, or NULL.
 */
static char *
run_on_identity(Oid relid, const char *sql_format, bool read_only)
{
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2] = {ObjectIdGetDatum(MyDatabaseId),
		DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(moneroo_calling_role(), false)))};
	char	   *result = NULL;
	MemoryContext caller = CurrentMemoryContext;
	int			rc;

	SPI_connect();
	rc = moneroo_execute_as_owner(psprintf(sql_format,
										   quote_identifier(get_namespace_name(payouts_schema()))),
								  2, types, values, NULL, read_only, InvalidSnapshot, relid);
	if (rc < 0)
		elog(ERROR, "could not read moneroo_database: %s", SPI_result_code_string(rc));
	if (SPI_tuptable != NULL && SPI_processed == 1)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (value != NULL)
			result = MemoryContextStrdup(caller, value);
	}
	SPI_finish();
	return result;
}

/* The recorded rows, for messages, unless they are exactly this database. */
#define COPY_OF_SQL \
	"SELECT CASE WHEN count(*) = 1 AND bool_and(d.database_oid = $1) THEN NULL " \
	"ELSE coalesce(string_agg(format('\"%%s\" (OID %%s, recorded %%s)', " \
	"                                d.database_name, d.database_oid, d.recorded_at), " \
	"                         ', ' ORDER BY d.recorded_at), 'none') END " \
	"FROM %s.moneroo_database d"

char *
database_identity_copy_of(void)
{
	Oid			relid = identity_table();

	if (!OidIsValid(relid))
		return NULL;
	return run_on_identity(relid, COPY_OF_SQL, true);
}

char *
database_identity_adopt(void)
{
	Oid			relid = identity_table();
	char	   *before;

	if (!OidIsValid(relid))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("extension \"moneroo\" must be updated to adopt a database"),
				errhint("Run ALTER EXTENSION moneroo UPDATE."));
	/* two adoptions at once must not leave two rows (which no database matches) */
	(void) run_on_identity(relid, "LOCK TABLE %s.moneroo_database IN SHARE ROW EXCLUSIVE MODE", false);
	before = run_on_identity(relid, COPY_OF_SQL, true);
	(void) run_on_identity(relid,
						   "WITH gone AS (DELETE FROM %1$s.moneroo_database) "
						   "INSERT INTO %1$s.moneroo_database "
						   "(database_oid, database_name, recorded_by, recorded_at) "
						   "SELECT $1, current_database(), $2, now()",
						   false);
	return before;
}
