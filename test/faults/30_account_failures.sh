#!/usr/bin/env bash
# Proves: a refused key or a 503 storm pauses the account, losing and doubling nothing [fast, ~40 s].
# test/faults/30_account_failures.sh: the worst day of an account (1.2).
#
#   A. Moneroo refuses the key (the mock's key is changed: a revoked key):
#      no payout is rejected or unknown, they wait pending with their attempt
#      uncounted, few requests leave while paused, moneroo_status says why,
#      moneroo_transfer raises 28000 and records nothing; after the key works
#      again and pg_reload_conf() every payout is sent once, at once.
#   B. A refused key on verify: sent payouts stay sent; they settle after.
#   C. Moneroo fails (503 after creating, on every initialize): the circuit
#      breaker opens after a few, at most max_concurrency + 2 payouts become
#      unknown, the rest stay pending, moneroo_transfer raises 08006 and
#      records nothing, moneroo_verify still works; once Moneroo answers, the
#      probe closes it and the rest are sent once each.
#   D. Settling the unknown ones: a webhook for an id no row carries adopts
#      the unknown row whose reference Moneroo reports; moneroo_resolve with
#      the right id, a stranger's id (22023), an id Moneroo does not know
#      (P0002), a row in the wrong state (55000); moneroo_cancel of pending
#      and unknown payouts, refused for a final one.  Every unknown payout
#      of the script ends resolved or cancelled.
#
# Run by test/run.sh (bash, TAP on stdout).  It appends moneroo.webhook_secret
# to postgresql.conf and restarts (test/run.sh restores the file afterwards).
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

tap_plan 38

WEBHOOK_SECRET="whsec_t30_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MAXC=8

mock_config() { mock_ctl POST /__mock/config "$1" >/dev/null; }
of() { printf "(SELECT * FROM payouts WHERE request ->> 'description' LIKE '%s #%%') AS m" "$1"; }
counts() { sql1 "SELECT coalesce(string_agg(status || '=' || n, ' ' ORDER BY status), 'none')
                 FROM (SELECT status, count(*) AS n FROM $(of "$1") GROUP BY status) s"; }
# inits TAG: "POSTS REFERENCES" of initialize requests for TAG's payouts
inits() {
    sql1 "SELECT count(*) || ' ' || count(DISTINCT j -> 'body' -> 'metadata' ->> 'payout_reference')
          FROM mock.journal() AS j
          WHERE j ->> 'path' = '/v1/payouts/initialize' AND j -> 'body' ->> 'description' LIKE '$1 #%'"
}
transfer_sql="SELECT moneroo_transfer(jsonb_build_object(
    'amount', 5, 'currency', 'USD', 'description', 't30 transfer', 'method', 'moneroo_payout_demo',
    'customer', jsonb_build_object('email', 'ops@example.com', 'first_name', 'A', 'last_name', 'B'),
    'recipient', jsonb_build_object('account_number', '4149518161')))"

restore() {
    set +e
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
    cluster_psql -q -c "DELETE FROM payouts WHERE status IN ('pending', 'rejected')" >/dev/null 2>&1
}
trap restore EXIT

cluster_conf_append "" "# ---- 30_account_failures.sh ----" \
    "moneroo.webhook_secret = '$WEBHOOK_SECRET'" "moneroo.rate_limit = 0" \
    "moneroo.max_concurrency = $MAXC" "moneroo.breaker_threshold = 3" \
    "moneroo.verify_min_interval = '500ms'" \
    "moneroo.verify_max_interval = '1s'" || bail "cannot append to postgresql.conf"
cluster_restart >&2 || bail "the server does not restart"
wait_worker 20 >/dev/null || bail "no worker"
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"
mock_config '{"rate_limit": 0, "pending_after": 0.2, "final_after": 0.5}'

# ================================================================ A. key refused
# The first request the revoked key meets must be one of A's initializes, not
# a verification or a send of a payout an earlier test left due (that one
# would start the pause, and A's payouts would never be tried): such payouts
# are parked for the section, with triggers off as only a test may.
sql1 "SET session_replication_role = replica;
    DROP TABLE IF EXISTS t30_parked;
    CREATE TABLE t30_parked AS SELECT id, next_attempt_at FROM payouts WHERE status IN ('pending', 'sent');
    UPDATE payouts p SET next_attempt_at = now() + interval '1 hour' FROM t30_parked k WHERE p.id = k.id" >/dev/null
