#!/usr/bin/env bash
# Proves: the worker behaves as a PostgreSQL process (signals, reloads, restarts) [slow, ~1.5 min].
# test/faults/20_worker_signals.sh: the background worker is a well-behaved
# PostgreSQL process.
#
#   - it shows in pg_stat_activity as "moneroo worker" (backend_type and
#     application_name) and in moneroo_status;
#   - SIGTERM (pg_terminate_backend) while requests are in flight: those are
#     seen through and recorded (none unknown), the worker comes back by itself
#     and sends the rest, each payout once;
#   - SIGHUP: ALTER SYSTEM SET moneroo.max_concurrency + pg_reload_conf()
#     takes effect in the running worker, both ways;
#   - a due pending payout that another transaction holds locked is skipped
#     (others still flow) without the worker spinning on it, and is sent once
#     when the lock goes;
#   - a payout whose answer comes while another transaction holds its row
#     locked: the worker's write gives up after lock_timeout (the other
#     answers are written) and the kept answer is written when the lock goes;
#   - CREATE DATABASE / DROP DATABASE (a ProcSignalBarrier every process must
#     absorb, through SIGUSR1) completes promptly while the worker is busy;
#   - DROP EXTENSION moneroo under the running worker: it keeps running
#     quietly, and serves the table again after CREATE EXTENSION;
#   - postmaster death: the worker exits by itself instead of sending on;
#     after the restart the payouts it had in flight are unknown, none is
#     left in sending and none is sent twice.
#
# Not covered here: a standby (the worker is registered with
# BgWorkerStart_RecoveryFinished, so it does not start during recovery), and
# DROP DATABASE of the worker's own database (the other tests need it).
#
# Run by test/run.sh (bash, TAP on stdout).  Leaves the settings, the mock and
# the extension (installed, possibly with an empty payouts table) as it found
# them.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

PLAN=23
TMPDB=moneroo_signals_tmp

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"

# ---------------------------------------------------------------- SQL
# reload_settings SQL...: ALTER SYSTEM statements, then pg_reload_conf(), then
# a moment for the postmaster to pass SIGHUP on and the worker to read it.
reload_settings() {
    local args=() s
    for s in "$@"; do args+=(-c "$s"); done
    sql -q "${args[@]}" -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.7
}
mock_config() { mock_ctl POST /__mock/config "$1" >/dev/null; }
mock_reset() { mock_ctl POST /__mock/reset '{}' >/dev/null; }

# queue TAG N ACCOUNT... (test/lib/server.sh): these payouts alternate success and failed
BOTH=(4149518161 4149518162)
# of TAG MARK: the FROM item of the payouts a queue call made
of() { printf "(SELECT * FROM payouts WHERE id > %s AND request ->> 'description' LIKE '%s #%%') AS m" "$2" "$1"; }
# drained TAG MARK SECONDS: until none of them is pending or sending; t or f
drained() {
    wait_sql "(SELECT count(*) FROM $(of "$1" "$2") WHERE status IN ('pending', 'sending')) = 0" "$3"
}
# posts_per_ref TAG: "POSTS REFERENCES" of initialize requests for TAG's payouts
posts_per_ref() {
    sql1 "SELECT count(*) || ' ' || count(DISTINCT j -> 'body' -> 'metadata' ->> 'payout_reference')
          FROM mock.journal() AS j
          WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
            AND j -> 'body' ->> 'description' LIKE '$1 #%'"
}
# mock_posts TAG: the same, read from the mock directly (the server may be down)
mock_posts() {
    mock_ctl GET /__mock/journal | "$(cluster_python)" -c '
import json, sys
tag = sys.argv[1] + " #"
refs = [((e.get("body") or {}).get("metadata") or {}).get("payout_reference")
        for e in json.load(sys.stdin)
        if e.get("method") == "POST" and e.get("path") == "/v1/payouts/initialize"
        and isinstance(e.get("body"), dict) and str(e["body"].get("description", "")).startswith(tag)]
print(len(refs), len(set(refs)))' "$1"
}
# postpone_verifications: the sent payouts' verifications an hour later (as
# test 45 does), until none is due or in flight
postpone_verifications() {
    local _
    for _ in 1 2 3; do
        sql -q -c "SET session_replication_role = replica" \
            -c "UPDATE payouts SET next_attempt_at = now() + interval '1 hour' WHERE status = 'sent'" >/dev/null
        [ "$(wait_sql "(SELECT in_flight = 0 FROM moneroo_status)
                       AND NOT EXISTS (SELECT FROM payouts WHERE status = 'sent'
                                       AND next_attempt_at < now() + interval '10 min')" 5)" = t ] && break
    done
}
# log_since BYTES: the server log from that offset on
log_size() { stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0; }
log_since() { tail -c +"$(($1 + 1))" "$SERVER_LOG" 2>/dev/null; }

