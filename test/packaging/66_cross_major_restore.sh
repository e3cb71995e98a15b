#!/usr/bin/env bash
# Proves: a cluster of 15 dumped with pg_dumpall of 17 and 18 and restored there resumes: nothing sent twice, nothing lost [slow, ~3 min; needs root, and the 17/18 roots].
# test/packaging/66_cross_major_restore.sh: the dump/restore upgrade path of
# README's "Upgrading", from PostgreSQL 15 to each major in CROSS_MAJORS.
#
# On the host's PostgreSQL 15 stack (PG_MAJOR=15): the worker's database
# holds payouts in every state (success, failed, sent and awaiting Moneroo,
# rejected, unknown, held above a limit, scheduled, pending after a failed
# attempt, caught in sending, cancelled), with their events, the limits, an
# idempotency key and a batch.  For each major N, in N's Debian root
# (test/lib/pgroot.sh; test/lib/xmajor_target.sh runs there): N's pg_dumpall
# reads the 15 server over loopback, the 15 server stops (as in an upgrade),
# the dump is restored into a cluster of N with moneroo.restoring on, and N's
# worker, pointed at the same mock, resumes.  Checked from here over
# loopback: every payout, event, limit, method and batch as dumped (the
# sending one unknown, as a restore says), moneroo_status's counts, the key
# answering with its payout, the sent payout verified to success and the
# pending one sent, each POSTed once in the one mock journal of both majors,
# nothing already sent POSTed again.
#
# Which majors: CROSS_MAJORS (".ci/run" sets "17 18" and runs this after the
# suites, when nothing else uses the roots' install directories).  Without
# it, or on another major than the host's 15, it cannot run and says so
# (plan 1..0, listed by name in the suite's summary).
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

if [ "$PG_MAJOR" != 15 ]; then
    echo "1..0 # runs from the host's PostgreSQL 15 (the old server), by .ci/run: CROSS_MAJORS='17 18' bash test/run.sh --only 66_cross_major_restore"
    exit 0
