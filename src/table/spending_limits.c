/*
 * spending_limits.c
 *		moneroo_limits: max_amount, approval_above and daily_limit.
 *
 * max_amount is a rule of validation (request_validator.c).  The other two
 * decide whether a valid payout is held for a second person; the row guard
 * asks here.
 *
 * The daily limit must hold exactly when many sessions queue payouts at
 * once.  Each judgement takes a lock on the currency that is kept until
 * the transaction ends, so that the transactions queueing in one currency
 * follow one another; the first judgement of a transaction reads the
 * currency's usage of the last 24 hours with the latest snapshot (it sees
 * every transaction that held the lock before), and later ones add what
 * this transaction let through since.  Rows of the statement now running
 * are invisible to any query, which is why the usage is not read again.
 * A subtransaction that aborts takes its additions with it (and, if it
 * took the lock, the lock and the usage read under it).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "common/jsonb_fields.h"
#include "common/payout_status.h"
#include "common/statement_key.h"
#include "table/run_as_owner.h"
#include "table/spending_limits.h"

/* What this transaction knows of one currency's usage, under its lock. */
typedef struct UsageAddition
{
	SubTransactionId subxact;
	int64		amount;
} UsageAddition;

typedef struct CurrencyUsage
{
	char		currency[4];
	SubTransactionId locked_in;	/* where the lock and the reading were taken */
	int64		read;			/* the usage read under the lock */
	List	   *additions;		/* of UsageAddition, since the reading */
} CurrencyUsage;

/* In TopTransactionContext; NIL at the start of every transaction. */
static List *known_usage = NIL;

static Oid
limits_table(Oid schema)
{
	return get_relname_relid("moneroo_limits", schema);
}

/*
 * moneroo_limits as one statement sees it: the validator and the row guard
 * both ask for every row a statement writes, and the table (a row per
 * currency) is read once per statement (statement_key.h).
 */
typedef struct LimitsRow
{
	char		currency[4];
	CurrencyLimits limits;
} LimitsRow;

static struct
{
	StatementKey key;
	Oid			schema;
	int			n;
	LimitsRow  *rows;			/* in TopMemoryContext */
}			limits_seen;

static void
read_limits(Oid schema, Oid relid)
{
	int			n;

	SPI_connect();
	if (moneroo_execute_as_owner(psprintf("SELECT currency, max_amount, approval_above, daily_limit "
										  "FROM %s.moneroo_limits",
										  quote_identifier(get_namespace_name(schema))),
								 0, NULL, NULL, NULL, true, InvalidSnapshot, relid) != SPI_OK_SELECT)
		elog(ERROR, "could not read moneroo_limits");
	n = (int) SPI_processed;
	if (limits_seen.rows != NULL)
		pfree(limits_seen.rows);
	limits_seen.rows = MemoryContextAllocZero(TopMemoryContext, sizeof(LimitsRow) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		CurrencyLimits *limits = &limits_seen.rows[i].limits;
		bool		isnull;
		Datum		value;

		strlcpy(limits_seen.rows[i].currency, SPI_getvalue(row, desc, 1), sizeof(limits_seen.rows[i].currency));
		value = SPI_getbinval(row, desc, 2, &isnull);
		limits->has_max_amount = !isnull;
		limits->max_amount = isnull ? 0 : DatumGetInt64(value);
		value = SPI_getbinval(row, desc, 3, &isnull);
		limits->has_approval_above = !isnull;
		limits->approval_above = isnull ? 0 : DatumGetInt64(value);
		value = SPI_getbinval(row, desc, 4, &isnull);
		limits->has_daily_limit = !isnull;
		limits->daily_limit = isnull ? 0 : DatumGetInt64(value);
	}
	limits_seen.n = n;
	SPI_finish();
}

CurrencyLimits
limits_of_currency(Oid schema, const char *currency)
{
	CurrencyLimits none = {0};
	Oid			relid = limits_table(schema);

	if (!OidIsValid(relid))
		return none;
	if (!statement_key_is_current(&limits_seen.key) || limits_seen.schema != schema)
	{
		/* a failed read leaves nothing to trust */
		limits_seen.key.valid = false;
		read_limits(schema, relid);
		limits_seen.schema = schema;
		limits_seen.key.valid = true;
	}
	for (int i = 0; i < limits_seen.n; i++)
		if (strcmp(limits_seen.rows[i].currency, currency) == 0)
			return limits_seen.rows[i].limits;
	return none;
}

/*
 * The lock of one currency: an object lock in the database, named by the
 * moneroo_limits table and the currency's three letters, which pg_locks
 * shows as locktype "object", classid moneroo_limits.
 */
static void
lock_currency(Oid schema, const char *currency)
{
	uint32		code = ((uint32) (unsigned char) currency[0] << 16) |
		((uint32) (unsigned char) currency[1] << 8) | (uint32) (unsigned char) currency[2];

	LockDatabaseObject(limits_table(schema), code, 0, ExclusiveLock);
}

