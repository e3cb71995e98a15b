/*
 * payout_store.c
 *		Every write the extension makes to the payouts table, through SPI.
 *
 * Each write names the state it expects the row to be in, so that two
 * writers (the worker, an operator's moneroo_retry, a webhook) can never
 * move a payout along two paths at once.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/jsonb_fields.h"
#include "common/payout_status.h"
#include "common/settings.h"
#include "table/payout_store.h"
#include "table/payouts_table.h"
#include "table/verify_schedule.h"

PayoutWork *
payout_work_new(MemoryContext parent)
{
	MemoryContext context = AllocSetContextCreate(parent, "moneroo payout",
												  ALLOCSET_SMALL_SIZES);
	PayoutWork *work = MemoryContextAllocZero(context, sizeof(PayoutWork));

	work->context = context;
	work->transfer_slot = -1;
	return work;
}

void
payout_work_free(PayoutWork *work)
{
	MemoryContextDelete(work->context);
}

static Datum
jsonb_or_null(Jsonb *value, char *null_flag)
{
	*null_flag = value ? ' ' : 'n';
	return value ? JsonbPGetDatum(value) : (Datum) 0;
}

static Datum
text_or_null(const char *value, char *null_flag)
{
	*null_flag = value ? ' ' : 'n';
	return value ? CStringGetTextDatum(value) : (Datum) 0;
}

PayoutWork *
payout_store_insert_sending(Jsonb *request, const char *reference, const char *idempotency_key,
							MemoryContext parent)
{
	Oid			types[3] = {JSONBOID, TEXTOID, TEXTOID};
	Datum		values[3] = {JsonbPGetDatum(request), CStringGetTextDatum(reference),
	idempotency_key ? CStringGetTextDatum(idempotency_key) : (Datum) 0};
	PayoutWork *work = payout_work_new(parent);
	JsonbValue *method;
	bool		isnull;

	SPI_connect();
	/* the key's column is named only when there is a key: a 1.1 schema lacks it */
	payouts_execute(psprintf("INSERT INTO %s (request, reference, status, attempts%s) "
							 "VALUES ($1, $2::uuid, 'sending', 1%s) RETURNING id",
							 payouts_table_name(),
							 idempotency_key ? ", idempotency_key" : "",
							 idempotency_key ? ", $3" : ""),
					idempotency_key ? 3 : 2, types, values, NULL, false, InvalidSnapshot);
	work->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	work->reference = MemoryContextStrdup(work->context, reference);
	/* validated: a string */
	method = jsonb_field(&request->root, "method");
	work->method = MemoryContextAllocZero(work->context, method->val.string.len + 1);
	memcpy(work->method, method->val.string.val, method->val.string.len);
	/* built in SPI's memory, which dies with SPI_finish: only the text is kept */
	work->request_body = MemoryContextStrdup(work->context,
											 moneroo_initialize_body(request, reference));
	SPI_finish();
	return work;
}

/*
 * The rows a claim or a lease returned, as PayoutWork under parent:
 * (id, reference, request, method) to send, or (id, moneroo_id,
 * verifications, method) to verify.  The initialize body is built in SPI's
 * memory; only its text is kept.  The list itself is in the caller's
 * context.
 */
static List *
work_from_rows(MemoryContext caller, MemoryContext parent, bool to_send)
{
	List	   *works = NIL;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *text = SPI_getvalue(row, desc, 2);
		PayoutWork *work = payout_work_new(parent);
		MemoryContext spi;

		work->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		work->method = MemoryContextStrdup(work->context, SPI_getvalue(row, desc, 4));
		if (to_send)
		{
			work->reference = MemoryContextStrdup(work->context, text);
			work->request_body =
				MemoryContextStrdup(work->context,
									moneroo_initialize_body(DatumGetJsonbP(SPI_getbinval(row, desc, 3, &isnull)),
															text));
		}
		else
		{
			work->moneroo_id = MemoryContextStrdup(work->context, text);
			work->verifications = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		}
		spi = MemoryContextSwitchTo(caller);
		works = lappend(works, work);
		MemoryContextSwitchTo(spi);
	}
	return works;
}

