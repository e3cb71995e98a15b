#!/usr/bin/env bash
# Proves: the README's pg_cron jobs run as written beside moneroo [slow, ~2 min].
# test/recipes/92_recipe_pg_cron.sh: the README's pg_cron jobs (Debian 12's
# postgresql-15-cron, 1.4.2) run as written beside moneroo.
#
# The server is restarted with the README's pg_cron settings (its ```ini
# block of "Scheduled jobs with pg_cron": moneroo and pg_cron preloaded, jobs
# in background workers; cron.database_name pointed at the test database),
# then CREATE EXTENSION pg_cron, and the README's two jobs are scheduled with
# the README's own SQL:
#   - the daily report: payout_reports, as the README creates it, gets one
#     row per currency and status of yesterday's payouts, right counts and
#     totals, and nothing of today's;
#   - the payroll, scheduled by a clerk's login (a member of the README's
#     payouts_writer): its run queues one payout per employee, keyed by month
#     and employee, created_by the clerk, which the worker sends (each one
#     created once at the mock); its second run succeeds and queues nothing,
#     leaving no trace in payout_events either.
# pg_cron 1.4 has no seconds schedules: to run the jobs during the test,
# cron.alter_job moves each to '* * * * *' (every minute), and the test
# waits for cron.job_run_details to show the runs (up to 75 s each).
#
# Yesterday's payouts: nobody may queue a payout in the past (the row guard
# keeps created_at at the INSERT's time: the daily limit counts by it), so
# the test queues them now, lets the worker send and settle them, and then,
# as the superuser with triggers off, moves their created_at back to
# yesterday at noon: as if they had been queued then.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 19

cleanup() {
    sql -c "SET client_min_messages = warning" \
        -c "SELECT cron.unschedule(jobid) FROM cron.job" -c "DROP EXTENSION IF EXISTS pg_cron" \
        -c "DROP TABLE IF EXISTS payout_reports, employees" \
        -c "DROP OWNED BY t92_clerk, payouts_writer" -c "DROP ROLE t92_clerk" -c "DROP ROLE payouts_writer" \
        >/dev/null 2>&1
}
trap cleanup EXIT

# ---------------------------------------------------------------- the README's settings
conf=$(readme_block "**Scheduled jobs with pg_cron**" ini)
# the test database, not the README's 'shop'
conf=$(printf '%s\n' "$conf" | sed "s/^cron.database_name = '[a-z]*'/cron.database_name = '$PGDATABASE'/")
grep -q "^shared_preload_libraries = 'moneroo,pg_cron'" <<<"$conf"
ok $? "README.md's pg_cron settings preload moneroo and pg_cron" "$conf"
# shellcheck disable=SC2086
cluster_conf_append "" "# ---- 92_recipe_pg_cron.sh: README.md's pg_cron settings ----" "$conf" ||
    bail "cannot append to postgresql.conf"
quiet_stack
cluster_restart >&2 || bail "the server does not restart with pg_cron preloaded"
wait_worker 20 >/dev/null || bail "the moneroo worker does not start beside pg_cron"
out=$(sql -c "CREATE EXTENSION pg_cron" 2>&1)
ok $? "CREATE EXTENSION pg_cron in the worker's database" "$out"

# ---------------------------------------------------------------- the daily report
report_sql=$(readme_block "**Scheduled jobs with pg_cron**" sql)
out=$(printf '%s\n' "$report_sql" | cluster_psql 2>&1)
ok $? "README.md's payout_reports table and daily report job, as written" "$out"

# Yesterday's payouts: two that succeed, one that fails (Moneroo's sandbox
# numbers), and one of today that the report must leave out.
insert_sql() {   # insert_sql ACCOUNT AMOUNT DESCRIPTION: the INSERT of one payout
    printf "INSERT INTO payouts (request) VALUES ('{\"amount\": %d, \"currency\": \"USD\",
        \"description\": \"%s\", \"method\": \"moneroo_payout_demo\",
        \"customer\": {\"email\": \"ada@example.com\", \"first_name\": \"Ada\", \"last_name\": \"Lovelace\"},
        \"recipient\": {\"account_number\": \"%s\"}}');\n" "$2" "$3" "$1"
}
out=$({ insert_sql 4149518161 500 "script 92 report yesterday"; insert_sql 4149518161 700 "script 92 report yesterday"
        insert_sql 4149518162 300 "script 92 report yesterday"; insert_sql 4149518161 900 "script 92 report today"; } | cluster_psql 2>&1)