# ---------------------------------------------------------------- set-up / clean-up
restore() {
    set +e
    if ! cluster_is_running; then cluster_start >/dev/null 2>&1; fi
    wait_server 30
    cluster_psql -q -c 'CREATE EXTENSION IF NOT EXISTS moneroo' \
        -c 'ALTER SYSTEM RESET moneroo.rate_limit' -c 'ALTER SYSTEM RESET moneroo.max_concurrency' \
        -c 'ALTER SYSTEM RESET moneroo.api_url' -c 'ALTER SYSTEM RESET autovacuum' -c 'SELECT pg_reload_conf()' \
        -c "DROP DATABASE IF EXISTS $TMPDB" >/dev/null 2>&1
    mock_reset 2>/dev/null
}
trap restore EXIT

if ! wait_server 30; then
    echo "Bail out! the server does not answer"
    exit 1
fi
mock_reset
mock_config '{"rate_limit": 0}'
reload_settings 'ALTER SYSTEM SET moneroo.rate_limit = 0'

# ================================================================ A. visible
pid=$(wait_worker 20)
is "$(sql1 "SELECT string_agg(backend_type || '|' || application_name || '|' || datname, ', ')
            FROM pg_stat_activity WHERE backend_type = 'moneroo worker' OR application_name = 'moneroo worker'")" \
   "moneroo worker|moneroo worker|$PGDATABASE" \
   "the worker is one row of pg_stat_activity: backend_type and application_name 'moneroo worker', in database $PGDATABASE"
is "$(sql1 "SELECT worker_running || ' ' || worker_pid FROM moneroo_status")" "true ${pid:-?}" \
   "moneroo_status shows the worker running, with its pid"

# ================================================================ B. SIGTERM
mock_config '{"latency_ms": 1000}'
tag="20_signals sigterm"
mark=$(queue "$tag" 20 "${BOTH[@]}")
got=$(wait_sql "(SELECT count(*) FROM $(of "$tag" "$mark") WHERE status = 'sending') >= 4" 15)
t0=$SECONDS
is "$got $(sql1 "SELECT pg_terminate_backend($pid)")" "t t" \
   "pg_terminate_backend(worker) while requests are in flight"
newpid=$(wait_worker 12 "$pid") && rc=0 || rc=1
ok "$rc" "the worker comes back by itself under a new pid within 12 s (pid ${newpid:-none}, after $((SECONDS - t0)) s)"
drained_ok=$(drained "$tag" "$mark" 30)
is "$drained_ok|$(sql1 "SELECT count(*) FILTER (WHERE status IN ('sent', 'success', 'failed')) || ' sent, ' ||
                            count(*) FILTER (WHERE status = 'unknown') || ' unknown'
                     FROM $(of "$tag" "$mark")")" "t|20 sent, 0 unknown" \
   "the requests in flight at SIGTERM were seen through and recorded, and the new worker sent the rest: all 20 sent, none unknown" \
   "$(sql1 "SELECT string_agg(id || ' ' || status || ' ' || coalesce(last_error, ''), '; ') FROM $(of "$tag" "$mark") WHERE status NOT IN ('sent', 'success', 'failed')")"
is "$(posts_per_ref "$tag")" "20 20" "each of the 20 payouts was POSTed exactly once (POSTs, references)"
pid=${newpid:-$(worker_pid)}

