#!/usr/bin/env bash
# Proves: pg_dump and pg_restore keep every payout and user-added method [fast, ~10 s].
# test/packaging/65_dump_restore.sh: pg_dump and pg_restore keep every payout.
#
# payouts and its id sequence are extension configuration tables
# (pg_extension_config_dump), and so are the payout methods a user adds: a
# dump holds them and a restore brings them back, whatever their state.
#   A. The worker's database (moneroo_test), with payouts the worker took to
#      success, failed, sent (4149518163 stays pending at Moneroo), rejected
#      (Moneroo answered 422) and unknown (Moneroo answered 500), and a payout
#      method of the user's.  pg_dump -Fc in a snapshot whose rows are saved
#      too (the worker keeps verifying the sent payout meanwhile), pg_restore
#      into a new database: every column of every payout, the methods and the
#      id sequence come back.
#   B. A database the worker does not serve (moneroo_dump_src), with payouts
#      that are pending (one after failed attempts, one for the user's method)
#      and one caught in "sending" (written with triggers off, as a dump taken
#      while the worker was sending would hold it): after the restore the
#      pending ones are pending, column for column, and the sending one is
#      "unknown" with a last_error saying why, never pending.
# pg_dump and pg_restore run as the postgres superuser, as the README says,
# pg_restore with moneroo.restoring on (PGOPTIONS): without it the same
# restore is refused with a hint naming the setting, and a superuser's COPY
# into payouts is validated and recorded like an INSERT.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Drops the databases it creates, removes the payout
# method it adds to moneroo_test, restores the settings and the mock.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

COPY_A=moneroo_dump_copy
SRC_B=moneroo_dump_src
COPY_B=moneroo_dump_src_copy
COPY_B2=moneroo_dump_src_copy2
TRUNC=moneroo_dump_truncate
METHOD=regress_dump_gm
PLAN=33
D=$(mktemp -d /tmp/moneroo-dump.XXXXXX)

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"
# same FILE_OR_TEXT_A FILE_OR_TEXT_B DESC: two non-empty texts are equal (diff shown otherwise)
same() {
    local a=$1 b=$2 desc=$3
    if [ -n "$a" ] && [ "$a" == "$b" ] && [ "${a#ERROR}" == "$a" ]; then
        pass "$desc"
    else
        fail "$desc" "$(diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | head -n 20)"
    fi
}

# sql1 DB SQL: the output of every statement of SQL (unaligned, tuples only),
# or ERROR:<message>.
sql1() {
    local out
    if out=$(printf '%s\n' "$2" | cluster_psql -d "$1" -At 2>&1); then printf '%s' "$out"; else printf 'ERROR:%s' "$out" | tr '\n' ' '; fi
}
pg() { "$PGBIN/$1" -h "$PGHOST" -p "$PGPORT" -U postgres "${@:2}"; }
# restoring TOOL ARGS...: a restore, said as README's Backups section says it
restoring() { PGOPTIONS='-c moneroo.restoring=on' pg "$@"; }

# ---------------------------------------------------------------- clean-up
restore() {
    set +e
    exec 7>&- 2>/dev/null
    [ -n "${SNAP_PID:-}" ] && kill "$SNAP_PID" 2>/dev/null
    cluster_is_running || cluster_start >/dev/null 2>&1
    cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $COPY_A WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $SRC_B WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $COPY_B WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $COPY_B2 WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $TRUNC WITH (FORCE)" >/dev/null 2>&1
    cluster_psql -q -c "DELETE FROM moneroo_payout_methods WHERE code = '$METHOD'" \
        -c "DELETE FROM moneroo_limits WHERE currency = 'GMD'" \
        -c 'ALTER SYSTEM RESET moneroo.verify_min_interval' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
    rm -rf "$D"
}
trap restore EXIT

# A fresh server: the worker's rate-limit window and any pause after a 429
# left by an earlier script must not delay the sends this script waits for.
if ! cluster_restart >/dev/null 2>&1 || ! cluster_psql -At -c 'SELECT 1' >/dev/null 2>&1; then
    echo "Bail out! the server does not (re)start"
    exit 1