List *
payout_store_claim(int n, MemoryContext parent)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(n)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *claimed;

	SPI_connect();

	/*
	 * SKIP LOCKED: a row an operator or another claimer holds is simply
	 * someone else's.  The claim commits before any request leaves.
	 */
	payouts_execute(psprintf("WITH due AS ("
							 "  SELECT id FROM %1$s"
							 "  WHERE status = 'pending'"
							 "    AND (next_attempt_at IS NULL OR next_attempt_at <= now())"
							 "  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
							 "UPDATE %1$s p SET status = 'sending', attempts = p.attempts + 1 "
							 "FROM due WHERE p.id = due.id "
							 "RETURNING p.id, p.reference::text, p.request, p.method",
							 payouts_table_name()),
					1, types, values, NULL, false, InvalidSnapshot);
	claimed = work_from_rows(caller, parent, true);
	SPI_finish();
	return claimed;
}

List *
payout_store_lease_verifications(int n, int lease_ms, MemoryContext parent)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(n), Int32GetDatum(lease_ms)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *leased;

	SPI_connect();
	payouts_execute(psprintf("WITH due AS ("
							 "  SELECT id FROM %1$s"
							 "  WHERE status = 'sent' AND next_attempt_at <= now()"
							 "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
							 "UPDATE %1$s p SET next_attempt_at = now() + $2 * interval '1 millisecond' "
							 "FROM due WHERE p.id = due.id "
							 "RETURNING p.id, p.moneroo_id, p.verifications, p.method",
							 payouts_table_name()),
					2, types, values, NULL, false, InvalidSnapshot);
	leased = work_from_rows(caller, parent, false);
	SPI_finish();
	return leased;
}

void
payout_store_unlease(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET next_attempt_at = now() WHERE id = $1 AND status = 'sent'",
							 payouts_table_name()),
					1, types, values, NULL, false, InvalidSnapshot);
	SPI_finish();
}

uint64
payout_store_settle_orphans(void)
{
	uint64		settled;

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET status = 'unknown', "
							 "last_error = 'the worker stopped while this payout was being sent; "
							 "check Moneroo for its reference before retrying' "
							 "WHERE status = 'sending'",
							 payouts_table_name()),
					0, NULL, NULL, NULL, false, InvalidSnapshot);
	settled = SPI_processed;
	SPI_finish();
	return settled;
}

/*
 * A second row with the same Moneroo id means Moneroo's answer is wrong or
 * was replayed; the unique constraint would make it an error, and an error
 * here would lose the payout's record.  Such an answer leaves it unknown.
 */
static bool
moneroo_id_taken(const char *moneroo_id, int64 id)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(moneroo_id), Int64GetDatum(id)};

	payouts_execute(psprintf("SELECT 1 FROM %s WHERE moneroo_id = $1 AND id <> $2",
							 payouts_table_name()),
					2, types, values, NULL, true, InvalidSnapshot);
	return SPI_processed > 0;
}

/* The state an initialize exchange leaves its payout in. */
static PayoutStatus
status_after_send(SendVerdict verdict, bool requeue)
{
	switch (verdict)
	{
		case SEND_ACCEPTED:
			return PAYOUT_SENT;
		case SEND_REFUSED:
			return PAYOUT_REJECTED;
		case SEND_NOT_SENT:
			return requeue ? PAYOUT_PENDING : PAYOUT_REJECTED;
		case SEND_UNKNOWN:
			return PAYOUT_UNKNOWN;
	}
	elog(ERROR, "unexpected send verdict %d", (int) verdict);
}

/* What entering that state does to the row's other columns. */
static const char *
columns_after_send(PayoutStatus status)
{
	switch (status)
	{
		case PAYOUT_SENT:
			/* a sent payout is first verified on the verification schedule */
			return "moneroo_status = 'initiated', sent_at = now(), verifications = 0, "
				"next_attempt_at = now() + $5 * interval '1 millisecond'";
		case PAYOUT_PENDING:
			return "next_attempt_at = now() + $5 * interval '1 millisecond'";
		case PAYOUT_REJECTED:
			return "completed_at = now(), next_attempt_at = NULL";
		default:
			return "next_attempt_at = NULL";
	}
}

