/*
 * state_counts.c
 *		moneroo_state_counts, the number of payouts in each state.
 *
 * moneroo_status must stay cheap however many settled payouts the table
 * holds, and its counts exact.  Counting payouts by state reads the whole
 * table; a counter row per state, updated by every change, would make every
 * transaction that queues a payout wait for every other one (and for the
 * worker) on the "pending" row.  So every statement that changes states
 * appends rows of changes (+n into a state, -n out of the one before) in
 * the statement itself (audit_trail.c writes them with the statement's
 * events), and nobody ever updates a row: the sums are exact in every
 * snapshot and nobody waits for anybody.  The worker folds the rows into
 * one per state every few seconds, so that there are few to sum, and counts
 * the payouts again when it starts.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "table/payouts_table.h"
#include "table/run_as_owner.h"
#include "table/state_counts.h"

static void
run_on_counts(Oid schema, const char *sql_format)
{
	const char *nspname = quote_identifier(get_namespace_name(schema));
	Oid			counts = get_relname_relid("moneroo_state_counts", schema);
	int			rc;

	/* a database still at 1.1 counts by scanning */
	if (!OidIsValid(counts))
		return;
	SPI_connect();
	rc = moneroo_execute_as_owner(psprintf(sql_format, nspname), 0, NULL, NULL, NULL, false,
								  InvalidSnapshot, counts);
	if (rc < 0)
		elog(ERROR, "could not update moneroo_state_counts: %s", SPI_result_code_string(rc));
	SPI_finish();
}

char *
state_counts_insert_sql(Oid schema_oid, const char *changes, const char *deleted_status)
{
	const char *schema = quote_identifier(get_namespace_name(schema_oid));

	/* written as the owner, like payouts: no trigger of anyone else's may run */
	moneroo_refuse_foreign_triggers_of(get_relname_relid("moneroo_state_counts", schema_oid));
	return psprintf("INSERT INTO %1$s.moneroo_state_counts (status, payouts) "
					"SELECT c.status, sum(c.delta) FROM ("
					"    SELECT status, 1 FROM %2$s WHERE status <> %3$s "
					"    UNION ALL "
					"    SELECT previous_status, -1 FROM %2$s WHERE previous_status IS NOT NULL"
					"  ) AS c(status, delta) "
					"GROUP BY c.status HAVING sum(c.delta) <> 0",
					schema, changes, quote_literal_cstr(deleted_status));
}

void
state_counts_forget_all(Relation payouts)
{
	run_on_counts(RelationGetNamespace(payouts), "DELETE FROM %1$s.moneroo_state_counts");
}

void
state_counts_fold(void)
{
	run_on_counts(payouts_schema(),
				  "WITH folded AS (DELETE FROM %1$s.moneroo_state_counts RETURNING status, payouts) "
				  "INSERT INTO %1$s.moneroo_state_counts (status, payouts) "
				  "SELECT status, sum(payouts) FROM folded GROUP BY status HAVING sum(payouts) <> 0");
}

/*
 * One snapshot for both halves: a change committed before it is in the
 * count and its rows are deleted; one committed after it keeps its rows.
 */
void
state_counts_recount(void)
{
	run_on_counts(payouts_schema(),
				  "WITH gone AS (DELETE FROM %1$s.moneroo_state_counts) "
				  "INSERT INTO %1$s.moneroo_state_counts (status, payouts) "
				  "SELECT status, count(*) FROM %1$s.payouts GROUP BY status");
}