mock_config '{"secret_key": "pvk_revoked_by_the_test"}'
queue t30a 10 >/dev/null
is "$(wait_sql "(SELECT pause_reason FROM moneroo_status) LIKE '%refused the secret key%'" 10)" t \
   "A: a 401 pauses the worker: moneroo_status.pause_reason says Moneroo refused the key"
wait_sql "(SELECT count(*) FROM $(of t30a) WHERE status = 'sending') = 0" 10 >/dev/null
sleep 3
is "$(counts t30a)" "pending=10" "A: the 10 payouts wait pending: none rejected, none unknown, none left sending"
is "$(sql1 "SELECT max(attempts) FROM $(of t30a)")" "0" "A: the refused attempts are not counted against them"
posts=$(inits t30a)
ok "$([ "${posts%% *}" -le "$MAXC" ] && echo 0 || echo 1)" \
   "A: while paused, no more than one round of requests ($MAXC) left" "initializes: $posts"
is "$(sql1 "SELECT paused_until > now() FROM moneroo_status")" "t" "A: moneroo_status.paused_until is in the future"
is "$(sql1 "SELECT last_error LIKE '%refused the secret key%' AND position('$MONEROO_TEST_KEY' IN last_error) = 0
            FROM moneroo_status")" "t" "A: last_error says the key was refused, and never shows the key"
is "$(sql1 "SELECT bool_and(last_error LIKE '%refused the secret key%') FROM $(of t30a)")" "t" \
   "A: each payout's last_error says why it waits"
n0=$(sql1 "SELECT count(*) FROM payouts")
got=$(sql_or_state "$transfer_sql")
is "${got:0:11} $(sql1 "SELECT count(*) FROM payouts")" "ERROR 28000 $n0" \
   "A: moneroo_transfer raises 28000 while the key is refused, and records nothing" "$got"
mock_config '{"secret_key": null}'
reload
is "$(wait_sql "(SELECT count(*) FROM $(of t30a) WHERE status IN ('sent', 'success')) = 10" 10)" t \
   "A: after pg_reload_conf() with a working key, every payout is sent at once (no minute's wait)"
# ... and back to their own schedule (not due at once: that would crowd later tests' windows)
sql1 "SET session_replication_role = replica;
      UPDATE payouts p SET next_attempt_at = k.next_attempt_at FROM t30_parked k
       WHERE p.id = k.id AND p.status IN ('pending', 'sent') AND p.next_attempt_at > now() + interval '30 minutes';
      DROP TABLE t30_parked" >/dev/null
is "$(inits t30a)" "$(( ${posts%% *} + 10 )) 10" "A: each was created once: the refused requests plus one each"
is "$(sql1 "SELECT pause_reason IS NULL FROM moneroo_status")" "t" "A: the pause is over in moneroo_status"

# ================================================================ B. key refused on verify
mock_config '{"pending_after": 60, "final_after": 120}'
queue t30b 3 >/dev/null
wait_sql "(SELECT count(*) FROM $(of t30b) WHERE status = 'sent') = 3" 10 >/dev/null
mock_config '{"secret_key": "pvk_revoked_by_the_test"}'
is "$(wait_sql "(SELECT pause_reason FROM moneroo_status) LIKE '%refused the secret key%'" 10)" t \
   "B: a 401 on verify pauses the worker too"
is "$(counts t30b)" "sent=3" "B: the payouts it was verifying stay sent (a verify failure changes no state)"
mock_config '{"secret_key": null, "pending_after": 0.2, "final_after": 0.5}'
reload
is "$(wait_sql "(SELECT count(*) FROM $(of t30b) WHERE status = 'success') = 3" 15)" t \
   "B: after the reload they are verified to success"

