#!/usr/bin/env bash
# Proves: a writer holding a sent payout's row cannot stall the worker; callers cannot update rows past held [fast, ~30 s].
# test/faults/48_writer_stall.sh: a writer cannot stall the worker (1.3).
#
# README's payouts_writer may UPDATE (request, send_at, batch) and SELECT
# payouts.  An UPDATE that changed nothing used to be accepted on a row in
# any state, and so did SELECT ... FOR UPDATE: either locks a payout the
# worker is sending, and a writer idle in its transaction then made the
# worker's write of Moneroo's answer time out, again and again, while the
# worker claimed nothing new for the database.  Here, as README's
# payouts_writer (a login role t48_writer):
#   1. an UPDATE that changes nothing is refused (55000) on a payout that is
#      not pending or held, and still allowed on a pending one;
#   2. a payout A is locked FOR UPDATE while it is being sent (the mock
#      answers after 4 s): the worker cannot write its answer (lock timeout),
#      keeps it, and A stays "sending";
#   3. meanwhile a payout B is queued: the worker claims it and sends it;
#   4. once the writer's transaction ends, A's answer is written; Moneroo
#      created A and B once each.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings, the mock and the roles as it
# found them.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 7

ROLE=t48_writer
RUN="t48-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
LOCKER=t48_locker

# as_writer SQL: SQL run as the writer (its output, or the SQLSTATE and message of its error)
as_writer() {
    local out
    out=$(cluster_psql -U "$ROLE" -qAt -v ON_ERROR_STOP=1 -c '\set VERBOSITY verbose' -c "$1" 2>&1) ||
        out=$(printf '%s' "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\1: \2/p' | head -n 1)
    printf '%s' "$out"
}
wait_sql() {
    local deadline=$((SECONDS + $1))
    until [ "$(sql1 "SELECT ($2)")" = t ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
req() {
    printf '{"amount": 900, "currency": "USD", "description": "%s", "method": "moneroo_payout_demo",
             "customer": {"email": "t48@example.com", "first_name": "Stall", "last_name": "Writer"},
             "recipient": {"account_number": "4149518161"}}' "$RUN $1"
}
status_of() { sql1 "SELECT status FROM payouts WHERE request ->> 'description' = '$RUN $1'"; }

cleanup() {
    set +e
    sql -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$LOCKER'" \
        -c "SELECT moneroo_cancel(id) FROM payouts WHERE request ->> 'description' LIKE '$RUN %' AND status = 'pending'" \
        -c 'ALTER SYSTEM RESET moneroo.request_timeout' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    [ -n "${LOCKER_PID:-}" ] && wait "$LOCKER_PID" 2>/dev/null
    sql -q -c "REVOKE ALL ON payouts FROM $ROLE" -c "REVOKE ALL ON SCHEMA public FROM $ROLE" \
        -c "REVOKE ALL ON FUNCTION moneroo_transfer(jsonb), moneroo_transfer(jsonb, text), moneroo_validate(jsonb) FROM $ROLE" \
        -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
}
trap cleanup EXIT

wait_server 30 || bail "the server does not answer"
quiet_stack
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"
role_sql=$(readme_role payouts_writer)
[ -n "$role_sql" ] || bail "README.md's Security section creates no payouts_writer"
out=$(printf '%s\n' "${role_sql//payouts_writer/$ROLE}" "ALTER ROLE $ROLE LOGIN;" | cluster_psql -q 2>&1) ||
    bail "cannot create $ROLE: $out"
# the mock answers A after 4 s: within the request timeout, with time to lock A
sql -q -c "ALTER SYSTEM SET moneroo.request_timeout = '15s'" -c 'SELECT pg_reload_conf()' >/dev/null

# ---------------------------------------------------------------- 1. UPDATE
settled=$(sql1 "SELECT id FROM payouts WHERE status IN ('success', 'sent', 'failed') ORDER BY id DESC LIMIT 1")
if [ -z "$settled" ]; then
    sql -q -c "INSERT INTO payouts (request) VALUES ('$(req settled)')"
    wait_sql 20 "(SELECT status = 'success' FROM payouts WHERE request ->> 'description' = '$RUN settled')"
    settled=$(sql1 "SELECT id FROM payouts WHERE request ->> 'description' = '$RUN settled'")
fi
state=$(sql1 "SELECT status FROM payouts WHERE id = $settled")
is "$(as_writer "UPDATE payouts SET batch = batch WHERE id = $settled")" \
    "55000: cannot update payout $settled: it is $state" \
    "the writer's UPDATE that changes nothing is refused on a $state payout (55000)"
pending=$(as_writer "INSERT INTO payouts (request, send_at) VALUES ('$(req later)', now() + interval '1 day') RETURNING id")
is "$(as_writer "UPDATE payouts SET batch = batch WHERE id = $pending")" "" \
    "... and allowed on a pending one"

# ---------------------------------------------------------------- 2. a lock on a payout being sent
mock_ctl POST /__mock/faults '{"kind": "hang", "seconds": 4, "route": "initialize", "count": 1}' >/dev/null
sql -q -c "INSERT INTO payouts (request) VALUES ('$(req A)')"
wait_sql 10 "(SELECT status = 'sending' FROM payouts WHERE request ->> 'description' = '$RUN A')" ||
    diag "A is not being sent: $(status_of A)"
PGAPPNAME=$LOCKER cluster_psql -U "$ROLE" -q -c "BEGIN" \
    -c "SELECT id FROM payouts WHERE request ->> 'description' = '$RUN A' FOR UPDATE" \
    -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
LOCKER_PID=$!
wait_sql 10 "EXISTS (SELECT FROM pg_stat_activity WHERE application_name = '$LOCKER' AND query LIKE '%pg_sleep%')" ||
    diag "the writer's session does not hold A"
wait_sql 20 "(SELECT last_error LIKE '%lock timeout%' FROM moneroo_status)"
is "$(status_of A)/$(sql1 "SELECT last_error LIKE '%lock timeout%' FROM moneroo_status")" "sending/t" \
    "while the writer holds A locked (SELECT ... FOR UPDATE), the worker cannot write its answer: A stays sending, last_error says why"

# ---------------------------------------------------------------- 3. new work goes on
sql -q -c "INSERT INTO payouts (request) VALUES ('$(req B)')"
wait_sql 15 "(SELECT status IN ('sent', 'success') FROM payouts WHERE request ->> 'description' = '$RUN B')"
is "$(sql1 "SELECT status IN ('sent', 'success') FROM payouts WHERE request ->> 'description' = '$RUN B'")" "t" "a payout queued meanwhile is claimed and sent: one locked row does not stop the worker"
is "$(status_of A)" "sending" "... while A's answer is still kept, waiting for its row"

# ---------------------------------------------------------------- 4. the lock goes
sql -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$LOCKER'" >/dev/null
wait "$LOCKER_PID" 2>/dev/null; LOCKER_PID=""
wait_sql 40 "(SELECT status IN ('sent', 'success') AND moneroo_id IS NOT NULL FROM payouts WHERE request ->> 'description' = '$RUN A')"
is "$(sql1 "SELECT status IN ('sent', 'success') AND moneroo_id IS NOT NULL FROM payouts WHERE request ->> 'description' = '$RUN A'")" "t" "once the writer's transaction ends, A's answer is written (with its Moneroo id)"
is "$(mock_sent_twice)" "0" "Moneroo created every payout once"