# ================================================================ C. SIGHUP
# batch TAG: 12 payouts with 500 ms of latency, drained; prints how many
# requests the worker had in flight at once, at least: the mock answers each
# request 500 ms after it arrives, so requests that arrive less than 400 ms
# apart were all on the wire together.  (The mock's own max_concurrent can
# count one more: a handler still finishing after its answer went out.)
# The script's earlier payouts are settled first, and the other sent ones'
# verifications postponed, with none on the wire: a verification answered at
# once between the mock's reset and its new latency would count as on the
# wire with the batch, and one still on the wire (after 10_crash, say) would
# take a place from it, unseen by the new journal.
batch() {
    wait_sql "(SELECT count(*) FROM payouts WHERE status IN ('pending', 'sending', 'sent')
                AND request ->> 'description' LIKE '20\_signals%') = 0" 30 >/dev/null
    postpone_verifications
    mock_reset
    mock_config '{"rate_limit": 0, "latency_ms": 500}'
    local m
    m=$(queue "$1" 12 "${BOTH[@]}")
    drained "$1" "$m" 30 >/dev/null
    sql1 "WITH j AS (SELECT (e ->> 'time')::float8 AS t FROM mock.journal() AS e)
          SELECT coalesce(max((SELECT count(*) FROM j AS j2 WHERE j2.t >= j1.t AND j2.t < j1.t + 0.4)), 0)
          FROM j AS j1"
}
default=$(sql1 "SELECT least(current_setting('moneroo.max_concurrency')::int, 12)")
before=$(batch "20_signals concurrency default")
reload_settings 'ALTER SYSTEM SET moneroo.max_concurrency = 2'
during=$(batch "20_signals concurrency 2")
reload_settings 'ALTER SYSTEM RESET moneroo.max_concurrency'
after=$(batch "20_signals concurrency reset")
if [ "$default" -gt 2 ] 2>/dev/null; then
    is "$before" "$default" "with the default moneroo.max_concurrency, 12 queued payouts go $default at a time"
else
    fail "with the default moneroo.max_concurrency, 12 queued payouts go more than 2 at a time" \
        "moneroo.max_concurrency is $default: this test needs a default above 2"
fi
is "$during" "2" "after ALTER SYSTEM SET moneroo.max_concurrency = 2 and pg_reload_conf(), the running worker keeps 2 requests in flight at most"
is "$after" "$default" "after ALTER SYSTEM RESET and pg_reload_conf(), $default at a time again"
is "$(worker_pid)" "$pid" "the reloads did not restart the worker"
mock_reset
mock_config '{"rate_limit": 0}'

# ================================================================ D. a due payout locked by someone else
# A payout goes back to pending with next_attempt_at = now + 10 s when the
# worker could not connect: point moneroo.api_url at a closed port for one
# attempt.
tag="20_signals locked"
reload_settings "ALTER SYSTEM SET moneroo.api_url = 'http://127.0.0.1:9'"
mark=$(queue "$tag" 1 4149518161)
got=$(wait_sql "(SELECT attempts = 1 AND status = 'pending' AND next_attempt_at > clock_timestamp() FROM $(of "$tag" "$mark"))" 10)
reload_settings 'ALTER SYSTEM RESET moneroo.api_url'
locked_id=$(sql1 "SELECT id FROM $(of "$tag" "$mark")")
# the count below is of the whole database: autovacuum, busy after the tests
# before this one, would add its own transactions to the worker's
reload_settings 'ALTER SYSTEM SET autovacuum = off'
# hold the row locked until 4 s after it is due
sql -q -c "BEGIN" \
    -c "SELECT id FROM payouts WHERE id = $locked_id FOR UPDATE" \
    -c "SELECT pg_sleep(greatest(extract(epoch FROM (SELECT next_attempt_at FROM payouts WHERE id = $locked_id) - now()), 0) + 4)" \
    -c "COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 0.3
