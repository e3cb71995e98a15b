/*
 * statement_key.c
 *		Which statement is running (see statement_key.h).
 */
#include "postgres.h"

#include "access/xact.h"
#include "storage/proc.h"

#include "common/statement_key.h"
#include "compat/compat.h"

bool
statement_key_is_current(StatementKey *key)
{
	LocalTransactionId lxid = compat_my_lxid();
	CommandId	command = GetCurrentCommandId(false);
	TimestampTz statement = GetCurrentStatementStartTimestamp();

	if (key->valid && key->lxid == lxid && key->command == command && key->statement == statement)
		return true;
	key->valid = true;
	key->lxid = lxid;
	key->command = command;
	key->statement = statement;
	return false;
}