fi

ROWS="SELECT p::text FROM payouts p ORDER BY id"          # every column, generated ones included
METHODS="SELECT m::text FROM moneroo_payout_methods m ORDER BY code"
LIMITS="SELECT l::text FROM moneroo_limits l ORDER BY currency"
EVENTS="SELECT e::text FROM payout_events e ORDER BY id"
# moneroo_status's counts (sums of moneroo_state_counts) and a count of the rows, state by state
COUNTED="SELECT coalesce(string_agg(status || '=' || n, ', ' ORDER BY status), 'none') FROM (
           SELECT status, sum(payouts)::bigint AS n FROM moneroo_state_counts GROUP BY status HAVING sum(payouts) <> 0) c"
COUNTS="SELECT coalesce(string_agg(status || '=' || n, ', ' ORDER BY status), 'none') FROM (
          SELECT status, count(*) AS n FROM payouts GROUP BY status) c"
# A valid sandbox request: req DESCRIPTION ACCOUNT_NUMBER
req() {
    printf '{"amount": 2500, "currency": "USD", "description": "%s", "method": "moneroo_payout_demo",
             "customer": {"email": "dump@example.com", "first_name": "Dump", "last_name": "Restore"},
             "recipient": {"account_number": "%s"}}' "$1" "$2"
}
GM_REQ='{"amount": 300, "currency": "GMD", "description": "dump: user method", "method": "regress_dump_gm",
         "customer": {"email": "gm@example.com", "first_name": "G", "last_name": "M"},
         "recipient": {"msisdn": "2207001234"}}'
ADD_METHOD="INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, dial_code)
            VALUES ('$METHOD', 'Regress Money Gambia', 'GMD', 'GM', 'msisdn', '220')"

# ================================================================ A. the worker's database
mark=$(sql1 "$PGDATABASE" "SELECT coalesce(max(id), 0) FROM payouts")
sql1 "$PGDATABASE" "DELETE FROM moneroo_payout_methods WHERE code = '$METHOD'; $ADD_METHOD" >/dev/null
cluster_psql -q -c "ALTER SYSTEM SET moneroo.verify_min_interval = '200ms'" -c 'SELECT pg_reload_conf()' >/dev/null
mock_ctl POST /__mock/reset '{}' >/dev/null

# A fault hits the next initialize, whoever sends it: wait until no payout
# left by an earlier test is due to be sent in the next 30 s.
idle=$(sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ NOT EXISTS (SELECT FROM payouts WHERE status = 'sending' OR
    (status = 'pending' AND coalesce(next_attempt_at, now()) < now() + interval '30 s')) \$\$, 15)")
[ "$idle" = t ] || printf '# payouts of earlier tests are still being sent: %s\n' "$idle"

# queue_settled DESCRIPTION ACCOUNT [FAULT_JSON]: queue one payout (after queueing the
# fault for the next initialize) and wait until it leaves pending and sending.
queue_settled() {
    [ -n "${3:-}" ] && mock_ctl POST /__mock/faults "$3" >/dev/null
    sql1 "$PGDATABASE" "INSERT INTO payouts (request) VALUES ('$(req "$1" "$2")');
        SELECT mock.wait_for(\$\$ (SELECT status NOT IN ('pending', 'sending') FROM payouts
                                   WHERE request ->> 'description' = '$1' AND id > $mark) \$\$, 15)" >/dev/null
}
queue_settled "dump: rejected" 4149518161 '{"kind": "status", "status": 422, "route": "initialize", "count": 1}'
queue_settled "dump: unknown" 4149518161 '{"kind": "status", "status": 500, "route": "initialize", "count": 1}'
sql1 "$PGDATABASE" "INSERT INTO payouts (request) VALUES ('$(req "dump: success" 4149518161)'),
                    ('$(req "dump: failed" 4149518162)'), ('$(req "dump: sent" 4149518163)')" >/dev/null
sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ (SELECT count(*) FROM payouts WHERE id > $mark AND
                        (request ->> 'description', status, moneroo_status) IN
                        (('dump: success', 'success', 'success'), ('dump: failed', 'failed', 'failed'),
                         ('dump: sent', 'sent', 'pending'))) = 3 \$\$, 20)" >/dev/null
MINE="SELECT string_agg(request ->> 'description' || '=' || status, ', ' ORDER BY id) FROM payouts WHERE id > $mark"
is "$(sql1 "$PGDATABASE" "$MINE")" \
    "dump: rejected=rejected, dump: unknown=unknown, dump: success=success, dump: failed=failed, dump: sent=sent" \
    "the worker's database holds payouts the worker took to rejected (422), unknown (500), success, failed and sent"
# Since 1.2: the limits, an idempotency key and the history are dumped too.
keyed=$(sql1 "$PGDATABASE" "DELETE FROM moneroo_limits WHERE currency = 'GMD';
    INSERT INTO moneroo_limits (currency, max_amount, approval_above, daily_limit) VALUES ('GMD', 100000, 50000, 1000000);
    SELECT (moneroo_transfer('$(req "dump: keyed" 4149518161)', 'dump-key-$mark')).status")
is "$keyed" "sent" "a moneroo_transfer with an idempotency key is sent, and the limits of a currency are set"
sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ NOT EXISTS (SELECT FROM payouts WHERE status = 'sending') \$\$, 10)" >/dev/null

# The dump and the saved rows share one snapshot, exported by a session that
# stays open until pg_dump has started.
mkfifo "$D/fifo"
cluster_psql -At -d "$PGDATABASE" <"$D/fifo" >"$D/snapshot" 2>"$D/snapshot.err" &
SNAP_PID=$!
exec 7>"$D/fifo"
printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ;" "SELECT pg_export_snapshot();" >&7
for _ in $(seq 1 100); do [ -s "$D/snapshot" ] && break; sleep 0.1; done
snapshot=$(head -n 1 "$D/snapshot")
dump_rc=0
pg pg_dump -Fc --snapshot="$snapshot" -f "$D/a.dump" "$PGDATABASE" 2>"$D/a.dump.err" || dump_rc=$?
printf '%s\n' "\\o $D/a.rows" "$ROWS;" "\\o $D/a.methods" "$METHODS;" "\\o $D/a.limits" "$LIMITS;" \
    "\\o $D/a.events" "$EVENTS;" "\\o $D/a.mine" "$MINE;" "\\o" \
    "SELECT max(id) FROM payouts;" "COMMIT;" >&7
exec 7>&-
wait "$SNAP_PID"; SNAP_PID=""
max_a=$(sed -n 2p "$D/snapshot")
is "$dump_rc/$(head -c 300 "$D/a.dump.err")" "0/" \
    "pg_dump -Fc of the worker's database succeeds (in a snapshot whose rows are kept for comparison)" \
    "$(cat "$D/snapshot.err")"