/* The payouts of the last 24 hours counted against the limit, seen now. */
static int64
read_usage(Oid schema, const char *currency)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(currency)};
	Oid			payouts = get_relname_relid("payouts", schema);
	int64		usage;
	bool		isnull;

	SPI_connect();
	if (moneroo_execute_as_owner(psprintf("SELECT coalesce(sum(amount), 0)::int8 FROM %s.payouts "
										  "WHERE currency = $1 AND status IN %s "
										  "AND created_at > now() - interval '24 hours'",
										  quote_identifier(get_namespace_name(schema)),
										  payout_statuses_using_daily_limit_sql()),
								 1, types, values, NULL, true, GetLatestSnapshot(),
								 payouts) != SPI_OK_SELECT)
		elog(ERROR, "could not read the daily usage of %s", currency);
	usage = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return usage;
}

/* The currency's usage, under its lock from now until the transaction ends. */
static CurrencyUsage *
usage_under_lock(Oid schema, const char *currency)
{
	ListCell   *lc;
	CurrencyUsage *usage;
	MemoryContext old;

	foreach(lc, known_usage)
	{
		usage = lfirst(lc);
		if (strcmp(usage->currency, currency) == 0)
			return usage;
	}

	lock_currency(schema, currency);
	old = MemoryContextSwitchTo(TopTransactionContext);
	usage = palloc0(sizeof(CurrencyUsage));
	strlcpy(usage->currency, currency, sizeof(usage->currency));
	usage->locked_in = GetCurrentSubTransactionId();
	usage->read = read_usage(schema, currency);
	known_usage = lappend(known_usage, usage);
	MemoryContextSwitchTo(old);
	return usage;
}

static int64
usage_total(CurrencyUsage *usage)
{
	int64		total = usage->read;
	ListCell   *lc;

	foreach(lc, usage->additions)
		total += ((UsageAddition *) lfirst(lc))->amount;
	return total;
}

static void
add_usage(CurrencyUsage *usage, int64 amount)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	UsageAddition *addition = palloc(sizeof(UsageAddition));

	addition->subxact = GetCurrentSubTransactionId();
	addition->amount = amount;
	usage->additions = lappend(usage->additions, addition);
	MemoryContextSwitchTo(old);
}

char *
limits_hold_reason(Oid schema, Jsonb *request, bool peek)
{
	/* both validated: three capital letters and a positive integer */
	JsonbValue *currency_value = jsonb_field(&request->root, "currency");
	JsonbValue *amount_value = jsonb_field(&request->root, "amount");
	char	   *currency = pnstrdup(currency_value->val.string.val, currency_value->val.string.len);
	int64		amount = jsonb_int64_of(amount_value);
	CurrencyLimits limits = limits_of_currency(schema, currency);
	CurrencyUsage *usage = NULL;
	int64		used;

	if (limits.has_approval_above && amount > limits.approval_above)
		return psprintf("held for approval: the amount %lld %s is above approval_above (%lld)",
						(long long) amount, currency, (long long) limits.approval_above);
	if (!limits.has_daily_limit)
		return NULL;

	if (peek)
		used = read_usage(schema, currency);
	else
	{
		usage = usage_under_lock(schema, currency);
		used = usage_total(usage);
	}
	if (used + amount > limits.daily_limit)
		return psprintf("held for approval: %lld %s in the last 24 hours and this %lld would pass daily_limit (%lld)",
						(long long) used, currency, (long long) amount,
						(long long) limits.daily_limit);
	if (!peek)
		add_usage(usage, amount);
	return NULL;
}

void
limits_refuse_to_send_held(const char *reason)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("payout was not sent: it would be held for approval"),
			errdetail("The payout is %s.", reason),
			errhint("moneroo_transfer cannot wait for a second person: queue it with INSERT INTO payouts and have another role approve it with moneroo_approve()."));
}

void
limits_count_approved(Oid schema, const char *currency, int64 amount)
{
	if (limits_of_currency(schema, currency).has_daily_limit)
		add_usage(usage_under_lock(schema, currency), amount);
}

static void
forget_usage_at_end(XactEvent event, void *arg)
{
	/* the memory went with TopTransactionContext */
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		known_usage = NIL;
}

/*
 * A subtransaction that began at or after subid is subid or one nested in
 * it: its rows are gone, and so is a lock it took.
 */
static void
forget_usage_of_subxact(SubXactEvent event, SubTransactionId subid,
						SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, known_usage)
	{
		CurrencyUsage *usage = lfirst(lc);
		ListCell   *alc;

		if (usage->locked_in >= subid)
		{
			known_usage = foreach_delete_current(known_usage, lc);
			continue;
		}
		foreach(alc, usage->additions)
			if (((UsageAddition *) lfirst(alc))->subxact >= subid)
				usage->additions = foreach_delete_current(usage->additions, alc);
	}
}

void
limits_register_callbacks(void)
{
	RegisterXactCallback(forget_usage_at_end, NULL);
	RegisterSubXactCallback(forget_usage_of_subxact, NULL);
}
