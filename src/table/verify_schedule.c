/*
 * verify_schedule.c
 *		When to ask Moneroo again about a sent payout.
 *
 * Every verification is a request of the same per-minute allowance the
 * payouts still waiting to leave need.  Without webhooks, polling is how a
 * payout settles: soon at first (most settle within seconds in the
 * sandbox), then less and less often.  Once Moneroo's webhooks are
 * arriving, each one has its payout verified at once (webhook.c), so polls
 * become the safety net Moneroo's documentation asks for ("never rely on
 * webhooks alone"): one late poll, moneroo.verify_max_interval after the
 * last, for the payout whose webhook never comes.  Without webhooks, the
 * worker learns from recent settled payouts how long each method takes
 * (bank rails minutes, mobile money seconds) and polls when an answer is
 * likely, instead of from 2 seconds on: by Moneroo's own success_at /
 * failed_at, since when the worker happened to look would only teach it
 * its own schedule.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/settings.h"
#include "shmem/shared_state.h"
#include "table/payouts_table.h"
#include "table/verify_schedule.h"


/*
 * When the last signed webhook reached any backend, in shared memory: the
 * workers poll less often while webhooks arrive.
 */
typedef struct WebhooksShared
{
	slock_t		mutex;			/* protects last_webhook_at */
	TimestampTz last_webhook_at;
} WebhooksShared;

static WebhooksShared *webhooks_shared = NULL;

void
verify_schedule_shmem(void)
{
	MONEROO_SHARED_PART("moneroo webhooks", WebhooksShared, &webhooks_shared);
}

void
verify_schedule_note_webhook(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (webhooks_shared == NULL)
		return;
	SpinLockAcquire(&webhooks_shared->mutex);
	webhooks_shared->last_webhook_at = now;
	SpinLockRelease(&webhooks_shared->mutex);
}

/* When the last signed webhook came in (0: none since the server started). */
static TimestampTz
last_webhook(void)
{
	TimestampTz at;

	if (webhooks_shared == NULL)
		return 0;
	SpinLockAcquire(&webhooks_shared->mutex);
	at = webhooks_shared->last_webhook_at;
	SpinLockRelease(&webhooks_shared->mutex);
	return at;
}

static bool
webhooks_arriving(void)
{
	TimestampTz last = last_webhook();

	return last != 0 &&
		!TimestampDifferenceExceeds(last, GetCurrentTimestamp(), WEBHOOKS_RECENT_MS);
}

/* ---- what the worker learned ---- */

/* Settled payouts the worker learns from, the newest first. */
#define LEARN_FROM_PAYOUTS 500
/* Fewer settled payouts of a method than this teach nothing about it. */
#define LEARN_MIN_SAMPLES 5
/* The polls of a learned method, at these shares of its payouts settled. */
#define LEARNED_POLLS 3
static const double learned_shares[LEARNED_POLLS] = {0.75, 0.95, 1.0};
/*
 * A poll waits this much longer: Moneroo's timestamps are whole seconds
 * (always ".000000Z"), so a settle time read from them is up to a second
 * short, and its clock and ours differ a little.  (Both are absolute: a
 * margin in percent only delays the last poll of a slow rail, by 9 s at
 * 3 minutes with 5 %.)
 */
#define LEARNED_MARGIN_PERCENT 1
#define LEARNED_MARGIN_MS 1000
#define LEARNED_METHODS 64

typedef struct LearnedMethod
{
	char		method[NAMEDATALEN];
	int64		settled_ms[LEARNED_POLLS];	/* from sent_at, at each share */
} LearnedMethod;

/* The worker's own: backends (moneroo_verify) schedule as if nothing was learned. */
static LearnedMethod learned[LEARNED_METHODS];
static int	n_learned = 0;

