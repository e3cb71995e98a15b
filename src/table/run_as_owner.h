/*
 * run_as_owner.h
 *		Running the extension's own statements as the owner of its tables.
 */
#ifndef MONEROO_RUN_AS_OWNER_H
#define MONEROO_RUN_AS_OWNER_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/*
 * Refuses to go on when rel carries a trigger the extension did not create:
 * it would run with the owner's rights during the extension's writes.
 */
extern void moneroo_refuse_foreign_triggers(Relation rel);
extern void moneroo_refuse_foreign_triggers_of(Oid relid);

/*
 * Runs one statement through SPI as the owner of relation relid, with the
 * given snapshot (InvalidSnapshot: the usual one).  A statement that writes
 * relid has its triggers checked first; one that writes other tables too
 * checks theirs with moneroo_refuse_foreign_triggers_of.  The caller's role needs
 * only EXECUTE on the extension's function, not privileges on its tables.
 */
extern int	moneroo_execute_as_owner(const char *sql, int nargs, Oid *types,
									 Datum *values, const char *nulls,
									 bool read_only, Snapshot snapshot, Oid relid);

/*
 * The role that called the extension: current_user, or, while a statement
 * runs as an owner, the role that was current_user before the switch.
 */
extern Oid	moneroo_calling_role(void);

#endif
