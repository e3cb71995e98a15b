/*
 * run_as_owner.h
 *		Running the extension's own statements as the owner of its tables.
 */
#ifndef MONEROO_RUN_AS_OWNER_H
#define MONEROO_RUN_AS_OWNER_H

#include "postgres.h"

#include "executor/spi.h"

/*
 * SPI_execute_with_args, or SPI_execute_snapshot when snapshot is given,
 * as the owner of relation relid.  The caller's role needs only EXECUTE on
 * the extension's function, not privileges on its tables.
 */
extern int	moneroo_execute_as_owner(const char *sql, int nargs, Oid *types,
									 Datum *values, const char *nulls,
									 bool read_only, Oid relid);
extern int	moneroo_execute_snapshot_as_owner(SPIPlanPtr plan, Datum *values,
											  Snapshot snapshot, Oid relid);

#endif