void
verify_schedule_learn(void)
{
	int			n = 0;

	/*
	 * Newest first through the primary key, final ones only: a few hundred
	 * rows whatever the table's size.  Moneroo's timestamps come from its
	 * answer; one that is not an ISO time, whole (nothing after the zone)
	 * and on the calendar (no 30 February), is left out, not cast: a cast
	 * that fails would fail the worker's transaction every time.
	 */
	SPI_connect();
	payouts_execute(psprintf("SELECT method, percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY ms) "
							 "FROM (SELECT method, (1000 * extract(epoch FROM settled_at - sent_at))::float8 AS ms "
							 "      FROM (SELECT method, sent_at, "
							 "                   coalesce(response #>> '{data,success_at}', "
							 "                            response #>> '{data,failed_at}') AS at "
							 "            FROM %s WHERE status IN ('success', 'failed') AND sent_at IS NOT NULL "
							 "            ORDER BY id DESC LIMIT %d) r "
							 "      CROSS JOIN LATERAL (SELECT CASE WHEN r.at ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
							 "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$' "
							 "                                  AND substr(r.at, 1, 4) <> '0000' "
							 "                            THEN CASE WHEN substr(r.at, 9, 2)::int <= extract(day FROM "
							 "                                   make_date(substr(r.at, 1, 4)::int, substr(r.at, 6, 2)::int, 1) "
							 "                                   + interval '1 month - 1 day') "
							 "                                 THEN r.at::timestamptz END END AS settled_at) t "
							 "      WHERE t.settled_at >= r.sent_at) s "
							 "GROUP BY method HAVING count(*) >= %d",
							 payouts_table_name(), LEARN_FROM_PAYOUTS, LEARN_MIN_SAMPLES),
					1, (Oid[]) {FLOAT8ARRAYOID},
					(Datum[]) {PointerGetDatum(construct_array((Datum[]) {
						Float8GetDatum(learned_shares[0]), Float8GetDatum(learned_shares[1]),
						Float8GetDatum(learned_shares[2])}, LEARNED_POLLS, FLOAT8OID,
																sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))},
					NULL, true, InvalidSnapshot);
	for (uint64 i = 0; i < SPI_processed && n < LEARNED_METHODS; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		settled = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull);
		ArrayType  *ms;
		Datum	   *values;
		int			count;

		if (isnull)
			continue;
		ms = DatumGetArrayTypeP(settled);
		if (ARR_ELEMTYPE(ms) != FLOAT8OID)
			elog(ERROR, "unexpected settle times of payout method %s",
				 SPI_getvalue(row, SPI_tuptable->tupdesc, 1));
		deconstruct_array(ms, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &values, NULL, &count);
		if (count != LEARNED_POLLS)
			continue;
		strlcpy(learned[n].method, SPI_getvalue(row, SPI_tuptable->tupdesc, 1), NAMEDATALEN);
		for (int k = 0; k < LEARNED_POLLS; k++)
			learned[n].settled_ms[k] = (int64) DatumGetFloat8(values[k]);
		n++;
	}
	n_learned = n;
	SPI_finish();
}

static const LearnedMethod *
learned_method(const char *method)
{
	if (method == NULL)
		return NULL;
	for (int i = 0; i < n_learned; i++)
		if (strcmp(learned[i].method, method) == 0)
			return &learned[i];
	return NULL;
}

static int64
poll_time_ms(const LearnedMethod *m, int k)
{
	return m->settled_ms[k] * (100 + LEARNED_MARGIN_PERCENT) / 100 + LEARNED_MARGIN_MS;
}

int
verify_delay_ms(const char *method, int verifications)
{
	const LearnedMethod *m = learned_method(method);
	int64		min = moneroo_verify_min_interval_ms;
	int64		delay = min;
	int64		polls[LEARNED_POLLS];
	int			n_polls = 0;
	int			doublings = verifications;

	if (webhooks_arriving())
		return moneroo_verify_max_interval_ms;
	if (m != NULL)
	{
		/* the learned times, less those within verify_min_interval of the one before */
		for (int k = 0; k < LEARNED_POLLS; k++)
		{
			int64		at = poll_time_ms(m, k);

			if (n_polls == 0 || at - polls[n_polls - 1] >= min)
				polls[n_polls++] = at;
		}
		if (verifications < n_polls)
			delay = polls[verifications] - (verifications > 0 ? polls[verifications - 1] : 0);
		else
		{
			/*
			 * Later than every payout settled: back off, doubling, from the
			 * width of the method's tail (its last two poll times apart),
			 * or from its whole scale when all of them settled within
			 * verify_min_interval of each other.  A spread rail has
			 * payouts a little past the latest it learned (1 in n + 1 of
			 * them, after n): they should not wait a whole scale more.
			 */
			delay = Max(min, n_polls > 1 ? polls[n_polls - 1] - polls[n_polls - 2] :
						polls[n_polls - 1]);
			doublings = verifications - n_polls;
		}
	}
	if (m == NULL || verifications >= n_polls)
		for (int i = 0; i < doublings && delay < moneroo_verify_max_interval_ms; i++)
			delay *= 2;
	return (int) Max(min, Min(delay, (int64) moneroo_verify_max_interval_ms));
}
