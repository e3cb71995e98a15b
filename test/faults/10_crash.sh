#!/usr/bin/env bash
# Proves: crashes mid-request send no payout twice and lose none (safety rules 1-3) [fast, ~40 s].
# test/faults/10_crash.sh: crashes and restarts while payouts are in flight.
#
# Money-safety rules 1-3 of the contract under the worst timing: the server
# goes down while the worker has requests on the wire to Moneroo.  The mock
# creates each payout as soon as the request arrives and answers only
# LATENCY_MS later, so at the moment of the crash Moneroo holds payouts whose
# answer the worker never read.  After every crash and restart:
#   - no payout stays in "sending": those caught in flight become "unknown",
#     with a last_error saying why (the next start settles them);
#   - every payout queued is still there, and ends sent/success/failed/unknown;
#   - every payout Moneroo created is on record: sent/success/failed with that
#     moneroo_id, or unknown; none is recorded as sent with an id Moneroo does
#     not have;
#   - no reference was POSTed (let alone created) twice.
#
# Rounds: (a) pg_ctl stop -m immediate at three moments (first sends, mid
# queue, queue tail); (b) pg_ctl stop -m fast: requests in flight are seen
# through and recorded (none unknown), claimed-but-unsent ones go back to
# pending, everything drains once; (c) kill -9 of the worker alone (the
# postmaster then restarts every backend), with a moneroo_transfer() waiting.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings and the mock as it found them.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

N=50                 # payouts per round
LATENCY_MS=1000      # the mock answers this long after creating (request_timeout is 2s)
PLAN=42

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"

# ---------------------------------------------------------------- set-up / clean-up
restore() {
    set +e
    if ! cluster_is_running; then cluster_start >/dev/null 2>&1; fi
    wait_server 30
    cluster_psql -q -c 'ALTER SYSTEM RESET moneroo.rate_limit' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
}
trap restore EXIT

if ! wait_server 30; then
    echo "Bail out! the server does not answer"
    exit 1
fi
mock_ctl POST /__mock/reset '{}' >/dev/null
mock_ctl POST /__mock/config "{\"rate_limit\": 0, \"latency_ms\": $LATENCY_MS}" >/dev/null
sql -q -c 'ALTER SYSTEM SET moneroo.rate_limit = 0' -c 'SELECT pg_reload_conf()' >/dev/null

# Each round's payouts cycle through the sandbox numbers (success, failed,
# pending forever): queue "$tag" "$N" "${ACCOUNTS[@]}" (test/lib/server.sh).
ACCOUNTS=(4149518161 4149518162 4149518163)

# counts MARK TAG: "pending sending done unknown other total" of the round's payouts.
counts() {
    sql -c "SELECT count(*) FILTER (WHERE status = 'pending') || ' ' ||
                   count(*) FILTER (WHERE status = 'sending') || ' ' ||
                   count(*) FILTER (WHERE status IN ('sent', 'success', 'failed')) || ' ' ||
                   count(*) FILTER (WHERE status = 'unknown') || ' ' ||
                   count(*) FILTER (WHERE status NOT IN ('pending', 'sending', 'sent', 'success',
                                                         'failed', 'unknown')) || ' ' ||
                   count(*)
            FROM payouts WHERE id > $1 AND request ->> 'description' LIKE '$2 #%'"
}

# wait_until MARK TAG CONDITION SECONDS: wait (in the server, bounded) until
# CONDITION holds for the round's payouts; CONDITION may use the columns
# pending, sending, done, unknown (counts).  Prints t or f.
wait_until() {
    sql -c "SELECT mock.wait_for(\$c\$ (SELECT $3 FROM (
                SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                       count(*) FILTER (WHERE status = 'sending') AS sending,
                       count(*) FILTER (WHERE status IN ('sent', 'success', 'failed')) AS done,
                       count(*) FILTER (WHERE status = 'unknown') AS unknown
                FROM payouts WHERE id > $1 AND request ->> 'description' LIKE '$2 #%') AS c) \$c\$, $4)" 2>/dev/null
}

# wait_drained MARK TAG SECONDS: until none of the round's payouts is pending or sending.
wait_drained() {
    local deadline=$((SECONDS + $3)) c
    while :; do
        c=$(counts "$1" "$2" 2>/dev/null) || c=""
        case $c in "0 0 "*) return 0 ;; esac
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.25
    done
}