SendVerdict
payout_store_record_send(int64 id, const char *reference, SendVerdict verdict,
						 MonerooAnswer *answer, int next_attempt_ms, bool requeue)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7];
	const char *error;
	PayoutStatus status;
	MemoryContext caller = CurrentMemoryContext;

	memset(nulls, ' ', sizeof(nulls));
	SPI_connect();
	if (verdict == SEND_ACCEPTED && moneroo_id_taken(answer->moneroo_id, id))
	{
		answer->error = MemoryContextStrdup(caller,
											psprintf("Moneroo answered with id \"%s\", which another payout already carries",
													 answer->moneroo_id));
		verdict = SEND_UNKNOWN;
	}
	status = status_after_send(verdict, requeue);
	error = answer->error;
	if (verdict == SEND_NOT_SENT && !requeue && error != NULL)
		error = psprintf("not sent, moneroo_transfer raised an error: %s", error);

	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(verdict == SEND_ACCEPTED ? answer->moneroo_id : NULL, &nulls[1]);
	values[2] = text_or_null(error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	values[4] = Int32GetDatum(next_attempt_ms);
	/* the reference too: ids start again if the extension is recreated */
	values[5] = CStringGetTextDatum(reference);
	values[6] = CStringGetTextDatum(payout_status_name(status));

	payouts_execute(psprintf("UPDATE %s SET status = $7, moneroo_id = $2, last_error = $3, "
							 "response = $4, %s%s "
							 "WHERE id = $1 AND reference = $6::pg_catalog.uuid AND status = 'sending'",
							 payouts_table_name(), columns_after_send(status),
							 answer->uncounted ? ", attempts = attempts - 1" : ""),
					7, types, values, nulls, false, InvalidSnapshot);
	if (SPI_processed != 1)
		ereport(WARNING,
				errcode(ERRCODE_INTERNAL_ERROR),
				errmsg("payout %lld was no longer in state \"sending\" when its result came back",
					   (long long) id),
				errdetail("The result was: %s%s%s.", send_verdict_name(verdict),
						  verdict == SEND_ACCEPTED ? ", Moneroo id " : "",
						  verdict == SEND_ACCEPTED ? answer->moneroo_id : ""));
	SPI_finish();
	return verdict;
}

void
payout_store_record_verify(int64 id, const char *moneroo_id, bool ok, MonerooAnswer *answer,
						   int next_check_ms)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7];
	PayoutStatus status = ok ? payout_status_for(answer->moneroo_status) : PAYOUT_SENT;
	const char *sql;

	memset(nulls, ' ', sizeof(nulls));
	SPI_connect();
	values[0] = Int64GetDatum(id);
	values[1] = text_or_null(ok ? moneroo_status_name(answer->moneroo_status) : NULL, &nulls[1]);
	values[2] = text_or_null(ok ? NULL : answer->error, &nulls[2]);
	values[3] = jsonb_or_null(answer->body, &nulls[3]);
	values[4] = Int32GetDatum(next_check_ms);
	values[5] = CStringGetTextDatum(moneroo_id);
	values[6] = CStringGetTextDatum(payout_status_name(status));

	/*
	 * Only a sent payout moves: a final one stays final, so that a verify
	 * answer that lost a race with a webhook cannot take it backwards.
	 */
	if (!ok)
		sql = psprintf("UPDATE %s SET last_error = $3, verifications = verifications + 1, "
					   "next_attempt_at = now() + $5 * interval '1 millisecond' "
					   "WHERE id = $1 AND moneroo_id = $6 AND status = 'sent'",
					   payouts_table_name());
	else
		sql = psprintf("UPDATE %s SET status = $7, moneroo_status = $2, last_error = NULL, "
					   "response = $4, verifications = verifications + 1, %s "
					   "WHERE id = $1 AND moneroo_id = $6 AND status = 'sent'",
					   payouts_table_name(),
					   payout_status_is_final(status) ?
					   "completed_at = now(), next_attempt_at = NULL" :
					   "next_attempt_at = now() + $5 * interval '1 millisecond'");
	payouts_execute(sql, 7, types, values, nulls, false, InvalidSnapshot);
	SPI_finish();
}

