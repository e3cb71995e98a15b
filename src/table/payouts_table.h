/*
 * payouts_table.h
 *		Where the extension's payouts table lives, and the one way the
 *		extension runs its statements on it.
 */
#ifndef MONEROO_PAYOUTS_TABLE_H
#define MONEROO_PAYOUTS_TABLE_H

#include "utils/snapshot.h"

/*
 * True while the extension itself writes payouts: the row guard lets only
 * these writes move a payout between states.
 */
extern bool moneroo_internal_write;

/*
 * Whether the extension is installed in this database, and stays so until
 * this transaction ends (for the worker, which must not see its table
 * vanish half-way through a statement).
 */
extern bool moneroo_extension_locked(void);

/* Schema of the moneroo extension, where payouts lives. */
extern Oid	payouts_schema(void);

/* "schema".payouts, for building statements. */
extern const char *payouts_table_name(void);

/*
 * Runs one statement on payouts as the extension: as the table's owner,
 * with the guard's moneroo_internal_write set, and with the given snapshot
 * (InvalidSnapshot: the usual one).  Raises an error when it fails; the
 * caller has connected SPI and reads SPI_tuptable.
 */
extern void payouts_execute(const char *sql, int nargs, Oid *types, Datum *values,
							const char *nulls, bool read_only, Snapshot snapshot);

#endif