# check_round NAME MARK TAG EXPECT_UNKNOWN: the invariants after a restart.
# EXPECT_UNKNOWN: "some" (a crash caught requests in flight) or "none".
check_round() {
    local name=$1 mark=$2 tag=$3 expect=$4 c bad
    local mine="SELECT * FROM payouts WHERE id > $mark AND request ->> 'description' LIKE '$tag #%'"
    local at_mock="SELECT p ->> 'id' AS mid, p ->> 'reference' AS ref FROM mock.payouts() AS p
                   WHERE p -> 'body' ->> 'description' LIKE '$tag #%'"
    local posts="SELECT j -> 'body' -> 'metadata' ->> 'payout_reference' AS ref FROM mock.journal() AS j
                 WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
                   AND j -> 'body' ->> 'description' LIKE '$tag #%'"

    wait_drained "$mark" "$tag" 45
    c=$(counts "$mark" "$tag")
    bad=$(sql1 "SELECT count(*) FILTER (WHERE request ->> 'description' ~ '#[0-9]+\$') || ' queued, ' ||
                       count(*) FILTER (WHERE status NOT IN ('sent', 'success', 'failed', 'unknown'))
                       || ' not sent/success/failed/unknown'
                FROM ($mine) m")
    is "$bad" "$N queued, 0 not sent/success/failed/unknown" \
        "$name: all $N queued payouts are on record and none is left pending or sending" \
        "counts (pending sending done unknown other total): $c"

    if [ "$expect" = some ]; then
        bad=$(sql1 "SELECT count(*) FILTER (WHERE status = 'unknown') || ' unknown, ' ||
                           count(*) FILTER (WHERE status = 'unknown' AND coalesce(btrim(last_error), '') = '')
                           || ' without last_error'
                    FROM ($mine) m")
        case $bad in
            "0 unknown"*) fail "$name: the payouts caught in flight became unknown, each with a last_error saying why" \
                                "no payout is unknown: the crash caught nothing in flight, or the rows in sending were not settled as unknown ($bad)" ;;
            *", 0 without last_error") pass "$name: the payouts caught in flight became unknown, each with a last_error saying why ($bad)" ;;
            *) fail "$name: the payouts caught in flight became unknown, each with a last_error saying why" "$bad" ;;
        esac
    else
        bad=$(sql1 "SELECT count(*) || coalesce(': ' || string_agg(id || ' ' || left(coalesce(last_error, ''), 120), '; '), '')
                    FROM ($mine) m WHERE status = 'unknown'")
        is "$bad" "0" "$name: no payout became unknown (requests in flight were seen through and recorded)"
    fi

    bad=$(sql1 "SELECT count(*) || coalesce(': ' || string_agg(a.ref || ' -> ' || coalesce(m.status || ' ' || coalesce(m.moneroo_id, '-'), 'no row'), '; '), '')
                FROM ($at_mock) a LEFT JOIN ($mine) m ON m.reference::text = a.ref
                WHERE m.id IS NULL
                   OR NOT (m.status = 'unknown'
                           OR (m.status IN ('sent', 'success', 'failed') AND m.moneroo_id = a.mid))")
    is "$bad" "0" "$name: every payout Moneroo created is recorded (sent/success/failed with its moneroo_id, or unknown)"

    bad=$(sql1 "SELECT count(*) || coalesce(': ' || string_agg(m.id || ' ' || m.status || ' ' || coalesce(m.moneroo_id, '-'), '; '), '')
                FROM ($mine) m
                WHERE (m.status IN ('sent', 'success', 'failed') OR m.moneroo_id IS NOT NULL)
                  AND NOT EXISTS (SELECT 1 FROM ($at_mock) a
                                  WHERE a.ref = m.reference::text AND a.mid = m.moneroo_id)")
    is "$bad" "0" "$name: every payout recorded with a moneroo_id exists at Moneroo under that id and reference"

    bad=$(sql1 "SELECT count(*) || coalesce(': ' || string_agg(ref || ' x' || n, '; '), '')
                FROM (SELECT ref, count(*) AS n FROM ($posts) p GROUP BY ref HAVING count(*) > 1) d")
    is "$bad" "0" "$name: no payout was POSTed to Moneroo twice"

    bad=$(sql1 "SELECT count(*) || ' created for ' || count(DISTINCT ref) || ' references'
                FROM ($at_mock) a")
    case $bad in
        ERROR:*) fail "$name: no payout was created twice at Moneroo" "$bad" ;;
        *)
            local created=${bad%% *} distinct
            distinct=${bad#* created for }; distinct=${distinct%% *}
            if [ "$created" = "$distinct" ]; then
                pass "$name: no payout was created twice at Moneroo ($bad)"
            else
                fail "$name: no payout was created twice at Moneroo" "$bad"
            fi ;;
    esac
    if [ "$expect" = none ]; then
        is "$(sql1 "SELECT count(*) FROM ($at_mock) a")" "$N" \
            "$name: Moneroo created each of the $N payouts exactly once"
    fi
}

# ---------------------------------------------------------------- (a) immediate stop
# crash_round NAME MOMENT: queue, wait for MOMENT, pg_ctl stop -m immediate, start.
crash_round() {
    local name=$1 moment=$2 tag="10_crash $1" mark got pid rc

    mark=$(queue "$tag" "$N" "${ACCOUNTS[@]}") || { fail "$name: queue $N payouts"; return; }
    got=$(wait_until "$mark" "$tag" "$moment" 20)
    diag "$name: at the crash: $(counts "$mark" "$tag" 2>/dev/null) (pending sending done unknown other total)"
    rc=0
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 30 -s || rc=$?
    is "$got $rc" "t 0" "$name: pg_ctl stop -m immediate while requests are in flight ($moment)" \
        "got is 'MOMENT_REACHED PG_CTL_STATUS'"
    cluster_is_running && cluster_stop immediate

    cluster_start >/dev/null 2>&1; wait_server 30
    pid=$(wait_worker 20) && rc=0 || rc=1
    ok "$rc" "$name: after the restart the server answers and the worker runs again"
    check_round "$name" "$mark" "$tag" some
}

crash_round "immediate stop at the first sends" "sending >= 1 AND done = 0"
crash_round "immediate stop mid-queue"          "sending >= 1 AND done >= 16"
crash_round "immediate stop at the queue tail"  "sending >= 1 AND pending = 0"

# ---------------------------------------------------------------- (b) fast stop
fast_round() {
    local name="fast shutdown" tag="10_crash fast" mark got rc t0 secs
    mark=$(queue "$tag" "$N" "${ACCOUNTS[@]}") || { fail "$name: queue $N payouts"; return; }
    got=$(wait_until "$mark" "$tag" "sending >= 4 AND done >= 8" 20)
    diag "$name: at the stop: $(counts "$mark" "$tag" 2>/dev/null) (pending sending done unknown other total)"
    t0=$SECONDS; rc=0
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 30 -s || rc=$?
    secs=$((SECONDS - t0))
    is "$got $rc" "t 0" "$name: pg_ctl stop -m fast completes while requests are in flight (in ${secs}s)" \
        "got is 'MOMENT_REACHED PG_CTL_STATUS'"
    if cluster_is_running; then cluster_stop immediate; fi

    cluster_start >/dev/null 2>&1; wait_server 30
    # a payout left in sending would be made unknown by the next start: "none
    # unknown" below says the shutdown recorded or requeued each one
    wait_worker 20 >/dev/null && rc=0 || rc=1
    ok "$rc" "$name: after the restart the worker runs again"
    check_round "$name" "$mark" "$tag" none
}
fast_round

# ---------------------------------------------------------------- (c) kill -9 of the worker
kill_round() {
    local name="kill -9 of the worker" tag="10_crash kill" mark got pid newpid rc transfer_pid
    pid=$(wait_worker 20) || { fail "$name: find the worker"; return; }
    mark=$(queue "$tag" "$N" "${ACCOUNTS[@]}") || { fail "$name: queue $N payouts"; return; }
    got=$(wait_until "$mark" "$tag" "sending >= 1 AND done >= 4" 20)
    # one more payout through moneroo_transfer, waiting on the worker when it dies
    cluster_psql -At -c "SELECT status FROM moneroo_transfer(jsonb_build_object(
            'amount', 100, 'currency', 'USD', 'description', '$tag #transfer',
            'method', 'moneroo_payout_demo',
            'customer', jsonb_build_object('email', 'crash@example.com', 'first_name', 'Crash', 'last_name', 'Test'),
            'recipient', jsonb_build_object('account_number', '4149518161')))" >/dev/null 2>&1 &
    transfer_pid=$!
    sleep 0.3
    diag "$name: at the kill: $(counts "$mark" "$tag" 2>/dev/null) (pending sending done unknown other total)"
    rc=0
    kill -KILL "$pid" || rc=$?
    is "$got $rc" "t 0" "$name: kill -9 of the worker (pid $pid) while requests are in flight" \
        "got is 'MOMENT_REACHED KILL_STATUS'"
    wait "$transfer_pid" 2>/dev/null
    sleep 1   # the postmaster notices, stops every backend and restarts
    wait_server 30
    newpid=$(wait_worker 30 "$pid") && rc=0 || rc=1
    ok "$rc" "$name: the postmaster restarts and a new worker runs (pid ${newpid:-none})"

    # the moneroo_transfer payout, if the worker recorded it, is checked with the others
    check_round "$name" "$mark" "$tag" some
}
kill_round

# every reference ever created by this script, once
is "$(sql1 "SELECT count(*) FROM (SELECT p ->> 'reference' FROM mock.payouts() p
            WHERE p -> 'body' ->> 'description' LIKE '10_crash %'
            GROUP BY 1 HAVING count(*) > 1) d")" "0" \
    "over all rounds: no payout reference was created twice at Moneroo"

[ "$T" -eq "$PLAN" ] || diag "ran $T tests, planned $PLAN"
exit 0
