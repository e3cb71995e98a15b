/*
 * payout_status.c
 *		Names and finality of the payout states.
 *
 * The status CHECK of the payouts table (sql/) spells the same names; the
 * C code reads and writes them only through this table.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "common/payout_status.h"

static const struct
{
	const char *name;
	bool		is_final;
	bool		uses_daily_limit;
}			payout_statuses[] = {
	[PAYOUT_PENDING] = {"pending", false, true},
	[PAYOUT_SENDING] = {"sending", false, true},
	[PAYOUT_SENT] = {"sent", false, true},
	[PAYOUT_SUCCESS] = {"success", true, true},
	[PAYOUT_FAILED] = {"failed", true, false},
	[PAYOUT_REJECTED] = {"rejected", true, false},
	[PAYOUT_UNKNOWN] = {"unknown", false, true},
	[PAYOUT_CANCELLED] = {"cancelled", true, false},
	[PAYOUT_HELD] = {"held", false, false},
};

static const struct
{
	const char *name;
	PayoutStatus payout_status;
}			moneroo_statuses[] = {
	[MONEROO_INITIATED] = {"initiated", PAYOUT_SENT},
	[MONEROO_PENDING] = {"pending", PAYOUT_SENT},
	[MONEROO_SUCCESS] = {"success", PAYOUT_SUCCESS},
	[MONEROO_FAILED] = {"failed", PAYOUT_FAILED},
};

const char *
payout_status_name(PayoutStatus status)
{
	return payout_statuses[status].name;
}

PayoutStatus
payout_status_from_name(const char *name)
{
	for (int i = 0; i < lengthof(payout_statuses); i++)
		if (strcmp(payout_statuses[i].name, name) == 0)
			return (PayoutStatus) i;
	elog(ERROR, "payouts holds an unknown status \"%s\"", name);
}

bool
payout_status_is_final(PayoutStatus status)
{
	return payout_statuses[status].is_final;
}

bool
payout_status_uses_daily_limit(PayoutStatus status)
{
	return payout_statuses[status].uses_daily_limit;
}

/*
 * The statuses counted against a daily_limit, as a SQL list for the usage
 * query: '(''pending'', ...)'.
 */
const char *
payout_statuses_using_daily_limit_sql(void)
{
	static char *list = NULL;

	if (list == NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (int i = 0; i < lengthof(payout_statuses); i++)
			if (payout_statuses[i].uses_daily_limit)
				appendStringInfo(&buf, "%s'%s'", buf.len ? ", " : "(", payout_statuses[i].name);
		appendStringInfoChar(&buf, ')');
		list = MemoryContextStrdup(TopMemoryContext, buf.data);
		pfree(buf.data);
	}
	return list;
}

const char *
moneroo_status_name(MonerooStatus status)
{
	return moneroo_statuses[status].name;
}

bool
moneroo_status_parse(const char *name, MonerooStatus *status)
{
	for (int i = 0; i < lengthof(moneroo_statuses); i++)
		if (strcmp(moneroo_statuses[i].name, name) == 0)
		{
			*status = (MonerooStatus) i;
			return true;
		}
	return false;
}

PayoutStatus
payout_status_for(MonerooStatus status)
{
	return moneroo_statuses[status].payout_status;
}