fi
read -r -a MAJORS <<<"${CROSS_MAJORS:-}"
if [ ${#MAJORS[@]} -eq 0 ]; then
    echo "1..0 # needs CROSS_MAJORS (the roots' majors); .ci/run runs it after the suites: CROSS_MAJORS='17 18' bash test/run.sh --only 66_cross_major_restore"
    exit 0
fi
# shellcheck source=test/lib/pgroot.sh
. "$REPO/test/lib/pgroot.sh"
set +e

PER_MAJOR=13
tap_plan $((${#MAJORS[@]} * PER_MAJOR))
TARGET_PID=""
cleanup() {
    [ -n "${XDIR:-}" ] && touch "$XDIR/done" 2>/dev/null
    [ -n "$TARGET_PID" ] && wait "$TARGET_PID" 2>/dev/null
    cluster_is_running || cluster_start >/dev/null 2>&1
    cluster_psql -q -c "ALTER SYSTEM RESET moneroo.verify_min_interval" -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
}
trap cleanup EXIT

# on PORT SQL: SQL's output in the worker's database of the server on 127.0.0.1:PORT
on() { printf '%s\n' "$2" | "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d "$PGDATABASE" 2>&1; }
req() {
    printf '{"amount": %s, "currency": "%s", "description": "%s", "method": "%s",
             "customer": {"email": "x@example.com", "first_name": "Cross", "last_name": "Major"},
             "recipient": {"%s": "%s"}}' "$@"
}
usd() { req "${3:-2500}" USD "$1" moneroo_payout_demo account_number "$2"; }
LIMITS="SELECT l::text FROM moneroo_limits l ORDER BY currency"
BATCHES="SELECT b::text FROM moneroo_batches b ORDER BY 1"
COUNTED="SELECT coalesce(string_agg(status || '=' || n, ', ' ORDER BY status), 'none') FROM (
           SELECT status, sum(payouts)::bigint AS n FROM moneroo_state_counts GROUP BY status HAVING sum(payouts) <> 0) c"
COUNTS="SELECT coalesce(string_agg(status || '=' || n, ', ' ORDER BY status), 'none') FROM (
          SELECT status, count(*) AS n FROM payouts GROUP BY status) c"

for N in "${MAJORS[@]}"; do
    tag="x$N"
    cluster_is_running || cluster_start >/dev/null
    mock_ctl POST /__mock/reset '{}' >/dev/null
    cluster_psql -q -c "ALTER SYSTEM SET moneroo.verify_min_interval = '200ms'" -c 'SELECT pg_reload_conf()' >/dev/null
    mark=$(sql1 "SELECT coalesce(max(id), 0) FROM payouts")
    # ---- the old server: payouts in every state
    out=$(sql1 "DELETE FROM moneroo_limits WHERE currency = 'USD';
        INSERT INTO moneroo_limits (currency, max_amount, approval_above) VALUES ('USD', 1000000, 90000);
        INSERT INTO payouts (request, batch) VALUES ('$(usd "$tag success" 4149518161)', '$tag-payroll'),
            ('$(usd "$tag failed" 4149518162)', '$tag-payroll'), ('$(usd "$tag sent" 4149518163)', '$tag-payroll'),
            ('$(usd "$tag held" 4149518161 95000)', '$tag-payroll');
        INSERT INTO payouts (request, send_at) VALUES ('$(usd "$tag scheduled" 4149518161)', now() + interval '1 day');
        SELECT (moneroo_transfer('$(usd "$tag keyed" 4149518161)', '$tag-key')).status;
        INSERT INTO payouts (request, send_at) VALUES ('$(usd "$tag cancelled" 4149518161)', now() + interval '1 day');
        SELECT (moneroo_cancel(id)).status FROM payouts WHERE id > $mark AND request ->> 'description' = '$tag cancelled'")
    # (sql1 runs its statements in one transaction: the wait is a statement of its own)
    out+=$(sql1 "SELECT mock.wait_for(\$\$ (SELECT count(*) FROM payouts WHERE id > $mark AND
            (request ->> 'description', status) IN (('$tag success', 'success'), ('$tag failed', 'failed'),
             ('$tag sent', 'sent'), ('$tag keyed', 'success'))) = 4 \$\$, 120)")
    # the faults last: after a 500 the worker waits before it sends again
    mock_ctl POST /__mock/faults '{"kind": "status", "status": 422, "route": "initialize", "count": 1}' >/dev/null
    sql1 "SELECT (moneroo_transfer('$(usd "$tag rejected" 4149518161)')).status" >/dev/null
    mock_ctl POST /__mock/faults '{"kind": "status", "status": 500, "route": "initialize", "count": 1}' >/dev/null
    sql1 "SELECT (moneroo_transfer('$(usd "$tag unknown" 4149518161)')).status" >/dev/null
    # two the old worker must not touch before the dump: one pending after a
    # failed attempt (due in 60 s), one caught in sending (as a crash leaves it)
    sql1 "INSERT INTO payouts (request) VALUES ('$(usd "$tag pending" 4149518161)'), ('$(usd "$tag sending" 4149518161)');
        SET session_replication_role = replica;
        UPDATE payouts SET attempts = 1, last_error = 'could not connect to Moneroo: Connection refused',
                           next_attempt_at = now() + interval '60 s'
         WHERE id > $mark AND request ->> 'description' = '$tag pending';
        UPDATE payouts SET status = 'sending', attempts = 1 WHERE id > $mark AND request ->> 'description' = '$tag sending';
        RESET session_replication_role" >/dev/null
    states=$(sql1 "SELECT string_agg(replace(request ->> 'description', '$tag ', '') || '=' || status, ', ' ORDER BY id)
                   FROM payouts WHERE id > $mark")
    is "$states" "success=success, failed=failed, sent=sent, held=held, scheduled=pending, keyed=success, cancelled=cancelled, rejected=rejected, unknown=unknown, pending=pending, sending=sending" \
        "PostgreSQL 15 holds payouts in every state (for $N): success, failed, sent, held, scheduled, keyed, cancelled, rejected, unknown, pending, sending" "$out"

    # ---- the new major: its pg_dumpall reads 15, 15 stops, the restore, the worker
    root=$(pgroot_build "$N") || { fail "the root of PostgreSQL $N"; skip_rest "no root"; exit 1; }
    pgroot_copy "$root" /build/moneroo-xmajor
    rm -rf "$root/tmp/xmajor"; mkdir -p "$root/tmp/xmajor"; XDIR=$root/tmp/xmajor
    pgroot_run "$N" env PG_MAJOR="$N" bash /build/moneroo-xmajor/test/lib/xmajor_target.sh \
        /tmp/xmajor "$PGPORT" "$MOCK_URL" >"$XDIR.log" 2>&1 &
    TARGET_PID=$!
    for _ in $(seq 1 600); do [ -e "$XDIR/dumped" ] || [ -e "$XDIR/failed" ] && break; sleep 0.5; done
    # what the old server held when dumped (nothing changes it until it stops
    # but the verification of the sent payout, kept out of the comparison)
    maxev=$(sql1 "SELECT max(id) FROM payout_events")
    ROWS="SELECT p::text FROM payouts p WHERE id > $mark
            AND request ->> 'description' NOT IN ('$tag sending', '$tag sent', '$tag pending') ORDER BY id"
    KEPT="SELECT id, reference, request, moneroo_id, created_at, batch FROM payouts WHERE id > $mark ORDER BY id"
    EVENTS="SELECT e::text FROM payout_events e WHERE id <= $maxev ORDER BY id"
    rows=$(sql1 "$ROWS"); kept=$(sql1 "$KEPT"); events=$(sql1 "$EVENTS"); limits=$(sql1 "$LIMITS")
    batches=$(sql1 "$BATCHES"); extversion=$(sql1 "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")
    cluster_stop
    touch "$XDIR/go"
    for _ in $(seq 1 600); do [ -e "$XDIR/restored" ] || [ -e "$XDIR/failed" ] && break; sleep 0.5; done
    if [ -e "$XDIR/restored" ] && grep -q "pg_dumpall (PostgreSQL) $N\|PostgreSQL database cluster dump" "$XDIR/all.sql" &&
       grep -q "^-- Dumped by pg_dump version $N\." "$XDIR/all.sql"; then
        pass "PostgreSQL $N's pg_dumpall reads the 15 server over loopback, and the dump is restored into $N with moneroo.restoring on"
    else
        fail "PostgreSQL $N's pg_dumpall reads the 15 server, and the dump is restored into $N" \
            "$(cat "$XDIR/failed" 2>/dev/null)" "$(tail -n 15 "$XDIR.log")"
        skip_rest "no restored cluster of $N"; exit 1
    fi
    P=$(cat "$XDIR/port")
    is "$(grep -c 'ERROR:' "$XDIR/restore.log")/$(grep 'ERROR:' "$XDIR/restore.log" | grep -vc 'role "postgres" already exists')" \
       "1/0" "the restore's only error is the role postgres that initdb made" "$(grep -m5 ERROR "$XDIR/restore.log")"
    is "$(on "$P" "SELECT current_setting('server_version_num')::int / 10000 || '/' || extversion FROM pg_extension WHERE extname = 'moneroo'")" \
       "$N/$extversion" \
       "the restored database runs moneroo on PostgreSQL $N, the same extension version"
    is "$(on "$P" "$ROWS")" "$rows" "every payout the workers leave alone comes back as dumped, every column"
    is "$(on "$P" "$KEPT")" "$kept" "... and every payout keeps its id, reference, request, Moneroo id, creation time and batch"
    is "$(on "$P" "SELECT status || '/' || (last_error IS NOT NULL) FROM payouts WHERE id > $mark AND request ->> 'description' = '$tag sending'")" \
       "unknown/true" "the payout caught in sending comes back unknown, with a last_error (it may have reached Moneroo)"
    is "$(on "$P" "$EVENTS")/$(on "$P" "$LIMITS")/$(on "$P" "$BATCHES")" "$events/$limits/$batches" \
       "the history (payout_events), the limits and the batches come back"
    is "$(on "$P" "$COUNTED")" "$(on "$P" "$COUNTS")" "moneroo_status counts the restored payouts exactly, state by state"
    is "$(on "$P" "SELECT (moneroo_transfer('$(usd "$tag keyed" 4149518161)', '$tag-key')).id = id FROM payouts WHERE idempotency_key = '$tag-key'")" \
       "t" "the idempotency key answers with the restored payout (nothing new sent)"
    # the worker of N resumes: the sent one verified, the pending one sent at its time
    is "$(on "$P" "SELECT mock.wait_for(\$\$ (SELECT count(*) FROM payouts WHERE id > $mark AND
            (request ->> 'description', status) IN (('$tag sent', 'sent'), ('$tag pending', 'sent'), ('$tag pending', 'success'))) = 2 \$\$, 150)")" \
       "t" "PostgreSQL $N's worker resumes: the pending payout is sent at its retry time, the sent one still awaits Moneroo"
    is "$(on "$P" "SELECT string_agg(replace(request ->> 'description', '$tag ', '') || '=' || status, ', ' ORDER BY id) FROM payouts
                 WHERE id > $mark AND request ->> 'description' IN ('$tag held', '$tag scheduled', '$tag cancelled', '$tag unknown')")" \
       "held=held, scheduled=pending, cancelled=cancelled, unknown=unknown" \
       "the held, scheduled, cancelled and unknown payouts stay as they were: nothing sends them"
    # one journal for both majors: each reference POSTed at most once
    # (a POST answered with a fault carries no reference in the journal: the
    # rejected and unknown ones are in the total of POSTs)
    posts=$(on "$P" "SELECT coalesce(string_agg(replace(p.request ->> 'description', '$tag ', '') || '=' || n, ', ' ORDER BY p.id), 'none')
                     FROM payouts p JOIN (SELECT j ->> 'reference' AS ref, count(*) AS n FROM mock.journal() j
                                          WHERE j ->> 'method' = 'POST' GROUP BY 1) c ON c.ref = p.reference::text
                     WHERE p.id > $mark;
                     SELECT count(*) FROM mock.journal() j WHERE j ->> 'method' = 'POST'" | paste -sd/)
    is "$posts" "success=1, failed=1, sent=1, keyed=1, pending=1/7" \
       "the mock's journal of both majors: every payout POSTed once at most, nothing sent twice, the pending one once (by $N)"
    touch "$XDIR/done"; wait "$TARGET_PID"; TARGET_PID=""
    cluster_start >/dev/null
    # the old server's copies of what was not sent stop here (the new major owns them)
    sql1 "SELECT count(moneroo_cancel(id)) FROM payouts WHERE id > $mark AND status IN ('pending', 'held')" >/dev/null
done
exit 0