# ================================================================ C. Moneroo fails
# After a pause sends ramp up again, one at a time and doubling with each good
# answer: a few good payouts first, so that the outage meets the full width.
queue t30r 8 >/dev/null
is "$(wait_sql "(SELECT count(*) FROM $(of t30r) WHERE status IN ('sent', 'success')) = 8" 15)" t \
   "C: after the pauses, sends ramp back up (8 more payouts sent)"
mock_ctl POST /__mock/faults '{"kind": "status_after_create", "status": 503, "route": "initialize", "count": -1}' >/dev/null
queue t30c 60 >/dev/null
is "$(wait_sql "(SELECT pause_reason FROM moneroo_status) LIKE '%failing%'" 20)" t \
   "C: after a few 503s the circuit breaker opens (moneroo_status.pause_reason)"
wait_sql "(SELECT count(*) FROM $(of t30c) WHERE status = 'sending') = 0" 15 >/dev/null
sleep 2
unknown=$(sql1 "SELECT count(*) FROM $(of t30c) WHERE status = 'unknown'")
ok "$([ "$unknown" -ge 1 ] && [ "$unknown" -le $((MAXC + 2)) ] && echo 0 || echo 1)" \
   "C: at most max_concurrency + 2 = $((MAXC + 2)) payouts became unknown" "unknown: $unknown; $(counts t30c)"
is "$(sql1 "SELECT count(*) FROM $(of t30c) WHERE status NOT IN ('unknown', 'pending')")" "0" \
   "C: the others wait pending (none sending, none rejected)"
posts=$(inits t30c)
sleep 3
is "$(inits t30c)" "$posts" "C: while the breaker is open no initialize leaves"
n0=$(sql1 "SELECT count(*) FROM payouts")
got=$(sql_or_state "$transfer_sql")
is "${got:0:11} $(sql1 "SELECT count(*) FROM payouts")" "ERROR 08006 $n0" \
   "C: moneroo_transfer raises 08006 while the breaker is open, and records nothing" "$got"
some=$(sql1 "SELECT min(id) FROM $(of t30b)")
is "$(sql1 "SELECT (moneroo_verify($some)).status")" "success" "C: moneroo_verify still works (it creates nothing)"
seq=$(sql1 "SELECT coalesce(max((j ->> 'seq')::bigint), 0) FROM mock.journal() j")
mock_ctl DELETE /__mock/faults >/dev/null
is "$(wait_sql "(SELECT count(*) FROM $(of t30c) WHERE status = 'pending') = 0" 60)" t \
   "C: once Moneroo answers, the probe closes the breaker and the queue drains"
is "$(sql1 "SELECT j ->> 'method' || ' ' || (j ->> 'path' LIKE '/v1/payouts/%/verify')
            FROM mock.journal($seq) j ORDER BY (j ->> 'seq')::bigint LIMIT 1")" "GET true" \
   "C: the first request after the outage is the breaker's probe, a verify (it creates nothing)"
is "$(sql1 "SELECT count(*) FROM $(of t30c) WHERE status = 'unknown'")" "$unknown" \
   "C: no other payout became unknown"
is "$(sql1 "SELECT count(*) = count(DISTINCT j -> 'body' -> 'metadata' ->> 'payout_reference')
            FROM mock.journal() AS j
            WHERE j ->> 'path' = '/v1/payouts/initialize' AND j -> 'body' ->> 'description' LIKE 't30c #%'")" "t" \
   "C: no payout was sent twice"
# ================================================================ D. settling unknown
# the unknown payouts of C, with the id the mock gave each
sql -q -c "CREATE TABLE IF NOT EXISTS t30_unknown AS
    SELECT m.id, m.reference::text AS reference, mp ->> 'id' AS mid
    FROM $(of t30c) JOIN mock.payouts() mp ON mp ->> 'reference' = m.reference::text
    WHERE m.status = 'unknown' ORDER BY m.id" >/dev/null