ok $? "three payouts of \"yesterday\" and one of today queued" "$out"
settled() {
    local _
    for _ in $(seq 1 150); do
        [ "$(sql1 "SELECT count(*) FROM payouts WHERE $1 AND status NOT IN ('success', 'failed')")" = 0 ] && return 0
        sleep 0.2
    done
    return 1
}
settled "request ->> 'description' LIKE 'script 92 report %'"
ok $? "... sent and settled by the worker" "$(sql1 "SELECT string_agg(status, ' ') FROM payouts WHERE request ->> 'description' LIKE 'script 92 report %'")"
out=$(sql -c "SET session_replication_role = replica;
              UPDATE payouts SET created_at = current_date - 1 + time '12:00'
              WHERE request ->> 'description' = 'script 92 report yesterday'" 2>&1)
ok $? "... and three of them moved back to yesterday at noon (superuser, triggers off)" "$out"

# ---------------------------------------------------------------- the payroll
payroll_sql=$(readme_block "**The payroll as a pg_cron job**" sql)
out=$({
    readme_role payouts_writer
    # the clerk's login, as the README describes it
    echo "CREATE ROLE t92_clerk LOGIN IN ROLE payouts_writer;"
    echo "CREATE TABLE employees (id int PRIMARY KEY, first_name text, last_name text, email text, msisdn text, salary bigint);"
    echo "INSERT INTO employees VALUES (1, 'Awa', 'Koffi', 'awa@example.com', '22951345020', 150000),
          (2, 'Bio', 'Sika', 'bio@example.com', '22951345021', 175000), (3, 'Chabi', 'Dossou', 'chabi@example.com', '22951345022', 210000);"
    echo "GRANT SELECT ON employees TO t92_clerk; GRANT USAGE ON SCHEMA cron TO t92_clerk;"
    echo "SET ROLE t92_clerk;"
    printf '%s\n' "$payroll_sql"
    echo "RESET ROLE;"
} | cluster_psql 2>&1)
ok $? "README.md's payroll job, scheduled by the clerk's login" "$out"

# ---------------------------------------------------------------- run them now
# Every minute instead of 07:00 and the 28th: the only change to the README's jobs.
out=$(sql -c "SELECT cron.alter_job(jobid, schedule := '* * * * *') FROM cron.job" 2>&1)
ok $? "both jobs moved to '* * * * *' with cron.alter_job" "$out"

# runs JOBNAME: its runs that succeeded; wait_runs JOBNAME N: until N did (75 s each).
runs() { sql1 "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
               WHERE j.jobname = '$1' AND d.status = 'succeeded'"; }
wait_runs() {
    local deadline=$((SECONDS + 75 * $2))
    until [ "$(runs "$1")" -ge "$2" ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 1; done
}
details() { sql1 "SELECT string_agg(j.jobname || ': ' || d.status || ' ' || coalesce(d.return_message, ''), '; ')
                  FROM cron.job_run_details d JOIN cron.job j USING (jobid)"; }
wait_runs payouts-report 1
ok $? "pg_cron ran the daily report (cron.job_run_details: succeeded)" "$(details)"
is "$(sql1 "SELECT string_agg(format('%s %s %s %s %s', day - current_date, currency, status, n, total), ', ' ORDER BY status)
            FROM payout_reports")" "-1 USD failed 1 300, -1 USD success 2 1200" \
    "payout_reports: yesterday's payouts by currency and status (count, total), none of today's"

wait_runs payroll 1
ok $? "pg_cron ran the payroll job" "$(details)"
keys="idempotency_key LIKE 'payroll-' || to_char(current_date, 'YYYY-MM') || '/%'"
is "$(sql1 "SELECT string_agg(format('%s %s %s', idempotency_key, amount, created_by), ', ' ORDER BY idempotency_key) FROM payouts WHERE $keys")" \
    "$(for i in 1 2 3; do printf 'payroll-%s/%d %d t92_clerk, ' "$(date -u +%Y-%m)" "$i" $((i == 1 ? 150000 : i == 2 ? 175000 : 210000)); done | sed 's/, $//')" \
    "... queued one payout per employee, keyed by month and employee, created_by the clerk"
settled "$keys"
ok $? "... each sent by the worker and settled" "$(sql1 "SELECT string_agg(status || ' ' || coalesce(last_error, ''), '; ') FROM payouts WHERE $keys")"
is "$(mock_sent_twice) $(sql1 "SELECT count(*) FROM payouts WHERE $keys AND moneroo_id IS NOT NULL")" "0 3" \
    "... each created once at Moneroo (the mock), each with its Moneroo id"
is "$(sql1 "SELECT payouts || ' payouts, ' || settled_percent || ' % settled' FROM moneroo_batches
            WHERE batch = 'payroll-' || to_char(current_date, 'YYYY-MM')")" "3 payouts, 100.0 % settled" \
    "... and moneroo_batches shows the month's run, settled"

# Once the payroll's payouts are settled nothing moves them: a second run
# that queued a line again, or left a trace of a skipped one in the audit
# trail (an event of a payout that does not exist), shows here.
payroll_payouts() { sql1 "SELECT count(*) FROM payouts WHERE $keys"; }
payroll_events() { sql1 "SELECT count(*) FROM payout_events WHERE payout_id IN (SELECT id FROM payouts WHERE $keys)"; }
# (a deleted payout's history stays, ending with its deletion: not a phantom)
phantom_events() { sql1 "SELECT count(*) FROM payout_events e WHERE e.payout_id NOT IN (SELECT id FROM payouts)
                         AND NOT EXISTS (SELECT FROM payout_events d WHERE d.payout_id = e.payout_id AND d.status = 'deleted')"; }
events_before=$(payroll_events)
wait_runs payroll 2
ok $? "pg_cron ran the payroll job a second time, and it succeeded" "$(details)"
is "$(payroll_payouts)" 3 "... and queued no payout more"
is "$(payroll_events)" "$events_before" "... nor moved any of the first run's"
is "$(phantom_events)" 0 "... nor left an event of a payout that does not exist"

exit 0