void
payout_store_requeue(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET status = 'pending', next_attempt_at = NULL, "
							 "last_error = 'requeued by moneroo_retry after: ' || coalesce(last_error, 'no error') "
							 "WHERE id = $1 AND status = 'unknown'",
							 payouts_table_name()),
					1, types, values, NULL, false, InvalidSnapshot);
	SPI_finish();
}

void
payout_store_schedule_verification(int64 id, TimestampTz at)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2] = {Int64GetDatum(id), TimestampTzGetDatum(at)};

	/* a row already due by then is not written at all */
	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET next_attempt_at = $2 "
							 "WHERE id = $1 AND status = 'sent' "
							 "AND (next_attempt_at IS NULL OR next_attempt_at > $2)",
							 payouts_table_name()),
					2, types, values, NULL, false, InvalidSnapshot);
	SPI_finish();
}

bool
payout_store_approve(int64 id, const char *approver)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), CStringGetTextDatum(approver)};
	bool		done;

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET status = 'pending', "
							 "last_error = 'approved by ' || $2 || coalesce(' after: ' || last_error, '') "
							 "WHERE id = $1 AND status = 'held'",
							 payouts_table_name()),
					2, types, values, NULL, false, InvalidSnapshot);
	done = SPI_processed == 1;
	SPI_finish();
	return done;
}

bool
payout_store_cancel(int64 id, PayoutStatus from, const char *actor)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3] = {Int64GetDatum(id), CStringGetTextDatum(payout_status_name(from)),
	CStringGetTextDatum(actor)};
	bool		done;

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET status = 'cancelled', completed_at = now(), "
							 "next_attempt_at = NULL, "
							 "last_error = 'cancelled by ' || $3 || coalesce(' after: ' || last_error, '') "
							 "WHERE id = $1 AND status = $2",
							 payouts_table_name()),
					3, types, values, NULL, false, InvalidSnapshot);
	done = SPI_processed == 1;
	SPI_finish();
	return done;
}

bool
payout_store_acknowledge(int64 id, PayoutStatus status, const char *actor, const char *note)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4] = {Int64GetDatum(id), CStringGetTextDatum(payout_status_name(status)),
	CStringGetTextDatum(actor), CStringGetTextDatum(note)};
	bool		done;

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET acknowledged_at = now(), acknowledged_by = $3, "
							 "acknowledgement = $4 "
							 "WHERE id = $1 AND status = $2 AND acknowledged_at IS NULL",
							 payouts_table_name()),
					4, types, values, NULL, false, InvalidSnapshot);
	done = SPI_processed == 1;
	SPI_finish();
	return done;
}

bool
payout_store_adopt(int64 id, PayoutStatus from, const char *moneroo_id, MonerooAnswer *answer,
				   const char *why)
{
	Oid			types[8] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[8];
	PayoutStatus status = payout_status_for(answer->moneroo_status);
	bool		done;

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(payout_status_name(from));
	values[2] = CStringGetTextDatum(moneroo_id);
	values[3] = CStringGetTextDatum(moneroo_status_name(answer->moneroo_status));
	values[4] = JsonbPGetDatum(answer->body);
	values[5] = CStringGetTextDatum(payout_status_name(status));
	values[6] = Int32GetDatum(verify_delay_ms(NULL, 0));
	values[7] = CStringGetTextDatum(why);

	SPI_connect();
	payouts_execute(psprintf("UPDATE %s SET status = $6, moneroo_id = $3, moneroo_status = $4, "
							 "response = $5, sent_at = coalesce(sent_at, now()), verifications = 0, "
							 "last_error = $8, %s "
							 "WHERE id = $1 AND status = $2",
							 payouts_table_name(),
							 payout_status_is_final(status) ?
							 "completed_at = now(), next_attempt_at = NULL" :
							 "next_attempt_at = now() + $7 * interval '1 millisecond'"),
					8, types, values, NULL, false, InvalidSnapshot);
	done = SPI_processed == 1;
	SPI_finish();
	return done;
}
