#!/usr/bin/env bash
# Proves: the "too few standbys" warning is for payouts that wait, not an empty queue [fast, ~30 s].
# test/ha/53_standby_warning_empty_queue.sh: the "too few standbys"
# WARNING is for payouts that wait (1.3).
#
# With moneroo.claim_standbys = 1 and no standby, the worker claims nothing
# and says why.  It used to log "moneroo worker is not sending: too few
# standbys stream" at its first wake even with nothing to send.  Here, on
# the test cluster (no standby):
#   1. claim_standbys 1, a reload and a payout scheduled an hour ahead (both
#      wake the worker; nothing is due): no such WARNING;
#   2. a payout due now: the WARNING, once, and the payout stays pending.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings as it found them and nothing to
# send.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 3

RUN="t53-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WARNING='moneroo worker is not sending: too few standbys stream'

log_since() { as_pg tail -c +$(($1 + 1)) "$SERVER_LOG"; }
queue() {
    sql -q -c "INSERT INTO payouts (request, send_at) VALUES (jsonb_build_object(
        'amount', 700, 'currency', 'USD', 'description', '$RUN ' || '$1', 'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 't53@example.com', 'first_name', 'Stand', 'last_name', 'By'),
        'recipient', jsonb_build_object('account_number', '4149518161')), $2)"
}
cleanup() {
    set +e
    sql -q -c 'ALTER SYSTEM RESET moneroo.claim_standbys' -c 'SELECT pg_reload_conf()' \
        -c "SELECT moneroo_cancel(id) FROM payouts WHERE request ->> 'description' LIKE '$RUN %' AND status = 'pending'" \
        >/dev/null 2>&1
}
trap cleanup EXIT

wait_server 30 || bail "the server does not answer"
wait_worker 20 >/dev/null || bail "no worker runs"
deadline=$((SECONDS + 30))
until [ "$(sql1 "SELECT NOT EXISTS (SELECT FROM payouts WHERE status IN ('pending', 'sending')
                 AND coalesce(next_attempt_at, now()) <= now() + interval '1 minute')")" = t ]; do
    [ "$SECONDS" -lt "$deadline" ] || bail "payouts of earlier tests are still due to be sent"
    sleep 0.5
done

mark=$(as_pg stat -c %s "$SERVER_LOG")
sql -q -c 'ALTER SYSTEM SET moneroo.claim_standbys = 1' -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
queue later "now() + interval '1 hour'"
sleep 2
is "$(log_since "$mark" | grep -c "$WARNING")" "0" \
    "claim_standbys 1 without a standby, nothing due (a reload and a scheduled payout wake the worker): no WARNING"

queue now "NULL"
deadline=$((SECONDS + 15))
until log_since "$mark" | grep -q "$WARNING" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.3; done
sleep 1
is "$(log_since "$mark" | grep -c "$WARNING")" "1" "a payout due now: the WARNING, once"
is "$(sql1 "SELECT status FROM payouts WHERE request ->> 'description' = '$RUN now'")" "pending" \
    "... and the payout waits, pending"