rc=0
out=$(pg createdb "$COPY_A" 2>&1 && pg pg_restore --exit-on-error -d "$COPY_A" "$D/a.dump" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && [[ $out == *"moneroo.restoring"* ]]; then
    pass "pg_restore without moneroo.restoring is refused, with a hint that names the setting"
else
    fail "pg_restore without moneroo.restoring is refused, with a hint that names the setting" \
        "exit status $rc: $(printf '%s' "$out" | head -n 10)"
fi
is "$(sql1 "$COPY_A" "SELECT count(*) FROM payouts")" "0" "... and no payout of the dump came in"

# a superuser's COPY without the setting: an INSERT like any other
# (COPY's text format: the request has no tab, newline or backslash to escape)
out=$(req "dump: copied in" 4149518161 | tr -d '\n' | cluster_psql -d "$COPY_A" -c "COPY payouts (request) FROM STDIN" 2>&1)
is "$(sql1 "$COPY_A" "SELECT p.status || '/' || (p.created_by = 'postgres') || '/' || count(e.*)
                       FROM payouts p JOIN payout_events e ON e.payout_id = p.id GROUP BY p.id")" "pending/true/1" \
    "a superuser's COPY of a valid request without moneroo.restoring is queued like an INSERT: pending, created_by, one event" "$out"
out=$(printf '%s\n' '{"amount": -5}' | cluster_psql -d "$COPY_A" -c "COPY payouts (request) FROM STDIN" 2>&1)
if [[ $out == *'in payout request'* ]]; then
    pass "... and a COPY of an invalid request is refused by the validator, as an INSERT would be"
else
    fail "... and a COPY of an invalid request is refused by the validator, as an INSERT would be" "$out"
fi

rc=0
out=$(pg dropdb "$COPY_A" 2>&1 && pg createdb "$COPY_A" 2>&1 &&
      restoring pg_restore --exit-on-error -d "$COPY_A" "$D/a.dump" 2>&1) || rc=$?
is "$rc" "0" "pg_restore -d into a new database with moneroo.restoring on succeeds, without a single error" "$(printf '%s' "$out" | head -n 10)"

is "$(sql1 "$COPY_A" "SELECT count(*) || ' ' || min(restored_by) || ' ' || (sum(payouts) = (SELECT count(*) FROM payouts))
                       || ' ' || (min(statuses ->> 'success') IS NOT NULL) FROM moneroo_restores")" "1 postgres true true" \
    "moneroo_restores records the restore: one row, by postgres, as many payouts as came back, counted by state"
same "$(sql1 "$COPY_A" "$ROWS")" "$(cat "$D/a.rows")" \
    "every payout comes back with every column as dumped (ids, references, requests, states, Moneroo ids, responses, times, generated amount/currency/method)"
# (as dumped, not as now: the worker may have settled the keyed payout since)
is "$(sql1 "$COPY_A" "$MINE")" "$(cat "$D/a.mine")" \
    "the restored copy holds the payouts in their states: rejected, unknown, success, failed, sent"
same "$(sql1 "$COPY_A" "$COUNTED")" "$(sql1 "$COPY_A" "$COUNTS")" \
    "moneroo_status counts the restored payouts, state by state, exactly (the restore counts what it brings back)"
same "$(sql1 "$COPY_A" "$METHODS")" "$(cat "$D/a.methods")" \
    "the payout methods come back: Moneroo's documented ones once, and the user's own"
is "$(sql1 "$COPY_A" "SELECT count(*) FROM moneroo_payout_methods WHERE code = '$METHOD' AND NOT documented")" "1" \
    "the payout method the user added is in the copy"
is "$(sql1 "$COPY_A" "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" \
    "$(sql1 "$PGDATABASE" "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" \
    "the copy runs the same extension version as the source"
same "$(sql1 "$COPY_A" "$LIMITS")" "$(cat "$D/a.limits")" "moneroo_limits comes back"
same "$(sql1 "$COPY_A" "$EVENTS")" "$(cat "$D/a.events")" \
    "payout_events comes back, every event as dumped (a restore is the one insert its guard lets in besides the extension's)"
is "$(sql1 "$COPY_A" "SELECT count(*) FROM payouts WHERE idempotency_key = 'dump-key-$mark' AND created_by = 'postgres'")" "1" \
    "the idempotency key and created_by of a payout come back"
is "$(sql1 "$COPY_A" "SELECT (moneroo_transfer('$(req "dump: keyed" 4149518161)', 'dump-key-$mark')).id = (SELECT id FROM payouts WHERE idempotency_key = 'dump-key-$mark')")" "t" \
    "the key still answers in the copy: moneroo_transfer with it returns the restored payout and sends nothing"
new_id=$(sql1 "$COPY_A" "INSERT INTO payouts (request) VALUES ('$(req "dump: after restore" 4149518161)') RETURNING id")
if [[ $new_id =~ ^[0-9]+$ ]] && [[ $max_a =~ ^[0-9]+$ ]] && [ "$new_id" -gt "$max_a" ]; then
    pass "a payout queued in the copy gets an id after every restored one ($new_id > $max_a): the id sequence came back"
else
    fail "a payout queued in the copy gets an id after every restored one: the id sequence came back" \
        "new id: $new_id, highest restored id: $max_a"
fi
is "$(sql1 "$COPY_A" "SELECT count(*) FROM payout_events WHERE payout_id = ${new_id:-0} AND id > (SELECT max(id) FROM payout_events WHERE payout_id <> ${new_id:-0})")" "1" \
    "its first event comes after every restored one: the events' sequence came back too"

# ================================================================ B. pending and sending rows
out=$(cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $SRC_B WITH (FORCE)" -c "CREATE DATABASE $SRC_B" 2>&1) ||
    { fail "a second source database is created" "$out"; skip_rest "no second source database"; exit 0; }
out=$(sql1 "$SRC_B" "CREATE EXTENSION moneroo;
    $ADD_METHOD;
    INSERT INTO payouts (request) VALUES ('$(req "dump: pending" 4149518161)');
    INSERT INTO payouts (request) VALUES ('$GM_REQ');
    INSERT INTO payouts (request, reference) VALUES ('$(req "dump: pending, own reference" 4149518162)',
                                                      '6f1e3c2a-0d5b-4c1e-9a7f-3b2d1c0e9f01');
    INSERT INTO payouts (request) VALUES ('$(req "dump: sending" 4149518163)');
    SET session_replication_role = replica;
    UPDATE payouts SET status = 'sending', attempts = 1, updated_at = now() - interval '1 minute'
     WHERE request ->> 'description' = 'dump: sending';
    RESET session_replication_role;
    SELECT string_agg(request ->> 'description' || '=' || status, ', ' ORDER BY id) FROM payouts")
is "$out" "dump: pending=pending, dump: user method=pending, dump: pending, own reference=pending, dump: sending=sending" \
    "a database the worker does not serve holds pending payouts (one for the user's method, one with its own reference) and one caught in sending"
methods_b=$(sql1 "$SRC_B" "$METHODS")
max_b=$(sql1 "$SRC_B" "SELECT max(id) FROM payouts")

rc=0
out=$(pg pg_dump -Fc -f "$D/b.dump" "$SRC_B" 2>&1 && pg createdb "$COPY_B" 2>&1 &&
      restoring pg_restore --exit-on-error -d "$COPY_B" "$D/b.dump" 2>&1) || rc=$?
is "$rc" "0" "pg_dump -Fc of it and pg_restore into a new database succeed, without a single error" \
    "$(printf '%s' "$out" | head -n 10)"

NOT_SENDING="SELECT p::text FROM payouts p WHERE request ->> 'description' <> 'dump: sending' ORDER BY id"
same "$(sql1 "$COPY_B" "$NOT_SENDING")" "$(sql1 "$SRC_B" "$NOT_SENDING")" \
    "every pending payout comes back pending, column for column"
is "$(sql1 "$COPY_B" "SELECT status || ' / ' || (coalesce(last_error, '') <> '') FROM payouts WHERE request ->> 'description' = 'dump: sending'")" \
    "unknown / true" \
    "a payout dumped while it was being sent comes back unknown, with a last_error saying why (never pending: it may have reached Moneroo)" \
    "last_error: $(sql1 "$COPY_B" "SELECT last_error FROM payouts WHERE request ->> 'description' = 'dump: sending'")"
KEEP_COLS="SELECT id, reference, request, attempts, moneroo_id, created_at, amount, currency, method FROM payouts
           WHERE request ->> 'description' = 'dump: sending'"
same "$(sql1 "$COPY_B" "$KEEP_COLS")" "$(sql1 "$SRC_B" "$KEEP_COLS")" \
    "it keeps its id, reference, request, attempts and creation time"
same "$(sql1 "$COPY_B" "$COUNTED")" "$(sql1 "$COPY_B" "$COUNTS")" \
    "and it is counted unknown, not sending"
same "$(sql1 "$COPY_B" "$METHODS")" "$methods_b" "the payout methods come back, the user's own included"
new_id=$(sql1 "$COPY_B" "INSERT INTO payouts (request) VALUES ('$(req "dump: after restore" 4149518161)') RETURNING id")
if [[ $new_id =~ ^[0-9]+$ ]] && [[ $max_b =~ ^[0-9]+$ ]] && [ "$new_id" -gt "$max_b" ]; then
    pass "a payout queued in this copy gets an id after every restored one ($new_id > $max_b)"
else
    fail "a payout queued in this copy gets an id after every restored one" "new id: $new_id, highest restored id: $max_b"
fi
is "$(sql1 "$COPY_B" "SELECT count(*) FROM payouts WHERE request ->> 'description' = 'dump: sending' AND status = 'unknown'")/$(sql1 "$COPY_B" "SELECT (moneroo_retry(id)).status FROM payouts WHERE request ->> 'description' = 'dump: sending'")" \
    "1/pending" \
    "once an operator has checked Moneroo, moneroo_retry() puts the restored unknown payout back in the queue"

# Pending payouts that were tried before: one the worker could not send yet
# (connection refused, or 429: pending with attempts, last_error and
# next_attempt_at set, as the worker leaves it), and one an operator put back
# in the queue with moneroo_retry() after it ended unknown.  Dumped like that,
# they must come back like that (and the rest of the table with them).
out=$(sql1 "$SRC_B" "INSERT INTO payouts (request) VALUES ('$(req "dump: pending after failed attempts" 4149518161)'),
                                                ('$(req "dump: unknown, then retried" 4149518161)');
    SET session_replication_role = replica;
    UPDATE payouts SET attempts = 2, last_error = 'could not connect to Moneroo: Connection refused',
                       next_attempt_at = now() + interval '10 s', updated_at = now() - interval '1 minute'
     WHERE request ->> 'description' = 'dump: pending after failed attempts';
    UPDATE payouts SET status = 'unknown', attempts = 1, last_error = 'Moneroo answered HTTP 500'
     WHERE request ->> 'description' = 'dump: unknown, then retried';
    RESET session_replication_role;
    SELECT (moneroo_retry(id)).status FROM payouts WHERE request ->> 'description' = 'dump: unknown, then retried'")
[ "$out" = pending ] || printf '# moneroo_retry() in %s: %s\n' "$SRC_B" "$out"
rc=0
out=$(pg pg_dump -Fc -f "$D/b2.dump" "$SRC_B" 2>&1 && pg createdb "$COPY_B2" 2>&1 &&
      restoring pg_restore --exit-on-error -d "$COPY_B2" "$D/b2.dump" 2>&1) || rc=$?
is "$rc" "0" "a dump holding pending payouts that were tried before (failed attempts; moneroo_retry) restores without an error" \
    "$(printf '%s' "$out" | head -n 6)"
PENDING="SELECT p::text FROM payouts p WHERE status = 'pending' ORDER BY id"
same "$(sql1 "$COPY_B2" "$PENDING")" "$(sql1 "$SRC_B" "$PENDING")" \
    "they come back pending with their attempts, last_error and next retry time, and every other pending payout with them"
# TRUNCATE payouts (allowed while no payout may have moved money) leaves
# nothing to count, in a database of its own.
is "$(pg createdb "$TRUNC" 2>&1; sql1 "$TRUNC" "CREATE EXTENSION moneroo;
        INSERT INTO payouts (request, send_at) SELECT '$(req "dump: truncated" 4149518161)', now() + interval '1 day'
        FROM generate_series(1, 3);
        SELECT pending FROM moneroo_status; TRUNCATE payouts; $COUNTED; SELECT pending FROM moneroo_status" | tr '\n' ' ')" \
    "3 none 0" "after TRUNCATE payouts, moneroo_status counts no payout (3 pending before)"