is "$(sql1 "SELECT count(*) FROM t30_unknown")" "$unknown" "D: Moneroo (the mock) created every unknown payout"
u1=$(sql1 "SELECT id FROM t30_unknown ORDER BY id LIMIT 1")
m1=$(sql1 "SELECT mid FROM t30_unknown ORDER BY id LIMIT 1")
body="{\"event\": \"payout.success\", \"data\": {\"id\": \"$m1\"}}"
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r | cut -d' ' -f1)
is "$(sql1 "SELECT (p).status || ' ' || (p).moneroo_id FROM (SELECT moneroo_webhook('$body', '$sig') AS p) s")" \
   "success $m1" "D: a webhook for an id no row carries adopts the unknown row Moneroo reports it under"
log=$(grep -c "takes Moneroo id \"$m1\" from a webhook" "$SERVER_LOG" 2>/dev/null)
ok "$([ "${log:-0}" -ge 1 ] && echo 0 || echo 1)" "D: ... and the adoption is logged"
body2='{"event": "payout.success", "data": {"id": "t30nosuchpayout"}}'
sig2=$(printf '%s' "$body2" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r | cut -d' ' -f1)
is "$(sql_or_state "SELECT moneroo_webhook('$body2', '$sig2')" | cut -c1-11)" "ERROR P0002" \
   "D: a webhook for an id Moneroo does not know either is refused with P0002"

u2=$(sql1 "SELECT id FROM t30_unknown ORDER BY id OFFSET 1 LIMIT 1")
m2=$(sql1 "SELECT mid FROM t30_unknown ORDER BY id OFFSET 1 LIMIT 1")
u3=$(sql1 "SELECT id FROM t30_unknown ORDER BY id OFFSET 2 LIMIT 1")
if [ -n "$u3" ]; then
    is "$(sql_or_state "SELECT moneroo_resolve($u3, '$m2')" | cut -c1-11)" "ERROR 22023" \
       "D: moneroo_resolve with another payout's id is refused with 22023"
else
    fail "D: moneroo_resolve with another payout's id is refused with 22023" "fewer than 3 unknown payouts"
fi
is "$(sql_or_state "SELECT moneroo_resolve($u2, 't30nosuchpayout')" | cut -c1-11)" "ERROR P0002" \
   "D: moneroo_resolve with an id Moneroo does not know is refused with P0002"
is "$(sql1 "SELECT (p).status || ' ' || (p).moneroo_id FROM (SELECT moneroo_resolve($u2, '$m2') AS p) s")" \
   "success $m2" "D: moneroo_resolve with the right id records it and Moneroo's status"
is "$(sql_or_state "SELECT moneroo_resolve($u2, '$m2')" | cut -c1-11)" "ERROR 55000" \
   "D: moneroo_resolve of a payout that is no longer unknown is refused with 55000"

# every other unknown payout: cancelled on the operator's word; and a pending one
is "$(sql1 "SELECT string_agg(DISTINCT (moneroo_cancel(id)).status, ',') FROM t30_unknown WHERE id NOT IN ($u1, $u2)")" \
   "$([ "$unknown" -gt 2 ] && echo cancelled)" "D: moneroo_cancel closes the other unknown payouts"
# a pending payout, held back by a refused key, cancelled before it leaves
mock_config '{"secret_key": "pvk_revoked_by_the_test"}'
queue t30d 1 >/dev/null
wait_sql "(SELECT pause_reason FROM moneroo_status) IS NOT NULL
          AND (SELECT status FROM $(of t30d)) = 'pending'" 10 >/dev/null
pend=$(sql1 "SELECT id FROM $(of t30d)")
is "$(sql1 "SELECT (moneroo_cancel($pend)).status")" "cancelled" "D: moneroo_cancel cancels a pending payout"
mock_config '{"secret_key": null}'
reload
sleep 2
is "$(sql1 "SELECT status || ' ' || (SELECT count(*) FROM mock.payouts() mp WHERE mp ->> 'reference' = m.reference::text)
            FROM $(of t30d)")" "cancelled 0" "D: ... and it is never sent, once the key works again"
is "$(sql1 "SELECT count(*) FROM $(of t30c) WHERE status = 'unknown'")" "0" \
   "D: every unknown payout of the outage ended resolved, adopted or cancelled"
is "$(sql_or_state "SELECT moneroo_cancel($u1)" | cut -c1-11)" "ERROR 55000" \
   "D: moneroo_cancel of a final payout is refused with 55000"
