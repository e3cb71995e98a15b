/*
 * statement_key.h
 *		Which statement is running, for what is read once per statement.
 */
#ifndef MONEROO_STATEMENT_KEY_H
#define MONEROO_STATEMENT_KEY_H

#include "datatype/timestamp.h"
#include "storage/lock.h"

/*
 * The validator and the row guard read the same small tables (the payout
 * methods, the limits) for every row a statement writes.  A statement is
 * told apart by its transaction, its command counter (which moves after
 * every writing command of the transaction) and the client statement's
 * start: a change in this transaction is seen by its next statement,
 * another session's by the next statement after it commits.
 */
typedef struct StatementKey
{
	bool		valid;
	LocalTransactionId lxid;
	CommandId	command;
	TimestampTz statement;
} StatementKey;

/*
 * True when key names the statement now running; otherwise makes it name
 * it and returns false (the caller reads again).
 */
extern bool statement_key_is_current(StatementKey *key);

#endif