due=$(wait_sql "(SELECT next_attempt_at < clock_timestamp() - interval '0.3 s' FROM payouts WHERE id = $locked_id)" 12)
# a backend reports its transactions to pg_stat_database at most once a
# second: those of the worker before the payout fell due, still unreported,
# must not land in the window measured (the lock is held 4 s past due)
sleep 1.1
c0=$(sql1 "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
sleep 2
c1=$(sql1 "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
xacts=$((c1 - c0)); ticks=$((cpu1 - cpu0))
[ "$got $due" = "t t" ] && [ "$xacts" -lt 60 ] && [ "$ticks" -lt 20 ] && rc=0 || rc=1
ok "$rc" \
   "a due pending payout locked by another transaction does not make the worker spin (over 2 s: $xacts transactions in the database, $ticks CPU ticks of the worker)" \
   "pending after a refused connection: $got; due and locked: $due; want < 60 transactions and < 20 ticks (1/100 s)"
tag2="20_signals beside the lock"
mark2=$(queue "$tag2" 1 4149518161)
is "$(wait_sql "(SELECT status IN ('sent', 'success', 'failed') FROM $(of "$tag2" "$mark2"))" 5) $(sql1 "SELECT status FROM payouts WHERE id = $locked_id")" \
   "t pending" "meanwhile another payout is sent: the worker skips the locked one rather than waiting for it"
reload_settings 'ALTER SYSTEM RESET autovacuum'
wait "$locker"
is "$(wait_sql "(SELECT status IN ('sent', 'success', 'failed') FROM payouts WHERE id = $locked_id)" 10) $(posts_per_ref "$tag")" \
   "t 1 1" "once the lock is released the payout is sent, exactly once"

# ================================================================ D2. a result whose row someone else holds locked
# The worker's UPDATE of a payout another transaction holds locked waits at
# most lock_timeout (1 s, PostgreSQL's own SIGINT to itself): that answer is
# kept and written later (and no new payout is claimed until it is), and
# meanwhile the worker writes the other answers.
# Nothing else on the wire: a verification would take the place of the
# second send, which then waits (no new request while an answer is unwritten).
# While the worker waits on the lock it does not read its sockets, and an
# answer read after request_timeout is a timeout (libcurl looks at the clock
# first): the 2 s of this cluster would turn the other answer, come at 1.5 s
# and read after 2 s of lock waits, into an unknown.
postpone_verifications
reload_settings "ALTER SYSTEM SET moneroo.request_timeout = '10s'"
mock_config '{"latency_ms": 1500}'
tag="20_signals result locked"
mark=$(queue "$tag" 2 4149518161)
# both requests at the mock (which answers 1.5 s after each came)
deadline=$((SECONDS + 10))
until [ "$(mock_posts "$tag")" = "2 2" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
locked_id=$(sql1 "SELECT min(id) FROM $(of "$tag" "$mark")")
sql -q -c "BEGIN" -c "SELECT id FROM payouts WHERE id = $locked_id FOR UPDATE" -c "SELECT pg_sleep(12)" \
    -c "COMMIT" >/dev/null 2>&1 &
locker=$!
mock_config '{"latency_ms": 0}'
# the answers come within 1.5 s; the worker writes them together, in vain
# after 1 s, then each alone (the locked one, 1 s more, may go first); an
# answer that came meanwhile waits for the next try (0.5 s later, then 1 s)
is "$(wait_sql "(SELECT status IN ('sent', 'success', 'failed') FROM $(of "$tag" "$mark") WHERE id > $locked_id)" 10) $(sql1 "SELECT status FROM payouts WHERE id = $locked_id") $(kill -0 "$locker" 2>/dev/null && echo locked)" \
   "t sending locked" \
   "a result whose row another transaction keeps locked does not freeze the worker: the other answer is written meanwhile (lock_timeout)" \
   "$(sql1 "SELECT string_agg(id || ': ' || status || ' ' || coalesce(last_error, ''), '; ') FROM $(of "$tag" "$mark")")"
wait "$locker"
is "$(wait_sql "(SELECT bool_and(status IN ('sent', 'success', 'failed') AND moneroo_id IS NOT NULL) FROM $(of "$tag" "$mark"))" 10) $(posts_per_ref "$tag") $(grep -q 'canceling statement due to lock timeout' "$SERVER_LOG" && echo logged)" \
   "t 2 2 logged" "once the lock goes the kept answer is written (both sent once, each with its id); the server log says the lock timed out" \
   "$(grep -B1 -A3 'lock timeout' "$SERVER_LOG" | tail -n 8)"
reload_settings 'ALTER SYSTEM RESET moneroo.request_timeout'

# ================================================================ E. CREATE/DROP DATABASE
mock_config '{"latency_ms": 1000}'
tag="20_signals dropdb"
mark=$(queue "$tag" 12 "${BOTH[@]}")
wait_sql "(SELECT count(*) FROM $(of "$tag" "$mark") WHERE status = 'sending') >= 1" 10 >/dev/null
t0=$(date +%s%N)
out=$(timeout 30 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres \
        -c "CREATE DATABASE $TMPDB" -c "DROP DATABASE $TMPDB" 2>&1) && prc=0 || prc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$prc" -eq 0 ] && [ "$ms" -lt 10000 ] && rc=0 || rc=1
ok "$rc" \
   "CREATE DATABASE + DROP DATABASE of another database complete promptly while the worker has requests in flight (${ms} ms)" \
   "psql status $prc: $out"
is "$(drained "$tag" "$mark" 30) $(worker_pid)" "t $pid" "the worker carries on undisturbed (same pid) and sends them all"
mock_config '{"latency_ms": 0}'

# ================================================================ F. DROP EXTENSION under the worker
wait_sql "(SELECT count(*) FROM payouts WHERE status IN ('pending', 'sending')) = 0" 10 >/dev/null
# Sent payouts of the sections above would be verified on their schedule, and
# a verification on the wire at the DROP has no table for its result (the
# worker then logs it, by payout).
postpone_verifications
log0=$(log_size)
out=$(sql -q -c 'DROP EXTENSION moneroo' 2>&1) && rc=0 || rc=$?
ok "$rc" "DROP EXTENSION moneroo while the worker runs" "$out"
sleep 3
noise=$(log_since "$log0" | grep -c "\[$pid\].*\(WARNING\|ERROR\|FATAL\|PANIC\)")
is "$(worker_pid) $noise" "$pid 0" \
   "the worker keeps running, and logs no warning or error while its extension is gone (3 s)" \
   "$(log_since "$log0" | grep "\[$pid\]" | head -n 5 | tr '\n' ' ')"
out=$(sql -q -c 'CREATE EXTENSION moneroo' 2>&1) && rc=0 || rc=$?
tag="20_signals recreated"
mark=$(queue "$tag" 1 4149518161)
is "$rc $(wait_sql "(SELECT status IN ('sent', 'success', 'failed') FROM $(of "$tag" "$mark"))" 10) $(worker_pid)" \
   "0 t $pid" "after CREATE EXTENSION moneroo, a new payout is sent by the same worker" "$out"

# ================================================================ G. postmaster death
mock_config '{"latency_ms": 1500}'
tag="20_signals pmdeath"
mark=$(queue "$tag" 10 "${BOTH[@]}")
got=$(wait_sql "(SELECT count(*) FROM $(of "$tag" "$mark") WHERE status = 'sending') >= 1" 10)
pm=$(cluster_pid)
kill -KILL "$pm"
deadline=$((SECONDS + 10))
while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
kill -0 "$pid" 2>/dev/null && alive=1 || alive=0
posted_at_death=$(mock_posts "$tag")
sleep 2
[ "$got $alive" = "t 0" ] && rc=0 || rc=1
ok "$rc" \
   "after kill -9 of the postmaster the worker exits by itself within 10 s" \
   "requests in flight at the kill: $got; worker $pid still alive: $alive"
is "$(mock_posts "$tag")" "$posted_at_death" "an orphaned worker sends nothing more (POSTs, references: $posted_at_death)"
# a surviving orphan would keep the server from starting: make sure of it
if [ "$alive" = 1 ]; then kill -KILL "$pid" 2>/dev/null; sleep 1; fi
cluster_start >/dev/null 2>&1; wait_server 30
wait_worker 20 >/dev/null
mock_config '{"latency_ms": 0}'
d=$(drained "$tag" "$mark" 30)
is "$d|$(sql1 "SELECT (count(*) FILTER (WHERE status = 'unknown') > 0) || ' ' ||
                     count(*) FILTER (WHERE status NOT IN ('sent', 'success', 'failed', 'unknown')) || ' ' ||
                     count(*) FILTER (WHERE status = 'unknown' AND coalesce(last_error, '') = '')
              FROM $(of "$tag" "$mark")")|$(posts_per_ref "$tag" | awk '{print ($1 == $2) ? "once" : "twice"}')" \
   "t|true 0 0|once" \
   "after the restart the payouts that were in flight are unknown with a reason, none is left pending or sending, none was POSTed twice"

[ "$T" -eq "$PLAN" ] || diag "ran $T tests, planned $PLAN"
exit 0
