/*
 * payouts_table.c
 *		Finding the extension and its payouts table, and running the
 *		extension's statements on it.
 *
 * Finding the extension means scanning pg_extension, which has no syscache,
 * and the worker needs the answer for every statement it runs: where
 * payouts lives is looked up once and kept until the table changes.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "table/payouts_table.h"
#include "table/run_as_owner.h"

bool		moneroo_internal_write = false;

typedef struct PayoutsLocation
{
	bool		valid;
	Oid			schema;
	Oid			relid;
	char	   *qualified_name; /* in TopMemoryContext */
} PayoutsLocation;

static PayoutsLocation location;

/* Counts invalidations, so that a lookup can tell whether one came during it. */
static uint64 location_invalidations = 0;

/*
 * DROP EXTENSION locks the extension object, so holding a share lock on it
 * makes a drop wait for this transaction, or this one see the drop done,
 * rather than have the table vanish under a statement half-way through.
 */
bool
moneroo_extension_locked(void)
{
	Oid			extension = get_extension_oid("moneroo", true);

	if (!OidIsValid(extension))
		return false;
	/* taking the lock processes the invalidations of a drop we waited for */
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	return get_extension_oid("moneroo", true) == extension;
}

static void
forget_location(Datum arg, Oid relid)
{
	/* while a lookup runs, the relid it will find is not known yet */
	if (relid == InvalidOid || relid == location.relid || !location.valid)
	{
		location.valid = false;
		location_invalidations++;
	}
}

static void
forget_location_on_schema_change(Datum arg, int cacheid, uint32 hashvalue)
{
	location.valid = false;
	location_invalidations++;
}

static Oid
extension_schema(void)
{
	Oid			extension = get_extension_oid("moneroo", true);
	Oid			schema = InvalidOid;
	Relation	catalog;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;

	if (!OidIsValid(extension))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("extension \"moneroo\" is not installed in this database"),
				errhint("Run CREATE EXTENSION moneroo."));

	/* PostgreSQL 15 does not export get_extension_schema() */
	catalog = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(catalog, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	return schema;
}

/*
 * Dropping the extension drops payouts and renaming the table touches its
 * pg_class row, both of which invalidate its relcache entry; renaming the
 * schema touches pg_namespace.  Either way the location is looked up again.
 */
static PayoutsLocation *
payouts_location(void)
{
	static bool callback_registered = false;
	Oid			schema;
	Oid			relid;
	char	   *name;
	uint64		seen;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_location, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, forget_location_on_schema_change, (Datum) 0);
		callback_registered = true;
	}

	/* the catalog reads below may process invalidations: look again if one came */
	while (!location.valid)
	{
		seen = location_invalidations;
		schema = extension_schema();
		relid = get_relname_relid("payouts", schema);
		if (!OidIsValid(relid))
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_TABLE),
					errmsg("table \"payouts\" of extension \"moneroo\" is missing"));
		name = MemoryContextStrdup(TopMemoryContext,
								   psprintf("%s.payouts",
											quote_identifier(get_namespace_name(schema))));
		if (location.qualified_name)
			pfree(location.qualified_name);
		location.schema = schema;
		location.relid = relid;
		location.qualified_name = name;
		location.valid = location_invalidations == seen;
	}
	return &location;
}

Oid
payouts_schema(void)
{
	return payouts_location()->schema;
}

const char *
payouts_table_name(void)
{
	return payouts_location()->qualified_name;
}

/*
 * The flag is cleared even when the statement fails, so that no later user
 * statement inherits it.
 */
void
payouts_execute(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls, bool read_only, Snapshot snapshot)
{
	Oid			relid = payouts_location()->relid;
	int			rc;

	PG_TRY();
	{
		moneroo_internal_write = true;
		rc = moneroo_execute_as_owner(sql, nargs, types, values, nulls, read_only,
									  snapshot, relid);
	}
	PG_FINALLY();
	{
		moneroo_internal_write = false;
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "moneroo could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}
